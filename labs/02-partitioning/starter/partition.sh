#!/bin/sh
# Hardware partitioning, the nearest thing on Linux: two slices of this
# machine, each with its own CPU and its own memory, made of cpuset and
# memory cgroups. Then measure that a busy neighbour does not slow the
# workload in the other slice, and what the same neighbour does when it
# shares the workload's CPU.
#
# The runner makes an empty parent group per controller: VLAB_CGROUP_CPUSET
# and VLAB_CGROUP_MEMORY (the same directory on cgroup v2); VLAB_CGROUP_MODE
# is v1 or v2. Results go to $VLAB_RESULTS.
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}

# The pinned workload: a fixed amount of CPU work; prints its microseconds.
# Step 1: run it inside slice a (CPU 0, 256 MiB).
work() {
    sh -c 't0=$(date +%s%N); i=0; while [ $i -lt 400000 ]; do i=$((i + 1)); done
           t1=$(date +%s%N); echo $(( (t1 - t0) / 1000 ))'
}

alone=$(work)
# Step 2: start a busy neighbour in slice b (CPU 1, 256 MiB) and measure again.
busy=$(work)
# Step 2, the counterfactual: the same neighbour in a slice c that owns CPU 0.
shared=$(work)
# Step 2: are CPUs 0 and 1 hyperthreads of one core? (1 or 0; see README.md)
smt=
{
    echo "nonce=${VLAB_NONCE:-none}"
    echo "alone_us=$alone"
    echo "neighbour_us=$busy"
    echo "shared_us=$shared"
    echo "smt_siblings=$smt"
} > "$RESULTS"
cat "$RESULTS"
