#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# bench-rdma.sh [RUNS] [SAMPLES]: disco-dsm-bench (3 nodes, memfd backing, so
# the rdma run's stable reads are one-sided) over the RDMA transport and
# over TCP inside the same Soft-RoCE test VM (tests/rdma/README.md), RUNS
# times (default 3) in one boot, then the median of each figure and of the
# rdma/tcp ratio. Soft-RoCE under TCG says nothing about NIC latency; the
# ratio and docs/benchmarks.md's count of software steps per fault do.
# Needs `make` (the build tree in build/); boots the VM with
# scripts/run-in-rdma-testvm.sh.
set -euo pipefail
runs=${1:-3} samples=${2:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
log=$(mktemp)
trap 'rm -f "$log" "$log.runs"' EXIT
"$root/scripts/run-in-rdma-testvm.sh" --build "$root/build/rdma-vm" --timeout 1800 -- \
	bash -c "for i in \$(seq $runs); do out=\$(BENCH_SAMPLES=$samples BENCH_ROUNDS=1000 \
		tests/rdma/dsm_over_rdma.sh bench '$root/build' 2>&1) || echo \"\$out\" | tail -n 40; \
		echo \"\$out\" | tail -n 2 | head -n 1; done" \
	>"$log" 2>&1 || { tail -n 30 "$log"; exit 1; }
grep '^rdma_read_fault_p50_us=' "$log" >"$log.runs" || true
sed 's/^/run: /' "$log.runs"
[ "$(wc -l <"$log.runs")" -eq "$runs" ] || grep -v ': info: ' "$log" | tail -n 60
awk -v runs="$runs" '
	function med(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		n++
		for (f = 1; f <= NF; f++) { split($f, kv, "="); v[kv[1], n] = kv[2]; keys[kv[1]] = 1 }
	}
	END {
		if (n != runs) { print "bench-rdma: " n " of " runs " runs finished" > "/dev/stderr"; exit 1 }

		out = ""
		for (k in keys) { for (i = 1; i <= n; i++) a[i] = v[k, i]; m[k] = med(a, n) }
		printf "median of %d runs: rdma_read_fault_p50_us=%.1f tcp_read_fault_p50_us=%.1f rdma_rtt_p50_us=%.1f tcp_rtt_p50_us=%.1f rdma_stable_read_p50_us=%.1f tcp_stable_read_p50_us=%.1f read_fault_rdma_tcp_ratio=%.2f\n",
			n, m["rdma_read_fault_p50_us"], m["tcp_read_fault_p50_us"], m["rdma_rtt_p50_us"],
			m["tcp_rtt_p50_us"], m["rdma_stable_read_p50_us"], m["tcp_stable_read_p50_us"],
			m["read_fault_rdma_tcp_ratio"]
	}' "$log.runs"
