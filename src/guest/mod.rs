//! Full-system guests: the cached assets (kernel, initramfs with the probe
//! init), and the launcher that boots them under QEMU and reads the probe's
//! report from the serial console (the boot check protocol, `boot`).

pub mod assets;
pub mod boot;
pub(crate) mod cpio;
mod decompress;
pub(crate) mod devcount;
pub mod elf;
pub(crate) mod emu;
pub(crate) mod initramfs;
pub(crate) mod memory;
mod modules;
pub(crate) mod qmp;
pub(crate) mod vmlinux;
pub mod xen;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::evidence::Freshness;
use crate::proc::Cmd;
pub use assets::GuestAssets;
use boot::BootObservation;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }
}

/// Kernel arguments every vlab guest gets: console on the first serial port,
/// a panic ends the VM at once (with QEMU's -no-reboot), and a quiet console
/// (every byte through the emulated UART is slow under TCG). The rest skip
/// work a throwaway probe guest never needs, each worth a tenth of a second
/// or more of emulated boot: speculation mitigations; the TSC and IO-APIC
/// timer checks; the crypto self-tests (kdf108 runs its own regardless, so it
/// is left out by name, as are the kprobe-event trace files); and rewriting
/// every LOCK prefix in the kernel text for a single CPU (`noreplace-smp`),
/// which under TCG flushes the translation cache once per site.
pub(crate) const BASE_CMDLINE: [&str; 9] = [
    "console=ttyS0",
    "panic=-1",
    "quiet",
    "mitigations=off",
    "tsc=reliable",
    "no_timer_check",
    "cryptomgr.notests",
    "initcall_blacklist=crypto_kdf108_init,init_kprobe_trace",
    "noreplace-smp",
];

/// qboot, QEMU's minimal firmware for booting Linux from fw_cfg: it skips what
/// SeaBIOS does for a disk boot (option ROMs, boot menu, device probing). Debian
/// ships it in qemu-system-data; where it is missing the launcher uses SeaBIOS.
pub(crate) fn qboot() -> Option<PathBuf> {
    ["/usr/share/qemu/qboot.rom", "/usr/local/share/qemu/qboot.rom"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// One guest boot: what QEMU gets, and how long it may take.
#[derive(Debug, Clone)]
pub struct Launch {
    pub(crate) qemu: String,
    pub accel: Accel,
    pub(crate) machine: Option<String>,
    pub(crate) cpu: Option<String>,
    pub(crate) memory_mib: u32,
    /// The firmware (`-bios`); None leaves QEMU's default (SeaBIOS).
    pub firmware: Option<PathBuf>,
    /// Extra QEMU arguments (devices, drives, netdevs), passed as given.
    pub devices: Vec<String>,
    pub kernel: PathBuf,
    pub(crate) initrd: PathBuf,
    /// Kernel arguments after `BASE_CMDLINE` and `vlab.nonce=`.
    pub cmdline: Vec<String>,
    pub timeout: Duration,
    /// Where the console is written after the boot, for the student to read.
    pub(crate) log: Option<PathBuf>,
}

impl Launch {
    /// The fastest boot of the cached assets: the unpacked kernel (when it has
    /// a PVH entry) on qboot (when installed).
    pub fn new(assets: &GuestAssets) -> Self {
        let mut launch = Self::with_files(&assets.kernel.boot_image(), &assets.initrd);
        launch.firmware = qboot();
        launch
    }

    pub fn with_files(kernel: &Path, initrd: &Path) -> Self {
        Launch {
            qemu: "qemu-system-x86_64".into(),
            accel: Accel::Tcg,
            machine: None,
            cpu: None,
            memory_mib: 256,
            firmware: None,
            devices: Vec::new(),
            kernel: kernel.to_path_buf(),
            initrd: initrd.to_path_buf(),
            cmdline: Vec::new(),
            timeout: Duration::from_secs(60),
            log: None,
        }
    }

    /// The full QEMU command line for a boot carrying `nonce`.
    pub(crate) fn argv(&self, nonce: &str) -> Vec<String> {
        let mut argv: Vec<String> = [&self.qemu, "-nodefaults", "-no-user-config", "-display", "none"]
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut add = |a: &str, b: &str| argv.extend([a.to_string(), b.to_string()]);
        add("-serial", "stdio");
        add("-accel", self.accel.name());
        if let Some(m) = &self.machine {
            add("-machine", m);
        }
        if let Some(c) = &self.cpu {
            add("-cpu", c);
        }
        add("-m", &self.memory_mib.to_string());
        if let Some(f) = &self.firmware {
            add("-bios", &f.to_string_lossy());
        }
        add("-kernel", &self.kernel.to_string_lossy());
        add("-initrd", &self.initrd.to_string_lossy());
        let mut cmdline: Vec<String> = BASE_CMDLINE.iter().map(|s| s.to_string()).collect();
        cmdline.push(format!("vlab.nonce={nonce}"));
        cmdline.extend(self.cmdline.iter().cloned());
        add("-append", &cmdline.join(" "));
        argv.push("-no-reboot".into());
        argv.extend(self.devices.iter().cloned());
        argv
    }

    /// Boots with a fresh nonce, QEMU connected to the runner's QMP and seal
    /// sockets; waits for the report, a panic, QEMU's exit or the deadline,
    /// and kills QEMU on every path.
    pub fn boot(&self) -> anyhow::Result<Booted> {
        let nonce = crate::evidence::fresh_nonce();
        let channels = qmp::Channels::open()?;
        let mut argv = self.argv(&nonce);
        argv.extend(channels.qemu_args());
        let cmd = Cmd::from_argv(&argv).timeout(self.timeout).output_limit(4 * 1024 * 1024);
        let started = std::time::Instant::now();
        let obs = boot::boot_with(&cmd, &nonce, channels, &[])?;
        let elapsed = started.elapsed();
        if let Some(log) = &self.log {
            std::fs::write(log, &obs.console)?;
        }
        Ok(Booted { nonce, obs, elapsed })
    }
}

pub struct Booted {
    pub nonce: String,
    pub obs: BootObservation,
    /// Start of QEMU to the report (or the end of the boot, when there is none).
    pub elapsed: Duration,
}

impl Booted {
    /// True when a complete report carrying this boot's nonce came back,
    /// sealed with the key the runner handed this guest.
    pub fn verified(&self) -> bool {
        self.obs.report_nonce == Freshness::Fresh && self.fact("report.sealed") == Some("yes")
    }

    pub fn fact(&self, name: &str) -> Option<&str> {
        self.obs.facts.get(name).map(String::as_str)
    }
}

/// Points `link` at `target` (replacing whatever is there).
fn link(target: &Path, link: &Path) -> std::io::Result<()> {
    if std::fs::read_link(link).ok().as_deref() == Some(target) {
        return Ok(());
    }
    let _ = std::fs::remove_file(link);
    std::os::unix::fs::symlink(target, link)
}

/// Lab prepare `guest-assets`: `vmlinuz` and `initrd.img` in `dir`, linked to
/// the cache, and `vmlinux` when the kernel could be unpacked for a direct boot.
pub(crate) fn prepare_assets(dir: &Path) -> anyhow::Result<()> {
    let assets = assets::ensure()?;
    std::fs::create_dir_all(dir)?;
    link(&assets.kernel.vmlinuz(), &dir.join("vmlinuz"))?;
    link(&assets.initrd, &dir.join("initrd.img"))?;
    if let Some(vmlinux) = &assets.kernel.vmlinux {
        link(vmlinux, &dir.join("vmlinux"))?;
    }
    Ok(())
}

/// Lab prepare `guest-assets-generic`: `vmlinuz-generic` and `initrd-generic.img`
/// in `dir` (Debian's generic kernel, with emulated NIC drivers), linked to the cache.
pub(crate) fn prepare_generic_assets(dir: &Path) -> anyhow::Result<()> {
    let assets = assets::generic(false)?;
    std::fs::create_dir_all(dir)?;
    link(&assets.kernel.vmlinuz(), &dir.join("vmlinuz-generic"))?;
    link(&assets.initrd, &dir.join("initrd-generic.img"))?;
    Ok(())
}

/// Lab prepare `arm64-busybox`: `busybox-arm64` in `dir`, linked to the cache.
pub(crate) fn prepare_arm64_busybox(dir: &Path) -> anyhow::Result<()> {
    let busybox = assets::arm64_busybox()?;
    std::fs::create_dir_all(dir)?;
    link(&busybox, &dir.join("busybox-arm64"))?;
    Ok(())
}

/// Text for `vlab guest assets`.
pub(crate) fn describe_assets(assets: &GuestAssets, arm64_busybox: Option<&Path>) -> String {
    let k = &assets.kernel;
    let mut s = format!(
        "kernel   {} ({})
         {}
         sha256 {}
initrd   {}
         sha256 {}
",
        k.release,
        k.source,
        k.vmlinuz().display(),
        k.sha256,
        assets.initrd.display(),
        assets.initrd_sha256
    );
    let drivers: Vec<String> = k.drivers.iter().map(|(m, state)| format!("{m} {state}")).collect();
    s.push_str(&format!("drivers  {}\n", drivers.join(", ")));
    match (&k.vmlinux, &k.vmlinux_unavailable) {
        (Some(v), _) => s.push_str(&format!("vmlinux  {} (PVH entry: the launcher boots it directly)\n", v.display())),
        (None, Some(why)) => s.push_str(&format!("vmlinux  none: {why}; the launcher boots the bzImage\n")),
        (None, None) => {}
    }
    if let Some(b) = arm64_busybox {
        s.push_str(&format!("arm64    {}\n", b.display()));
    }
    s
}

/// Text for `vlab guest boot`.
pub(crate) fn describe_boot(booted: &Booted) -> String {
    let mut s = String::new();
    if let Some(p) = &booted.obs.panic {
        s.push_str(&format!("the guest kernel panicked: {p}\n"));
    } else if !booted.verified() {
        let why = match (&booted.obs.ended_early, booted.obs.timed_out) {
            (Some(end), _) => format!("QEMU {end} before the report"),
            (None, true) => "no report before the deadline; QEMU was stopped".to_string(),
            _ => match booted.fact("report.sealed") {
                Some(sealed) if booted.obs.report_nonce == Freshness::Fresh => {
                    format!("the report is not sealed ({sealed})")
                }
                _ => "no report carrying this boot's nonce".to_string(),
            },
        };
        s.push_str(&format!("{why}\n"));
        for (what, text) in [("console", &booted.obs.console), ("QEMU's stderr", &booted.obs.stderr)] {
            let tail: Vec<&str> = text.lines().rev().take(15).collect();
            if !tail.is_empty() {
                s.push_str(&format!("last lines of the {what}:\n"));
                for l in tail.into_iter().rev() {
                    s.push_str(&format!("  {l}\n"));
                }
            }
        }
        return s;
    }
    for (k, v) in &booted.obs.facts {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s.push_str(&format!("verified report after {:.0} ms\n", booted.elapsed.as_secs_f64() * 1000.0));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_carries_the_nonce_and_fails_fast() {
        let mut l = Launch::with_files(Path::new("/k"), Path::new("/i"));
        l.cmdline.push("vlab.measure=cpu".into());
        let argv = l.argv("abc");
        let append = &argv[argv.iter().position(|a| a == "-append").unwrap() + 1];
        assert!(append.contains("vlab.nonce=abc") && append.contains("panic=-1"), "{append}");
        assert!(append.ends_with("vlab.measure=cpu"));
        assert!(argv.contains(&"-no-reboot".to_string()));
        let facts = boot::qemu_facts(&argv);
        assert_eq!(facts["vmm.asked.accel"], "tcg");
        assert!(!argv.contains(&"-bios".to_string()), "no firmware named: QEMU's default");
        l.firmware = Some("/fw/qboot.rom".into());
        let argv = l.argv("abc");
        assert_eq!(argv[argv.iter().position(|a| a == "-bios").unwrap() + 1], "/fw/qboot.rom");
    }
}
