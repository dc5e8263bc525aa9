#!/bin/sh
# vlab probe init: runs as PID 1 in the guest, prints one report on the
# console and powers off. Built into the initramfs by the runner; the report
# protocol is in src/check/boot.rs. Under TCG every fork+exec is expensive,
# so it uses shell builtins wherever it can.
mount -t proc proc /proc
read -r up0 _ < /proc/uptime
# MemTotal before any driver loads: a balloon inflating at its probe lowers it at once.
while read -r k v _; do [ "$k" = MemTotal: ] && { mem0_kib=$v; break; }; done < /proc/meminfo
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null

read -r cmdline < /proc/cmdline
nonce=missing measure="" cpu_iterations=20000 ata=0
sink="" source="" disk_mib=8 net_kib=1024 hold=0 balloon_secs=30
for w in $cmdline; do
    case "$w" in
        vlab.nonce=*) nonce=${w#vlab.nonce=} ;;
        vlab.measure=*) measure=${w#vlab.measure=} ;;
        vlab.cpu_iterations=*) cpu_iterations=${w#vlab.cpu_iterations=} ;;
        vlab.ata=*) ata=${w#vlab.ata=} ;;
        vlab.sink=*) sink=${w#vlab.sink=} ;;
        vlab.source=*) source=${w#vlab.source=} ;;
        vlab.disk_mib=*) disk_mib=${w#vlab.disk_mib=} ;;
        vlab.net_kib=*) net_kib=${w#vlab.net_kib=} ;;
        vlab.hold=*) hold=${w#vlab.hold=} ;;
        vlab.balloon_secs=*) balloon_secs=${w#vlab.balloon_secs=} ;;
    esac
done
# The disk measurement is about the emulated IDE disk when there is one.
case ",$measure," in *,disk,*) ata=1 ;; esac

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
# /dev/cpu/N/cpuid, for a detector that reads CPUID leaf 0x40000000 itself.
load misc

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

# Xen (only when the kernel runs on it): what the guest sees of the
# hypervisor, its balloon, and the event channels bound to interrupts.
xen_facts() {
    [ -r /sys/hypervisor/type ] || return 0
    read -r t < /sys/hypervisor/type
    echo "hypervisor.type=$t"
    [ -r /sys/hypervisor/guest_type ] && read -r t < /sys/hypervisor/guest_type && echo "xen.guest_type=$t"
    if [ -r /sys/hypervisor/version/major ]; then
        read -r a < /sys/hypervisor/version/major
        read -r b < /sys/hypervisor/version/minor
        read -r c < /sys/hypervisor/version/extra
        echo "xen.version=$a.$b$c"
    fi
    for p in /sys/hypervisor/properties/*; do
        [ -f "$p" ] && read -r t < "$p" && echo "xen.properties.${p##*/}=$t"
    done
    b=/sys/devices/system/xen_memory/xen_memory0
    [ -r $b/target_kb ] && read -r t < $b/target_kb && echo "xen.balloon.target_kib=$t"
    [ -r $b/info/current_kb ] && read -r t < $b/info/current_kb && echo "xen.balloon.current_kib=$t"
    found=$(dmesg | grep -m 1 -o 'Booting kernel on Xen.*\|Booting paravirtualized kernel on Xen.*')
    [ -n "$found" ] && echo "xen.boot_message=$found"
    found=$(dmesg | grep -m 1 -o 'Xen version: .*')
    [ -n "$found" ] && echo "xen.dmesg_version=${found#Xen version: }"
    percpu=0 dyn=0 pirq=0 events=0
    while read -r irq rest; do
        case "$rest" in *xen-*) ;; *) continue ;; esac
        set -- $rest
        while [ $# -gt 0 ]; do
            case "$1" in
                xen-percpu*) percpu=$((percpu + 1)) ;;
                xen-dyn*) dyn=$((dyn + 1)) ;;
                xen-pirq*) pirq=$((pirq + 1)) ;;
                *[!0-9]*) ;;
                *) events=$((events + $1)) ;;
            esac
            shift
        done
    done < /proc/interrupts
    echo "xen.irq.percpu=$percpu"
    echo "xen.irq.dyn=$dyn"
    echo "xen.irq.pirq=$pirq"
    echo "xen.irq.events=$events"
}
while read -r k v _; do
    [ "$k" = MemTotal: ] && { mem_kib=$v; break; }
done < /proc/meminfo

# Paravirtualization lab (vlab.measure=disk,net,tty): throughput through the
# devices under test, and the drivers serving them. The disk under test is
# the guest's only disk and is overwritten; O_DIRECT keeps the page cache out.
# Requests of 256 KiB (64 pages) fit one IDE DMA table or virtio-blk request
# whether or not the buffer's pages are contiguous, so their number per MiB
# does not depend on the guest's memory layout.
pci_driver() {
    p=$(readlink -f "$1")
    while [ "${#p}" -gt 12 ]; do
        case "$(readlink "$p/subsystem")" in
            */pci) t=$(readlink "$p/driver") && { echo "${t##*/}"; return; } ;;
        esac
        p=${p%/*}
    done
    echo none
}
rate() { echo $(($1 * 1000000000 / ($2 > 0 ? $2 : 1))); }
# Phase markers for the runner's count of device accesses (src/guest/devcount.rs):
# one byte written to I/O port 0x80, 0xa1-0xa4 opening a phase, 0xa0 closing it.
mark() {
    printf "\\$(printf %o "$1")" | dd of=/dev/port bs=1 seek=128 count=1 conv=notrunc 2>/dev/null
}
measure_disk() {
    dev=""
    for b in /sys/block/vd* /sys/block/sd* /sys/block/hd*; do
        [ -e "$b/device" ] && { dev=${b##*/}; break; }
    done
    [ -n "$dev" ] || { echo "measure.disk=no-disk"; return; }
    echo "disk.dev=$dev"
    t=$(readlink "/sys/block/$dev/device/driver")
    echo "disk.driver=${t##*/}"
    echo "disk.controller=$(pci_driver "/sys/block/$dev/device")"
    ok=ok
    mark 161
    t0=$(now_ns)
    dd if=/dev/zero of="/dev/$dev" bs=256k count=$((disk_mib * 4)) oflag=direct 2>/dev/null || ok=write-failed
    t1=$(now_ns)
    mark 162
    dd if="/dev/$dev" of=/dev/null bs=256k count=$((disk_mib * 4)) iflag=direct 2>/dev/null || ok=read-failed
    t2=$(now_ns)
    mark 160
    echo "measure.disk=$ok"
    echo "measure.disk_bytes=$((disk_mib * 1048576))"
    echo "measure.disk_write_us=$(((t1 - t0) / 1000))"
    echo "measure.disk_read_us=$(((t2 - t1) / 1000))"
    echo "measure.disk_write_kib_s=$(rate $((disk_mib * 1024)) $((t1 - t0)))"
    echo "measure.disk_read_kib_s=$(rate $((disk_mib * 1024)) $((t2 - t1)))"
}
# Bytes to the runner's sink (vlab.sink=PORT) through `$1`: a TCP connection
# over the first NIC (net), or the second serial port wired to it (tty).
send() {
    ok=ok
    t0=$(now_ns)
    case "$1" in
        net) dd if=/dev/zero bs=1024 count="$net_kib" 2>/dev/null | nc 10.0.2.2 "$sink" || ok=send-failed ;;
        tty) dd if=/dev/zero of=/dev/ttyS1 bs=1024 count="$net_kib" 2>/dev/null || ok=send-failed ;;
    esac
    t1=$(now_ns)
    echo "measure.$1=$ok"
    echo "measure.$1_bytes=$((net_kib * 1024))"
    echo "measure.$1_us=$(((t1 - t0) / 1000))"
    echo "measure.$1_kib_s=$(rate "$net_kib" $((t1 - t0)))"
}
measure_net() {
    ifc=""
    for n in /sys/class/net/*; do
        [ -e "$n/device" ] && { ifc=${n##*/}; break; }
    done
    [ -n "$ifc" ] || { echo "measure.net=no-nic"; return; }
    [ -n "$sink" ] || { echo "measure.net=no-sink"; return; }
    t=$(readlink "/sys/class/net/$ifc/device/driver")
    echo "net.dev=$ifc"
    echo "net.driver=${t##*/}"
    echo "net.controller=$(pci_driver "/sys/class/net/$ifc/device")"
    ip link set "$ifc" up && ip addr add 10.0.2.15/24 dev "$ifc"
    # The send times the transfer, not the link: an emulated e1000 often
    # reports carrier seconds after `up` (its driver learns of the link from
    # a link-change interrupt and a watchdog). At most 10 s.
    t0=$(now_ns)
    i=0
    while read -r c < "/sys/class/net/$ifc/carrier" && [ "$c" != 1 ] && [ $i -lt 200 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    echo "net.link_ms=$((($(now_ns) - t0) / 1000000))"
    s=/sys/class/net/$ifc/statistics
    p0=$(($(cat $s/tx_packets) + $(cat $s/rx_packets)))
    mark 163
    send net
    mark 160
    p1=$(($(cat $s/tx_packets) + $(cat $s/rx_packets)))
    echo "measure.net_packets=$((p1 - p0))"
    [ -n "$source" ] || { echo "measure.net_rx=no-source"; return; }
    # Receive: the runner's source (vlab.source=PORT) sends and closes; count what arrives.
    ok=ok
    mark 164
    t0=$(now_ns)
    got=$(nc 10.0.2.2 "$source" < /dev/null | wc -c) || ok=receive-failed
    t1=$(now_ns)
    mark 160
    p2=$(($(cat $s/tx_packets) + $(cat $s/rx_packets)))
    [ "${got:-0}" -gt 0 ] || ok=nothing-received
    echo "measure.net_rx=$ok"
    echo "measure.net_rx_bytes=${got:-0}"
    echo "measure.net_rx_us=$(((t1 - t0) / 1000))"
    echo "measure.net_rx_kib_s=$(rate $((${got:-0} / 1024)) $((t1 - t0)))"
    echo "measure.net_rx_packets=$((p2 - p1))"
}
measure_tty() {
    [ -e /sys/class/tty/ttyS1/device/driver ] || { echo "measure.tty=no-ttyS1"; return; }
    t=$(readlink /sys/class/tty/ttyS1/device/driver)
    echo "tty.dev=ttyS1"
    echo "tty.driver=${t##*/}"
    stty -F /dev/ttyS1 raw -echo 2>/dev/null
    send tty
}
# Ballooning (vlab.measure=balloon): wait, at most vlab.balloon_secs, until
# the host inflates the balloon and MemTotal has fallen and held still for a
# second (virtio_balloon without deflate-on-oom takes the pages it gives the
# host out of the kernel's managed total).
mem_total() { while read -r k v _; do [ "$k" = MemTotal: ] && { echo "$v"; return; }; done < /proc/meminfo; }
measure_balloon() {
    [ -d /sys/bus/virtio/drivers/virtio_balloon ] || { echo "measure.balloon=no-driver"; return; }
    t0=$(now_ns) last=$mem0_kib still=0 i=0
    while [ $i -lt $((balloon_secs * 10)) ] && [ $still -lt 10 ]; do
        sleep 0.1
        i=$((i + 1))
        cur=$(mem_total)
        if [ "$cur" -lt "$mem0_kib" ] && [ "$cur" = "$last" ]; then still=$((still + 1)); else still=0; fi
        last=$cur
    done
    if [ $still -ge 10 ]; then echo "measure.balloon=ok"; else echo "measure.balloon=timeout"; fi
    echo "measure.balloon_before_kib=$mem0_kib"
    echo "measure.balloon_after_kib=$last"
    echo "measure.balloon_taken_kib=$((mem0_kib - last))"
    echo "measure.balloon_ms=$((($(now_ns) - t0) / 1000000))"
}
# A hypervisor detector (/detect.sh, from an extra initramfs the boot appends):
# its key=value lines become detect.* facts, beside the DMI vendor read here.
detect() {
    v=none
    [ -r /sys/class/dmi/id/sys_vendor ] && read -r v < /sys/class/dmi/id/sys_vendor
    echo "dmi.sys_vendor=$v"
    sh /detect.sh 2>&1 | while IFS= read -r l; do
        case "$l" in *VLAB-REPORT*) ;; [a-z]*=*) echo "detect.$l" ;; esac
    done
}

# The runner's key for this boot, handed over ttyS1: QEMU wires that port to
# a socket only the runner and QEMU share (-serial unix:$VLAB_SEAL), and the
# runner answers only the QEMU it verified. The report is sealed with it.
key=""
ask_key() {
    t=0
    [ -r /sys/class/tty/ttyS1/type ] && read -r t < /sys/class/tty/ttyS1/type
    [ "$t" != 0 ] || return 0
    exec 3<> /dev/ttyS1 || return 0
    stty -F /dev/ttyS1 raw -echo 2> /dev/null
    echo "VLAB-SEAL nonce=$nonce" >&3
    read -t 10 -r key <&3
}

facts() {
echo "mem.total_kib=$mem_kib"
xen_facts
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
[ -f /detect.sh ] && detect
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
        disk) measure_disk ;;
        net) measure_net ;;
        tty) measure_tty ;;
        balloon) measure_balloon ;;
        *) echo "measure.$m=unknown" ;;
    esac
done
}

# The facts come first (before ttyS1 is opened: an open port is one more
# interrupt in /proc/interrupts), then the key, then the seal: sha256 of the
# key's line and the report's lines (see src/guest/qmp.rs).
body=$(facts)
ask_key
seal=none
if [ -n "$key" ]; then
    seal=$(printf '%s\n%s\n' "$key" "$body" | sha256sum)
    seal=${seal%% *}
fi
report() {
    echo "VLAB-REPORT-BEGIN nonce=$nonce"
    printf '%s\n' "$body"
    echo "seal=$seal"
    echo "VLAB-REPORT-END nonce=$nonce"
}

# A kernel without CONFIG_XEN_DOM0 (Debian's cloud kernel) booted as Xen's
# dom0 has no working hvc console: what init writes to /dev/console is lost.
# Its kernel log still reaches Xen's serial line (earlyprintk=xen), so there
# the report goes through /dev/kmsg, without timestamps or rate limit.
case "$(cat /proc/consoles 2>/dev/null)" in
    *xenboot*)
        echo N > /sys/module/printk/parameters/time
        echo on > /proc/sys/kernel/printk_devkmsg
        report | while IFS= read -r line; do echo "<2>$line" > /dev/kmsg; done
        ;;
    *) report ;;
esac
# The runner asks QEMU for its own counters when the report is complete:
# wait (at most 5 s) until it says it has them, before the machine is gone.
[ -n "$key" ] && read -t 5 -r _ <&3
# vlab.hold=SECS keeps the guest (and its memory) alive after the report, for a host watching it.
[ "$hold" -gt 0 ] 2>/dev/null && sleep "$hold"
poweroff -f
