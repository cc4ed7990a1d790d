#!/usr/bin/env bash
# System test: the default guest's shell on a terminal, used as a person
# uses `make run`. scripts/run-vm.sh runs on a pseudo-terminal (script(1));
# the test types into it: a command (the shell answers), `reboot` (every
# node resets and the guest boots again to its shell), then `poweroff`.
# The runner must then end by itself, exit 0, report guest_exit=poweroff,
# and leave no process behind.
#   console_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-consoletest.XXXXXX)
spid=""
cleanup() {
	[ -z "$spid" ] || kill "$spid" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "---- terminal (last 40 lines) ----"; tr -d '\r' <"$tmp/typescript" | tail -n 40
	for n in n0 n1; do echo "---- $n.log ----"; cat "$tmp/out/$n.log" 2>/dev/null; done
	exit 1
}
ON_RESET=reset "$here/make-config.sh" "$build" 2 1 >"$tmp/cluster.yaml"
mkfifo "$tmp/keys"
# script(1) gives the runner a terminal; what is typed goes in through the fifo
script -q -f -e -c "'$root/scripts/run-vm.sh' --build '$build' --out '$tmp/out' '$tmp/cluster.yaml'" \
	"$tmp/typescript" <"$tmp/keys" >/dev/null 2>&1 &
spid=$!
exec 3>"$tmp/keys"

# wait until PATTERN has appeared COUNT times on the terminal
wait_for() {
	local pattern=$1 count=$2 deadline=$((SECONDS + $3))
	while [ "$(tr -d '\r' 2>/dev/null <"$tmp/typescript" | grep -c -- "$pattern")" -lt "$count" ]; do
		[ $SECONDS -lt $deadline ] || fail "no \"$pattern\" (x$count) on the terminal within $3 s"
		kill -0 "$spid" 2>/dev/null || fail "the runner ended while waiting for \"$pattern\""
		sleep 0.5
	done
}
type_line() { printf '%s\r' "$1" >&3; }
banner="poweroff (or exit) ends the VM"

wait_for "$banner" 1 600
sleep 1
type_line 'echo READY-$((6 * 7))'
wait_for "READY-42" 1 60
type_line reboot
wait_for "$banner" 2 600
sleep 1
type_line 'echo AGAIN-$((6 * 7))'
wait_for "AGAIN-42" 1 60
type_line poweroff
deadline=$((SECONDS + 120))
while kill -0 "$spid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
kill -0 "$spid" 2>/dev/null && fail "the VM still runs 120 s after poweroff was typed"
set +e
wait "$spid"
status=$?
set -e
spid=""
exec 3>&-
summary=$(tr -d '\r' <"$tmp/typescript" | grep "^vm=" | tail -n 1)
[ $status -eq 0 ] || fail "run-vm exited $status after poweroff"
[ "$summary" = "vm=sys nodes=2 vcpus=2 guest_exit=poweroff coherence=not-run" ] ||
	fail "unexpected summary: $summary"
grep -q "guest reset 1 (guest-reset" "$tmp/out/n1.log" || fail "n1 did not take part in the reset of the reboot"
sleep 1
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }
for p in $(pgrep -f "$tmp/" || true); do
	! alive "$p" || fail "process left behind: $(ps -o pid=,stat=,args= -p "$p")"
done
echo "$summary"
echo "PASS: typed on the guest console: reboot booted the guest again on both nodes, poweroff ended the VM"
