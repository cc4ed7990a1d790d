#!/usr/bin/env bash
# Starts every node of a VM of a cluster config on THIS machine (one
# disco-node, hence one QEMU, per node), shows the guest console, waits for
# the VM to end, prints each node's statistics and one summary line:
#
#   vm=<name> nodes=<k> vcpus=<n> guest_exit=<poweroff|error> coherence=<pass|fail|not-run>
#
#   scripts/run-vm.sh [options] CONFIG
#     --vm NAME          the VM (default: the config's only VM)
#     --run LIST         guest programs for the init to run, e.g. coherence,bench
#                        (default: an interactive shell on a terminal, else
#                        coherence,bench); "shell" forces the shell
#     --args NAME=A:B    arguments for guest program NAME (repeatable)
#     --build DIR        the CMake build dir (default: build)
#     --out DIR          keep logs here (default: a temporary dir, removed)
#     --timeout SEC      stop everything after SEC seconds (default 900)
#     --quiet            do not copy the console to stdout
#     --qemu-arg ARG     one more argument for every node's QEMU (repeatable),
#                        e.g. the test hooks: --qemu-arg -object
#                        --qemu-arg disco-test-hooks,id=t,tb-invalidate=off
#     --accel tcg|kvm    the nodes' accelerator (disco-node --accel; default tcg)
#
# The guest is the VM's `kernel:`: the default Linux guest, or the mini
# test kernel (build/tests/guest-mini/mini.bin, tests/guest-mini/README.md),
# whose `mini: result=pass` line counts like the Linux guest's.
#
# Exit status: 0 when every node exited 0 (guest powered off) and every
# guest program passed; 1 otherwise. The console is in OUT/console.log and
# node N's messages in OUT/N.log, its statistics in OUT/N.stats.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build vm="" run="" out="" timeout=900 quiet=0 args=() qemu_args=() accel=()
while [ $# -gt 0 ]; do
	case "$1" in
	--vm) vm=$2; shift 2 ;;
	--run) run=$2; shift 2 ;;
	--args) args+=("$2"); shift 2 ;;
	--build) build=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--qemu-arg) qemu_args+=("$2"); shift 2 ;;
	--accel) accel=(--accel "$2"); shift 2 ;;
	-h|--help) sed -n '2,29p' "$0"; exit 0 ;;
	-*) echo "run-vm: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# -eq 1 ] || { echo "usage: run-vm.sh [options] CONFIG (see --help)" >&2; exit 2; }
config=$(realpath "$1")
node_bin=$build/node-monitor/disco-node
[ -x "$node_bin" ] || { echo "run-vm: $node_bin is missing: run make" >&2; exit 2; }

# shellcheck source=lib/vm-nodes.sh
. "$root/scripts/lib/vm-nodes.sh"

# Nodes of the VM (those listed in its vcpu_placement), master first.
vmn_init "$node_bin" "$config" "$vm" ||
	{ echo "run-vm: cannot read the nodes of the VM from $config" >&2; exit 2; }
nodes=("${vmn_nodes[@]}") vm_name=$vmn_vm vcpus=$vmn_vcpus
vmn_node_opts=("${accel[@]}")
vmn_qemu_extra=("${qemu_args[@]}")

interactive=0
if [ -z "$run" ]; then
	if [ -t 0 ] && [ -t 1 ]; then interactive=1; else run=coherence,bench; fi
elif [ "$run" = shell ]; then
	interactive=1
fi
append=""
[ $interactive -eq 1 ] || append="disco.run=$run"
for a in "${args[@]}"; do append+=" disco.args.${a%%=*}=${a#*=}"; done

keep=1
if [ -z "$out" ]; then out=$(mktemp -d /tmp/disco-run.XXXXXX); keep=0; fi
mkdir -p "$out"
cleanup() {
	vmn_stop
	[ $keep -eq 1 ] || rm -rf "$out"
}
trap cleanup EXIT

master=$vmn_master
for n in "${nodes[@]:1}"; do vmn_start "$n" "$out" "$append"; done
if [ $interactive -eq 1 ]; then
	echo "run-vm: $vm_name on ${#nodes[@]} nodes (${nodes[*]}), $vcpus vCPUs; guest console follows (poweroff to end)"
	set +e
	"$node_bin" --config "$config" ${vm:+--vm "$vm"} --node "$master" "${accel[@]}" --console stdio \
		--stats "$out/$master.stats" ${append:+--append "$append"} -- "${qemu_args[@]}" \
		2>"$out/$master.log"
	set -e
else
	vmn_start "$master" "$out" "$append"
	[ $quiet -eq 1 ] || vmn_follow "$out"
fi

# Wait for every node, with a deadline.
status=0
vmn_wait "$timeout" || status=1
vmn_unfollow

echo "---- node messages and DSM statistics ----"
vmn_report "$out"

guest_exit=poweroff
[ $status -eq 0 ] || guest_exit=error
coherence=not-run
if [ $interactive -eq 0 ]; then
	if grep -q "disco-guest: coherence PASS" "$out/console.log"; then coherence=pass
	elif grep -q "disco-guest: coherence FAIL" "$out/console.log"; then coherence=fail; fi
	grep -q -e "disco-guest: result=pass" -e "mini: result=pass" "$out/console.log" || status=1
fi
[ "$coherence" != fail ] || status=1
echo "vm=$vm_name nodes=${#nodes[@]} vcpus=$vcpus guest_exit=$guest_exit coherence=$coherence"
exit $status
