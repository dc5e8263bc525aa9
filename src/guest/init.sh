#!/bin/sh
# vlab probe init: runs as PID 1 in the guest, prints one report on the
# console and powers off. Built into the initramfs by the runner; the report
# protocol is in src/check/boot.rs. Under TCG every fork+exec is expensive,
# so it uses shell builtins wherever it can.
mount -t proc proc /proc
read -r up0 _ < /proc/uptime
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

read -r cmdline < /proc/cmdline
nonce=missing measure="" cpu_iterations=20000 ata=0
for w in $cmdline; do
    case "$w" in
        vlab.nonce=*) nonce=${w#vlab.nonce=} ;;
        vlab.measure=*) measure=${w#vlab.measure=} ;;
        vlab.cpu_iterations=*) cpu_iterations=${w#vlab.cpu_iterations=} ;;
        vlab.ata=*) ata=${w#vlab.ata=} ;;
    esac
done

# Drivers for the devices present: virtio (vendor 0x1af4), IDE (class 0x0101,
# on every PC machine, so only when asked with vlab.ata=1), other NICs (class 0x0200).
load() {
    [ -r "/lib/modules/$1.order" ] || return 0
    while read -r m; do insmod "/lib/modules/$m.ko" 2>/dev/null; done < "/lib/modules/$1.order"
}
virtio=0 ide=0 nic=0
for d in /sys/bus/pci/devices/*; do
    [ -r "$d/vendor" ] || continue
    read -r vendor < "$d/vendor"
    read -r class < "$d/class"
    case "$vendor" in 0x1af4) virtio=1 ;; esac
    case "$class" in 0x0101*) ide=1 ;; 0x0200*) [ "$vendor" = 0x1af4 ] || nic=1 ;; esac
done
[ "$virtio" = 1 ] && load virtio
[ "$ide" = 1 ] && [ "$ata" = 1 ] && load ata
[ "$nic" = 1 ] && load nic

drivers() {
    out=""
    for d in "$@"; do
        [ -e "$d/device/driver" ] || continue
        target=$(readlink "$d/device/driver")
        out="$out${out:+,}${d##*/}:${target##*/}"
    done
    echo "$out"
}

vendor="" model="" hv=no
while IFS= read -r line; do
    case "$line" in
        vendor_id*) [ -n "$vendor" ] || vendor=${line#*: } ;;
        "model name"*) [ -n "$model" ] || model=${line#*: } ;;
        flags*) case " ${line#*: } " in *" hypervisor "*) hv=yes ;; esac ;;
    esac
done < /proc/cpuinfo
ncpu=0
for c in /sys/devices/system/cpu/cpu[0-9]*; do ncpu=$((ncpu + 1)); done
hv_vendor=none
if [ "$hv" = yes ]; then
    found=$(dmesg | grep -m 1 'Hypervisor detected')
    [ -n "$found" ] && hv_vendor=${found##*Hypervisor detected: }
fi
read -r release < /proc/sys/kernel/osrelease
if [ -r /proc/sys/kernel/arch ]; then read -r arch < /proc/sys/kernel/arch; else arch=$(uname -m); fi
secs=${up0%.*} cents=${up0#*.}
cents=${cents#0}

# Nanoseconds since boot, from the kernel's timer list (busybox date has no %N).
now_ns() {
    while read -r a b c _; do
        [ "$a $b" = "now at" ] && { echo "$c"; return; }
    done < /proc/timer_list
}

echo "VLAB-REPORT-BEGIN nonce=$nonce"
echo "kernel=$release"
echo "arch=$arch"
echo "cpu.vendor=$vendor"
echo "cpu.model=$model"
echo "cpu.count=$ncpu"
echo "cpu.hypervisor=$hv"
echo "hypervisor.vendor=$hv_vendor"
echo "block=$(drivers /sys/block/*)"
echo "net=$(drivers /sys/class/net/*)"
echo "uptime_ms=$((secs * 1000 + ${cents:-0} * 10))"
for m in $(echo "$measure" | tr ',' ' '); do
    case "$m" in
        cpu)
            t0=$(now_ns)
            i=0
            while [ "$i" -lt "$cpu_iterations" ]; do i=$((i + 1)); done
            t1=$(now_ns)
            echo "measure.cpu_iterations=$cpu_iterations"
            echo "measure.cpu_us=$(( (t1 - t0) / 1000 ))"
            ;;
        *) echo "measure.$m=unknown" ;;
    esac
done
echo "VLAB-REPORT-END nonce=$nonce"
poweroff -f
