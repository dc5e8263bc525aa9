#!/bin/sh
# A container from namespaces: run the runner's probe inside new PID, mount,
# UTS, IPC, network and user namespaces, in the busybox root ./rootfs.
#
# unshare (util-linux) makes the namespaces and, with --map-root-user, writes
# the uid/gid maps that make us root inside; the rest runs in the new
# namespaces. Works as an ordinary user and as root.
set -eu
cd "$(dirname "$0")"

exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-box
        # pivot_root wants the new root to be a mount point of its own.
        mount --bind rootfs rootfs
        cd rootfs
        # From here on only the busybox root is ours: use its pivot_root.
        /bin/busybox pivot_root . old-root
        # A fresh /proc for our PID namespace, while the old root (and its
        # fully visible /proc, which the kernel wants to see first) is still here.
        /bin/busybox mount -t proc proc /proc
        /bin/busybox umount -l /old-root
        exec /.vlab/vlab-probe
    '
