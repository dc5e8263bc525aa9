#!/bin/sh
# A faker: every namespace, but no pivot_root. It moves rootfs/ over / with
# mount --move and chroots into it. Seen from outside, the mount namespace's
# root and the probe's root are rootfs/, and no host mount is listed; yet the
# host's root is still mounted underneath, and a root process climbs out of
# the chroot to it.
set -eu
cd "$(dirname "$0")"
exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-box
        mount --bind rootfs rootfs
        cd rootfs
        mount --move . /
        exec chroot . /bin/sh -c "mount -t proc proc /proc; exec /.vlab/vlab-probe"
    '
