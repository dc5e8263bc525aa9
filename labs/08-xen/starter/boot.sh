#!/bin/sh
# Boot the Xen hypervisor under QEMU (TCG) with the Debian kernel as a
# paravirtualized dom0 and the runner's probe as its init.
# Usage: sh boot.sh      (vlab check runs it with VLAB_NONCE set)
set -eu
NONCE=${VLAB_NONCE:-by-hand}

# vlab check watches QEMU through two sockets of its own: QEMU's QMP monitor
# connects to $VLAB_QMP, and a second serial port (the guest's ttyS1) to
# $VLAB_SEAL, through which the runner hands the probe the key that seals its
# report. Put $WATCH right after -serial stdio. By hand it is empty.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

# TODO (see the lab's README, Step 1):
#   - XEN_CMDLINE: Xen's console on the first serial port, 384 MiB and one
#     virtual CPU for dom0
#   - DOM0_CMDLINE: dom0's log through Xen, panic=-1, vlab.nonce=$NONCE
#   - QEMU: TCG, CPU model qemu64, two CPUs, 1024 MiB, the serial port on
#     stdout followed by $WATCH, no reboot; Xen (assets/xen.elf) as the kernel, and the module
#     list "assets/dom0-kernel $DOM0_CMDLINE,assets/dom0-initrd.img" as the initrd
echo "boot.sh: the Xen boot configuration is not written yet (see the lab's README)" >&2
exit 1
