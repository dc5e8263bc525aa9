#!/bin/sh
# A faker: a cheap burn so the runner sees some CPU and kernel time, a sleep
# so the wall time covers the claim, then numbers typed in by hand (slow
# but plausible for a slow machine). The runner's own measurement of the
# run is a fraction of what it claims.
RESULTS=${VLAB_RESULTS:-results.txt}
SCRATCH=${VLAB_SCRATCH:-.}
echo "nonce=$VLAB_NONCE" > "$RESULTS"
case "$1" in
    cpu) i=0; while [ "$i" -lt 40000 ]; do i=$((i + 1)); done; sleep 2.1
         printf 'cpu_iterations=300000\ncpu_us=2000000\n' >> "$RESULTS" ;;
    syscall) dd if=/dev/zero of=/dev/null bs=1 count=100000 2>/dev/null; sleep 1.6
             printf 'syscall_count=400000\nsyscall_us=1500000\n' >> "$RESULTS" ;;
    io) dd if=/dev/zero of="$SCRATCH/io.test" bs=1048576 count=4 conv=fsync 2>/dev/null; rm -f "$SCRATCH/io.test"
        sleep 0.2; printf 'io_bytes=33554432\nio_us=150000\n' >> "$RESULTS" ;;
esac
cat "$RESULTS"
