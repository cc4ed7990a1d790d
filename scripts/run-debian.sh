#!/usr/bin/env bash
# Boots the Debian 12 guest (scripts/make-debian-image.sh) of a cluster
# config across its nodes on THIS machine, one disco-node (one QEMU) each.
#
# On a terminal: the guest's serial console (a login prompt: user disco,
# password disco) and the ssh command that reaches the guest through the
# master's port forward; `sudo poweroff` in the guest ends the VM.
#
# Otherwise: waits until ssh answers, then checks, through ssh, that
# systemd reached multi-user.target with no failed unit
# (`systemctl is-system-running` = running), that data written to the
# root disk reads back the same after the guest's page cache is dropped,
# and that data crosses the network both ways unchanged; runs --exec if
# given; powers the guest off; prints each node's statistics and one line:
#
#   vm=<name> nodes=<k> vcpus=<n> guest_exit=<poweroff|error> boot=<multi-user|STATE>
#     disk=<pass|fail|not-run> net=<pass|fail|not-run>[ exec=<pass|fail>]
#
#   scripts/run-debian.sh [options] [CONFIG]   (default: cluster-config/examples/debian-2node.yaml)
#     --vm NAME        the VM (default: the config's only VM)
#     --build DIR      the CMake build dir (default: build)
#     --key FILE       ssh key of the guest (default: BUILD/debian/id_ed25519)
#     --out DIR        keep logs here (default: a temporary dir, removed)
#     --timeout SEC    stop everything after SEC seconds (default 1500)
#     --disk-mib N     size of the disk check (default 64; 0 skips it)
#     --net-mib N      size of the network check, each way (default 16; 0 skips it)
#     --exec COMMAND   after the checks, run COMMAND (bash -c) on the host with
#                      DISCO_SSH_KEY, DISCO_SSH_HOST, DISCO_SSH_PORT,
#                      DISCO_PATTERN, DISCO_MASTER_PID, DISCO_OUT, DISCO_CONFIG
#                      and DISCO_BUILD set
#                      (scripts/lib/debian-guest.sh reads them); exec= is its status
#     --quiet          do not copy the console to stdout
#
# Exit status: 0 when every check passed and every node exited 0 after the
# guest powered off; 1 otherwise; 2 for bad arguments. The console is in
# OUT/console.log, node N's messages in OUT/N.log, its statistics in
# OUT/N.stats.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build vm="" out="" timeout=1500 quiet=0 disk_mib=64 net_mib=16 exec_cmd="" key=""
while [ $# -gt 0 ]; do
	case "$1" in
	--vm) vm=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--key) key=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--disk-mib) disk_mib=$2; shift 2 ;;
	--net-mib) net_mib=$2; shift 2 ;;
	--exec) exec_cmd=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	-h|--help) sed -n '2,37p' "$0"; exit 0 ;;
	-*) echo "run-debian: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -le 1 ] || { echo "usage: run-debian.sh [options] [CONFIG] (see --help)" >&2; exit 2; }
config=$(realpath "${1:-$root/cluster-config/examples/debian-2node.yaml}")
build=$(realpath "$build")
key=${key:-$build/debian/id_ed25519}
node_bin=$build/node-monitor/disco-node
pattern=$build/tests/guest/disco-pattern
for f in "$node_bin" "$pattern"; do
	[ -x "$f" ] || { echo "run-debian: $f is missing: run make" >&2; exit 2; }
done
[ -r "$key" ] || { echo "run-debian: no ssh key $key: run scripts/make-debian-image.sh" >&2; exit 2; }
# shellcheck source=lib/vm-nodes.sh
. "$root/scripts/lib/vm-nodes.sh"
# shellcheck source=lib/debian-guest.sh
. "$root/scripts/lib/debian-guest.sh"
vmn_init "$node_bin" "$config" "$vm" ||
	{ echo "run-debian: cannot read the nodes of the VM from $config" >&2; exit 2; }
read -r ssh_host ssh_port < <("$node_bin" --config "$config" ${vm:+--vm "$vm"} --print-forward 22) ||
	{ echo "run-debian: the VM forwards no host port to the guest's ssh (port 22): add a hostfwd to its user NIC" >&2; exit 2; }
dg_init "$key" "$ssh_host" "$ssh_port" "$pattern"

keep=1
if [ -z "$out" ]; then out=$(mktemp -d /tmp/disco-debian.XXXXXX); keep=0; fi
mkdir -p "$out"
cleanup() {
	vmn_stop
	[ $keep -eq 1 ] || rm -rf "$out"
}
trap cleanup EXIT
deadline=$((SECONDS + timeout))
left() { local l=$((deadline - SECONDS)); echo $((l > 0 ? l : 1)); }

if [ -t 0 ] && [ -t 1 ]; then
	for n in "${vmn_nodes[@]:1}"; do vmn_start "$n" "$out"; done
	echo "run-debian: $vmn_vm on ${#vmn_nodes[@]} nodes (${vmn_nodes[*]}), $vmn_vcpus vCPUs; the guest console follows."
	echo "run-debian: log in as disco (password disco), or from another terminal once it is up:"
	echo "  ssh -i $key -p $ssh_port disco@$ssh_host"
	echo "run-debian: 'sudo poweroff' in the guest ends the VM."
	set +e
	"$node_bin" --config "$config" ${vm:+--vm "$vm"} --node "$vmn_master" --console stdio \
		--stats "$out/$vmn_master.stats" 2>"$out/$vmn_master.log"
	set -e
	status=0
	vmn_wait "$(left)" || status=1
	echo "---- node messages and DSM statistics ----"
	vmn_report "$out"
	exit $status
fi

vmn_start_all "$out"
[ $quiet -eq 1 ] || vmn_follow "$out"
master_pid=${vmn_pid[$vmn_master]}
status=0 boot=not-run disk=not-run net=not-run exec_result=""
t0=$SECONDS
if dg_wait_ssh "$(left)" "$master_pid"; then
	echo "run-debian: ssh answers after $((SECONDS - t0)) s" >&2
	boot=$(dg_boot_state)
	echo "run-debian: systemctl is-system-running: $boot after $((SECONDS - t0)) s" >&2
	[ "$boot" = running ] && boot=multi-user || status=1
	if [ "$disk_mib" -gt 0 ]; then
		disk=$(dg_check_disk "$disk_mib")
		[ "$disk" = pass ] || status=1
	fi
	if [ "$net_mib" -gt 0 ]; then
		net=$(dg_check_net "$net_mib")
		[ "$net" = pass ] || status=1
	fi
	if [ -n "$exec_cmd" ]; then
		if DISCO_SSH_KEY=$key DISCO_SSH_HOST=$ssh_host DISCO_SSH_PORT=$ssh_port \
			DISCO_PATTERN=$pattern DISCO_MASTER_PID=$master_pid DISCO_OUT=$out \
			DISCO_CONFIG=$config DISCO_BUILD=$build \
			timeout "$(left)" bash -c "$exec_cmd"; then
			exec_result=" exec=pass"
		else
			exec_result=" exec=fail"
			status=1
		fi
	fi
	dg_ssh root systemctl poweroff </dev/null >/dev/null 2>&1 || true
else
	echo "run-debian: no ssh answer from the guest ($ssh_host:$ssh_port)" >&2
	status=1
fi
vmn_wait "$(left)" || status=1
vmn_unfollow

echo "---- node messages and DSM statistics ----"
vmn_report "$out"
guest_exit=poweroff
for n in "${vmn_nodes[@]}"; do [ "${vmn_rc[$n]:-1}" -eq 0 ] || guest_exit=error; done
[ "$guest_exit" = poweroff ] || status=1
echo "vm=$vmn_vm nodes=${#vmn_nodes[@]} vcpus=$vmn_vcpus guest_exit=$guest_exit boot=$boot disk=$disk net=$net$exec_result"
exit $status
