#!/bin/sh
# A container from namespaces: run the runner's probe inside new PID, mount,
# UTS, IPC, network and user namespaces, in the busybox root ./rootfs.
#
# `vlab check` runs `sh container.sh` with VLAB_NONCE in the environment and
# looks at the probe process from the host. The probe is at
# rootfs/.vlab/vlab-probe ($VLAB_PROBE); after pivot_root it is
# /.vlab/vlab-probe. Keep VLAB_NONCE in its environment.
set -eu
cd "$(dirname "$0")"

# Step 1..6: replace this line. For now the probe runs on the host, in no
# new namespace at all.
exec "$VLAB_PROBE"
