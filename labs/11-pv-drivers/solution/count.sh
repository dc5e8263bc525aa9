#!/bin/sh
# Count what a device cost in one traced boot of your own.
# Usage: sh count.sh TRACE CONSOLE
#   TRACE    QEMU's log with the memory_region_ops_read/write and
#            virtio_queue_notify trace events (-d trace:...,trace:... -D TRACE)
#   CONSOLE  that boot's console, with the probe's report (measure.* lines)
# Prints, for the device accessed most in each phase the probe marked:
#   disk_per_mib=N        disk accesses per MiB written and read
#   net_tx_per_packet=N   NIC accesses per packet (sent or received) while sending
#   net_rx_per_packet=N   NIC accesses per packet while receiving
set -eu
TRACE=${1:?usage: sh count.sh TRACE CONSOLE}
CONSOLE=${2:?usage: sh count.sh TRACE CONSOLE}
report() { tr -d '\r' < "$CONSOLE" | sed -n "s/^$1=//p" | tail -n 1; }
disk_bytes=$(report measure.disk_bytes)
tx_packets=$(report measure.net_packets)
rx_packets=$(report measure.net_rx_packets)

# Each line: memory_region_ops_write cpu 0 mr 0x... addr 0x80 value 0xa1 size 1 name 'ioport80'.
# The probe writes 0xa1 (disk write), 0xa2 (disk read), 0xa3 (send), 0xa4
# (receive) and 0xa0 (end) to port 0x80; the kernel's own port-0x80 writes are 0.
# An access belongs to a device by its region's name; cpu -1 is a device's
# own write (an MSI), not a driver's access. A virtio_queue_notify line is the
# driver's write to a virtio notify register, which QEMU passes to an
# ioeventfd without a memory_region_ops line; only one virtio device is busy
# in each phase, so "virtio" stands for it.
awk -v disk_bytes="${disk_bytes:-0}" -v tx="${tx_packets:-0}" -v rx="${rx_packets:-0}" '
function device(r) {
    if (r == "ide" || r ~ /bmdma/) return "ide"
    if (r ~ /^e1000/) return "e1000"
    if (r ~ /^rtl8139/) return "rtl8139"
    if (r ~ /^virtio-pci/) return "virtio"
    return ""
}
/virtio_queue_notify vdev / { if (phase != "") n[phase, "virtio"]++; next }
{
    sub(/^.*memory_region_ops_/, "")
    if ($1 != "read" && $1 != "write") next
    if ($3 < 0) next
    region = $NF; gsub(/\047/, "", region)
    if ($1 == "write" && region == "ioport80" && $7 == "0x80") {
        if ($9 == "0xa1") phase = "dw"; else if ($9 == "0xa2") phase = "dr"
        else if ($9 == "0xa3") phase = "tx"; else if ($9 == "0xa4") phase = "rx"
        else if ($9 == "0xa0") phase = ""
        next
    }
    d = device(region)
    if (phase != "" && d != "") n[phase, d]++
}
function most(p,   d, best) {
    best = 0
    for (d in seen) if (n[p, d] > best) best = n[p, d]
    return best
}
BEGIN { seen["ide"]; seen["e1000"]; seen["rtl8139"]; seen["virtio"] }
END {
    mib = disk_bytes / 1048576
    if (mib > 0) printf "disk_per_mib=%.2f\n", (most("dw") + most("dr")) / (2 * mib)
    if (tx > 0) printf "net_tx_per_packet=%.2f\n", most("tx") / tx
    if (rx > 0) printf "net_rx_per_packet=%.2f\n", most("rx") / rx
}' "$TRACE"
