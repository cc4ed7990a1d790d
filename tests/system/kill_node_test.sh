#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# System test: SIGKILL of a non-master node process while the guest runs.
# The other nodes must stop within 10 s with a message naming the lost
# node, exit non-zero, and leave no process behind (no hang).
#   kill_node_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/disco-killtest.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for f in "$tmp"/*.log; do echo "---- $f"; tail -n 30 "$f"; done
	exit 1
}

"$here/make-config.sh" "$build" 3 1 >"$tmp/cluster.yaml"
node=$build/node-monitor/disco-node
# The guest spins on a shared lock for a long time, so pages keep moving.
append="disco.run=spinlock disco.args.spinlock=600"
for n in n1 n2; do
	"$node" --config "$tmp/cluster.yaml" --node $n --console null --append "$append" \
		>"$tmp/$n.log" 2>&1 </dev/null &
	pids+=($!)
done
"$node" --config "$tmp/cluster.yaml" --node n0 --console stdio --append "$append" \
	>"$tmp/console.log" 2>"$tmp/n0.log" </dev/null &
pids+=($!)
n0=${pids[2]} n1=${pids[0]} n2=${pids[1]}

# Wait until the guest runs its program on every vCPU.
for ((i = 0; i < 600; i++)); do
	grep -q "spinlock: " "$tmp/console.log" 2>/dev/null && break
	kill -0 "$n0" 2>/dev/null || fail "the master exited before the guest program started"
	sleep 0.5
done
grep -q "spinlock: " "$tmp/console.log" || fail "the guest program did not start within 300 s"
sleep 2

qemu_n1=$(pgrep -P "$n1" || true)
kill -KILL "$n1"
killed_at=$SECONDS
for p in "$n0" "$n2"; do
	while kill -0 "$p" 2>/dev/null && [ $((SECONDS - killed_at)) -le 10 ]; do sleep 0.1; done
	kill -0 "$p" 2>/dev/null && fail "node process $p still runs 10 s after n1 was killed"
	set +e; wait "$p"; rc=$?; set -e
	[ $rc -ne 0 ] || fail "node process $p exited 0 after losing n1"
done
took=$((SECONDS - killed_at))
for n in n0 n2; do
	grep -q "node n1 lost" "$tmp/$n.log" || fail "$n's messages do not name the lost node n1"
done
sleep 1
# A process that ended but was not reaped yet (its parent died, and this
# sandbox's init reaps late) is a zombie: gone, not left behind.
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }
[ -z "$qemu_n1" ] || ! alive "$qemu_n1" || fail "n1's QEMU (pid $qemu_n1) survived its disco-node"
for p in $(pgrep -f "$tmp/cluster.yaml" || true); do
	! alive "$p" || fail "process left behind: $(ps -o pid=,stat=,args= -p "$p")"
done
grep -h "lost" "$tmp/n0.log" "$tmp/n2.log"
echo "PASS: n0 and n2 stopped ${took}s after n1 was killed, naming it"
