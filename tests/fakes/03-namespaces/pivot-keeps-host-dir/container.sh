#!/bin/sh
# A faker: a real pivot_root, the old root unmounted, but a host directory
# (this lab's own directory, beside rootfs/) bind-mounted inside first, so
# the container still sees and writes host files at /tmp/host.
set -eu
cd "$(dirname "$0")"
exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-box
        mount --bind rootfs rootfs
        mkdir -p rootfs/tmp/host
        mount --bind "$PWD" rootfs/tmp/host
        cd rootfs
        /bin/busybox pivot_root . old-root
        /bin/busybox mount -t proc proc /proc
        /bin/busybox umount -l /old-root
        exec /.vlab/vlab-probe
    '
