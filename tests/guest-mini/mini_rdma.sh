#!/usr/bin/env bash
# The mini guest over RDMA: runs mini_test.sh inside the Soft-RoCE test VM
# (scripts/run-in-rdma-testvm.sh, tests/rdma/README.md) with transport: rdma
# on its rxe0 and dsm.backing: memfd (one-sided page reads on).
#
#   mini_rdma.sh BUILD NODES [mini_test.sh options]
#
# The VM sees only the repository, /usr and /etc: the patched QEMU (a
# symlink into the QEMU cache) is copied into the build tree first and
# handed to disco-node by $DISCO_QEMU. The nested VM is slow (TCG inside
# TCG, 2 vCPUs for every node's QEMU): the peer timeout is 30 s.
# Exit status: mini_test.sh's, or run-in-rdma-testvm.sh's (77 skip, 124
# timeout, 125 the VM could not be set up).
set -euo pipefail
build=$(realpath "$1") nodes=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
qemu=$(realpath "$build/qemu/qemu-system-x86_64" 2>/dev/null) ||
	{ echo "FAIL: $build/qemu/qemu-system-x86_64 is missing: run make"; exit 1; }
copy=$build/tests/guest-mini/qemu-system-x86_64
cmp -s "$qemu" "$copy" 2>/dev/null || cp "$qemu" "$copy"
exec "$root/scripts/run-in-rdma-testvm.sh" --build "$build/rdma-vm" \
	--timeout "${MINI_RDMA_TIMEOUT:-1500}" -- \
	env DISCO_QEMU="$copy" TRANSPORT=rdma PEER_TIMEOUT_MS=30000 \
	"$here/mini_test.sh" "$build" "$nodes" --dsm "backing: memfd" "$@"
