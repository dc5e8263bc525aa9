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

# TODO (see the lab's README, Step 3): time "$LOOP" with the host's busybox
# (busybox sh -c "$LOOP") and with assets/busybox-arm64 under
# qemu-aarch64-static, then append native_us=, emulated_us= and
# slowdown= (emulated_us / native_us) to "$RESULTS".
echo "cross.sh: not written yet (see the lab's README)" >&2
exit 1
