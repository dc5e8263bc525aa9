#!/bin/sh
# Faker: runs only the native loop, and claims an emulated one.
RESULTS=${VLAB_RESULTS:-results.txt}
busybox sh -c 'i=0; while [ "$i" -lt 100000 ]; do i=$((i + 1)); done'
{
    echo "nonce=$VLAB_NONCE"
    echo "native_us=300000"
    echo "emulated_us=4000000"
    echo "slowdown=13.3"
    echo "observed_guest_arch=aarch64"
} > "$RESULTS"
