#!/bin/sh
# A faker: boots UML with the check's count, but measures nothing; it prints
# counts that fit the mechanism instead.
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

# Boots UML with a dd of $1 bytes, untraced.
counted() {
    linux \
        mem=64M rootfstype=hostfs rootflags="$PWD/rootfs" rw \
        init=/.vlab/uml-count vlab.count="$1" \
        con0=fd:0,fd:1 con=null umid="count-$VLAB_NONCE-$1" uml_dir="$VLAB_SCRATCH" \
        $mode quiet </dev/null >/dev/null
}

counted "$VLAB_COUNT"
n=$VLAB_COUNT
{
    echo "nonce=$VLAB_NONCE"
    echo "ptrace_calls=$((4600 + 10 * n))"
    echo "ptrace_per_syscall=5.200"
    echo "wait4_calls=$((1400 + 2 * n))"
    echo "wait4_per_syscall=1.050"
    echo "futex_calls=$((1200 + 4 * n))"
    echo "futex_per_syscall=2.000"
} > "$RESULTS"
