#!/bin/sh
# Run an aarch64 program on this x86-64 machine, and measure the cost.
# Usage: vlab emu cross -- sh cross.sh
#   (the check runs exactly that, and watches which programs really ran)
#
# assets/busybox-arm64 is Debian's busybox-static for arm64, prepared by the runner.
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}
LOOP='i=0; while [ "$i" -lt 100000 ]; do i=$((i + 1)); done'

now_ns() { date +%s%N; }

echo "nonce=${VLAB_NONCE:-none}" > "$RESULTS"

t0=$(now_ns)
busybox sh -c "$LOOP"
t1=$(now_ns)
qemu-aarch64-static assets/busybox-arm64 sh -c "$LOOP"
t2=$(now_ns)

native_us=$(( (t1 - t0) / 1000 ))
emulated_us=$(( (t2 - t1) / 1000 ))
echo "native_us=$native_us" >> "$RESULTS"
echo "emulated_us=$emulated_us" >> "$RESULTS"
echo "slowdown=$(awk -v e="$emulated_us" -v n="$native_us" 'BEGIN { printf "%.2f", e / n }')" >> "$RESULTS"
cat "$RESULTS"
