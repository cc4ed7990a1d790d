#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make-rdma-testvm.sh [OUTDIR]: build the Soft-RoCE test VM (tests/rdma/).
#
#   OUTDIR/vmlinuz     Debian 12's full -amd64 kernel 6.12 (the metapackage
#                      linux-image-6.12-amd64 resolves to a versioned
#                      linux-image-6.12.NN+deb12-amd64; the -cloud flavour
#                      lacks the InfiniBand modules), fetched with
#                      `apt-get download` into a cache and unpacked there with
#                      dpkg -x. Nothing is installed on this machine.
#   OUTDIR/initrd.img  gzip'd newc cpio: /init (tests/rdma/init), the static
#                      busybox of busybox-static in /bb with its applet links,
#                      and the kernel modules of tests/rdma/modules in /modules
#                      (/modules/order: the insmod order), decompressed here
#                      (6.12 ships .ko.xz, which busybox insmod cannot read);
#                      modules the kernel has built in are left out, and each
#                      module's dependencies (its .modinfo depends=) must be
#                      built in or come earlier in the list. /bin, /sbin, /lib
#                      and /lib64 are symlinks into /usr, as on the host:
#                      the VM mounts the host's /usr and /etc over 9p, so the
#                      host's programs and libraries (libibverbs, ibverbs-utils,
#                      iproute2's rdma, bash) run in it unchanged.
#
# OUTDIR defaults to build/rdma-vm under the repository root. The kernel cache
# is ${DISCO_CACHE:-$HOME/.cache/disco}/rdma-kernel (the .deb, ~110 MB, and the
# kernel image and the modules of the list, unpacked). Set
# DISCO_RDMA_KERNEL_PKG to use another package than the one
# linux-image-6.12-amd64 names: a versioned image package, or a metapackage,
# e.g. DISCO_RDMA_KERNEL_PKG=linux-image-amd64 for Debian 12's 6.1.
#
# Incremental: OUTDIR/.stamp holds a hash of this script, lib/debian-kernel.sh,
# tests/rdma/init, tests/rdma/modules, busybox and the kernel package and
# version; when it matches and both outputs exist nothing is rebuilt. One line
# says what was done. Run a command in the VM with scripts/run-in-rdma-testvm.sh.
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
debian_kernel_pick linux-image-6.12-amd64 -amd64 DISCO_RDMA_KERNEL_PKG "$cache"

# The module list: names, in load order; '#' comments and blank lines ignored;
# a trailing '?' marks a module some kernels do not have (optional).
mapfile -t modules < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$src/modules")
[ ${#modules[@]} -gt 0 ] || die "$src/modules lists no modules"
declare -A optional=()
for i in "${!modules[@]}"; do
	case ${modules[i]} in *\?) modules[i]=${modules[i]%\?}; optional[${modules[i]}]=1 ;; esac
done

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
		cat "${BASH_SOURCE[0]}" "$root/scripts/lib/debian-kernel.sh" "$busybox" \
			"$src/init" "$src/modules" | sha256sum
	} | sha256sum | cut -d' ' -f1
)
if [ -f "$outdir/.stamp" ] && [ "$(cat "$outdir/.stamp")" = "$stamp" ] &&
	[ -s "$outdir/vmlinuz" ] && [ -s "$outdir/initrd.img" ]; then
	echo "make-rdma-testvm: up to date: $outdir (kernel $kpkg $kver)"
	exit 0
fi
mkdir -p "$outdir" "$cache"

# ---- kernel and modules ---------------------------------------------------------

# Path of module $1 (NAME.ko, or compressed: NAME.ko.xz etc.) under
# directory $2 (default $kdir), or empty.
find_module() {
	find "${2:-$kdir}/lib/modules" \( -name "$1.ko" -o -name "$1.ko.*" \) -print -quit 2>/dev/null || true
}
# Whether the kernel's modules.index file $1 (modules.builtin: built in;
# modules.order: every loadable module) of the unpacked tree $2 (default
# $kdir) names module $3.
kernel_lists() {
	grep -qsE "(^|/)$3\.ko(\..*)?\$" "${2:-$kdir}"/lib/modules/*/"$1"
}
is_builtin() { kernel_lists modules.builtin "${2:-$kdir}" "$1"; }
# The cache has the image and every listed module that the package has as a
# loadable module. (A cache made before modules.order was kept there has
# all its listed modules, or it is not complete.)
have_all() {
	local m
	ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 || return 1
	for m in "${modules[@]}"; do
		[ -z "$(find_module "$m")" ] || continue
		is_builtin "$m" && continue
		[ -n "${optional[$m]:-}" ] && ls "$kdir"/lib/modules/*/modules.order >/dev/null 2>&1 &&
			! kernel_lists modules.order "$kdir" "$m" && continue
		return 1
	done
}

fetched=""
if ! have_all; then
	debian_kernel_download
	# Older versions of this kernel series (e.g. linux-image-6.12.*) are of
	# no further use; another series stays for DISCO_RDMA_KERNEL_PKG.
	series=$(echo "$kver" | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
	for old in "$cache"/*.deb; do
		case $(basename "$old") in "linux-image-$series".*) [ "$old" = "$deb" ] || rm -f "$old" ;; esac
	done
	# Unpack everything (~400 MB, a few seconds), keep the image, the
	# module indexes and the modules of the list (as shipped, maybe
	# compressed); the .deb stays in the cache for a longer list.
	full=$(mktemp -d "$cache/.unpack.XXXXXX")
	trap 'rm -rf "$full" "$kdir.tmp"' EXIT
	dpkg -x "$deb" "$full" || die "dpkg -x $deb failed; delete it and run this again to download it anew"
	ls "$full"/boot/vmlinuz-* >/dev/null 2>&1 || die "$deb holds no boot/vmlinuz-*"
	rm -rf "$kdir.tmp"
	mkdir -p "$kdir.tmp/boot"
	cp "$full"/boot/vmlinuz-* "$full"/boot/config-* "$kdir.tmp/boot/"
	for f in "$full"/lib/modules/*/modules.builtin "$full"/lib/modules/*/modules.order; do
		[ -f "$f" ] || continue
		rel=${f#"$full"/}
		mkdir -p "$kdir.tmp/$(dirname "$rel")"
		cp "$f" "$kdir.tmp/$rel"
	done
	for m in "${modules[@]}"; do
		ko=$(find_module "$m" "$full")
		if [ -z "$ko" ]; then
			is_builtin "$m" "$full" && continue
			[ -n "${optional[$m]:-}" ] && continue
			die "$deb has no module $m.ko (named in $src/modules), nor has it built in"
		fi
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
# Module names as the kernel has them (depends= uses '_' for '-').
modname() { echo "${1//-/_}"; }
declare -A loaded=()
builtin_n=0
absent=()
for m in "${modules[@]}"; do
	ko=$(find_module "$m")
	if [ -z "$ko" ]; then
		if is_builtin "$m"; then
			builtin_n=$((builtin_n + 1))
			loaded[$(modname "$m")]=1
			continue
		fi
		[ -n "${optional[$m]:-}" ] || die "$kdir has no module $m (delete $kdir and run this again)"
		absent+=("$m")
		continue
	fi
	case $ko in
	*.ko) cp "$ko" "$stage/modules/$m.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$stage/modules/$m.ko" ;;
	*.ko.zst) zstd -qdc "$ko" >"$stage/modules/$m.ko" ;;
	*.ko.gz) gzip -dc "$ko" >"$stage/modules/$m.ko" ;;
	*) die "$ko: unknown module compression" ;;
	esac || die "cannot decompress $ko (apt-get install xz-utils, or zstd)"
	# insmod does not load dependencies: each must be built in or loaded before.
	deps=$(tr '\0' '\n' <"$stage/modules/$m.ko" | sed -n 's/^depends=//p')
	deps=${deps%%$'\n'*}
	for d in ${deps//,/ }; do
		[ -n "${loaded[$(modname "$d")]:-}" ] || is_builtin "$d" || is_builtin "${d//_/-}" ||
			die "module $m needs $d: list $d before $m in $src/modules"
	done
	loaded[$(modname "$m")]=1
	echo "$m" >>"$stage/modules/order"
done
[ -s "$stage/modules/order" ] || die "none of the modules of $src/modules is a loadable module of $kpkg"
if [ "$(id -u)" -eq 0 ]; then
	# The kernel opens /dev/console before /init mounts devtmpfs.
	mknod -m 600 "$stage/dev/console" c 5 1
	mknod -m 666 "$stage/dev/null" c 1 3
fi

(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort |
	cpio -o -H newc --owner=0:0 --quiet) | gzip -9n >"$outdir/initrd.img.tmp"
mv "$outdir/initrd.img.tmp" "$outdir/initrd.img"
echo "$stamp" >"$outdir/.stamp"

nmods=$(wc -l <"$stage/modules/order")
extra=""
[ "$builtin_n" = 0 ] || extra+=", $builtin_n built in"
[ ${#absent[@]} = 0 ] || extra+=", absent: ${absent[*]}"
echo "make-rdma-testvm: built $outdir/vmlinuz ($kpkg $kver)$fetched and initrd.img" \
	"($(($(stat -c %s "$outdir/initrd.img") / 1024)) KiB: busybox, $nmods modules$extra)"
