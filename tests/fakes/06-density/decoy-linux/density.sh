#!/bin/sh
# A faker: no UML at all, but in each group uml-N a process whose argv[0] is
# `linux` (bash's exec -a) and a buffer of 8 MiB, so the memory charged looks
# like a booted guest. The runner names programs by /proc/PID/exe.
set -u
case "$1" in
    uml) ;;
    *) echo "this faker only fakes the uml step" >&2; exit 2 ;;
esac
for i in 1 2 3; do
    g="$VLAB_CGROUP_MEMORY/uml-$i"; mkdir -p "$g"
    sh -c 'echo $$ > "$1/cgroup.procs"
           bash -c "exec -a linux sleep 2" &
           head -c 8388608 /dev/zero | tail -c 8388608 > /dev/null
           wait' sh "$g" &
done
wait
