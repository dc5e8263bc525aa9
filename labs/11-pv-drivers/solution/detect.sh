#!/bin/sh
# Runs INSIDE the guest (as /detect.sh, started by the probe init): does this
# Linux run under a hypervisor, and which? Prints key=value lines:
#   cpuid_flag=yes|no    the CPUID "hypervisor" bit (/proc/cpuinfo flags)
#   signature=NAME|none  the hypervisor the kernel identified from CPUID leaf
#                        0x40000000 ("Hypervisor detected: KVM" in dmesg)
#   leaf_signature=TEXT|unreadable|none
#                        the raw 12-byte signature of CPUID leaf 0x40000000,
#                        read through /dev/cpu/0/cpuid (the cpuid module):
#                        KVMKVMKVM, XenVMMXenVMM, TCGTCGTCGTCG for QEMU's TCG...
#   dmi_vendor=TEXT      the firmware's system vendor (/sys/class/dmi/id/sys_vendor)
#   xen=yes|no           /sys/hypervisor/type says xen
#   hypervisor=yes|no    your verdict
#   which=kvm|tcg|xen|other|none
flag=no
grep -qw hypervisor /proc/cpuinfo && flag=yes
signature=$(dmesg | sed -n 's/.*Hypervisor detected: //p' | head -n 1)
dmi=none
[ -r /sys/class/dmi/id/sys_vendor ] && dmi=$(cat /sys/class/dmi/id/sys_vendor)
xen=no
[ "$(cat /sys/hypervisor/type 2>/dev/null)" = xen ] && xen=yes

# The kernel names only the hypervisors it has drivers for; QEMU's TCG answers
# leaf 0x40000000 with "TCGTCGTCGTCG" (target/i386/cpu.c, the tcg-cpuid
# property, on by default), which Linux does not recognise. The cpuid driver
# reads leaf N at file offset N: 16 bytes, EAX EBX ECX EDX; the signature is
# EBX ECX EDX.
[ -e /dev/cpu/0/cpuid ] || modprobe cpuid 2>/dev/null || insmod /lib/modules/cpuid.ko 2>/dev/null
leaf=unreadable
if [ -r /dev/cpu/0/cpuid ]; then
    leaf=$(dd if=/dev/cpu/0/cpuid bs=16 skip=67108864 count=1 2>/dev/null |
        dd bs=1 skip=4 count=12 2>/dev/null | tr -d '\000')
    [ -n "$leaf" ] || leaf=none
fi

hypervisor=no
[ "$flag" = yes ] || [ -n "$signature" ] || [ "$xen" = yes ] && hypervisor=yes
case "$leaf" in unreadable | none) ;; *) hypervisor=yes ;; esac
case "$dmi" in QEMU* | Xen* | "Microsoft Corporation" | VMware* | innotek*) hypervisor=yes ;; esac

# KVM guests say sys_vendor=QEMU too, so the signatures decide first. Where the
# leaf cannot be read here, a QEMU machine whose kernel recognised no
# hypervisor is taken to be TCG.
which=none
if [ "$xen" = yes ] || [ "$signature" = "Xen HVM" ] || [ "$leaf" = XenVMMXenVMM ]; then which=xen
elif [ "$signature" = KVM ] || [ "$leaf" = KVMKVMKVM ]; then which=kvm
elif [ "$leaf" = TCGTCGTCGTCG ]; then which=tcg
elif [ -n "$signature" ]; then which=other
elif [ "$dmi" = QEMU ]; then which=tcg
elif [ "$hypervisor" = yes ]; then which=other
fi

echo "cpuid_flag=$flag"
echo "signature=${signature:-none}"
echo "leaf_signature=$leaf"
echo "dmi_vendor=$dmi"
echo "xen=$xen"
echo "hypervisor=$hypervisor"
echo "which=$which"
