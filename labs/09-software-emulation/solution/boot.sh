#!/bin/sh
# Boot the vlab guest under QEMU's TCG: software emulation, no KVM.
# Usage: sh boot.sh      (vlab check runs it with VLAB_NONCE set)
#
# The runner prepared assets/vmlinuz (a Debian cloud kernel) and
# assets/initrd.img (busybox + the runner's probe as /init). The probe prints
# a report on the console and powers the guest off.
#
# The runner watches QEMU itself rather than trusting the console: QEMU's
# QMP monitor connects to the runner's socket ($VLAB_QMP), and the guest's
# second serial port (ttyS1) to another ($VLAB_SEAL), through which the
# runner hands the probe the key that seals its report.
set -eu
NONCE=${VLAB_NONCE:-by-hand}

exec qemu-system-x86_64 \
    -accel tcg \
    -m 256 \
    -nodefaults -display none \
    -serial stdio \
    -qmp "unix:$VLAB_QMP" \
    -serial "unix:$VLAB_SEAL" \
    -no-reboot \
    -kernel assets/vmlinuz \
    -initrd assets/initrd.img \
    -append "console=ttyS0 panic=-1 quiet vlab.nonce=$NONCE"
