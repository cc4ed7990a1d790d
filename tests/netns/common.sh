# Sourced by the tests in tests/netns/: nodes in network namespaces
# (scripts/netns-cluster.sh on scripts/lib/netns.sh).
#
#   netns_test_init BUILD NAME   root + namespaces here, or exit 77 (SKIP)
#                                saying why; $tmp (removed at exit), $root,
#                                $build, fail(), ran()
#   netns_config NODES [MEM] [dsm line]
#                                $tmp/cluster.yaml: nodes n0.. on 10.77.0.1..
#                                (port 7400), one VM "sys" with a vCPU per
#                                node, boot_vcpus: master (as nodes on
#                                slow links should boot: docs/config.md)
#                                (tests/system/make-config.sh; its
#                                environment: PEER_TIMEOUT_MS, ...)
#   netns_cluster ARGS...        scripts/netns-cluster.sh --build $build
#                                --out $tmp/out $tmp/cluster.yaml ARGS, its
#                                output in $tmp/run.txt; sets $status
#   netns_nothing_left           fail if a namespace or process of the run
#                                is left
# Nothing here decides a result: each test checks what it is about.

netns_test_init() {
	build=$(realpath "$1")
	test_name=$2
	here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
	root=$(cd "$here/../.." && pwd)
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: $test_name needs root to make network namespaces"
		exit 77
	fi
	# shellcheck source=../../scripts/lib/netns.sh
	. "$root/scripts/lib/netns.sh"
	if ! nsc_probe; then
		echo "SKIP: $test_name: this kernel or host cannot run nodes in network namespaces: $nsc_probe_why"
		exit 77
	fi
	tmp=$(mktemp -d "/tmp/disco-$test_name.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
}

fail() {
	echo "FAIL: $*"
	echo "---- netns-cluster output ----"
	cat "$tmp/run.txt" 2>/dev/null
	echo "---- guest console (last 40 lines) ----"
	tail -n 40 "$tmp/out/console.log" 2>/dev/null
	local f
	for f in "$tmp"/out/n*.log; do
		[ -f "$f" ] || continue
		echo "---- $f (last 15 lines)"
		tail -n 15 "$f"
	done
	exit 1
}

netns_config() {
	local nodes=$1 mem=${2:-256M} dsm=${3:-} i addrs=""
	for ((i = 1; i <= nodes; i++)); do addrs+="${addrs:+ }10.77.0.$i"; done
	BOOT_VCPUS=master ADDRESSES=$addrs "$root/tests/system/make-config.sh" "$build" "$nodes" 1 "$mem" "$dsm" \
		>"$tmp/cluster.yaml"
}

netns_cluster() {
	status=0
	"$root/scripts/netns-cluster.sh" --build "$build" --out "$tmp/out" "$tmp/cluster.yaml" "$@" \
		>"$tmp/run.txt" 2>&1 || status=$?
}

# Namespaces of this run (the netns-cluster shell is gone, so any left
# would be disco-nc-* with a dead pid) and processes still using its config.
netns_nothing_left() {
	local left p st
	left=$(ip netns list 2>/dev/null | awk '{ print $1 }' | grep '^disco-nc-' || true)
	for ns in $left; do
		p=${ns#disco-nc-}
		p=${p%%-*}
		kill -0 "$p" 2>/dev/null || fail "namespace $ns left behind"
	done
	for p in $(pgrep -f "$tmp/cluster.yaml" || true); do
		st=$(ps -o stat= -p "$p" 2>/dev/null) || continue
		[[ "$st" == Z* ]] || fail "process left behind: $(ps -o pid=,args= -p "$p")"
	done
}
