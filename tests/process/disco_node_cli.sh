#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# disco-node's command line: every mistake exits 2 with a message saying
# what is wrong (and nothing is started); --dry-run prints the QEMU command
# line for a valid setup; a QEMU that fails or is killed gives exit 1 and
# says how it ended. /bin/true and a small script stand in for QEMU.
# Usage: disco_node_cli.sh PATH/TO/disco-node
set -uo pipefail
node=$1
# shellcheck source=expect.sh
. "$(dirname "$0")/expect.sh"
here="$(cd "$(dirname "$0")" && pwd)"
examples="$(cd "$here/../../cluster-config/examples" && pwd)"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
unset DISCO_QEMU

# The 2-node example, but with a guest that exists (empty stand-in files)
# and the demo key by absolute path.
: > "$tmp/vmlinuz"; : > "$tmp/initrd.img"
sed -e "s#key_file: local.key#key_file: $examples/local.key#" \
	-e "s#kernel: .*#kernel: $tmp/vmlinuz#" -e "s#initrd: .*#initrd: $tmp/initrd.img#" \
	"$examples/local-2node.yaml" > "$tmp/c.yaml"
# Two VMs, and a third node outside both.
cat "$tmp/c.yaml" > "$tmp/two.yaml"
sed -i -e 's/^    port: 7401$/    port: 7401\n  - name: n2\n    address: 127.0.0.1\n    port: 7402/' "$tmp/two.yaml"
cat >> "$tmp/two.yaml" <<EOF
  - name: other
    memory: 64M
    vcpus: 1
    vcpu_placement: { n1: 1 }
EOF
printf 'cluster:\n  name: x\n  auth: { key_file: nokey }\nnodes: []\n' > "$tmp/bad.yaml"
sed -e "s#kernel: .*#kernel: $tmp/nope/vmlinuz#" "$tmp/c.yaml" > "$tmp/nokernel.yaml"
sed -e "s#memory: .*#memory: 1T#" "$tmp/c.yaml" > "$tmp/huge.yaml"
# memory budgets: a node's budget is what it may hold, not the VM's memory
sed -e "s#memory: .*#memory: 1T\n    node_memory: 513G#" "$tmp/c.yaml" > "$tmp/hugebudget.yaml"
sed -e "s#memory: .*#memory: 32G\n    node_memory: 17G#" "$tmp/c.yaml" > "$tmp/bigvm.yaml"
printf '#!/bin/sh\nexit 3\n' > "$tmp/exit3"; chmod +x "$tmp/exit3"
printf '#!/bin/sh\nkill -9 $$\n' > "$tmp/killed"; chmod +x "$tmp/killed"
printf '#!/bin/sh\nprintf "%%s\\n" "$@" > "%s/args"\n' "$tmp" > "$tmp/record"; chmod +x "$tmp/record"
: > "$tmp/notexec"
q=(--qemu /bin/true)

# queries for scripts: `disco config` (disco-node's --list-nodes and
# --print-* flags are gone); the same code as disco-node's config loading
disco=$(dirname "$node")/disco
expect 0 '^n0$' "$disco" config nodes --vm demo "$tmp/c.yaml"
expect 0 '^demo$' "$disco" config vm "$tmp/c.yaml"
expect 0 '^2$' "$disco" config vcpus "$tmp/c.yaml"
out=$("$disco" config nodes --vm demo "$tmp/two.yaml" | tr '\n' ' ')
[ "$out" = "n0 n1 " ] || { echo "FAIL: disco config nodes for demo: \"$out\""; fail=1; }
out=$("$disco" config nodes --vm other "$tmp/two.yaml" | tr '\n' ' ')
[ "$out" = "n1 " ] || { echo "FAIL: disco config nodes for other: \"$out\""; fail=1; }
expect 2 "choose one with --vm NAME" "$disco" config nodes "$tmp/two.yaml"
expect 5 'no VM named "ghost"' "$disco" config vcpus --vm ghost "$tmp/two.yaml"
expect 0 '^127.0.0.1 2222$' "$disco" config forward 22 "$examples/debian-2node.yaml"
expect 1 '' "$disco" config forward 23 "$examples/debian-2node.yaml"
expect 2 'unknown option "--list-nodes"' "$node" --config "$tmp/c.yaml" --list-nodes

# usage and option errors
expect 2 "^usage: disco-node" "$node"
expect 0 "--console stdio.null.socket:PATH" "$node" --help
for opt in --config --node --vm --qemu --accel --console --stats --append --dry-run --help; do
	expect 0 "$opt" "$node" --help
done
expect 2 'unknown option "--bogus"' "$node" --bogus
expect 2 "--config needs a value" "$node" --config
expect 2 "--node NAME is required" "$node" --config "$tmp/c.yaml"
expect 2 "--config FILE is required" "$node" --node n0
expect 2 'unexpected argument "stray"' "$node" --config "$tmp/c.yaml" --node n0 stray
expect 2 'accel: expected tcg or kvm, got "xen"' "$node" --config "$tmp/c.yaml" --node n0 --accel xen
expect 2 'console: expected stdio, null or socket:PATH, got "tty"' "$node" --config "$tmp/c.yaml" --node n0 --console tty
expect 2 'console: expected stdio, null or socket:PATH, got "socket:"' "$node" --config "$tmp/c.yaml" --node n0 --console socket:

# config errors: the loader's line, verbatim
expect 2 "^$tmp/missing.yaml: cannot open: No such file or directory$" "$node" --config "$tmp/missing.yaml" --node n0
expect 2 "^$tmp/bad.yaml:[0-9]+:[0-9]+: " "$node" --config "$tmp/bad.yaml" --node n0
expect 2 'no node named "zz" in .*; the nodes are n0, n1$' "$node" --config "$tmp/c.yaml" --node zz
expect 2 'no VM named "nope" in .*; the VMs are demo$' "$node" --config "$tmp/c.yaml" --node n0 --vm nope
expect 2 'defines 2 VMs; choose one with --vm NAME: demo, other' "$node" --config "$tmp/two.yaml" --node n1
expect 2 '"n2" does not take part in VM "demo".*the VM runs on n0, n1' "$node" --config "$tmp/two.yaml" --node n2 --vm demo "${q[@]}"

# QEMU binary and guest files
expect 2 "QEMU binary $tmp/none \(--qemu\) is not executable: No such file or directory; run \`make\`" \
	"$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/none"
expect 2 "QEMU binary $tmp/notexec \(\\\$DISCO_QEMU\) is not executable: Permission denied" \
	env DISCO_QEMU="$tmp/notexec" "$node" --config "$tmp/c.yaml" --node n0
default_qemu="$(dirname "$(dirname "$(readlink -f "$node")")")/qemu/qemu-system-x86_64"
if [ ! -e "$default_qemu" ]; then
	expect 2 "QEMU binary $default_qemu \(default\) is not executable" \
		env DISCO_QEMU= "$node" --config "$tmp/c.yaml" --node n0 --dry-run
else
	expect 0 "^$default_qemu " env DISCO_QEMU= "$node" --config "$tmp/c.yaml" --node n0 --dry-run
fi
expect 2 "kernel $tmp/nope/vmlinuz of VM \"demo\": No such file or directory; build the guest with scripts/make-guest.sh" \
	"$node" --config "$tmp/nokernel.yaml" --node n0 "${q[@]}"

# --dry-run
expect 0 "^/bin/true .*-object disco,id=disco0,config=$tmp/c.yaml,node=n0,vm=demo( |$)" \
	"$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run
expect 0 " -smp 2,sockets=2,cores=1,threads=1 " "$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run
expect 0 " -serial stdio " "$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run
expect 0 " -serial null .*node=n1," "$node" --config "$tmp/c.yaml" --node n1 "${q[@]}" --dry-run --console stdio
expect 0 " -accel kvm,kernel-irqchip=off " "$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run --accel kvm
expect 0 " -chardev socket,id=con0,path=$tmp/con,,sock,server=on,wait=off -serial chardev:con0 " \
	"$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run --console "socket:$tmp/con,sock"
expect 0 " -append 'console=ttyS0 panic=-1 tsc=reliable nohz_full=1 rcu_nocbs=1 numa_balancing=disable quiet' .*,stats=$tmp/s.json -d int$" \
	"$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run --append quiet --stats "$tmp/s.json" -- -d int
expect 0 "^(/usr)?/bin/true " env DISCO_QEMU=true "$node" --config "$tmp/c.yaml" --node n0 --dry-run
expect 0 " -append 'console=ttyS0 panic=-1 tsc=reliable nohz_full=1 rcu_nocbs=1 numa_balancing=disable --' " \
	"$node" --config "$tmp/c.yaml" --node n0 "${q[@]}" --dry-run --append --

# more guest memory than this machine has (1T; skipped on a machine with more)
if [ "$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)" -lt $((1024 * 1024 * 1024)) ]; then
	expect 2 "^disco-node n0: vm demo has 1048576 MiB of guest memory, more than this machine's [0-9]+ MiB: a node keeps a copy of every page it touches" \
		"$node" --config "$tmp/huge.yaml" --node n0 "${q[@]}"
fi

# with budgets: a budget larger than the machine is refused; a VM larger
# than the machine starts when each node's budget fits (skipped where the
# machine has that much, or too little for a 17G budget)
host_kb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
if [ "$host_kb" -lt $((513 * 1024 * 1024)) ]; then
	expect 2 "^disco-node n0: vm demo gives node n0 a memory budget of 525312 MiB \(vms\[\]\.node_memory\), more than this machine's [0-9]+ MiB$" \
		"$node" --config "$tmp/hugebudget.yaml" --node n0 "${q[@]}"
fi
if [ "$host_kb" -lt $((32 * 1024 * 1024)) ] && [ "$host_kb" -ge $((17 * 1024 * 1024)) ]; then
	expect 0 "starting /bin/true for VM demo" "$node" --config "$tmp/bigvm.yaml" --node n1 "${q[@]}"
fi

# running "QEMU": exit status and signals, the real argv reaches it
expect 0 "starting /bin/true for VM demo" "$node" --config "$tmp/c.yaml" --node n1 "${q[@]}"
expect 1 "^disco-node n0: qemu exited with status 3$" "$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/exit3" --console null
expect 1 "^disco-node n0: qemu killed by signal SIGKILL$" "$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/killed" --console null
expect 0 "guest console on unix socket $tmp/c.sock \(e.g. socat - UNIX-CONNECT:$tmp/c.sock\)" \
	"$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/record" --console "socket:$tmp/c.sock"
if ! grep -qx "disco,id=disco0,config=$tmp/c.yaml,node=n0,vm=demo" "$tmp/args"; then
	echo "FAIL: QEMU did not get the disco object; it got: $(cat "$tmp/args")"; fail=1
fi

# SIGTERM to disco-node reaches QEMU; SIGKILL to disco-node kills QEMU too
# (The trap is set before the pid file is written, so no signal beats it.)
printf '#!/bin/sh\ntrap "exit 0" TERM\necho $$ > "%s/pid"\nwhile :; do sleep 0.1; done\n' "$tmp" > "$tmp/sleeper"
printf '#!/bin/sh\ntrap "" TERM\necho $$ > "%s/pid"\nwhile :; do sleep 0.1; done\n' "$tmp" > "$tmp/stubborn"
chmod +x "$tmp/sleeper" "$tmp/stubborn"
wait_pidfile() { for _ in $(seq 100); do [ -s "$tmp/pid" ] && return 0; sleep 0.05; done; return 1; }
for sig in TERM KILL; do
	rm -f "$tmp/pid"
	"$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/sleeper" --console null 2>"$tmp/log" &
	dn=$!
	if ! wait_pidfile; then echo "FAIL: sleeper did not start"; fail=1; kill -KILL $dn; continue; fi
	qpid=$(cat "$tmp/pid")
	kill -"$sig" $dn
	{ wait $dn; } 2>/dev/null; status=$?
	gone=0
	for _ in $(seq 100); do # gone, or a zombie waiting for init
		if [ ! -e "/proc/$qpid" ] || grep -q '^[0-9]* ([^)]*) Z' "/proc/$qpid/stat" 2>/dev/null; then
			gone=1; break
		fi
		sleep 0.05
	done
	want=0; [ "$sig" = KILL ] && want=137
	if [ $gone -ne 1 ] || [ $status -ne $want ]; then
		echo "FAIL: SIG$sig to disco-node: status $status (want $want), qemu gone=$gone; log: $(cat "$tmp/log")"
		fail=1
		kill -KILL "$qpid" 2>/dev/null
	else
		echo "ok: SIG$sig to disco-node -> $status, QEMU gone"
	fi
done

# A QEMU that ignores SIGTERM: the second signal kills it.
rm -f "$tmp/pid"
"$node" --config "$tmp/c.yaml" --node n0 --qemu "$tmp/stubborn" --console null 2>"$tmp/log" &
dn=$!
if wait_pidfile; then
	qpid=$(cat "$tmp/pid")
	kill -TERM $dn; sleep 0.3
	kill -0 "$qpid" 2>/dev/null || { echo "FAIL: the first SIGTERM should not kill the stubborn QEMU"; fail=1; }
	kill -TERM $dn
	{ wait $dn; } 2>/dev/null; status=$?
	if [ $status -ne 1 ] || ! grep -q "second signal: killing qemu" "$tmp/log" ||
		! grep -q "qemu killed by signal SIGKILL" "$tmp/log"; then
		echo "FAIL: second SIGTERM: status $status (want 1); log: $(cat "$tmp/log")"; fail=1
		kill -KILL "$qpid" 2>/dev/null
	else
		echo "ok: second SIGTERM kills a QEMU that ignores the first"
	fi
else
	echo "FAIL: stubborn did not start"; fail=1; kill -KILL $dn
fi
exit $fail
