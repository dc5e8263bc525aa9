#!/bin/sh
# Counts the host system calls the UML kernel makes for each system call of
# its guest. The guest runs the runner's counting init: a dd of VLAB_COUNT
# bytes, one byte per read and per write, so 2 × VLAB_COUNT guest system calls.
# Usage: sh count.sh ptrace|seccomp
#
# `vlab check` runs it as `vlab uml count MODE -- sh count.sh MODE` with
# VLAB_COUNT, VLAB_NONCE, VLAB_SCRATCH and VLAB_RESULTS set (see README.md).
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
: "${VLAB_COUNT:=5000}"
RESULTS=${VLAB_RESULTS:-results.txt}
# bin/linux is the UML kernel `vlab doctor` found booting on this machine.
PATH="$PWD/bin:$PATH"
echo "count.sh: boot UML with init=/.vlab/uml-count vlab.count=\$VLAB_COUNT under strace -c, and write the counts" >&2
exit 1
