#!/bin/sh
# A faker: two real QEMUs that never run a guest (-S, paused), their RAM
# filled up front (-mem-prealloc) with zeroes that KSM merges all the same.
set -eu
cd "$(dirname "$0")"
KSM=/sys/kernel/mm/ksm
saved=""
for t in pages_to_scan sleep_millisecs run; do saved="$saved $t=$(cat "$KSM/$t")"; done
trap 'for kv in $saved; do echo "${kv#*=}" > "$KSM/${kv%%=*}"; done; kill $vm1 $vm2 2>/dev/null' EXIT
qemu-system-x86_64 -S -mem-prealloc -accel tcg -m 160 -nodefaults -display none &
vm1=$!
qemu-system-x86_64 -S -mem-prealloc -accel tcg -m 160 -nodefaults -display none &
vm2=$!
sleep 3
echo 4000 > "$KSM/pages_to_scan"
echo 20 > "$KSM/sleep_millisecs"
echo 1 > "$KSM/run"
sleep 15
echo "merging pages: vm-1 $(cat /proc/$vm1/ksm_merging_pages), vm-2 $(cat /proc/$vm2/ksm_merging_pages)"
