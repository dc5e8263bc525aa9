#!/bin/sh
# Bare-metal baseline: three micro-measurements of this machine.
# Usage: sh measure.sh cpu|syscall|io|all
#
# Results go to "$VLAB_RESULTS" (./results.txt when run by hand) as
# key=value lines, after a line nonce=$VLAB_NONCE. The same POSIX script
# runs later inside containers, UML and guests, so keep it busybox-friendly.
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}
SCRATCH=${VLAB_SCRATCH:-.}

now_ns() { date +%s%N; }

# Microseconds between two now_ns readings.
elapsed_us() { echo $(( ($2 - $1) / 1000 )); }

cpu() {
    n=300000
    t0=$(now_ns)
    i=0
    while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
    t1=$(now_ns)
    echo "cpu_iterations=$n" >> "$RESULTS"
    echo "cpu_us=$(elapsed_us "$t0" "$t1")" >> "$RESULTS"
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
    *) echo "usage: sh measure.sh cpu|syscall|io|all" >&2; exit 2 ;;
esac
cat "$RESULTS"
