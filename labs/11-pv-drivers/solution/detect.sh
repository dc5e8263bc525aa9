#!/bin/sh
# Runs INSIDE the guest (as /detect.sh, started by the probe init): does this
# Linux run under a hypervisor, and which? Prints key=value lines:
#   cpuid_flag=yes|no    the CPUID "hypervisor" bit (/proc/cpuinfo flags)
#   signature=NAME|none  the hypervisor the kernel identified from CPUID leaf
#                        0x40000000 ("Hypervisor detected: KVM" in dmesg)
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

hypervisor=no
[ "$flag" = yes ] || [ -n "$signature" ] || [ "$xen" = yes ] && hypervisor=yes
case "$dmi" in QEMU* | Xen* | "Microsoft Corporation" | VMware* | innotek*) hypervisor=yes ;; esac

# QEMU's TCG announces no signature leaf: a QEMU machine with no hypervisor
# signature is being emulated, not run by a hypervisor.
which=none
if [ "$xen" = yes ] || [ "$signature" = "Xen HVM" ]; then which=xen
elif [ "$signature" = KVM ]; then which=kvm
elif [ -n "$signature" ]; then which=other
elif [ "$dmi" = QEMU ]; then which=tcg
elif [ "$hypervisor" = yes ]; then which=other
fi

echo "cpuid_flag=$flag"
echo "signature=${signature:-none}"
echo "dmi_vendor=$dmi"
echo "xen=$xen"
echo "hypervisor=$hypervisor"
echo "which=$which"
