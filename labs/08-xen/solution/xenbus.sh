#!/bin/sh
# Step 4: runs inside dom0 (vlab xen domu ... --dom0-script xenbus.sh) while
# the domU is up and its devices are connected. Read the XenBus handshake of
# the domU's disk and network card from the XenStore and print it as
# key=value lines: they are your answers (see the lab's README, Step 4).
set -eu
# The domU's id: xl picks it at random in this dom0, so it differs each boot.
domid=$(xl domid domu)
fe=/local/domain/$domid/device
# Each device class has one directory per device, named by its device id.
vbd=$(xenstore-list "$fe/vbd" | head -n 1)
vif=$(xenstore-list "$fe/vif" | head -n 1)
# Show the whole handshake once, for you (lines without = are not answers).
xenstore-ls -f "$fe" | sed 's/=/ is /'
# The front end's side: its state, the grant reference of the shared ring,
# the event channel it allocated for the back end to bind.
echo "domid=$domid"
echo "vbd_state=$(xenstore-read "$fe/vbd/$vbd/state")"
echo "vbd_ring_ref=$(xenstore-read "$fe/vbd/$vbd/ring-ref")"
echo "vbd_event_channel=$(xenstore-read "$fe/vbd/$vbd/event-channel")"
# The back end's side, in dom0's part of the store (the front end's
# "backend" key names the directory).
echo "vbd_backend_state=$(xenstore-read "/local/domain/0/backend/vbd/$domid/$vbd/state")"
echo "vif_state=$(xenstore-read "$fe/vif/$vif/state")"
echo "vif_tx_ring_ref=$(xenstore-read "$fe/vif/$vif/tx-ring-ref")"
echo "vif_backend_state=$(xenstore-read "/local/domain/0/backend/vif/$domid/$vif/state")"
