#!/usr/bin/env bash
# Writes a cluster config for a system test to stdout: NODES nodes on
# 127.0.0.1 with free ports, one VM "sys" with VCPUS vCPUs on each node and
# MEM of memory, booting the default guest of BUILD/guest.
#   make-config.sh BUILD NODES VCPUS [MEM] [extra dsm: lines, e.g. "min_hold_us: 200"]
# Environment: ON_RESET (default stop: a guest that panics, with panic=-1,
# ends the test at once instead of booting again), CMDLINE_EXTRA (appended
# to the kernel command line), CONNECT_TIMEOUT_MS, NODE_MEMORY (the VM's
# vms[].node_memory: each node's memory budget, e.g. 320M).
set -euo pipefail
build=$(realpath "$1") nodes=$2 vcpus=$3 mem=${4:-256M} dsm_extra=${5:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
mapfile -t ports < <(/usr/bin/python3 - "$nodes" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
)
echo "cluster:"
echo "  name: system-test"
echo "  transport: tcp"
echo "  auth: {key_file: $root/cluster-config/examples/local.key}"
echo "  peer_timeout_ms: 3000"
echo "  connect_timeout_ms: ${CONNECT_TIMEOUT_MS:-60000}"
echo "nodes:"
for ((i = 0; i < nodes; i++)); do
	echo "  - {name: n$i, address: 127.0.0.1, port: ${ports[$i]}}"
done
echo "vms:"
echo "  - name: sys"
echo "    memory: $mem"
echo "    vcpus: $((nodes * vcpus))"
echo -n "    vcpu_placement: {"
for ((i = 0; i < nodes; i++)); do echo -n "n$i: $vcpus"; [ $i -eq $((nodes - 1)) ] || echo -n ", "; done
echo "}"
echo "    kernel: $build/guest/vmlinuz"
echo "    initrd: $build/guest/initrd.img"
echo "    cmdline: \"console=ttyS0 panic=-1 quiet tsc=reliable${CMDLINE_EXTRA:+ $CMDLINE_EXTRA}\""
echo "    on_reset: ${ON_RESET:-stop}"
[ -z "${NODE_MEMORY:-}" ] || echo "    node_memory: $NODE_MEMORY"
if [ -n "$dsm_extra" ]; then
	echo "    dsm:"
	echo "      $dsm_extra"
fi
