#!/usr/bin/env bash
# System test: the Debian 12 guest (scripts/make-debian-image.sh) across
# NODES node processes with VCPUS vCPUs each, run by scripts/run-debian.sh
# (what `make run-debian` runs) with its output in a pipe, on a fresh qcow2
# overlay of the image:
#   - the runner returns, says guest_exit=poweroff boot=multi-user disk=pass
#     net=pass exec=pass, and leaves no process behind;
#   - its --exec checks (debian_checks.sh) passed: CPUs and NUMA nodes,
#     256 MiB of files across a reboot, 64 MiB over the network both ways;
#   - every node counted the same guest resets (at least one: the reboot);
#   - the image is consistent afterwards (qemu-img check).
# With TAP=1 (and when this machine can make a network namespace with a
# tap in it), everything runs inside a new network namespace in which the
# master's tap NIC is the guest's eth1 (192.168.77.2), and the 64 MiB come
# back through it; otherwise the test says that part is skipped and why.
# With REBOOT=0 the guest is not rebooted (its page cache is dropped
# instead) and no guest reset is expected: a Debian reboot across 4
# processes costs minutes here (see docs/benchmarks.md).
#   debian_test.sh BUILD NODES VCPUS MEM
set -euo pipefail
build=$(realpath "$1") nodes=$2 vcpus=$3 mem=$4
reboot=reboot
[ "${REBOOT:-1}" = 1 ] || reboot=noreboot
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-debtest.XXXXXX)
netns=""
cleanup() {
	[ -z "$netns" ] || ip netns del "$netns" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*"
	echo "---- run-debian output (without the statistics) ----"
	grep -a -v -e '^disco n[0-9]*: ' -e '^\[n[0-9]*\] disco n' "$tmp/run.txt" 2>/dev/null | tail -n 80
	echo "---- guest console (last 60 lines) ----"; tail -n 60 "$tmp/out/console.log" 2>/dev/null
	exit 1
}
[ -f "$build/debian/base.qcow2" ] || fail "no $build/debian/base.qcow2: run scripts/make-debian-image.sh (make builds it)"
qemu-img create -q -f qcow2 -F qcow2 -b "$(realpath "$build/debian/base.qcow2")" "$tmp/disk.qcow2"

in_ns=()
tap_note="tap NIC: not tested (TAP not set)"
if [ "${TAP:-0}" = 1 ]; then
	ns=disco-debtest-$$
	if ip netns add "$ns" 2>"$tmp/netns.err"; then
		netns=$ns
		if ip -n "$ns" link set lo up && ip -n "$ns" tuntap add dtap0 mode tap 2>>"$tmp/netns.err" &&
			ip -n "$ns" addr add 192.168.77.1/24 dev dtap0 && ip -n "$ns" link set dtap0 up; then
			in_ns=(ip netns exec "$ns")
			export TAP=dtap0 TAP_GUEST=192.168.77.2
			tap_note="tap NIC: tested (network namespace $ns, tap dtap0)"
		else
			tap_note="tap NIC: skipped: cannot make a tap in a network namespace: $(tr '\n' ' ' <"$tmp/netns.err")"
			unset TAP
		fi
	else
		tap_note="tap NIC: skipped: cannot make a network namespace: $(tr '\n' ' ' <"$tmp/netns.err")"
		unset TAP
	fi
else
	unset TAP
fi
echo "$tap_note"

FWD_EXTRA=5001 "$here/make-debian-config.sh" "$build" "$nodes" "$vcpus" "$mem" "$tmp/disk.qcow2" >"$tmp/cluster.yaml"
start=$SECONDS
set +e
"${in_ns[@]}" "$root/scripts/run-debian.sh" --build "$build" --out "$tmp/out" --quiet --timeout 1500 \
	--disk-mib 16 --net-mib 4 --exec "$here/debian_checks.sh $nodes $vcpus $reboot" "$tmp/cluster.yaml" 2>&1 |
	cat >"$tmp/run.txt"
status=${PIPESTATUS[0]}
set -e
took=$((SECONDS - start))
summary=$(tail -n 1 "$tmp/run.txt")
echo "$summary"
grep -h "debian-checks:\|run-debian:" "$tmp/run.txt" || true
[ "$status" -eq 0 ] || fail "run-debian exited $status"
want="vm=deb nodes=$nodes vcpus=$((nodes * vcpus)) guest_exit=poweroff boot=multi-user disk=pass net=pass exec=pass"
[ "$summary" = "$want" ] || fail "summary is \"$summary\", want \"$want\""
# Nothing the runner started may be left (every process it started names
# $tmp on its command line: the config, the logs).
sleep 1
alive() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ "$st" != Z* ]]; }
for p in $(pgrep -f "$tmp/" || true); do
	! alive "$p" || fail "process left behind: $(ps -o pid=,stat=,args= -p "$p")"
done
counts=()
for ((i = 0; i < nodes; i++)); do
	c=$(sed -n 's/.*guest_resets=\([0-9]*\)$/\1/p' "$tmp/out/n$i.stats")
	[ -n "$c" ] || fail "n$i wrote no statistics"
	[ "$reboot" = noreboot ] || [ "$c" -ge 1 ] || fail "n$i counts no guest reset after the reboot"
	counts+=("$c")
done
for c in "${counts[@]}"; do
	[ "$c" -eq "${counts[0]}" ] || fail "the nodes counted different numbers of resets: ${counts[*]}"
done
qemu-img check -q "$tmp/disk.qcow2" || fail "qemu-img check finds the image inconsistent"
grep -E "faults_served|pages_received|io_forwarded|io_served" "$tmp/out/n0.stats" | tr '\n' ' '
echo
echo "PASS: Debian on $nodes nodes x $vcpus vCPUs in ${took}s ($tap_note)"
