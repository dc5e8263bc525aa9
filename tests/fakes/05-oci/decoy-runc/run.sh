#!/bin/sh
# A faker: no runc at all. unshare, linked under the name runc and handed
# runc's arguments, builds the container (every namespace, pivot_root), and a
# forged state.json in $VLAB_RUNC_ROOT names the probe as the container's
# init, with its real pid and start time.
set -eu
cd "$(dirname "$0")"
id="vlab-$VLAB_NONCE"
mkdir -p "$VLAB_SCRATCH/bin" "$VLAB_RUNC_ROOT/$id"
ln -sf "$(command -v unshare)" "$VLAB_SCRATCH/bin/runc"
(
    # Wait for the probe, then write the state runc would have written.
    i=0
    while [ "$i" -lt 200 ]; do
        for p in /proc/[0-9]*; do
            if [ "$(tr '\0' ' ' < "$p/cmdline" 2>/dev/null)" = "/bin/sh /.vlab/vlab-probe " ]; then
                pid=${p#/proc/}
                start=$(cut -d' ' -f22 "$p/stat")
                printf '{"id":"%s","init_process_pid":%s,"init_process_start":%s,"created":"2026-01-01T00:00:00Z","config":{"rootfs":"%s/rootfs","labels":["bundle=%s"],"cgroups":{"path":"","memory":0}},"cgroup_paths":{},"namespace_paths":{},"external_descriptors":["/dev/null","/dev/null","/dev/null"]}\n' \
                    "$id" "$pid" "$start" "$PWD" "$PWD" > "$VLAB_RUNC_ROOT/$id/state.json"
                exit 0
            fi
        done
        sleep 0.05
        i=$((i + 1))
    done
) &
exec "$VLAB_SCRATCH/bin/runc" --pid --fork --mount --uts --ipc --net --propagation private \
    sh -c '
        set -e
        hostname vlab-oci
        mount --bind rootfs rootfs
        cd rootfs
        /bin/busybox pivot_root . old-root
        /bin/busybox mount -t proc proc /proc
        /bin/busybox umount -l /old-root
        exec /.vlab/vlab-probe
    ' --root "$VLAB_RUNC_ROOT" run --bundle "$PWD" "$id"
