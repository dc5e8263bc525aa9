//! The root a User-Mode-Linux kernel boots from: the busybox root of the
//! container labs, shared with UML over hostfs, plus the runner's init. The
//! init is the UML lab's probe: it reports, on the console, the nonce the
//! student passed on the kernel command line (`vlab.nonce=`), what the kernel
//! it runs under says about itself, and the same syscall and file I/O
//! measurements as the bare-metal lab, then powers the UML kernel off.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Path of the init inside the root.
pub(crate) const INIT_PATH: &str = ".vlab/uml-init";

/// The init. busybox's `date` has no `%N`, so it times with the 10 ms clock of
/// /proc/uptime and sizes its work to take well over that.
pub(crate) const INIT: &str = r#"#!/bin/sh
# vlab UML probe: placed by the runner, rewritten before every check.
mount -t proc proc /proc
nonce=$(sed -n 's/.*vlab\.nonce=\([^ ]*\).*/\1/p' /proc/cmdline)
now_us() { read up rest < /proc/uptime; echo "$up" | sed 's/\.//; s/^0*//; s/^$/0/; s/$/0000/'; }
n=10000
mib=8
syscall_us=0
io_us=0
# vlab.quick on the command line: report only (the density lab boots many).
if ! grep -q 'vlab\.quick' /proc/cmdline; then
    t0=$(now_us); dd if=/dev/zero of=/dev/null bs=1 count=$n 2>/dev/null; t1=$(now_us)
    syscall_us=$((t1 - t0))
    t0=$(now_us); dd if=/dev/zero of=/tmp/vlab-io.test bs=1048576 count=$mib conv=fsync 2>/dev/null; t1=$(now_us)
    rm -f /tmp/vlab-io.test
    io_us=$((t1 - t0))
fi
echo "VLAB-REPORT-BEGIN nonce=$nonce"
echo "kernel=$(uname -r)"
echo "machine=$(uname -m)"
echo "vendor_id=$(sed -n 's/^vendor_id[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
echo "rootfs=$(sed -n 's/^[^ ]* \/ \([^ ]*\) .*/\1/p' /proc/mounts | tail -n 1)"
echo "mem_kib=$(sed -n 's/^MemTotal:[[:space:]]*\([0-9]*\).*/\1/p' /proc/meminfo)"
echo "syscall_count=$((2 * n))"
echo "syscall_us=$syscall_us"
echo "io_bytes=$((mib * 1048576))"
echo "io_us=$io_us"
echo "VLAB-REPORT-END nonce=$nonce"
poweroff -f
"#;

/// Writes the init into the busybox root at `root` (every time: a changed
/// init never decides a result). Called by the busybox root's preparation.
pub(crate) fn place_init(root: &Path) -> std::io::Result<()> {
    let init = root.join(INIT_PATH);
    let _ = std::fs::remove_file(&init);
    std::fs::write(&init, INIT)?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_init_frames_its_report_with_the_nonce() {
        assert!(super::INIT.contains("VLAB-REPORT-BEGIN nonce=$nonce"));
        assert!(super::INIT.contains("VLAB-REPORT-END nonce=$nonce"));
        assert!(super::INIT.trim_end().ends_with("poweroff -f"));
    }
}
