#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# disco_bash_completion: packaging/bash-completion/disco, loaded after
# Debian's bash-completion, completes subcommands, options, and VM and node
# names read from the cluster file ($DISCO_CONFIG or --config).
#   completion_test.sh SOURCE_DIR
set -euo pipefail
src=$(realpath "$1")
lib=/usr/share/bash-completion/bash_completion
[ -r "$lib" ] || { echo "FAIL: $lib missing: run scripts/setup.sh (bash-completion)"; exit 1; }
set +u
# shellcheck disable=SC1090
. "$lib"
. "$src/packaging/bash-completion/disco"
set -u
complete_words() { # WORDS...: the completions of the last word
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMP_LINE="${COMP_WORDS[*]}"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	set +u
	_disco
	set -u
	echo "${COMPREPLY[*]}"
}
fails=0
expect() { # WANT WORDS...
	local want=$1 got
	shift
	got=$(complete_words "$@")
	if [ "$got" != "$want" ]; then
		echo "FAIL: '$*' completes to '$got', want '$want'"
		fails=$((fails + 1))
	else
		echo "ok: '$*' -> $got"
	fi
}
export DISCO_CONFIG=$src/cluster-config/examples/rack-4node.yaml
expect "vm" disco v
expect "start stop console --help" disco vm ""
expect "db web" disco vm start ""
expect "web" disco vm console w
expect "n0 n1 n2 n3" disco --node ""
expect "check nodes vm vcpus forward --help" disco config ""
expect "--force --help" disco vm stop --
expect "--watch --interval --count --help" disco stats --
# --config on the command line wins over $DISCO_CONFIG
expect "demo" disco --config "$src/cluster-config/examples/local-2node.yaml" vm start ""
[ $fails -eq 0 ] || exit 1
echo "PASS: disco completion"
