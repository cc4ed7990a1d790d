#!/usr/bin/env bash
# netns_dsm_stress_lossy: disco-dsm-stress with one member in each of 4
# network namespaces, every link delaying (100 us +- 50 us), dropping 1%,
# reordering 5% and duplicating 1% of the frames a node sends. Every
# member must verify every counter, the locked record and every page
# exactly (result=PASS), and the network must really have dropped,
# reordered and duplicated frames (its counters, not the spec).
#   dsm_stress_lossy_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/common.sh"
netns_test_init "$1" netns_dsm_stress_lossy
netns_config 4 64M
netns_cluster --timeout 400 --link delay=100us,jitter=50us,loss=1%,reorder=5%,duplicate=1% \
	--exec -- "$build/dsm/disco-dsm-stress" --config @CONFIG@ --node @NODE@ --iterations 3000
netns_nothing_left
[ $status -eq 0 ] || fail "netns-cluster exited $status"
for n in n0 n1 n2 n3; do
	grep -q "^\[$n\] stress\[$n\]: .* result=PASS" "$tmp/run.txt" || fail "member $n did not pass"
done
net=$(grep "^netns: network:" "$tmp/run.txt") || fail "no network counters"
echo "$net"
num() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$net"; }
[ "$(num loss_dropped)" -gt 0 ] || fail "the loss rules dropped nothing"
[ "$(num reordered)" -gt 0 ] || fail "the delay line reordered nothing"
[ "$(num duplicated)" -gt 0 ] || fail "the delay line duplicated nothing"
grep -h "result=PASS" "$tmp/run.txt"
echo "PASS: 4 members in namespaces over a lossy, reordering, duplicating network: every count exact"
