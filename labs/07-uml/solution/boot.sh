#!/bin/sh
# Boots a User-Mode-Linux kernel on the busybox root in ./rootfs, shared over
# hostfs, with the runner's init, and the console on stdout.
# Usage: sh boot.sh [ptrace|seccomp]   (step 3: how UML catches system calls)
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
# bin/linux is the UML kernel `vlab doctor` found booting on this machine.
PATH="$PWD/bin:$PATH"
# seccomp=off: the UML kernel ptrace()s each guest process and stops it at every system call
# seccomp=on:  each guest process runs under a seccomp filter; its stub hands system calls over
case "${1:-}" in
    ptrace) mode=seccomp=off ;;
    seccomp) mode=seccomp=on ;;
    "") mode= ;;
    *) echo "usage: sh boot.sh [ptrace|seccomp]" >&2; exit 2 ;;
esac
# mem=           the guest's "physical" memory: a file UML maps, not host RAM up front
# rootfstype/rootflags/rw   the root is a host directory, over hostfs
# init=          the runner's probe, inside that root
# con0=fd:0,fd:1 the first console reads our stdin and writes our stdout; con=null silences the rest
# umid/uml_dir   UML's control socket and pid file go to the scratch directory, not ~/.uml
# vlab.nonce=    unknown to the kernel, so passed on to /proc/cmdline for the probe
exec linux \
    mem=64M \
    rootfstype=hostfs rootflags="$PWD/rootfs" rw \
    init=/.vlab/uml-init \
    con0=fd:0,fd:1 con=null \
    umid="vlab-$VLAB_NONCE" uml_dir="$VLAB_SCRATCH" \
    vlab.nonce="$VLAB_NONCE" \
    $mode quiet </dev/null
