#!/bin/sh
# A faker: a real pivot_root, the old root unmounted, but a host directory
# (the host's /etc, which holds no marker) bind-mounted inside first, so
# the container still sees the host's files at /tmp/etc.
set -eu
cd "$(dirname "$0")"
exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-box
        mount --bind rootfs rootfs
        mkdir -p rootfs/tmp/etc
        mount --bind /etc rootfs/tmp/etc
        cd rootfs
        /bin/busybox pivot_root . old-root
        /bin/busybox mount -t proc proc /proc
        /bin/busybox umount -l /old-root
        exec /.vlab/vlab-probe
    '
