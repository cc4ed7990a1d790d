#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# discod_cli_errors: the disco command and discod on bad input and on
# failures, each with the exit status documented in `disco --help` and
# docs/deploy.md and a message naming what is wrong:
#   - no daemon on this machine; a named daemon down (local socket and
#     --tcp): 3, naming the node and its socket or address;
#   - `vm start` while one of the VM's daemons is down: 3, naming that
#     node, and no QEMU left running on the node that is up;
#   - a wrong key over --tcp: 4 ("wrong key"), for a status and for a
#     start (nothing started), and the daemon logs the refused connection;
#     a world-readable key: 4; another user on the 0600 local socket: 4;
#   - an unknown VM, asked of the config or of the daemon: 5, listing the VMs;
#   - bad command lines: 2;
#   - garbage on the control port: the connection is refused, the daemon
#     logs it and keeps serving; a burst of 30 gives a few lines (rate
#     limit) and a count of the others;
#   - discod itself: an unknown node, a world-readable key, a second
#     daemon of the same node: exit 2, each with its message.
# No guest boots here: QEMU is never started.
#   discod_cli_errors_test.sh BUILD
set -euo pipefail
. "$(dirname "$0")/discod-lib.sh"
dl_init "$1"
{ dl_cluster 2; echo "vms:"; dl_vm sys "n0: 1, n1: 1" "$(dl_port_block 2)"; } >"$dl_tmp/cluster.yaml"
discod=$dl_build/node-monitor/discod

echo "== no daemon"
expect_exit 3 "no discod runs on this machine" dl_disco status
expect_exit 3 "discod n0 \($dl_run/discod-n0.sock\) is not running" dl_disco --node n0 status
expect_exit 3 "discod n1 \(127.0.0.1:[0-9]+\) is not reachable: Connection refused" \
	dl_disco --tcp --node n1 status

echo "== one of two daemons"
dl_daemon n0
expect_exit 3 "vm sys not started: discod n1 \(127.0.0.1:[0-9]+\) is not reachable" \
	dl_disco vm start sys
# n0 started nothing (it asks every node before it starts a QEMU)
if grep -q "qemu pid" "$dl_tmp/discod-n0.log"; then
	cat "$dl_tmp/discod-n0.log"; echo "FAIL: n0 started a QEMU for a VM whose n1 is down"; exit 1
fi
[ -z "$(pgrep -P "${dl_pid[n0]}" || true)" ] || { echo "FAIL: discod n0 has children"; exit 1; }
expect_exit 3 "n1 +DOWN .*discod n1 \(127.0.0.1:[0-9]+\) is not reachable" dl_disco status
expect_exit 3 "n0 +up +127.0.0.1" dl_disco --tcp --node n0 status

echo "== keys"
head -c 32 /dev/urandom >"$dl_tmp/other.key"
chmod 600 "$dl_tmp/other.key"
sed "s|key_file: [^}]*|key_file: $dl_tmp/other.key|" "$dl_tmp/cluster.yaml" >"$dl_tmp/other.yaml"
expect_exit 4 "discod n0 \(127.0.0.1:[0-9]+\): wrong key \(bad HMAC\)" \
	"$dl_build/node-monitor/disco" --config "$dl_tmp/other.yaml" --tcp --node n0 status
grep -q "control connection from 127.0.0.1:[0-9]* refused" "$dl_tmp/discod-n0.log" ||
	{ cat "$dl_tmp/discod-n0.log"; echo "FAIL: n0 did not log the refused key"; exit 1; }
# nothing reaches a VM with the wrong key: a start is refused, nothing runs
expect_exit 4 "discod n0 \(127.0.0.1:[0-9]+\): wrong key \(bad HMAC\)" \
	"$dl_build/node-monitor/disco" --config "$dl_tmp/other.yaml" --tcp --node n0 vm start sys
[ -z "$(pgrep -P "${dl_pid[n0]}" || true)" ] || { echo "FAIL: a start with the wrong key started a QEMU"; exit 1; }
# the local socket is 0600 root: another user cannot use it
if [ "$(id -u)" -eq 0 ] && id nobody >/dev/null 2>&1; then
	chmod 0711 "$dl_tmp" "$dl_run"
	expect_exit 4 "discod n0 \($dl_run/discod-n0.sock\): permission denied on .*run as root, or as a member of the socket's group" \
		setpriv --reuid=nobody --regid=nogroup --clear-groups \
		"$dl_build/node-monitor/disco" --run-dir "$dl_run" --node n0 status
	chmod 0700 "$dl_tmp"
else
	echo "(not root: the socket's permission check is not exercised)"
fi
chmod 644 "$dl_tmp/other.key"
expect_exit 4 "key_file: .*other.key\" is open to group or others \(mode 0644\)" \
	"$dl_build/node-monitor/disco" --config "$dl_tmp/other.yaml" --tcp --node n0 status

echo "== unknown VM"
expect_exit 5 "no VM named \"ghost\" in .*cluster.yaml; the VMs are sys" dl_disco vm start ghost
# without a readable config the daemon answers (its config)
expect_exit 5 "no VM named \"ghost\" in .*cluster.yaml; the VMs are sys" \
	env DISCO_CONFIG=/nonexistent "$dl_build/node-monitor/disco" --run-dir "$dl_run" --node n0 vm stop ghost
expect_exit 1 "vm sys does not run on node n0 \(its master\): no console" dl_disco vm console sys

echo "== command lines"
expect_exit 2 "usage: disco" "$dl_build/node-monitor/disco"
expect_exit 2 "disco vm start: expected one VM name" dl_disco vm start
expect_exit 2 "unknown subcommand \"frob\"" dl_disco vm frob
expect_exit 2 "no node named \"n9\"" dl_disco --tcp --node n9 status
expect_exit 0 "usage: disco .*vm start VM" dl_disco vm --help

echo "== garbage on the control port"
port=$(sed -n 's/.*name: n0,.*control_port: \([0-9]*\).*/\1/p' "$dl_tmp/cluster.yaml")
/usr/bin/python3 - "$port" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
try:
    s.sendall(b"\x00\x00\x10\x00" + b"A" * 200)
    data = s.recv(100)
except (ConnectionResetError, BrokenPipeError):
    data = b""
assert data == b"", "the daemon answered garbage with %r" % data
PY
# (within a second of the wrong key's line it is counted, then shown with
# the count once the second is over)
for _ in $(seq 1 30); do
	grep -q "control connection from 127.0.0.1:[0-9]* refused: bad frame" "$dl_tmp/discod-n0.log" && break
	sleep 0.2
done
grep -q "control connection from 127.0.0.1:[0-9]* refused: bad frame" "$dl_tmp/discod-n0.log" ||
	{ cat "$dl_tmp/discod-n0.log"; echo "FAIL: n0 did not log the bad frame"; exit 1; }
# a burst of 30 refused connections: a few lines, the rest counted
before=$(grep -c "refused" "$dl_tmp/discod-n0.log")
/usr/bin/python3 - "$port" <<'PY'
import socket, sys
for _ in range(30):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
    try:
        s.sendall(b"\x00\x00\x10\x00" + b"B" * 64)
        s.recv(100)
    except (ConnectionResetError, BrokenPipeError):
        pass
    s.close()
PY
sleep 2.5 # the sampler flushes the count once its second is over
lines=$(( $(grep -c "refused" "$dl_tmp/discod-n0.log") - before ))
grep -qE "[0-9]+ more like this in [0-9.]+ s not shown" "$dl_tmp/discod-n0.log" ||
	{ cat "$dl_tmp/discod-n0.log"; echo "FAIL: the burst's count was not logged"; exit 1; }
[ "$lines" -le 8 ] || { cat "$dl_tmp/discod-n0.log"; echo "FAIL: 30 refused connections gave $lines log lines"; exit 1; }
echo "ok: 30 refused connections: $lines log lines, the rest counted"
expect_exit 3 "n0 +up" dl_disco --node n0 status

echo "== discod itself"
expect_exit 2 "discod: no node named \"n9\" in .*cluster.yaml" \
	"$discod" --config "$dl_tmp/cluster.yaml" --node n9 --run-dir "$dl_run"
expect_exit 2 "discod n0: another discod of node n0 runs" \
	"$discod" --config "$dl_tmp/cluster.yaml" --node n0 --run-dir "$dl_run"
expect_exit 2 "is open to group or others \(mode 0644\)" \
	"$discod" --config "$dl_tmp/other.yaml" --node n1 --run-dir "$dl_run"
expect_exit 2 "discod: unknown option \"--bogus\"" "$discod" --bogus
kill -0 "${dl_pid[n0]}" || { echo "FAIL: discod n0 died"; exit 1; }
echo "PASS: disco and discod errors"
