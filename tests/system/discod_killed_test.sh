#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# discod_daemon_killed: the documented outcome of a daemon that dies
# (docs/architecture.md, "Running a rack"): two daemons run a VM across
# n0+n1; kill -9 of discod n1 takes its QEMU with it (PR_SET_PDEATHSIG),
# the VM's QEMU on n0 stops naming n1, `disco status` (asked of n0) shows
# n1's daemon DOWN (exit 3) and the VM failed on n0 with n1 named; n0's
# daemon keeps serving; a new discod n1 starts and reports the VM as never
# started there, and nothing was restarted.
#   discod_killed_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/discod-lib.sh"
dl_init "$1"
DL_NODE=n0 # several daemons on this machine: the one disco asks
{
	dl_cluster 2
	echo "vms:"
	dl_vm k "n0: 1, n1: 1" "$(dl_port_block 2)"
} >"$dl_tmp/cluster.yaml"
dl_daemon n0
dl_daemon n1

fail() { dl_fail "$@"; }

dl_disco vm start k || fail "disco vm start k exited $?"
qemu1=$(sed -n 's/.*vm k: qemu pid \([0-9]*\) started.*/\1/p' "$dl_tmp/discod-n1.log" | tail -n 1)
[ -n "$qemu1" ] && kill -0 "$qemu1" || fail "no QEMU of k runs on n1"

kill -KILL "${dl_pid[n1]}"
wait "${dl_pid[n1]}" 2>/dev/null || true
unset 'dl_pid[n1]'
t0=$SECONDS
while kill -0 "$qemu1" 2>/dev/null; do
	[ $((SECONDS - t0)) -lt 10 ] || fail "n1's QEMU $qemu1 still runs 10 s after its daemon was killed"
	sleep 0.2
done
echo "n1's QEMU ended $((SECONDS - t0)) s after its daemon was killed"
until [[ "$(dl_vm_line k n0)" =~ failed ]]; do
	[ $((SECONDS - t0)) -lt 60 ] || fail "k did not stop on n0 within 60 s of n1's daemon dying"
	sleep 1
done
set +e
status=$(dl_disco status 2>&1)
rc=$?
set -e
echo "$status"
[ $rc -eq 3 ] || fail "disco status exited $rc with n1's daemon down (want 3)"
grep -qE "^n1 +DOWN .*discod n1 \(127.0.0.1:[0-9]+\) is not reachable" <<<"$status" ||
	fail "status does not show n1's daemon down, named"
grep -qE "^n0 +up" <<<"$status" || fail "n0's daemon does not serve"
grep -q "node n1 lost" <<<"$(dl_vm_line k n0)" || fail "k's stop on n0 does not name n1"

echo "== a new discod n1"
dl_daemon n1
status=$(dl_disco status) || fail "disco status exited $? with both daemons up again"
grep -qE "^n1 +up .* - *$|^n1 +up +127.0.0.1:[0-9]+ +[0-9]+s +-" <<<"$status" ||
	{ echo "$status"; fail "the new discod n1 reports a VM (nothing should run or have been restarted)"; }
[ -z "$(pgrep -P "${dl_pid[n1]}" || true)" ] || fail "the new discod n1 started a QEMU"
echo "PASS: discod n1 killed: its QEMU ended, k stopped on n0 naming n1, status named the daemon down; nothing restarted"
