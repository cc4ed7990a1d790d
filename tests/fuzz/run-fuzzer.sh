#!/usr/bin/env bash
# Runs one libFuzzer target for a bounded time (the fuzz_* ctest tests,
# `make fuzz`). New inputs it finds go to a folder in the build tree; the
# seed corpus in the source tree (tests/fuzz/corpus/<target>/, crash
# regressions included) and any extra seed folders are only read. libFuzzer
# runs every seed once before it mutates, so the regressions run each time.
#
#   run-fuzzer.sh BINARY SECONDS WORKDIR SEED_DIR... [-- LIBFUZZER_FLAGS...]
#
# A crash, a sanitizer report, a leak or a hang (-timeout) fails the run;
# the input that did it is written to WORKDIR/crash-* (or leak-*,
# timeout-*), and the log names it: once the bug is fixed, copy it into
# the seed corpus as a regression.
set -euo pipefail
bin=$1 secs=$2 work=$3
shift 3
seeds=() flags=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	[ -d "$1" ] && seeds+=("$1")
	shift
done
[ $# -gt 0 ] && shift
flags=("$@")
mkdir -p "$work/new"
exec "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-artifact_prefix="$work/" "${flags[@]}" "$work/new" "${seeds[@]}"
