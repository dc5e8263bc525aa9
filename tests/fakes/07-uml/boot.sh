#!/bin/sh
# A faker: prints the report UML's probe would print, in either mode, without booting UML.
echo "Checking that seccomp filters can be installed...OK"
echo "VLAB-REPORT-BEGIN nonce=$VLAB_NONCE"
echo "kernel=7.2.7"
echo "vendor_id=User Mode Linux"
echo "rootfs=hostfs"
echo "mem_kib=60000"
echo "syscall_count=20000"
case "${1:-}" in
    seccomp) echo "syscall_us=200000" ;;
    *) echo "syscall_us=400000" ;;
esac
echo "io_bytes=8388608"
echo "io_us=100000"
echo "VLAB-REPORT-END nonce=$VLAB_NONCE"
