#!/usr/bin/env bash
# Soak run: the default guest across the 4 nodes of a network-namespace
# config (default cluster-config/examples/netns-4node.yaml) runs its
# coherence, memtest and spinlock programs round after round for N minutes
# (the guest's disco.repeat_s), while a random short fault is injected
# every minute (spinlock's progress window is 10 s, longer than what a
# fault stalls a vCPU for): a node's link down, a partition into two groups, or a
# node paused, each for 0.3..1 s (shorter than the lost-peer timeout, so
# every one must be survived; docs/architecture.md, "Failures"). Needs
# root. Not part of `make test`.
#
#   scripts/soak.sh [--minutes N] [--seed S] [--build DIR] [--out DIR] [CONFIG]
#
# At the end it checks that every program passed in every round, that the
# guest powered off and every node exited 0, and that no node's disco-node
# or QEMU grew after the first round: resident memory by at most 10% + 32
# MiB, file descriptors and threads by at most 4 (QEMU's thread pool comes
# and goes). It samples every process in each node's namespace every 10 s.
# Last line:
#   soak: minutes=N faults=F rounds=R checks=C failed=0 growth=ok result=pass
# Exit status: 0 when all of that holds, 1 otherwise, 2 for bad arguments.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
minutes=30 seed=$$ build=$root/build out="" config=$root/cluster-config/examples/netns-4node.yaml
while [ $# -gt 0 ]; do
	case "$1" in
	--minutes) minutes=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	-h|--help) sed -n '2,20p' "$0"; exit 0 ;;
	-*) echo "soak: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) config=$1; shift ;;
	esac
done
[[ "$minutes" =~ ^[1-9][0-9]*$ ]] || { echo "soak: --minutes: expected a whole number of minutes, got \"$minutes\"" >&2; exit 2; }
[[ "$seed" =~ ^[0-9]+$ ]] || { echo "soak: --seed: expected a number, got \"$seed\"" >&2; exit 2; }
build=$(realpath "$build")
keep=1
if [ -z "$out" ]; then out=$(mktemp -d /tmp/disco-soak.XXXXXX); keep=0; fi
mkdir -p "$out"

mapfile -t nodes < <("$build/node-monitor/disco" config check --nodes "$config" | awk '{ print $1 }')
[ ${#nodes[@]} -ge 2 ] || { echo "soak: $config: needs at least 2 nodes" >&2; exit 2; }

# The faults: one a minute, the first 30 s after the guest's first program
# starts; kind, node and length drawn from the seed.
RANDOM=$seed
faults=(--fault wait:30)
n_faults=0
for ((m = 0; m < minutes; m++)); do
	len=$(awk -v r=$((RANDOM % 8)) 'BEGIN { printf "%.1f", 0.3 + r * 0.1 }')
	a=${nodes[$((RANDOM % ${#nodes[@]}))]}
	case $((RANDOM % 3)) in
	0) f=down:$a:$len ;;
	1) half=$((${#nodes[@]} / 2))
	   g1=$(IFS=+; echo "${nodes[*]:0:$half}") g2=$(IFS=+; echo "${nodes[*]:$half}")
	   f=partition:$g1/$g2:$len ;;
	2) f=pause:$a:$len ;;
	esac
	faults+=(--fault "$f" --fault "wait:$(awk -v l="$len" 'BEGIN { printf "%.1f", 60 - l }')")
	n_faults=$((n_faults + 1))
done

runner_pid=""
sampler_pid=""
cleanup() {
	set +e
	[ -z "$sampler_pid" ] || { kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; }
	# netns-cluster removes everything it made on TERM
	[ -z "$runner_pid" ] || { kill "$runner_pid" 2>/dev/null; wait "$runner_pid" 2>/dev/null; }
	[ $keep -eq 1 ] || rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

echo "soak: $minutes minutes, $n_faults faults (seed $seed), ${#nodes[@]} nodes of $config; logs in $out"
"$root/scripts/netns-cluster.sh" --build "$build" --out "$out/run" --quiet \
	--timeout $((minutes * 60 + 900)) --run coherence,memtest,spinlock --args spinlock=10 \
	--append "disco.repeat_s=$((minutes * 60))" "${faults[@]}" "$config" >"$out/run.txt" 2>&1 &
runner_pid=$!

# Every 10 s, each process in each node's namespace: "T NODE PID COMM RSS_KB
# FDS THREADS", and "mark round2" once the guest began its second round.
sample() {
	local i n ns p comm rss thr fds marked=0
	while kill -0 "$runner_pid" 2>/dev/null; do
		if [ $marked -eq 0 ] && grep -q "disco-guest: round 2" "$out/run/console.log" 2>/dev/null; then
			echo "mark round2"
			marked=1
		fi
		for i in "${!nodes[@]}"; do
			n=${nodes[$i]} ns=disco-nc-$runner_pid-$i
			for p in $(ip netns pids "$ns" 2>/dev/null); do
				comm=$(cat "/proc/$p/comm" 2>/dev/null) || continue
				case "$comm" in disco-node|qemu-system-x86*) ;; *) continue ;; esac
				rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
				thr=$(awk '/^Threads:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
				fds=$(find "/proc/$p/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
				[ -n "$rss" ] && echo "$SECONDS $n $p $comm $rss $fds $thr"
			done
		done
		sleep 10
	done
}
sample >"$out/samples.txt" &
sampler_pid=$!

status=0
wait "$runner_pid" || status=$?
runner_pid=""
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""

grep "^netns: fault\|^netns: node\|^netns: network" "$out/run.txt" || true
console=$(tr -d '\r' <"$out/run/console.log" 2>/dev/null || true)
rounds=$(sed -n 's/.*disco-guest: rounds=\([0-9]*\).*/\1/p' <<<"$console")
checks=$(grep -c "disco-guest: [a-z]* PASS" <<<"$console" || true)
failed=$(grep -c "disco-guest: [a-z]* FAIL" <<<"$console" || true)
injected=$(grep -c "^netns: fault .*: end \(down\|partition\|pause\)" "$out/run.txt" || true)
result=pass
problems=()
[ $status -eq 0 ] || problems+=("netns-cluster exited $status")
[ -n "$rounds" ] || problems+=("the guest did not finish its rounds")
[ "$failed" -eq 0 ] || problems+=("$failed checks failed")
[ -z "$rounds" ] || [ "$checks" -eq $((rounds * 3)) ] || problems+=("$checks checks passed in $rounds rounds of 3")
grep -q "guest_exit=poweroff" "$out/run.txt" || problems+=("the guest did not power off cleanly")

# Growth: per process, the last sample after the mark against the first.
growth=ok
if ! grep -q "^mark round2" "$out/samples.txt"; then
	growth=unmeasured
	problems+=("no sample after the first round")
else
	while read -r line; do
		echo "soak: $line"
		[[ "$line" != *" grew"* ]] || growth=grew
	done < <(awk '
		$1 == "mark" { on = 1; next }
		on { key = $2 " " $4 " " $3
			if (!(key in first)) { first[key] = $0 }
			last[key] = $0 }
		END {
			for (k in first) {
				split(first[k], a, " "); split(last[k], b, " ")
				what = ""
				if (b[5] > a[5] * 1.10 + 32768) what = what " rss"
				if (b[6] > a[6] + 4) what = what " fds"
				if (b[7] > a[7] + 4) what = what " threads"
				printf "%s %s: rss_kb %d -> %d, fds %d -> %d, threads %d -> %d%s\n",
					b[2], b[4], a[5], b[5], a[6], b[6], a[7], b[7],
					what == "" ? "" : ":" what " grew"
			}
		}' "$out/samples.txt" | sort)
	[ "$growth" = ok ] || problems+=("a node process grew after the first round")
fi
for p in "${problems[@]}"; do echo "soak: FAIL: $p"; done
[ ${#problems[@]} -eq 0 ] || result=fail
echo "soak: minutes=$minutes faults=$injected rounds=${rounds:-0} checks=$checks failed=$failed growth=$growth result=$result"
[ "$result" = pass ]
