#!/usr/bin/env bash
# Fault latency and boot time against the link's round trip: 2 nodes as 2
# hosts in network namespaces (scripts/netns-cluster.sh), every link
# delaying what its node sends by D us (no jitter, no loss), for each D.
# Needs root.
#
#   scripts/bench-netns.sh [BUILD] [DELAYS_US]   (defaults: build, "0 50 200 1000")
#
# For each D, in one run:
#   ping        mean round trip between the two namespaces (50 pings)
#   rtt         disco-dsm-bench's raw transport round trip, 64 B request /
#               4 KiB reply, p50
#   read        disco-dsm-bench's remote read fault p50 (a page from the
#               other node: one round trip of the protocol)
#   read - rtt  the software cost of a fault on top of the round trip,
#               which should stay constant while D grows
#   boot        the default guest across the 2 namespaces (1 vCPU each,
#               256 MiB, disco.run=none): kernel start to init (the guest's
#               /proc/uptime), and the wall time from start to power-off;
#               once with every vCPU started by the kernel at boot
#               (vms[].boot_vcpus: all, the default) and once with the
#               master's only (boot_vcpus: master, the init brings the
#               other online)
# A round trip A->B->A crosses both links, so it gains 2 x D.
# Prints a markdown table; the last line: "slope=<d read / d rtt>" (1.0:
# the fault costs one round trip plus a constant).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
delays=${2:-0 50 200 1000}
[ "$(id -u)" -eq 0 ] || { echo "bench-netns: needs root (network namespaces)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/disco-netnsbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
ADDRESSES="10.77.0.1 10.77.0.2" "$root/tests/system/make-config.sh" "$build" 2 1 256M >"$tmp/cluster.yaml"
BOOT_VCPUS=master ADDRESSES="10.77.0.1 10.77.0.2" "$root/tests/system/make-config.sh" "$build" 2 1 256M \
	>"$tmp/cluster-master.yaml"

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)"
echo "machine: $(nproc) CPUs, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| added delay per link (us) | ping rtt (us) | transport rtt p50 (us) | remote read fault p50 (us) | read - rtt (us) | boot: kernel to init (s) | boot: wall (s) | boot_vcpus master: kernel to init (s) | boot_vcpus master: wall (s) |"
echo "|---|---|---|---|---|---|---|---|---|"
points=()
for d in $delays; do
	link=()
	[ "$d" -eq 0 ] || link=(--link "delay=${d}us")
	"$root/scripts/netns-cluster.sh" --build "$build" "${link[@]}" --ping 50 --timeout 600 \
		"$tmp/cluster.yaml" --exec -- "$build/dsm/disco-dsm-bench" --config @CONFIG@ \
		--node @NODE@ --samples 1000 --rounds 1000 >"$tmp/bench-$d.txt" 2>&1 || {
		echo "bench-netns: the bench at $d us failed:" >&2
		tail -n 20 "$tmp/bench-$d.txt" >&2
		exit 1
	}
	ping=$(sed -n 's/^netns: ping .* avg=\([0-9]*\) .*/\1/p' "$tmp/bench-$d.txt")
	# the measuring member's summary: "bench[2 nodes]: read p50=.. p99=.. ... rtt p50=.. p99=.."
	line=$(grep -o 'bench\[2 nodes\]: read p50=.*' "$tmp/bench-$d.txt" | head -n 1)
	read_p50=$(sed -n 's/.* read p50=\([0-9.]*\) .*/\1/p' <<<"$line")
	rtt_p50=$(sed -n 's/.* rtt p50=\([0-9.]*\) .*/\1/p' <<<"$line")
	[ -n "$read_p50" ] && [ -n "$rtt_p50" ] || {
		echo "bench-netns: no figures from the bench at $d us:" >&2
		tail -n 20 "$tmp/bench-$d.txt" >&2
		exit 1
	}
	boots=""
	for conf in cluster cluster-master; do
		t0=$SECONDS
		"$root/scripts/netns-cluster.sh" --build "$build" "${link[@]}" --timeout 900 --quiet \
			--out "$tmp/$conf-$d" --run none "$tmp/$conf.yaml" >"$tmp/$conf-$d.txt" 2>&1 || {
			echo "bench-netns: the boot ($conf.yaml) at $d us failed:" >&2
			tail -n 20 "$tmp/$conf-$d.txt" >&2
			exit 1
		}
		wall=$((SECONDS - t0))
		boot=$(tr -d '\r' <"$tmp/$conf-$d/console.log" |
			sed -n 's/.*disco-guest: init_uptime_s=\([0-9.]*\).*/\1/p')
		boots+=" ${boot:-?} | $wall |"
	done
	sw=$(awk -v r="$read_p50" -v t="$rtt_p50" 'BEGIN { printf "%.1f", r - t }')
	echo "| $d | ${ping:-?} | $rtt_p50 | $read_p50 | $sw |$boots"
	points+=("$rtt_p50 $read_p50")
done
# least-squares slope of read p50 against rtt p50
printf '%s\n' "${points[@]}" | awk '
	{ x[NR] = $1; y[NR] = $2; sx += $1; sy += $2 }
	END {
		mx = sx / NR; my = sy / NR
		for (i = 1; i <= NR; i++) { num += (x[i] - mx) * (y[i] - my); den += (x[i] - mx) ^ 2 }
		if (den > 0) printf "slope=%.2f (d read p50 / d rtt p50; intercept %.1f us)\n", num / den, my - num / den * mx
	}'
