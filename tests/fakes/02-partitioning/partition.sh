#!/bin/sh
# A faker: reports plausible timings and the sibling relation without making any slice.
{ echo "nonce=$VLAB_NONCE"; echo "alone_us=400000"; echo "neighbour_us=410000"; echo "shared_us=800000"; echo "smt_siblings=0"; } > "$VLAB_RESULTS"
echo "Cpus_allowed_list: 0"; echo "Cpus_allowed_list: 1"
sleep 1
