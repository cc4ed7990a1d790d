#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Negative control for the self-modifying-code check: with TB invalidation
# of user-mode code turned off (-object disco-test-hooks,tb-invalidate=off,
# the QEMU side's test hook; kernel code keeps it, or the kernel's own text
# patching hangs the boot), a vCPU keeps running its stale translation of code another
# node rewrote, so the guest's smc program must FAIL. This shows the smc
# check can fail and that the invalidation is what makes system_* tests
# pass.
#   smc_without_invalidation_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d /tmp/disco-smcneg.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
"$here/make-config.sh" "$build" 2 1 >"$tmp/cluster.yaml"
set +e
"$root/scripts/run-vm.sh" --build "$build" --out "$tmp/out" --quiet \
	--qemu-arg -object --qemu-arg disco-test-hooks,id=hooks,tb-invalidate=off \
	--timeout 300 --run smc --args smc=300 "$tmp/cluster.yaml" >"$tmp/run.txt" 2>&1
set -e
grep -h "smc" "$tmp/out/console.log" | tail -n 5
if grep -q "disco-guest: smc FAIL" "$tmp/out/console.log"; then
	echo "PASS: without TB invalidation the guest saw stale code, as expected"
	exit 0
fi
echo "FAIL: smc did not fail without TB invalidation"
tail -n 40 "$tmp/run.txt"
echo "--- console (last 20 lines)"
tail -n 20 "$tmp/out/console.log"
exit 1
