#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Work on disco's QEMU patch series (node-monitor/qemu/patches) as git
# commits on top of Debian's QEMU source (node-monitor/README.md, "Changing
# the QEMU patches").
#
#   scripts/qemu-patches.sh tree DIR    make DIR a git repository: tag
#                                       debian-source = Debian's qemu source
#                                       package as apt-get source leaves it,
#                                       branch disco = one commit per patch
#                                       (git am)
#   scripts/qemu-patches.sh export DIR  write DIR's commits debian-source..HEAD
#                                       back as the series (git format-patch),
#                                       replacing every patch file
#   scripts/qemu-patches.sh check       apply the series to a copy of the
#                                       source as build-qemu.sh does, then
#                                       delete the copy
#
# The source package comes from the same cache as build-qemu.sh's
# ($DISCO_CACHE or ~/.cache/disco, qemu-src/), so it is fetched at most once.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${DISCO_CACHE:-$HOME/.cache/disco}
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

say() { echo "qemu-patches: $*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '7,18p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
. "$root/scripts/lib/qemu-series.sh"

# Committer identity for the repository's own commits when git has none.
git_identity() {
	if ! git config user.name >/dev/null 2>&1; then
		export GIT_COMMITTER_NAME="disco qemu-patches" GIT_AUTHOR_NAME="disco qemu-patches"
	fi
	if ! git config user.email >/dev/null 2>&1; then
		export GIT_COMMITTER_EMAIL="qemu-patches@localhost" GIT_AUTHOR_EMAIL="qemu-patches@localhost"
	fi
}

cmd_tree() {
	local dir=$1 list
	[ ! -e "$dir" ] || die "$dir exists; give a new directory"
	list=$(qemu_series_list)
	qemu_source_fetch "$cache"
	say "copying Debian's qemu $qemu_version to $dir"
	mkdir -p "$(dirname "$dir")"
	cp -a "$qemu_srcdir/qemu" "$dir"
	dir=$(cd "$dir" && pwd)
	git_identity
	(
		cd "$dir"
		git init -q -b disco
		# quilt's bookkeeping of Debian's own patches: not source
		echo "/.pc/" >>.git/info/exclude
		# -f: QEMU's .gitignore lists files the source package ships
		git add -A -f . && git reset -q -- .pc
		GIT_AUTHOR_NAME="Debian qemu source" GIT_AUTHOR_EMAIL="qemu@packages.debian.org" \
			git commit -q -m "Debian's qemu $qemu_version (apt-get source, Debian's patches applied)"
		git tag debian-source
	) || die "building the repository in $dir failed"
	# --3way: where Debian's source moved under a patch, git merges with
	# the blobs the patch names and stops only on a real conflict.
	# shellcheck disable=SC2086
	if ! (cd "$dir" && git am -q --3way $list); then
		die "git am stopped at $(cat "$dir/.git/rebase-apply/final-commit" 2>/dev/null | head -n1): resolve it in $dir (git am --show-current-patch=diff; edit; git add; git am --continue), then: $0 export $dir"
	fi
	say "$dir: branch disco = debian-source + $(echo "$list" | wc -l) commits; edit them, then: $0 export $dir"
}

cmd_export() {
	local dir=$1 patches=$qemu_series_patches tmp n
	git -C "$dir" rev-parse --verify -q debian-source >/dev/null ||
		die "$dir has no tag debian-source (make it with: $0 tree $dir)"
	[ -z "$(git -C "$dir" status --porcelain --untracked-files=no)" ] ||
		die "$dir has uncommitted changes: commit them first (only commits are exported)"
	[ ! -d "$dir/.git/rebase-apply" ] && [ ! -d "$dir/.git/rebase-merge" ] ||
		die "$dir is in the middle of git am or a rebase"
	tmp=$(mktemp -d)
	trap "rm -rf '$tmp'" EXIT
	# Fixed options, whatever the user's git config says: no commit ids
	# (--zero-commit) and no "n/m" (-N) in the files, so a patch changes
	# only when its content does; no version signature; a/ b/ prefixes.
	git -C "$dir" -c diff.noprefix=false -c diff.mnemonicPrefix=false \
		format-patch -q -N --zero-commit --no-signature --full-index \
		--src-prefix=a/ --dst-prefix=b/ -o "$tmp" debian-source..HEAD
	n=$(find "$tmp" -name '*.patch' | wc -l)
	[ "$n" -gt 0 ] || die "no commits after debian-source in $dir"
	rm -f "$patches"/*
	mv "$tmp"/*.patch "$patches/"
	say "wrote $n patches to $patches (git status shows what changed)"
}

cmd_check() {
	local tmp
	qemu_source_fetch "$cache"
	tmp=$(mktemp -d "$cache/qemu-check.XXXXXX")
	trap "rm -rf '$tmp'" EXIT
	cp -a "$qemu_srcdir/qemu" "$tmp/qemu"
	qemu_series_apply "$tmp/qemu"
	say "the $(qemu_series_list | wc -l) patches apply to Debian's qemu $qemu_version"
}

[ $# -ge 1 ] || usage
case $1 in
	tree) [ $# -eq 2 ] || usage; cmd_tree "$2" ;;
	export) [ $# -eq 2 ] || usage; cmd_export "$2" ;;
	check) [ $# -eq 1 ] || usage; cmd_check ;;
	*) usage ;;
esac
