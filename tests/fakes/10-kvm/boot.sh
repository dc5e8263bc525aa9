#!/bin/sh
# Faker: prints a plausible probe report without booting anything, beside a
# decoy that calls itself QEMU.
bash -c 'exec -a qemu-system-x86_64 sleep 60' &
cat <<REPORT
[    0.000000] Linux version 6.1.0-56-cloud-amd64
VLAB-REPORT-BEGIN nonce=$VLAB_NONCE
kernel=6.1.0-56-cloud-amd64
arch=x86_64
cpu.vendor=AuthenticAMD
cpu.hypervisor=yes
hypervisor.vendor=none
uptime_ms=2480
measure.cpu_iterations=20000
measure.cpu_us=1100000
VLAB-REPORT-END nonce=$VLAB_NONCE
REPORT
wait
