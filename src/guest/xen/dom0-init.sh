#!/bin/sh
# vlab's dom0 for lab 08's domU step: runs as PID 1 of Debian's generic
# kernel booted by Xen as a PV dom0. It starts Xen's toolstack (xenstored,
# xenconsoled), gives the domU a disk (a RAM disk holding a marker with this
# run's nonce) and a network card, starts the domU from the student's xl config
# (/etc/xen/domu.cfg), waits for it, and prints one report on the console
# (protocol: src/check/boot.rs). Every fact about the domU comes from what
# the domU itself printed, or from Xen's toolstack.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/usr/lib/xen/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts
read -r cmdline < /proc/cmdline
nonce=missing
for w in $cmdline; do
    case "$w" in vlab.nonce=*) nonce=${w#vlab.nonce=} ;; esac
done
say() { echo "vlab-dom0: $*"; }

while read -r m; do
    insmod "/lib/modules/$m.ko" || say "cannot load $m"
done < /lib/modules/dom0.order
insmod /lib/modules/brd.ko rd_nr=1 rd_size=4096 || say "cannot load brd"
mount -t xenfs xenfs /proc/xen
mkdir -p /var/run/xen /var/run/xenstored /var/lib/xen /var/lib/xenstored /var/log/xen/console /var/lock /tmp
xenstored --pid-file=/var/run/xen/xenstored.pid
i=0
while [ ! -s /var/run/xen/xenstored.pid ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
xen-init-dom0 > /dev/null
xenconsoled --pid-file=/var/run/xen/xenconsoled.pid --log=guest --log-dir=/var/log/xen/console
marker="VLAB-DISK-$nonce"
echo "$marker" | dd of=/dev/ram0 conv=notrunc 2> /dev/null

say "xl create /etc/xen/domu.cfg"
created=no
if xl create /etc/xen/domu.cfg "extra=\"console=hvc0 quiet vlab.nonce=$nonce\"" > /tmp/xl.out 2>&1; then
    created=yes
fi
sed 's/^/xl: /' /tmp/xl.out
name="" memory_mib="" vcpus=""
while read -r n id mem cpus _; do
    case "$n" in Name | Domain-0) ;; *) name=$n memory_mib=$mem vcpus=$cpus ;; esac
done <<LIST
$(xl list 2> /dev/null)
LIST
backends=$(xenstore-list /local/domain/0/backend 2> /dev/null | tr '\n' ',' | sed 's/,$//')

# Wait for the domU to finish (it powers itself off), at most two minutes.
log=""
i=0
while [ "$created" = yes ] && [ $i -lt 240 ]; do
    log=$(ls /var/log/xen/console/guest-*.log 2> /dev/null | head -n 1)
    [ -n "$log" ] && grep -q '^DOMU-DONE' "$log" && break
    xl list "$name" > /dev/null 2>&1 || break
    sleep 0.5
    i=$((i + 1))
done
# xenconsoled logs the domU's console as it came, with carriage returns.
[ -n "$log" ] && tr -d '\r' < "$log" > /tmp/domu.log && sed 's/^/[domU] /' /tmp/domu.log

domu_nonce=missing guest_type=none vbd=none vif=none disk=missing mem_kib=""
if [ -n "$log" ]; then
    while read -r tag a b c _; do
        case "$tag" in
            DOMU-HELLO) n=${a#nonce=}; if [ "$n" = "$nonce" ]; then domu_nonce=fresh; else domu_nonce=stale; fi ;;
            DOMU-TYPE) guest_type=$a ;;
            DOMU-XENBUS)
                dev=$a drv=${b#driver=} state=${c#state=}
                case "$dev" in vbd-*) vbd="$drv:$state" ;; vif-*) vif="$drv:$state" ;; esac ;;
            DOMU-DISK) if [ "$a" = "$marker" ]; then disk=fresh; else disk=stale; fi ;;
            DOMU-MEM) mem_kib=$a ;;
        esac
    done < /tmp/domu.log
fi

# The runner's key for this boot, over ttyS1 (QEMU's second serial port, a
# socket only the runner and QEMU share), seals the report; as in the probe's
# init (src/guest/init.sh).
key=""
t=0
[ -r /sys/class/tty/ttyS1/type ] && read -r t < /sys/class/tty/ttyS1/type
if [ "$t" != 0 ] && exec 3<> /dev/ttyS1; then
    stty -F /dev/ttyS1 raw -echo 2> /dev/null
    echo "VLAB-SEAL nonce=$nonce" >&3
    read -t 10 -r key <&3
fi
read -r hv < /sys/hypervisor/type
# What xl said last (its error when it could not create the domain).
xl_said=$(grep -v '^Parsing config' /tmp/xl.out | tail -n 1)
body="hypervisor.type=$hv
domu.created=$created
domu.name=$name
domu.memory_mib=$memory_mib
domu.vcpus=$vcpus
domu.backends=$backends
domu.nonce=$domu_nonce
domu.guest_type=$guest_type
domu.vbd=$vbd
domu.vif=$vif
domu.disk=$disk
domu.mem_total_kib=$mem_kib
domu.xl=$xl_said"
seal=none
if [ -n "$key" ]; then
    seal=$(printf '%s\n%s\n' "$key" "$body" | sha256sum)
    seal=${seal%% *}
fi
echo "VLAB-REPORT-BEGIN nonce=$nonce"
printf '%s\n' "$body"
echo "seal=$seal"
echo "VLAB-REPORT-END nonce=$nonce"
# Until the runner has asked QEMU for its counters (at most 5 s).
[ -n "$key" ] && read -t 5 -r _ <&3
poweroff -f
