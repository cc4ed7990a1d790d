#!/usr/bin/env bash
# netns_2_nodes_coherence: the default guest across 2 nodes in 2 network
# namespaces, every link delaying what its node sends by 200 us +- 50 us
# and dropping 1% of it, runs coherence, smc and memtest to PASS. The
# delay is measured with ping first (a round trip crosses two links: at
# least 2 x 150 us), and the loss by the loss rules' counters.
# The nodes' TCP runs with rto_min 5 ms, as on a tuned data-centre host
# (docs/architecture.md, "What a rack needs"): with Linux's default 200 ms
# a lost frame of a page exchange stalls its vCPU for at least 200 ms
# (coherence passed that way too, in 479 s against 373 s with 5 ms, both
# on a loaded host: docs/benchmarks.md, "Nodes in network namespaces").
#   two_nodes_coherence_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/common.sh"
netns_test_init "$1" netns_2_nodes_coherence
netns_config 2 256M
run=coherence,smc,memtest
# Every section of each program, with fewer rounds than their defaults: a
# remote fault costs ~10 x more here than over loopback (coherence with its
# defaults took 373 s on a loaded host).
netns_cluster --quiet --timeout 800 --link delay=200us,jitter=50us,loss=1%,rto_min=5ms --ping 50 --run $run \
	--args coherence=-r:2000:-p:200 --args smc=400 --args memtest=16
netns_nothing_left
ping=$(grep "^netns: ping " "$tmp/run.txt") || fail "no ping line"
echo "$ping"
rtt_min=$(sed -n 's/.* min=\([0-9]*\) .*/\1/p' <<<"$ping")
rtt_avg=$(sed -n 's/.* avg=\([0-9]*\) .*/\1/p' <<<"$ping")
[ -n "$rtt_min" ] && [ "$rtt_min" -ge 300 ] ||
	fail "ping's shortest round trip ${rtt_min:-?} us is below the 2 x 150 us the links add"
[ "$rtt_avg" -ge 400 ] || fail "ping's mean round trip $rtt_avg us is below the 2 x 200 us the links add"
[ $status -eq 0 ] || fail "netns-cluster exited $status"
for p in ${run//,/ }; do
	grep -q "disco-guest: $p PASS" "$tmp/out/console.log" || fail "guest program $p did not pass"
done
grep -q "disco-guest: result=pass" "$tmp/out/console.log" || fail "no result=pass from the guest"
grep -q "guest_exit=poweroff" "$tmp/run.txt" || fail "the guest did not power off cleanly"
net=$(grep "^netns: network:" "$tmp/run.txt") || fail "no network counters"
echo "$net"
dropped=$(sed -n 's/.* loss_dropped=\([0-9]*\).*/\1/p' <<<"$net")
[ "$dropped" -gt 0 ] || fail "the loss rules dropped nothing"
grep -h "disco-guest: .*PASS\|time_s=" "$tmp/out/console.log" | tr -d '\r'
echo "PASS: 2 nodes in namespaces, 200+-50 us per link (ping avg $rtt_avg us), 1% loss ($dropped frames): $run"
