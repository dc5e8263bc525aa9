#!/bin/sh
# A faker: makes the groups and puts a sleeping shell in each, printing
# plausible per-instance numbers, without any container or guest.
set -u
case "$1" in
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
