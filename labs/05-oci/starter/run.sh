#!/bin/sh
# Runs the OCI bundle made of ./config.json and ./rootfs with runc.
#
# Usage: sh run.sh [CONFIG]   (default config.json; step 7 uses rootless.json)
#
# You do not need to change this file. It copies CONFIG into a fresh
# bundle directory for this run, as its config.json, with two substitutions: @VLAB_NONCE@ becomes
# this check's nonce (put "VLAB_NONCE=@VLAB_NONCE@" in process.env so the
# probe carries it), and root.path "rootfs" becomes /dev/shm/vlab-rootfs (below).
# runc keeps its state in $VLAB_RUNC_ROOT, a private directory the runner
# cleans up with `runc delete --force` after every check.
#
# With a user namespace (step 7) runc prepares the root as the container's
# root user, an ordinary uid on the host, which may not pass through a
# private directory (a home directory of mode 0700, say) on its way to
# ./rootfs. So runc runs in a mount namespace of its own, where a fresh
# tmpfs covers /dev/shm (a directory every host has, in a path anyone may
# walk) and ./rootfs is also bound at /dev/shm/vlab-rootfs; both mounts
# vanish with that namespace. The container's root is still ./rootfs itself.
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
: "${VLAB_RUNC_ROOT:=$VLAB_SCRATCH/runc}"
bundle="$VLAB_SCRATCH/bundle"
mkdir -p "$bundle"
sed -e "s/@VLAB_NONCE@/$VLAB_NONCE/" \
    -e "s#\"path\":[[:space:]]*\"rootfs\"#\"path\": \"/dev/shm/vlab-rootfs\"#" \
    "${1:-config.json}" > "$bundle/config.json"
export bundle VLAB_NONCE VLAB_RUNC_ROOT
exec unshare --mount --propagation private sh -c '
    set -e
    mount -t tmpfs -o mode=755 vlab /dev/shm
    mkdir /dev/shm/vlab-rootfs
    mount --bind rootfs /dev/shm/vlab-rootfs
    exec runc --root "$VLAB_RUNC_ROOT" run --bundle "$bundle" "vlab-$VLAB_NONCE"
'
