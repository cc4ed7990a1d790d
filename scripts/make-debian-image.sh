#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# make-debian-image.sh [OUTDIR]: the Debian 12 guest, a root disk built
# from Debian's archive with mmdebstrap (nothing else is downloaded).
#
#   OUTDIR/disk.qcow2    the root disk: one ext4 file system on the whole
#                        disk (label disco-root, no partition table, no boot
#                        loader: disco boots the kernel directly), 4 GiB
#                        virtual. A qcow2 overlay on the cached base image,
#                        so it keeps what the guest writes between runs;
#                        delete it to start afresh (the next run makes a
#                        new one).
#   OUTDIR/vmlinuz       Debian's cloud kernel (linux-image-cloud-amd64),
#   OUTDIR/initrd.img    and the initramfs-tools initramfs made for it in
#                        the image (virtio_pci, virtio_blk)
#   OUTDIR/base.qcow2    the image itself (a link into the cache; read-only):
#                        what the system tests put their overlays on
#   OUTDIR/id_ed25519    the ssh key of user disco and root in the guest
#   OUTDIR/id_ed25519.pub  (made once per cache, never committed)
#
# What is in the image: Debian 12 minbase (bookworm, bookworm-updates and
# bookworm-security; no documentation, manual pages or translations), systemd as init, udev,
# systemd-networkd (DHCP on every NIC; ip= on the kernel command line
# configures one statically through systemd-network-generator),
# openssh-server, sudo, fio, iproute2, procps; a serial getty (console=ttyS0,
# waiting for its device without a time limit);
# user `disco` with password `disco` (console) and the key above (ssh),
# allowed to sudo; root with the key only; every tests/guest/*.c built
# static as /usr/local/bin/disco-<name> and tests/guest/*.sh as
# /usr/local/bin/disco-<name>. Timers and services a test VM does not need
# (apt, man-db, e2scrub, fstrim, ...) are off; so is
# systemd-networkd-wait-online. All VMs made from one image share its ssh
# host keys (a test image, not for a network others use).
#
# Cache (${DISCO_CACHE:-~/.cache/disco}/debian-image/):
#   rootfs-<h1>.tar  what mmdebstrap made: h1 = hash of the package list,
#                    the system set-up (function rootfs_setup below) and
#                    the kernel version apt resolves (~1.5-8 minutes, most of
#                    it downloading ~150 MB of packages and unpacking them)
#   image-<h2>/      base.qcow2, vmlinuz, initrd.img: h2 = h1 + this
#                    script + tests/guest + the ssh public key + the
#                    compiler (~1 minute)
#   debs/            the downloaded packages, reused by the next mmdebstrap
#   ssh/             the key pair
# Up to date: one line. Needs root (mmdebstrap's root mode runs the
# packages' scripts in a chroot; mkfs.ext4 -d copies file owners) and the
# Debian packages mmdebstrap, qemu-utils, e2fsprogs (scripts/setup.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
outdir=${1:-$root/build/debian}
cache=${DISCO_CACHE:-$HOME/.cache/disco}/debian-image
src=$root/tests/guest
cc=${CC:-gcc}
suite=bookworm
mirror=${DISCO_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DISCO_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
disk_size=4G

say() { echo "make-debian-image: $*" >&2; }
die() { say "error: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (mmdebstrap runs the packages' scripts in a chroot and mkfs.ext4 -d keeps file owners): run it with sudo"
for t in mmdebstrap qemu-img mkfs.ext4 ssh-keygen "$cc"; do
	command -v "$t" >/dev/null || die "$t not found: run scripts/setup.sh"
done

packages=(
	systemd systemd-sysv udev dbus          # init, device manager, the system bus (logind)
	libpam-systemd                          # a login session per console/ssh login
	linux-image-cloud-amd64 initramfs-tools # Debian's kernel for VMs, its initramfs
	openssh-server openssh-sftp-server      # ssh (and scp) from the host
	sudo iproute2 procps kmod less          # a usable shell
	e2fsprogs                               # fsck of the root file system
	fio netcat-openbsd                      # scripts/bench-debian.sh: disk and network figures
)

# The system set-up, run by mmdebstrap in the new root ($1) after the
# packages are installed. Part of h1: a change here rebuilds the root.
rootfs_setup() {
	local r=$1
	echo disco-debian >"$r/etc/hostname"
	printf '127.0.0.1 localhost\n127.0.1.1 disco-debian\n::1 localhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
	echo 'LABEL=disco-root / ext4 defaults,errors=remount-ro 0 1' >"$r/etc/fstab"
	# Console: a serial getty on ttyS0 comes from console=ttyS0 (systemd's
	# getty generator). Network: DHCP on every NIC (QEMU's user-mode
	# network answers it), unless ip= on the kernel command line sets one.
	# (99-: after the files systemd-network-generator writes for ip=, 90-*)
	mkdir -p "$r/etc/systemd/network"
	printf '[Match]\nName=eth* en*\n\n[Network]\nDHCP=ipv4\n' >"$r/etc/systemd/network/99-disco-dhcp.network"
	chroot "$r" systemctl enable systemd-networkd.service systemd-network-generator.service
	# Off: what a test VM does not need (no VGA console, no periodic
	# maintenance, no FUSE, loop or device-mapper, no kernel debug file
	# systems); each is a few seconds of a boot under emulation.
	chroot "$r" systemctl mask systemd-networkd-wait-online.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
		e2scrub_reap.service fstrim.timer man-db.timer getty@tty1.service \
		systemd-pstore.service sys-kernel-debug.mount sys-kernel-tracing.mount \
		sys-fs-fuse-connections.mount sys-kernel-config.mount dev-hugepages.mount \
		modprobe@loop.service modprobe@dm_mod.service modprobe@fuse.service \
		modprobe@drm.service modprobe@configfs.service modprobe@efi_pstore.service
	# Users: disco (console password "disco", sudo), root (ssh key only).
	chroot "$r" useradd -m -s /bin/bash -G sudo disco
	echo 'disco:disco' | chroot "$r" chpasswd
	echo 'disco ALL=(ALL) NOPASSWD: ALL' >"$r/etc/sudoers.d/disco"
	chmod 0440 "$r/etc/sudoers.d/disco"
	# ssh: keys only for root; no DNS look-up of the client (there is no DNS).
	printf 'UseDNS no\nPermitRootLogin prohibit-password\n' >"$r/etc/ssh/sshd_config.d/disco.conf"
	# The initramfs: only what finding the root disk needs (the kernel has
	# ext4 built in), so the firmware loads less on every boot.
	printf 'MODULES=list\nCOMPRESS=gzip\n' >"$r/etc/initramfs-tools/conf.d/disco"
	printf 'virtio_pci\nvirtio_blk\n' >>"$r/etc/initramfs-tools/modules"
	chroot "$r" update-initramfs -u -k all
	rm -f "$r"/var/cache/apt/*.bin "$r"/var/lib/apt/lists/*_Packages
}

# ---- inputs -------------------------------------------------------------------
kernel=$(apt-cache show --no-all-versions linux-image-cloud-amd64 2>/dev/null |
	sed -n 's/^Depends:.*\(linux-image-[0-9][^ ,]*-cloud-amd64\).*/\1/p' | head -n1 || true)
[ -n "$kernel" ] || die "apt does not know linux-image-cloud-amd64: run apt-get update"
h1=$( { echo "$suite $mirror $security $kernel ${packages[*]}"; declare -f rootfs_setup; } |
	sha256sum | cut -c1-16)
mkdir -p "$cache/ssh" "$cache/debs"
key=$cache/ssh/id_ed25519
[ -f "$key" ] || ssh-keygen -q -t ed25519 -N '' -C disco-test-key -f "$key"
h2=$( {
	echo "$h1"
	cat "${BASH_SOURCE[0]}" "$key.pub"
	(cd "$src" && find . -type f | LC_ALL=C sort | xargs sha256sum)
	"$cc" --version | head -n1
} | sha256sum | cut -c1-16)
image=$cache/image-$h2

install_outputs() {
	mkdir -p "$outdir"
	cp "$image/vmlinuz" "$outdir/vmlinuz.tmp" && mv "$outdir/vmlinuz.tmp" "$outdir/vmlinuz"
	cp "$image/initrd.img" "$outdir/initrd.img.tmp" && mv "$outdir/initrd.img.tmp" "$outdir/initrd.img"
	install -m 0600 "$key" "$outdir/id_ed25519"
	install -m 0644 "$key.pub" "$outdir/id_ed25519.pub"
	# the tests' disks are overlays of the image itself, never of disk.qcow2
	ln -sfn "$image/base.qcow2" "$outdir/base.qcow2"
	# The disk a user boots keeps its contents while the image is the same.
	if [ "$(cat "$outdir/.stamp" 2>/dev/null)" != "$h2" ] || [ ! -f "$outdir/disk.qcow2" ]; then
		rm -f "$outdir/disk.qcow2"
		qemu-img create -q -f qcow2 -F qcow2 -b "$image/base.qcow2" "$outdir/disk.qcow2"
		echo "$h2" >"$outdir/.stamp"
		return 1
	fi
	return 0
}

if [ -f "$image/base.qcow2" ]; then
	if install_outputs; then
		say "up to date: $outdir (image $h2, kernel $(cat "$image/kernel-release"))"
	else
		say "new disk $outdir/disk.qcow2 on image $h2 (kernel $(cat "$image/kernel-release"))"
	fi
	exit 0
fi

# ---- stage 1: the root file system from Debian's packages ------------------------
start=$SECONDS
rootfs=$cache/rootfs-$h1.tar
if [ ! -f "$rootfs" ]; then
	say "building a Debian 12 root with mmdebstrap: ${#packages[@]} packages and their" \
		"dependencies from $mirror (takes about 2 minutes on an idle host, up to 8 on a loaded one; log: $cache/mmdebstrap.log)"
	hook=$cache/rootfs-setup.sh
	{ echo 'set -euo pipefail'; declare -f rootfs_setup; echo 'rootfs_setup "$1"'; } >"$hook"
	# shellcheck disable=SC2016 # expanded by mmdebstrap's hooks
	if ! mmdebstrap --mode=root --variant=minbase --format=tar \
		--aptopt='APT::Install-Recommends "false"' \
		--dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
		--dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
		--dpkgopt='path-exclude=/usr/share/info/*' \
		--include="$(IFS=,; echo "${packages[*]}")" \
		--skip=download/empty \
		--setup-hook="mkdir -p \"\$1/var/cache/apt/archives\" && find '$cache/debs' -name '*.deb' -exec cp -t \"\$1/var/cache/apt/archives\" {} +" \
		--customize-hook="find \"\$1/var/cache/apt/archives\" -name '*.deb' -exec cp -u -t '$cache/debs' {} + && rm -f \"\$1\"/var/cache/apt/archives/*.deb" \
		--customize-hook="bash '$hook' \"\$1\"" \
		"$suite" "$rootfs.tmp" "deb $mirror $suite main" "deb $mirror $suite-updates main" \
		"deb $security $suite-security main" >"$cache/mmdebstrap.log" 2>&1; then
		tail -n 20 "$cache/mmdebstrap.log" >&2
		die "mmdebstrap failed; see $cache/mmdebstrap.log"
	fi
	mv "$rootfs.tmp" "$rootfs"
	# older roots: keep one spare
	ls -t "$cache"/rootfs-*.tar 2>/dev/null | tail -n +3 | xargs -r rm -f
	say "root file system done after $((SECONDS - start)) s"
fi

# ---- stage 2: the project's files, the disk ------------------------------------------
say "making the disk image (about 1 minute)"
stage=$(mktemp -d "$cache/.stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/root"
tar -C "$stage/root" -xf "$rootfs"
r=$stage/root
for c in "$src"/*.c; do
	name=$(basename "$c" .c)
	"$cc" -static -O2 -pthread -std=gnu11 -Wall -Wextra -s -o "$r/usr/local/bin/disco-$name" "$c" ||
		die "building the guest program $c failed"
done
for sh in "$src"/*.sh; do
	[ -e "$sh" ] || continue
	install -m 0755 "$sh" "$r/usr/local/bin/disco-$(basename "$sh" .sh)"
done
for home in "$r/root" "$r/home/disco"; do
	mkdir -p "$home/.ssh"
	install -m 0600 "$key.pub" "$home/.ssh/authorized_keys"
done
chmod 0700 "$r/root/.ssh" "$r/home/disco/.ssh"
chown -R --reference="$r/home/disco" "$r/home/disco/.ssh"
# The serial getty waits for udev to announce ttyS0 however long that
# takes: under emulation across 4 nodes on a loaded host udev's module
# loads (each patches kernel text on every CPU) took more than systemd's
# 90 s device timeout, and the getty (the console's login prompt) failed
# with "Timed out waiting for device /dev/ttyS0". The same setting as an
# fstab x-systemd.device-timeout=, for the console's device.
mkdir -p "$r/etc/systemd/system/dev-ttyS0.device.d"
printf '[Unit]\nJobRunningTimeoutSec=infinity\n' >"$r/etc/systemd/system/dev-ttyS0.device.d/disco-no-timeout.conf"
# A VM with boot_vcpus: master boots the kernel on the master's vCPUs
# (maxcpus=K, docs/config.md); udev brings each other vCPU online when it
# announces it, early in the boot but after the kernel's initcalls.
mkdir -p "$r/etc/udev/rules.d"
printf '%s\n' 'SUBSYSTEM=="cpu", ACTION=="add", TEST=="online", ATTR{online}=="0", ATTR{online}="1"' \
	>"$r/etc/udev/rules.d/60-disco-cpu-online.rules"
# A NIC's interrupts go to the vCPUs of the guest NUMA node that holds
# vCPU 0, i.e. the master's, where the device is: Linux would put the
# single queue pair's unmanaged vectors on any CPU (in a 2-node guest it
# chose vCPU 1), and then the NAPI poll and the softirq that fill and drain
# the rings run on another node than the device that writes them
# (docs/architecture.md, "Devices"). The disks' queues are per vCPU
# (managed vectors, one per CPU) and stay as they are.
cat >"$r/usr/local/sbin/disco-nic-irqs" <<'NICIRQS'
#!/bin/sh
# disco-nic-irqs IFACE: the interrupts of IFACE's PCI device go to the
# CPUs of the NUMA node of CPU 0 (run by udev when the NIC appears).
dev=/sys/class/net/$1/device
[ -d "$dev/msi_irqs" ] || dev=$dev/..
[ -d "$dev/msi_irqs" ] || exit 0
node=$(basename "$(ls -d /sys/devices/system/cpu/cpu0/node* 2>/dev/null | head -n1)")
cpus=$(cat "/sys/devices/system/node/$node/cpulist" 2>/dev/null) || cpus=0
for irq in $(ls "$dev/msi_irqs"); do
	echo "$cpus" >"/proc/irq/$irq/smp_affinity_list" 2>/dev/null || true
done
NICIRQS
chmod 0755 "$r/usr/local/sbin/disco-nic-irqs"
printf '%s\n' 'SUBSYSTEM=="net", ACTION=="add", KERNEL=="eth*", RUN+="/usr/local/sbin/disco-nic-irqs %k"' \
	>"$r/etc/udev/rules.d/61-disco-nic-irqs.rules"
mkdir -p "$image.tmp"
vmlinuz=$(ls "$r"/boot/vmlinuz-* | head -n1)
cp "$vmlinuz" "$image.tmp/vmlinuz"
echo "${vmlinuz##*/vmlinuz-}" >"$image.tmp/kernel-release"
cp "$(ls "$r"/boot/initrd.img-* | head -n1)" "$image.tmp/initrd.img"
truncate -s "$disk_size" "$stage/disk.raw"
mkfs.ext4 -q -L disco-root -d "$r" "$stage/disk.raw" ||
	die "mkfs.ext4 -d failed"
qemu-img convert -f raw -O qcow2 "$stage/disk.raw" "$image.tmp/base.qcow2"
chmod 0444 "$image.tmp/base.qcow2" # the base of every overlay: never written
rm -rf "$image" && mv "$image.tmp" "$image"
ls -dt "$cache"/image-* 2>/dev/null | tail -n +3 | xargs -r rm -rf
install_outputs || true
say "built $image (kernel $(cat "$image/kernel-release"), $(($(stat -c %s "$image/base.qcow2") >> 20)) MiB qcow2) in $((SECONDS - start)) s; disk $outdir/disk.qcow2"
