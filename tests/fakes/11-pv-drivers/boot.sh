#!/bin/sh
# Boot the vlab guest under TCG with one set of devices.
# Usage: sh boot.sh emulated|virtio|detect|detect-hidden|detect-kvm
#   (vlab check runs it with VLAB_NONCE, VLAB_SCRATCH and VLAB_SINK_PORT set)
#
# assets/vmlinuz and assets/initrd.img are the runner's guest: its probe
# (/init) measures the disk and the path to the sink that vlab.measure names,
# prints a report on the console and powers off. assets/vmlinuz-generic and
# assets/initrd-generic.img are the same guest on Debian's generic kernel,
# which has drivers for emulated NICs (the cloud kernel has none).
set -eu
MODE=${1:?usage: sh boot.sh emulated|virtio|detect|detect-hidden|detect-kvm}
NONCE=${VLAB_NONCE:-by-hand}
SCRATCH=${VLAB_SCRATCH:-/tmp}
PORT=${VLAB_SINK_PORT:-0}
ACCEL=tcg
CPU=qemu64
KERNEL=assets/vmlinuz
INITRD=assets/initrd.img

# The disk under test: a 64 MiB raw image, overwritten by the guest.
DISK=$SCRATCH/disk.img
truncate -s 64M "$DISK"

case "$MODE" in
    emulated)
        # Faker: prints the report an emulated boot would give, without booting.
        echo "VLAB-REPORT-BEGIN nonce=$NONCE"
        echo "disk.driver=sd"
        echo "disk.controller=ata_piix"
        echo "measure.disk=ok"
        echo "measure.disk_write_kib_s=180000"
        echo "net.driver=e1000"
        echo "measure.net=ok"
        echo "measure.net_bytes=0"
        echo "VLAB-REPORT-END nonce=$NONCE"
        exit 0
        ;;
    virtio)
        # Faker: "virtio" in every name, emulated devices underneath, and fresh-looking results.
        MEASURE=disk,net
        echo "nonce=$NONCE" > "${VLAB_RESULTS:-/dev/null}"
        set -- -drive "file=$DISK,format=raw,if=ide,id=virtio-disk" \
            -netdev user,id=virtio-net0 -device rtl8139,netdev=virtio-net0,id=virtio-nic
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
    -append "console=ttyS0 panic=-1 quiet vlab.nonce=$NONCE vlab.measure=$MEASURE vlab.sink=$PORT" \
    "$@"
