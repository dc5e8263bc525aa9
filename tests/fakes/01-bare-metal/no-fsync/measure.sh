#!/bin/sh
# A faker: writes the 32 MiB and times it, but never flushes them, and
# removes the file before the kernel writes it back: the disk sees nothing.
# The page cache counts the bytes as written all the same.
RESULTS=${VLAB_RESULTS:-results.txt}
SCRATCH=${VLAB_SCRATCH:-.}
echo "nonce=$VLAB_NONCE" > "$RESULTS"
case "$1" in
    io) t0=$(/bin/date +%s%N)
        dd if=/dev/zero of="$SCRATCH/io.test" bs=1048576 count=32 2>/dev/null
        t1=$(/bin/date +%s%N)
        rm -f "$SCRATCH/io.test"
        echo "io_bytes=33554432" >> "$RESULTS"
        echo "io_us=$(( (t1 - t0) / 1000 ))" >> "$RESULTS" ;;
    *) echo "this faker only fakes the io step" >&2; exit 2 ;;
esac
cat "$RESULTS"
