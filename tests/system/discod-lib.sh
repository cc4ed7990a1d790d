# SPDX-License-Identifier: GPL-2.0-or-later
# Shared by the discod tests (sourced): a cluster file whose nodes all run
# on 127.0.0.1 with free ports, daemons started and stopped by pid, the
# disco command pointed at them.
#   dl_init BUILD                   sets dl_tmp (removed at exit), dl_build
#   dl_ports N                      N free TCP ports on 127.0.0.1, one a line
#   dl_cluster NODES [KEY]          the cluster: and nodes: sections (nodes
#                                   n0..n(NODES-1), each with a session,
#                                   control and metrics port) on stdout
#   dl_vm NAME "n0: 1, n1: 1" PORT [MEM]  a vms: entry booting the default guest
#   dl_daemon NODE [CONFIG]         starts discod NODE (log dl_tmp/discod-NODE.log),
#                                   waits for its socket; its pid in dl_pid[NODE]
#   dl_disco ARGS...                the disco command against dl_tmp/cluster.yaml
#                                   and the daemons' run dir (asking discod
#                                   $DL_NODE when set)
#   dl_metrics_url NODE             http://127.0.0.1:PORT/metrics of NODE
#   dl_vm_line VM NODE              VM's line of `disco status` for NODE (and
#                                   the reason line under it, if any)
#   dl_fail MESSAGE                 FAIL: MESSAGE, then the status, every
#                                   daemon's log, the tails of every QEMU's
#                                   log and console; exits 1
# Every daemon this file started is sent SIGTERM at exit (then SIGKILL), so
# no QEMU is left behind (discod stops its QEMUs; they die with it anyway).

dl_init() {
	dl_build=$(realpath "$1")
	dl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	dl_tmp=$(mktemp -d /tmp/disco-discod.XXXXXX)
	dl_run=$dl_tmp/run
	mkdir -p "$dl_run"
	declare -gA dl_pid=() dl_control=() dl_metrics=()
	trap dl_cleanup EXIT
}

dl_cleanup() {
	local p
	for p in "${dl_pid[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${dl_pid[@]}"; do
		for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$p" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	[ -n "${DL_KEEP:-}" ] || rm -rf "$dl_tmp"
}

dl_ports() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
for s in socks:
    print(s.getsockname()[1])
PY
}

dl_cluster() {
	local nodes=$1 key=${2:-$dl_tmp/local.key} i
	local -a p
	# the demo key, 0600 whatever mode the checkout gave it
	[ -n "${2:-}" ] || install -m 0600 "$dl_root/cluster-config/examples/local.key" "$key"
	mapfile -t p < <(dl_ports $((nodes * 3)))
	echo "cluster:"
	echo "  name: discod-test"
	echo "  transport: tcp"
	echo "  auth: {key_file: $key}"
	echo "  peer_timeout_ms: 3000"
	echo "  connect_timeout_ms: 60000"
	echo "nodes:"
	for ((i = 0; i < nodes; i++)); do
		echo "  - {name: n$i, address: 127.0.0.1, port: ${p[3 * i]}, control_port: ${p[3 * i + 1]}, metrics_port: ${p[3 * i + 2]}}"
	done
}

dl_vm() {
	local name=$1 placement=$2 port=$3 mem=${4:-256M} n
	n=$(tr ',' '\n' <<<"$placement" | awk -F: '{s += $2} END {print s}')
	echo "  - name: $name"
	echo "    memory: $mem"
	echo "    vcpus: $n"
	echo "    vcpu_placement: {$placement}"
	echo "    port: $port"
	echo "    kernel: $dl_build/guest/vmlinuz"
	echo "    initrd: $dl_build/guest/initrd.img"
	echo "    cmdline: \"console=ttyS0 panic=-1 quiet tsc=reliable\""
	echo "    on_reset: stop"
}

# A free block of N consecutive ports for vms[].port (best effort: the
# ports are free when this runs).
dl_port_block() {
	/usr/bin/python3 - "$1" <<'PY'
import socket, sys, random
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000)
    socks = []
    try:
        for k in range(n):
            s = socket.socket(); s.bind(("127.0.0.1", base + k)); socks.append(s)
    except OSError:
        continue
    print(base); break
PY
}

dl_daemon() {
	local node=$1 config=${2:-$dl_tmp/cluster.yaml}
	"$dl_build/node-monitor/discod" --config "$config" --node "$node" --run-dir "$dl_run" \
		--qemu "$dl_build/qemu/qemu-system-x86_64" >"$dl_tmp/discod-$node.log" 2>&1 &
	dl_pid[$node]=$!
	# ready when it says so: that line comes after the local socket, the
	# control port and the metrics port all listen (the socket alone is
	# not enough: another daemon asking this one over its control port
	# before that port listens sees it down)
	for _ in $(seq 1 100); do
		[ -S "$dl_run/discod-$node.sock" ] &&
			grep -q "discod: node $node of cluster" "$dl_tmp/discod-$node.log" && return 0
		kill -0 "${dl_pid[$node]}" 2>/dev/null || break
		sleep 0.1
	done
	cat "$dl_tmp/discod-$node.log"
	echo "FAIL: discod $node did not start"
	exit 1
}

dl_disco() {
	"$dl_build/node-monitor/disco" --config "$dl_tmp/cluster.yaml" --run-dir "$dl_run" \
		${DL_NODE:+--node "$DL_NODE"} "$@"
}

dl_metrics_url() {
	local port
	port=$(sed -n "s/.*name: $1,.*metrics_port: \([0-9]*\).*/\1/p" "$dl_tmp/cluster.yaml")
	echo "http://127.0.0.1:$port/metrics"
}

dl_vm_line() {
	dl_disco status 2>/dev/null | awk -v vm="vm $1:" -v node="$2" '
		index($0, vm) == 1 { on = 1; next } /^vm / { on = 0 }
		found && /^              / { print; exit } found { exit }
		on && $1 == node { print; found = 1 }'
}

dl_fail() {
	local f
	shopt -s nullglob
	echo "FAIL: $*"
	dl_disco status || true
	for f in "$dl_tmp"/discod-*.log; do echo "---- $f"; cat "$f"; done
	for f in "$dl_run"/n*/*/qemu.log; do echo "---- $f (last 15 lines)"; tail -n 15 "$f"; done
	for f in "$dl_run"/n*/*/console.log; do echo "---- $f (last 40 lines)"; tail -n 40 "$f"; done
	exit 1
}

# expect_exit WANT PATTERN CMD...: CMD exits WANT and its stderr+stdout
# contains PATTERN (grep -E).
expect_exit() {
	local want=$1 pattern=$2 rc out
	shift 2
	set +e
	out=$("$@" 2>&1)
	rc=$?
	set -e
	if [ "$rc" -ne "$want" ] || ! grep -qE -- "$pattern" <<<"$out"; then
		echo "FAIL: $* exited $rc (want $want), output:"
		echo "$out"
		echo "(wanted a line matching: $pattern)"
		exit 1
	fi
	echo "ok: exit $rc: $(grep -E -m1 -- "$pattern" <<<"$out")"
}
