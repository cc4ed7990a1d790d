#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The bench runs end to end on a small sample and ends with its summary line.
# Figures are not judged here (benchmarks are not timed tests).
set -euo pipefail
bench=$1
out=$("$bench" --samples 50 --rounds 20 2>/dev/null)
echo "$out"
# the userfaultfd floor of this host, measured in the same run
if ! grep -Eq '^userfaultfd_floor +p50= *[0-9.]+ p99= *[0-9.]+' <<<"$out" ||
	! grep -Eq '^best_overhead_ratio=[0-9.]+ ' <<<"$out"; then
	echo "bench_smoke: no userfaultfd floor in the output" >&2
	exit 1
fi
last=$(printf '%s\n' "$out" | tail -n 1)
if ! [[ $last =~ ^read_fault_p50_us=[0-9.]+\ rtt_p50_us=[0-9.]+\ overhead_ratio=[0-9.]+$ ]]; then
	echo "bench_smoke: unexpected last line: $last" >&2
	exit 1
fi
