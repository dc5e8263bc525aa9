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
    # TODO: time a shell loop of at least 100000 additions between two now_ns readings.
    # Append cpu_iterations=N and cpu_us=MICROSECONDS to "$RESULTS".
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
    *) echo "usage: sh measure.sh cpu|syscall|io|all" >&2; exit 2 ;;
esac
cat "$RESULTS"
