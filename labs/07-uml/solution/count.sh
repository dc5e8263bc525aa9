#!/bin/sh
# Counts the host system calls the UML kernel makes for each system call of
# its guest. The guest runs the runner's counting init: a dd of VLAB_COUNT
# bytes, one byte per read and per write, so 2 × VLAB_COUNT guest system calls.
# Usage: sh count.sh ptrace|seccomp
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
: "${VLAB_COUNT:=5000}"
RESULTS=${VLAB_RESULTS:-results.txt}
# bin/linux is the UML kernel `vlab doctor` found booting on this machine.
PATH="$PWD/bin:$PATH"
case "${1:-}" in
    ptrace) mode=seccomp=off ;;
    seccomp) mode=seccomp=on ;;
    *) echo "usage: sh count.sh ptrace|seccomp" >&2; exit 2 ;;
esac

# Boots UML with a dd of $1 bytes under strace -c. Without -f, strace counts
# the UML kernel's own host system calls, not its guest processes' (in ptrace
# mode the kernel is their tracer, and a process has only one).
counted() {
    strace -c -o "$VLAB_SCRATCH/strace-$1.txt" -- linux \
        mem=64M rootfstype=hostfs rootflags="$PWD/rootfs" rw \
        init=/.vlab/uml-count vlab.count="$1" \
        con0=fd:0,fd:1 con=null umid="count-$VLAB_NONCE-$1" uml_dir="$VLAB_SCRATCH" \
        $mode quiet </dev/null >/dev/null
}

# Calls of system call $2 in strace summary $1 (the fourth column), 0 if none.
calls() {
    awk -v s="$2" '$NF == s { n = $4 } END { print n + 0 }' "$1"
}

# Boot costs the same in both runs: the difference is the workload's.
counted 0
counted "$VLAB_COUNT"
guest=$((2 * VLAB_COUNT))
{
    echo "nonce=$VLAB_NONCE"
    for s in ptrace wait4 futex; do
        with=$(calls "$VLAB_SCRATCH/strace-$VLAB_COUNT.txt" $s)
        without=$(calls "$VLAB_SCRATCH/strace-0.txt" $s)
        echo "${s}_calls=$with"
        awk -v a="$with" -v b="$without" -v g="$guest" -v s="$s" 'BEGIN { printf "%s_per_syscall=%.3f\n", s, (a - b) / g }'
    done
} > "$RESULTS"
cat "$RESULTS"
