#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Verify the SPIN model of the DSM protocol (tests/spin/dsm.pml).
#
# usage: run-spin.sh [--spin PATH] [--expect-fail] [--bitstate] BUILD_DIR [-DNAME[=VALUE]...]
#
# Generates the verifier (spin -a) in a fresh directory under
# BUILD_DIR/tests/spin/, compiles pan and runs an exhaustive search
# (lossless state compression, -DCOLLAPSE) for assertion violations and
# invalid end states. Exits 0 only if pan reports "errors: 0" for a search
# that completed; prints the states explored and the time taken. On a
# failure it prints the counterexample (the messages sent and received)
# and keeps the directory with the trail for `spin -t -p`.
#
#   --spin PATH    the spin binary (default: spin from PATH)
#   --expect-fail  invert: exit 0 only if pan DOES find an error (used with
#                  -DNO_FLUSH, a mutation of the protocol that must be caught)
#   --bitstate     bitstate (supertrace) search instead of the exhaustive one:
#                  for configurations too big to search exhaustively, e.g.
#                  -DFULL; it may miss states and says how many it covered
#   -D...          passed to spin (model options, see the top of dsm.pml:
#                  NO_FLUSH, FULL, SMALL, CAP, BUDGET, WB_NO_WAIT, PROBE=k)
#
# Environment: SPIN_MEMLIM (MB, default 4096), SPIN_CC (default gcc),
# SPIN_CFLAGS (default -O1: pan.c is a few MB of generated code and -O2
# compiles it in minutes for little gain), SPIN_DEPTH (default 10000),
# SPIN_PAN_FLAGS (more pan options, e.g. -Q30 to stop a search after 30 min).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
spin=spin
expect_fail=0
bitstate=0
while [ $# -gt 0 ]; do
	case "$1" in
	--spin) spin=$2; shift 2 ;;
	--expect-fail) expect_fail=1; shift ;;
	--bitstate) bitstate=1; shift ;;
	-h|--help) sed -n '3,/^set -e/p' "$0" | sed -e 's/^# \{0,1\}//' -e '$d'; exit 0 ;;
	-*) echo "run-spin.sh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
if [ $# -lt 1 ]; then
	echo "usage: run-spin.sh [--spin PATH] [--expect-fail] [--bitstate] BUILD_DIR [-DNAME[=VALUE]...]" >&2
	exit 2
fi
build=$1
shift
defines=("$@")
for d in ${defines[@]+"${defines[@]}"}; do
	case "$d" in
	-D*) ;;
	*) echo "run-spin.sh: model options must look like -DNAME[=VALUE], not '$d'" >&2; exit 2 ;;
	esac
done

if [ "$spin" = spin-not-found-by-cmake ]; then
	echo "run-spin.sh: FAIL: CMake found no SPIN model checker (find_program(SPIN spin))." >&2
	echo "run-spin.sh: scripts/setup.sh installs it (Debian package 'spin'); then re-run cmake." >&2
	exit 1
fi
if ! command -v "$spin" >/dev/null 2>&1; then
	echo "run-spin.sh: FAIL: the SPIN model checker was not found ('$spin')." >&2
	echo "run-spin.sh: scripts/setup.sh installs it (Debian package 'spin'); then re-run cmake." >&2
	exit 1
fi
case "$spin" in
*/*) spin="$(cd "$(dirname "$spin")" && pwd)/$(basename "$spin")" ;; # survives the cd below
esac
cc=${SPIN_CC:-gcc}
cflags=${SPIN_CFLAGS:--O1}
memlim=${SPIN_MEMLIM:-4096}
depth=${SPIN_DEPTH:-10000}

mkdir -p "$build/tests/spin"
build=$(cd "$build" && pwd)
work=$(mktemp -d "$build/tests/spin/run.XXXXXX")
cp "$here/dsm.pml" "$work/"
cd "$work"
echo "run-spin.sh: $("$spin" -V | head -1); model options: ${defines[*]:-(none)}; in $work"

"$spin" ${defines[@]+"${defines[@]}"} -a dsm.pml
if [ "$bitstate" = 1 ]; then
	mode="-DBITSTATE"
	runflags=(-w33) # 1 GiB of bits
else
	mode="-DCOLLAPSE"
	runflags=(-w25)
fi
t0=$(date +%s)
# -DSAFETY: assertions and invalid end states (no never claim, no cycles).
# -DNOBOUNDCHECK: the model asserts its own indices; -w: pan.c is generated.
# shellcheck disable=SC2086 # SPIN_CFLAGS is a list of options
"$cc" $cflags -DSAFETY $mode -DMEMLIM="$memlim" -DNOBOUNDCHECK -w -o pan pan.c
t1=$(date +%s)
if [ "$expect_fail" = 1 ]; then
	# -i: keep searching for a shorter counterexample, so the one printed
	# below is easy to read
	runflags+=(-i)
fi
set +e
# shellcheck disable=SC2086 # SPIN_PAN_FLAGS is a list of options
./pan -m"$depth" "${runflags[@]}" ${SPIN_PAN_FLAGS:-} >pan.out 2>&1
pan_rc=$?
set -e
t2=$(date +%s)

# the last error found (with -i, the shortest), then the statistics
grep -E "^pan:[0-9]+:" pan.out | tail -1 | cut -c1-300 | sed 's/^/  /' || true
grep -E "^(State-vector|pan:|Warning|error)|states, stored|states, matched|transitions|total actual memory|hash factor|coverage" pan.out \
	| grep -v -E "^pan:[0-9]+:|^pan: (wrote|reducing)" | sed 's/^/  /' || true
echo "run-spin.sh: compile $((t1 - t0)) s, search $((t2 - t1)) s"

errors=$(sed -n 's/.*errors: \([0-9][0-9]*\).*/\1/p' pan.out | tail -1)
incomplete=0
if grep -q -E "Search not completed|max search depth too small|out of memory|MEMLIM|Time limit" pan.out; then
	incomplete=1
fi

print_counterexample()
{
	[ -f dsm.pml.trail ] || return 0
	echo "run-spin.sh: counterexample (proc 2, 3, 4 are nodes 0, 1, 2; a message is"
	echo "  kind, page|flags<<1|value<<4, requester|hops<<2 or MIGRATE's dir|copyset<<2|owner<<5):"
	"$spin" ${defines[@]+"${defines[@]}"} -t -s -r dsm.pml 2>&1 \
		| grep -E "Send|Recv|assertion violated|failed assertion|invalid end state|timeout" \
		| sed -E -e 's/proc +2 \(node:1\)/node 0/' -e 's/proc +3 \(node:1\)/node 1/' \
			-e 's/proc +4 \(node:1\)/node 2/' -e 's/^/  /' || true
}

keep_trail()
{
	"$spin" ${defines[@]+"${defines[@]}"} -t -p -g dsm.pml >trail.txt 2>&1 || true
	echo "run-spin.sh: full trail in $work/trail.txt (dsm.pml.trail: spin -t -p dsm.pml)"
}

clean_up()
{
	cd /
	rm -rf "$work"
}

if [ -z "$errors" ]; then
	echo "run-spin.sh: FAIL: pan did not report a result (exit $pan_rc); output in $work/pan.out" >&2
	exit 1
fi
if [ "$expect_fail" = 1 ]; then
	if [ "$errors" -gt 0 ]; then
		print_counterexample
		echo "run-spin.sh: PASS: SPIN found the expected error (${defines[*]:-})"
		clean_up
		exit 0
	fi
	echo "run-spin.sh: FAIL: SPIN found no error with ${defines[*]:-(none)}, but one was expected" >&2
	exit 1
fi
if [ "$errors" -ne 0 ]; then
	print_counterexample
	keep_trail
	echo "run-spin.sh: FAIL: SPIN found $errors error(s); output in $work/pan.out" >&2
	exit 1
fi
if [ "$bitstate" = 1 ]; then
	if [ "$incomplete" = 1 ]; then
		echo "run-spin.sh: the bitstate search stopped early (time, memory or depth limit)"
	fi
	echo "run-spin.sh: PASS (bitstate search: no error among the states it covered, not a proof)"
elif [ "$incomplete" = 1 ]; then
	echo "run-spin.sh: FAIL: the search did not complete (memory or depth limit); see $work/pan.out" >&2
	exit 1
else
	echo "run-spin.sh: PASS (exhaustive search, no error)"
fi
clean_up
