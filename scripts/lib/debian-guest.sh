# Sourced by scripts/run-debian.sh, scripts/bench-debian.sh and the Debian
# system tests: talking to the Debian guest (scripts/make-debian-image.sh)
# over ssh through the master's port forward, and the checks that
# `make run-debian` reports. Works under set -euo pipefail.
#
#   dg_init KEY HOST PORT PATTERN   the image's key, where the master forwards
#                                   guest port 22, the host's disco-pattern
#   dg_ssh USER [CMD...]            run CMD in the guest (stdin passed)
#   dg_wait_ssh SECONDS PID         until ssh as root works; 1 when PID (the
#                                   master's disco-node) exits first or time
#                                   runs out
#   dg_wait_ssh_down SECONDS        until ssh fails (the guest went down)
#   dg_boot_state                   systemctl is-system-running --wait:
#                                   running, degraded, ...; failed units on
#                                   stderr
#   dg_check_disk MIB               MIB of disco-pattern written to the root
#                                   disk, synced, the guest's page cache
#                                   dropped, read back: pass or fail
#   dg_check_net MIB                MIB from the host into the guest and MIB
#                                   from the guest to the host through ssh,
#                                   hashed at the other end: pass or fail
#   dg_pattern_sha SEED MIB         SHA-256 of disco-pattern SEED MIB (host)

dg_init() {
	dg_key=$1 dg_host=$2 dg_port=$3 dg_pattern=$4
	dg_opts=(-i "$dg_key" -p "$dg_port" -o IdentitiesOnly=yes -o BatchMode=yes
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
		-o ConnectTimeout=20 -o ServerAliveInterval=10 -o ServerAliveCountMax=12)
}

dg_ssh() {
	local user=$1
	shift
	ssh "${dg_opts[@]}" "$user@$dg_host" "$@"
}

dg_wait_ssh() {
	local deadline=$((SECONDS + $1)) pid=$2
	while [ $SECONDS -lt $deadline ]; do
		kill -0 "$pid" 2>/dev/null || return 1
		dg_ssh root true </dev/null 2>/dev/null && return 0
		sleep 2
	done
	return 1
}

dg_wait_ssh_down() {
	local deadline=$((SECONDS + $1))
	while [ $SECONDS -lt $deadline ]; do
		dg_ssh root true </dev/null 2>/dev/null || return 0
		sleep 1
	done
	return 1
}

dg_boot_state() {
	local state
	state=$(dg_ssh root systemctl is-system-running --wait </dev/null 2>/dev/null) || true
	[ -n "$state" ] || state=unknown
	if [ "$state" != running ]; then
		dg_ssh root systemctl --failed --no-legend --plain </dev/null >&2 2>/dev/null || true
	fi
	echo "$state"
}

dg_pattern_sha() {
	"$dg_pattern" "$1" "$2" | sha256sum | cut -d' ' -f1
}

dg_check_disk() {
	local mib=$1 want got
	want=$(dg_pattern_sha 11 "$mib")
	got=$(dg_ssh root "disco-pattern 11 $mib /var/tmp/disco-check.bin && sync &&
		echo 3 >/proc/sys/vm/drop_caches && sha256sum /var/tmp/disco-check.bin &&
		rm -f /var/tmp/disco-check.bin" </dev/null 2>/dev/null | cut -d' ' -f1) || true
	if [ -n "$got" ] && [ "$got" = "$want" ]; then echo pass; else
		echo "disk check: want $want, got '${got}'" >&2
		echo fail
	fi
}

dg_check_net() {
	local mib=$1 want in out
	want=$(dg_pattern_sha 12 "$mib")
	in=$("$dg_pattern" 12 "$mib" | dg_ssh root sha256sum 2>/dev/null | cut -d' ' -f1) || true
	out=$(dg_ssh root "disco-pattern 12 $mib" </dev/null 2>/dev/null | sha256sum | cut -d' ' -f1) || true
	if [ "$in" = "$want" ] && [ "$out" = "$want" ]; then echo pass; else
		echo "net check: want $want, host->guest '${in}', guest->host '${out}'" >&2
		echo fail
	fi
}
