# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by scripts/make-guest.sh and scripts/make-rdma-testvm.sh: which
# Debian kernel package to use (from the local apt lists, no network; the
# newest cached one when apt does not know it), and the checks of the
# static busybox both initramfs images are built from. The caller defines
# die() and `tool` (its name, for messages).

# debian_kernel_pick META FLAVOR OVERRIDE_VAR CACHE
#   META      the metapackage, e.g. linux-image-cloud-amd64 or
#             linux-image-6.12-amd64
#   FLAVOR    the versioned package's suffix, e.g. -cloud-amd64
#   OVERRIDE_VAR  name of an environment variable that may name the
#             versioned package instead, or another metapackage (which is
#             resolved like META, e.g. linux-image-amd64 for Debian 12's 6.1)
#   CACHE     where downloaded kernels are kept (one <pkg>_<version>/ each)
# Sets kpkg, kver and kdir ($CACHE/<pkg>_<version>).
debian_kernel_pick() {
	local meta=$1 flavor=$2 override_var=$3 cache=$4
	local pkg=${!override_var:-} ver="" cached dep base
	if [ -z "$pkg" ]; then
		pkg=$(debian_kernel_meta_dep "$meta" "$flavor")
	else
		# A metapackage names the versioned package in its Depends.
		dep=$(debian_kernel_meta_dep "$pkg" "$flavor")
		[ -z "$dep" ] || pkg=$dep
	fi
	if [ -n "$pkg" ]; then
		ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null |
			sed -n 's/^Version: //p' | head -n1) || true
	fi
	if [ -z "$ver" ] && [ -n "${!override_var:-}" ]; then
		die "apt does not know $override_var=${!override_var} (see: apt-cache policy ${!override_var})"
	fi
	if [ -z "$ver" ]; then
		# The newest cached kernel of META's series: linux-image-6.12-amd64
		# takes a linux-image-6.12.*, linux-image-amd64 any.
		base=${meta%"$flavor"}
		case $base in linux-image-[0-9]*) base=$base. ;; *) base=linux-image- ;; esac
		cached=$(for d in "$cache/$base"*_*/; do
			case $d in *.tmp/) ;; *) [ ! -d "$d" ] || echo "$d" ;; esac
		done | sort -V | tail -n1)
		[ -n "$cached" ] || die "apt does not know $meta and no kernel is cached in $cache.
  Run 'apt-get update' (as root) so apt knows the Debian kernel packages, then run this again."
		cached=$(basename "$cached")
		pkg=${cached%%_*}
		ver=${cached#*_}
		echo "$tool: note: apt could not resolve $meta; using the cached $pkg $ver" >&2
	fi
	kpkg=$pkg
	kver=$ver
	kdir=$cache/${kpkg}_${kver}
}

# debian_kernel_meta_dep PKG FLAVOR: the versioned linux-image-<ver>FLAVOR
# that PKG (a metapackage) depends on, per the apt lists; empty if apt does
# not know PKG or PKG is no metapackage (a versioned image depends on none).
debian_kernel_meta_dep() {
	apt-cache show --no-all-versions "$1" 2>/dev/null |
		sed -n "s/^Depends:.*\(linux-image-[0-9][^ ,]*$2\).*/\1/p" | head -n1 || true
}

# check_static_busybox PATH: dies unless PATH is busybox-static's binary
# and cpio is there to pack it.
check_static_busybox() {
	[ -x "$1" ] || die "$1 not found. Install it with: apt-get install busybox-static"
	if readelf -l "$1" 2>/dev/null | grep -q 'INTERP'; then
		die "$1 is dynamically linked; the initramfs needs the one from busybox-static (apt-get install busybox-static)"
	fi
	command -v cpio >/dev/null || die "cpio not found. Install it with: apt-get install cpio"
}

# debian_kernel_download: sets `deb` to the cached .deb of $kpkg $kver,
# downloading it into $cache first if needed (and `fetched` to a note
# saying so).
debian_kernel_download() {
	fetched=""
	deb=$(ls "$cache/${kpkg}_${kver//:/%3a}"_*.deb 2>/dev/null | head -n1 || true)
	[ -z "$deb" ] || return 0
	local apt_opts=(-q)
	# As root, apt drops to user _apt to download, which cannot write
	# into root's cache directory; download as root instead.
	[ "$(id -u)" -eq 0 ] && apt_opts+=(-o APT::Sandbox::User=root)
	if ! (cd "$cache" && apt-get download "${apt_opts[@]}" "$kpkg=$kver" >"$cache/download.log" 2>&1); then
		sed 's/^/  apt: /' "$cache/download.log" >&2
		die "apt-get download $kpkg=$kver failed (log: $cache/download.log).
  Check the network and the apt sources; if the version is gone from the mirror, run 'apt-get update' and try again."
	fi
	deb=$(ls "$cache/${kpkg}_${kver//:/%3a}"_*.deb 2>/dev/null | head -n1 || true)
	[ -n "$deb" ] || die "apt-get download reported success but no ${kpkg}_*.deb is in $cache"
	fetched=" (downloaded $(basename "$deb"))"
}
