# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by the command-line tests (cli_errors.sh, disco_node_cli.sh).
# expect STATUS PATTERN CMD...: runs CMD, checks its exit status and that
# its output (stdout + stderr) matches the extended regex PATTERN; prints
# ok/FAIL and sets fail=1 on a mismatch. The caller exits with $fail.
fail=0
expect() {
	local want=$1 pat=$2; shift 2
	local out status
	out=$("$@" 2>&1); status=$?
	if [ "$status" -ne "$want" ] || ! grep -qE -- "$pat" <<<"$out"; then
		echo "FAIL: $* -> status $status (want $want, pattern $pat), output: $out"
		fail=1
	else
		echo "ok: $* -> $status"
	fi
}
