#!/usr/bin/env bash
# System test with the mini guest (tests/guest-mini/README.md): NODES node
# processes on this machine (VCPUS each) run the mini kernel as the VM's
# `kernel:` through scripts/run-vm.sh, and the console is checked.
#
#   mini_test.sh BUILD NODES [options]
#     --vcpus N          vCPUs per node (default 1)
#     --accel tcg|kvm    (default tcg); kvm: skipped (exit 77) only when
#                        /dev/kvm does not exist
#     --break            run mini-break.bin: every test must FAIL, the guest
#                        must say result=fail and every node exit non-zero
#                        (the guest resets the VM, on_reset: stop)
#     --crash-mmio-exec  (KVM) a CPU of the last node runs code in MMIO, which
#                        KVM cannot: every node must stop within 60 s, exit
#                        non-zero and name that node (host-error)
#     --no-ptrace        (KVM) the nodes run without CAP_SYS_PTRACE, so they
#                        may only get a userfaultfd for user-mode faults:
#                        every node must refuse to start, saying why
#                        (skipped when vm.unprivileged_userfaultfd=1)
#     --memory SIZE      guest RAM (default 64M)
#     --dsm LINE         one line for the VM's dsm: block (e.g. "backing: memfd")
#     --cmdline TEXT     mini knobs, e.g. "mini.atomic_n=2000 mini.walk_mib=8"
#     --one-sided        the nodes' statistics must count pages read one-sided
#                        (RDMA with dsm.backing memfd)
#     --timeout S        for the whole VM (default 600)
#     --out DIR          keep run-vm's logs (console, node logs, statistics)
#                        in DIR instead of a temporary folder
# Environment as for tests/system/make-config.sh (TRANSPORT=rdma ...).
# Exit 0 when every check passed; the last line says what ran and how long.
set -euo pipefail
build=$(realpath "$1") nodes=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
vcpus=1 accel=tcg kernel=mini memory=64M dsm="" cmdline="" one_sided=0 timeout=600 crash=0
no_ptrace=0 out=
while [ $# -gt 0 ]; do
	case $1 in
	--vcpus) vcpus=$2; shift 2 ;;
	--accel) accel=$2; shift 2 ;;
	--break) kernel=mini-break; shift ;;
	--crash-mmio-exec) crash=1; shift ;;
	--no-ptrace) no_ptrace=1; shift ;;
	--memory) memory=$2; shift 2 ;;
	--dsm) dsm=$2; shift 2 ;;
	--cmdline) cmdline=$2; shift 2 ;;
	--one-sided) one_sided=1; shift ;;
	--timeout) timeout=$2; shift 2 ;;
	--out) out=$(realpath -m "$2"); shift 2 ;;
	*) echo "mini_test: unknown option $1" >&2; exit 2 ;;
	esac
done
tests=(atomic spinlock mp sb ipi smc ramwalk)
total=$((nodes * vcpus))

if [ "$accel" = kvm ]; then
	if [ ! -e /dev/kvm ]; then
		echo "SKIP: /dev/kvm does not exist on this machine (no KVM: kernel module or hardware virtualization missing)"
		exit 77
	fi
	[ -r /dev/kvm ] && [ -w /dev/kvm ] ||
		{ echo "FAIL: /dev/kvm exists but $(id -un) cannot open it read-write (group kvm?)"; exit 1; }
fi
wrap=()
if [ $no_ptrace -eq 1 ]; then
	[ "$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null)" != 1 ] ||
		{ echo "SKIP: vm.unprivileged_userfaultfd=1: every process gets a userfaultfd for kernel faults"; exit 77; }
	command -v setpriv >/dev/null || { echo "FAIL: setpriv (util-linux) is missing"; exit 1; }
	wrap=(setpriv --bounding-set=-sys_ptrace --inh-caps=-sys_ptrace)
	[ "$(id -u)" -eq 0 ] || wrap=() # not root: no CAP_SYS_PTRACE anyway
	timeout=60
fi
bin=$build/tests/guest-mini/$kernel.bin
[ -f "$bin" ] || { echo "FAIL: $bin is missing: build the project (make)"; exit 1; }

tmp=$(mktemp -d /tmp/disco-mini.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
if [ -n "$out" ]; then rm -rf "$out"; mkdir -p "$out"; ln -s "$out" "$tmp/out"; fi
[ $crash -eq 0 ] || { cmdline+=" mini.crash_mmio_exec=1"; timeout=60; }
KERNEL=$bin CMDLINE="$cmdline" "$root/tests/system/make-config.sh" "$build" "$nodes" "$vcpus" \
	"$memory" "$dsm" >"$tmp/cluster.yaml"
start=$SECONDS
set +e
"${wrap[@]}" "$root/scripts/run-vm.sh" --build "$build" --out "$tmp/out" --quiet --timeout "$timeout" \
	--accel "$accel" --run all "$tmp/cluster.yaml" >"$tmp/run.txt" 2>&1
status=$?
set -e
took=$((SECONDS - start))
console() { tr -d '\r' <"$tmp/out/console.log"; }
fail() {
	echo "FAIL: $*"
	echo "---- config ----"; cat "$tmp/cluster.yaml"
	echo "---- run-vm output ----"; cat "$tmp/run.txt"
	echo "---- guest console ----"; console | tail -n 80
	exit 1
}
[ -s "$tmp/out/console.log" ] || [ $no_ptrace -eq 1 ] || fail "no guest console output (run-vm exited $status after ${took}s)"
console | grep "^mini: " || true
[ $no_ptrace -eq 1 ] || console | grep -q "^mini: boot cpus=$total online=$total nodes=$nodes " ||
	fail "the guest did not see $total vCPUs online on $nodes NUMA nodes"

# stopped_saying TEXT WHAT: the VM stopped in time, run-vm failed, and every
# node's log has TEXT (else fail: "nN did not WHAT")
stopped_saying() {
	grep -q "run-vm: timeout" "$tmp/run.txt" && fail "the nodes did not stop within ${timeout}s"
	[ $status -ne 0 ] || fail "run-vm exited 0"
	for n in $(seq 0 $((nodes - 1))); do
		grep -q "$1" "$tmp/out/n$n.log" || fail "n$n did not $2"
	done
}
if [ $no_ptrace -eq 1 ]; then
	stopped_saying "KVM needs a userfaultfd that also takes the kernel's faults" \
		"refuse KVM with a user-mode-only userfaultfd"
	grep -h "KVM needs" "$tmp"/out/n*.log | head -n 1
	echo "PASS: without CAP_SYS_PTRACE every node refused KVM at start (${took}s)"
	exit 0
fi
if [ $crash -eq 1 ]; then
	last=n$((nodes - 1))
	console | grep -q "^mini: cpu .* calls code in MMIO" || fail "the guest did not reach the crash"
	stopped_saying "VM stopped by host-error on node $last" "stop naming the host-error on node $last"
	grep -h "internal error\|VM stopped" "$tmp"/out/n*.log
	echo "PASS: a vCPU KVM could not run on $last stopped all $nodes nodes in ${took}s"
	exit 0
fi
if [ "$kernel" = mini-break ]; then
	for t in "${tests[@]}"; do
		console | grep -q "^mini: $t FAIL" || fail "-DBREAK: test $t did not FAIL"
	done
	console | grep -q "^mini: result=fail" || fail "-DBREAK: no result=fail"
	[ $status -ne 0 ] || fail "-DBREAK: run-vm exited 0 after a failed guest"
	grep -q "VM stopped by guest-reset" "$tmp/out/n0.log" ||
		fail "-DBREAK: the master did not stop on the guest's reset"
	echo "PASS: the -DBREAK guest failed every test (${#tests[@]}) and stopped all $nodes nodes, ${took}s"
	exit 0
fi

for t in "${tests[@]}"; do
	console | grep -q "^mini: $t PASS" || fail "test $t did not PASS"
done
console | grep -q "^mini: summary tests=${#tests[@]} passed=${#tests[@]} failed=0 " ||
	fail "the summary does not say ${#tests[@]} tests passed"
console | grep -q "^mini: result=pass" || fail "no result=pass"
[ $status -eq 0 ] || fail "run-vm exited $status"
tail -n 1 "$tmp/run.txt" | grep -q "guest_exit=poweroff" || fail "the guest did not power off cleanly"
if [ $one_sided -eq 1 ]; then
	reads=$(cat "$tmp"/out/n*.stats | sed -n 's/^disco n[0-9]*: pages_read=\([0-9]*\)$/\1/p' |
		awk '{ s += $1 } END { print s + 0 }')
	grep -h "pages_read=" "$tmp"/out/n*.stats
	[ "$reads" -gt 0 ] || fail "no page was read one-sided (pages_read=0 on every node)"
	echo "mini_test: pages read one-sided: $reads"
fi
grep -h "page_faults\|pages_received\|ipis_sent" "$tmp"/out/n*.stats 2>/dev/null | head -n 12 || true
echo "PASS: mini guest on $nodes nodes x $vcpus vCPUs ($accel${TRANSPORT:+, $TRANSPORT}${dsm:+, $dsm}): ${#tests[@]} tests passed in ${took}s"
