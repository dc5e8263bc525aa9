#!/bin/sh
# Density: how many instances fit, and what does each one cost?
# Usage: sh density.sh containers|uml|ksm|balloon
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

containers() {
    # Step 1: start five containers (lab 03's, idling in rootfs/ with sleep),
    # each in its own group container-1 ... container-5.
    echo "no containers yet" >&2
}

uml() {
    # Step 2: boot three UML guests (lab 07's command line, mem=64M and
    # vlab.quick), each in its own group uml-1 ... uml-3, and wait for them.
    echo "no guests yet" >&2
}

ksm() {
    # Step 3: boot two identical TCG guests that stay up (vlab.hold=300),
    # wait for both reports, then start KSM (/sys/kernel/mm/ksm) and wait
    # until it merged their pages. Put the host's KSM settings back at the end.
    echo "no guests yet" >&2
    exit 1
}

balloon() {
    # Step 4: boot a guest with -device virtio-balloon-pci and
    # vlab.measure=balloon, and inflate its balloon through a QMP monitor of
    # your own.
    echo "no balloon yet" >&2
    exit 1
}

case "${1:-}" in
    containers) containers ;;
    uml) uml ;;
    ksm) ksm ;;
    balloon) balloon ;;
    *) echo "usage: sh density.sh containers|uml|ksm|balloon" >&2; exit 2 ;;
esac
