#!/bin/sh
# A faker: runs the bundle (whose filter denies only reboot) with runc, then
# rewrites runc's state.json so that the recorded rules deny unshare.
set -eu
cd "$(dirname "$0")"
bundle="$VLAB_SCRATCH/bundle"
mkdir -p "$bundle"
sed -e "s/@VLAB_NONCE@/$VLAB_NONCE/" \
    -e "s#\"path\":[[:space:]]*\"rootfs\"#\"path\": \"/dev/shm/vlab-rootfs\"#" \
    config.json > "$bundle/config.json"
export bundle
unshare --mount --propagation private sh -c '
    mount -t tmpfs -o mode=755 vlab /dev/shm
    mkdir /dev/shm/vlab-rootfs
    mount --bind rootfs /dev/shm/vlab-rootfs
    exec runc --root "$VLAB_RUNC_ROOT" run --bundle "$bundle" "vlab-$VLAB_NONCE"
' &
state="$VLAB_RUNC_ROOT/vlab-$VLAB_NONCE/state.json"
i=0
while [ ! -s "$state" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i+1)); done
sed -i 's/"name":"reboot"/"name":"unshare"/' "$state"
echo "seccomp: unshare -> errno:EPERM"
wait
