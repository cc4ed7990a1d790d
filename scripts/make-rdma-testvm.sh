#!/usr/bin/env bash
# make-rdma-testvm.sh [OUTDIR]: build the Soft-RoCE test VM (tests/rdma/).
#
#   OUTDIR/vmlinuz     Debian's full -amd64 kernel (linux-image-amd64 resolves
#                      to a versioned linux-image-6.1.0-NN-amd64; the -cloud
#                      flavour lacks the InfiniBand modules), fetched with
#                      `apt-get download` into a cache and unpacked there with
#                      dpkg -x. Nothing is installed on this machine.
#   OUTDIR/initrd.img  gzip'd newc cpio: /init (tests/rdma/init), the static
#                      busybox of busybox-static in /bb with its applet links,
#                      and the kernel modules of tests/rdma/modules in /modules
#                      (/modules/order: the insmod order). /bin, /sbin, /lib
#                      and /lib64 are symlinks into /usr, as on the host:
#                      the VM mounts the host's /usr and /etc over 9p, so the
#                      host's programs and libraries (libibverbs, ibverbs-utils,
#                      iproute2's rdma, bash) run in it unchanged.
#
# OUTDIR defaults to build/rdma-vm under the repository root. The kernel cache
# is ${DISCO_CACHE:-$HOME/.cache/disco}/rdma-kernel (the .deb, ~70 MB, and the
# kernel image and the modules of the list, unpacked). Set
# DISCO_RDMA_KERNEL_PKG to use another package than the one
# linux-image-amd64 names.
#
# Incremental: OUTDIR/.stamp holds a hash of this script, tests/rdma/init,
# tests/rdma/modules, busybox and the kernel package and version; when it
# matches and both outputs exist nothing is rebuilt. One line says what was
# done. Run a command in the VM with scripts/run-in-rdma-testvm.sh.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$root/build/rdma-vm}
cache=${DISCO_CACHE:-$HOME/.cache/disco}/rdma-kernel
busybox=${BUSYBOX:-/bin/busybox}
src=$root/tests/rdma

die() {
	echo "make-rdma-testvm: error: $*" >&2
	exit 1
}

# ---- which kernel --------------------------------------------------------

# shellcheck source=lib/debian-kernel.sh
. "$root/scripts/lib/debian-kernel.sh"
tool=make-rdma-testvm
debian_kernel_pick linux-image-amd64 -amd64 DISCO_RDMA_KERNEL_PKG "$cache"

# The module list: names, in load order; '#' comments and blank lines ignored.
mapfile -t modules < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$src/modules")
[ ${#modules[@]} -gt 0 ] || die "$src/modules lists no modules"

# ---- up to date? ------------------------------------------------------------

check_static_busybox "$busybox"
for d in bin sbin lib lib64; do
	# The VM gets the host's /usr only; /bin etc. must live in it.
	[ "$(readlink "/$d" 2>/dev/null || true)" = "usr/$d" ] || [ ! -e "/$d" ] ||
		die "/$d is not a symlink to usr/$d: the VM needs a merged-/usr host (Debian 12)"
done

stamp=$(
	{
		echo "kernel $kpkg $kver"
		# Contents only: the hash must not depend on how this script was called.
		cat "${BASH_SOURCE[0]}" "$busybox" "$src/init" "$src/modules" | sha256sum
	} | sha256sum | cut -d' ' -f1
)
if [ -f "$outdir/.stamp" ] && [ "$(cat "$outdir/.stamp")" = "$stamp" ] &&
	[ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.img" ]; then
	echo "make-rdma-testvm: up to date: $outdir (kernel $kpkg $kver)"
	exit 0
fi
mkdir -p "$outdir" "$cache"

# ---- kernel and modules ---------------------------------------------------------

# Path of module $1 under $kdir, or empty.
find_module() {
	find "$kdir/lib/modules" -name "$1.ko" -print -quit 2>/dev/null || true
}
have_all() {
	local m
	ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 || return 1
	for m in "${modules[@]}"; do
		[ -n "$(find_module "$m")" ] || return 1
	done
}

fetched=""
if ! have_all; then
	debian_kernel_download
	# Older versions of this package are of no further use.
	for old in "$cache"/*.deb; do
		[ "$old" = "$deb" ] || rm -f "$old"
	done
	# Unpack everything (~400 MB, a few seconds), keep the image and the
	# modules of the list; the .deb stays in the cache for a longer list.
	full=$(mktemp -d "$cache/.unpack.XXXXXX")
	trap 'rm -rf "$full"' EXIT
	dpkg -x "$deb" "$full" || die "dpkg -x $deb failed; delete it and run this again to download it anew"
	ls "$full"/boot/vmlinuz-* >/dev/null 2>&1 || die "$deb holds no boot/vmlinuz-*"
	rm -rf "$kdir.tmp"
	mkdir -p "$kdir.tmp/boot"
	cp "$full"/boot/vmlinuz-* "$full"/boot/config-* "$kdir.tmp/boot/"
	for m in "${modules[@]}"; do
		ko=$(find "$full/lib/modules" -name "$m.ko" -print -quit)
		[ -n "$ko" ] || die "$deb has no module $m.ko (named in $src/modules)"
		rel=${ko#"$full"/}
		mkdir -p "$kdir.tmp/$(dirname "$rel")"
		cp "$ko" "$kdir.tmp/$rel"
	done
	rm -rf "$full"
	trap - EXIT
	rm -rf "$kdir"
	mv "$kdir.tmp" "$kdir"
fi
vmlinuz=$(ls "$kdir"/boot/vmlinuz-* | head -n1)
cp "$vmlinuz" "$outdir/vmlinuz.tmp"
mv "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"

# ---- initramfs ------------------------------------------------------------------

stage=$(mktemp -d "$outdir/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage"/{bb,usr,etc,dev,proc,sys,tmp,run,var,root,modules}
for d in bin sbin lib lib64; do
	ln -s "usr/$d" "$stage/$d"
done
cp "$busybox" "$stage/bb/busybox"
for applet in $("$busybox" --list); do
	[ "$applet" = busybox ] || ln -s busybox "$stage/bb/$applet"
done
install -m 0755 "$src/init" "$stage/init"
for m in "${modules[@]}"; do
	cp "$(find_module "$m")" "$stage/modules/$m.ko"
	echo "$m" >>"$stage/modules/order"
done
if [ "$(id -u)" -eq 0 ]; then
	# The kernel opens /dev/console before /init mounts devtmpfs.
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3
fi

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) | gzip -9n >"$outdir/initrd.img.tmp"
mv "$outdir/initrd.img.tmp" "$outdir/initrd.img"
echo "$stamp" >"$outdir/.stamp"

echo "make-rdma-testvm: built $outdir/vmlinuz ($kpkg $kver)$fetched and initrd.img" \
	"($(($(stat -c %s "$outdir/initrd.img") / 1024)) KiB: busybox, ${#modules[@]} modules)"
