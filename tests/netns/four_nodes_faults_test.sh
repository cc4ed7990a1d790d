#!/usr/bin/env bash
# netns_4_nodes_faults: the default guest across 4 nodes in 4 network
# namespaces runs coherence again and again (disco.repeat_s) while, once
# it runs, n1's link goes down for 1 s and then n2 is paused (SIGSTOP of
# its disco-node and QEMU) for 1 s; both are shorter than the lost-peer
# timeout (peer_timeout_ms 3000), so the guest must only stall: every
# round passes, the guest powers off, every node exits 0. The cut must
# really have dropped frames, and both faults must have ended while the
# guest still ran.
#   four_nodes_faults_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/common.sh"
netns_test_init "$1" netns_4_nodes_faults
netns_config 4 512M
netns_cluster --quiet --timeout 1200 --run coherence --append disco.repeat_s=40 \
	--fault wait:2 --fault down:n1:1 --fault wait:3 --fault pause:n2:1
netns_nothing_left
grep "^netns: fault\|^netns: node" "$tmp/run.txt" || true
[ $status -eq 0 ] || fail "netns-cluster exited $status (a node failed, or a guest check)"
console=$(tr -d '\r' <"$tmp/out/console.log")
rounds=$(sed -n 's/.*disco-guest: rounds=\([0-9]*\).*/\1/p' <<<"$console")
[ -n "$rounds" ] || fail "the guest did not finish its rounds"
passes=$(grep -c "disco-guest: coherence PASS" <<<"$console" || true)
[ "$passes" -eq "$rounds" ] || fail "$passes coherence passes in $rounds rounds"
! grep -q "disco-guest: coherence FAIL" <<<"$console" || fail "a coherence round failed"
grep -q "disco-guest: result=pass" <<<"$console" || fail "no result=pass from the guest"
grep -q "guest_exit=poweroff" "$tmp/run.txt" || fail "the guest did not power off cleanly"
down=$(grep "^netns: fault .*: end down:n1:1 " "$tmp/run.txt") || fail "the link-down fault did not end"
dropped=$(sed -n 's/.* dropped=\([0-9]*\).*/\1/p' <<<"$down")
[ "$dropped" -gt 0 ] || fail "cutting n1's link dropped no frame"
pause_end=$(sed -n 's/^netns: fault +\([0-9.]*\) s: end pause:n2:1.*/\1/p' "$tmp/run.txt")
[ -n "$pause_end" ] || fail "the pause did not end"
while read -r node at; do
	awk -v a="$at" -v b="$pause_end" 'BEGIN { exit !(a > b) }' ||
		fail "node $node exited at +$at s, before the pause ended (+$pause_end s): the guest did not run through the faults"
done < <(sed -n 's/^netns: node \(n[0-9]*\) exited [0-9]* at +\([0-9.]*\) s.*/\1 \2/p' "$tmp/run.txt")
echo "PASS: 4 nodes in namespaces: n1's link down 1 s ($dropped frames cut), n2 paused 1 s: $rounds coherence rounds passed"
