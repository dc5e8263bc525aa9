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
    # One untimed run to warm up, then the median of five timed runs: one
    # run includes whatever else the machine was doing; min and max show
    # the spread.
    n=100000 runs=5 r=0 times=""
    while [ "$r" -le "$runs" ]; do
        t0=$(now_ns)
        i=0
        while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
        t1=$(now_ns)
        [ "$r" -gt 0 ] && times="$times $(elapsed_us "$t0" "$t1")"
        r=$((r + 1))
    done
    sorted=$(printf '%s\n' $times | sort -n)
    echo "cpu_iterations=$n" >> "$RESULTS"
    echo "cpu_runs=$runs" >> "$RESULTS"
    echo "cpu_us=$(printf '%s\n' "$sorted" | sed -n "$(((runs + 1) / 2))p")" >> "$RESULTS"
    echo "cpu_us_min=$(printf '%s\n' "$sorted" | head -n 1)" >> "$RESULTS"
    echo "cpu_us_max=$(printf '%s\n' "$sorted" | tail -n 1)" >> "$RESULTS"
}

syscall() {
    # dd with 1-byte blocks: every byte is one read(2) and one write(2).
    n=200000
    t0=$(now_ns)
    dd if=/dev/zero of=/dev/null bs=1 count=$n 2>/dev/null
    t1=$(now_ns)
    echo "syscall_count=$((2 * n))" >> "$RESULTS"
    echo "syscall_us=$(elapsed_us "$t0" "$t1")" >> "$RESULTS"
}

io() {
    # 32 MiB written and flushed to the disk under $VLAB_SCRATCH.
    mib=32
    t0=$(now_ns)
    dd if=/dev/zero of="$SCRATCH/io.test" bs=1048576 count=$mib conv=fsync 2>/dev/null
    t1=$(now_ns)
    rm -f "$SCRATCH/io.test"
    echo "io_bytes=$((mib * 1048576))" >> "$RESULTS"
    echo "io_us=$(elapsed_us "$t0" "$t1")" >> "$RESULTS"
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
