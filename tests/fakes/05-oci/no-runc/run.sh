#!/bin/sh
# A faker: prints what the container would report and runs the probe on the
# host, without runc.
cd "$(dirname "$0")"
echo "hostname=vlab-oci root=ro CapEff=0000000000000400 memory.limit=67108864"
exec rootfs/.vlab/vlab-probe
