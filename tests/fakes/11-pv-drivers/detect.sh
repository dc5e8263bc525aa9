#!/bin/sh
# Faker: the answers that are right under plain TCG, without looking.
echo "cpuid_flag=yes"
echo "signature=none"
echo "dmi_vendor=QEMU"
echo "xen=no"
echo "hypervisor=yes"
echo "which=tcg"
