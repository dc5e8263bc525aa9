#!/bin/sh
# Look inside QEMU's dynamic binary translator (TCG).
# Usage: vlab emu translate -- sh translate.sh
#   (the check runs exactly that: it sets VLAB_SEQ_N, runs this script, then
#   counts the same things itself and compares)
#
# The workload: the host's busybox running `seq $VLAB_SEQ_N`, as an x86-64
# program under qemu-x86_64-static, in an empty environment (env -i).
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}
SCRATCH=${VLAB_SCRATCH:-.}
N=${VLAB_SEQ_N:-200}
BUSYBOX=$(command -v busybox)

echo "nonce=${VLAB_NONCE:-none}" > "$RESULTS"

# Chaining off: every block QEMU runs goes through its main loop and is logged.
env -i qemu-x86_64-static -d in_asm,nochain,exec -D "$SCRATCH/tb.log" "$BUSYBOX" seq "$N" > /dev/null
echo "blocks_translated=$(grep -c '^IN:' "$SCRATCH/tb.log")" >> "$RESULTS"
echo "blocks_executed=$(grep -c '^Trace' "$SCRATCH/tb.log")" >> "$RESULTS"

# Chaining on: blocks jump straight into each other; only the main loop's entries are logged.
env -i qemu-x86_64-static -d exec -D "$SCRATCH/tb-chained.log" "$BUSYBOX" seq "$N" > /dev/null
echo "blocks_executed_chained=$(grep -c '^Trace' "$SCRATCH/tb-chained.log")" >> "$RESULTS"
rm -f "$SCRATCH/tb.log" "$SCRATCH/tb-chained.log"
cat "$RESULTS"
