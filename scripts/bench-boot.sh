#!/usr/bin/env bash
# Boot benchmark: kernel start to init, for the default guest on 2 node
# processes (1 vCPU each, DSM) against the same QEMU binary as ONE process
# with the same machine (-smp 2, same memory, same devices; no disco
# object, so no DSM), measured alternately in one run.
#
#   scripts/bench-boot.sh [BUILD] [RUNS]      (defaults: build, 3)
#
# "Kernel start to init" is the guest's own /proc/uptime when init starts
# (the virtual clock runs at host speed on every node); the wall time from
# starting the processes to that line is printed too. Last line:
#   boot_ratio=<median cluster / median single>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
runs=${2:-3}
tmp=$(mktemp -d /tmp/disco-bootbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
node=$build/node-monitor/disco-node

"$root/tests/system/make-config.sh" "$build" 2 1 256M >"$tmp/cluster.yaml"
append="disco.run=none"

# The single-process baseline: exactly the master's command line without
# the disco object.
mapfile -t argv < <("$node" --config "$tmp/cluster.yaml" --node n0 --console stdio \
	--append "$append" --dry-run --argv-lines)
single=()
for ((i = 0; i < ${#argv[@]}; i++)); do
	if [ "${argv[$i]}" = -object ] && [[ "${argv[$((i + 1))]}" == disco,* ]]; then
		i=$((i + 1))
		continue
	fi
	single+=("${argv[$i]}")
done

# Print "<guest uptime at init> <wall seconds to init>" for one boot.
time_single() {
	local t0 t1
	t0=$(date +%s.%N)
	"${single[@]}" >"$tmp/single.log" 2>&1 </dev/null
	t1=$(date +%s.%N)
	grep -q "disco-guest: result=pass" "$tmp/single.log" || { cat "$tmp/single.log" >&2; exit 1; }
	echo "$(sed -n 's/.*disco-guest: init_uptime_s=\([0-9.]*\).*/\1/p' "$tmp/single.log") $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}
time_cluster() {
	local t0 t1
	t0=$(date +%s.%N)
	"$root/scripts/run-vm.sh" --build "$build" --out "$tmp/cl" --quiet --run none \
		"$tmp/cluster.yaml" >"$tmp/cluster.log" 2>&1 || { cat "$tmp/cluster.log" >&2; exit 1; }
	t1=$(date +%s.%N)
	echo "$(sed -n 's/.*disco-guest: init_uptime_s=\([0-9.]*\).*/\1/p' "$tmp/cl/console.log") $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-boot: $runs boots each, alternating; guest: $(basename "$build")/guest, 2 vCPUs, 256 MiB"
: >"$tmp/s.txt"; : >"$tmp/c.txt"
for ((i = 1; i <= runs; i++)); do
	s=$(time_single); c=$(time_cluster)
	echo "$s" >>"$tmp/s.txt"; echo "$c" >>"$tmp/c.txt"
	echo "run $i: single: kernel-to-init ${s% *} s (wall ${s#* } s)   2 nodes: kernel-to-init ${c% *} s (wall ${c#* } s)"
done
ms=$(awk '{ print $1 }' "$tmp/s.txt" | median)
mc=$(awk '{ print $1 }' "$tmp/c.txt" | median)
ws=$(awk '{ print $2 }' "$tmp/s.txt" | median)
wc_=$(awk '{ print $2 }' "$tmp/c.txt" | median)
echo "median kernel-to-init: single ${ms} s, 2 nodes ${mc} s; median wall to power-off: single ${ws} s, 2 nodes ${wc_} s"
echo "DSM statistics of the last 2-node boot:"
grep -E "faults_served|fault_latency_p50|pages_received|io_forwarded|ipis_sent|tb_invalidations" "$tmp/cluster.log" | sed 's/^/  /'
echo "boot_ratio=$(awk -v c="$mc" -v s="$ms" 'BEGIN { printf "%.2f", c / s }')"
