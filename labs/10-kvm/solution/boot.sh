#!/bin/sh
# Boot the vlab guest with the accelerator given: tcg or kvm.
# Usage: sh boot.sh tcg|kvm      (vlab check runs it with VLAB_NONCE set)
#
# Same guest as lab 09 (assets/vmlinuz, assets/initrd.img); this time the
# probe also times a CPU loop inside the guest (vlab.measure=cpu).
set -eu
ACCEL=${1:-tcg}
NONCE=${VLAB_NONCE:-by-hand}

# vlab check watches QEMU through two sockets of its own: QEMU's QMP monitor
# connects to $VLAB_QMP, and a second serial port (the guest's ttyS1) to
# $VLAB_SEAL, through which the runner hands the probe the key that seals its
# report. Run by hand, without them, the report is simply not sealed.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

exec qemu-system-x86_64 \
    -accel "$ACCEL" \
    -m 256 \
    -nodefaults -display none \
    -serial stdio $WATCH \
    -no-reboot \
    -kernel assets/vmlinuz \
    -initrd assets/initrd.img \
    -append "console=ttyS0 panic=-1 quiet no_timer_check vlab.nonce=$NONCE vlab.measure=cpu"
