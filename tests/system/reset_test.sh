#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# System test: a guest reset started on a non-master node resets the whole
# spanning VM, which boots again and runs on.
#
# 2 nodes x 1 vCPU, on_reset: reset, kernel command line reboot=t,s1: the
# guest's first boot runs disco-reset, which resets the machine; Linux does
# that by a triple fault on CPU 1, i.e. on node n1. Both nodes must reset
# and the guest must boot a second time (it counts boots in CMOS RAM, which
# survives a reset), pass the coherence check with both vCPUs online, and
# power off; both node processes exit 0 and each counts one guest reset.
#   reset_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-resettest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

ON_RESET=reset CMDLINE_EXTRA="reboot=t,s1" "$here/make-config.sh" "$build" 2 1 >"$tmp/cluster.yaml"
set +e
"$root/scripts/run-vm.sh" --build "$build" --out "$tmp/out" --quiet --timeout 1200 \
	--run reset,coherence "$tmp/cluster.yaml" >"$tmp/run.txt" 2>&1
status=$?
set -e
console() { tr -d '\r' <"$tmp/out/console.log"; }
fail() {
	echo "FAIL: $*"
	echo "---- run-vm output ----"; cat "$tmp/run.txt"
	echo "---- guest console (last 60 lines) ----"; console | tail -n 60
	for n in n0 n1; do echo "---- $n.log ----"; cat "$tmp/out/$n.log" 2>/dev/null; done
	exit 1
}
summary=$(tail -n 1 "$tmp/run.txt")
echo "$summary"
[ $status -eq 0 ] || fail "run-vm exited $status"
console | grep -q "^reset: first boot: resetting the machine" ||
	fail "the guest's first boot did not reach the reset"
boots=$(console | grep -c "^disco-guest: cpus_online=2 ")
[ "$boots" -eq 2 ] || fail "the guest booted $boots times with both vCPUs online, want 2"
console | grep -q "^reset: boot 2 after a guest reset" ||
	fail "the second boot did not see the first one's boot count (CMOS lost by the reset?)"
console | grep -q "^disco-guest: reset PASS" || fail "disco-reset did not pass on the second boot"
console | grep -q "^disco-guest: coherence PASS" || fail "the coherence check did not pass after the reset"
console | grep -q "^disco-guest: result=pass" || fail "no result=pass from the guest"
[[ "$summary" == *"guest_exit=poweroff"* ]] || fail "the guest did not power off cleanly"
# The reset started on n1 (CPU 1's triple fault) and reached the master.
# The firmware, restarted by it, resets the machine once more from the
# master (one QEMU process does the same: two system resets per guest
# reboot), so the nodes may count 2; they must count alike.
counts=()
for n in n0 n1; do
	grep -q "guest reset 1 (guest-reset, from node n1)" "$tmp/out/$n.log" ||
		fail "$n did not log the first reset as coming from n1"
	c=$(sed -n 's/.*guest_resets=\([0-9]*\)$/\1/p' "$tmp/out/$n.stats")
	[ -n "$c" ] && [ "$c" -ge 1 ] || fail "$n counts no guest reset"
	counts+=("$c")
done
[ "${counts[0]}" -eq "${counts[1]}" ] ||
	fail "the nodes counted different numbers of resets: n0 ${counts[0]}, n1 ${counts[1]}"
grep -h "guest reset" "$tmp/out/n0.log" "$tmp/out/n1.log"
echo "PASS: a reset started on n1 reset both nodes; the guest booted again and passed"
