#!/bin/sh
# vlab's domU init (lab 08): loads the XenBus front-end drivers, waits for
# their devices to connect to dom0's back ends, and prints what it sees on
# its console (hvc0, which dom0's xenconsoled logs); dom0 turns that into the
# report. The disk's first line is the marker dom0 wrote on its RAM disk.
# It stays up afterwards, reporting its balloon, until dom0 ends.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2> /dev/null
read -r cmdline < /proc/cmdline
nonce=missing
for w in $cmdline; do
    case "$w" in vlab.nonce=*) nonce=${w#vlab.nonce=} ;; esac
done
echo "DOMU-HELLO nonce=$nonce"
type=none
[ -r /sys/hypervisor/guest_type ] && read -r type < /sys/hypervisor/guest_type
echo "DOMU-TYPE $type"
insmod /lib/modules/xen_blkfront.ko
insmod /lib/modules/xen_netfront.ko
# Every device on the XenBus should reach Connected within a few seconds.
i=0
while [ $i -lt 100 ]; do
    pending=0
    for d in /sys/bus/xen/devices/*; do
        [ -r "$d/state" ] || continue
        read -r st < "$d/state"
        [ "$st" = Connected ] || pending=1
    done
    [ $pending = 0 ] && break
    sleep 0.1
    i=$((i + 1))
done
for d in /sys/bus/xen/devices/*; do
    [ -e "$d" ] || continue
    drv=none
    [ -e "$d/driver" ] && drv=$(readlink "$d/driver") && drv=${drv##*/}
    st=unknown
    [ -r "$d/state" ] && read -r st < "$d/state"
    echo "DOMU-XENBUS ${d##*/} driver=$drv state=$st"
done
[ -b /dev/xvda ] && echo "DOMU-DISK $(head -c 64 /dev/xvda | head -n 1)"
while read -r k v _; do
    [ "$k" = MemTotal: ] && echo "DOMU-MEM $v"
done < /proc/meminfo
echo "DOMU-DONE nonce=$nonce"
sync
# Then the balloon as this domain sees it, whenever it changes, for as long
# as dom0 keeps the domain (at most three minutes): the target the balloon
# driver read from the XenStore, what it holds now, and MemTotal.
b=/sys/devices/system/xen_memory/xen_memory0
seen="" i=0
while [ $i -lt 180 ]; do
    target=none current=none total=none
    [ -r $b/target_kb ] && read -r target < $b/target_kb
    [ -r $b/info/current_kb ] && read -r current < $b/info/current_kb
    while read -r k v _; do
        [ "$k" = MemTotal: ] && total=$v
    done < /proc/meminfo
    now="target_kib=$target current_kib=$current total_kib=$total"
    [ "$now" != "$seen" ] && echo "DOMU-BALLOON $now end" && seen=$now
    sleep 1
    i=$((i + 1))
done
poweroff -f
