#!/bin/sh
# A faker: makes the groups and writes the limits, prints what a limited run
# would print, but runs the workloads outside the groups (or not at all).
set -u
d() { mkdir -p "$1/$2"; echo "$1/$2"; }
case "$1" in
    memory) g=$(d "$VLAB_CGROUP_MEMORY" mem); echo 33554432 > "$g/memory.limit_in_bytes" 2>/dev/null || echo 32M > "$g/memory.max"
            echo "Killed"; echo "oom_kill 1" ;;
    cpu) g=$(d "$VLAB_CGROUP_CPU" cpu); echo 20000 > "$g/cpu.cfs_quota_us" 2>/dev/null || echo "20000 100000" > "$g/cpu.max"
         sleep 1.5; echo "nr_throttled 15"; echo "throttled_time 1200000000" ;;
    pids) g=$(d "$VLAB_CGROUP_PIDS" pids); echo 10 > "$g/pids.max"
          sleep 1 & sleep 1 & wait; echo "fork: Resource temporarily unavailable"; echo "max 20" ;;
esac
