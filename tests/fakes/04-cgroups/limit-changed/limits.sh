#!/bin/sh
# A faker: every counter is real, but moved under a limit other than the one
# left in the files at the end. The runner sampled the limits while the
# workload ran.
set -u
d() { mkdir -p "$1/$2"; echo "$1/$2"; }
v2() { [ "$VLAB_CGROUP_MODE" = v2 ]; }
join() { g=$1; shift; sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$g" "$@"; }
case "$1" in
    memory)
        # OOM under 4 MiB, then a little more left in the file: peak and kill are real.
        g=$(d "$VLAB_CGROUP_MEMORY" mem)
        if v2; then echo 4M > "$g/memory.max"; echo 0 > "$g/memory.swap.max" 2>/dev/null
        else echo 4M > "$g/memory.limit_in_bytes"; fi
        join "$g" dd if=/dev/zero of=/dev/null bs=64M count=1
        sleep 0.1
        if v2; then echo 4500000 > "$g/memory.max"; else echo 4500000 > "$g/memory.limit_in_bytes"; fi ;;
    cpu)
        # A 10 ms period throttles ten times as often as the 100 ms one set at the end.
        g=$(d "$VLAB_CGROUP_CPU" cpu)
        if v2; then echo "1000 10000" > "$g/cpu.max"
        else echo 10000 > "$g/cpu.cfs_period_us"; echo 1000 > "$g/cpu.cfs_quota_us"; fi
        join "$g" timeout 0.8 sh -c 'while :; do :; done'
        if v2; then echo "20000 100000" > "$g/cpu.max"
        else echo 100000 > "$g/cpu.cfs_period_us"; echo 20000 > "$g/cpu.cfs_quota_us"; fi ;;
    pids)
        # pids.max 1 refuses the first fork; 10 is in the file when the sleepers start.
        g=$(d "$VLAB_CGROUP_PIDS" pids)
        echo 1 > "$g/pids.max"
        join "$g" sh -c 'sleep 1 & wait' 2>/dev/null
        echo 10 > "$g/pids.max"
        join "$g" sh -c 'sleep 1 & sleep 1 & wait' ;;
esac
