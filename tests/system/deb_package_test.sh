#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# deb_package_installs: the Debian package built by scripts/make-deb.sh
# installs on a fresh Debian 12 with `apt-get install ./disco_*.deb`, which
# pulls its runtime dependencies, and what it installed works there:
#   deb_package_test.sh BUILD
# The fresh Debian is an mmdebstrap chroot (variant apt: the essential
# packages and apt, nothing of this machine's) made in root mode; in it,
# after the install: disco --help, discod --help, disco-node --help and the
# packaged QEMU's --version run (so every shared library resolved), the
# group disco and /etc/disco exist, the unit names /usr/bin/discod, the rack
# example with a world-readable key is refused naming the key and its
# mode, and with mode 0600 it is valid. Downloads from Debian's archive
# (DISCO_DEBIAN_MIRROR), keeping the packages in $DISCO_CACHE/deb-test-debs
# for the next run. Needs root (mmdebstrap runs the packages' scripts in a
# chroot): skipped (77) otherwise, saying so.
set -euo pipefail
build=$(realpath "$1")
root=$(cd "$(dirname "$0")/../.." && pwd)
mirror=${DISCO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
cache=${DISCO_CACHE:-$HOME/.cache/disco}/deb-test-debs
tmp=$(mktemp -d /tmp/disco-debtest.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

fail() { echo "FAIL: $*"; exit 1; }
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: needs root (mmdebstrap's root mode runs the packages' maintainer scripts in a chroot)"
	exit 77
fi

deb=$("$root/scripts/make-deb.sh" "$build" "$tmp") || fail "make-deb.sh failed"
[ -f "$deb" ] || fail "make-deb.sh printed $deb, which does not exist"
echo "package: $(basename "$deb") ($(du -h "$deb" | cut -f1))"

# What the package says of itself.
depends=$(dpkg-deb -f "$deb" Depends)
for d in libc6 libuv1 libyaml-0-2 libsodium23 libprotobuf-c1 libjansson4 libmicrohttpd12 \
	libglib2.0-0 libpixman-1-0 seabios qemu-system-data; do
	[[ "$depends" == *"$d"* ]] || fail "Depends lacks $d: $depends"
done
contents=$(dpkg-deb -c "$deb")
for f in ./usr/bin/disco ./usr/bin/discod ./usr/bin/disco-node ./usr/lib/disco/qemu-system-x86_64 \
	./usr/lib/systemd/system/discod@.service ./usr/share/bash-completion/completions/disco \
	./usr/share/doc/disco/copyright ./usr/share/doc/disco/deploy.md \
	./usr/share/doc/disco/examples/rack-4node.yaml; do
	grep -q " $f\$" <<<"$contents" || fail "the package lacks $f"
done
grep -q '^-rwxr-xr-x root/root .* ./usr/lib/disco/qemu-system-x86_64$' <<<"$contents" ||
	fail "the packaged QEMU is not an executable file owned by root (a link?)"

# The checks run in the fresh system, after the install.
cat >"$tmp/checks.sh" <<'EOF'
set -eu
exec >/tmp/checks.txt 2>&1
run() { echo "\$ $*"; "$@"; echo "exit $?"; }
run disco --help
run discod --help
run disco-node --help
run /usr/lib/disco/qemu-system-x86_64 --version
echo "group: $(getent group disco)"
[ -d /etc/disco ] && echo "etc: /etc/disco exists"
grep '^ExecStart=' /usr/lib/systemd/system/discod@.service
sed 's|^\(  *key_file:\).*|\1 /etc/disco/cluster.key|' /usr/share/doc/disco/examples/rack-4node.yaml \
	>/etc/disco/cluster.yaml
head -c 32 /dev/urandom >/etc/disco/cluster.key
chmod 0644 /etc/disco/cluster.key
set +e
disco config check /etc/disco/cluster.yaml
echo "world-readable key: exit $?"
chmod 0600 /etc/disco/cluster.key
disco config check --no-host /etc/disco/cluster.yaml
echo "key 0600: exit $?"
echo "checks done"
EOF
mkdir -p "$cache"
log=$tmp/mmdebstrap.log
# shellcheck disable=SC2016 # $1 is expanded by mmdebstrap's hooks
if ! mmdebstrap --mode=root --variant=apt --format=null \
	--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && find '$cache' -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives\" {} +" \
	--customize-hook="copy-in '$deb' /tmp" \
	--customize-hook="copy-in '$tmp/checks.sh' /tmp" \
	--customize-hook="chroot \"\$1\" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends '/tmp/$(basename "$deb")'" \
	--customize-hook="find \"\$1/var/cache/apt/archives\" -name '*.deb' -exec cp -u -t '$cache' {} +" \
	--customize-hook="chroot \"\$1\" sh /tmp/checks.sh; cp \"\$1/tmp/checks.txt\" '$tmp/'" \
	bookworm /dev/null "deb $mirror bookworm main" >"$log" 2>&1; then
	tail -n 30 "$log"
	fail "mmdebstrap (a fresh Debian 12 and apt-get install of the package) failed"
fi
out=$tmp/checks.txt
[ -f "$out" ] || { tail -n 30 "$log"; fail "the checks did not run in the chroot"; }
grep -q "Setting up disco " "$log" || fail "apt-get did not set up disco"
pulled=$(grep -c "^Setting up " "$log" || true)
echo "apt-get set up $pulled packages (disco and its dependencies)"
[ "$pulled" -ge 10 ] || fail "apt-get pulled only $pulled packages: were the dependencies installed?"
for p in disco discod disco-node; do
	grep -q "^usage: $p" "$out" || { cat "$out"; fail "$p --help printed no usage in the chroot"; }
done
[ "$(grep -c '^exit 0$' "$out")" -eq 4 ] || { cat "$out"; fail "a program failed in the chroot"; }
grep -q "^QEMU emulator version 7.2" "$out" || { cat "$out"; fail "the packaged QEMU did not run"; }
grep -q "^group: disco:x:" "$out" || { cat "$out"; fail "postinst did not create the group disco"; }
grep -q "^etc: /etc/disco exists" "$out" || fail "postinst did not create /etc/disco"
grep -q "^ExecStart=/usr/bin/discod --config /etc/disco/cluster.yaml --node %i" "$out" ||
	{ cat "$out"; fail "the unit does not start /usr/bin/discod"; }
grep -q "cluster.auth.key_file: \"/etc/disco/cluster.key\" is open to group or others (mode 0644)" "$out" ||
	{ cat "$out"; fail "a world-readable key was not refused with its mode"; }
grep -q "^world-readable key: exit 1$" "$out" || { cat "$out"; fail "world-readable key: wrong exit"; }
grep -q "^key 0600: exit 0$" "$out" || { cat "$out"; fail "the rack example with a 0600 key is not valid"; }
grep -q "^checks done$" "$out" || fail "the checks stopped early"
echo "PASS: $(basename "$deb") installs with its dependencies on a fresh Debian 12; programs run"
