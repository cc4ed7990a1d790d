#!/usr/bin/env bash
# System test: SIGKILL of the non-master node while the Debian guest writes
# to its root disk (on a fresh qcow2 overlay of the image).
#   - the master stops within 10 s, exits non-zero and names the lost node;
#     nothing of the VM is left running;
#   - `qemu-img check` finds the image consistent (leaked clusters, which
#     waste space but lose no data, are allowed and reported);
#   - the next boot (on one node) mounts the journalling root file system
#     cleanly: multi-user with no failed unit, / mounted read-write, no
#     ext4 error in the kernel log, and the files written before the
#     writer started still hash right.
#   debian_kill_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-debkill.XXXXXX)
# shellcheck source=../../scripts/lib/vm-nodes.sh
. "$root/scripts/lib/vm-nodes.sh"
# shellcheck source=../../scripts/lib/debian-guest.sh
. "$root/scripts/lib/debian-guest.sh"
cleanup() {
	vmn_stop
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	for f in "$tmp"/out/n*.log; do [ -f "$f" ] && { echo "---- $f"; tail -n 30 "$f"; }; done
	[ -f "$tmp/run2.txt" ] && { echo "---- the boot after the kill (without statistics)";
		grep -a -v -e '^disco n[0-9]*: ' "$tmp/run2.txt"; }
	echo "---- guest console (last 40 lines) ----"; tail -n 40 "$tmp/out/console.log" 2>/dev/null
	exit 1
}
[ -f "$build/debian/base.qcow2" ] || fail "no $build/debian/base.qcow2: run scripts/make-debian-image.sh (make builds it)"
disk=$tmp/disk.qcow2
qemu-img create -q -f qcow2 -F qcow2 -b "$(realpath "$build/debian/base.qcow2")" "$disk"
pattern=$build/tests/guest/disco-pattern

"$here/make-debian-config.sh" "$build" 2 1 512M "$disk" >"$tmp/cluster.yaml"
mkdir -p "$tmp/out"
vmn_init "$build/node-monitor/disco-node" "$tmp/cluster.yaml" || fail "cannot read the config"
read -r host port < <("$build/node-monitor/disco-node" --config "$tmp/cluster.yaml" --print-forward 22)
dg_init "$build/debian/id_ed25519" "$host" "$port" "$pattern"
vmn_start_all "$tmp/out"
n0=${vmn_pid[n0]} n1=${vmn_pid[n1]}
dg_wait_ssh 1200 "$n0" || fail "no ssh from the guest"
echo "ssh answers after ${SECONDS} s"

# Files that must survive: written and synced before the writer starts.
dg_ssh root 'mkdir -p /var/tmp/keep && disco-pattern 301 8 /var/tmp/keep/a &&
	disco-pattern 302 8 /var/tmp/keep/b && sync' </dev/null || fail "writing the files to keep failed"
# The writer: 8 MiB files, one after the other, each synced (ext4 journal
# commits and virtio-blk flushes keep coming).
dg_ssh root "systemd-run --unit=disco-writer --quiet sh -c 'i=0; while :; do
	disco-pattern \$i 8 /var/tmp/w\$((i % 16)); sync; i=\$((i + 1)); echo \$i >/var/tmp/wcount; done'" \
	</dev/null || fail "cannot start the writer"
for ((i = 0; i < 120; i++)); do
	c=$(dg_ssh root 'cat /var/tmp/wcount 2>/dev/null || echo 0' </dev/null || echo 0)
	[ "$c" -ge 2 ] && break
	sleep 1
done
[ "${c:-0}" -ge 2 ] || fail "the writer did not get going within 120 s"
sleep 2
echo "the guest has written $c files; killing n1 (pid $n1) with SIGKILL"
kill -KILL "$n1"
killed=$SECONDS
wait "$n1" 2>/dev/null || true
while kill -0 "$n0" 2>/dev/null && [ $((SECONDS - killed)) -le 10 ]; do sleep 0.1; done
kill -0 "$n0" 2>/dev/null && fail "the master still runs 10 s after n1 was killed"
took=$((SECONDS - killed))
set +e
wait "$n0"
rc=$?
set -e
[ $rc -ne 0 ] || fail "the master exited 0 after losing n1"
grep -q "node n1 lost" "$tmp/out/n0.log" || fail "the master's messages do not name the lost node n1"
grep -h "lost" "$tmp/out/n0.log"
sleep 1
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }
for p in $(pgrep -f "$tmp/" || true); do
	! alive "$p" || fail "process left behind: $(ps -o pid=,stat=,args= -p "$p")"
done
echo "the master stopped ${took} s after n1 was killed (exit $rc)"

set +e
qemu-img check "$disk" >"$tmp/check.txt" 2>&1
check=$?
set -e
cat "$tmp/check.txt"
case $check in
0) echo "qemu-img check: consistent" ;;
3) echo "qemu-img check: consistent, with leaked clusters (no data lost)" ;;
*) fail "qemu-img check exit $check: the image is corrupt" ;;
esac

# The next boot, on one node. run-debian.sh checks multi-user, no failed
# unit, the disk and the network; the checks below the file system.
"$here/make-debian-config.sh" "$build" 1 1 512M "$disk" >"$tmp/single.yaml"
checks='set -e
. "'$root'/scripts/lib/debian-guest.sh"
dg_init "$DISCO_SSH_KEY" "$DISCO_SSH_HOST" "$DISCO_SSH_PORT" "$DISCO_PATTERN"
opts=$(dg_ssh root "findmnt -no OPTIONS /" </dev/null)
echo "root mounted: $opts" >&2
case ",$opts," in *,rw,*) ;; *) echo "root is not mounted read-write" >&2; exit 1 ;; esac
dg_ssh root "journalctl -b -k -o cat | grep -i -e ext4 -e vda" </dev/null >&2 || true
# (journald replacing its own journal file after a crash is expected: not a file system error)
if dg_ssh root "journalctl -b -k -o cat | grep -E \"EXT4-fs (error|warning)\"" </dev/null >&2; then
	echo "the kernel reports file system errors" >&2; exit 1
fi
for f in a:301 b:302; do
	want=$(dg_pattern_sha ${f#*:} 8)
	got=$(dg_ssh root "sha256sum /var/tmp/keep/${f%%:*}" </dev/null | cut -d" " -f1)
	[ "$got" = "$want" ] || { echo "/var/tmp/keep/${f%%:*} hashes $got, want $want" >&2; exit 1; }
done
echo "the files written before the kill hash right" >&2'
set +e
"$root/scripts/run-debian.sh" --build "$build" --out "$tmp/out2" --quiet --timeout 900 \
	--disk-mib 8 --net-mib 2 --exec "$checks" "$tmp/single.yaml" >"$tmp/run2.txt" 2>&1
status=$?
set -e
grep -a -v -e '^disco n[0-9]*: ' -e '^\[n0\]' -e '^---- ' "$tmp/run2.txt" || true
summary=$(tail -n 1 "$tmp/run2.txt")
echo "$summary"
[ $status -eq 0 ] || fail "the boot after the kill failed (run-debian exit $status)"
[ "$summary" = "vm=deb nodes=1 vcpus=1 guest_exit=poweroff boot=multi-user disk=pass net=pass exec=pass" ] ||
	fail "unexpected summary after the kill: $summary"
echo "PASS: the master stopped ${took} s after n1 was killed, naming it; the image is consistent and the next boot mounts the root file system cleanly"
