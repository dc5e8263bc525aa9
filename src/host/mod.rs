//! `vlab doctor`: what this machine can really do, measured, with reasons.

pub mod cgroup;
pub mod tools;
pub(crate) mod topology;
pub(crate) mod uml;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::Capability;
use crate::kvm;
use crate::proc::Cmd;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Verdict {
    pub(crate) ok: bool,
    pub(crate) reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KvmInfo {
    pub(crate) present: bool,
    pub openable: bool,
    /// Guest instructions per second of the timed tiny guest.
    pub(crate) rate: Option<f64>,
    pub fast: bool,
    /// Kernel module backing /dev/kvm (kvm_intel, kvm_amd, kvm_pvm, ...).
    pub(crate) module: Option<String>,
    /// The CPU advertises VT-x (vmx) or AMD-V (svm) to this kernel.
    pub(crate) cpu_virt: bool,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capabilities {
    pub(crate) root: bool,
    pub(crate) userns: Verdict,
    pub(crate) cgroup: cgroup::CgroupInfo,
    pub kvm: KvmInfo,
    pub(crate) tools: BTreeMap<String, tools::ToolInfo>,
    /// Every UML kernel here, boot-tested; `tools["uml"]` is its summary.
    pub(crate) uml: uml::UmlInfo,
    pub(crate) elapsed_ms: f64,
}

/// How long doctor lets the tiny KVM guest run.
const KVM_BUDGET: Duration = Duration::from_millis(40);

pub fn detect() -> Capabilities {
    detect_with(true)
}

/// Like `detect`, but skips timing KVM unless `measure_kvm`: a grader checking
/// labs that never use KVM saves that time on every submission.
pub(crate) fn detect_with(measure_kvm: bool) -> Capabilities {
    let started = Instant::now();
    let (mut tools, userns, kvm, uml) = std::thread::scope(|s| {
        let tools = s.spawn(tools::inspect_all);
        let userns = s.spawn(userns);
        // Boots each UML found once per binary and host kernel; cached after that.
        let uml = s.spawn(uml::detect);
        let kvm = if measure_kvm { detect_kvm() } else { unmeasured_kvm() };
        (tools.join().expect("tools"), userns.join().expect("userns"), kvm, uml.join().expect("uml"))
    });
    tools.insert("uml".into(), uml.tool_info());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    Capabilities {
        root,
        userns,
        cgroup: cgroup::detect(),
        kvm,
        tools,
        uml,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    }
}

fn userns() -> Verdict {
    match Cmd::new("unshare").args(["--user", "--map-root-user", "true"]).timeout(Duration::from_secs(3)).run() {
        Ok(o) if o.success() => Verdict { ok: true, reason: "a new user namespace was created and entered".into() },
        Ok(o) => Verdict {
            ok: false,
            reason: format!(
                "unshare --user failed ({}): {}; enable with `sysctl kernel.unprivileged_userns_clone=1` or raise user.max_user_namespaces",
                o.describe_end(),
                o.stderr.trim()
            ),
        },
        Err(e) => Verdict { ok: false, reason: e.to_string() },
    }
}

fn kvm_module() -> Option<String> {
    ["kvm_intel", "kvm_amd", "kvm_pvm"]
        .iter()
        .find(|m| Path::new("/sys/module").join(m).exists())
        .map(|m| m.to_string())
}

fn unmeasured_kvm() -> KvmInfo {
    KvmInfo {
        present: Path::new("/dev/kvm").exists(),
        openable: false,
        rate: None,
        fast: false,
        module: kvm_module(),
        cpu_virt: false,
        reason: "not measured: no lab being checked needs KVM".into(),
    }
}

fn detect_kvm() -> KvmInfo {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_virt = cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .any(|l| l.split_whitespace().any(|f| f == "vmx" || f == "svm"));
    let mut info = KvmInfo {
        present: Path::new("/dev/kvm").exists(),
        openable: false,
        rate: None,
        fast: false,
        module: kvm_module(),
        cpu_virt,
        reason: String::new(),
    };
    if !info.present {
        info.reason = if cpu_virt {
            "/dev/kvm is missing though the CPU has VT-x/AMD-V: load the module (modprobe kvm_intel or kvm_amd)".into()
        } else {
            "/dev/kvm is missing and the CPU shows no VT-x/AMD-V (disabled in firmware, or a VM without nested virtualization); guests run under TCG".into()
        };
        return info;
    }
    match kvm::measure(KVM_BUDGET) {
        Ok(speed) => {
            info.openable = true;
            info.rate = Some(speed.rate);
            info.fast = speed.fast();
            let mips = speed.rate / 1e6;
            info.reason = if info.fast {
                format!("a tiny guest ran at {mips:.0} M instructions/s: hardware-assisted speed")
            } else {
                // PVM runs PVM-enabled guests natively; what crawls is an unmodified
                // guest, whose real-mode and ring-0 code it must emulate (issue 18).
                let why = match info.module.as_deref() {
                    Some("kvm_pvm") => " (module kvm_pvm: PVM runs PVM-enabled guests at native speed, but must emulate an unmodified guest's real-mode and ring-0 code)".to_string(),
                    Some(m) => format!(" (module {m}: nested, or without hardware guest mode)"),
                    None => " (nested, or without hardware guest mode)".to_string(),
                };
                format!(
                    "a tiny unmodified guest ran at only {mips:.1} M instructions/s (hardware KVM does over {:.0} M){why}; full guests fall back to TCG",
                    kvm::FAST_RATE / 1e6,
                )
            };
        }
        Err(kvm::KvmError::Open(e)) => {
            info.reason = format!(
                "/dev/kvm cannot be opened ({e}): add your user to the kvm group (`sudo adduser $USER kvm`, then log in again) or run as root"
            );
        }
        Err(e) => {
            info.openable = true;
            info.reason = format!("/dev/kvm opened but a tiny guest failed: {e}");
        }
    }
    info
}

impl Capabilities {
    /// Why `cap` is not available here, or None if it is.
    pub(crate) fn lacks(&self, cap: Capability) -> Option<String> {
        let tool = |name: &str| {
            self.tools
                .get(name)
                .filter(|t| !t.present)
                .map(|t| t.reason.clone().unwrap_or_else(|| format!("{name} missing")))
        };
        match cap {
            Capability::Root => (!self.root).then(|| "needs root; run with sudo".to_string()),
            Capability::Userns => (!self.userns.ok).then(|| self.userns.reason.clone()),
            Capability::CgroupWritable => {
                let need = ["cpu", "memory", "pids"];
                let ok = need.iter().all(|c| self.cgroup.writable.iter().any(|w| w == c));
                (!ok).then(|| {
                    format!("cgroup controllers cpu, memory and pids must be writable: {}", self.cgroup.reason)
                })
            }
            Capability::Kvm => (!self.kvm.openable).then(|| self.kvm.reason.clone()),
            Capability::KvmFast => (!self.kvm.fast).then(|| self.kvm.reason.clone()),
            Capability::QemuSystem => tool("qemu-system"),
            Capability::QemuUser => tool("qemu-user"),
            Capability::Runc => tool("runc"),
            Capability::Uml => self.uml.lacks(),
            Capability::UmlSeccomp => self.uml.lacks_seccomp(),
            Capability::Busybox => tool("busybox"),
            Capability::Nsenter => tool("nsenter"),
            Capability::Cc => tool("cc").or_else(|| tool("libc-dev")),
            Capability::TwoCpus => topology::lacks_two_cpus(),
            Capability::Strace => tool("strace"),
        }
        .map(|why| format!("{}: {why}", cap.name()))
    }

    pub(crate) fn missing(&self, needs: &[Capability]) -> Vec<String> {
        let mut needs = needs.to_vec();
        needs.sort();
        needs.dedup();
        needs.into_iter().filter_map(|c| self.lacks(c)).collect()
    }

    /// Debian packages that would provide the missing tools.
    pub(crate) fn missing_packages(&self) -> Vec<String> {
        let mut pkgs: Vec<String> =
            self.tools.values().filter(|t| !t.present && !t.package.is_empty()).map(|t| t.package.clone()).collect();
        pkgs.sort();
        pkgs.dedup();
        pkgs
    }
}
