#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs, with apt-get, the Debian packages disco needs to build and test,
# and only those that are missing. Idempotent: a second run does nothing.
set -euo pipefail

packages=(
	build-essential cmake pkg-config
	protobuf-c-compiler libprotobuf-c-dev   # wire protocol
	libuv1-dev                              # event loop of the TCP transport
	libyaml-dev                             # cluster config parser
	libsodium-dev                           # HMAC-SHA256 peer authentication
	libcmocka-dev                           # unit tests
	clang libclang-rt-14-dev                # sanitizer build and libFuzzer (make test-sanitize, make fuzz)
	libibverbs-dev librdmacm-dev rdma-core  # RDMA transport
	spin                                    # Promela model of the protocol
	dpkg-dev meson ninja-build libglib2.0-dev libpixman-1-dev  # patched QEMU 7.2
	flex bison zlib1g-dev libfdt-dev                           #   (scripts/build-qemu.sh)
	libslirp-dev                                               #   user-mode networking (vms[].nics)
	seabios qemu-system-data                # guest firmware: bios.bin, linuxboot_dma.bin
	busybox-static cpio                     # default guest initramfs (scripts/make-guest.sh)
	xz-utils                                # the unmodified program of `disco compare` (copied into the guest)
	mmdebstrap e2fsprogs qemu-utils         # Debian guest image (scripts/make-debian-image.sh), qemu-img
	openssh-client iproute2                 # its tests: ssh into the guest, a tap in a network namespace
	nftables iputils-ping                   # nodes in network namespaces: loss, faults, ping (scripts/lib/netns.sh)
	gnuplot-nox                             # charts of `scripts/disco compare`
	qemu-system-x86 ibverbs-utils           # Soft-RoCE test VM (scripts/make-rdma-testvm.sh, tests/rdma/)
	libjansson-dev libmicrohttpd-dev        # discod: QMP (JSON) to its QEMUs, /metrics over HTTP
	prometheus                              # promtool checks discod's /metrics (its server is not started)
	bash-completion                         # the test of disco's completion (packaging/bash-completion)
)

# A key file must be readable by its owner only; git checks the demo key
# out 0644 (CMake's configure step does the same for the test keys).
chmod 600 "$(dirname "$0")/../cluster-config/examples/local.key"

missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

echo "setup: installing missing Debian packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
	sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# Only promtool of the prometheus package is wanted: keep its service from
# starting while it installs (invoke-rc.d and deb-systemd-invoke ask
# policy-rc.d), unless the machine already has a policy.
guard=""
if [[ " ${missing[*]} " == *" prometheus "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
	guard=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\nexit 101\n' | $sudo tee "$guard" >/dev/null
	$sudo chmod 755 "$guard"
fi
rc=0
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
[ -z "$guard" ] || $sudo rm -f "$guard"
[ $rc -eq 0 ] || exit $rc
echo "setup: done"
