#!/usr/bin/env bash
# Builds disco's patched QEMU 7.2 (x86_64-softmmu, TCG + KVM, no GUI) and
# links it as BUILD/qemu/qemu-system-x86_64.
#
#   scripts/build-qemu.sh [BUILD]     BUILD: the CMake build dir (default build)
#
# Inputs: Debian's `qemu` source package (apt-get source, with Debian's own
# patches applied; a deb-src entry is added when the machine has none), the
# patch series node-monitor/qemu/patches/NNNN-*.patch (git format-patch
# output, applied in the order of their numbers with `git apply`, no fuzz:
# scripts/lib/qemu-series.sh), disco's QEMU-side files in
# node-monitor/qemu/src/ (copied to disco/ in the QEMU tree, see its
# meson.build) and the project's static libraries from BUILD (dsm, rpc,
# config, proto: `make` builds them first),
# the device list node-monitor/qemu/devices.mak (the PC machine plus
# virtio-blk and virtio-net; user-mode networking from Debian's libslirp).
#
# Cache (outside the work tree, $DISCO_CACHE or ~/.cache/disco):
#   qemu-src/<version>/          the unpacked source package, fetched once
#   qemu-work/<version>-<h1>/    patched + configured tree; h1 = hash of the
#                                patches and configure flags. Kept, so a change
#                                in src/ or the libraries rebuilds only what
#                                changed (seconds, not the ~5 min cold build)
#   qemu-bin/<version>-<h2>/     the finished binary; h2 = hash of every input
# A binary whose inputs are unchanged is reused without running ninja.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
cache=${DISCO_CACHE:-$HOME/.cache/disco}
devices=$root/node-monitor/qemu/devices.mak
src=$root/node-monitor/qemu/src
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH  # Debian's python3 and meson, not a venv's

say() { echo "build-qemu: $*" >&2; }
die() { say "error: $*"; exit 1; }
. "$root/scripts/lib/qemu-series.sh"

libs=(dsm/libdisco_dsm.a dsm/libdisco_dsm_protocol.a rpc/libdisco_rpc.a
      proto/libdisco_proto.a cluster-config/libdisco_config.a)
headers=(dsm/region.h dsm/protocol.h dsm/policy.h dsm/settings.h cluster-config/cluster_config.h
         rpc/call.h rpc/frame.h rpc/log.h rpc/loop_settings.h rpc/session.h rpc/transport.h)
for l in "${libs[@]}"; do
	[ -f "$build/$l" ] || die "$build/$l is missing: build the project first (make)"
done
[ -f "$build/proto/vm.pb-c.h" ] || die "$build/proto/vm.pb-c.h is missing: build the project first (make)"

# --- the source package --------------------------------------------------
qemu_source_fetch "$cache"
version=$qemu_version
srcdir=$qemu_srcdir

# --- hashes of the inputs --------------------------------------------------
series=$(qemu_series_list)
configure_flags=(--meson=/usr/bin/meson --target-list=x86_64-softmmu
	--without-default-features --without-default-devices
	--enable-tcg --enable-kvm --enable-fdt=system --enable-slirp
	--with-devices-x86_64=disco
	--disable-werror --disable-docs --disable-install-blobs
	--firmwarepath=/usr/share/qemu:/usr/share/seabios)
h1=$( (echo "${configure_flags[*]}"; cat "$devices"; while IFS= read -r p; do basename "$p"; cat "$p"; done <<<"$series") |
      sha256sum | cut -c1-16)
h2=$( (echo "$h1"; cat "$src"/*; for l in "${libs[@]}"; do cat "$build/$l"; done;
       for h in "${headers[@]}"; do cat "$root/$h"; done; cat "$build/proto/vm.pb-c.h") |
      sha256sum | cut -c1-16)
out=$cache/qemu-bin/$version-$h2
mkdir -p "$build/qemu"
if [ -x "$out/qemu-system-x86_64" ]; then
	ln -sf "$out/qemu-system-x86_64" "$build/qemu/qemu-system-x86_64"
	say "up to date: $out/qemu-system-x86_64"
	exit 0
fi

# --- patched, configured tree (reused while the patches are unchanged) -----
work=$cache/qemu-work/$version-$h1
if [ ! -f "$work/.configured" ]; then
	say "preparing $work: copying the source, applying $(echo "$series" | wc -l) patches"
	rm -rf "$work" && mkdir -p "$(dirname "$work")"
	cp -a "$srcdir/qemu" "$work"
	qemu_series_apply "$work"
	cp "$devices" "$work/configs/devices/x86_64-softmmu/disco.mak"
	mkdir -p "$work/disco" "$work/build"
	cp "$src"/* "$work/disco/"
	mkdir -p "$work/disco/lib" "$work/disco/include"
	for l in "${libs[@]}"; do cp "$build/$l" "$work/disco/lib/"; done
	say "configuring (log: $work/build/configure.log)"
	(cd "$work/build" && ../configure "${configure_flags[@]}") >"$work/build/configure.log" 2>&1 ||
		die "configure failed; see $work/build/configure.log"
	touch "$work/.configured"
	# Older patched trees of this version are ~450 MB each: keep one spare.
	ls -dt "$cache/qemu-work/$version"-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
fi

# Refresh disco's files only where they changed, so ninja rebuilds little.
sync_file() { cmp -s "$1" "$2" || cp "$1" "$2"; }
for f in "$src"/*; do sync_file "$f" "$work/disco/$(basename "$f")"; done
for l in "${libs[@]}"; do sync_file "$build/$l" "$work/disco/lib/$(basename "$l")"; done
for h in "${headers[@]}"; do
	mkdir -p "$work/disco/include/$(dirname "$h")"
	sync_file "$root/$h" "$work/disco/include/$h"
done
sync_file "$build/proto/vm.pb-c.h" "$work/disco/include/vm.pb-c.h"

jobs=${JOBS:-$(nproc)}
say "building qemu-system-x86_64 with $jobs jobs (a cold build takes ~4-6 minutes on 2 cores)"
log=$work/build/ninja.log.txt
if ! (cd "$work/build" && ninja -j "$jobs" qemu-system-x86_64 2>&1 | tee "$log" |
	awk '/^\[[0-9]+\/[0-9]+\]/ { n++; if (n % 100 == 0) { print "build-qemu: " $1; fflush() } }
	     /error:|FAILED/ { print; fflush() }' >&2); then
	die "build failed; see $log"
fi
grep -q "^FAILED" "$log" && die "build failed; see $log"
# QEMU builds with -Wno-error; disco's own files must still be warning-free.
if grep -q "^\.\./disco/.*warning:" "$log"; then
	grep -A3 "^\.\./disco/.*warning:" "$log" >&2
	die "warnings in disco's QEMU-side files (node-monitor/qemu/src)"
fi
[ -x "$work/build/qemu-system-x86_64" ] || die "no binary after the build; see $log"
mkdir -p "$out.tmp"
cp "$work/build/qemu-system-x86_64" "$out.tmp/"
rm -rf "$out" && mv "$out.tmp" "$out"
ln -sf "$out/qemu-system-x86_64" "$build/qemu/qemu-system-x86_64"
ls -dt "$cache/qemu-bin/$version"-* 2>/dev/null | tail -n +6 | xargs -r rm -rf
say "built $out/qemu-system-x86_64"
