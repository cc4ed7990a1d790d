#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the Debian package of disco from a built tree (make deb):
#   make-deb.sh [BUILD [OUTDIR]]      (defaults: build, BUILD)
# writes OUTDIR/disco_<version>_<arch>.deb and prints its path.
#
# What is in it: `cmake --install` of BUILD with prefix /usr (the programs
# disco, discod and disco-node, the patched QEMU in /usr/lib/disco, the
# systemd unit discod@.service, bash completion, the documentation and the
# rack examples), plus what Debian wants of a package: DEBIAN/control with
# the runtime dependencies dpkg-shlibdeps finds in the binaries (and the
# firmware QEMU loads: seabios, qemu-system-data), the machine-readable
# copyright file (packaging/deb/copyright), a changelog, md5sums, and
# postinst/postrm (packaging/deb/) that create and remove the group
# `disco` whose members may use the local control socket.
#
# Built with dpkg-deb --root-owner-group (files owned by root in the package),
# so it needs no root. Version: 0.1.0~git<commit date>.<short hash> (a tree
# with uncommitted changes gets +dirty), so every commit's package is newer
# than the one before. Tools: dpkg-dev (dpkg-shlibdeps), scripts/setup.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=$(realpath "${1:-$root/build}")
out=$(realpath -m "${2:-$build}")

say() { echo "make-deb: $*" >&2; }
die() { say "error: $*"; exit 1; }

for t in dpkg-deb dpkg-shlibdeps cmake; do
	command -v "$t" >/dev/null || die "$t not found: run scripts/setup.sh"
done
[ -f "$build/CMakeCache.txt" ] || die "$build is not a build tree: run make build first"
for f in node-monitor/disco node-monitor/discod node-monitor/disco-node qemu/qemu-system-x86_64; do
	[ -x "$build/$f" ] || die "$build/$f is missing: run make build first"
done

arch=$(dpkg --print-architecture)
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
	version="0.1.0~git$(git -C "$root" log -1 --format=%cd --date=format:%Y%m%d%H%M%S).$(git -C "$root" rev-parse --short=8 HEAD)"
	git -C "$root" diff --quiet HEAD -- 2>/dev/null || version+="+dirty"
else
	version="0.1.0"
fi

work=$build/deb
stage=$work/disco
rm -rf "$work"
mkdir -p "$stage/DEBIAN" "$out"
DESTDIR=$stage cmake --install "$build" --prefix /usr >"$work/install.log" 2>&1 ||
	{ cat "$work/install.log" >&2; die "cmake --install failed"; }

doc=$stage/usr/share/doc/disco
install -m 0644 "$root/packaging/deb/copyright" "$doc/copyright"
rm -f "$doc/LICENSE" # the copyright file carries the licence (Debian policy 12.5)
{
	echo "disco ($version) unstable; urgency=medium"
	echo
	echo "  * Built from commit $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)."
	echo
	echo " -- disco maintainers <disco@localhost>  $(date -R)"
} | gzip -9n >"$doc/changelog.Debian.gz"
for s in postinst postrm; do
	install -m 0755 "$root/packaging/deb/$s" "$stage/DEBIAN/$s"
done

# Runtime dependencies: the shared libraries of every ELF file, as
# dpkg-shlibdeps names them (it wants a debian/control to read).
mkdir -p "$work/src/debian"
printf 'Source: disco\n\nPackage: disco\nArchitecture: any\n' >"$work/src/debian/control"
mapfile -t elves < <(find "$stage/usr/bin" "$stage/usr/lib/disco" -type f -perm -u+x)
# stripped, as Debian ships programs (the build tree keeps its debug info)
strip --strip-unneeded --remove-section=.comment --remove-section=.note "${elves[@]}"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "${elves[@]}" 2>"$work/shlibdeps.log" |
	sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
[ -n "$shlibs" ] || die "dpkg-shlibdeps found no dependencies (see $work/shlibdeps.log)"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<EOF
Package: disco
Version: $version
Architecture: $arch
Maintainer: disco maintainers <disco@localhost>
Installed-Size: $size
Depends: $shlibs, seabios, qemu-system-data, passwd
Recommends: bash-completion
Section: admin
Priority: optional
Description: distributed virtual machine monitor: one VM across a cluster
 disco runs one NUMA-like virtual machine across the machines of a cluster:
 a patched QEMU 7.2 process per machine, guest memory kept coherent by a
 distributed shared memory in user space (userfaultfd), and the page
 migration and replication policy of Disco (SOSP'97). TCP and RDMA.
 .
 This package holds discod (the daemon of a node, started by the systemd
 unit discod@NODE), the disco command, disco-node, the patched QEMU (in
 /usr/lib/disco), and /usr/share/doc/disco/deploy.md, which walks through
 setting up a rack.
EOF
(cd "$stage" && find usr -type f -print0 | LC_ALL=C sort -z | xargs -0 md5sum >DEBIAN/md5sums)

deb=$out/disco_${version}_${arch}.deb
rm -f "$out"/disco_*_"$arch".deb
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$deb" >"$work/dpkg-deb.log" 2>&1 ||
	{ cat "$work/dpkg-deb.log" >&2; die "dpkg-deb failed"; }
say "$(du -h "$deb" | cut -f1) package; depends on: $shlibs, seabios, qemu-system-data, passwd"
echo "$deb"
