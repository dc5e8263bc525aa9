#!/bin/sh
# Runs the OCI bundle made of ./config.json and ./rootfs with runc.
#
# You do not need to change this file. It copies config.json into a fresh
# bundle directory for this run, with two substitutions: @VLAB_NONCE@ becomes
# this check's nonce (put "VLAB_NONCE=@VLAB_NONCE@" in process.env so the
# probe carries it), and root.path "rootfs" becomes this directory's rootfs
# (runc wants an absolute path there when the bundle is elsewhere). runc keeps
# its state in $VLAB_RUNC_ROOT, a private directory the runner cleans up
# with `runc delete --force` after every check.
set -eu
cd "$(dirname "$0")"
: "${VLAB_NONCE:=manual}"
: "${VLAB_SCRATCH:=$(mktemp -d)}"
: "${VLAB_RUNC_ROOT:=$VLAB_SCRATCH/runc}"
bundle="$VLAB_SCRATCH/bundle"
mkdir -p "$bundle"
sed -e "s/@VLAB_NONCE@/$VLAB_NONCE/" \
    -e "s#\"path\":[[:space:]]*\"rootfs\"#\"path\": \"$PWD/rootfs\"#" \
    config.json > "$bundle/config.json"
exec runc --root "$VLAB_RUNC_ROOT" run --bundle "$bundle" "vlab-$VLAB_NONCE"
