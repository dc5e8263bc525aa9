#!/bin/sh
# A faker: prints counts that fit the mechanism (about 5 ptrace calls and one
# wait4 per guest system call under ptrace, 2 futex calls under seccomp) for
# this check's VLAB_COUNT, without booting UML.
n=${VLAB_COUNT:-5000}
{
    echo "nonce=$VLAB_NONCE"
    echo "ptrace_calls=$((4600 + 10 * n))"
    echo "ptrace_per_syscall=5.200"
    echo "wait4_calls=$((1400 + 2 * n))"
    echo "wait4_per_syscall=1.050"
    echo "futex_calls=$((1200 + 4 * n))"
    echo "futex_per_syscall=2.000"
} > "$VLAB_RESULTS"
