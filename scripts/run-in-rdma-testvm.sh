#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# run-in-rdma-testvm.sh [--build DIR] [--timeout SECONDS] -- CMD [ARG...]
#
# Runs CMD in the Soft-RoCE test VM (scripts/make-rdma-testvm.sh; see
# tests/rdma/README.md) and exits with CMD's exit status. The VM is Debian's
# stock kernel under QEMU (TCG, Debian's /usr/bin/qemu-system-x86_64, not
# the project's patched QEMU) with the host's /usr and /etc (read-only) and
# this repository (read-write, at the same path) over 9p, and a Soft-RoCE
# device rxe0 on eth0 (10.0.2.15). CMD runs as root, with ulimit -l
# unlimited, in the current folder if it lies in the repository (else in /).
# The VM's console is streamed to stdout.
#
#   --build DIR     the VM's kernel and initramfs (default build/rdma-vm);
#                   built with make-rdma-testvm.sh when missing or stale.
#   --timeout S     kill QEMU and fail (exit 124) after S seconds (default
#                   600, or $DISCO_RDMA_VM_TIMEOUT).
#
# Exit status: CMD's; 125 if the VM could not be set up (the console says
# why); 124 on timeout; 77 with "SKIP: <reason>" if QEMU cannot run here.
# Environment: DISCO_RDMA_VM_APPEND adds kernel arguments (e.g. "loglevel=7"
# instead of the default "quiet"), DISCO_RDMA_VM_QEMU names another QEMU.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$root/build/rdma-vm
timeout_s=${DISCO_RDMA_VM_TIMEOUT:-600}
qemu=${DISCO_RDMA_VM_QEMU:-/usr/bin/qemu-system-x86_64}

usage() {
	sed -n '3,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
	exit "${1:-2}"
}
die() {
	echo "run-in-rdma-testvm: error: $*" >&2
	exit 125
}

while [ $# -gt 0 ]; do
	case $1 in
	--build) build=$(realpath -m "$2"); shift 2 ;;
	--build=*) build=$(realpath -m "${1#*=}"); shift ;;
	--timeout) timeout_s=$2; shift 2 ;;
	--timeout=*) timeout_s=${1#*=}; shift ;;
	-h | --help) usage 0 ;;
	--) shift; break ;;
	*) echo "run-in-rdma-testvm: unknown option $1" >&2; usage 2 ;;
	esac
done
[ $# -gt 0 ] || { echo "run-in-rdma-testvm: no command given" >&2; usage 2; }
[[ $timeout_s =~ ^[0-9]+$ ]] || die "--timeout wants whole seconds, not '$timeout_s'"
case $root in *[[:space:]]*) die "the repository path '$root' has white space; the VM mounts it at the same path" ;; esac

# ---- QEMU ----------------------------------------------------------------------

if [ ! -x "$qemu" ] && [ -z "${DISCO_RDMA_VM_QEMU:-}" ]; then
	echo "run-in-rdma-testvm: $qemu missing; installing it with scripts/setup.sh" >&2
	"$root/scripts/setup.sh" >&2 || true
fi
if [ ! -x "$qemu" ]; then
	echo "SKIP: $qemu not found and could not be installed (Debian package qemu-system-x86)"
	exit 77
fi
if ! "$qemu" -device help 2>/dev/null | grep -q '"virtio-9p-pci"'; then
	echo "SKIP: $qemu has no virtio-9p-pci (needs Debian's qemu-system-x86, not a minimal build)"
	exit 77
fi

# ---- the VM image ----------------------------------------------------------------

# make-rdma-testvm.sh is incremental: it says "up to date" in well under a second.
"$root/scripts/make-rdma-testvm.sh" "$build" >&2 ||
	die "building the VM failed (scripts/make-rdma-testvm.sh $build)"
for f in vmlinuz initrd.img; do
	[ -s "$build/$f" ] || die "$build/$f missing after make-rdma-testvm.sh"
done

# ---- the run folder: the command, its folder, the repository, its status -------

run=$(mktemp -d "${TMPDIR:-/tmp}/disco-rdma-vm.XXXXXX")
qpid=""
cleanup() {
	[ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
	rm -rf "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The command as a sh script: each argument single-quoted (no escaping
# through the kernel command line).
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
{
	echo "# written by run-in-rdma-testvm.sh"
	printf 'exec'
	for a in "$@"; do printf ' %s' "$(quote "$a")"; done
	printf '\n'
} >"$run/cmd"
echo "$root" >"$run/repo"
case $PWD/ in "$root"/*) echo "$PWD" >"$run/cwd" ;; *) echo / >"$run/cwd" ;; esac

# ---- boot ----------------------------------------------------------------------------

append="console=ttyS0 panic=-1 ${DISCO_RDMA_VM_APPEND:-quiet}"
qemu_args=(
	-accel tcg,thread=multi -cpu max -smp 2 -m 2048	# KVM hangs on these machines
	-kernel "$build/vmlinuz" -initrd "$build/initrd.img" -append "$append"
	-nographic -no-reboot -nic user,model=virtio-net-pci
	-virtfs local,path=/usr,mount_tag=hostusr,security_model=none,readonly=on
	-virtfs local,path=/etc,mount_tag=hostetc,security_model=none,readonly=on
	-virtfs "local,path=$root,mount_tag=repo,security_model=none"
	-virtfs "local,path=$run,mount_tag=discorun,security_model=none"
)
log=$run/console.log
stdin=/dev/null
[ -t 0 ] && stdin=/dev/stdin

# boot: one run of the VM; sets qrc, timed_out, elapsed.
boot() {
	echo "run-in-rdma-testvm: booting $build (timeout ${timeout_s} s): $*" >&2
	start=$(date +%s)
	: >"$log" # exists before tail opens it (QEMU's redirect runs in the background job)
	"$qemu" "${qemu_args[@]}" <"$stdin" >>"$log" 2>&1 &
	qpid=$!
	# Stream the console while QEMU runs; stop at exit or at the time limit.
	# (Without the CRs and the terminal escapes of SeaBIOS.)
	tail -n +1 -f --pid="$qpid" "$log" | sed -u -e 's/\r$//' -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc/\n/g' &
	local tpid=$!
	timed_out=0
	while kill -0 "$qpid" 2>/dev/null; do
		if [ $(($(date +%s) - start)) -ge "$timeout_s" ]; then
			timed_out=1
			kill "$qpid" 2>/dev/null || true
			break
		fi
		sleep 1
	done
	qrc=0
	wait "$qpid" || qrc=$?
	qpid=""
	wait "$tpid" 2>/dev/null || true
	elapsed=$(($(date +%s) - start))
}

boot "$@"
# A VM that died before it was ready never ran the command: the nested,
# doubly emulated boot itself failed (seen once in ~40 boots of 6.12
# under TCG). Boot once more; a failure after "ready" is the command's.
if [ "$timed_out" = 0 ] && [ ! -f "$run/rc" ] &&
	! tr -d '\r' <"$log" | grep -q '^rdma-vm: ready'; then
	echo "run-in-rdma-testvm: warning: the VM stopped (QEMU status $qrc) before it was ready; its console ended with:" >&2
	tr -d '\r' <"$log" | tail -n 15 | sed 's/^/    /' >&2
	echo "run-in-rdma-testvm: booting once more" >&2
	boot "$@"
fi

if [ "$timed_out" = 1 ]; then
	echo "run-in-rdma-testvm: FAIL: timeout: the VM did not finish within ${timeout_s} s; QEMU killed (command: $*)" >&2
	exit 124
fi
status=$(tr -d '\r' <"$log" | sed -n 's/^rdma-vm: exit=\([0-9][0-9]*\)$/\1/p' | tail -n1)
if [ -f "$run/rc" ]; then
	rc_file=$(cat "$run/rc")
	if [ -n "$status" ] && [ "$status" != "$rc_file" ]; then
		echo "run-in-rdma-testvm: note: the console says exit=$status, the run folder $rc_file; using the latter" >&2
	fi
	status=$rc_file
fi
if [ -z "$status" ]; then
	echo "run-in-rdma-testvm: FAIL: the VM stopped (QEMU status $qrc, after ${elapsed} s) without reporting the command's status; see the console above" >&2
	exit 125
fi
echo "run-in-rdma-testvm: exit=$status after ${elapsed} s" >&2
exit "$status"
