# Sourced by scripts/netns-cluster.sh, scripts/soak.sh, scripts/bench-netns.sh
# and the tests in tests/netns/: the nodes of a cluster config as separate
# hosts on one machine, on a network that can be slowed and broken.
#
# Layout (every name ends in the creating shell's pid, so runs never
# collide and a dead run's leftovers can be found):
#
#   namespace disco-nc-PID-I (node I, in config order)
#     eth0   the node's address from the config (/24), gso_max_size 1500
#            (so TCP hands the network MTU-sized frames: loss and
#            reordering hit segments, as on a wire), tbf for `rate`,
#            netem for delay etc. when the kernel has it
#   namespace disco-nc-PID-sw (the network)
#     br0    a bridge; pI is node I's port
#     pI     ==veth== eth0 of node I, or, when node I's link has a delay
#            and the kernel has no netem:
#     dI ==veth== eth0, eI ==veth== pI, and disco-delay-line forwarding
#            dI -> eI (after the delay) and eI -> dI (at once)
#     nft table netdev disco: per port, chains on pI's ingress (frames
#            from node I) and egress (frames to node I): the faults (a
#            regular chain flushed to heal), then the loss (numgen random)
#
# Jitter keeps frames in order in disco-delay-line (a link's queue does not
# reorder; reorder=P% does); netem's jitter reorders them.
#
# Conditions are per node link and apply to what the node sends (like
# netem on its interface): one-way delay A->B is A's delay, a ping's
# round trip A->B->A is delay(A) + delay(B).
#
#   nsc_init BUILD CONFIG      nodes of the config: nsc_nodes (names),
#                              nsc_addr[NAME], nsc_index[NAME], nsc_ns[NAME]
#   nsc_condition NODE|all SPEC   before nsc_up; SPEC: comma-separated
#                              delay=200us jitter=50us loss=1% reorder=5%
#                              duplicate=1% rate=100mbit; and rto_min=10ms:
#                              not the link but the node's TCP (its route's
#                              minimum retransmission timeout, 200 ms by
#                              default), as data-centre hosts are tuned
#   nsc_up                     build it all; 0, or 1 after a message (with
#                              everything built so far removed)
#   nsc_wrap NODE              the prefix that runs a command in NODE's
#                              namespace ("ip netns exec disco-nc-...")
#   nsc_link_down NODE...      cut these nodes off (every frame from or to them)
#   nsc_partition "A B" "C D"  no frame between the two groups
#   nsc_heal                   remove every fault; prints how many frames
#                              the faults dropped
#   nsc_drops REGEX            frames dropped by the chains named REGEX
#   nsc_report                 "netns: network: loss_dropped=N ..." with the
#                              delay line's counters
#   nsc_pause NODE SECONDS     SIGSTOP every process in NODE's namespace,
#                              SIGCONT after SECONDS
#   nsc_kill NODE              SIGKILL every process in NODE's namespace
#   nsc_ping FROM TO N         N pings; prints "min avg max" round trips in us
#   nsc_down                   stop every process in the namespaces, the
#                              delay line, remove the namespaces (their
#                              interfaces go with them); 1 if anything is
#                              left, after saying what
#   nsc_reap_stale             remove namespaces of runs whose shell is gone
#   nsc_probe                  0 when this kernel can make a namespace with
#                              a veth pair; else 1 and nsc_probe_why
# Works under set -euo pipefail; nothing here exits.

nsc_pid=$$
nsc_prefix=disco-nc-$nsc_pid
nsc_sw=$nsc_prefix-sw
nsc_nodes=()
nsc_line_pid=""
nsc_netem=""
nsc_force_line=0
nsc_made=()
nsc_log=/dev/null
declare -A nsc_addr=() nsc_index=() nsc_ns=() nsc_spec=()

nsc_say() { echo "netns: $*" >&2; }

nsc_probe() {
	local ns=disco-nc-probe-$$
	nsc_probe_why=""
	if ! command -v ip >/dev/null || ! command -v nft >/dev/null; then
		nsc_probe_why="ip or nft is missing (scripts/setup.sh installs iproute2 and nftables)"
		return 1
	fi
	if ! nsc_probe_why=$(ip netns add "$ns" 2>&1); then
		nsc_probe_why="cannot make a network namespace: $nsc_probe_why"
		return 1
	fi
	if ! nsc_probe_why=$(ip -n "$ns" link add v0 type veth peer name v1 2>&1 &&
		ip netns exec "$ns" nft add table netdev t 2>&1 &&
		ip netns exec "$ns" nft add chain netdev t c '{ type filter hook egress device "v0" priority 0; }' 2>&1); then
		nsc_probe_why="no veth pair or nftables netdev hooks in a namespace: $nsc_probe_why"
		ip netns del "$ns" 2>/dev/null || true
		return 1
	fi
	ip netns del "$ns" 2>/dev/null || true
	return 0
}

nsc_init() {
	local build=$1 config=$2 name addr port i=0 first=""
	nsc_build=$build
	nsc_line_bin=$build/tests/netns/disco-delay-line
	local lines
	lines=$("$build/node-monitor/disco" config check --nodes "$config") || return 1
	while read -r name addr port; do
		if ! [[ "$addr" =~ ^([0-9]+\.[0-9]+\.[0-9]+)\.([0-9]+)$ ]]; then
			nsc_say "node $name: address $addr is not an IPv4 literal (each node needs its own address)"
			return 1
		fi
		[ -n "$first" ] || first=${BASH_REMATCH[1]}
		if [ "${BASH_REMATCH[1]}" != "$first" ]; then
			nsc_say "node $name: address $addr is not in $first.0/24 like the first node's"
			return 1
		fi
		local other
		for other in "${nsc_nodes[@]}"; do
			if [ "${nsc_addr[$other]}" = "$addr" ]; then
				nsc_say "nodes $other and $name share address $addr: each node needs its own"
				return 1
			fi
		done
		nsc_nodes+=("$name")
		nsc_addr[$name]=$addr
		nsc_index[$name]=$i
		nsc_ns[$name]=$nsc_prefix-$i
		i=$((i + 1))
	done <<<"$lines"
	[ ${#nsc_nodes[@]} -gt 0 ]
}

# SPEC key=value,... for one node or all; later calls override keys.
nsc_condition() {
	local who=$1 spec=$2 n kv
	for kv in ${spec//,/ }; do
		case "${kv%%=*}" in
		delay|jitter|loss|reorder|duplicate|rate|rto_min) ;;
		*) nsc_say "unknown link condition \"$kv\" (delay, jitter, loss, reorder, duplicate, rate, rto_min)"; return 1 ;;
		esac
		[[ "$kv" == *=* ]] || { nsc_say "link condition \"$kv\" has no value"; return 1; }
	done
	if [ "$who" = all ]; then
		for n in "${nsc_nodes[@]}"; do nsc_spec[$n]="${nsc_spec[$n]:-}${nsc_spec[$n]:+,}$spec"; done
	else
		[ -n "${nsc_index[$who]:-}" ] || { nsc_say "no node $who in the config"; return 1; }
		nsc_spec[$who]="${nsc_spec[$who]:-}${nsc_spec[$who]:+,}$spec"
	fi
}

# nsc_get NODE KEY: the last value given for KEY in NODE's spec, or "".
nsc_get() {
	local kv v="" spec=${nsc_spec[$1]:-}
	for kv in ${spec//,/ }; do [ "${kv%%=*}" != "$2" ] || v=${kv#*=}; done
	echo "$v"
}

# "1%" or "0.5%" -> parts per million
nsc_ppm() { awk -v p="${1%\%}" 'BEGIN { printf "%d", p * 10000 + 0.5 }'; }

nsc_run() { # a set-up step; its error goes to the message
	local out
	if ! out=$("$@" 2>&1); then
		nsc_say "set-up step failed: $*: $out"
		return 1
	fi
}

nsc_wrap() { echo "ip netns exec ${nsc_ns[$1]}"; }

nsc_up() {
	local n i ns line_args=() delayed
	nsc_reap_stale
	nsc_run ip netns add "$nsc_sw" || return 1
	nsc_made+=("$nsc_sw")
	nsc_run ip -n "$nsc_sw" link set lo up &&
		nsc_run ip -n "$nsc_sw" link add br0 type bridge &&
		nsc_run ip -n "$nsc_sw" link set br0 up &&
		nsc_run ip netns exec "$nsc_sw" nft add table netdev disco || { nsc_down; return 1; }
	for n in "${nsc_nodes[@]}"; do
		i=${nsc_index[$n]} ns=${nsc_ns[$n]}
		nsc_run ip netns add "$ns" || { nsc_down; return 1; }
		nsc_made+=("$ns")
		nsc_run ip -n "$ns" link set lo up || { nsc_down; return 1; }
	done
	# netem where the kernel has it (probed on the first node's loopback)
	if [ -z "$nsc_netem" ]; then
		nsc_netem=no
		if [ $nsc_force_line -eq 0 ] &&
			ip netns exec "${nsc_ns[${nsc_nodes[0]}]}" tc qdisc add dev lo root netem delay 1us 2>/dev/null; then
			ip netns exec "${nsc_ns[${nsc_nodes[0]}]}" tc qdisc del dev lo root 2>/dev/null || true
			nsc_netem=yes
		fi
	fi
	for n in "${nsc_nodes[@]}"; do
		i=${nsc_index[$n]} ns=${nsc_ns[$n]}
		local delay jitter reorder dup loss rate rto_min
		delay=$(nsc_get "$n" delay) jitter=$(nsc_get "$n" jitter) reorder=$(nsc_get "$n" reorder)
		dup=$(nsc_get "$n" duplicate) loss=$(nsc_get "$n" loss) rate=$(nsc_get "$n" rate)
		rto_min=$(nsc_get "$n" rto_min)
		delayed=0
		[ -z "$delay$jitter$reorder$dup" ] || [ "$nsc_netem" = yes ] || delayed=1
		if [ $delayed -eq 1 ]; then
			nsc_run ip link add eth0 netns "$ns" type veth peer name "d$i" netns "$nsc_sw" &&
				nsc_run ip -n "$nsc_sw" link add "e$i" type veth peer name "p$i" &&
				nsc_run ip -n "$nsc_sw" link set "d$i" up &&
				nsc_run ip -n "$nsc_sw" link set "e$i" up || { nsc_down; return 1; }
			local s="delay=${delay:-0}"
			[ -z "$jitter" ] || s+="/jitter=$jitter"
			[ -z "$reorder" ] || s+="/reorder=$reorder"
			[ -z "$dup" ] || s+="/duplicate=$dup"
			line_args+=(--pipe "d$i,e$i,$s" --pipe "e$i,d$i")
		else
			nsc_run ip link add eth0 netns "$ns" type veth peer name "p$i" netns "$nsc_sw" || { nsc_down; return 1; }
		fi
		nsc_run ip -n "$nsc_sw" link set "p$i" master br0 &&
			nsc_run ip -n "$nsc_sw" link set "p$i" up &&
			nsc_run ip -n "$ns" addr add "${nsc_addr[$n]}/24" dev eth0 &&
			nsc_run ip -n "$ns" link set eth0 gso_max_size 1500 &&
			nsc_run ip -n "$ns" link set eth0 up || { nsc_down; return 1; }
		if [ -n "$rto_min" ]; then # the node's TCP, as a data-centre host is tuned
			nsc_run ip -n "$ns" route replace "${nsc_addr[$n]%.*}.0/24" dev eth0 \
				src "${nsc_addr[$n]}" rto_min "$rto_min" || { nsc_down; return 1; }
		fi
		# netem (when there) then tbf under it; or tbf alone
		local parent=root
		if [ "$nsc_netem" = yes ] && [ -n "$delay$jitter$reorder$dup" ]; then
			local ne=(delay "${delay:-0}")
			[ -z "$jitter" ] || ne+=("$jitter")
			[ -z "$reorder" ] || ne+=(reorder "$reorder")
			[ -z "$dup" ] || ne+=(duplicate "$dup")
			nsc_run ip netns exec "$ns" tc qdisc add dev eth0 root handle 1: netem "${ne[@]}" limit 10000 ||
				{ nsc_down; return 1; }
			parent="parent 1:1"
		fi
		if [ -n "$rate" ]; then
			# shellcheck disable=SC2086
			nsc_run ip netns exec "$ns" tc qdisc add dev eth0 $parent handle 10: tbf rate "$rate" \
				burst 64kb latency 200ms || { nsc_down; return 1; }
		fi
		# the port's chains: faults first (flushed to heal), then loss
		local lossrule=""
		[ -z "$loss" ] || lossrule="numgen random mod 1000000 < $(nsc_ppm "$loss") counter drop"
		nsc_run ip netns exec "$nsc_sw" nft -f - <<-EOF || { nsc_down; return 1; }
			table netdev disco {
				chain fault_from$i { }
				chain fault_to$i { }
				chain from$i {
					type filter hook ingress device "p$i" priority 0;
					jump fault_from$i
					$lossrule
				}
				chain to$i {
					type filter hook egress device "p$i" priority 0;
					jump fault_to$i
				}
			}
		EOF
	done
	if [ ${#line_args[@]} -gt 0 ]; then
		[ -x "$nsc_line_bin" ] || { nsc_say "$nsc_line_bin is missing: run make"; nsc_down; return 1; }
		nsc_line_log=$(mktemp /tmp/disco-delay-line.XXXXXX)
		ip netns exec "$nsc_sw" "$nsc_line_bin" "${line_args[@]}" 2>"$nsc_line_log" &
		nsc_line_pid=$!
		local k
		for ((k = 0; k < 50; k++)); do
			grep -q "pipes ready" "$nsc_line_log" 2>/dev/null && break
			kill -0 "$nsc_line_pid" 2>/dev/null || break
			sleep 0.1
		done
		if ! grep -q "pipes ready" "$nsc_line_log"; then
			nsc_say "disco-delay-line did not start: $(cat "$nsc_line_log")"
			nsc_down
			return 1
		fi
	fi
	# every node reaches every other (ARP resolved, so a fault later cuts
	# only what it should)
	local a b
	for a in "${nsc_nodes[@]}"; do
		for b in "${nsc_nodes[@]}"; do
			[ "$a" != "$b" ] || continue
			if ! ip netns exec "${nsc_ns[$a]}" ping -c 1 -W 2 -q "${nsc_addr[$b]}" >/dev/null 2>&1 &&
				! ip netns exec "${nsc_ns[$a]}" ping -c 2 -W 2 -q "${nsc_addr[$b]}" >/dev/null 2>&1; then
				nsc_say "node $a cannot reach $b (${nsc_addr[$b]}) on the new network"
				nsc_down
				return 1
			fi
		done
	done
	return 0
}

nsc_describe() {
	local n how
	how="nftables loss, tbf rate"
	if [ "$nsc_netem" = yes ]; then how+=", netem delay"; else how+=", disco-delay-line delay"; fi
	echo "netns: ${#nsc_nodes[@]} namespaces ($nsc_prefix-*) on bridge br0 in $nsc_sw; $how"
	for n in "${nsc_nodes[@]}"; do
		echo "netns: node $n ${nsc_addr[$n]} in ${nsc_ns[$n]}: ${nsc_spec[$n]:-no conditions}"
	done
}

# nsc_fault_rule NODE CHAIN RULE: the nft commands that replace the rules
# of NODE's CHAIN (fault_from or fault_to) with RULE ("" = none). A fault
# is applied, and healed, as one nft transaction: under load each nft run
# costs ~100 ms, and a cut must last what it was asked to, for TCP's
# retransmission backoff makes the silence up to twice the cut.
nsc_fault_rule() {
	local i=${nsc_index[$1]}
	echo "flush chain netdev disco $2$i"
	[ -z "$3" ] || echo "add rule netdev disco $2$i $3"
}

nsc_nft_apply() { ip netns exec "$nsc_sw" nft -f -; }

nsc_link_down() {
	local n script=""
	for n in "$@"; do
		[ -n "${nsc_index[$n]:-}" ] || { nsc_say "no node $n"; return 1; }
		script+=$(nsc_fault_rule "$n" fault_from "counter drop")$'\n'
		script+=$(nsc_fault_rule "$n" fault_to "counter drop")$'\n'
	done
	nsc_nft_apply <<<"$script"
}

# Two groups of node names (space-separated); no IP frame between them.
nsc_partition() {
	local a b set_a="" set_b="" script=""
	for a in $1; do set_a+="${set_a:+, }${nsc_addr[$a]}"; done
	for b in $2; do set_b+="${set_b:+, }${nsc_addr[$b]}"; done
	for a in $1; do script+=$(nsc_fault_rule "$a" fault_from "ip daddr { $set_b } counter drop")$'\n'; done
	for b in $2; do script+=$(nsc_fault_rule "$b" fault_from "ip daddr { $set_a } counter drop")$'\n'; done
	nsc_nft_apply <<<"$script"
}

# nsc_drops CHAIN_PATTERN: frames dropped so far by the rules of the
# chains whose names match (an extended regex), summed.
nsc_drops() {
	ip netns exec "$nsc_sw" nft list table netdev disco 2>/dev/null | awk -v pat="^($1)$" '
		$1 == "chain" { on = ($2 ~ pat) }
		on && /counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") n += $(i + 1) }
		END { print n + 0 }'
}

# Prints the frames the faults dropped (their counters go with the rules).
nsc_heal() {
	local n dropped
	local script=""
	dropped=$(nsc_drops 'fault_(from|to)[0-9]+')
	for n in "${nsc_nodes[@]}"; do
		script+=$(nsc_fault_rule "$n" fault_from "")$'\n'
		script+=$(nsc_fault_rule "$n" fault_to "")$'\n'
	done
	nsc_nft_apply <<<"$script"
	echo "$dropped"
}

# One line on what the network did so far: frames the loss rules dropped,
# and the delay line's counters summed over its pipes (none without it).
nsc_report() {
	local line="netns: network: loss_dropped=$(nsc_drops 'from[0-9]+')"
	if [ -n "$nsc_line_pid" ] && kill -USR1 "$nsc_line_pid" 2>/dev/null; then
		sleep 0.3
		local np
		np=$(sed -n 's/.* \([0-9][0-9]*\) pipes ready.*/\1/p' "$nsc_line_log")
		# the last report: one line per pipe
		line+=$(grep -- '->' "$nsc_line_log" | tail -n "${np:-0}" | awk '
			{ for (i = 3; i <= NF; i++) { split($i, kv, "="); s[kv[1]] += kv[2] } }
			END { printf " delayed_frames=%d duplicated=%d reordered=%d over_limit=%d send_errors=%d",
				s["tx"], s["duplicated"], s["reordered"], s["over_limit"], s["send_errors"] }')
	fi
	echo "$line"
}

nsc_pids_of() { ip netns pids "${nsc_ns[$1]}" 2>/dev/null | tr '\n' ' '; }

nsc_pause() {
	local pids
	pids=$(nsc_pids_of "$1")
	[ -n "$pids" ] || { nsc_say "pause: no process in node $1's namespace"; return 1; }
	# shellcheck disable=SC2086
	kill -STOP $pids 2>/dev/null || true
	sleep "$2"
	# shellcheck disable=SC2086
	kill -CONT $pids 2>/dev/null || true
}

nsc_kill() {
	local pids
	pids=$(nsc_pids_of "$1")
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
}

# N pings FROM -> TO, 20 ms apart; "min avg max" in microseconds.
nsc_ping() {
	ip netns exec "${nsc_ns[$1]}" ping -n -q -c "$3" -i 0.02 -W 2 "${nsc_addr[$2]}" 2>/dev/null |
		awk -F'[/ =]+' '/^rtt|^round-trip/ { printf "%d %d %d\n", $6 * 1000, $7 * 1000, $8 * 1000 }'
}

# Stop every process in the given namespaces (TERM, then KILL after 3 s).
nsc_stop_procs() {
	local ns pids="" p deadline=$((SECONDS + 3))
	for ns in "$@"; do pids+=" $(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"; done
	[ -n "${pids// /}" ] || return 0
	# shellcheck disable=SC2086
	kill -CONT $pids 2>/dev/null || true # a paused node must be able to die
	# shellcheck disable=SC2086
	kill -TERM $pids 2>/dev/null || true
	while [ $SECONDS -lt $deadline ]; do
		local any=0
		for p in $pids; do kill -0 "$p" 2>/dev/null && any=1; done
		[ $any -eq 1 ] || return 0
		sleep 0.1
	done
	# shellcheck disable=SC2086
	kill -KILL $pids 2>/dev/null || true
	sleep 0.2
}

nsc_down() {
	local ns status=0 left
	[ ${#nsc_made[@]} -gt 0 ] || return 0
	nsc_stop_procs "${nsc_made[@]}"
	if [ -n "$nsc_line_pid" ]; then
		kill -TERM "$nsc_line_pid" 2>/dev/null || true
		wait "$nsc_line_pid" 2>/dev/null || true
		nsc_line_pid=""
		[ -z "${nsc_line_log:-}" ] || { cat "$nsc_line_log" >>"$nsc_log" 2>/dev/null || true; rm -f "$nsc_line_log"; }
	fi
	for ns in "${nsc_made[@]}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	nsc_made=()
	left=$(ip netns list 2>/dev/null | awk '{ print $1 }' | grep "^$nsc_prefix-" || true)
	if [ -n "$left" ]; then
		nsc_say "left behind: namespaces $left"
		status=1
	fi
	return $status
}

# Namespaces of earlier runs whose shell no longer exists (killed with -9).
nsc_reap_stale() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }' | grep '^disco-nc-[0-9]*-' || true); do
		pid=${ns#disco-nc-}
		pid=${pid%%-*}
		[ "$pid" != "$nsc_pid" ] || continue
		if ! kill -0 "$pid" 2>/dev/null; then
			nsc_stop_procs "$ns"
			ip netns del "$ns" 2>/dev/null && nsc_say "removed $ns, left by an earlier run (pid $pid)"
		fi
	done
	return 0
}
