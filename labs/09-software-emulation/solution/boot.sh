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
# report. Run by hand, without them, the report is simply not sealed.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

exec qemu-system-x86_64 \
    -accel tcg \
    -m 256 \
    -nodefaults -display none \
    -serial stdio $WATCH \
    -no-reboot \
    -kernel assets/vmlinuz \
    -initrd assets/initrd.img \
    -append "console=ttyS0 panic=-1 quiet vlab.nonce=$NONCE"
