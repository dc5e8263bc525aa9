#!/bin/sh
# Step 5: runs inside dom0 (vlab xen domu ... --dom0-script balloon.sh) while
# the domU is up. Take memory back from the domU with its balloon driver and
# print the target you set (see the lab's README, Step 5).
set -eu

# TODO: set the domU's balloon target below its 128 MiB with xl, then print
#   balloon_target_mib=     the target you set, in MiB
echo "balloon.sh: not written yet (see the lab's README, Step 5)" >&2
exit 1
