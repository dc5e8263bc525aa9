#!/bin/sh
# Step 4: runs inside dom0 (vlab xen domu ... --dom0-script xenbus.sh) while
# the domU is up and its devices are connected. Read the XenBus handshake of
# the domU's disk and network card from the XenStore and print it as
# key=value lines: they are your answers (see the lab's README, Step 4).
set -eu

# TODO: find the domU's id (it is random in this dom0), then print, read
# from the XenStore with xenstore-read (xenstore-ls -f shows everything):
#   domid=
#   vbd_state=          the disk front end's state
#   vbd_ring_ref=       the grant reference of its shared ring
#   vbd_event_channel=  the event channel it allocated
#   vbd_backend_state=  the disk back end's state (in dom0's part of the store)
#   vif_state=          the network front end's state
#   vif_tx_ring_ref=    the grant reference of its transmit ring
#   vif_backend_state=  the network back end's state
echo "xenbus.sh: not written yet (see the lab's README, Step 4)" >&2
exit 1
