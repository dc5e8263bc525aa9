#!/bin/sh
# A faker: the honest container, except that fd 3 is opened on the host's /
# first and inherited all the way into the probe. Through it (fchdir, then
# `..`), the container reaches every host file despite pivot_root.
set -eu
cd "$(dirname "$0")"
exec 3</
exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-box
        mount --bind rootfs rootfs
        cd rootfs
        /bin/busybox pivot_root . old-root
        /bin/busybox mount -t proc proc /proc
        /bin/busybox umount -l /old-root
        exec /.vlab/vlab-probe
    '
