#!/bin/sh
# Boot the Xen hypervisor under QEMU (TCG) with the Debian kernel as a
# paravirtualized dom0 and the runner's probe as its init.
# Usage: sh boot.sh      (vlab check runs it with VLAB_NONCE set)
set -eu
NONCE=${VLAB_NONCE:-by-hand}

# The hypervisor's own command line: its console on the first serial port,
# 384 MiB and one virtual CPU for dom0 (max: stops dom0 from ballooning up).
XEN_CMDLINE="console=com1 dom0_mem=384M,max:384M dom0_max_vcpus=1"

# dom0's kernel command line: its log through Xen (earlyprintk=xen), a panic
# ends dom0 at once, and the nonce for the probe. No commas: QEMU splits the
# module list at commas.
DOM0_CMDLINE="console=hvc0 earlyprintk=xen panic=-1 quiet vlab.nonce=$NONCE"

# vlab check watches QEMU through two sockets of its own: QEMU's QMP monitor
# connects to $VLAB_QMP, and a second serial port (the guest's ttyS1) to
# $VLAB_SEAL, through which the runner hands the probe the key that seals its
# report. Run by hand, without them, the report is simply not sealed.
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"

# -kernel loads Xen (a multiboot ELF); -initrd is the multiboot module list:
# the first module is dom0's kernel (its command line follows the path), the
# second dom0's initramfs. qemu64: no SMAP (see the README).
exec qemu-system-x86_64 \
    -accel tcg -cpu qemu64 -smp 2 -m 1024 \
    -nodefaults -display none \
    -serial stdio $WATCH \
    -no-reboot \
    -kernel assets/xen.elf \
    -append "$XEN_CMDLINE" \
    -initrd "assets/dom0-kernel $DOM0_CMDLINE,assets/dom0-initrd.img"
