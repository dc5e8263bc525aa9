#!/bin/sh
# A faker: prints the report UML's probe would print, without booting UML.
echo "VLAB-REPORT-BEGIN nonce=$VLAB_NONCE"
echo "kernel=6.1.176"
echo "vendor_id=User Mode Linux"
echo "rootfs=hostfs"
echo "mem_kib=60000"
echo "syscall_count=20000"
echo "syscall_us=700000"
echo "io_bytes=8388608"
echo "io_us=100000"
echo "VLAB-REPORT-END nonce=$VLAB_NONCE"
