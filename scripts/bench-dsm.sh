#!/usr/bin/env bash
# DSM benchmarks for docs/benchmarks.md: the latency bench (2 then 4 local
# processes, with the raw transport round trip measured in the same run)
# and the stress tool's sustained coherence-fault rate with 2 processes.
# Prints the date, commit, machine and every command with its figures.
# Usage: scripts/bench-dsm.sh [BUILD_DIR]   (default: build)
set -euo pipefail
build=${1:-build}
cd "$(dirname "$0")/.."
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo "machine: $(nproc) CPUs, $(uname -r), load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "env: DISCO_POLL_US=${DISCO_POLL_US:-default} DISCO_POLL_LINGER_US=${DISCO_POLL_LINGER_US:-default} DISCO_LOOP_SCHED=${DISCO_LOOP_SCHED:-default}"
echo
echo "\$ $build/dsm/disco-dsm-bench"
"$build/dsm/disco-dsm-bench" 2>/dev/null
echo
cmd=("$build/dsm/disco-dsm-stress" --processes 2 --threads 2 --iterations 100000)
echo "\$ ${cmd[*]}"
"${cmd[@]}" 2>/dev/null | grep '^stress:'
cmd=("$build/dsm/disco-dsm-stress")
echo "\$ ${cmd[*]}   (standard run: 4 processes)"
"${cmd[@]}" 2>/dev/null | grep '^stress:'
