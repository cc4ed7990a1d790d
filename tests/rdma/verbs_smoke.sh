#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# verbs_smoke.sh: runs INSIDE the Soft-RoCE test VM and checks that verbs work:
#   scripts/run-in-rdma-testvm.sh -- tests/rdma/verbs_smoke.sh
#
# 1. ibv_devices lists rxe0;
# 2. ibv_devinfo -d rxe0 shows port 1 PORT_ACTIVE;
# 3. the GID of 10.0.2.15 (RoCE v2, ::ffff:10.0.2.15) is in rxe0's table;
#    its index (1 on this VM: index 0 is eth0's IPv6 link-local) is used below;
# 4. ibv_rc_pingpong server and client, two processes on the one device,
#    exchange messages over RC and both exit 0: once with the defaults
#    (4096 bytes, 1000 iterations) and once with -s 4096 -n 100.
# Each step prints "verbs_smoke: ok: ..." or "verbs_smoke: FAIL: ..." and the
# first failure exits 1. Latencies under TCG only prove that the code runs.
set -uo pipefail

dev=rxe0
ip=10.0.2.15
step_timeout=${VERBS_SMOKE_TIMEOUT:-120}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() { echo "verbs_smoke: ok: $*"; }
fail() {
	echo "verbs_smoke: FAIL: $*"
	exit 1
}
indent() { sed 's/^/    /'; }

[ -e /dev/infiniband/uverbs0 ] || fail "/dev/infiniband/uverbs0 missing: not in the Soft-RoCE VM? (run with scripts/run-in-rdma-testvm.sh)"

# 1. ibv_devices
out=$(ibv_devices 2>&1)
rc=$?
[ $rc -eq 0 ] || { echo "$out" | indent; fail "ibv_devices exited $rc"; }
echo "$out" | indent
echo "$out" | awk '{ print $1 }' | grep -qx "$dev" || fail "ibv_devices does not list $dev"
ok "ibv_devices lists $dev"

# 2. ibv_devinfo
out=$(ibv_devinfo -d "$dev" 2>&1)
rc=$?
[ $rc -eq 0 ] || { echo "$out" | indent; fail "ibv_devinfo -d $dev exited $rc"; }
echo "$out" | indent
echo "$out" | grep -Eq 'state:[[:space:]]+PORT_ACTIVE' || fail "ibv_devinfo -d $dev: port not PORT_ACTIVE"
ok "ibv_devinfo -d $dev: PORT_ACTIVE"

# 3. the GID index of 10.0.2.15, RoCE v2
port=/sys/class/infiniband/$dev/ports/1
gid=""
for f in "$port"/gids/*; do
	i=${f##*/}
	if [ "$(cat "$f" 2>/dev/null)" = "0000:0000:0000:0000:0000:ffff:0a00:020f" ] &&
		[ "$(cat "$port/gid_attrs/types/$i" 2>/dev/null)" = "RoCE v2" ]; then
		gid=$i
		break
	fi
done
[ -n "$gid" ] || {
	grep -H . "$port"/gids/* "$port"/gid_attrs/types/* 2>/dev/null | grep -v ':0000:0000:0000:0000:0000:0000:0000:0000$' | indent
	fail "no RoCE v2 GID for $ip in $dev's table"
}
ok "GID index $gid is ::ffff:$ip (RoCE v2)"

# Waits until something listens on TCP port $1 (ibv_rc_pingpong's client
# connects once and gives up if the server is not listening yet).
wait_listen() {
	local hex i
	hex=$(printf '%04X' "$1")
	for i in $(seq 1 200); do
		awk -v p=":$hex" '$2 ~ p"$" && $4 == "0A" { f = 1 } END { exit !f }' \
			/proc/net/tcp /proc/net/tcp6 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# 4. ibv_rc_pingpong: NAME TCP-PORT EXTRA-ARGS...
pingpong() {
	local name=$1 tcp=$2 spid src crc
	shift 2
	local args=(-d "$dev" -g "$gid" -p "$tcp" "$@")
	timeout "$step_timeout" ibv_rc_pingpong "${args[@]}" >"$tmp/server" 2>&1 &
	spid=$!
	if ! wait_listen "$tcp"; then
		kill "$spid" 2>/dev/null
		wait "$spid"
		indent <"$tmp/server"
		fail "$name: the ibv_rc_pingpong server did not listen on TCP port $tcp within 20 s"
	fi
	timeout "$step_timeout" ibv_rc_pingpong "${args[@]}" 127.0.0.1 >"$tmp/client" 2>&1
	crc=$?
	[ $crc -eq 0 ] || kill "$spid" 2>/dev/null
	wait "$spid"
	src=$?
	echo "  server: ibv_rc_pingpong ${args[*]}"
	indent <"$tmp/server"
	echo "  client: ibv_rc_pingpong ${args[*]} 127.0.0.1"
	indent <"$tmp/client"
	[ $crc -ne 124 ] || fail "$name: the client timed out after $step_timeout s"
	[ $src -ne 124 ] || fail "$name: the server timed out after $step_timeout s"
	[ $crc -eq 0 ] || fail "$name: the client exited $crc"
	[ $src -eq 0 ] || fail "$name: the server exited $src"
	grep -q 'iters in' "$tmp/client" && grep -q 'iters in' "$tmp/server" ||
		fail "$name: no 'iters in' result line from both sides"
	ok "$name: server and client exit 0: $(grep 'iters in' "$tmp/client")"
}
pingpong "rc_pingpong (defaults: 4096 B x 1000)" 18515
pingpong "rc_pingpong 4 KiB x 100" 18516 -s 4096 -n 100

echo "verbs_smoke: PASS"
