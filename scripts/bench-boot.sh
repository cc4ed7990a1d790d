#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Boot benchmark: kernel start to init, for the default guest on 2 node
# processes (1 vCPU each, DSM) against the same QEMU binary as ONE process
# with the same machine (-smp 2, same memory, same devices; no disco
# object, so no DSM), measured alternately in one run.
#
#   scripts/bench-boot.sh [BUILD] [RUNS]      (defaults: build, 3)
#
# "Kernel start to init" is the guest's own /proc/uptime when init starts
# (the virtual clock runs at host speed on every node); the wall time from
# starting the processes to the power-off is printed too. Each boot then
# runs disco-iolat (tests/guest/iolat.c): the median time of one port read
# on vCPU 1, which in the 2-node VM lives on the non-master, so every port
# access there is forwarded to the master. Last two lines:
#   io_ratio=<median cluster / median single port read on vCPU 1>
#   boot_ratio=<median cluster / median single kernel-to-init>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
runs=${2:-3}
tmp=$(mktemp -d /tmp/disco-bootbench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
node=$build/node-monitor/disco-node

"$root/tests/system/make-config.sh" "$build" 2 1 256M >"$tmp/cluster.yaml"
append="disco.run=iolat"

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

# Print "<guest uptime at init> <wall seconds> <port read p50 on vCPU 1, us>"
# for one boot whose console is $1.
boot_figures() {
	echo "$(sed -n 's/.*disco-guest: init_uptime_s=\([0-9.]*\).*/\1/p' "$1")" \
		"$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", b - a }')" \
		"$(tr -d '\r' <"$1" | sed -n 's/^iolat: cpu=1 .*p50_us=\([0-9.]*\).*/\1/p')"
}
time_single() {
	local t0 t1
	t0=$(date +%s.%N)
	"${single[@]}" >"$tmp/single.log" 2>&1 </dev/null
	t1=$(date +%s.%N)
	grep -q "disco-guest: result=pass" "$tmp/single.log" || { cat "$tmp/single.log" >&2; exit 1; }
	boot_figures "$tmp/single.log" "$t0" "$t1"
}
time_cluster() {
	local t0 t1
	t0=$(date +%s.%N)
	"$root/scripts/run-vm.sh" --build "$build" --out "$tmp/cl" --quiet --run iolat \
		"$tmp/cluster.yaml" >"$tmp/cluster.log" 2>&1 || { cat "$tmp/cluster.log" >&2; exit 1; }
	t1=$(date +%s.%N)
	boot_figures "$tmp/cl/console.log" "$t0" "$t1"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo "bench-boot: $runs boots each, alternating; guest: $(basename "$build")/guest, 2 vCPUs, 256 MiB"
: >"$tmp/s.txt"; : >"$tmp/c.txt"
for ((i = 1; i <= runs; i++)); do
	s=$(time_single); c=$(time_cluster)
	echo "$s" >>"$tmp/s.txt"; echo "$c" >>"$tmp/c.txt"
	read -r s_init s_wall s_io <<<"$s"; read -r c_init c_wall c_io <<<"$c"
	echo "run $i: single: kernel-to-init $s_init s (wall $s_wall s), port read $s_io us   2 nodes: kernel-to-init $c_init s (wall $c_wall s), port read on n1 $c_io us"
done
ms=$(awk '{ print $1 }' "$tmp/s.txt" | median)
mc=$(awk '{ print $1 }' "$tmp/c.txt" | median)
ws=$(awk '{ print $2 }' "$tmp/s.txt" | median)
wc_=$(awk '{ print $2 }' "$tmp/c.txt" | median)
echo "median kernel-to-init: single ${ms} s, 2 nodes ${mc} s; median wall to power-off: single ${ws} s, 2 nodes ${wc_} s"
is=$(awk '{ print $3 }' "$tmp/s.txt" | median)
ic=$(awk '{ print $3 }' "$tmp/c.txt" | median)
echo "median port read on vCPU 1: single ${is} us, 2 nodes ${ic} us (forwarded to the master)"
echo "DSM statistics of the last 2-node boot:"
grep -E "faults_served|fault_latency_p50|pages_received|io_forwarded|ipis_sent|tb_invalidations" "$tmp/cluster.log" | sed 's/^/  /'
echo "io_ratio=$(awk -v c="$ic" -v s="$is" 'BEGIN { printf "%.1f", c / s }')"
echo "boot_ratio=$(awk -v c="$mc" -v s="$ms" 'BEGIN { printf "%.2f", c / s }')"
