//! Guest assets, fetched from the distribution and cached: the guest kernel
//! (Debian's linux-image-*-cloud-amd64, or Ubuntu's kvm or virtual kernel
//! where there is no cloud one; unpacked, never installed; or the kernel
//! named by VLAB_GUEST_KERNEL), the driver modules it needs, the runner's
//! initramfs, and an aarch64 busybox for the cross-architecture lab.
//! A second flavour, the distribution's generic kernel, is fetched the same
//! way for labs that need emulated NICs (e1000, rtl8139): the cloud kernel has
//! no drivers for them.
//!
//! Cache layout under $XDG_CACHE_HOME/vlab (or ~/.cache/vlab):
//!   kernel/<package>_<version>/   vmlinuz, config, modules/*.ko (plain), kernel.json,
//!                                  vmlinux (unpacked for a direct boot) or vmlinux.none (why not)
//!   kernel/current, current-generic   the directory name last fetched per flavour
//!   initramfs/<sha256>.img         content-addressed by everything put in it
//!   arm64/busybox                  from busybox-static:arm64

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::files::sha256_hex;
use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::{elf, initramfs, modules, vmlinux};
use crate::cleanup::Scratch;
use crate::proc::Cmd;

/// Which Debian kernel a guest boots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavour {
    /// linux-image-*-cloud-amd64: small, virtio and IDE only; boots fastest.
    Cloud,
    /// linux-image-*-amd64: also ships the drivers of emulated NICs.
    Generic,
}

impl Flavour {
    /// Meta-packages that depend on the current kernel of this flavour, by
    /// preference: Debian's, then Ubuntu's.
    pub(crate) fn meta_packages(self) -> &'static [&'static str] {
        match self {
            Flavour::Cloud => &["linux-image-cloud-amd64", "linux-image-kvm", "linux-image-virtual"],
            Flavour::Generic => &["linux-image-amd64", "linux-image-generic"],
        }
    }

    /// The file under kernel/ naming the directory last fetched.
    fn current_file(self) -> &'static str {
        match self {
            Flavour::Cloud => "current",
            Flavour::Generic => "current-generic",
        }
    }
}

/// Environment variable naming a kernel (bzImage) to use instead of Debian's.
pub const KERNEL_ENV: &str = "VLAB_GUEST_KERNEL";

/// Drivers the probe init loads when their devices are present (misc: always), by group:
/// (group, kernel config symbol, module name).
const DRIVERS: &[(&str, &str, &str)] = &[
    ("virtio", "VIRTIO_PCI", "virtio_pci"),
    ("virtio", "VIRTIO_BLK", "virtio_blk"),
    ("virtio", "VIRTIO_NET", "virtio_net"),
    ("virtio", "SCSI_VIRTIO", "virtio_scsi"),
    ("virtio", "BLK_DEV_SD", "sd_mod"),
    ("virtio", "VIRTIO_BALLOON", "virtio_balloon"),
    ("ata", "ATA_PIIX", "ata_piix"),
    ("ata", "BLK_DEV_SD", "sd_mod"),
    ("nic", "E1000", "e1000"),
    ("nic", "8139TOO", "8139too"),
    ("nic", "8139CP", "8139cp"),
    ("nic", "NE2K_PCI", "ne2k_pci"),
    ("misc", "X86_CPUID", "cpuid"),
];

/// Bumped when what a kernel directory holds changes, so older ones are
/// rebuilt: 2 unpacks compressed modules (Debian 13's caches held none).
const KERNEL_FORMAT: u32 = 2;

/// The guest kernel, as cached.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kernel {
    /// KERNEL_FORMAT of the runner that cached it (0: before there was one).
    #[serde(default)]
    pub(crate) format: u32,
    /// Where it came from: `debian:<package> <version>` or `file:<path>`.
    pub source: String,
    /// What `uname -r` says in the guest.
    pub release: String,
    pub sha256: String,
    /// Driver module name → `built-in`, `module` or `absent` in this kernel.
    pub drivers: BTreeMap<String, String>,
    /// Group → modules in load order (dependencies first), shipped in the initramfs.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The directory holding `vmlinuz` and `modules/` (filled on load).
    #[serde(skip)]
    pub(crate) dir: PathBuf,
    /// The uncompressed kernel the launcher boots directly (PVH), when it could be unpacked.
    #[serde(skip_deserializing)]
    pub vmlinux: Option<PathBuf>,
    /// Why there is no `vmlinux` (the launcher then boots the bzImage).
    #[serde(skip_deserializing, skip_serializing_if = "Option::is_none")]
    pub vmlinux_unavailable: Option<String>,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// What the launcher boots: the unpacked vmlinux when there is one, else the bzImage.
    pub fn boot_image(&self) -> PathBuf {
        self.vmlinux.clone().unwrap_or_else(|| self.vmlinuz())
    }

    pub fn module_path(&self, name: &str) -> PathBuf {
        self.modules().module_path(name)
    }

    /// What the runner's initramfs takes from this kernel.
    pub(crate) fn modules(&self) -> initramfs::KernelModules<'_> {
        initramfs::KernelModules { sha256: &self.sha256, dir: &self.dir, groups: &self.groups }
    }
}

/// Everything a guest boot needs.
#[derive(Debug, Clone, Serialize)]
pub struct GuestAssets {
    pub kernel: Kernel,
    pub initrd: PathBuf,
    pub initrd_sha256: String,
}

/// $XDG_CACHE_HOME/vlab, or ~/.cache/vlab.
pub(crate) fn cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("vlab")
}

/// The kernel and the runner's initramfs, fetched and built once, then
/// cached. Offline once cached: the Debian kernel last fetched is reused
/// without asking apt (`refresh` looks for a newer one).
pub fn ensure() -> anyhow::Result<GuestAssets> {
    assets(Flavour::Cloud, false)
}

/// Like `ensure`, but asks apt for the current kernel package first (`vlab setup`).
pub(crate) fn refresh() -> anyhow::Result<GuestAssets> {
    assets(Flavour::Cloud, true)
}

/// The generic kernel (emulated NIC drivers) and its initramfs, like `ensure`;
/// `refresh` asks apt for the current package first. VLAB_GUEST_KERNEL, when
/// set, replaces this flavour too.
pub fn generic(refresh: bool) -> anyhow::Result<GuestAssets> {
    assets(Flavour::Generic, refresh)
}

fn assets(flavour: Flavour, refresh: bool) -> anyhow::Result<GuestAssets> {
    let cache = cache_dir();
    let _lock = Lock::take(&cache)?;
    let current = cache.join("kernel").join(flavour.current_file());
    let cached = || load_cached(&cache.join("kernel").join(std::fs::read_to_string(&current).ok()?.trim()));
    let mut kernel = match std::env::var_os(KERNEL_ENV).filter(|v| !v.is_empty()) {
        Some(path) => named_kernel(&cache, Path::new(&path))?,
        None => match cached().filter(|_| !refresh) {
            Some(k) => k,
            None => {
                let k = debian_kernel(&cache, flavour)?;
                let name = k.dir.file_name().unwrap_or_default().to_string_lossy().into_owned();
                std::fs::write(&current, name)?;
                k
            }
        },
    };
    direct_boot(&mut kernel);
    let (initrd, initrd_sha256) = initramfs::ensure(&cache.join("initramfs"), &kernel.modules())?;
    Ok(GuestAssets { kernel, initrd, initrd_sha256 })
}

/// Unpacks the kernel's vmlinux next to its bzImage, once. A kernel that
/// cannot boot directly keeps its reason in `vmlinux.none`, so later runs
/// neither retry nor fail: the launcher boots the bzImage instead.
fn direct_boot(k: &mut Kernel) {
    let (target, none) = (k.dir.join("vmlinux"), k.dir.join("vmlinux.none"));
    if target.is_file() {
        k.vmlinux = Some(target);
        return;
    }
    if let Ok(why) = std::fs::read_to_string(&none) {
        k.vmlinux_unavailable = Some(why);
        return;
    }
    let unpacked = with_progress("unpacking the kernel for a direct boot".into(), || {
        let bzimage = std::fs::read(k.vmlinuz())?;
        Ok(vmlinux::extract(&bzimage))
    });
    match unpacked {
        Ok(Ok(elf)) => match crate::files::write_atomic(&target, &elf) {
            Ok(()) => k.vmlinux = Some(target),
            Err(e) => k.vmlinux_unavailable = Some(format!("{e:#}")),
        },
        Ok(Err(why)) => {
            let _ = std::fs::write(&none, &why);
            k.vmlinux_unavailable = Some(why);
        }
        Err(e) => k.vmlinux_unavailable = Some(format!("{e:#}")),
    }
}

/// Serialises cache writers across vlab processes (parallel checks, tests).
pub(super) struct Lock {
    _file: std::fs::File,
}

impl Lock {
    pub(super) fn take(cache: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(cache).with_context(|| format!("cannot create the cache {}", cache.display()))?;
        let file = std::fs::File::create(cache.join(".lock"))?;
        // SAFETY: the descriptor is open and owned by `file`, which the lock keeps; the result is checked.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("cannot lock {}: {}", cache.display(), std::io::Error::last_os_error());
        }
        Ok(Lock { _file: file })
    }
}

/// A spinner on stderr while `f` runs; nothing when stderr is not a terminal.
pub(super) fn with_progress<T>(msg: String, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    let target = if std::io::stderr().is_terminal() {
        indicatif::ProgressDrawTarget::stderr()
    } else {
        indicatif::ProgressDrawTarget::hidden()
    };
    let bar = indicatif::ProgressBar::with_draw_target(None, target);
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"));
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(120));
    let out = f();
    bar.finish_and_clear();
    out
}

pub(super) fn apt(tool: &str, args: &[&str], dir: Option<&Path>) -> anyhow::Result<crate::proc::Output> {
    let mut cmd = Cmd::new(tool).args(args).env("DEBIAN_FRONTEND", "noninteractive").timeout(Duration::from_secs(900));
    if let Some(d) = dir {
        cmd = cmd.dir(d);
    }
    cmd.run().map_err(|e| match e {
        crate::proc::ProcError::NotFound { .. } => anyhow::anyhow!(
            "`{tool}` is not available, so the guest kernel cannot be fetched from Debian; \
             on another distribution name a kernel image with {KERNEL_ENV}=/path/to/vmlinuz"
        ),
        other => other.into(),
    })
}

/// Options that let an unprivileged `apt-get download` run without apt's sandbox warning.
fn sandbox_opts() -> Vec<&'static str> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 { vec!["-o", "APT::Sandbox::User=root"] } else { Vec::new() }
}

/// The packages named on `Depends:` lines of `apt-cache depends` output that start with `prefix`.
fn depends_on(apt_cache_depends: &str, prefix: &str) -> Vec<String> {
    apt_cache_depends
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(str::trim)
        .filter(|p| p.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// The kernel package of this flavour apt would install now, with its
/// version and the packages holding its modules (Ubuntu's linux-modules-*;
/// none on Debian, whose image package holds them).
fn current_kernel_package(flavour: Flavour) -> anyhow::Result<(String, String, Vec<String>)> {
    let metas = flavour.meta_packages();
    let mut found = None;
    for meta in metas {
        let deps = apt("apt-cache", &["depends", "--important", meta], None)?;
        if let Some(pkg) = depends_on(&deps.stdout, "linux-image-").into_iter().next() {
            found = Some(pkg);
            break;
        }
    }
    let Some(pkg) = found else {
        bail!(
            "apt knows none of {}: refresh the package lists with `apt-get update` \
             (as root; `vlab setup` does it), or name a kernel with {KERNEL_ENV}=/path/to/vmlinuz",
            metas.join(", ")
        );
    };
    let show = apt("apt-cache", &["show", "--no-all-versions", &pkg], None)?;
    let version = show
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("`apt-cache show {pkg}` gave no version; run `apt-get update` and try again"))?;
    let deps = apt("apt-cache", &["depends", "--important", &pkg], None)?;
    Ok((pkg, version, depends_on(&deps.stdout, "linux-modules-")))
}

/// Downloads `pkg` with apt-get into `dir`; returns the .deb's path.
pub(super) fn download(pkg: &str, dir: &Path, extra: &[&str]) -> anyhow::Result<PathBuf> {
    Ok(download_all(&[pkg], dir, extra)?.remove(0))
}

/// Downloads `pkgs` with one apt-get call into `dir` (empty before); returns the .debs.
pub(super) fn download_all(pkgs: &[&str], dir: &Path, extra: &[&str]) -> anyhow::Result<Vec<PathBuf>> {
    let mut args = sandbox_opts();
    args.extend_from_slice(extra);
    args.push("download");
    args.extend_from_slice(pkgs);
    let what = pkgs.join(" ");
    let out = with_progress(format!("downloading {what}"), || apt("apt-get", &args, Some(dir)))?;
    if !out.success() {
        bail!(
            "`apt-get download {what}` {}: {}; check the package sources (`apt-get update` as root) and the network to the Debian mirror",
            out.describe_end(),
            out.stderr.trim()
        );
    }
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort();
    anyhow::ensure!(!debs.is_empty(), "`apt-get download {what}` succeeded but left no .deb in {}", dir.display());
    Ok(debs)
}

pub(super) fn unpack(deb: &Path, into: &Path) -> anyhow::Result<()> {
    let name = deb.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let out = with_progress(format!("unpacking {name}"), || {
        Ok(Cmd::new("dpkg-deb").arg("-x").arg(deb).arg(into).timeout(Duration::from_secs(600)).run()?)
    })?;
    if !out.success() {
        bail!("`dpkg-deb -x {name}` {}: {}", out.describe_end(), out.stderr.trim());
    }
    Ok(())
}

fn load_cached(dir: &Path) -> Option<Kernel> {
    let text = std::fs::read_to_string(dir.join("kernel.json")).ok()?;
    let mut k: Kernel = serde_json::from_str(&text).ok()?;
    k.dir = dir.to_path_buf();
    // A driver added to DRIVERS rebuilds the cache once, without a format bump
    // (which runners of other formats sharing the cache would undo).
    let every_driver = DRIVERS.iter().all(|(_, _, m)| k.drivers.contains_key(*m));
    (k.format == KERNEL_FORMAT && every_driver && k.vmlinuz().is_file()).then_some(k)
}

fn debian_kernel(cache: &Path, flavour: Flavour) -> anyhow::Result<Kernel> {
    let (pkg, version, module_pkgs) = current_kernel_package(flavour)?;
    let dir = cache.join("kernel").join(format!("{pkg}_{version}").replace(['/', ':'], "_"));
    if let Some(k) = load_cached(&dir) {
        return Ok(k);
    }
    let work = Scratch::new_in(cache, "fetch-")?;
    let spec = format!("{pkg}={version}");
    let mut pkgs = vec![spec.as_str()];
    pkgs.extend(module_pkgs.iter().map(String::as_str));
    let root = work.path().join("root");
    for deb in download_all(&pkgs, work.path(), &[])? {
        unpack(&deb, &root)?;
    }
    let boot = root.join("boot");
    let find = |prefix: &str| -> anyhow::Result<PathBuf> {
        std::fs::read_dir(&boot)
            .with_context(|| format!("{pkg} has no /boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(prefix)))
            .with_context(|| format!("{pkg} has no /boot/{prefix}*"))
    };
    let vmlinuz = find("vmlinuz-")?;
    let release = vmlinuz.file_name().unwrap_or_default().to_string_lossy().trim_start_matches("vmlinuz-").to_string();
    let config = std::fs::read_to_string(find("config-")?)?;
    let modules = modules::dir(&root, &release);
    let source = format!("debian:{pkg} {version}");
    build_kernel_dir(&dir, &source, &release, &vmlinuz, &config, modules.as_deref(), work.path())
}

/// A kernel the user named: its release from the bzImage header, its config
/// and modules from /boot and /lib/modules when the host has them.
fn named_kernel(cache: &Path, path: &Path) -> anyhow::Result<Kernel> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("{KERNEL_ENV}={}: cannot read the kernel image", path.display()))?;
    let release = bzimage_release(&bytes).with_context(|| {
        format!("{KERNEL_ENV}={}: not an x86 bzImage (no HdrS header); name a vmlinuz file", path.display())
    })?;
    let sha = sha256_hex(&bytes);
    let dir = cache.join("kernel").join(format!("file-{}", &sha[..16]));
    if let Some(k) = load_cached(&dir) {
        return Ok(k);
    }
    let config = std::fs::read_to_string(format!("/boot/config-{release}")).unwrap_or_default();
    let modules = modules::dir(Path::new("/"), &release);
    let work = Scratch::new_in(cache, "fetch-")?;
    build_kernel_dir(
        &dir,
        &format!("file:{}", path.display()),
        &release,
        path,
        &config,
        modules.as_deref(),
        work.path(),
    )
}

/// The kernel version string in a bzImage's setup header.
pub(crate) fn bzimage_release(bytes: &[u8]) -> Option<String> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let at = u16::from_le_bytes(bytes.get(0x20E..0x210)?.try_into().ok()?) as usize + 0x200;
    let raw = bytes.get(at..at + 256)?;
    let text = String::from_utf8_lossy(&raw[..raw.iter().position(|c| *c == 0)?]).into_owned();
    text.split_whitespace().next().map(str::to_string)
}

/// `CONFIG_X=y|m` lines as symbol → value.
fn parse_config(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("CONFIG_")?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Copies the kernel and the modules the probe needs (with their
/// dependencies) into `dir`, atomically.
fn build_kernel_dir(
    dir: &Path,
    source: &str,
    release: &str,
    vmlinuz: &Path,
    config: &str,
    modules_root: Option<&Path>,
    work: &Path,
) -> anyhow::Result<Kernel> {
    let staged = work.join("kernel");
    std::fs::create_dir_all(staged.join("modules"))?;
    std::fs::copy(vmlinuz, staged.join("vmlinuz"))
        .with_context(|| format!("cannot copy {} into the cache", vmlinuz.display()))?;
    std::fs::write(staged.join("config"), config)?;
    let config = parse_config(config);
    let files = modules_root.map(modules::index).unwrap_or_default();
    let mut drivers = BTreeMap::new();
    let mut loaded: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
    for (group, symbol, module) in DRIVERS {
        let state = match config.get(*symbol).map(String::as_str) {
            Some("y") => "built-in",
            Some("m") if files.contains_key(*module) => "module",
            Some("m") => bail!(
                "kernel {release} ({source}) builds {module} as a module (CONFIG_{symbol}=m), but {}: guests \
                 would boot without its devices. Install the kernel's modules, or name a kernel that has them \
                 with {KERNEL_ENV}=/path/to/vmlinuz",
                match modules_root {
                    Some(d) => format!("{} holds no {module}.ko, .ko.xz or .ko.zst", d.display()),
                    None => format!("there is no lib/modules/{release} or usr/lib/modules/{release}"),
                }
            ),
            _ if config.is_empty() && files.contains_key(*module) => "module",
            _ => "absent",
        };
        drivers.insert(module.to_string(), state.to_string());
        if state == "module" {
            modules::add_with_deps(module, &files, loaded.entry(group.to_string()).or_default(), 0)?;
        }
    }
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (group, modules) in loaded {
        for (name, bytes) in &modules {
            std::fs::write(staged.join("modules").join(format!("{name}.ko")), bytes)?;
        }
        groups.insert(group, modules.into_iter().map(|(name, _)| name).collect());
    }
    let kernel = Kernel {
        format: KERNEL_FORMAT,
        source: source.to_string(),
        release: release.to_string(),
        sha256: sha256_hex(&std::fs::read(staged.join("vmlinuz"))?),
        drivers,
        groups,
        dir: dir.to_path_buf(),
        vmlinux: None,
        vmlinux_unavailable: None,
    };
    std::fs::write(staged.join("kernel.json"), serde_json::to_string_pretty(&kernel)?)?;
    std::fs::create_dir_all(dir.parent().unwrap_or(dir))?;
    let _ = std::fs::remove_dir_all(dir);
    std::fs::rename(&staged, dir).with_context(|| format!("cannot move the kernel into {}", dir.display()))?;
    Ok(kernel)
}

/// An aarch64 static busybox from Debian's busybox-static:arm64, fetched with
/// apt-get into a private package index (the host's apt setup is untouched).
pub(crate) fn arm64_busybox() -> anyhow::Result<PathBuf> {
    let cache = cache_dir();
    let _lock = Lock::take(&cache)?;
    let target = cache.join("arm64").join("busybox");
    if std::fs::read(&target).ok().and_then(|b| elf::machine(&b)) == Some(elf::EM_AARCH64) {
        return Ok(target);
    }
    let work = Scratch::new_in(&cache, "fetch-")?;
    let lists = work.path().join("lists");
    let apt_cache = work.path().join("cache");
    for d in [lists.join("partial"), apt_cache.join("archives/partial")] {
        std::fs::create_dir_all(d)?;
    }
    let opts: Vec<String> = [
        "APT::Architecture=arm64".to_string(),
        "APT::Architectures::=arm64".to_string(),
        format!("Dir::State::Lists={}", lists.display()),
        format!("Dir::Cache={}", apt_cache.display()),
        "Dir::State::status=/dev/null".to_string(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect();
    let opts: Vec<&str> = opts.iter().map(String::as_str).collect();
    let mut update = sandbox_opts();
    update.extend_from_slice(&opts);
    update.extend(["-q", "update"]);
    let out = with_progress("fetching the arm64 package index".into(), || apt("apt-get", &update, None))?;
    if !out.success() {
        bail!(
            "`apt-get update` for arm64 {}: {}; check the Debian sources in /etc/apt",
            out.describe_end(),
            out.stderr.trim()
        );
    }
    let deb = download("busybox-static", work.path(), &opts)?;
    let root = work.path().join("root");
    unpack(&deb, &root)?;
    let bin = find_aarch64_busybox(&root).with_context(|| {
        format!("{} holds no aarch64 ELF file named busybox; the package layout changed", deb.display())
    })?;
    std::fs::create_dir_all(target.parent().unwrap_or(&cache))?;
    let staged = work.path().join("busybox");
    std::fs::copy(&bin, &staged)?;
    std::fs::rename(&staged, &target)?;
    Ok(target)
}

/// The aarch64 ELF file named `busybox` anywhere under `root` (Debian 12
/// ships bin/busybox, Debian 13 usr/bin/busybox).
fn find_aarch64_busybox(root: &Path) -> Option<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(kind) = e.file_type() else { continue };
            if kind.is_dir() {
                dirs.push(e.path());
            } else if kind.is_file()
                && e.file_name() == "busybox"
                && std::fs::read(e.path()).ok().and_then(|b| elf::machine(&b)) == Some(elf::EM_AARCH64)
            {
                return Some(e.path());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf_for(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 64];
        b[..6].copy_from_slice(b"\x7fELF\x02\x01");
        b[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        b
    }

    #[test]
    fn busybox_is_found_wherever_the_package_puts_it() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/share/initramfs-tools/hooks")).unwrap();
        std::fs::write(root.join("usr/share/initramfs-tools/hooks/busybox"), "#!/bin/sh\n").unwrap();
        assert_eq!(find_aarch64_busybox(root), None);
        std::fs::write(root.join("usr/bin/busybox"), elf_for(elf::EM_X86_64)).unwrap();
        assert_eq!(find_aarch64_busybox(root), None, "an x86-64 busybox is not the one");
        std::fs::write(root.join("usr/bin/busybox"), elf_for(elf::EM_AARCH64)).unwrap();
        assert_eq!(find_aarch64_busybox(root), Some(root.join("usr/bin/busybox")));
    }

    #[test]
    fn kernel_packages_come_from_depends_lines() {
        let debian = "linux-image-cloud-amd64\n  Depends: linux-image-6.12.117+deb13-cloud-amd64\n";
        assert_eq!(depends_on(debian, "linux-image-"), ["linux-image-6.12.117+deb13-cloud-amd64"]);
        let ubuntu = "linux-image-6.8.0-45-generic\n  PreDepends: debconf\n  Depends: linux-base\n  \
                      Depends: linux-modules-6.8.0-45-generic\n  Depends: <linux-initramfs-tool>\n";
        assert_eq!(depends_on(ubuntu, "linux-modules-"), ["linux-modules-6.8.0-45-generic"]);
        assert!(depends_on(debian, "linux-modules-").is_empty());
        assert_eq!(Flavour::Cloud.meta_packages()[0], "linux-image-cloud-amd64");
    }

    #[test]
    fn a_module_the_config_asks_for_must_be_there() {
        let tmp = tempfile::tempdir().unwrap();
        let vmlinuz = tmp.path().join("vmlinuz");
        std::fs::write(&vmlinuz, b"kernel").unwrap();
        let empty = tmp.path().join("modules");
        std::fs::create_dir(&empty).unwrap();
        let config = "CONFIG_VIRTIO_BLK=m\n";
        let dir = tmp.path().join("cached");
        let err = build_kernel_dir(&dir, "test", "6.12", &vmlinuz, config, Some(&empty), tmp.path()).unwrap_err();
        assert!(err.to_string().contains("virtio_blk") && err.to_string().contains("CONFIG_VIRTIO_BLK=m"), "{err}");
        let err = build_kernel_dir(&dir, "test", "6.12", &vmlinuz, config, None, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("no lib/modules/6.12"), "{err}");
        let k = build_kernel_dir(&dir, "test", "6.12", &vmlinuz, "CONFIG_VIRTIO_BLK=y\n", None, tmp.path()).unwrap();
        assert_eq!(k.drivers["virtio_blk"], "built-in");
        assert!(load_cached(&dir).is_some());
        let mut old: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
        old.as_object_mut().unwrap().remove("format");
        std::fs::write(dir.join("kernel.json"), old.to_string()).unwrap();
        assert!(load_cached(&dir).is_none(), "a cache from before KERNEL_FORMAT is rebuilt");
    }

    #[test]
    fn config_symbols_are_read() {
        let c = parse_config("# comment\nCONFIG_VIRTIO_BLK=m\nCONFIG_SERIAL_8250=y\n# CONFIG_E1000 is not set\n");
        assert_eq!(c["VIRTIO_BLK"], "m");
        assert_eq!(c["SERIAL_8250"], "y");
        assert!(!c.contains_key("E1000"));
    }

    #[test]
    fn bzimage_release_reads_the_setup_header() {
        let mut img = vec![0u8; 0x400];
        img[0x202..0x206].copy_from_slice(b"HdrS");
        img[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        img[0x300..0x320].copy_from_slice(b"6.1.0-56-cloud-amd64 (debian)\0\0\0");
        assert_eq!(bzimage_release(&img).as_deref(), Some("6.1.0-56-cloud-amd64"));
        assert_eq!(bzimage_release(b"not a kernel"), None);
    }

    #[test]
    fn cache_dir_follows_xdg() {
        assert!(cache_dir().ends_with("vlab"));
    }
}
