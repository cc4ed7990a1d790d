#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# disco-xz: an unmodified multi-threaded program from Debian's archive in the
# guest: XZ Utils' xz (scripts/make-guest.sh copies /usr/bin/xz, its shared
# libraries and the dynamic loader into the initramfs).
#
#   disco-xz [MiB]     (default 4)
#
# Generates MiB of deterministic compressible text (disco-xzdata), then,
# timed: compresses it with `xz -T<online CPUs> -1 --block-size=512KiB`
# (blocks small enough that every CPU gets several) and decompresses it
# with the same thread count. The round trip must give the input back
# byte for byte (cmp) and the same sha256. Output:
#   xz: version=<first line of xz --version>
#   xz: ms=<compress + decompress, from /proc/uptime> PASS | FAIL <reason>
# (plus compress_ms, decompress_ms, sizes). Exit status 0 only on PASS.
mib=${1:-4}
xz=/usr/bin/xz
say() { echo "xz: $*"; }
fail() { say "ms=${ms:-0} FAIL $*"; exit 1; }
ms_now() { awk '{ printf "%d\n", $1 * 1000 }' /proc/uptime; }

version=$("$xz" --version 2>/dev/null | head -n 1)
case "$version" in
*"XZ Utils"*) ;;
*) fail "$xz is not XZ Utils' xz (got '$version')" ;;
esac
say "version=$version"
cpus=$(grep -c '^processor' /proc/cpuinfo)
dir=/tmp/disco-xz
rm -rf "$dir" && mkdir -p "$dir" || fail "cannot make $dir"
disco-xzdata "$mib" "$dir/in" >/dev/null || fail "disco-xzdata failed"
sum_in=$(sha256sum "$dir/in" | cut -d' ' -f1)

t0=$(ms_now)
"$xz" -T"$cpus" -1 --block-size=512KiB -c "$dir/in" >"$dir/in.xz" || { ms=$(($(ms_now) - t0)); fail "xz -T$cpus -1 exited $?"; }
t1=$(ms_now)
"$xz" -d -T"$cpus" -c "$dir/in.xz" >"$dir/out" || { ms=$(($(ms_now) - t0)); fail "xz -d exited $?"; }
t2=$(ms_now)
ms=$((t2 - t0))

say "threads=$cpus in_bytes=$(wc -c <"$dir/in") xz_bytes=$(wc -c <"$dir/in.xz") compress_ms=$((t1 - t0)) decompress_ms=$((t2 - t1))"
cmp -s "$dir/in" "$dir/out" || fail "the decompressed file differs from the input"
sum_out=$(sha256sum "$dir/out" | cut -d' ' -f1)
[ "$sum_in" = "$sum_out" ] || fail "sha256 $sum_out after the round trip, $sum_in before"
rm -rf "$dir"
say "ms=$ms PASS"
