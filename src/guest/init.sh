#!/bin/sh
# vlab probe init: runs as PID 1 in the guest, prints one report on the
# console and powers off. Built into the initramfs by the runner; the report
# protocol is in src/check/boot.rs.
up0=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
up0=${up0:-$(cut -d' ' -f1 /proc/uptime)}

arg() { tr ' ' '\n' < /proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }

# Nanoseconds since boot, from the kernel's timer list (busybox date has no %N).
now_ns() { sed -n 's/^now at \([0-9]*\) nsecs.*/\1/p' /proc/timer_list | head -n 1; }

# Load the drivers for the devices present: virtio (vendor 0x1af4) and IDE (class 0x0101).
load() { for m in $(cat "/lib/modules/$1.order" 2>/dev/null); do insmod "/lib/modules/$m.ko" 2>/dev/null; done; }
pci=$(cat /sys/bus/pci/devices/*/vendor /sys/bus/pci/devices/*/class 2>/dev/null)
case "$pci" in *0x1af4*) load virtio ;; esac
case "$pci" in *0x0101*) [ "$(arg vlab.ata)" = 1 ] && load ata ;; esac
mdev -s 2>/dev/null

drivers() {
    out=""
    for d in $1; do
        [ -e "$d/device/driver" ] || continue
        out="$out${out:+,}${d##*/}:$(basename "$(readlink "$d/device/driver")")"
    done
    echo "$out"
}

flags=$(grep -m1 '^flags' /proc/cpuinfo)
case " $flags " in *" hypervisor "*) hv=yes ;; *) hv=no ;; esac
hv_vendor=$(dmesg | sed -n 's/.*Hypervisor detected: *//p' | head -n 1)

nonce=$(arg vlab.nonce)
echo "VLAB-REPORT-BEGIN nonce=${nonce:-missing}"
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
echo "cpu.vendor=$(sed -n 's/^vendor_id[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)"
echo "cpu.model=$(sed -n 's/^model name[[:space:]]*: *//p' /proc/cpuinfo | head -n 1)"
echo "cpu.count=$(grep -c '^processor' /proc/cpuinfo)"
echo "cpu.hypervisor=$hv"
echo "hypervisor.vendor=${hv_vendor:-none}"
echo "block=$(drivers '/sys/block/*')"
echo "net=$(drivers '/sys/class/net/*')"
echo "uptime_ms=$(echo "$up0" | awk '{ printf "%d", $1 * 1000 }')"
for m in $(arg vlab.measure | tr ',' ' '); do
    case "$m" in
        cpu)
            n=$(arg vlab.cpu_iterations)
            n=${n:-20000}
            t0=$(now_ns)
            i=0
            while [ "$i" -lt "$n" ]; do i=$((i + 1)); done
            t1=$(now_ns)
            echo "measure.cpu_iterations=$n"
            echo "measure.cpu_us=$(( (t1 - t0) / 1000 ))"
            ;;
        *) echo "measure.$m=unknown" ;;
    esac
done
echo "VLAB-REPORT-END nonce=${nonce:-missing}"
poweroff -f
