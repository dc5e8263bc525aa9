#!/bin/sh
# Density: how many instances fit, and what does each one cost?
# Usage: sh density.sh containers|uml
#
# Every instance runs in its own memory cgroup, container-N or uml-N, under
# $VLAB_CGROUP_MEMORY (made and removed by the runner, which reads the peak
# memory each group was charged and when a process first ran in a new root).
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
# bin/linux is the UML kernel `vlab doctor` found booting on this machine (step 2).
PATH="$PWD/bin:$PATH"

# Runs the rest of the arguments in the memory group $1.
in_group() {
    g="$VLAB_CGROUP_MEMORY/$1"
    shift
    mkdir -p "$g"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$g" "$@"
}

# One container, as in lab 03: new namespaces, pivoted into rootfs/, idle there.
container() {
    exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
        sh -c 'mount --bind rootfs rootfs && cd rootfs && /bin/busybox pivot_root . old-root &&
               /bin/busybox mount -t proc proc /proc && /bin/busybox umount -l /old-root &&
               exec /bin/sleep 10'
}

containers() {
    # One after another, so each start is timed without the others' contention.
    for i in 1 2 3 4 5; do
        in_group "container-$i" sh density.sh container &
        sleep 0.4
    done
    sleep 1
}

# One UML guest as in lab 07, with the smallest memory it boots in, reporting only.
uml() {
    for i in 1 2 3; do
        in_group "uml-$i" linux mem=64M rootfstype=hostfs rootflags="$PWD/rootfs" rw init=/.vlab/uml-init \
            con0=fd:0,fd:1 con=null umid="vlab-$VLAB_NONCE-$i" uml_dir="$VLAB_SCRATCH" \
            vlab.nonce="$VLAB_NONCE" vlab.quick quiet </dev/null >"$VLAB_SCRATCH/uml-$i.console" 2>&1 &
    done
    wait
    grep -h "^vendor_id=" "$VLAB_SCRATCH"/uml-*.console
}

case "${1:-}" in
    containers) containers ;;
    container) container ;;
    uml) uml ;;
    *) echo "usage: sh density.sh containers|uml" >&2; exit 2 ;;
esac
