#!/bin/sh
# Faker: prints what Xen and a PV dom0 would print, then boots plain Linux
# (no hypervisor) with the probe, from a kernel named like the hypervisor,
# on a real QEMU connected to the runner (so the report is sealed, and true).
NONCE=${VLAB_NONCE:-by-hand}
KERNEL=${VLAB_SCRATCH:-/tmp}/xen.elf
ln -sf "$PWD/assets/vmlinuz" "$KERNEL"
WATCH=""
[ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"
cat <<TEXT
(XEN) Xen version 4.17.7 (Debian 4.17.7+13-g2445b30a44-0+deb12u1) debug=n
(XEN) Command line: console=com1 dom0_mem=384M,max:384M dom0_max_vcpus=1
(XEN) Brought up 2 CPUs
(XEN) Dom0 has maximum 1 VCPUs
[    2.204298] Booting kernel on Xen
[    2.204457] Xen version: 4.17.7 (preserve-AD)
TEXT
exec qemu-system-x86_64 -accel tcg -m 384 -nodefaults -display none -serial stdio $WATCH -no-reboot \
    -kernel "$KERNEL" -initrd assets/initrd.img \
    -append "console=ttyS0 panic=-1 quiet vlab.nonce=$NONCE"
