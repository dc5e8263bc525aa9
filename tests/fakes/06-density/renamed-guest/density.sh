#!/bin/sh
# A faker: two guests whose pages KSM merges, but only one runs the real QEMU;
# the other runs a copy of it under another name.
# Density: how many instances fit, and what does each one cost?
# Usage: sh density.sh containers|uml|ksm|balloon
#
# Every instance runs in its own memory cgroup, container-N or uml-N, under
# $VLAB_CGROUP_MEMORY (made and removed by the runner, which reads the peak
# memory each group was charged and when a process first ran in a new root).
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
# bin/linux is the UML kernel `vlab doctor` found booting on this machine (step 2).
PATH="$PWD/bin:$PATH"

# Runs the rest of the arguments in the memory group $1.
in_group() {
    g="$VLAB_CGROUP_MEMORY/$1"
    shift
    mkdir -p "$g"
    sh -c 'echo $$ > "$1/cgroup.procs"; shift; exec "$@"' sh "$g" "$@"
}

# One container, as in lab 03: new namespaces, pivoted into rootfs/, idle there.
container() {
    exec unshare --user --map-root-user --pid --fork --mount --uts --ipc --net --propagation private \
        sh -c 'mount --bind rootfs rootfs && cd rootfs && /bin/busybox pivot_root . old-root &&
               /bin/busybox mount -t proc proc /proc && /bin/busybox umount -l /old-root &&
               exec /bin/sleep 10'
}

containers() {
    # One after another, so each start is timed without the others' contention.
    for i in 1 2 3 4 5; do
        in_group "container-$i" sh density.sh container &
        sleep 0.4
    done
    sleep 1
}

# One UML guest as in lab 07, with the smallest memory it boots in, reporting only.
uml() {
    for i in 1 2 3; do
        in_group "uml-$i" linux mem=64M rootfstype=hostfs rootflags="$PWD/rootfs" rw init=/.vlab/uml-init \
            con0=fd:0,fd:1 con=null umid="vlab-$VLAB_NONCE-$i" uml_dir="$VLAB_SCRATCH" \
            vlab.nonce="$VLAB_NONCE" vlab.quick quiet </dev/null >"$VLAB_SCRATCH/uml-$i.console" 2>&1 &
    done
    wait
    grep -h "^vendor_id=" "$VLAB_SCRATCH"/uml-*.console
}

# One TCG guest booting the runner's kernel and probe, its console to the
# file $1; vlab.hold keeps it up after its report, so that its memory stays.
# Every guest gets the same command line: identical guests, identical pages.
guest() {
    console=$1
    shift
    exec qemu-system-x86_64 -accel tcg -m 160 -nodefaults -display none -no-reboot \
        -serial "file:$console" "$@" \
        -kernel assets/vmlinuz -initrd assets/initrd.img \
        -append "console=ttyS0 panic=-1 quiet vlab.nonce=$VLAB_NONCE vlab.hold=300"
}

guest2() {
    console=$1
    # A copy finds QEMU's modules and firmware only when told where they are.
    QEMU_MODULE_DIR=/usr/lib/x86_64-linux-gnu/qemu exec guest-2 -L /usr/share/seabios -L /usr/share/qemu -accel tcg -m 160 -nodefaults -display none -no-reboot -serial "file:$console" \
        -kernel assets/vmlinuz -initrd assets/initrd.img \
        -append "console=ttyS0 panic=-1 quiet vlab.nonce=$VLAB_NONCE vlab.hold=300"
}

# Waits (at most $2 seconds) until the file $1 holds a complete probe report.
booted() {
    i=0
    until grep -q VLAB-REPORT-END "$1" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le "$2" ] || { echo "no report in $1 after $2 s" >&2; return 1; }
        sleep 1
    done
}

KSM=/sys/kernel/mm/ksm
# The host's KSM settings, put back however this script ends.
saved_ksm=""
save_ksm() {
    for t in pages_to_scan sleep_millisecs run; do saved_ksm="$saved_ksm $t=$(cat "$KSM/$t")"; done
}
restore_ksm() {
    for kv in $saved_ksm; do echo "${kv#*=}" > "$KSM/${kv%%=*}"; done
}

ksm() {
    save_ksm
    trap 'restore_ksm; kill $vm1 $vm2 2>/dev/null' EXIT
    guest "$VLAB_SCRATCH/vm-1.console" &
    vm1=$!
    # The faker: the second guest runs a copy of QEMU under another name.
    cp "$(command -v qemu-system-x86_64)" "$VLAB_SCRATCH/guest-2"
    PATH="$VLAB_SCRATCH:$PATH" guest2 "$VLAB_SCRATCH/vm-2.console" &
    vm2=$!
    booted "$VLAB_SCRATCH/vm-1.console" 90
    booted "$VLAB_SCRATCH/vm-2.console" 30
    # Both booted and idle: let the runner see them unmerged, then start ksmd, fast.
    sleep 2
    echo 4000 > "$KSM/pages_to_scan"
    echo 20 > "$KSM/sleep_millisecs"
    echo 1 > "$KSM/run"
    i=0
    while [ "$i" -lt 40 ]; do
        m1=$(cat "/proc/$vm1/ksm_merging_pages") m2=$(cat "/proc/$vm2/ksm_merging_pages")
        [ "$m1" -gt 4096 ] && [ "$m2" -gt 4096 ] && break
        sleep 1
        i=$((i + 1))
    done
    sleep 2
    echo "merging pages: vm-1 $m1, vm-2 $m2; pages_sharing $(cat $KSM/pages_sharing), pages_shared $(cat $KSM/pages_shared)"
}

balloon() {
    # The runner's sockets: QMP (it asks QEMU about the balloon) and ttyS1 (the probe's key).
    WATCH=""
    [ -n "${VLAB_QMP:-}" ] && WATCH="-qmp unix:$VLAB_QMP -serial unix:$VLAB_SEAL"
    # A QMP monitor of our own, on two FIFOs (mine.in, mine.out): JSON lines, plain sh.
    mine="$VLAB_SCRATCH/mine"
    mkfifo "$mine.in" "$mine.out"
    qemu-system-x86_64 -accel tcg -m 192 -nodefaults -display none -no-reboot \
        -serial stdio $WATCH \
        -device virtio-balloon-pci \
        -chardev pipe,id=mine,path="$mine" -mon chardev=mine,mode=control \
        -kernel assets/vmlinuz -initrd assets/initrd.img \
        -append "console=ttyS0 panic=-1 quiet vlab.nonce=$VLAB_NONCE vlab.measure=balloon" &
    qemu=$!
    exec 3>"$mine.in" 4<"$mine.out"
    read -r greeting <&4
    echo '{"execute": "qmp_capabilities"}' >&3
    read -r reply <&4
    # The guest keeps 96 MiB of its 192: the balloon takes the rest.
    echo '{"execute": "balloon", "arguments": {"value": 100663296}}' >&3
    read -r reply <&4
    echo "balloon: $reply" >&2
    exec 3>&- 4<&-
    wait "$qemu"
}

case "${1:-}" in
    containers) containers ;;
    container) container ;;
    uml) uml ;;
    ksm) ksm ;;
    balloon) balloon ;;
    *) echo "usage: sh density.sh containers|uml|ksm|balloon" >&2; exit 2 ;;
esac
