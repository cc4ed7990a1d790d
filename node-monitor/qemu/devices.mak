# Devices of disco's QEMU (scripts/build-qemu.sh copies this file to
# configs/devices/x86_64-softmmu/disco.mak and configures with
# --without-default-devices --with-devices-x86_64=disco): the PC machines
# of QEMU's own default, plus the guest devices a cluster config can ask
# for (docs/config.md, vms[].disks and vms[].nics). Everything else stays
# out, so every node builds exactly the machine its command line names.
include ../i386-softmmu/default.mak

# the virtio transport on the PCI bus (legacy and modern)
CONFIG_VIRTIO_PCI=y
# vms[].disks
CONFIG_VIRTIO_BLK=y
# vms[].nics
CONFIG_VIRTIO_NET=y
