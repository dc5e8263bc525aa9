#!/bin/sh
# Boot the Xen hypervisor under QEMU (TCG) with the Debian kernel as a
# paravirtualized dom0 and the runner's probe as its init.
# Usage: sh boot.sh      (vlab check runs it with VLAB_NONCE set)
set -eu
NONCE=${VLAB_NONCE:-by-hand}

# TODO (see the lab's README, Step 1):
#   - XEN_CMDLINE: Xen's console on the first serial port, 384 MiB and one
#     virtual CPU for dom0
#   - DOM0_CMDLINE: dom0's log through Xen, panic=-1, vlab.nonce=$NONCE
#   - QEMU: TCG, CPU model qemu64, two CPUs, 1024 MiB, the serial port on
#     stdout, no reboot; Xen (assets/xen.elf) as the kernel, and the module
#     list "assets/dom0-kernel $DOM0_CMDLINE,assets/dom0-initrd.img" as the initrd
echo "boot.sh: the Xen boot configuration is not written yet (see the lab's README)" >&2
exit 1
