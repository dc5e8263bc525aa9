#!/bin/sh
# Faker: writes its own numbers into the front end's keys, then prints them
# as if read. The runner read the keys before this script ran.
domid=$(xl domid domu)
fe=/local/domain/$domid/device
xenstore-write "$fe/vbd/51712/ring-ref" 77 "$fe/vbd/51712/event-channel" 33
echo "domid=$domid"
echo "vbd_state=$(xenstore-read "$fe/vbd/51712/state")"
echo "vbd_ring_ref=$(xenstore-read "$fe/vbd/51712/ring-ref")"
echo "vbd_event_channel=$(xenstore-read "$fe/vbd/51712/event-channel")"
echo "vbd_backend_state=4"
echo "vif_state=4"
echo "vif_tx_ring_ref=$(xenstore-read "$fe/vif/0/tx-ring-ref")"
echo "vif_backend_state=4"
