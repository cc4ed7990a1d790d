#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The guest checks of the Debian system tests, run by scripts/run-debian.sh
# --exec once ssh answers (it sets DISCO_SSH_*, DISCO_PATTERN,
# DISCO_MASTER_PID, DISCO_OUT, DISCO_CONFIG, DISCO_BUILD):
#   - the guest sees NODES x VCPUS CPUs (nproc) and NODES NUMA nodes (with
#     boot_vcpus: master the image's udev rule brought the others online);
#   - eth0's interrupts are steered to the CPUs of vCPU 0's NUMA node, the
#     master's (the image's disco-nic-irqs), and the guest kernel's NUMA
#     balancing is off (vms[].numa_balancing: monitor);
#   - the console has its login prompt (what `make run-debian` shows on a
#     terminal): the serial getty on ttyS0 runs, and the console's output
#     (DISCO_OUT/console.log) shows the prompt;
#   - 256 MiB of files (8 x 32 MiB of disco-pattern, known SHA-256) written
#     through the root disk and synced hash right; the guest reboots (the
#     distributed reset: every node resets), comes back to multi-user with
#     no failed unit, and every file still hashes right, now read from the
#     disk (with "noreboot": the guest drops its page cache instead, so the
#     files are read back from the disk all the same);
#   - NET_MIB MiB (default 64) go host -> guest through the user-mode NIC
#     (the master's forward of guest port 5001) and back guest -> host,
#     through the tap NIC when TAP_GUEST is set, else through user-mode
#     networking; hashed at each end.
#   debian_checks.sh NODES VCPUS [reboot|noreboot]
set -euo pipefail
nodes=$1 vcpus=$2 reboot=${3:-reboot}
net_mib=${NET_MIB:-64}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=../../scripts/lib/debian-guest.sh
. "$root/scripts/lib/debian-guest.sh"
dg_init "$DISCO_SSH_KEY" "$DISCO_SSH_HOST" "$DISCO_SSH_PORT" "$DISCO_PATTERN"
fail() { echo "debian-checks: FAIL: $*" >&2; exit 1; }
trap 'echo "debian-checks: FAIL: line $LINENO: $BASH_COMMAND exited $?" >&2' ERR
say() { echo "debian-checks: $*" >&2; }
t0=$SECONDS

# ---- topology ----------------------------------------------------------------
cpus=$(dg_ssh root nproc </dev/null)
numa=$(dg_ssh root 'ls -d /sys/devices/system/node/node[0-9]* | wc -l' </dev/null)
say "nproc=$cpus numa_nodes=$numa"
[ "$cpus" -eq $((nodes * vcpus)) ] || fail "nproc is $cpus, want $((nodes * vcpus))"
[ "$numa" -eq "$nodes" ] || fail "the guest sees $numa NUMA nodes, want $nodes"
# shellcheck disable=SC2016 # expanded in the guest
irqs=$(dg_ssh root 'n=$(basename $(ls -d /sys/devices/system/cpu/cpu0/node*)); want=$(cat /sys/devices/system/node/$n/cpulist); d=/sys/class/net/eth0/device/..; for i in $(ls $d/msi_irqs); do echo "$i $(cat /proc/irq/$i/smp_affinity_list) $want"; done' </dev/null)
[ -n "$irqs" ] || fail "eth0 has no MSI interrupts"
while read -r irq got want; do
	[ "$got" = "$want" ] || fail "eth0's interrupt $irq goes to CPUs $got, want $want (vCPU 0's NUMA node)"
done <<<"$irqs"
balancing=$(dg_ssh root 'cat /proc/sys/kernel/numa_balancing' </dev/null)
say "eth0's $(wc -l <<<"$irqs") interrupts on CPUs $(awk '{ print $3; exit }' <<<"$irqs"); numa_balancing=$balancing"
[ "$nodes" -eq 1 ] || [ "$balancing" = 0 ] || fail "the guest kernel's NUMA balancing is on ($balancing)"

# ---- the console's login prompt ---------------------------------------------------
getty=$(dg_ssh root 'systemctl is-active serial-getty@ttyS0.service' </dev/null || true)
[ "$getty" = active ] || fail "serial-getty@ttyS0 is ${getty:-unknown}: no login prompt on the console"
grep -a -q "disco-debian login:" "$DISCO_OUT/console.log" ||
	fail "the console ($DISCO_OUT/console.log) shows no login prompt"
say "the console shows its login prompt (serial-getty@ttyS0 active)"

# ---- 256 MiB through the root disk, across a reboot ------------------------------
want=()
for i in 1 2 3 4 5 6 7 8; do want+=("$(dg_pattern_sha $((100 + i)) 32)"); done
t=$SECONDS
dg_ssh root 'mkdir -p /var/tmp/disco-files && for i in 1 2 3 4 5 6 7 8; do
	disco-pattern $((100 + i)) 32 /var/tmp/disco-files/f$i || exit 1; done && sync' </dev/null ||
	fail "writing the files failed"
say "wrote 256 MiB and synced in $((SECONDS - t)) s"
check_files() {
	local hashes i=0
	mapfile -t hashes < <(dg_ssh root 'cd /var/tmp/disco-files && sha256sum f1 f2 f3 f4 f5 f6 f7 f8' </dev/null |
		cut -d' ' -f1)
	[ ${#hashes[@]} -eq 8 ] || fail "$1: sha256sum gave ${#hashes[@]} hashes, want 8"
	for ((i = 0; i < 8; i++)); do
		[ "${hashes[$i]}" = "${want[$i]}" ] || fail "$1: f$((i + 1)) hashes ${hashes[$i]}, want ${want[$i]}"
	done
	say "$1: the 8 files hash right"
}
check_files "before the reboot"
if [ "$reboot" = noreboot ]; then
	dg_ssh root 'echo 3 >/proc/sys/vm/drop_caches' </dev/null
	check_files "after dropping the page cache (no reboot)"
else
boot_id=$(dg_ssh root cat /proc/sys/kernel/random/boot_id </dev/null)
t=$SECONDS
dg_ssh root 'systemctl reboot' </dev/null >/dev/null 2>&1 || true
dg_wait_ssh_down 300 || fail "the guest still answers 300 s after systemctl reboot"
dg_wait_ssh 1200 "$DISCO_MASTER_PID" || fail "no ssh after the reboot"
state=$(dg_boot_state)
[ "$state" = running ] || fail "after the reboot: systemctl is-system-running says $state"
[ "$(dg_ssh root cat /proc/sys/kernel/random/boot_id </dev/null)" != "$boot_id" ] ||
	fail "the guest did not boot again (same boot_id)"
say "rebooted to multi-user in $((SECONDS - t)) s"
check_files "after the reboot"
fi

# ---- NET_MIB MiB host -> guest -> host ----------------------------------------------
# Plain TCP (netcat in the guest, scripts/lib/bench_io.py on the host):
# through ssh the guest's encryption under emulation, not the network,
# would take most of the time. Into the guest through the master's forward
# of guest port 5001; out of it through the tap NIC when there is one, else
# to user-mode networking's gateway 10.0.2.2 (the master's host). The guest
# end runs on vCPU 0, the master's, as a test of the data path, not of its
# speed: from another node's vCPU, where every packet's pages cross between
# nodes, 64 MiB take minutes here (scripts/bench-debian.sh measures both;
# run-debian.sh's own network check, through ssh, runs wherever the guest
# puts it).
py=$root/scripts/lib/bench_io.py
read -r _ nc_port < <("$DISCO_BUILD/node-monitor/disco" config forward 5001 "$DISCO_CONFIG") ||
	fail "the config forwards no host port to guest port 5001"
t=$SECONDS
net_want=$(dg_pattern_sha 200 "$net_mib")
dg_ssh root "systemd-run --unit=disco-net-in --quiet sh -c 'taskset -c 0 nc -l 5001 >/var/tmp/net.bin'" </dev/null
for ((i = 0; i < 100; i++)); do dg_ssh root "ss -ltn | grep -q ':5001 '" </dev/null && break; sleep 0.5; done
sent=$("$DISCO_PATTERN" 200 "$net_mib" | python3 "$py" send - "$nc_port")
[ "$sent" -eq $((net_mib << 20)) ] || fail "host -> guest: sent $sent bytes"
got=$(dg_ssh root 'sha256sum /var/tmp/net.bin' </dev/null | cut -d' ' -f1)
[ "$got" = "$net_want" ] || fail "host -> guest: the guest hashes $got, want $net_want"
listen=127.0.0.1 target=10.0.2.2 via="user-mode networking"
if [ -n "${TAP_GUEST:-}" ]; then
	listen=192.168.77.1 target=192.168.77.1 via="the tap NIC (the guest's $TAP_GUEST)"
fi
portfile=$(mktemp)
python3 "$py" recv "$portfile" "$net_mib" "$listen" sha256 >"$portfile.sha" &
rp=$!
for ((i = 0; i < 100; i++)); do [ -s "$portfile" ] && break; sleep 0.1; done
dg_ssh root "taskset -c 0 nc -N $target $(cat "$portfile") </var/tmp/net.bin" </dev/null ||
	fail "guest -> host: nc failed"
wait "$rp" || fail "guest -> host: the host did not get $net_mib MiB"
got=$(cat "$portfile.sha")
rm -f "$portfile" "$portfile.sha"
[ "$got" = "$net_want" ] || fail "guest -> host through $via: the host hashes $got, want $net_want"
say "$net_mib MiB host -> guest (port forward) and back (through $via) in $((SECONDS - t)) s"
say "all checks passed in $((SECONDS - t0)) s"
