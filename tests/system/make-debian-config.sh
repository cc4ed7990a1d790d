#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Writes a cluster config for a Debian system test to stdout: NODES nodes on
# 127.0.0.1 with free ports, one VM "deb" with VCPUS vCPUs on each node,
# MEM of memory, the Debian kernel and initramfs of BUILD/debian, DISK as
# its root disk (qcow2), and a user-mode NIC forwarding a free host port to
# the guest's ssh.
#   make-debian-config.sh BUILD NODES VCPUS MEM DISK
# Environment: TAP (also a tap NIC on that interface, the guest's eth1 at
# 192.168.77.2/24), CMDLINE_EXTRA (appended to the kernel command line),
# ON_RESET (default reset: the tests reboot the guest), FWD_EXTRA (a guest
# TCP port that gets a free host port forwarded too), BOOT_VCPUS
# (vms[].boot_vcpus, default master: the image brings the other vCPUs
# online; "all" for the kernel's default).
set -euo pipefail
build=$(realpath "$1") nodes=$2 vcpus=$3 mem=$4 disk=$5
root=$(cd "$(dirname "$0")/../.." && pwd)
mapfile -t ports < <(/usr/bin/python3 - "$((nodes + 2))" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
)
cmdline="console=ttyS0 root=/dev/vda ro net.ifnames=0 quiet tsc=reliable"
[ -z "${TAP:-}" ] || cmdline+=" ip=192.168.77.2:::255.255.255.0::eth1:off"
echo "cluster:"
echo "  name: debian-test"
echo "  auth: {key_file: $root/cluster-config/examples/local.key}"
echo "  connect_timeout_ms: 60000"
echo "nodes:"
for ((i = 0; i < nodes; i++)); do
	echo "  - {name: n$i, address: 127.0.0.1, port: ${ports[$i]}}"
done
echo "vms:"
echo "  - name: deb"
echo "    memory: $mem"
echo "    vcpus: $((nodes * vcpus))"
echo -n "    vcpu_placement: {"
for ((i = 0; i < nodes; i++)); do echo -n "n$i: $vcpus"; [ $i -eq $((nodes - 1)) ] || echo -n ", "; done
echo "}"
echo "    kernel: $build/debian/vmlinuz"
echo "    initrd: $build/debian/initrd.img"
echo "    cmdline: \"$cmdline${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}\""
echo "    on_reset: ${ON_RESET:-reset}"
echo "    boot_vcpus: ${BOOT_VCPUS:-master}"
echo "    disks:"
echo "      - {file: $(realpath "$disk"), format: qcow2, serial: root}"
echo "    nics:"
echo "      - type: user"
echo "        hostfwd:"
echo "          - {host_port: ${ports[$nodes]}, guest_port: 22}"
[ -z "${FWD_EXTRA:-}" ] || echo "          - {host_port: ${ports[$((nodes + 1))]}, guest_port: $FWD_EXTRA}"
[ -z "${TAP:-}" ] || echo "      - {type: tap, ifname: $TAP}"
