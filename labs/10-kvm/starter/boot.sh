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
# report. Put $WATCH right after -serial stdio. By hand it is empty.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

# TODO (see the lab's README, Step 1): boot with -accel "$ACCEL", the console
# on stdout followed by $WATCH, and a kernel command line carrying vlab.nonce=$NONCE and
# vlab.measure=cpu.
echo "boot.sh: not written yet (see the lab's README)" >&2
exit 1
