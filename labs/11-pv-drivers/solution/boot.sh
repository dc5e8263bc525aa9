#!/bin/sh
# Boot the vlab guest under TCG with one set of devices.
# Usage: sh boot.sh emulated|virtio|detect|detect-hidden|detect-kvm
#   (vlab check runs it with VLAB_NONCE, VLAB_SCRATCH, VLAB_RESULTS,
#   VLAB_SINK_PORT and VLAB_SOURCE_PORT set)
#
# assets/vmlinuz-generic and assets/initrd-generic.img are the runner's guest
# on Debian's generic kernel: its probe (/init) measures the disk and the
# network that vlab.measure names, prints a report on the console and powers
# off. The generic kernel has drivers for emulated and virtio devices alike,
# so both device runs boot the same kernel. assets/vmlinuz and
# assets/initrd.img are the same probe on Debian's cloud kernel (virtio only).
set -eu
MODE=${1:?usage: sh boot.sh emulated|virtio|detect|detect-hidden|detect-kvm}
NONCE=${VLAB_NONCE:-by-hand}
SCRATCH=${VLAB_SCRATCH:-/tmp}
PORT=${VLAB_SINK_PORT:-0}
SOURCE=${VLAB_SOURCE_PORT:-0}
ACCEL=tcg
CPU=qemu64
KERNEL=assets/vmlinuz
INITRD=assets/initrd.img

# The disk under test: a 64 MiB raw image, overwritten by the guest.
DISK=$SCRATCH/disk.img
truncate -s 64M "$DISK"

# QEMU's trace events for every register access to a device (an MMIO or
# port I/O MemoryRegion), and for virtio's queue notifications, which QEMU
# hands to an ioeventfd without those events: the lines the runner counts
# in its own run.
TRACE_EVENTS=trace:memory_region_ops_read,trace:memory_region_ops_write,trace:virtio_queue_notify

case "$MODE" in
    emulated)
        # An IDE disk on the PIIX controller and an Intel e1000 NIC on user
        # networking (the host is 10.0.2.2): every register the guest's
        # drivers touch is a trap into QEMU's model of the real chip.
        MEASURE=disk,net
        KERNEL=assets/vmlinuz-generic
        INITRD=assets/initrd-generic.img
        set -- -drive "file=$DISK,format=raw,if=ide" \
            -nic user,model=e1000
        ;;
    virtio)
        # virtio-blk and virtio-net (user networking: the host is 10.0.2.2),
        # on the same generic kernel as the emulated run.
        MEASURE=disk,net
        KERNEL=assets/vmlinuz-generic
        INITRD=assets/initrd-generic.img
        set -- -drive "file=$DISK,format=raw,if=none,id=d0" -device virtio-blk-pci,drive=d0 \
            -netdev user,id=n0 -device virtio-net-pci,netdev=n0
        ;;
    detect | detect-hidden | detect-kvm)
        # detect.sh goes into the guest as /detect.sh in a second initramfs
        # appended to the runner's (the kernel unpacks both).
        MEASURE=
        mkdir -p "$SCRATCH/extra"
        cp detect.sh "$SCRATCH/extra/detect.sh"
        (cd "$SCRATCH/extra" && echo detect.sh | busybox cpio -o -H newc) > "$SCRATCH/extra.cpio" 2>/dev/null
        cat assets/initrd.img "$SCRATCH/extra.cpio" > "$SCRATCH/initrd.img"
        INITRD=$SCRATCH/initrd.img
        [ "$MODE" = detect-hidden ] && CPU=qemu64,-hypervisor
        [ "$MODE" = detect-kvm ] && ACCEL=kvm && CPU=qemu64
        set --
        ;;
    *)
        echo "boot.sh: unknown mode $MODE (emulated, virtio, detect, detect-hidden or detect-kvm)" >&2
        exit 2
        ;;
esac

APPEND="console=ttyS0 panic=-1 quiet vlab.nonce=$NONCE vlab.measure=$MEASURE vlab.sink=$PORT vlab.source=$SOURCE"

# Your own count (README, "Counting device accesses"): a first boot with the
# same devices, traced into a log of your own, its console in a file. count.sh
# turns the two into accesses per MiB and per packet, which go to
# $VLAB_RESULTS for the runner to hold against its own count of the next boot.
if [ -n "$MEASURE" ]; then
    OWN=$SCRATCH/own-$MODE
    qemu-system-x86_64 -accel "$ACCEL" -cpu "$CPU" -m 256 -nodefaults -display none \
        -serial "file:$OWN.console" -no-reboot \
        -d "$TRACE_EVENTS" -D "$OWN.trace" \
        -kernel "$KERNEL" -initrd "$INITRD" -append "$APPEND" "$@" < /dev/null
    echo "nonce=$NONCE" > "${VLAB_RESULTS:-$OWN.results}"
    sh count.sh "$OWN.trace" "$OWN.console" | tee -a "${VLAB_RESULTS:-$OWN.results}"
fi

# vlab check watches QEMU through two sockets of its own: QEMU's QMP monitor
# connects to $VLAB_QMP, and a second serial port (the guest's ttyS1) to
# $VLAB_SEAL, through which the runner hands the probe the key that seals its
# report. Run by hand, without them, the report is simply not sealed.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

exec qemu-system-x86_64 \
    -accel "$ACCEL" -cpu "$CPU" \
    -m 256 \
    -nodefaults -display none \
    -serial stdio $WATCH \
    -no-reboot \
    -kernel "$KERNEL" \
    -initrd "$INITRD" \
    -append "$APPEND" \
    "$@"
