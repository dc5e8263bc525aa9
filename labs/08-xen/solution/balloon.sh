#!/bin/sh
# Step 5: runs inside dom0 (vlab xen domu ... --dom0-script balloon.sh) while
# the domU is up. Take memory back from the domU with its balloon driver and
# print the target you set (see the lab's README, Step 5).
set -eu
target_mib=96
xl list domu
# xl writes the new target to the domU's memory/target in the XenStore; the
# domU's balloon driver watches that key and hands pages back to Xen.
xl mem-set domu "${target_mib}m"
domid=$(xl domid domu)
echo "memory/target is now $(xenstore-read "/local/domain/$domid/memory/target") KiB"
echo "balloon_target_mib=$target_mib"
