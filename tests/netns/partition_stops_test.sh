#!/usr/bin/env bash
# netns_partition_stops_cleanly: faults longer than the lost-peer timeout
# (peer_timeout_ms 3000 here) while the guest runs.
#  1. 4 nodes, the cluster split into halves n0+n1 / n2+n3 for 20 s: no
#     half may go on running the VM (no split brain), so every node must
#     exit non-zero, naming a node of the other half as lost, no sooner
#     than the timeout says and within it + 3 s of margin.
#  2. 2 nodes, n1's link down for 20 s: both stop the same way, naming the
#     other.
# Then no namespace and no process of the run may be left.
#   partition_stops_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/common.sh"
netns_test_init "$1" netns_partition_stops_cleanly
timeout_s=3 margin_s=3

# check_stops NODE... : each node exited non-zero, between timeout - 0.5 s
# and timeout + margin after the fault began, naming a lost node of those
# given for it in lost[NODE] (a regex).
check_stops() {
	local n line rc after
	for n in "$@"; do
		line=$(grep "^netns: node $n exited " "$tmp/run.txt") || fail "no exit of node $n"
		rc=$(sed -n 's/.* exited \([0-9]*\) .*/\1/p' <<<"$line")
		after=$(sed -n 's/.*(\([0-9.]*\) s after the last fault began).*/\1/p' <<<"$line")
		[ "$rc" -ne 0 ] || fail "node $n exited 0 after losing its peers: $line"
		[ -n "$after" ] || fail "node $n exited before the fault began: $line"
		awk -v a="$after" -v t=$timeout_s 'BEGIN { exit !(a >= t - 0.5) }' ||
			fail "node $n stopped $after s after the fault began, before the $timeout_s s timeout"
		awk -v a="$after" -v t=$timeout_s -v m=$margin_s 'BEGIN { exit !(a <= t + m) }' ||
			fail "node $n stopped $after s after the fault began, later than $timeout_s s + $margin_s s"
		grep -Eq "node (${lost[$n]}) lost" "$tmp/out/$n.log" ||
			fail "node $n's messages do not name a lost node of ${lost[$n]}"
		echo "node $n: exit $rc, $after s after the fault: $(grep -Eo "node (${lost[$n]}) lost[^:]*" "$tmp/out/$n.log" | head -n 1)"
	done
}

# 1. halves
declare -A lost=([n0]='n2|n3' [n1]='n2|n3' [n2]='n0|n1' [n3]='n0|n1')
netns_config 4 512M
netns_cluster --quiet --timeout 1200 --run coherence --append disco.repeat_s=600 \
	--fault wait:2 --fault partition:n0+n1/n2+n3:20
netns_nothing_left
[ $status -ne 0 ] || fail "netns-cluster exited 0 although the cluster was split"
grep -q "^netns: fault .*: start partition" "$tmp/run.txt" || fail "the partition never began"
check_stops n0 n1 n2 n3
! grep -q "disco-guest: result=" "$tmp/out/console.log" || fail "the guest finished although it was cut"
mv "$tmp/out" "$tmp/out-halves"

# 2. one node's link
declare -A lost=([n0]='n1' [n1]='n0')
netns_config 2 256M
netns_cluster --quiet --timeout 1200 --run coherence --append disco.repeat_s=600 \
	--fault wait:2 --fault down:n1:20
netns_nothing_left
[ $status -ne 0 ] || fail "netns-cluster exited 0 although n1 was cut off"
check_stops n0 n1
echo "PASS: a partition into halves and a cut link, both longer than the ${timeout_s} s timeout: every node stopped within ${timeout_s} s + ${margin_s} s, naming the lost node"
