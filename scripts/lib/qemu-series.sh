# SPDX-License-Identifier: GPL-2.0-or-later
# Sourced by scripts/build-qemu.sh and scripts/qemu-patches.sh: Debian's
# QEMU source package and disco's patch series on top of it. The caller
# defines say() and die().
#
# The series is node-monitor/qemu/patches/NNNN-*.patch, `git format-patch`
# output: its order is the numbering, which must run 0001, 0002, ... with
# no gap, and nothing else may be in that folder (a stray file there is an
# error, not silently skipped). Patches apply with `git apply`, which
# accepts no fuzz: every context line must match. A patch that does not
# apply is named in the error, with git's reason.

qemu_series_patches=$root/node-monitor/qemu/patches

# qemu_source_fetch CACHE
# Debian's qemu source package (with Debian's own patches applied, as
# `apt-get source` leaves it) in CACHE/qemu-src/<version>/qemu, fetched once.
# A deb-src entry is added when the machine has none. Sets qemu_version
# (e.g. 7.2+dfsg-7+deb12u18) and qemu_srcdir.
qemu_source_fetch() {
	local cache=$1 v
	qemu_ensure_deb_src
	v=$(apt-get source --print-uris qemu 2>/dev/null | awk '/\.dsc/ { print $2; exit }' |
		sed 's/^qemu_//; s/\.dsc$//')
	v=${v:-unknown}
	case "$v" in
		*:7.2*|7.2*) ;;
		*) die "Debian's qemu source is version $v; disco's patches are for 7.2 (Debian 12)" ;;
	esac
	qemu_version=${v#*:}
	qemu_srcdir=$cache/qemu-src/$qemu_version
	if [ ! -d "$qemu_srcdir/qemu" ]; then
		say "fetching Debian's qemu $qemu_version source package"
		rm -rf "$qemu_srcdir.tmp" && mkdir -p "$qemu_srcdir.tmp"
		(cd "$qemu_srcdir.tmp" &&
			apt-get source -qq qemu >/dev/null) || die "apt-get source qemu failed"
		mv "$qemu_srcdir.tmp"/qemu-*/ "$qemu_srcdir.tmp/qemu"
		rm -rf "$qemu_srcdir" && mv "$qemu_srcdir.tmp" "$qemu_srcdir"
	fi
}

qemu_ensure_deb_src() {
	if apt-get source --print-uris qemu >/dev/null 2>&1; then
		return
	fi
	say "no deb-src entry for Debian's archive: adding /etc/apt/sources.list.d/disco-deb-src.sources"
	local sudo=""
	[ "$(id -u)" -eq 0 ] || sudo=sudo
	$sudo tee /etc/apt/sources.list.d/disco-deb-src.sources >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
	$sudo apt-get update -qq || die "apt-get update failed"
}

# qemu_series_list: the series' files, one path a line, in order; dies
# naming the file that breaks the naming or the numbering.
qemu_series_list() {
	local f name n=0 want
	for f in "$qemu_series_patches"/*; do
		[ -e "$f" ] || break
		name=$(basename "$f")
		n=$((n + 1))
		want=$(printf '%04d' "$n")
		case $name in
			[0-9][0-9][0-9][0-9]-*.patch) ;;
			*) die "$qemu_series_patches/$name: not a patch of the series (want NNNN-subject.patch from git format-patch)" ;;
		esac
		[ "${name%%-*}" = "$want" ] ||
			die "$qemu_series_patches/$name: expected patch number $want here (the series is numbered 0001, 0002, ... without gaps)"
		echo "$f"
	done
	[ "$n" -gt 0 ] || die "no patches in $qemu_series_patches"
}

# qemu_series_apply DIR: applies the series to the QEMU tree DIR (not a git
# repository itself), each patch checked with `git apply --check` before it
# is applied. GIT_CEILING_DIRECTORIES keeps git from taking a repository
# around DIR (a cache inside a work tree) as the one to apply to: inside a
# repository, git apply would take paths relative to its top and silently
# skip files outside the current directory.
qemu_series_apply() {
	local dir=$1 list p out
	list=$(qemu_series_list) || exit 1
	while IFS= read -r p; do
		if ! out=$(cd "$dir" && GIT_CEILING_DIRECTORIES=$(dirname "$dir") \
			git apply --check "$p" 2>&1); then
			echo "$out" >&2
			die "patch $(basename "$p") does not apply to Debian's qemu $qemu_version (no fuzz is accepted: refresh it, see node-monitor/README.md)"
		fi
		(cd "$dir" && GIT_CEILING_DIRECTORIES=$(dirname "$dir") git apply "$p") ||
			die "patch $(basename "$p"): git apply failed after its check passed"
	done <<<"$list"
}
