#!/bin/sh
# A faker: writes a fresh nonce and plausible numbers without measuring
# anything. It even sleeps so the wall time looks right. It must fail.
RESULTS=${VLAB_RESULTS:-results.txt}
echo "nonce=$VLAB_NONCE" > "$RESULTS"
case "$1" in
    cpu) printf 'cpu_iterations=300000\ncpu_us=400000\n' >> "$RESULTS"; sleep 0.5 ;;
    syscall) printf 'syscall_count=400000\nsyscall_us=150000\n' >> "$RESULTS"; sleep 0.2 ;;
    io) printf 'io_bytes=33554432\nio_us=150000\n' >> "$RESULTS"; sleep 0.2 ;;
esac
cat "$RESULTS"
