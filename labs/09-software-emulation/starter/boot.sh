#!/bin/sh
# Boot the vlab guest under QEMU's TCG: software emulation, no KVM.
# Usage: sh boot.sh      (vlab check runs it with VLAB_NONCE set)
#
# The runner prepared assets/vmlinuz (a Debian cloud kernel) and
# assets/initrd.img (busybox + the runner's probe as /init). The probe prints
# a report on the console and powers the guest off.
set -eu
NONCE=${VLAB_NONCE:-by-hand}

# vlab check watches QEMU through two sockets of its own: QEMU's QMP monitor
# connects to $VLAB_QMP, and a second serial port (the guest's ttyS1) to
# $VLAB_SEAL, through which the runner hands the probe the key that seals its
# report. Put $WATCH right after -serial stdio. By hand it is empty.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

# TODO: complete the QEMU command line (see the lab's README, Step 1):
#   - TCG as the accelerator, 256 MiB of memory, no default devices, no display
#   - the serial console on stdout followed by $WATCH, and no reboot when
#     the guest dies
#   - the kernel, the initramfs, and a kernel command line that puts the
#     console on ttyS0, panics straight to poweroff (panic=-1) and carries
#     vlab.nonce=$NONCE
echo "boot.sh: the QEMU command line is not written yet (see the lab's README)" >&2
exit 1
