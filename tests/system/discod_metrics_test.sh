#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# discod_metrics_promtool: two discod daemons, one VM across them started
# with `disco vm start` (its guest runs disco-coherence and powers off).
# While it runs, each daemon's /metrics is scraped twice, some seconds
# apart; both scrapes must pass `promtool check metrics` (Debian's
# prometheus package), carry the VM's series with the node and vm labels
# (state running, vCPUs, the fault latency histogram, pages, the session
# peer up), the other daemon seen up, and the VM's fault counters must grow
# between the two scrapes on both nodes. `disco stats --watch` prints the
# VM's rates twice. After the guest powers off, the metrics show the VM stopped.
#   discod_metrics_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/discod-lib.sh"
dl_init "$1"
DL_NODE=n0 # several daemons on this machine: the one disco asks
command -v promtool >/dev/null || { echo "FAIL: promtool not found: run scripts/setup.sh"; exit 1; }
{
	dl_cluster 2
	echo "vms:"
	dl_vm m "n0: 1, n1: 1" "$(dl_port_block 2)"
} >"$dl_tmp/cluster.yaml"
dl_daemon n0
dl_daemon n1

fail() { dl_fail "$@"; }
scrape() { # NODE OUT
	/usr/bin/python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
		"$(dl_metrics_url "$1")" >"$2" || fail "GET $(dl_metrics_url "$1") failed"
}
faults() { # FILE NODE: the VM's faults of every kind, summed
	awk -v node="$2" 'index($0, "disco_faults_total{node=\"" node "\",vm=\"m\"") == 1 { s += $2 }
		END { print s + 0 }' "$1"
}
check() { # FILE NODE PEER
	promtool check metrics <"$1" >"$1.promtool" 2>&1 ||
		{ cat "$1.promtool"; fail "promtool check metrics rejects $2's /metrics"; }
	for want in "disco_daemon_up{node=\"$2\"} 1" \
		"disco_daemon_peer_up{node=\"$2\",peer=\"$3\"} " \
		"disco_vm_vcpus{node=\"$2\",vm=\"m\"} 1" \
		"disco_peer_up{node=\"$2\",vm=\"m\",peer=\"$3\"} 1" \
		"disco_fault_latency_seconds_count{node=\"$2\",vm=\"m\"}" \
		"disco_pages{node=\"$2\",vm=\"m\",kind=\"homed\"}" \
		"disco_peer_bytes_total{node=\"$2\",vm=\"m\",peer=\"$3\",direction=\"sent\"}" \
		"disco_policy_actions_total{node=\"$2\",vm=\"m\"" \
		"# TYPE disco_fault_latency_seconds histogram"; do
		grep -qF -- "$want" "$1" || fail "$2's /metrics lacks: $want"
	done
	grep -qE "^disco_vm_state\{node=\"$2\",vm=\"m\",state=\"(running|starting)\"\} 1$" "$1" ||
		fail "$2's /metrics does not show m running"
}

dl_disco vm start m --append "disco.run=coherence disco.args.coherence=-t:3000" ||
	fail "disco vm start m exited $?"
t0=$SECONDS
scrape n0 "$dl_tmp/n0.1"
scrape n1 "$dl_tmp/n1.1"
sleep 8
scrape n0 "$dl_tmp/n0.2"
scrape n1 "$dl_tmp/n1.2"
for n in n0 n1; do
	peer=$([ $n = n0 ] && echo n1 || echo n0)
	check "$dl_tmp/$n.1" $n $peer
	check "$dl_tmp/$n.2" $n $peer
	# the other daemon is pinged every 5 s: seen up by the second scrape
	grep -qF "disco_daemon_peer_up{node=\"$n\",peer=\"$peer\"} 1" "$dl_tmp/$n.2" ||
		fail "$n's /metrics does not show discod $peer up"
	f1=$(faults "$dl_tmp/$n.1" $n) f2=$(faults "$dl_tmp/$n.2" $n)
	echo "$n: $(grep -c '^disco_' "$dl_tmp/$n.2") samples, promtool clean; faults of m $f1 -> $f2"
	[ "$f2" -gt "$f1" ] || fail "m's fault counters on $n did not grow between two scrapes 8 s apart ($f1 -> $f2)"
done
dl_disco stats --watch --interval 1 --count 2 >"$dl_tmp/stats.txt" 2>&1 ||
	fail "disco stats --watch exited $?: $(cat "$dl_tmp/stats.txt")"
[ "$(grep -cE '^m +n1 ' "$dl_tmp/stats.txt")" -eq 2 ] ||
	{ cat "$dl_tmp/stats.txt"; fail "disco stats --watch --count 2 did not show m on n1 twice"; }
cat "$dl_tmp/stats.txt"

# The guest passes and powers off; the VM is then stopped in the metrics.
until grep -q "disco-guest: result=" "$dl_run/n0/m/console.log" 2>/dev/null; do
	[ $((SECONDS - t0)) -lt 1200 ] || fail "the guest reported no result in 1200 s"
	sleep 2
done
grep -q "disco-guest: result=pass" "$dl_run/n0/m/console.log" || fail "the guest's coherence check failed"
for _ in $(seq 1 60); do
	scrape n1 "$dl_tmp/n1.3"
	grep -q 'disco_vm_state{node="n1",vm="m",state="stopped"} 1' "$dl_tmp/n1.3" && break
	sleep 1
done
grep -q 'disco_vm_state{node="n1",vm="m",state="stopped"} 1' "$dl_tmp/n1.3" ||
	fail "n1's /metrics does not show m stopped after the guest powered off"
promtool check metrics <"$dl_tmp/n1.3" >/dev/null 2>&1 || fail "promtool rejects /metrics after the stop"
echo "PASS: /metrics of both daemons parse with promtool, m's faults grow, m stopped after power-off"
