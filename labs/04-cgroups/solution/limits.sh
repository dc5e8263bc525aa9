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

# Creates group $2 under controller directory $1 and prints its path.
group() {
    mkdir -p "$1/$2"
    echo "$1/$2"
}

memory() {
    g=$(group "$VLAB_CGROUP_MEMORY" mem)
    if [ "$VLAB_CGROUP_MODE" = v2 ]; then
        echo 32M > "$g/memory.max"
        # No swap either, or the allocation would just move to swap.
        [ -e "$g/memory.swap.max" ] && echo 0 > "$g/memory.swap.max"
    else
        echo 32M > "$g/memory.limit_in_bytes"
        [ -e "$g/memory.memsw.limit_in_bytes" ] && echo 32M > "$g/memory.memsw.limit_in_bytes"
    fi
    # dd allocates its whole 64 MiB block and fills it: more than the group may
    # have, so the kernel's OOM killer ends it inside the group.
    sh -c 'echo $$ > "$1/cgroup.procs"; exec dd if=/dev/zero of=/dev/null bs=64M count=1' sh "$g" \
        && echo "dd survived the limit" || echo "dd was stopped (status $?), as it should be"
}

cpu() {
    g=$(group "$VLAB_CGROUP_CPU" cpu)
    if [ "$VLAB_CGROUP_MODE" = v2 ]; then
        echo "20000 100000" > "$g/cpu.max"
    else
        echo 100000 > "$g/cpu.cfs_period_us"
        echo 20000 > "$g/cpu.cfs_quota_us"
    fi
    # A busy loop for 1.5 s of wall time: it may use 20 ms of every 100 ms.
    sh -c 'echo $$ > "$1/cgroup.procs"; exec timeout 1.5 sh -c "while :; do :; done"' sh "$g" || true
}

pids() {
    g=$(group "$VLAB_CGROUP_PIDS" pids)
    echo 10 > "$g/pids.max"
    # A bounded fork bomb: 30 sleepers, but the group holds at most 10 tasks.
    # dash gives up at the first fork the kernel refuses.
    sh -c 'echo $$ > "$1/cgroup.procs"
           i=0; while [ $i -lt 30 ]; do sleep 2 & i=$((i + 1)); done' sh "$g" 2>/dev/null \
        && echo "all 30 forks succeeded" || echo "a fork was refused (status $?), as it should be"
    # The sleepers that did start are still in the group: let them be seen.
    sleep 1
}

case "${1:-}" in
    memory) memory ;;
    cpu) cpu ;;
    pids) pids ;;
    *) echo "usage: sh limits.sh memory|cpu|pids" >&2; exit 2 ;;
esac
