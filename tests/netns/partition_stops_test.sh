#!/usr/bin/env bash
# netns_partition_stops_cleanly: faults longer than the lost-peer timeout
# (peer_timeout_ms 3000 here) while the guest runs.
#  1. 4 nodes, the cluster split into halves n0+n1 / n2+n3 for 20 s: no
#     half may go on running the VM (no split brain), so every node must
#     exit non-zero, naming a node of the other half as lost, no sooner
#     than the timeout says and within it + 3 s of margin.
#  2. 2 nodes, n1's link down for 20 s: both stop the same way, naming the
#     other.
#  3. 2 nodes, n1 paused for 8 s: n0 stops the same way; n1 stops within
#     the margin once it runs again, naming n0.
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
		if ! grep -Eq "node (${lost[$n]}) lost" "$tmp/out/$n.log"; then
			# A node of its own side may stop first (its timer fired a
			# little earlier) and close its connections without Goodbye;
			# then this node names that one, which must name the other
			# side (docs/architecture.md, "Failures").
			local first
			first=$(sed -n 's/^disco [^:]*: node \([^ ]*\) lost (.*connection closed without Goodbye.*/\1/p' \
				"$tmp/out/$n.log" | head -n 1)
			[ -n "$first" ] && [ "${lost[$first]:-}" = "${lost[$n]}" ] &&
				grep -Eq "node (${lost[$n]}) lost" "$tmp/out/$first.log" ||
				fail "node $n's messages do not name a lost node of ${lost[$n]}"
			echo "node $n named $first, of its own side, which stopped first naming one of ${lost[$n]}"
		fi
		echo "node $n: exit $rc, $after s after the fault: $(grep -Eo "node (${lost[$n]}) lost \(.*\)" "$tmp/out/$n.log" | head -n 1)"
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
mv "$tmp/out" "$tmp/out-down"

# 3. n1 paused (SIGSTOP) for 8 s: n0 stops as in 2.; n1, once it runs
# again, sees its own loop stalled (no verdict on its peers from that),
# then n0's closed connection, and stops within the margin.
declare -A lost=([n0]='n1')
netns_cluster --quiet --timeout 1200 --run coherence --append disco.repeat_s=600 \
	--fault wait:2 --fault pause:n1:8
netns_nothing_left
[ $status -ne 0 ] || fail "netns-cluster exited 0 although n1 was paused longer than the timeout"
check_stops n0
pause_end=$(sed -n 's/^netns: fault +\([0-9.]*\) s: end pause:n1:8.*/\1/p' "$tmp/run.txt")
line=$(grep "^netns: node n1 exited " "$tmp/run.txt") || fail "no exit of node n1"
n1_at=$(sed -n 's/.* at +\([0-9.]*\) s.*/\1/p' <<<"$line")
[ -n "$pause_end" ] || fail "the pause did not end"
[ "$(sed -n 's/.* exited \([0-9]*\) .*/\1/p' <<<"$line")" -ne 0 ] || fail "n1 exited 0 after its peer left: $line"
awk -v a="$n1_at" -v e="$pause_end" -v m=$margin_s 'BEGIN { exit !(a >= e - 0.5 && a <= e + m) }' ||
	fail "n1 exited at +$n1_at s, not within $margin_s s after its pause ended (+$pause_end s)"
grep -q "loop stalled" "$tmp/out/n1.log" || fail "n1 did not notice its own stall"
grep -q "node n0 lost" "$tmp/out/n1.log" || fail "n1's messages do not name n0 as lost"
echo "node n1: exit after its pause, at +$n1_at s (the pause ended at +$pause_end s): $(grep -o "node n0 lost (.*)" "$tmp/out/n1.log" | head -n 1)"
echo "PASS: a partition into halves, a cut link and a pause, all longer than the ${timeout_s} s timeout: every node stopped within ${timeout_s} s + ${margin_s} s, naming the lost node"
