//! `vlab setup`: install the host packages the labs need, from the
//! distribution's own repositories. Idempotent: nothing to do, nothing done.

use std::time::Duration;

use anyhow::{Context, bail};

use crate::host::Capabilities;
use crate::host::uml::Mode;
use crate::proc::Cmd;

pub(crate) enum Plan {
    Nothing,
    Install(Vec<String>),
}

pub(crate) fn plan(caps: &Capabilities) -> Plan {
    let pkgs = caps.missing_packages();
    if pkgs.is_empty() { Plan::Nothing } else { Plan::Install(pkgs) }
}

pub(crate) fn apt_command(pkgs: &[String]) -> String {
    format!("apt-get install -y --no-install-recommends {}", pkgs.join(" "))
}

/// Installs `pkgs` with apt-get (root only); output goes to the terminal.
pub(crate) fn install(pkgs: &[String], root: bool) -> anyhow::Result<()> {
    if !root {
        bail!(
            "installing packages needs root; run `sudo vlab setup`, or yourself: sudo apt-get update && sudo {}",
            apt_command(pkgs)
        );
    }
    let apt = |args: &[&str]| {
        Cmd::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .timeout(Duration::from_secs(1800))
            .inherit_output()
            .run()
    };
    let update = apt(&["update", "-q"])?;
    if !update.success() {
        bail!("`apt-get update` {}; check the package sources in /etc/apt and try again", update.describe_end());
    }
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(pkgs.iter().map(String::as_str));
    let out = apt(&args)?;
    if !out.success() {
        bail!("`{}` {}; see apt's messages above", apt_command(pkgs), out.describe_end());
    }
    Ok(())
}

/// Fetches the guest kernels (the current Debian cloud kernel, and the generic
/// one for emulated NICs), builds their initramfs images and fetches the
/// aarch64 busybox, so the guest labs are ready. First makes sure a UML
/// kernel boots here in both of its modes (fetching a newer Debian suite's
/// into the cache where the host's cannot).
/// As root, refreshes apt's package lists once if the kernel is unknown.
pub(crate) fn guest_assets(root: bool) -> anyhow::Result<()> {
    let uml = crate::host::uml::provide().context("User-Mode-Linux is not ready")?;
    let modes: Vec<&str> =
        [Mode::Ptrace, Mode::Seccomp].into_iter().filter(|m| uml.boots(*m)).map(Mode::name).collect();
    eprintln!(
        "UML ready: {} {} ({}) boots in {} mode",
        uml.origin,
        uml.version,
        uml.program.display(),
        modes.join(" and ")
    );
    let assets = match crate::guest::assets::refresh() {
        Ok(a) => a,
        Err(_) if root => {
            let update = Cmd::new("apt-get")
                .args(["update", "-q"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .timeout(Duration::from_secs(900))
                .inherit_output()
                .run()?;
            if !update.success() {
                bail!("`apt-get update` {}; check the package sources in /etc/apt", update.describe_end());
            }
            crate::guest::assets::refresh()?
        }
        Err(e) => return Err(e),
    };
    let generic = crate::guest::assets::generic(true)?;
    let busybox = crate::guest::assets::arm64_busybox()?;
    let xen = crate::guest::xen::refresh()?;
    let domu = crate::guest::xen::domu::ensure()?;
    eprintln!(
        "guest assets ready: kernel {} (sha256 {}; {}), initramfs {}, generic kernel {} with initramfs {}, aarch64 busybox {}, Xen {} (dom0 image with its toolstack {})",
        assets.kernel.release,
        &assets.kernel.sha256[..16],
        match &assets.kernel.vmlinux {
            Some(_) => "unpacked for a direct PVH boot".to_string(),
            None => format!(
                "boots as a bzImage: {}",
                assets.kernel.vmlinux_unavailable.as_deref().unwrap_or("not unpacked")
            ),
        },
        assets.initrd.display(),
        generic.kernel.release,
        generic.initrd.display(),
        busybox.display(),
        xen.display(),
        domu.dom0_image.display()
    );
    Ok(())
}
