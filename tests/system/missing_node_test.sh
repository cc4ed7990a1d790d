#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# System test: a node whose peers never come. The master of a 3-node VM is
# started alone with a 2 s connect timeout; it must exit non-zero within
# a few seconds and name both missing nodes.
#   missing_node_test.sh BUILD
set -euo pipefail
build=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d /tmp/disco-missing.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
CONNECT_TIMEOUT_MS=2000 "$here/make-config.sh" "$build" 3 1 >"$tmp/cluster.yaml"
start=$SECONDS
set +e
timeout 60 "$build/node-monitor/disco-node" --config "$tmp/cluster.yaml" --node n0 \
	--console null >"$tmp/n0.log" 2>&1 </dev/null
rc=$?
set -e
took=$((SECONDS - start))
cat "$tmp/n0.log"
[ $rc -ne 0 ] || { echo "FAIL: disco-node exited 0 without its peers"; exit 1; }
[ $rc -ne 124 ] || { echo "FAIL: disco-node still waited after 60 s"; exit 1; }
grep -q "n1" "$tmp/n0.log" && grep -q "n2" "$tmp/n0.log" ||
	{ echo "FAIL: the error does not name the missing nodes n1 and n2"; exit 1; }
echo "PASS: exit $rc after ${took}s, naming the missing nodes"
