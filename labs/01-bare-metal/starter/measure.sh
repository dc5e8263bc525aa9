#!/bin/sh
# Bare-metal baseline: three micro-measurements of this machine.
# Usage: busybox sh measure.sh cpu|syscall|io|all
#
# Results go to "$VLAB_RESULTS" (./results.txt when run by hand) as
# key=value lines, after a line nonce=$VLAB_NONCE. `vlab check` runs it with
# busybox sh, the shell (and dd) the containers and guests of later labs
# use, so that the CPU loop is the same program everywhere: keep it POSIX.
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}
SCRATCH=${VLAB_SCRATCH:-.}

# busybox's date has no %N, and busybox sh would run its own date for a bare
# `date`: name the host's by its path.
now_ns() { /bin/date +%s%N; }

# Microseconds between two now_ns readings.
elapsed_us() { echo $(( ($2 - $1) / 1000 )); }

cpu() {
    # TODO: time a shell loop of at least 100000 additions between two now_ns
    # readings, five times or more (after one untimed run to warm up).
    # Append cpu_iterations=N, cpu_runs=RUNS, and the median, fastest and
    # slowest run as cpu_us, cpu_us_min and cpu_us_max (microseconds) to "$RESULTS".
    echo "measure.sh: cpu is not written yet (see the lab's README)" >&2
    exit 1
}

syscall() {
    # TODO: time at least 100000 system calls (hint: dd with 1-byte blocks from /dev/zero to /dev/null).
    # Append syscall_count=N and syscall_us=MICROSECONDS to "$RESULTS".
    echo "measure.sh: syscall is not written yet (see the lab's README)" >&2
    exit 1
}

io() {
    # TODO: time writing at least 8 MiB to a file in $SCRATCH and flushing it to disk (dd ... conv=fsync), then delete it.
    # Append io_bytes=N and io_us=MICROSECONDS to "$RESULTS".
    echo "measure.sh: io is not written yet (see the lab's README)" >&2
    exit 1
}

echo "nonce=${VLAB_NONCE:-none}" > "$RESULTS"
case "${1:-all}" in
    cpu) cpu ;;
    syscall) syscall ;;
    io) io ;;
    all) cpu; syscall; io ;;
    *) echo "usage: busybox sh measure.sh cpu|syscall|io|all" >&2; exit 2 ;;
esac
cat "$RESULTS"
