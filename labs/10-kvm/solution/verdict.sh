#!/bin/sh
# What KVM does this machine have, and why is it fast or not?
# Usage: vlab kvm verdict -- sh verdict.sh
#   (the check runs exactly that; the runner then measures KVM itself, as
#   `vlab doctor` does, and compares)
set -eu
RESULTS=${VLAB_RESULTS:-results.txt}
echo "nonce=${VLAB_NONCE:-none}" > "$RESULTS"

present=no
[ -e /dev/kvm ] && present=yes

module=none
for m in kvm_intel kvm_amd kvm_pvm; do
    if [ -d "/sys/module/$m" ]; then module=$m; break; fi
done

cpu_virt=no
grep -qw -e vmx -e svm /proc/cpuinfo && cpu_virt=yes

# Hardware guest mode needs the CPU's extension and the module that drives it;
# anything else behind /dev/kvm (kvm_pvm: PVM runs the guest deprivileged,
# with shadow paging, and emulates an unmodified guest's real-mode and kernel
# code) is not hardware guest mode.
fast=no
case "$present/$cpu_virt/$module" in
    yes/yes/kvm_intel | yes/yes/kvm_amd) fast=yes ;;
esac

{
    echo "present=$present"
    echo "module=$module"
    echo "cpu_virt=$cpu_virt"
    echo "fast=$fast"
} >> "$RESULTS"
cat "$RESULTS"
