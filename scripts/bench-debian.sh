#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Debian benchmark: the Debian 12 guest (scripts/make-debian-image.sh) on
# ONE QEMU process against 2 node processes (1 vCPU each, the disk and the
# network on the master), in one run, alternating. The single box is the
# same QEMU binary with the master's command line without the disco object:
# the same 2 vCPUs, the same two guest NUMA nodes, the same devices; so
# both boot the same guest on the same machine and only the DSM differs.
# Each boot gets a fresh qcow2 overlay of the image.
#
#   scripts/bench-debian.sh [BUILD] [RUNS]      (defaults: build, 1)
#
# Per boot, measured in the guest or on the host:
#   boot      wall time from starting the QEMU process(es) to the end of
#             systemd's boot: `systemctl is-system-running --wait` (through
#             ssh, polled from the moment ssh answers) says running. Wall
#             time, because the guest's own clock cannot be trusted in the
#             single box: plain QEMU's TCG TSC is the host's, and under a
#             loaded host Linux calibrates it wrong (a guest that took 100 s
#             said 13 minutes). The guest's own figure is printed too
#   disk      fio (Debian's) in the guest, O_DIRECT on a file of the root
#             disk: sequential 1 MiB writes then reads of 128 MiB (libaio,
#             depth 4), then 4 KiB random writes and reads for 10 s each
#             (libaio, depth 8); fio's job and its parent process (which
#             reads the job's counters while it runs) pinned to the vCPU
#             under test
#   net       64 MiB host -> guest (netcat listening in the guest, reached
#             through the master's port forward, writing to /dev/null) and
#             64 MiB guest -> host (head -c 64M /dev/zero | netcat, to
#             user-mode networking's gateway 10.0.2.2, the host); plain TCP,
#             no ssh (whose encryption would be what is measured); the guest's
#             processes pinned to one vCPU together (fio's net engine counts
#             short reads as whole ones and stops early)
# Every disk and network test runs twice: pinned to vCPU 0 (the master's:
# on the cluster the process, the device and the network are on one node)
# and to vCPU 1 (on the cluster the other node's: every request, interrupt
# and data page crosses between the nodes).
# On the cluster, each node's DSM counters are read over QMP before and
# after each disk and network test: faults (both nodes) per MiB moved, pages
# received, forwarded port/MMIO accesses served by the master, IPIs.
# Last line (lower is better; throughputs as single / cluster, each ratio
# the geometric mean of its tests on both vCPUs: a guest spreads its work
# over all its vCPUs):
#   debian_boot_ratio=<x> disk_write_ratio=<x> disk_read_ratio=<x> net_ratio=<x>
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(realpath "${1:-$root/build}")
runs=${2:-1}
tmp=$(mktemp -d /tmp/disco-debbench.XXXXXX)
node=$build/node-monitor/disco-node
py=$root/scripts/lib/bench_io.py
# shellcheck source=lib/vm-nodes.sh
. "$root/scripts/lib/vm-nodes.sh"
# shellcheck source=lib/debian-guest.sh
. "$root/scripts/lib/debian-guest.sh"
single_pid=""
cleanup() {
	vmn_stop
	[ -z "$single_pid" ] || { kill "$single_pid" 2>/dev/null; wait "$single_pid" 2>/dev/null; } || true
	rm -rf "$tmp"
}
trap cleanup EXIT
die() { echo "bench-debian: $*" >&2; exit 1; }
[ -f "$build/debian/base.qcow2" ] || die "no $build/debian/base.qcow2: run scripts/make-debian-image.sh"
base=$(realpath "$build/debian/base.qcow2")

disk=$tmp/disk.qcow2
FWD_EXTRA=5001 "$root/tests/system/make-debian-config.sh" "$build" 2 1 1G "$disk" >"$tmp/cluster.yaml"
read -r _ ssh_port < <("$build/node-monitor/disco" config forward 22 "$tmp/cluster.yaml")
read -r _ nc_port < <("$build/node-monitor/disco" config forward 5001 "$tmp/cluster.yaml")
dg_init "$build/debian/id_ed25519" 127.0.0.1 "$ssh_port" "$build/tests/guest/disco-pattern"
vmn_init "$node" "$tmp/cluster.yaml" || die "cannot read $tmp/cluster.yaml"
vmn_qemu_extra=(-qmp "unix:$tmp/qmp-@NODE@.sock,server=on,wait=off")

# The single box: the master's command line without the disco object.
qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$disk"
mapfile -t argv < <("$node" --config "$tmp/cluster.yaml" --node n0 --console stdio --dry-run --argv-lines)
single=()
for ((i = 0; i < ${#argv[@]}; i++)); do
	if [ "${argv[$i]}" = -object ] && [[ "${argv[$((i + 1))]}" == disco,* ]]; then
		i=$((i + 1))
		continue
	fi
	single+=("${argv[$i]}")
done

counters() { [ "$mode" = cluster ] && python3 "$py" counters "$tmp"/qmp-n*.sock || true; }
# key delta: the change of counter KEY between two counters() outputs
delta() { awk -F= -v k="$1" 'FNR == 1 { f++ } $1 == k { v[f] = $2 } END { print v[2] - v[1] }' "$2" "$3"; }
io_note() { # what the DSM did for MIB MiB moved between counter files $2 and $3
	[ "$mode" = cluster ] || return 0
	local f p io ipi
	f=$(delta faults_served "$2" "$3") p=$(delta pages_received "$2" "$3")
	io=$(delta io_served "$2" "$3") ipi=$(delta ipis_sent "$2" "$3")
	echo " [dsm: $(awk -v f="$f" -v m="$1" 'BEGIN { printf "%.0f", f / m }') faults/MiB, $p pages moved, $io forwarded I/O, $ipi IPIs]"
}

fio_job() { # CPU NAME RW BS SIZE DEPTH [fio args]: prints "MB/s IOPS MiB"
	local cpu=$1 name=$2 rw=$3 bs=$4 size=$5 depth=$6
	shift 6
	dg_ssh root "taskset -c $cpu fio --name=$name --filename=/var/tmp/fio.bin --rw=$rw --bs=$bs --size=$size \
		--direct=1 --ioengine=libaio --iodepth=$depth --output-format=json $*" </dev/null >"$tmp/fio.json" ||
		die "fio $name failed in the $mode guest"
	python3 "$py" fio "$tmp/fio.json"
}

# One boot of MODE (single|cluster): appends "key value" lines to $tmp/MODE.txt.
run_once() {
	mode=$1
	local out=$tmp/$mode-out t0 boot guest r mbs iops mib port name rw bs size depth extra
	rm -rf "$out" "$disk"
	mkdir -p "$out"
	qemu-img create -q -f qcow2 -F qcow2 -b "$base" "$disk"
	t0=$(date +%s.%N)
	if [ "$mode" = single ]; then
		"${single[@]}" >"$out/console.log" 2>"$out/qemu.log" </dev/null &
		single_pid=$!
		dg_wait_ssh 1500 "$single_pid" || die "no ssh from the single-process guest"
	else
		vmn_pids=()
		vmn_start_all "$out"
		dg_wait_ssh 1500 "${vmn_pid[n0]}" || die "no ssh from the 2-node guest"
	fi
	[ "$(dg_boot_state)" = running ] || die "the $mode guest did not reach multi-user cleanly"
	boot=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
	guest=$(dg_ssh root systemctl show -P FinishTimestampMonotonic </dev/null | awk '{ printf "%.1f", $1 / 1e6 }')
	echo "boot $boot" >>"$tmp/$mode.txt"
	echo "  $mode: multi-user after ${boot} s (the guest's clock says ${guest} s from kernel start)"

	local cpu
	for cpu in 0 1; do
		# disk
		for t in seqw:write:1M:128M:4 seqr:read:1M:128M:4 randw:randwrite:4k:128M:8 randr:randread:4k:128M:8; do
			IFS=: read -r name rw bs size depth <<<"$t"
			extra=""
			[[ $name == rand* ]] && extra+=" --time_based --runtime=10"
			[ "$name" = seqw ] && extra+=" --end_fsync=1"
			counters >"$tmp/c0"
			# shellcheck disable=SC2086 # extra is several words
			r=$(fio_job "$cpu" "$name" "$rw" "$bs" "$size" "$depth" $extra)
			counters >"$tmp/c1"
			read -r mbs iops mib <<<"$r"
			echo "$name$cpu $mbs" >>"$tmp/$mode.txt"
			echo "    $name on vCPU $cpu: $mbs MB/s ($iops IOPS, $mib MiB)$(io_note "$mib" "$tmp/c0" "$tmp/c1")"
		done
		dg_ssh root rm -f /var/tmp/fio.bin </dev/null

		# network: host -> guest
		dg_ssh root "systemd-run --unit=bench-net-in-$cpu --quiet taskset -c $cpu sh -c 'nc -l 5001 >/dev/null'" </dev/null
		for _ in $(seq 100); do dg_ssh root "ss -ltn | grep -q ':5001 '" </dev/null && break; sleep 0.2; done
		counters >"$tmp/c0"
		mbs=$(python3 "$py" send "$nc_port" 64)
		counters >"$tmp/c1"
		echo "h2g$cpu $mbs" >>"$tmp/$mode.txt"
		echo "    host->guest, vCPU $cpu: $mbs MB/s$(io_note 64 "$tmp/c0" "$tmp/c1")"
		# guest -> host
		rm -f "$tmp/port"
		python3 "$py" recv "$tmp/port" 64 >"$tmp/recv.txt" &
		local rp=$!
		for _ in $(seq 50); do [ -s "$tmp/port" ] && break; sleep 0.1; done
		port=$(cat "$tmp/port")
		counters >"$tmp/c0"
		dg_ssh root "taskset -c $cpu sh -c 'head -c 64M /dev/zero | nc -N 10.0.2.2 $port'" </dev/null ||
			die "guest -> host transfer failed"
		wait "$rp" || die "the host did not receive 64 MiB from the guest"
		counters >"$tmp/c1"
		mbs=$(cat "$tmp/recv.txt")
		echo "g2h$cpu $mbs" >>"$tmp/$mode.txt"
		echo "    guest->host, vCPU $cpu: $mbs MB/s$(io_note 64 "$tmp/c0" "$tmp/c1")"
	done

	dg_ssh root systemctl poweroff </dev/null >/dev/null 2>&1 || true
	if [ "$mode" = single ]; then
		wait "$single_pid" || true
		single_pid=""
	else
		vmn_wait 300 || die "the 2-node VM did not power off cleanly"
		grep -h -E "faults_served|pages_received|io_served" "$out"/n*.stats | sed 's/^/      whole boot: /'
	fi
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
m() { awk -v k="$2" '$1 == k { print $2 }' "$tmp/$1.txt" | median; }

echo "bench-debian: $runs run(s) of: Debian 12 on one QEMU process, then on 2 nodes (1 vCPU each, 1 GiB, disk and network on the master)"
: >"$tmp/single.txt"
: >"$tmp/cluster.txt"
for ((i = 1; i <= runs; i++)); do
	echo "run $i:"
	run_once single
	run_once cluster
done
echo "medians:       single   2 nodes   ratio"
for k in boot seqw0 seqw1 seqr0 seqr1 randw0 randw1 randr0 randr1 h2g0 h2g1 g2h0 g2h1; do
	s=$(m single $k) c=$(m cluster $k)
	if [ $k = boot ]; then r=$(ratio "$c" "$s"); else r=$(ratio "$s" "$c"); fi
	printf "  %-8s %9s %9s %7s%s\n" "$k" "$s" "$c" "$r" "$([ $k = boot ] && echo " (s)" || echo " (MB/s)")"
	declare "r_$k=$r"
done
gm4() { awk -v a="$1" -v b="$2" -v c="$3" -v d="$4" 'BEGIN { printf "%.2f", exp((log(a) + log(b) + log(c) + log(d)) / 4) }'; }
echo "debian_boot_ratio=$r_boot disk_write_ratio=$(gm4 "$r_seqw0" "$r_seqw1" "$r_randw0" "$r_randw1")" \
	"disk_read_ratio=$(gm4 "$r_seqr0" "$r_seqr1" "$r_randr0" "$r_randr1") net_ratio=$(gm4 "$r_h2g0" "$r_h2g1" "$r_g2h0" "$r_g2h1")"
