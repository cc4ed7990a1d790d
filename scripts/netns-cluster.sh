#!/usr/bin/env bash
# Runs the nodes of a cluster config as separate hosts on THIS machine: one
# network namespace per node, holding the node's address from the config,
# all on one bridge, with per-link conditions and injected faults
# (scripts/lib/netns.sh has the layout; docs/architecture.md, "Failures",
# what disco does about each fault). Needs root. Nothing leaves the
# machine: the addresses exist only inside the namespaces. Everything made
# here (namespaces, their interfaces, the delay line, every process) is
# removed on exit, on error and on Ctrl-C.
#
#   scripts/netns-cluster.sh [options] CONFIG
#
# What runs (one of):
#   (default)            the config's VM, as scripts/run-vm.sh runs it
#                        (--vm, --run, --args, --timeout, --quiet as there;
#                        --append WORDS adds kernel parameters, e.g.
#                        disco.repeat_s=60);
#                        ends with run-vm's summary line
#   --exec -- CMD ARGS   CMD in every node's namespace, @NODE@ and @CONFIG@
#                        replaced (e.g. disco-dsm-stress --config @CONFIG@
#                        --node @NODE@); exit 0 when every one exited 0
#   --shell              set the network up, print it, wait for Ctrl-C
# The network:
#   --link SPEC          conditions on every node's link, e.g.
#                        delay=200us,jitter=50us,loss=1%,reorder=5%,duplicate=1%,rate=100mbit
#                        (and rto_min=10ms: the nodes' TCP minimum retransmission
#                        timeout, on their route)
#   --link-of NODE=SPEC  conditions on one node's link (after --link)
#                        Each applies to what that node sends: a round trip
#                        A->B->A sees A's delay plus B's.
#   --delay-line         use disco-delay-line even where the kernel has netem
#   --ping N             before the nodes start, N pings from the first node to
#                        the second: "netns: ping n0->n1 rtt_us min=.. avg=.. max=.."
# Faults, run one after the other once the trigger is seen:
#   --fault down:NODE[+NODE..]:SEC       those nodes' links cut for SEC seconds
#   --fault partition:A+B/C+D:SEC        no frame between the two groups for SEC
#   --fault pause:NODE:SEC               SIGSTOP NODE's processes, SIGCONT after SEC
#   --fault kill:NODE                    SIGKILL NODE's processes
#   --fault wait:SEC                     wait
#   --fault-after TEXT   trigger: TEXT in the console (VM) or any node's output
#                        (default "disco-guest: running", i.e. the first guest
#                        program; with --exec the faults start at once)
# Output and build:
#   --out DIR            keep logs here (default: a temporary dir, removed):
#                        console.log, NODE.log, NODE.stats, faults.log,
#                        network.log (the delay line's counters)
#   --build DIR          the CMake build dir (default: build)
#
# Every fault is logged as "netns: fault +T s: start|end FAULT" (the end of a
# down or partition with "dropped=N", the frames it cut), every node's end as
# "netns: node N exited S at +T s (D s after the last fault began)", and at
# the end what the network did: "netns: network: loss_dropped=N" and, with
# the delay line, its frames, duplicates and reorderings.
# Exit status: 2 bad arguments or no namespaces on this kernel; otherwise
# as run-vm.sh (0 when every node exited 0 and every guest program passed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build vm="" run="" out="" timeout=900 quiet=0 args=() mode=vm
extra_append="" faults=() fault_after="" ping=0 links=() link_of=() exec_cmd=() force_line=0
while [ $# -gt 0 ]; do
	case "$1" in
	--vm) vm=$2; shift 2 ;;
	--run) run=$2; shift 2 ;;
	--args) args+=("$2"); shift 2 ;;
	--append) extra_append+=" $2"; shift 2 ;;
	--build) build=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--quiet) quiet=1; shift ;;
	--link) links+=("$2"); shift 2 ;;
	--link-of) link_of+=("$2"); shift 2 ;;
	--delay-line) force_line=1; shift ;;
	--ping) ping=$2; shift 2 ;;
	--fault) faults+=("$2"); shift 2 ;;
	--fault-after) fault_after=$2; shift 2 ;;
	--shell) mode=shell; shift ;;
	--exec) mode=exec; shift ;;
	--) shift; break ;;
	-h|--help) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0"; exit 0 ;;
	-*) echo "netns-cluster: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) [ -z "${config:-}" ] || { echo "netns-cluster: two configs given" >&2; exit 2; }
	   config=$1; shift ;;
	esac
done
if [ "$mode" = exec ]; then
	exec_cmd=("$@")
	[ ${#exec_cmd[@]} -gt 0 ] || { echo "netns-cluster: --exec needs -- CMD" >&2; exit 2; }
elif [ $# -gt 0 ]; then
	echo "netns-cluster: unexpected arguments after --: $*" >&2; exit 2
fi
[ -n "${config:-}" ] || { echo "usage: netns-cluster.sh [options] CONFIG (see --help)" >&2; exit 2; }
config=$(realpath "$config")
build=$(realpath "$build")
[ "$(id -u)" -eq 0 ] || { echo "netns-cluster: needs root (network namespaces)" >&2; exit 2; }

# shellcheck source=lib/netns.sh
. "$root/scripts/lib/netns.sh"
# shellcheck source=lib/vm-nodes.sh
. "$root/scripts/lib/vm-nodes.sh"

if ! nsc_probe; then
	echo "netns-cluster: $nsc_probe_why" >&2
	exit 2
fi
nsc_init "$build" "$config" || exit 2
nsc_force_line=$force_line
for l in "${links[@]}"; do nsc_condition all "$l" || exit 2; done
for l in "${link_of[@]}"; do nsc_condition "${l%%=*}" "${l#*=}" || exit 2; done

# Check the fault list before anything is made.
secs() { # "1", "1.5", "1s", "500ms" -> seconds
	case "$1" in
	*ms) awk -v v="${1%ms}" 'BEGIN { printf "%g", v / 1000 }' ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}
known() { [ -n "${nsc_index[$1]:-}" ] || { echo "netns-cluster: --fault: no node $1 in $config" >&2; exit 2; }; }
for f in "${faults[@]}"; do
	IFS=: read -r kind who dur <<<"$f"
	case "$kind" in
	down) for n in ${who//+/ }; do known "$n"; done ;;
	partition) [[ "$who" == */* ]] || { echo "netns-cluster: --fault $f: expected A+B/C+D" >&2; exit 2; }
		for n in ${who//[+\/]/ }; do known "$n"; done ;;
	pause) known "$who" ;;
	kill) known "$who"; dur=0 ;;
	wait) dur=$who ;;
	*) echo "netns-cluster: --fault $f: unknown kind $kind (down, partition, pause, kill, wait)" >&2; exit 2 ;;
	esac
	[[ "$(secs "${dur:-}")" =~ ^[0-9]+(\.[0-9]+)?$ ]] ||
		{ echo "netns-cluster: --fault $f: expected a duration in seconds" >&2; exit 2; }
done

keep=1
if [ -z "$out" ]; then out=$(mktemp -d /tmp/disco-netns.XXXXXX); keep=0; fi
mkdir -p "$out"
nsc_log=$out/network.log
faults_pid=""
# The fault runner and what it runs now (a sleep, an nft); a fault cut
# short leaves its rules, which go with the namespaces.
stop_faults() {
	[ -n "$faults_pid" ] || return 0
	# bash acts on the TERM once its current command ends: end that too
	kill "$faults_pid" 2>/dev/null || true
	pkill -P "$faults_pid" 2>/dev/null || true
	wait "$faults_pid" 2>/dev/null || true
	faults_pid=""
}
cleanup() {
	set +e
	stop_faults
	vmn_stop
	nsc_down
	[ $keep -eq 1 ] || rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

nsc_up || exit 1
nsc_describe
t0=$(date +%s.%N)
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
if [ "$ping" -gt 0 ] 2>/dev/null && [ ${#nsc_nodes[@]} -ge 2 ]; then
	read -r pmin pavg pmax <<<"$(nsc_ping "${nsc_nodes[0]}" "${nsc_nodes[1]}" "$ping")"
	echo "netns: ping ${nsc_nodes[0]}->${nsc_nodes[1]} rtt_us min=${pmin:-?} avg=${pavg:-?} max=${pmax:-?} ($ping pings)"
fi

if [ "$mode" = shell ]; then
	echo "netns: run a command in a node's namespace with: ip netns exec ${nsc_ns[${nsc_nodes[0]}]} CMD"
	echo "netns: Ctrl-C removes everything"
	while :; do sleep 3600; done
fi

# The fault runner: a subshell, logging to faults.log with absolute times.
run_faults() {
	local f kind who dur n a b
	for f in "${faults[@]}"; do
		IFS=: read -r kind who dur <<<"$f"
		echo "start $(date +%s.%N) $f"
		case "$kind" in
		down) nsc_link_down ${who//+/ }; sleep "$(secs "$dur")"; f+=" dropped=$(nsc_heal)" ;;
		partition) a=${who%%/*} b=${who#*/}; nsc_partition "${a//+/ }" "${b//+/ }"; sleep "$(secs "$dur")"
			f+=" dropped=$(nsc_heal)" ;;
		pause) nsc_pause "$who" "$(secs "$dur")" ;;
		kill) nsc_kill "$who" ;;
		wait) sleep "$(secs "$who")" ;;
		esac
		echo "end $(date +%s.%N) $f"
	done
}

# Start the nodes.
if [ "$mode" = vm ]; then
	node_bin=$build/node-monitor/disco-node
	vmn_init "$node_bin" "$config" "$vm" ||
		{ echo "netns-cluster: cannot read the nodes of the VM from $config" >&2; exit 2; }
	for n in "${vmn_nodes[@]}"; do vmn_wrap[$n]=$(nsc_wrap "$n"); done
	[ -n "$run" ] || run=coherence
	append="disco.run=$run$extra_append"
	for a in "${args[@]}"; do append+=" disco.args.${a%%=*}=${a#*=}"; done
	vmn_start_all "$out" "$append"
	[ $quiet -eq 1 ] || vmn_follow "$out"
	watch_files=("$out/console.log")
	[ -n "$fault_after" ] || fault_after="disco-guest: running"
else
	vmn_nodes=("${nsc_nodes[@]}")
	watch_files=()
	for n in "${nsc_nodes[@]}"; do
		cmd=()
		for w in "${exec_cmd[@]}"; do w=${w//@NODE@/$n}; cmd+=("${w//@CONFIG@/$config}"); done
		# shellcheck disable=SC2046
		$(nsc_wrap "$n") "${cmd[@]}" >"$out/$n.log" 2>&1 </dev/null &
		vmn_pid[$n]=$!
		vmn_pids+=($!)
		watch_files+=("$out/$n.log")
	done
fi

# Wait: every node's end (its time), the trigger, the deadline.
deadline=$((SECONDS + timeout))
declare -A ended=() seen=()
fault_began=""
faults_started=0
[ ${#faults[@]} -gt 0 ] || faults_started=1
status=0
while :; do
	if [ $faults_started -eq 0 ] && { [ -z "$fault_after" ] || grep -qF "$fault_after" "${watch_files[@]}" 2>/dev/null; }; then
		run_faults >"$out/faults.log" 2>&1 &
		faults_pid=$!
		faults_started=1
	fi
	if [ -s "$out/faults.log" ]; then
		while read -r what when f; do
			key="$what $when"
			[ -z "${seen[$key]:-}" ] || continue
			seen[$key]=1
			echo "netns: fault +$(awk -v a="$t0" -v b="$when" 'BEGIN { printf "%.1f", b - a }') s: $what $f"
			[ "$what" != start ] || fault_began=$when
		done < <(grep -E '^(start|end) ' "$out/faults.log")
	fi
	live=0
	for n in "${vmn_nodes[@]}"; do
		p=${vmn_pid[$n]:-}
		[ -n "$p" ] && [ -z "${ended[$n]:-}" ] || continue
		if kill -0 "$p" 2>/dev/null; then live=1; continue; fi
		rc=0
		wait "$p" || rc=$?
		vmn_rc[$n]=$rc
		ended[$n]=1
		[ "$rc" -eq 0 ] || status=1
		rel=""
		[ -z "$fault_began" ] ||
			rel=" ($(awk -v a="$fault_began" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the last fault began)"
		echo "netns: node $n exited $rc at +$(since "$t0") s$rel"
	done
	[ $live -eq 1 ] || break
	if [ $SECONDS -ge $deadline ]; then
		echo "netns: timeout after $timeout s: stopping every node" >&2
		status=1
		break
	fi
	sleep 0.1
done
stop_faults
vmn_unfollow
nsc_report
if [ "$mode" = exec ]; then
	for n in "${nsc_nodes[@]}"; do sed "s/^/[$n] /" "$out/$n.log"; done
	echo "netns: exec $([ $status -eq 0 ] && echo pass || echo fail)"
	exit $status
fi

echo "---- node messages and DSM statistics ----"
vmn_report "$out"
guest_exit=poweroff
[ $status -eq 0 ] || guest_exit=error
coherence=not-run
if grep -q "disco-guest: coherence PASS" "$out/console.log"; then coherence=pass
elif grep -q "disco-guest: coherence FAIL" "$out/console.log"; then coherence=fail; fi
grep -q "disco-guest: result=pass" "$out/console.log" || status=1
[ "$coherence" != fail ] || status=1
echo "vm=$vmn_vm nodes=${#vmn_nodes[@]} vcpus=$vmn_vcpus guest_exit=$guest_exit coherence=$coherence"
exit $status
