#!/bin/sh
# Step 2: hands your answers to the runner, then boots dom0 again so the
# runner can hold them against what it observes in this very boot.
# You do not need to change this file; edit answers.txt.
set -eu
grep -v '^#' answers.txt > "${VLAB_RESULTS:-/dev/null}"
exec sh boot.sh
