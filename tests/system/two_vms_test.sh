#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# system_two_vms_one_cluster: three discod daemons on this machine (n0, n1,
# n2, each with its own ports) and two VMs that share n1: "a" on n0+n1 and
# "b" on n1+n2, each at its own session ports (vms[].port).
#   1. `disco vm start` of both at once (two CLIs in parallel); `disco
#      status` shows both running, with their vCPUs on their nodes;
#   2. a's guest, booted to its shell, runs disco-coherence through `disco vm
#      console a` (stdin not a terminal) and passes, while b's guest runs
#      disco-coherence (long: -t) from its command line;
#   3. kill -9 of a's QEMU on n1: a stops on n0 too, and `disco status`
#      shows a failed with the node named (n1), while b goes on: it is still
#      running after a stopped, then passes disco-coherence and powers off;
#   4. the three daemons still serve (status: 3 daemons up).
#   two_vms_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/discod-lib.sh"
dl_init "$1"
DL_NODE=n1 # several daemons on this machine: disco asks the shared node's
porta=$(dl_port_block 2)
portb=$(dl_port_block 2)
{
	dl_cluster 3
	echo "vms:"
	dl_vm a "n0: 1, n1: 1" "$porta"
	dl_vm b "n1: 1, n2: 1" "$portb"
} >"$dl_tmp/cluster.yaml"
for n in n0 n1 n2; do dl_daemon $n; done

fail() { dl_fail "$@"; }
# wait_for SECONDS DESCRIPTION COMMAND...: until COMMAND succeeds
wait_for() {
	local limit=$1 what=$2 t0=$SECONDS
	shift 2
	until "$@"; do
		[ $((SECONDS - t0)) -lt "$limit" ] || fail "no $what after ${limit}s"
		sleep 1
	done
}
console_has() { tr -d '\r' <"$dl_run/$1/$2/console.log" 2>/dev/null | grep -q -- "$3"; }

echo "== both VMs started at once"
t0=$SECONDS
dl_disco vm start a >"$dl_tmp/start-a.txt" 2>&1 &
start_a=$!
dl_disco vm start b --append "disco.run=coherence disco.args.coherence=-t:20000" \
	>"$dl_tmp/start-b.txt" 2>&1 &
start_b=$!
wait $start_a || fail "disco vm start a: $(cat "$dl_tmp/start-a.txt")"
wait $start_b || fail "disco vm start b: $(cat "$dl_tmp/start-b.txt")"
echo "started in $((SECONDS - t0)) s: $(cat "$dl_tmp/start-a.txt") / $(cat "$dl_tmp/start-b.txt")"
status=$(dl_disco status) || fail "disco status exited $? with both VMs running"
echo "$status"
grep -qE "^n1 +up .*a\(running\).*b\(running\)|^n1 +up .*b\(running\).*a\(running\)" <<<"$status" ||
	fail "status does not show a and b running on n1"
[[ "$(dl_vm_line a n0)" =~ running.*0-0 ]] || fail "a's vCPU 0 is not shown running on n0"
[[ "$(dl_vm_line a n1)" =~ running.*1-1 ]] || fail "a's vCPU 1 is not shown running on n1"
[[ "$(dl_vm_line b n1)" =~ running.*0-0 ]] || fail "b's vCPU 0 is not shown running on n1"
[[ "$(dl_vm_line b n2)" =~ running.*1-1 ]] || fail "b's vCPU 1 is not shown running on n2"

echo "== a's shell runs disco-coherence through disco vm console"
wait_for 600 "shell prompt on a's console" console_has n0 a "Enter 'help' for a list"
echo 'disco-coherence && echo "coherence-ok-$((6 * 7))"' |
	dl_disco vm console a --linger 1 >"$dl_tmp/console-a.txt" 2>&1 || fail "disco vm console a exited $?"
wait_for 900 "coherence PASS on a" console_has n0 a "coherence-ok-42"
echo "a: disco-coherence passed at $((SECONDS - t0)) s"
[[ "$(dl_vm_line b n1)" =~ running ]] || fail "b is not running while a ran its check"

echo "== kill -9 of a's QEMU on n1"
pid=$(sed -n 's/.*vm a: qemu pid \([0-9]*\) started.*/\1/p' "$dl_tmp/discod-n1.log" | tail -n 1)
[ -n "$pid" ] || fail "discod n1 logged no QEMU pid for a"
kill -KILL "$pid"
killed=$SECONDS
stopped_on_n0() { [[ "$(dl_vm_line a n0)" =~ failed|stopped ]]; }
wait_for 60 "stop of a on n0 after its n1 was killed" stopped_on_n0
echo "a stopped on n0 $((SECONDS - killed)) s after the kill"
status=$(dl_disco status) || true
echo "$status"
a_n1=$(awk '/^vm a:/ { on = 1 } /^vm b:/ { on = 0 } on' <<<"$status")
grep -qE "^vm a: failed" <<<"$a_n1" || fail "status does not show vm a failed"
grep -qE "n1 .*failed" <<<"$a_n1" || fail "a's QEMU on n1 is not shown failed"
grep -qE "signal 9|SIGKILL|Killed" <<<"$a_n1" || fail "a's failure on n1 does not say it was killed"
grep -A1 -E "^ +n0 " <<<"$a_n1" | grep -q "n1" || fail "a's stop on n0 does not name n1"
[[ "$(dl_vm_line b n1)" =~ running ]] || fail "b stopped with a"
[[ "$(dl_vm_line b n2)" =~ running ]] || fail "b stopped on n2 with a"

echo "== b goes on and passes"
wait_for 1200 "coherence result on b" console_has n1 b "disco-guest: result="
console_has n1 b "disco-guest: coherence PASS" || fail "b's disco-coherence did not pass"
console_has n1 b "disco-guest: result=pass" || fail "b's guest did not report result=pass"
b_down() { [[ "$(dl_vm_line b n2)" =~ stopped ]] && [[ "$(dl_vm_line b n1)" =~ stopped ]]; }
wait_for 120 "b powered off on n1 and n2" b_down
status=$(dl_disco status) || fail "disco status exited $? after b powered off (a daemon down?)"
grep -q "3 daemons up" <<<"$status" || fail "the daemons do not all serve after the VMs ended"
grep -q "powered off" <<<"$(awk '/^vm b:/ { on = 1 } on' <<<"$status")" ||
	fail "b's end is not shown as a power-off"
echo "$status"
echo "PASS: two VMs on one cluster; a killed on n1 stopped a only (named), b passed"
