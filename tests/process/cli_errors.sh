#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Bad command lines get exit status 2 and a message saying what is wrong;
# --help works; a bad config names the file and field.
set -uo pipefail
stress=$1 bench=$2
# shellcheck source=expect.sh
. "$(dirname "$0")/expect.sh"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
printf 'cluster:\n  name: x\n  auth: { key_file: nokey }\nnodes: []\n' > "$tmp/bad.yaml"

expect 0 "usage: disco-dsm-stress" "$stress" --help
expect 0 "usage: disco-dsm-bench" "$bench" --help
expect 2 'expected a number, got "abc"' "$stress" --threads abc
expect 2 "threads must be 1" "$stress" --threads 99
expect 2 "unexpected argument" "$stress" extra
expect 2 "usage" "$stress" --no-such-option
expect 2 "needs --config" "$stress" --node n0
expect 2 'expected a number, got "x"' "$bench" --samples x
expect 2 "go together" "$bench" --node n1
expect 2 'backing wants anonymous or memfd, got "hugetlb"' "$stress" --backing hugetlb
expect 1 "bad.yaml" "$stress" --config "$tmp/bad.yaml" --node n0
expect 2 "node-memory and --min-cache shape the generated cluster" "$stress" --config "$tmp/bad.yaml" --node-memory 16M
# a budget that cannot hold the generated VM: the validator's message, naming the numbers
expect 1 'vms\[0\]\.node_memory: the budgets add up to 32M, less than the guest.s memory \(64M\) plus dsm\.min_cache \(2M\) on each of the 4 nodes: 72M' \
	"$stress" --node-memory 8M
expect 1 "no node named \"zz\"" "$stress" --config "$(dirname "$0")/../../cluster-config/examples/local-2node.yaml" --node zz
examples="$(cd "$(dirname "$0")/../../cluster-config/examples" && pwd)"
sed -e 's/transport: tcp/transport: rdma/' -e "s#key_file: local.key#key_file: $examples/local.key#" \
	-e 's/^\(    port: 740[01]\)$/\1\n    rdma: { device: nosuch0 }/' \
	"$examples/local-2node.yaml" > "$tmp/rdma.yaml"
# A missing RDMA device is named at start, and the member gives up at once.
expect 1 'rdma device "nosuch0" \(nodes\[0\]\.rdma\.device' "$stress" --config "$tmp/rdma.yaml" --node n0
exit $fail
