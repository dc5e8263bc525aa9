#!/bin/sh
# Boots a User-Mode-Linux kernel on the busybox root in ./rootfs, shared over
# hostfs, with the runner's init, and the console on stdout.
# Usage: sh boot.sh [ptrace|seccomp]   (step 3: how UML catches system calls)
#
# `vlab check` runs `sh boot.sh` with VLAB_NONCE and VLAB_SCRATCH set and
# reads the console. Write the `linux` command line (see README.md).
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
# bin/linux is the UML kernel `vlab doctor` found booting on this machine.
PATH="$PWD/bin:$PATH"
echo "boot.sh: write the linux command line here" >&2
exit 1
