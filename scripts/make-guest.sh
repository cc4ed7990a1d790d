#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make-guest.sh [OUTDIR]: build the default disco guest.
#
#   OUTDIR/vmlinuz     Debian's cloud kernel (linux-image-cloud-amd64 resolves
#                      to a versioned linux-image-6.1.0-NN-cloud-amd64), fetched
#                      with `apt-get download` into a cache and unpacked there
#                      with dpkg -x. Nothing is installed on this machine.
#   OUTDIR/initrd.img  gzip'd newc cpio: /init (tests/guest/init), the static
#                      busybox of busybox-static with its applet links, the
#                      guest programs tests/guest/*.c built static as
#                      /bin/disco-<name>, the guest scripts tests/guest/*.sh
#                      as /bin/disco-<name>, and Debian's xz (xz-utils:
#                      /usr/bin/xz, the shared libraries ldd lists and the
#                      dynamic loader, at their host paths) for disco-xz.
#
# OUTDIR defaults to build/guest under the repository root. The kernel cache
# is ${DISCO_CACHE:-$HOME/.cache/disco}/guest-kernel. Set DISCO_GUEST_KERNEL_PKG
# to use another kernel package than the one linux-image-cloud-amd64 names,
# DISCO_GUEST_CFLAGS to add compiler flags for the guest programs (e.g.
# -DBREAK, which plants a deliberate bug in each so that it must FAIL).
#
# Incremental: OUTDIR/.stamp holds a hash of this script, tests/guest/*, the
# kernel package and version, busybox, xz and its libraries and the
# compiler; when it matches and
# both outputs exist nothing is rebuilt. One line says what was done.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$root/build/guest}
cache=${DISCO_CACHE:-$HOME/.cache/disco}/guest-kernel
busybox=${BUSYBOX:-/bin/busybox}
cc=${CC:-gcc}
read -r -a extra_cflags <<<"${DISCO_GUEST_CFLAGS:-}"
src=$root/tests/guest

die() {
	echo "make-guest: error: $*" >&2
	exit 1
}

# ---- which kernel --------------------------------------------------------

# shellcheck source=lib/debian-kernel.sh
. "$root/scripts/lib/debian-kernel.sh"
tool=make-guest
debian_kernel_pick linux-image-cloud-amd64 -cloud-amd64 DISCO_GUEST_KERNEL_PKG "$cache"

# ---- up to date? ------------------------------------------------------------

check_static_busybox "$busybox"
command -v "$cc" >/dev/null || die "$cc not found. Install it with: apt-get install build-essential"
xz_bin=/usr/bin/xz
[ -x "$xz_bin" ] || die "$xz_bin not found. Install it with: apt-get install xz-utils"
# xz's shared libraries and the dynamic loader, as ldd resolves them.
mapfile -t xz_libs < <(ldd "$xz_bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
[ ${#xz_libs[@]} -gt 0 ] || die "ldd $xz_bin lists no libraries"

stamp=$(
	{
		echo "kernel $kpkg $kver"
		cat "${BASH_SOURCE[0]}" "$busybox" "$xz_bin" "${xz_libs[@]}" | sha256sum  # contents only: the path the script was called by must not matter
		(cd "$src" && find . -type f | LC_ALL=C sort | xargs sha256sum)
		"$cc" --version | head -n1
		echo "cflags ${extra_cflags[*]}"
	} | sha256sum | cut -d' ' -f1
)
if [ -f "$outdir/.stamp" ] && [ "$(cat "$outdir/.stamp")" = "$stamp" ] &&
	[ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.img" ]; then
	echo "make-guest: up to date: $outdir (kernel $kpkg $kver)"
	exit 0
fi
mkdir -p "$outdir" "$cache"

# ---- kernel -------------------------------------------------------------------

fetched=""
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
	debian_kernel_download
	rm -rf "$kdir.tmp"
	dpkg -x "$deb" "$kdir.tmp" || die "dpkg -x $deb failed; delete it and run this again to download it anew"
	ls "$kdir.tmp"/boot/vmlinuz-* >/dev/null 2>&1 || die "$deb holds no boot/vmlinuz-*"
	rm -rf "$kdir.tmp"/lib "$kdir.tmp"/usr	# modules: the guest uses none
	rm -rf "$kdir"
	mv "$kdir.tmp" "$kdir"
	rm -f "$deb"	# the unpacked tree is the cache
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
cp "$vmlinuz" "$outdir/vmlinuz.tmp"
mv "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"

# ---- initramfs ------------------------------------------------------------------

stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,root,etc}
cp "$busybox" "$stage/bin/busybox"
for applet in $("$busybox" --list-full); do
	[ -e "$stage/$applet" ] || ln -s /bin/busybox "$stage/$applet"
done
install -m 0755 "$src/init" "$stage/init"
# Debian's xz in place of busybox's applet, with what it needs to run.
rm -f "$stage/usr/bin/xz"
install -m 0755 "$xz_bin" "$stage/usr/bin/xz"
for lib in "${xz_libs[@]}"; do
	mkdir -p "$stage$(dirname "$lib")"
	cp -L "$lib" "$stage$lib"
done
if [ "$(id -u)" -eq 0 ]; then
	# The kernel opens /dev/console before /init mounts devtmpfs.
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3
fi
echo "root:x:0:0:root:/root:/bin/sh" >"$stage/etc/passwd"

programs=()
for c in "$src"/*.c; do
	name=$(basename "$c" .c)
	if ! "$cc" -static -O2 -pthread -std=gnu11 -Wall -Wextra -s "${extra_cflags[@]}" \
		-o "$stage/bin/disco-$name" "$c"; then
		die "building the guest program $c failed (see the compiler messages above)"
	fi
	programs+=("$name")
done
for sh in "$src"/*.sh; do
	[ -e "$sh" ] || continue
	name=$(basename "$sh" .sh)
	install -m 0755 "$sh" "$stage/bin/disco-$name"
	programs+=("$name")
done

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) | gzip -9n >"$outdir/initrd.img.tmp"
mv "$outdir/initrd.img.tmp" "$outdir/initrd.img"
echo "$stamp" >"$outdir/.stamp"

echo "make-guest: built $outdir/vmlinuz ($kpkg $kver)$fetched and initrd.img" \
	"($(($(stat -c %s "$outdir/initrd.img") / 1024)) KiB: ${programs[*]}${extra_cflags[*]:+; cflags ${extra_cflags[*]}})"
