#!/bin/sh
# A faker: the real slices and the partitioned run, but no shared run: it
# prints twice the alone time as shared_us.
#
# The runner makes an empty parent group per controller: VLAB_CGROUP_CPUSET
# and VLAB_CGROUP_MEMORY (the same directory on cgroup v2); VLAB_CGROUP_MODE
# is v1 or v2. Results go to $VLAB_RESULTS.
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}

# Slice $1 gets CPU $2 and at most 256 MiB.
slice() {
    for d in "$VLAB_CGROUP_CPUSET/$1" "$VLAB_CGROUP_MEMORY/$1"; do mkdir -p "$d"; done
    echo "$2" > "$VLAB_CGROUP_CPUSET/$1/cpuset.cpus"
    echo 0 > "$VLAB_CGROUP_CPUSET/$1/cpuset.mems"
    if [ "$VLAB_CGROUP_MODE" = v2 ]; then
        echo 256M > "$VLAB_CGROUP_MEMORY/$1/memory.max"
    else
        echo 256M > "$VLAB_CGROUP_MEMORY/$1/memory.limit_in_bytes"
    fi
}

# Runs the rest of the arguments inside slice $1, in place of the calling
# (sub)shell: call it in $(...), ( ... ) or &.
in_slice() {
    s=$1; shift
    exec sh -c 'echo $$ > "$1/cgroup.procs"; echo $$ > "$2/cgroup.procs"; shift 2; exec "$@"' \
        sh "$VLAB_CGROUP_CPUSET/$s" "$VLAB_CGROUP_MEMORY/$s" "$@"
}

# The pinned workload: a fixed amount of CPU work; prints its microseconds.
work() {
    in_slice a sh -c 't0=$(date +%s%N); i=0; while [ $i -lt 400000 ]; do i=$((i + 1)); done
                     t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))'
}

# Times the workload while a busy loop runs in slice $1.
next_to() {
    (in_slice "$1" timeout 30 sh -c 'while :; do :; done' >/dev/null) &
    neighbour=$!
    sleep 0.2
    work
    kill "$neighbour" 2>/dev/null || true
    wait "$neighbour" 2>/dev/null || true
}

# Real-time priority for everything below, so that the rest of the machine,
# in no slice, cannot take the slices' CPUs (the README says why).
chrt -r -p 1 $$ 2>/dev/null ||
    echo "partition.sh: no real-time priority here (chrt needs CAP_SYS_NICE): the machine's load may decide the timings" >&2

slice a 0
slice b 1
slice c 0
alone=$(work)
busy=$(next_to b)
shared=$((alone * 2))
# CPU 1 among CPU 0's hyperthread siblings: one core, two slices.
if grep -qE "(^|[,-])1([,-]|$)" /sys/devices/system/cpu/cpu0/topology/thread_siblings_list; then smt=1; else smt=0; fi
{
    echo "nonce=${VLAB_NONCE:-none}"
    echo "alone_us=$alone"
    echo "neighbour_us=$busy"
    echo "shared_us=$shared"
    echo "smt_siblings=$smt"
} > "$RESULTS"
cat "$RESULTS"
