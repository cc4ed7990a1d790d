# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by scripts/run-vm.sh, scripts/run-debian.sh, scripts/bench-debian.sh
# and the Debian system tests: start every node of a VM on THIS machine (one
# disco-node, hence one QEMU, each), follow the console, wait with a
# deadline, stop what is left, print what the nodes said.
#
# Every process started here is a child of the calling shell, and its pid
# is remembered (vmn_pids, vmn_tail_pid), so vmn_stop can end exactly those
# and a script that calls vmn_stop from its EXIT trap leaves nothing behind
# (a `tail -F` of a deleted console log would follow it forever, and a
# caller reading this script's output through a pipe would never see it
# end).
#
#   vmn_init NODE_BIN CONFIG [VM]   vmn_nodes (master first), vmn_master,
#                                   vmn_vm, vmn_vcpus
#   vmn_start NODE OUT [APPEND]     start NODE in the background: messages in
#                                   OUT/NODE.log, statistics in OUT/NODE.stats;
#                                   the master's console in OUT/console.log;
#                                   QEMU gets "${vmn_qemu_extra[@]}" (each
#                                   word's @NODE@ replaced by the node's name),
#                                   disco-node "${vmn_node_opts[@]}" (--accel);
#                                   with vmn_wrap[NODE] set, the node runs
#                                   under that prefix (e.g. "ip netns exec
#                                   NS": scripts/lib/netns.sh)
#   vmn_start_all OUT [APPEND]      every node, the master last
#   vmn_follow OUT                  copy OUT/console.log to stdout as it grows
#   vmn_unfollow                    stop doing that (after a last look)
#   vmn_wait SECONDS                wait for every started node; 0 when all
#                                   exited 0; 1 (and a message) otherwise;
#                                   vmn_rc[NODE] holds each exit status
#   vmn_stop                        SIGTERM, then SIGKILL after 3 s, to every
#                                   process started here that still runs
#   vmn_report OUT                  each node's messages and statistics
# Works under set -euo pipefail; nothing here exits.

vmn_pids=()
vmn_qemu_extra=()
vmn_node_opts=()
vmn_tail_pid=""
declare -A vmn_pid=() vmn_rc=() vmn_wrap=()

vmn_init() {
	vmn_bin=$1 vmn_config=$2 vmn_vm_opt=${3:-}
	local disco
	disco=$(dirname "$vmn_bin")/disco
	mapfile -t vmn_nodes < <("$disco" config nodes ${vmn_vm_opt:+--vm "$vmn_vm_opt"} "$vmn_config") ||
		return 1
	[ ${#vmn_nodes[@]} -gt 0 ] || return 1
	vmn_master=${vmn_nodes[0]}
	vmn_vm=$("$disco" config vm ${vmn_vm_opt:+--vm "$vmn_vm_opt"} "$vmn_config") || return 1
	vmn_vcpus=$("$disco" config vcpus ${vmn_vm_opt:+--vm "$vmn_vm_opt"} "$vmn_config") || return 1
}

vmn_start() {
	local node=$1 out=$2 append=${3:-} w wrap=()
	[ -z "${vmn_wrap[$node]:-}" ] || read -ra wrap <<<"${vmn_wrap[$node]}"
	local args=(--config "$vmn_config" ${vmn_vm_opt:+--vm "$vmn_vm_opt"} --node "$node"
		"${vmn_node_opts[@]}" --stats "$out/$node.stats" ${append:+--append "$append"})
	if [ ${#vmn_qemu_extra[@]} -gt 0 ]; then
		args+=(--)
		for w in "${vmn_qemu_extra[@]}"; do args+=("${w//@NODE@/$node}"); done
	fi
	if [ "$node" = "$vmn_master" ]; then
		"${wrap[@]}" "$vmn_bin" --console stdio "${args[@]}" >"$out/console.log" 2>"$out/$node.log" </dev/null &
	else
		"${wrap[@]}" "$vmn_bin" --console null "${args[@]}" >"$out/$node.log" 2>&1 </dev/null &
	fi
	vmn_pid[$node]=$!
	vmn_pids+=($!)
}

vmn_start_all() {
	local n
	for n in "${vmn_nodes[@]:1}"; do vmn_start "$n" "$@"; done
	vmn_start "$vmn_master" "$@"
}

vmn_follow() {
	: >>"$1/console.log"
	# a simple command in the background: $! is tail itself
	tail -n +1 -F "$1/console.log" 2>/dev/null &
	vmn_tail_pid=$!
}

vmn_unfollow() {
	[ -n "$vmn_tail_pid" ] || return 0
	sleep 0.3 # the console's last lines
	kill "$vmn_tail_pid" 2>/dev/null || true
	wait "$vmn_tail_pid" 2>/dev/null || true
	vmn_tail_pid=""
	return 0
}

vmn_wait() {
	local deadline=$((SECONDS + $1)) n p status=0
	for n in "${vmn_nodes[@]}"; do
		p=${vmn_pid[$n]:-}
		[ -n "$p" ] || continue
		while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
		if kill -0 "$p" 2>/dev/null; then
			echo "vm-nodes: timeout after $1 s: stopping every node" >&2
			return 1
		fi
		vmn_rc[$n]=0
		wait "$p" || vmn_rc[$n]=$?
		[ "${vmn_rc[$n]}" -eq 0 ] || status=1
	done
	return $status
}

vmn_stop() {
	local p any deadline=$((SECONDS + 3)) live=()
	vmn_unfollow
	for p in "${vmn_pids[@]}"; do
		kill -0 "$p" 2>/dev/null && { kill -TERM "$p" 2>/dev/null; live+=("$p"); }
	done
	while [ ${#live[@]} -gt 0 ] && [ $SECONDS -lt $deadline ]; do
		any=0
		for p in "${live[@]}"; do kill -0 "$p" 2>/dev/null && any=1; done
		[ $any -eq 1 ] || break
		sleep 0.1
	done
	for p in "${live[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
	for p in "${live[@]}"; do wait "$p" 2>/dev/null || true; done
	return 0
}

vmn_report() {
	local n
	for n in "${vmn_nodes[@]}"; do
		grep -v '^$' "$1/$n.log" 2>/dev/null | sed "s/^/[$n] /" || true
		cat "$1/$n.stats" 2>/dev/null || echo "[$n] no statistics (the node did not end cleanly)"
	done
	return 0
}
