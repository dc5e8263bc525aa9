#!/bin/sh
# Resource limits with cgroups: a memory limit, a CPU quota and a pids limit,
# each proven by what the kernel counted.
# Usage: sh limits.sh memory|cpu|pids
#
# The runner makes an empty parent group per controller and passes its
# directory: VLAB_CGROUP_MEMORY, VLAB_CGROUP_CPU, VLAB_CGROUP_PIDS (on cgroup
# v2 all three are the same directory). VLAB_CGROUP_MODE is v1 or v2. Make
# your groups inside; the runner reads them afterwards and removes them.
set -eu

memory() {
    # Step 1: make the group "mem" with a 32 MiB limit and run this inside it.
    dd if=/dev/zero of=/dev/null bs=64M count=1
}

cpu() {
    # Step 2: make the group "cpu" with a 20% quota and run this inside it.
    timeout 1.5 sh -c 'while :; do :; done' || true
}

pids() {
    # Step 3: make the group "pids" that holds at most 10 tasks; run this inside it.
    i=0; while [ $i -lt 30 ]; do sleep 1 & i=$((i + 1)); done
    wait
}

case "${1:-}" in
    memory) memory ;;
    cpu) cpu ;;
    pids) pids ;;
    *) echo "usage: sh limits.sh memory|cpu|pids" >&2; exit 2 ;;
esac
