#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# dsm_over_rdma.sh: runs INSIDE the Soft-RoCE test VM (tests/rdma/README.md)
# and drives the DSM over the RDMA transport on rxe0 (10.0.2.15, GID 1):
#   dsm_over_rdma.sh transport BUILD  the transport test program over rdma
#   dsm_over_rdma.sh stress BUILD     disco-dsm-stress, 3 processes
#   dsm_over_rdma.sh one_sided BUILD  the same on memfd backing, where pages
#                                     travel by RDMA READ: checks that reads
#                                     served pages (needs Linux >= 6.4 in the
#                                     VM for UFFDIO_CONTINUE_MODE_WP)
#   dsm_over_rdma.sh kill BUILD       3 stress members, one killed with -9:
#                                     the other two report it failed and exit
#                                     (at the latest after peer_timeout_ms,
#                                     5000; a fault in flight to it times out
#                                     after fault_timeout_ms, 6000, which must
#                                     exceed peer_timeout_ms + heartbeat_ms)
#   dsm_over_rdma.sh bench BUILD      disco-dsm-bench over rdma and tcp, one run
# Exit 0 when the step passed; its output says what it checked.
set -uo pipefail
mode=$1 build=$(realpath "$2")
dev=rxe0 ip=10.0.2.15 gid=1
net=(--transport rdma --rdma-device "$dev" --address "$ip" --rdma-gid-index "$gid")
[ -e /dev/infiniband/uverbs0 ] || {
	echo "dsm_over_rdma: FAIL: no /dev/infiniband/uverbs0: run it with scripts/run-in-rdma-testvm.sh"
	exit 1
}
ulimit -l unlimited

fail() {
	echo "dsm_over_rdma: FAIL: $*"
	exit 1
}

# stress_3 [OPTIONS]: disco-dsm-stress, 3 processes over rdma; its output
# in $out; fails unless it passed.
stress_3() {
	out=$("$build/dsm/disco-dsm-stress" --processes 3 --threads 2 --iterations 1500 "${net[@]}" \
		"$@" 2>&1)
	local rc=$?
	echo "$out" | grep -v ": info: "
	[ $rc -eq 0 ] || fail "disco-dsm-stress $* exited $rc"
	echo "$out" | tail -n 1 | grep -q '^stress: processes=3 .* result=PASS$' ||
		fail "no PASS summary line"
}

case $mode in
transport)
	DISCO_TEST_TRANSPORT=rdma DISCO_TEST_ADDRESS=$ip DISCO_TEST_RDMA_DEVICE=$dev \
		DISCO_TEST_RDMA_GID=$gid DISCO_TEST_TIME_SCALE=4 "$build/tests/test_rpc_transport" ||
		fail "test_rpc_transport over rdma"
	;;
stress)
	stress_3
	grep -q "up over rdma" <<<"$out" || fail "the members did not connect over rdma"
	;;
one_sided)
	stress_3 --backing memfd
	grep -q "one-sided page reads on" <<<"$out" || fail "one-sided reads were not set up"
	reads=$(sed -n 's/^stress\[n[0-9]*\]:.* pages_read=\([0-9]*\).*/\1/p' <<<"$out" |
		awk '{ s += $1 } END { print s + 0 }')
	echo "dsm_over_rdma: pages read one-sided by the 3 members: $reads"
	[ "$reads" -gt 0 ] || fail "no page travelled by RDMA READ"
	;;
kill)
	# Members of a generated 3-node rdma cluster, started one by one so
	# that one can be killed: the stress tool writes its config and prints
	# nothing we need, so write one here.
	dir=$(mktemp -d)
	trap 'kill -9 $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
	(umask 077 && head -c 32 /dev/urandom >"$dir/k.key")
	{
		echo "cluster: {name: killtest, transport: rdma, auth: {key_file: k.key},"
		echo "          heartbeat_ms: 200, peer_timeout_ms: 5000, connect_timeout_ms: 60000}"
		echo "nodes:"
		for i in 0 1 2; do
			echo "  - {name: n$i, address: $ip, port: $((7600 + i)), rdma: {device: $dev, gid_index: $gid}}"
		done
		echo "vms:"
		echo "  - {name: dsm, memory: 64M, vcpus: 3, vcpu_placement: {n0: 1, n1: 1, n2: 1},"
		echo "     dsm: {placement: interleave, fault_timeout_ms: 6000}}"
	} >"$dir/c.yaml"
	for i in 0 1 2; do
		"$build/dsm/disco-dsm-stress" --config "$dir/c.yaml" --node n$i --threads 1 \
			--iterations 100000000 >"$dir/n$i.log" 2>&1 &
		eval "pid$i=$!"
	done
	for _ in $(seq 600); do
		[ "$(grep -c "session: node .* joined" "$dir/n0.log")" -ge 2 ] && break
		sleep 0.1
	done
	[ "$(grep -c "session: node .* joined" "$dir/n0.log")" -ge 2 ] || fail "the 3 members did not meet"
	sleep 2 # let them fault on each other
	kill -9 "$pid1"
	t0=$(date +%s%N)
	rc0=0 rc2=0
	timeout 60 tail --pid="$pid0" -f /dev/null
	wait "$pid0" || rc0=$?
	timeout 60 tail --pid="$pid2" -f /dev/null
	wait "$pid2" || rc2=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	for i in 0 2; do grep -v ": info: " "$dir/n$i.log" | sed "s/^/    n$i: /"; done
	[ $rc0 -ne 0 ] && [ $rc2 -ne 0 ] || fail "survivors exited $rc0 and $rc2; expected failures"
	# The transport must see the crash itself (not only the DSM's fault
	# timeout): each survivor logs n1 as failed, with the cause.
	for i in 0 2; do
		grep -q "peer failed: node n1 .*\(closed without Goodbye\|no frame\|queue pair\|completion\)" \
			"$dir/n$i.log" || fail "n$i does not report the lost node n1 as failed"
	done
	echo "dsm_over_rdma: ok: n0 and n2 exited (status $rc0, $rc2) ${ms} ms after n1 was killed, naming it"
	;;
bench)
	# memfd backing on both, so the rdma run's stable reads go one-sided
	out=$("$build/dsm/disco-dsm-bench" --transport both --rdma-device "$dev" --address "$ip" \
		--rdma-gid-index "$gid" --backing memfd --samples "${BENCH_SAMPLES:-400}" \
		--rounds "${BENCH_ROUNDS:-400}" 2>&1)
	rc=$?
	echo "$out" | grep -v ": info: "
	[ $rc -eq 0 ] || fail "disco-dsm-bench exited $rc"
	last=$(echo "$out" | tail -n 1)
	[[ $last =~ ^rdma_read_fault_p50_us=[0-9.]+\ tcp_read_fault_p50_us=[0-9.]+\ .*rdma_stable_read_p50_us=[0-9.]+\ .*read_fault_rdma_tcp_ratio=[0-9.]+$ ]] ||
		fail "unexpected summary line: $last"
	# the measuring node's stats, rdma run first: its stable reads were one-sided
	reads=$(sed -n 's/^bench\[n1\]: pages_read=\([0-9]*\)$/\1/p' <<<"$out" | head -n 1)
	[ "${reads:-0}" -gt 0 ] || fail "the rdma run read no page one-sided"
	;;
*)
	echo "usage: dsm_over_rdma.sh transport|stress|one_sided|kill|bench BUILD" >&2
	exit 2
	;;
esac
echo "dsm_over_rdma: $mode: PASS"
