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
[ -n "$log" ] && tr -d '\r' < "$log" > /tmp/domu.log

# The student's dom0 script (lab 08, steps 4 and 5), when `vlab xen domu
# --dom0-script` gave one: it runs while the domU is up and connected. The
# runner reads the XenBus handshake first, so that what the script then does
# to the XenStore cannot change what the runner saw.
xs() { xenstore-read "$1" 2> /dev/null; }
xenbus=""
student=""
if [ -f /etc/xen/dom0.sh ] && [ -n "$log" ] && grep -q '^DOMU-DONE' /tmp/domu.log; then
    domid=$(xl domid "$name" 2> /dev/null)
    fe=/local/domain/$domid/device
    xenbus="domu.domid=$domid"
    for class in vbd vif; do
        devid=$(xenstore-list "$fe/$class" 2> /dev/null | head -n 1)
        [ -n "$devid" ] || continue
        xenbus="$xenbus
xenbus.$class.devid=$devid"
        for key in state ring-ref event-channel tx-ring-ref rx-ring-ref event-channel-tx event-channel-rx; do
            v=$(xs "$fe/$class/$devid/$key")
            [ -n "$v" ] && xenbus="$xenbus
xenbus.$class.$(echo "$key" | tr - _)=$v"
        done
        be=$(xs "$fe/$class/$devid/backend")
        [ -n "$be" ] && xenbus="$xenbus
xenbus.$class.backend=$be
xenbus.$class.backend_state=$(xs "$be/state")"
    done
    target_before=$(xs "/local/domain/$domid/memory/target")
    # What runs now must not outlive the script: every process it leaves is
    # killed (xl's own domain watcher and the daemons were started before).
    before=" $(cd /proc && echo [0-9]*) "
    say "sh dom0.sh (yours)"
    VLAB_NONCE=$nonce timeout 90 sh /etc/xen/dom0.sh < /dev/null > /tmp/dom0-sh.out 2>&1
    for p in /proc/[0-9]*; do
        case "$before" in *" ${p#/proc/} "*) ;; *) kill -9 "${p#/proc/}" 2> /dev/null ;; esac
    done
    head -n 200 /tmp/dom0-sh.out | sed 's/^/dom0.sh: /'
    # Only key=value lines are answers, each marked as the script's.
    student=$(tr -d '\r' < /tmp/dom0-sh.out | grep -E '^[a-z][a-z0-9_]*=' | head -n 40 | cut -c 1-200 | sed 's/^/answer./')
    # A balloon target the script set: wait until the domU's balloon driver
    # reports it has reached it (at most 60 s), then read both sides.
    target=$(xs "/local/domain/$domid/memory/target")
    if [ -n "$target" ] && [ "$target" != "$target_before" ]; then
        i=0
        while [ $i -lt 120 ]; do
            tr -d '\r' < "$log" > /tmp/domu.log
            last=$(grep '^DOMU-BALLOON' /tmp/domu.log | tail -n 1)
            case "$last" in *" current_kib=$target "*) break ;; esac
            sleep 0.5
            i=$((i + 1))
        done
        sleep 1
        tr -d '\r' < "$log" > /tmp/domu.log
        xl_mib=""
        while read -r n id mem _; do
            [ "$n" = "$name" ] && xl_mib=$mem
        done <<LIST
$(xl list 2> /dev/null)
LIST
        first=$(grep '^DOMU-BALLOON' /tmp/domu.log | head -n 1)
        last=$(grep '^DOMU-BALLOON' /tmp/domu.log | tail -n 1)
        field() { for w in $1; do case "$w" in "$2"=*) echo "${w#*=}" ;; esac; done; }
        xenbus="$xenbus
balloon.xenstore_target_kib=$target
balloon.xl_list_mib=$xl_mib
balloon.domu_target_kib=$(field "$last" target_kib)
balloon.domu_current_kib=$(field "$last" current_kib)
balloon.domu_mem_total_kib_before=$(field "$first" total_kib)
balloon.domu_mem_total_kib_after=$(field "$last" total_kib)"
    fi
fi
[ -n "$log" ] && sed 's/^/[domU] /' /tmp/domu.log

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
[ -n "$xenbus" ] && body="$body
$xenbus"
[ -n "$student" ] && body="$body
$student"
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
