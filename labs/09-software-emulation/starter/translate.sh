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

# TODO (see the lab's README, Step 2): run the workload under
# qemu-x86_64-static with logging to a file in $SCRATCH, and append
#   blocks_translated=       blocks QEMU translated (IN: lines of -d in_asm)
#   blocks_executed=         blocks run with chaining off (Trace lines of -d nochain,exec)
#   blocks_executed_chained= blocks run with chaining on (Trace lines of -d exec)
# to "$RESULTS".
echo "translate.sh: not written yet (see the lab's README)" >&2
exit 1
