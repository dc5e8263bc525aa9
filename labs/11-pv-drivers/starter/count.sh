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
# TODO (README, "Counting device accesses"): read the phase markers the probe
# writes to port 0x80, count each device's accesses inside each phase, and
# divide by the bytes and packets the report names.
echo "count.sh: not written yet (see the lab's README, Counting device accesses)" >&2
exit 1
