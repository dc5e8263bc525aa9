//! What the runner builds into a lab's workspace (lab.toml `prepare`): done at
//! `vlab start` so the student can try things by hand, and again before every
//! check so a damaged or stale copy never decides a result. Idempotent.

use std::path::Path;

use anyhow::Context;

use crate::catalog::{Lab, Prepare};

/// Prepares everything `lab` asks for in `dir`, its workspace directory.
pub fn prepare(lab: &Lab, dir: &Path) -> anyhow::Result<()> {
    for item in &lab.prepare {
        match item {
            Prepare::BusyboxRootfs => busybox_rootfs(&dir.join("rootfs"))
                .with_context(|| format!("cannot prepare the busybox root filesystem in {}", dir.display()))?,
            Prepare::GuestAssets => crate::guest::prepare_assets(&dir.join("assets")).with_context(|| {
                format!("cannot prepare the guest kernel and initramfs in {}/assets", dir.display())
            })?,
            Prepare::GuestAssetsGeneric => {
                crate::guest::prepare_generic_assets(&dir.join("assets")).with_context(|| {
                    format!("cannot prepare the generic guest kernel and initramfs in {}/assets", dir.display())
                })?
            }
            Prepare::Arm64Busybox => crate::guest::prepare_arm64_busybox(&dir.join("assets"))
                .with_context(|| format!("cannot prepare the aarch64 busybox in {}/assets", dir.display()))?,
            Prepare::XenAssets => crate::guest::xen::prepare_assets(&dir.join("assets"))
                .with_context(|| format!("cannot prepare the Xen hypervisor in {}/assets", dir.display()))?,
            Prepare::XenDomuAssets => {
                crate::guest::xen::domu::ensure().context("cannot prepare Xen's toolstack for the domU step")?;
            }
            Prepare::UmlKernel => uml_kernel(&dir.join("bin"))
                .with_context(|| format!("cannot link the UML kernel into {}/bin", dir.display()))?,
        }
    }
    Ok(())
}

/// A minimal root: static busybox with a link per applet, empty mount points,
/// and `.vlab/` where observe checks place the probe.
pub(crate) fn busybox_rootfs(root: &Path) -> anyhow::Result<()> {
    let busybox = crate::host::tools::static_busybox()?;
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "root", "old-root", ".vlab"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let target = root.join("bin/busybox");
    if std::fs::read(&target).ok() != std::fs::read(&busybox).ok() {
        std::fs::copy(&busybox, &target)?;
    }
    for applet in crate::guest::initramfs::applets(&target)? {
        let link = root.join(applet);
        if link.symlink_metadata().is_err() {
            if let Some(parent) = link.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::os::unix::fs::symlink("/bin/busybox", &link)?;
        }
    }
    std::fs::write(root.join("etc/hostname"), "vlab\n")?;
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    // The same root boots User-Mode-Linux over hostfs (labs/07-uml): its init.
    crate::container::uml::place_init(root)?;
    crate::container::uml_count::place_count_init(root)?;
    Ok(())
}

/// Links the UML kernel the labs use (the host's, or the copy `vlab setup`
/// fetched where the host's cannot run) as `bin/linux`, for running by hand
/// with `PATH=$PWD/bin:$PATH`. Where none runs, there is no link: the UML
/// steps are skipped, and doctor says why.
pub(crate) fn uml_kernel(bin: &Path) -> anyhow::Result<()> {
    let link = bin.join("linux");
    if link.symlink_metadata().is_ok() {
        std::fs::remove_file(&link)?;
    }
    // Boot-tests a UML not tested yet (once per binary and host kernel).
    if let Some(kernel) = crate::host::uml::detect().best() {
        std::fs::create_dir_all(bin)?;
        std::os::unix::fs::symlink(&kernel.program, &link)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn busybox_rootfs_has_a_shell_and_is_idempotent() {
        if crate::host::tools::static_busybox().is_err() {
            crate::testing::skip("busybox-static is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        super::busybox_rootfs(dir.path()).unwrap();
        super::busybox_rootfs(dir.path()).unwrap();
        assert!(dir.path().join("bin/sh").symlink_metadata().is_ok());
        assert!(dir.path().join(".vlab").is_dir());
    }

    #[test]
    fn the_uml_link_leads_to_a_kernel_that_boots_or_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        super::uml_kernel(&bin).unwrap();
        super::uml_kernel(&bin).unwrap();
        let info = crate::host::uml::known();
        match std::fs::canonicalize(bin.join("linux")) {
            Ok(exe) => assert!(info.working_exes().contains(&exe), "{} is no UML that boots here", exe.display()),
            Err(_) => assert!(info.best().is_none(), "a UML boots here but was not linked"),
        }
    }
}
