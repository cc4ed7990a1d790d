#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# System test: boots the default guest across NODES node processes (VCPUS
# vCPUs each) on this machine and checks that every vCPU came online, that
# every guest program in RUN passed, that the guest powered off and that
# every node process exited 0.
#   vm_test.sh BUILD NODES VCPUS RUN [MEM] [dsm line] [-- guest args NAME=A:B ...]
# Environment: what make-config.sh reads (e.g. NODE_MEMORY), and VM_TEST_OUT:
# keep the run's logs and statistics in this folder (default: removed).
set -euo pipefail
build=$(realpath "$1") nodes=$2 vcpus=$3 run=$4 mem=${5:-256M} dsm_extra=${6:-}
shift $(( $# < 6 ? $# : 6 ))
[ "${1:-}" != -- ] || shift
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-systest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
out=${VM_TEST_OUT:-$tmp/out}

"$here/make-config.sh" "$build" "$nodes" "$vcpus" "$mem" "$dsm_extra" >"$tmp/cluster.yaml"
cp "$root/cluster-config/examples/local.key" "$tmp/" 2>/dev/null || true
guest_args=()
for a in "$@"; do guest_args+=(--args "$a"); done
set +e
"$root/scripts/run-vm.sh" --build "$build" --out "$out" --quiet --timeout 1200 \
	--run "$run" "${guest_args[@]}" "$tmp/cluster.yaml" >"$tmp/run.txt" 2>&1
status=$?
set -e
fail() {
	echo "FAIL: $*"
	echo "---- run-vm output ----"; cat "$tmp/run.txt"
	echo "---- guest console (last 60 lines) ----"; tail -n 60 "$out/console.log" 2>/dev/null
	exit 1
}
summary=$(tail -n 1 "$tmp/run.txt")
echo "$summary"
[ $status -eq 0 ] || fail "run-vm exited $status"
total=$((nodes * vcpus))
grep -q "disco-guest: cpus_online=$total " "$out/console.log" ||
	fail "the guest does not see $total vCPUs online"
# each node's vCPUs and memory form one guest NUMA node (SRAT)
grep -q "disco-guest: cpus_online=$total numa_nodes=$nodes " "$out/console.log" ||
	fail "the guest does not see $nodes NUMA nodes"
tr -d '\r' <"$out/console.log" | grep -q "disco-guest: kernel_warnings=0$" ||
	fail "the guest kernel warned during boot (dmesg WARNING)"
# numa_distance auto: the master measured the distance to each node and the
# guest's SLIT says the same (node 0 is the master's guest node here).
if [ "$nodes" -ge 2 ]; then
	d=$(sed -n 's/.*numa distance n0-n1: \([0-9]*\) .*/\1/p' "$out/n0.log" | head -n 1)
	[ -n "$d" ] || fail "the master logged no measured numa distance to n1"
	grep -q "disco-guest: node0_distance=10 $d\b" "$out/console.log" ||
		fail "the guest's SLIT does not carry the measured distance $d"
fi
for p in ${run//,/ }; do
	grep -q "disco-guest: $p PASS" "$out/console.log" || fail "guest program $p did not pass"
done
grep -q "disco-guest: result=pass" "$out/console.log" || fail "no result=pass from the guest"
[[ "$summary" == *"guest_exit=poweroff"* ]] || fail "the guest did not power off cleanly"
grep -h "disco-guest:" "$out/console.log"
echo "PASS: $nodes nodes x $vcpus vCPUs: $run"
