//! The lab.toml model. Field-by-field documentation for lab authors lives in
//! labs/README.md; keep the two in step.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    /// Same as the lab's directory name, `NN-slug`.
    pub id: String,
    pub(crate) title: String,
    pub(crate) tier: Tier,
    /// The book chapter (file under book/src) this lab belongs to.
    pub(crate) chapter: String,
    /// One paragraph shown by `vlab list` and on the lab's book page.
    pub(crate) summary: String,
    /// Capabilities, named as `vlab doctor` names them.
    #[serde(default)]
    pub(crate) requires: Vec<Capability>,
    pub(crate) estimate_minutes: u32,
    /// What the runner builds into the workspace at `start` and refreshes before checks.
    #[serde(default)]
    pub(crate) prepare: Vec<Prepare>,
    /// How `vlab grade` runs this lab's checks on a submission.
    #[serde(default)]
    pub(crate) grading: Grading,
    pub(crate) steps: Vec<Step>,
    /// Where lab.toml was loaded from (filled by the loader).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Lab {
    /// The step named `id`, or an error listing the lab's steps.
    pub(crate) fn step(&self, id: &str) -> Result<&Step, NoSuchStep> {
        self.steps.iter().find(|s| s.id == id).ok_or_else(|| NoSuchStep {
            lab: self.id.clone(),
            step: id.into(),
            steps: self.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", "),
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("lab {lab} has no step `{step}`; its steps are: {steps}")]
pub struct NoSuchStep {
    lab: String,
    step: String,
    steps: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Tier {
    BareMetal,
    Partitioning,
    Containers,
    Uml,
    Paravirtualization,
    Emulation,
    HardwareAssisted,
}

impl Tier {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tier::BareMetal => "bare metal",
            Tier::Partitioning => "hardware partitioning",
            Tier::Containers => "containers",
            Tier::Uml => "User-Mode-Linux",
            Tier::Paravirtualization => "paravirtualization",
            Tier::Emulation => "software emulation",
            Tier::HardwareAssisted => "hardware-assisted",
        }
    }
}

/// What a machine can do, as `vlab doctor` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Capability {
    Root,
    Userns,
    CgroupWritable,
    Kvm,
    KvmFast,
    QemuSystem,
    QemuUser,
    Runc,
    Uml,
    /// A UML kernel that boots here both with ptrace and with seccomp (Linux 6.16+).
    UmlSeccomp,
    Busybox,
    Nsenter,
    /// A C compiler and the C library's headers: labs where the student writes the system calls.
    Cc,
    /// At least two online CPUs, to cut into one-CPU slices.
    TwoCpus,
    Strace,
}

impl Capability {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Capability::Root => "root",
            Capability::Userns => "userns",
            Capability::CgroupWritable => "cgroup-writable",
            Capability::Kvm => "kvm",
            Capability::KvmFast => "kvm-fast",
            Capability::QemuSystem => "qemu-system",
            Capability::QemuUser => "qemu-user",
            Capability::Runc => "runc",
            Capability::Uml => "uml",
            Capability::UmlSeccomp => "uml-seccomp",
            Capability::Busybox => "busybox",
            Capability::Nsenter => "nsenter",
            Capability::Cc => "cc",
            Capability::TwoCpus => "two-cpus",
            Capability::Strace => "strace",
        }
    }

    /// What a step lacking this capability needs, in words: "3 more points need fast KVM".
    pub(crate) fn needed(self) -> &'static str {
        match self {
            Capability::Root => "root",
            Capability::Userns => "user namespaces",
            Capability::CgroupWritable => "writable cgroups",
            Capability::Kvm => "KVM",
            Capability::KvmFast => "fast KVM",
            Capability::QemuSystem => "qemu-system",
            Capability::QemuUser => "qemu-user",
            Capability::Runc => "runc",
            Capability::Uml => "a UML that runs here",
            Capability::UmlSeccomp => "a UML with the seccomp mode",
            Capability::Busybox => "a static busybox",
            Capability::Nsenter => "nsenter",
            Capability::Cc => "a C compiler",
            Capability::TwoCpus => "two online CPUs",
            Capability::Strace => "strace",
        }
    }
}

/// `[grading]`: what the grader's sandbox grants this lab beyond the default
/// (an unprivileged user in its own root filesystem, no capabilities).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Grading {
    #[serde(default)]
    pub(crate) privileges: Vec<Privilege>,
}

/// A host privilege a lab's checks cannot do without (see docs/grading.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Privilege {
    /// A writable cgroup subtree of the submission's own (cpu, cpuset, memory,
    /// pids), delegated at /sys/fs/cgroup; the checks run as the host's uid 0
    /// without capabilities, which cgroup v1 needs to move processes.
    Cgroup,
    /// /dev/kvm.
    Kvm,
    /// The host's root with the capabilities an OCI runtime needs (runc):
    /// mounts, namespaces, chroot, setuid. Never module loading, raw I/O,
    /// device nodes or the clock.
    Runc,
}

impl Privilege {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Privilege::Cgroup => "cgroup",
            Privilege::Kvm => "kvm",
            Privilege::Runc => "runc",
        }
    }
}

/// Things the runner makes for a lab (see src/prepare.rs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Prepare {
    /// A busybox-static root filesystem at `rootfs/`, with `rootfs/.vlab/` for the probe.
    BusyboxRootfs,
    /// The guest kernel and the runner's initramfs at `assets/vmlinuz` and `assets/initrd.img`.
    GuestAssets,
    /// Debian's generic kernel (it has emulated NIC drivers: e1000, 8139too, 8139cp) and
    /// its initramfs at `assets/vmlinuz-generic` and `assets/initrd-generic.img`.
    GuestAssetsGeneric,
    /// An aarch64 static busybox (Debian's busybox-static:arm64) at `assets/busybox-arm64`.
    Arm64Busybox,
    /// The Xen hypervisor (Debian's xen-hypervisor package) at `assets/xen.elf`.
    XenAssets,
    /// Xen's toolstack in a dom0 image, and a domU, for `vlab xen domu` (built in the cache).
    XenDomuAssets,
    /// The UML kernel that boots on this host (`vlab doctor`), linked as `bin/linux`.
    UmlKernel,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Step {
    pub(crate) id: String,
    pub(crate) title: String,
    pub(crate) points: u32,
    /// Markdown shown to the student; or take it from a README section.
    pub(crate) instructions: Option<String>,
    /// Heading text of a section in the lab's README.md holding the instructions.
    pub(crate) readme_section: Option<String>,
    /// The hint ladder: `vlab hint` reveals one more each time.
    pub(crate) hints: Vec<String>,
    /// Files (relative to the workspace) the student edits in this step.
    pub(crate) files: Vec<String>,
    /// Extra capabilities this step needs beyond the lab's.
    #[serde(default)]
    pub(crate) requires: Vec<Capability>,
    pub(crate) checks: Vec<Check>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Check {
    /// Short name shown in results; defaults to the command.
    pub(crate) name: Option<String>,
    /// Which observer runs the command: a name in the engine's registry
    /// (src/tiers.rs), checked when the catalog is loaded for checking.
    pub(crate) kind: String,
    /// argv, run in the student's workspace. `{probe}`, `{nonce}` and `{vlab}` (this runner's executable) expand.
    pub(crate) command: Vec<String>,
    #[serde(default = "default_timeout")]
    pub(crate) timeout_secs: u64,
    #[serde(default)]
    pub(crate) expect: Expect,
    /// Facts stored in the workspace for `vlab compare`, e.g. "result.syscall_ns".
    #[serde(default)]
    pub(crate) record: Vec<String>,
    /// Observe checks: workspace-relative directory where the runner places its probe.
    pub(crate) probe_dir: Option<String>,
    /// Start a TCP sink on 127.0.0.1 for this check: its port is $VLAB_SINK_PORT
    /// (10.0.2.2:PORT from a QEMU user-net guest); facts `sink.*` count what arrived.
    #[serde(default)]
    pub(crate) sink: bool,
    /// The runner makes empty cgroups for the command (`VLAB_CGROUP_*`), reads
    /// them afterwards (`cgroup.*` facts) and removes them.
    #[serde(default)]
    pub(crate) cgroup: bool,
}

fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Expect {
    pub(crate) exit: Option<i32>,
    /// Regexes that must each match stdout.
    #[serde(default)]
    pub(crate) stdout: Vec<String>,
    /// Regexes that must not match stdout.
    #[serde(default)]
    pub(crate) stdout_not: Vec<String>,
    #[serde(default)]
    pub(crate) stderr: Vec<String>,
    /// Workspace-relative files that must exist afterwards.
    #[serde(default)]
    pub(crate) files: Vec<String>,
    /// The results file ($VLAB_RESULTS) must carry `nonce=<this run's nonce>`.
    #[serde(default)]
    pub(crate) nonce: bool,
    #[serde(default)]
    pub(crate) facts: Vec<FactRule>,
}

/// A rule about one fact the runner gathered (see labs/README.md for names).
/// In lab.toml it is one table: `fact`, `message` and exactly one test
/// (`equals`, `matches`, `min` and/or `max`, or `at_least` with an optional
/// `factor`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "RuleTable", into = "RuleTable")]
pub(crate) struct FactRule {
    pub(crate) fact: String,
    pub(crate) test: FactTest,
    /// What the student reads when the rule fails.
    pub(crate) message: String,
}

/// What a fact must be.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FactTest {
    /// The text, after `{nonce}` and `{workspace}` are expanded.
    Equals(String),
    /// A regex, checked at load.
    Matches(String),
    Min(f64),
    Max(f64),
    Between {
        min: f64,
        max: f64,
    },
    /// At least `factor` × the fact `other`.
    AtLeast {
        other: String,
        factor: f64,
    },
}

/// A fact rule as lab.toml spells it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleTable {
    fact: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    equals: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    matches: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    at_least: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
    message: String,
}

/// A fact rule lab.toml spells wrongly, in words for its author.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidRule(String);

impl TryFrom<RuleTable> for FactRule {
    type Error = InvalidRule;

    fn try_from(t: RuleTable) -> Result<Self, InvalidRule> {
        let fact = t.fact;
        if t.factor.is_some() && t.at_least.is_none() {
            return Err(InvalidRule(format!("fact rule for `{fact}`: `factor` only goes with `at_least`")));
        }
        let test = match (t.equals, t.matches, t.min, t.max, t.at_least) {
            (Some(v), None, None, None, None) => FactTest::Equals(v),
            (None, Some(re), None, None, None) => {
                regex::Regex::new(&re)
                    .map_err(|err| InvalidRule(format!("fact rule for `{fact}`: bad regex {re:?}: {err}")))?;
                FactTest::Matches(re)
            }
            (None, None, Some(min), None, None) => FactTest::Min(min),
            (None, None, None, Some(max), None) => FactTest::Max(max),
            (None, None, Some(min), Some(max), None) => FactTest::Between { min, max },
            (None, None, None, None, Some(other)) => FactTest::AtLeast { other, factor: t.factor.unwrap_or(1.0) },
            _ => {
                return Err(InvalidRule(format!(
                    "fact rule for `{fact}` needs exactly one of equals, matches, min/max, at_least"
                )));
            }
        };
        Ok(FactRule { fact, test, message: t.message })
    }
}

impl From<FactRule> for RuleTable {
    fn from(r: FactRule) -> Self {
        let mut t = RuleTable {
            fact: r.fact,
            equals: None,
            matches: None,
            min: None,
            max: None,
            at_least: None,
            factor: None,
            message: r.message,
        };
        match r.test {
            FactTest::Equals(v) => t.equals = Some(v),
            FactTest::Matches(re) => t.matches = Some(re),
            FactTest::Min(min) => t.min = Some(min),
            FactTest::Max(max) => t.max = Some(max),
            FactTest::Between { min, max } => (t.min, t.max) = (Some(min), Some(max)),
            FactTest::AtLeast { other, factor } => (t.at_least, t.factor) = (Some(other), Some(factor)),
        }
        t
    }
}
