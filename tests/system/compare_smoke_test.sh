#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# System test of `scripts/disco compare` (issue 4), on two workloads of the
# suite: boot and misplaced, each booted three ways (one QEMU process,
# the 2-node cluster with static homes, the cluster with Disco's policy).
# Checks that every boot passed, that the Markdown and CSV tables hold a
# row per workload with a time for each mode, that both charts are real
# PNG and SVG files, and that the last line is the summary a script reads.
#   compare_smoke_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-comparetest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() {
	echo "FAIL: $*"
	echo "---- disco compare output ----"; cat "$tmp/out.txt"
	exit 1
}
set +e
"$root/scripts/disco" compare --build "$build" --only boot,misplaced --out "$tmp/cmp" >"$tmp/out.txt" 2>&1
status=$?
set -e
[ $status -eq 0 ] || fail "disco compare exited $status"

csv=$tmp/cmp/compare.csv md=$tmp/cmp/compare.md
for f in "$csv" "$md" "$tmp/cmp/compare.png" "$tmp/cmp/compare.svg"; do
	[ -s "$f" ] || fail "$(basename "$f") is missing or empty"
done
head -c 8 "$tmp/cmp/compare.png" | od -An -tx1 | tr -d ' \n' | grep -q '^89504e470d0a1a0a$' ||
	fail "compare.png is not a PNG file"
grep -q "<svg" "$tmp/cmp/compare.svg" || fail "compare.svg is not an SVG file"

# workload,single_ms,static_ms,disco_ms,...,policy_migrations_disco,result
head -n 1 "$csv" | grep -q '^workload,single_ms,static_ms,disco_ms,' || fail "compare.csv has no header"
for w in boot misplaced; do
	row=$(grep "^$w," "$csv") || fail "compare.csv has no $w row"
	IFS=, read -r -a f <<<"$row"
	for i in 1 2 3; do
		[[ "${f[$i]}" =~ ^[0-9]+(\.[0-9]+)?$ ]] || fail "$w: no time for mode $i in: $row"
	done
	[[ "${f[11]}" =~ ^[0-9]+$ ]] || fail "$w: no policy migration count in: $row"
	[ "${f[12]}" = pass ] || fail "$w did not pass in every mode: $row"
	grep -q "^| $w | " "$md" || fail "compare.md has no $w row"
done

last=$(tail -n 1 "$tmp/out.txt")
[[ "$last" =~ ^numa_local_ratio=[^\ ]+\ read_shared_ratio=[^\ ]+\ misplaced_speedup=[0-9.]+\ boot_ratio=[0-9.]+\ policy_migrations=[0-9]+$ ]] ||
	fail "the last line is not the summary: $last"
grep -h "^| " "$md"
echo "$last"
echo "PASS: disco compare ran boot and misplaced three ways and wrote both tables and both charts"
