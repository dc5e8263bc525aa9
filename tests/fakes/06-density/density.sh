#!/bin/sh
# A faker: makes the groups and puts a sleeping shell in each, printing
# plausible per-instance numbers, without any container or guest; for the
# guest steps, what the solution prints, and a report of its own making.
set -u
case "$1" in
    ksm)
        echo "merging pages: vm-1 17190, vm-2 17201; pages_sharing 41962, pages_shared 9120"
        exit 0 ;;
    balloon)
        printf 'VLAB-REPORT-BEGIN nonce=%s\nmeasure.balloon=ok\nmeasure.balloon_taken_kib=98304\nseal=none\nVLAB-REPORT-END nonce=%s\n' \
            "$VLAB_NONCE" "$VLAB_NONCE"
        exit 0 ;;
    containers) kind=container; n=5 ;;
    *) kind=uml; n=3 ;;
esac
i=1
while [ $i -le $n ]; do
    g="$VLAB_CGROUP_MEMORY/$kind-$i"; mkdir -p "$g"
    sh -c 'echo $$ > "$1/cgroup.procs"; exec sleep 2' sh "$g" &
    i=$((i + 1))
done
echo "density.${kind}_kib=1200 density.${kind}_start_ms=45"
wait
