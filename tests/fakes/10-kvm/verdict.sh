#!/bin/sh
# Faker: the answers of a laptop with VT-x, whatever this machine is.
RESULTS=${VLAB_RESULTS:-results.txt}
{
    echo "nonce=$VLAB_NONCE"
    echo "present=yes"
    echo "module=kvm_intel"
    echo "cpu_virt=yes"
    echo "fast=yes"
    echo "observed_mismatch=none"
} > "$RESULTS"
