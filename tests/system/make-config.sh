#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Writes a cluster config for a system test to stdout: NODES nodes on
# 127.0.0.1 with free ports, one VM "sys" with VCPUS vCPUs on each node and
# MEM of memory, booting the default guest of BUILD/guest.
#   make-config.sh BUILD NODES VCPUS [MEM] [extra dsm: lines, e.g. "min_hold_us: 200"]
# Environment: ON_RESET (default stop: a guest that panics, with panic=-1,
# ends the test at once instead of booting again), CMDLINE_EXTRA (appended
# to the kernel command line), CONNECT_TIMEOUT_MS; another guest: KERNEL
# (then no initrd unless INITRD) and CMDLINE (replaces the Linux one);
# TRANSPORT=rdma with ADDRESS, RDMA_DEVICE and RDMA_GID (the Soft-RoCE VM's
# rxe0 on 10.0.2.15, GID 1, by default); PEER_TIMEOUT_MS (default 3000; when
# it leaves less than the default dsm.fault_timeout_ms needs, the dsm block
# gets fault_timeout_ms: 2 x PEER_TIMEOUT_MS, the config's rule); ADDRESSES
# (one address per node, space-separated, all on port PORT, default 7400:
# nodes in network namespaces, scripts/lib/netns.sh); NODE_MEMORY (the VM's
# vms[].node_memory: each node's memory budget, e.g. 320M); BOOT_VCPUS
# (vms[].boot_vcpus: all or master; not written when unset).
set -euo pipefail
build=$(realpath "$1") nodes=$2 vcpus=$3 mem=${4:-256M} dsm_extra=${5:-}
transport=${TRANSPORT:-tcp} address=${ADDRESS:-127.0.0.1}
[ "$transport" = tcp ] || address=${ADDRESS:-10.0.2.15}
kernel=${KERNEL:-$build/guest/vmlinuz}
initrd=${INITRD-}
[ -n "${KERNEL:-}" ] || initrd=${INITRD:-$build/guest/initrd.img}
cmdline=${CMDLINE-console=ttyS0 panic=-1 quiet tsc=reliable}
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${ADDRESSES:-}" ]; then
	read -ra addresses <<<"$ADDRESSES"
	[ ${#addresses[@]} -eq "$nodes" ] || { echo "make-config: ADDRESSES has ${#addresses[@]} addresses for $nodes nodes" >&2; exit 2; }
	ports=()
	for ((i = 0; i < nodes; i++)); do ports+=("${PORT:-7400}"); done
else
mapfile -t ports < <(/usr/bin/python3 - "$nodes" "$address" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind((sys.argv[2], 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
)
fi
echo "cluster:"
echo "  name: system-test"
echo "  transport: $transport"
echo "  auth: {key_file: $root/cluster-config/examples/local.key}"
echo "  peer_timeout_ms: ${PEER_TIMEOUT_MS:-3000}"
echo "  connect_timeout_ms: ${CONNECT_TIMEOUT_MS:-60000}"
echo "nodes:"
for ((i = 0; i < nodes; i++)); do
	rdma=""
	[ "$transport" = tcp ] || rdma=", rdma: {device: ${RDMA_DEVICE:-rxe0}, gid_index: ${RDMA_GID:-1}}"
	echo "  - {name: n$i, address: ${addresses[$i]:-$address}, port: ${ports[$i]}$rdma}"
done
echo "vms:"
echo "  - name: sys"
echo "    memory: $mem"
echo "    vcpus: $((nodes * vcpus))"
echo -n "    vcpu_placement: {"
for ((i = 0; i < nodes; i++)); do echo -n "n$i: $vcpus"; [ $i -eq $((nodes - 1)) ] || echo -n ", "; done
echo "}"
echo "    kernel: $kernel"
[ -z "$initrd" ] || echo "    initrd: $initrd"
echo "    cmdline: \"$cmdline${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}\""
echo "    on_reset: ${ON_RESET:-stop}"
[ -z "${NODE_MEMORY:-}" ] || echo "    node_memory: $NODE_MEMORY"
[ -z "${BOOT_VCPUS:-}" ] || echo "    boot_vcpus: $BOOT_VCPUS"
fault_line=""
if [ "${PEER_TIMEOUT_MS:-3000}" -gt 4800 ] && [[ "$dsm_extra" != *fault_timeout_ms* ]]; then
	fault_line="fault_timeout_ms: $((PEER_TIMEOUT_MS * 2))"
fi
if [ -n "$dsm_extra$fault_line" ]; then
	echo "    dsm:"
	[ -z "$dsm_extra" ] || echo "      $dsm_extra"
	[ -z "$fault_line" ] || echo "      $fault_line"
fi
