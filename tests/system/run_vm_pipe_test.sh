#!/usr/bin/env bash
# System test: scripts/run-vm.sh as a script calls it, with its output in
# a pipe (`out=$(make run)`, `make run | tee log`). The pipe must end when
# the runner does (nothing it started may keep the pipe open: a `tail -F`
# of the console once did, following the deleted log forever), the runner
# must report the guest's power-off, and no process it started may be
# left afterwards.
#   run_vm_pipe_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-pipetest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; echo "---- output ----"; cat "$tmp/pipe.txt" 2>/dev/null | tail -n 40; exit 1; }

"$here/make-config.sh" "$build" 2 1 >"$tmp/cluster.yaml"
start=$SECONDS
set +e
# the console is copied to stdout (no --quiet): that is what leaked
timeout 600 bash -c '"$1" --build "$2" --out "$3/out" --run none "$3/cluster.yaml" 2>&1 | cat >"$3/pipe.txt"' \
	_ "$root/scripts/run-vm.sh" "$build" "$tmp"
status=$?
set -e
[ $status -ne 124 ] || fail "the pipe did not end within 600 s (something the runner started holds it)"
[ $status -eq 0 ] || fail "run-vm | cat exited $status"
summary=$(tail -n 1 "$tmp/pipe.txt")
[ "$summary" = "vm=sys nodes=2 vcpus=2 guest_exit=poweroff coherence=not-run" ] ||
	fail "unexpected summary: $summary"
grep -q "disco-guest: result=pass" "$tmp/pipe.txt" || fail "the console did not reach the pipe"
sleep 1
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }
for p in $(pgrep -f "$tmp/" || true); do
	! alive "$p" || fail "process left behind: $(ps -o pid=,stat=,args= -p "$p")"
done
echo "$summary"
echo "PASS: run-vm.sh through a pipe returned after $((SECONDS - start)) s and left no process"
