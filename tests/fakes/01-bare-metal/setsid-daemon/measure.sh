#!/bin/sh
# A faker that tries to outlive its check: a daemon that leaves the session
# and process group, scrubs the runner's mark from its environment and
# double-forks, then keeps writing into the workspace (and could go on to
# rewrite results or serve a FIFO). It must be dead when `vlab check` returns.
# The script itself fails: the daemon, not a pass, is the point.
env -u VLAB_RUNNER_PID setsid sh -c '
    sh -c "echo \$\$ > daemon.pid; while :; do date +%s%N >> daemon.beat; sleep 0.05; done" &
    exit 0' &
while [ ! -s daemon.pid ]; do sleep 0.01; done
echo "left a daemon behind (pid $(cat daemon.pid))" >&2
exit 3
