//! One submission, graded in a sandbox of its own.
//!
//! `vlab grade` runs `vlab __grade-one WARDEN.json` per submission. That
//! process, the warden, joins the submission's pids + memory cgroup, sets its
//! rlimits and, when the grader is root, mounts a private size-limited ext4
//! disk in a mount namespace of its own. Then it drops to an unprivileged uid
//! (unless the lab names a privilege it needs) and becomes bubblewrap, which
//! builds the submission's root filesystem: the host's /usr (and /bin, /lib*)
//! read-only, a minimal /etc of our own, the lab's lab.toml and starter (never
//! its solution), the submitted files read-only, the private disk as the
//! workspace, a fresh /tmp, /proc and /dev, and nothing else of the host. In
//! there, `vlab __grade-one /opt/vlab/stage/spec.json` runs the canonical
//! checks and prints the reports as JSON.
//!
//! Why bubblewrap: it is the sandbox Flatpak ships, packaged by Debian and
//! audited for exactly this (untrusted code, unprivileged user namespaces,
//! pivot_root into a tmpfs root, no_new_privs, capabilities dropped), so the
//! mount code here is a list of arguments, not a hand-written pivot_root.
//! The warden binds the sources under a private tmpfs first, so the
//! unprivileged uid bubblewrap runs as needs no search permission on the
//! grader's own directories (a 0700 output directory, root's cache).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::limits::{Jail, Limits};
use crate::catalog::{Capability, Catalog, Lab, Prepare, Privilege};
use crate::check::LabReport;
use crate::proc::Cmd;

/// The host uid (and gid) an unprivileged submission runs as when the
/// grader is root: far above any account or subordinate-uid range a Debian
/// installer hands out, and owner of nothing on the host.
pub(crate) const SANDBOX_UID: u32 = 1_900_000_000;
/// The uid the submission sees itself as: an ordinary user, `student`.
const INSIDE_UID: u32 = 1000;

/// Where things are inside the sandbox.
const VLAB_IN: &str = "/opt/vlab/vlab";
const STAGE_IN: &str = "/opt/vlab/stage";
const SUBMITTED_IN: &str = "/opt/vlab/submitted";
const WORKSPACE_IN: &str = "/home/student";
const HOSTNAME: &str = "vlab-sandbox";

/// What the sandboxed grader prints on stdout as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Graded {
    pub(crate) reports: Vec<LabReport>,
    /// Which protections were in force (some need root).
    pub(crate) protections: Vec<String>,
}

/// What `vlab __grade-one` is asked to do: set up the sandbox, or grade inside it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
enum Spec {
    Warden(Box<Warden>),
    Grade(Inside),
}

/// The warden's orders, written by the grader.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Warden {
    bwrap: PathBuf,
    vlab: PathBuf,
    /// The labs to grade, as the grader's catalog loaded them.
    labs: Vec<Lab>,
    /// Holds labs/<id>/starter/, etc/ and spec.json; read-only inside.
    stage: PathBuf,
    /// The submitted files, <lab>/<path>; read-only inside.
    submitted: PathBuf,
    /// Where the private disk is mounted (or, without root, the plain workspace directory).
    workspace: PathBuf,
    /// The grader's pid: the warden stops if it is gone before the sandbox starts.
    grader: u32,
    /// The submission's cgroup: (controller, directory), and the cgroup.procs files to join.
    cgroup: Vec<(String, PathBuf)>,
    cgroup_procs: Vec<PathBuf>,
    cgroup_v2: bool,
    privileges: Vec<Privilege>,
    cache: Option<PathBuf>,
    limits: Limits,
    protections: Vec<String>,
}

/// What the grader inside the sandbox grades.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Inside {
    labs: Vec<Lab>,
    protections: Vec<String>,
    /// The capability bits the grader inside may hold (see check_capabilities).
    capabilities: u64,
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Grades the submission files under `files` for `lab_ids`, sandboxed, with
/// `work` as scratch space (removed by the caller). `name` must be unique
/// among concurrent gradings (it names the cgroup).
#[allow(clippy::too_many_arguments)]
pub(crate) fn grade_sandboxed(
    vlab: &Path,
    name: &str,
    catalog: &Catalog,
    lab_ids: &[String],
    files: &Path,
    work: &Path,
    limits: &Limits,
    timeout: Duration,
) -> Result<Graded, String> {
    let bwrap = crate::host::tools::which("bwrap").ok_or(
        "bwrap (bubblewrap) is not installed, and the grader runs no submission outside its sandbox; install the Debian package bubblewrap (`vlab setup`)",
    )?;
    let labs: Vec<&Lab> = lab_ids.iter().filter_map(|id| catalog.find(id).ok()).collect();
    let mut privileges: Vec<Privilege> = labs.iter().flat_map(|l| l.grading.privileges.iter().copied()).collect();
    privileges.sort();
    privileges.dedup();
    let mut protections = vec![
        "own root filesystem (bubblewrap): system directories read-only, no host home, tmp, labs or submissions"
            .to_string(),
    ];
    if !is_root() && !privileges.is_empty() {
        let names: Vec<&str> = privileges.iter().map(|p| p.name()).collect();
        protections.push(format!("privileges {} not granted: the grader is not root", names.join(", ")));
        privileges.clear();
    }
    // The same rule the warden follows: only host-root privileges leave the user namespace out.
    let userns = if privileges.iter().all(|p| *p == Privilege::Kvm) { "user, " } else { "" };
    protections.push(format!("namespaces: {userns}mount, pid, net (loopback only), ipc, uts, cgroup"));
    let delegate: &[&str] = match (privileges.contains(&Privilege::Runc), privileges.contains(&Privilege::Cgroup)) {
        // runc (cgroupfs driver, v1) wants a mount of every hierarchy it configures.
        (true, _) => &["cpu", "cpuset", "cpuacct", "devices", "freezer", "blkio"],
        (false, true) => &["cpu", "cpuset"],
        (false, false) => &[],
    };
    let jail = match Jail::create(name, limits, delegate) {
        Ok(j) => {
            protections.push(format!("cgroup: pids.max={} memory={} MiB", limits.pids, limits.memory_bytes >> 20));
            Some(j)
        }
        Err(why) => {
            protections.push(format!("no cgroup limits ({why})"));
            None
        }
    };
    let stage = work.join("stage");
    stage_root(&stage, &labs)
        .map_err(|e| format!("cannot prepare the sandbox's files in {}: {e:#}", stage.display()))?;
    let warden = Warden {
        bwrap,
        vlab: vlab.to_path_buf(),
        labs: labs.iter().map(|l| (*l).clone()).collect(),
        stage,
        submitted: files.to_path_buf(),
        workspace: work.join("ws"),
        grader: std::process::id(),
        cgroup: jail.as_ref().map(Jail::delegated).unwrap_or_default(),
        cgroup_procs: jail.as_ref().map(Jail::procs_files).unwrap_or_default(),
        cgroup_v2: jail.as_ref().is_some_and(Jail::is_v2),
        privileges,
        // Guest kernels, initramfs and UML, read-only, for the labs that boot them.
        cache: Some(crate::guest::assets::cache_dir())
            .filter(|c| c.is_dir() && labs.iter().any(|l| l.prepare.iter().any(|p| *p != Prepare::BusyboxRootfs))),
        limits: *limits,
        protections,
    };
    let spec = work.join("warden.json");
    std::fs::write(&spec, serde_json::to_vec(&Spec::Warden(Box::new(warden))).map_err(|e| e.to_string())?)
        .map_err(|e| format!("cannot write {}: {e}", spec.display()))?;
    let out = Cmd::new(vlab)
        .arg("__grade-one")
        .arg(&spec)
        .env("NO_COLOR", "1")
        .timeout(timeout)
        .output_limit(16 << 20)
        .run()
        .map_err(|e| e.to_string())?;
    let pids_hit = jail.as_ref().is_some_and(Jail::pids_limit_hit);
    drop(jail);
    if out.timed_out {
        return Err(format!("the submission did not finish grading within {}s and was stopped", timeout.as_secs()));
    }
    let graded: Result<Graded, _> = serde_json::from_str(out.stdout.trim());
    match graded {
        Ok(mut g) if out.success() => {
            if pids_hit {
                g.protections.push("the process limit stopped a fork bomb".into());
            }
            Ok(g)
        }
        _ => {
            let why: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("vlab:") || l.starts_with("bwrap:") || l.contains("panicked"))
                .take(3)
                .collect();
            Err(format!("the sandboxed grader {}: {}", out.describe_end(), why.join(" / ")))
        }
    }
}

/// The read-only part of the sandbox: each lab's starter (the workspace is
/// made from it; the checks themselves travel parsed, in the spec; never
/// solution/), and a minimal /etc.
fn stage_root(stage: &Path, labs: &[&Lab]) -> anyhow::Result<()> {
    for lab in labs {
        crate::workspace::copy_tree(&lab.dir.join("starter"), &stage.join("labs").join(&lab.id).join("starter"))?;
    }
    let etc = stage.join("etc");
    std::fs::create_dir_all(&etc)?;
    for (file, text) in [
        (
            "passwd",
            format!(
                "root:x:0:0:root:/root:/bin/sh\nstudent:x:{INSIDE_UID}:{INSIDE_UID}:student:{WORKSPACE_IN}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        ("group", format!("root:x:0:\nstudent:x:{INSIDE_UID}:\nnogroup:x:65534:\n")),
        ("hosts", format!("127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n")),
        ("hostname", format!("{HOSTNAME}\n")),
        ("nsswitch.conf", "passwd: files\ngroup: files\nshadow: files\nhosts: files\n".to_string()),
    ] {
        std::fs::write(etc.join(file), text)?;
    }
    Ok(())
}

/// `vlab __grade-one SPEC`: the warden (outside) or the grader (inside the sandbox).
pub(crate) fn grade_inside(spec: &Path) -> anyhow::Result<Graded> {
    let text = std::fs::read(spec).with_context(|| format!("cannot read the sandbox spec {}", spec.display()))?;
    match serde_json::from_slice(&text).context("the sandbox spec is not valid")? {
        Spec::Warden(w) => match warden(*w)? {},
        Spec::Grade(inside) => grade_here(inside),
    }
}

/// Inside the sandbox: copy starter and submission into the workspace, run the checks.
fn grade_here(inside: Inside) -> anyhow::Result<Graded> {
    // The submission runs as our uid: without this it could ptrace us, or
    // write a forged verdict to our stdout through /proc/PID/fd/1.
    // SAFETY: PR_SET_DUMPABLE takes an integer; no memory is passed.
    if unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } != 0 {
        anyhow::bail!("cannot shield the sandboxed grader from the submission: {}", std::io::Error::last_os_error());
    }
    check_capabilities(inside.capabilities)?;
    if inside.capabilities & (1 << CAP_SYS_ADMIN) != 0 {
        uncover_proc()?;
        show_sysfs()?;
    }
    let ws = crate::workspace::Workspace { root: WORKSPACE_IN.into() };
    std::fs::create_dir_all(ws.root.join(".tmp")).context("cannot create the sandbox's TMPDIR")?;
    let needs_kvm = inside.labs.iter().any(|l| {
        l.requires
            .iter()
            .chain(l.steps.iter().flat_map(|s| s.requires.iter()))
            .any(|c| matches!(c, Capability::Kvm | Capability::KvmFast))
    });
    let caps = crate::host::detect_with(needs_kvm);
    let mut reports = Vec::new();
    for mut lab in inside.labs {
        lab.dir = Path::new(STAGE_IN).join("labs").join(&lab.id);
        let dir = ws.lab_dir(&lab);
        ws.copy_from(&lab, "starter", &dir, |d| crate::prepare::prepare(&lab, d))?;
        let submitted = Path::new(SUBMITTED_IN).join(&lab.id);
        if submitted.is_dir() {
            crate::workspace::copy_tree(&submitted, &dir)?;
        }
        reports.push(crate::tiers::check_lab(&lab, &dir, &caps, None)?);
    }
    Ok(Graded { reports, protections: inside.protections })
}

/// Outside the sandbox, in the warden: confine ourselves, make the private
/// disk, then become bubblewrap. Returns only on failure.
fn warden(w: Warden) -> anyhow::Result<std::convert::Infallible> {
    let mut protections = w.protections.clone();
    protections.push(format!("files up to {} MiB", w.limits.file_bytes >> 20));
    let root = is_root();
    let unprivileged = w.privileges.iter().all(|p| *p == Privilege::Kvm);
    std::fs::create_dir_all(&w.workspace)
        .with_context(|| format!("cannot create the workspace {}", w.workspace.display()))?;
    if root {
        private_mounts()?;
        private_disk(&w.workspace, w.limits.disk_mib)?;
        protections.push(format!("private {} MiB filesystem", w.limits.disk_mib));
        if unprivileged {
            chown(&w.workspace, SANDBOX_UID)?;
        }
    } else {
        protections.push("no disk quota (needs root for a loop-mounted filesystem)".into());
    }
    protections.push(match (root, unprivileged) {
        (true, true) => format!("runs as unprivileged host uid {SANDBOX_UID}, no capabilities"),
        (false, _) => "runs as the grader's own (unprivileged) uid, no capabilities".into(),
        (true, false) => {
            let names: Vec<&str> = w.privileges.iter().map(|p| p.name()).collect();
            format!("runs as host root for the lab's privileges ({}), capabilities: {}", names.join(", "), {
                let caps = capabilities(&w.privileges);
                if caps.is_empty() { "none".to_string() } else { caps.join(" ") }
            })
        }
    });
    // After the disk: its loop device is a block device, which the jail refuses.
    for procs in &w.cgroup_procs {
        std::fs::write(procs, "0")
            .with_context(|| format!("cannot join the submission's cgroup {}", procs.display()))?;
    }
    // After the disk image: it is larger than the file-size limit.
    super::limits::set_rlimits(&w.limits).context("cannot set the submission's resource limits")?;
    let spec = w.stage.join("spec.json");
    std::fs::write(
        &spec,
        serde_json::to_vec(&Spec::Grade(Inside {
            labs: w.labs.clone(),
            protections,
            capabilities: if root && !unprivileged { capability_mask(&w.privileges) } else { 0 },
        }))?,
    )
    .with_context(|| format!("cannot write {}", spec.display()))?;

    let cache = w.cache.as_deref();
    // Unprivileged, bubblewrap resolves its sources with our uid: it must be able to reach them.
    let reach = |name: &str, p: &Path| if root && unprivileged { expose(name, p) } else { Ok(p.to_path_buf()) };
    if root && unprivileged {
        expose_base()?;
    }
    let mut plan = Plan {
        vlab: reach("vlab", &w.vlab)?,
        stage: reach("stage", &w.stage)?,
        submitted: reach("submitted", &w.submitted)?,
        workspace: reach("workspace", &w.workspace)?,
        cache: cache.map(|c| reach("cache", c).map(|from| (from, c.to_path_buf()))).transpose()?,
        cache_locks: Vec::new(),
        cgroup: Vec::new(),
        cgroup_v2: w.cgroup_v2,
        privileges: if root { w.privileges.clone() } else { Vec::new() },
        unprivileged: unprivileged || !root,
        tmp_bytes: w.limits.disk_mib << 20,
        system: system_dirs(),
    };
    if plan.privileges.iter().any(|p| matches!(p, Privilege::Cgroup | Privilege::Runc)) {
        plan.cgroup = w.cgroup.clone();
    }
    // The cache's users take its lock files (for writing): each sandbox gets
    // private ones, so a submission holding a lock stalls no one else.
    if let Some(cache) = cache {
        let dir = w.workspace.join(".vlab-cache-locks");
        std::fs::create_dir_all(&dir)?;
        for (i, rel) in lock_files(cache).into_iter().enumerate() {
            std::fs::write(dir.join(i.to_string()), "")?;
            if root && unprivileged {
                chown(&dir.join(i.to_string()), SANDBOX_UID)?;
            }
            plan.cache_locks.push((plan.workspace.join(".vlab-cache-locks").join(i.to_string()), rel));
        }
    }
    let args = plan.args();
    if root && unprivileged {
        let kvm_group = plan.privileges.contains(&Privilege::Kvm).then(|| group_id("kvm")).flatten();
        drop_to(SANDBOX_UID, kvm_group)?;
    }
    // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number; no memory is
    // passed. A uid change clears this setting, so it is set again here: if
    // the grader dies, bubblewrap (which keeps it across exec) dies, and with
    // --die-with-parent everything in the sandbox.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        anyhow::bail!("cannot tie the sandbox to the grader's life: {}", std::io::Error::last_os_error());
    }
    // SAFETY: getppid has no preconditions and cannot fail.
    if unsafe { libc::getppid() } as u32 != w.grader {
        anyhow::bail!("the grader (pid {}) is gone; not starting the sandbox", w.grader);
    }
    use std::os::unix::process::CommandExt;
    // exec, not a child: the warden becomes bubblewrap, so the grader's process
    // runner (deadline, group kill) holds the sandbox directly.
    let err = std::process::Command::new(&w.bwrap).args(&args).exec();
    Err(anyhow::Error::from(err).context(format!("cannot run {}", w.bwrap.display())))
}

/// What bubblewrap is asked to build.
struct Plan {
    /// Host paths of what is bound in.
    vlab: PathBuf,
    stage: PathBuf,
    submitted: PathBuf,
    workspace: PathBuf,
    /// The vlab cache: (source, where it goes). Inside at the host's own path,
    /// since the cache keys what it built by the paths it was built from.
    cache: Option<(PathBuf, PathBuf)>,
    /// (private file, path within the cache) bound over the cache's lock files.
    cache_locks: Vec<(PathBuf, PathBuf)>,
    /// (controller, directory) of the delegated cgroups, for the cgroup privilege.
    cgroup: Vec<(String, PathBuf)>,
    cgroup_v2: bool,
    privileges: Vec<Privilege>,
    /// In a user namespace as an ordinary uid, rather than as the host's root.
    unprivileged: bool,
    tmp_bytes: u64,
    /// Host top-level system directories: (name, Some(symlink target) or None for a directory).
    system: Vec<(String, Option<PathBuf>)>,
}

impl Plan {
    fn args(&self) -> Vec<OsString> {
        let mut a: Vec<OsString> = Vec::new();
        let mut push = |items: &[&OsStr]| a.extend(items.iter().map(|s| s.to_os_string()));
        let s = |x: &'static str| OsStr::new(x);
        push(&[s("--die-with-parent"), s("--new-session")]);
        push(&[s("--unshare-pid"), s("--unshare-net"), s("--unshare-ipc"), s("--unshare-uts")]);
        push(&[s("--unshare-cgroup-try"), s("--hostname"), s(HOSTNAME)]);
        if self.unprivileged {
            let id = OsString::from(INSIDE_UID.to_string());
            push(&[s("--unshare-user"), s("--uid"), &id, s("--gid"), &id]);
        }
        push(&[s("--ro-bind"), s("/usr"), s("/usr")]);
        for (name, link) in &self.system {
            let at = OsString::from(format!("/{name}"));
            match link {
                Some(target) => push(&[s("--symlink"), target.as_os_str(), &at]),
                None => push(&[s("--ro-bind"), &at, &at]),
            }
        }
        // The dynamic loader's cache and Debian's alternatives (awk, ...) from the host; the rest ours.
        for host in ["/etc/ld.so.cache", "/etc/alternatives"] {
            push(&[s("--ro-bind-try"), s(host), s(host)]);
        }
        for file in ["passwd", "group", "hosts", "hostname", "nsswitch.conf"] {
            let (target, at) = (format!("{STAGE_IN}/etc/{file}"), format!("/etc/{file}"));
            push(&[s("--symlink"), OsStr::new(&target), OsStr::new(&at)]);
        }
        push(&[s("--proc"), s("/proc"), s("--dev"), s("/dev"), s("--tmpfs"), s("/dev/shm")]);
        let tmp = OsString::from(self.tmp_bytes.to_string());
        push(&[s("--size"), &tmp, s("--tmpfs"), s("/tmp")]);
        push(&[s("--ro-bind"), self.vlab.as_os_str(), s(VLAB_IN)]);
        push(&[s("--ro-bind"), self.stage.as_os_str(), s(STAGE_IN)]);
        push(&[s("--ro-bind"), self.submitted.as_os_str(), s(SUBMITTED_IN)]);
        push(&[s("--bind"), self.workspace.as_os_str(), s(WORKSPACE_IN)]);
        if let Some((cache, at)) = &self.cache {
            push(&[s("--ro-bind"), cache.as_os_str(), at.as_os_str()]);
            for (file, rel) in &self.cache_locks {
                let to = at.join(rel);
                push(&[s("--bind"), file.as_os_str(), to.as_os_str()]);
            }
        }
        if !self.cgroup.is_empty() {
            // bubblewrap makes a bind's missing parents 0700; runc's init, as a
            // user namespace's mapped root, must still stat /sys/fs/cgroup.
            for dir in ["/sys", "/sys/fs", "/sys/fs/cgroup"] {
                push(&[s("--perms"), s("0755"), s("--dir"), s(dir)]);
            }
        }
        for (ctl, dir) in &self.cgroup {
            let at = crate::cgroup::mount_point(ctl, self.cgroup_v2);
            push(&[s("--bind"), dir.as_os_str(), at.as_os_str()]);
        }
        if self.privileges.contains(&Privilege::Kvm) {
            push(&[s("--dev-bind-try"), s("/dev/kvm"), s("/dev/kvm")]);
        }
        if !self.unprivileged && self.privileges.contains(&Privilege::Runc) {
            // Where the grader mounts a read-only sysfs (see `uncover_proc`).
            push(&[s("--dir"), s(SYSFS_IN)]);
        }
        push(&[s("--remount-ro"), s("/")]);
        push(&[s("--clearenv")]);
        let home = format!("{WORKSPACE_IN}/.tmp");
        // cache_dir() is $XDG_CACHE_HOME/vlab.
        let cache_home = self.cache.as_ref().and_then(|(_, at)| at.parent()).map(|p| p.to_string_lossy().into_owned());
        for (k, v) in [
            ("XDG_CACHE_HOME", cache_home.as_deref().unwrap_or("/nonexistent")),
            ("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
            ("HOME", WORKSPACE_IN),
            ("USER", if self.unprivileged { "student" } else { "root" }),
            ("TMPDIR", home.as_str()),
            ("LANG", "C.UTF-8"),
            ("NO_COLOR", "1"),
        ] {
            push(&[s("--setenv"), OsStr::new(k), OsStr::new(v)]);
        }
        push(&[s("--chdir"), s(WORKSPACE_IN), s("--cap-drop"), s("ALL")]);
        if !self.unprivileged {
            for cap in capabilities(&self.privileges) {
                push(&[s("--cap-add"), OsStr::new(cap)]);
            }
        }
        let spec = format!("{STAGE_IN}/spec.json");
        push(&[s("--"), s(VLAB_IN), s("__grade-one"), OsStr::new(&spec)]);
        a
    }
}

/// What runc needs to build a container as root, with each capability's
/// number; never CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_BOOT or
/// CAP_SYSLOG. CAP_MKNOD makes the container's /dev; the jail's devices
/// cgroup refuses every block device. (Not CAP_SYS_RESOURCE: bubblewrap 0.8
/// run as root then keeps every capability.)
const RUNC_CAPS: [(&str, u32); 16] = [
    ("CAP_CHOWN", 0),
    ("CAP_DAC_OVERRIDE", 1),
    ("CAP_FOWNER", 3),
    ("CAP_FSETID", 4),
    ("CAP_KILL", 5),
    ("CAP_SETGID", 6),
    ("CAP_SETUID", 7),
    ("CAP_SETPCAP", 8),
    ("CAP_NET_BIND_SERVICE", 10),
    ("CAP_NET_ADMIN", 12),
    ("CAP_SYS_CHROOT", 18),
    ("CAP_SYS_PTRACE", 19),
    ("CAP_SYS_ADMIN", CAP_SYS_ADMIN),
    ("CAP_MKNOD", 27),
    ("CAP_AUDIT_WRITE", 29),
    ("CAP_SETFCAP", 31),
];

/// Where a runc-privileged sandbox sees a read-only sysfs.
const SYSFS_IN: &str = "/run/vlab-sysfs";

/// linux/capability.h
const CAP_SYS_ADMIN: u32 = 21;

/// The capabilities a privileged lab keeps (all others are dropped).
fn capabilities(privileges: &[Privilege]) -> Vec<&'static str> {
    match privileges.contains(&Privilege::Runc) {
        true => RUNC_CAPS.iter().map(|(name, _)| *name).collect(),
        false => Vec::new(),
    }
}

/// The same as a mask of capability bits, as /proc/PID/status shows them.
fn capability_mask(privileges: &[Privilege]) -> u64 {
    match privileges.contains(&Privilege::Runc) {
        true => RUNC_CAPS.iter().fold(0, |m, (_, bit)| m | 1 << bit),
        false => 0,
    }
}

/// Refuses to grade if this process holds a capability beyond `allowed`:
/// a sandbox that kept more than it was asked to is no sandbox.
/// Removes the read-only bind mounts bubblewrap lays over parts of /proc
/// (irq, bus, sys, sysrq-trigger) when it runs as root. While any part of
/// the sandbox's /proc is covered, the kernel refuses a new procfs in a
/// nested user namespace (`mnt_already_visible` in fs/namespace.c), so runc
/// could not start a rootless container. Only a grader holding
/// CAP_SYS_ADMIN (the runc privilege) does this: the submission runs with
/// the same capabilities and could remove the covers itself, so they guard
/// nothing there.
fn uncover_proc() -> anyhow::Result<()> {
    let mounts = crate::container::mountinfo::of("self");
    let mut covers: Vec<&str> =
        mounts.iter().map(|m| m.mount_point.as_str()).filter(|p| p.starts_with("/proc/")).collect();
    // Deepest first, so a cover over a cover comes off before the one below it.
    covers.sort_by_key(|p| std::cmp::Reverse(p.len()));
    covers.dedup();
    for at in covers {
        let path = std::ffi::CString::new(at).context("a mount point under /proc holds a NUL byte")?;
        // SAFETY: umount2 takes a NUL-terminated path that outlives the call; the result is checked.
        if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } != 0 {
            let e = std::io::Error::last_os_error();
            anyhow::bail!("cannot remove bubblewrap's cover over {at} in the sandbox: {e}");
        }
    }
    Ok(())
}

/// Mounts a read-only sysfs at SYSFS_IN. The kernel lets a user namespace
/// mount sysfs (as runc does for a rootless container's /sys) only if a
/// sysfs is already fully visible in its mount namespace, as it is on any
/// host. Granted to the runc privilege only, whose grader, as the host's root
/// with CAP_SYS_ADMIN, could mount it anyway.
fn show_sysfs() -> anyhow::Result<()> {
    let at = std::ffi::CString::new(SYSFS_IN).context("SYSFS_IN holds a NUL byte")?;
    let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    // SAFETY: every pointer is a NUL-terminated string that outlives the call; the result is checked.
    let r = unsafe { libc::mount(c"sysfs".as_ptr(), at.as_ptr(), c"sysfs".as_ptr(), flags, std::ptr::null()) };
    if r != 0 {
        anyhow::bail!(
            "cannot mount a read-only sysfs at {SYSFS_IN} in the sandbox: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

fn check_capabilities(allowed: u64) -> anyhow::Result<()> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    for field in ["CapEff:", "CapPrm:", "CapAmb:"] {
        let held = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .with_context(|| format!("no {field} in /proc/self/status"))?;
        if held & !allowed != 0 {
            anyhow::bail!(
                "the sandbox kept capabilities it was told to drop ({field} {held:x}, allowed {allowed:x}); check the installed bubblewrap (`bwrap --version`)"
            );
        }
    }
    Ok(())
}

/// /bin, /sbin, /lib* as on the host: merged-/usr symlinks are recreated, real directories bound.
fn system_dirs() -> Vec<(String, Option<PathBuf>)> {
    ["bin", "sbin", "lib", "lib32", "lib64", "libx32"]
        .iter()
        .filter_map(|name| {
            let host = Path::new("/").join(name);
            let meta = std::fs::symlink_metadata(&host).ok()?;
            match meta.file_type().is_symlink() {
                true => Some((name.to_string(), Some(std::fs::read_link(&host).ok()?))),
                false => meta.is_dir().then(|| (name.to_string(), None)),
            }
        })
        .collect()
}

/// The cache's `.lock` files (two levels deep), relative to it.
fn lock_files(cache: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![(PathBuf::new(), 0)];
    while let Some((rel, depth)) = dirs.pop() {
        let Ok(rd) = std::fs::read_dir(cache.join(&rel)) else { continue };
        for e in rd.flatten() {
            let (name, ty) = (rel.join(e.file_name()), e.file_type());
            match ty {
                Ok(t) if t.is_dir() && depth < 1 => dirs.push((name, depth + 1)),
                Ok(t) if t.is_file() && e.file_name() == ".lock" => found.push(name),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

/// Makes sure the guest assets a lab boots are in the cache, outside any
/// sandbox (inside, the cache is read-only: a submission must not poison the
/// kernels its classmates boot). Once per lab and grader.
pub(crate) fn warm_cache(lab: &Lab) -> anyhow::Result<()> {
    if lab.prepare.iter().all(|p| *p == Prepare::BusyboxRootfs) {
        return Ok(());
    }
    let scratch = tempfile::tempdir()?;
    crate::prepare::prepare(lab, scratch.path())
        .with_context(|| format!("cannot prepare {}'s guest assets for grading (try `vlab prepare`)", lab.id))?;
    // What the lab links to (Debian's kernels, our initramfs: nothing secret)
    // must be readable by the sandbox's unprivileged uid; the cache writes some 0600.
    let mut dirs = vec![scratch.path().to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir)?.flatten() {
            let ty = e.file_type()?;
            if ty.is_dir() {
                dirs.push(e.path());
            } else if ty.is_symlink()
                && let Ok(target) = std::fs::canonicalize(e.path())
                && target.starts_with(crate::guest::assets::cache_dir())
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&target)?.permissions().mode();
                if mode & 0o044 != 0o044 {
                    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode | 0o044))
                        .with_context(|| format!("cannot make {} readable to the sandbox", target.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// Where the warden, in its private mount namespace, gathers what the
/// sandbox binds in: a fresh tmpfs over /run (any directory that always
/// exists would do; this one is never needed by bubblewrap or the checks).
const EXPOSED: &str = "/run";

fn expose_base() -> anyhow::Result<()> {
    mount(Some("tmpfs"), Path::new(EXPOSED), Some("tmpfs"), libc::MS_NOSUID | libc::MS_NODEV, Some("mode=0755"))
}

/// Binds `p` at /run/<name>, reachable by any uid (its own permissions still apply).
fn expose(name: &str, p: &Path) -> anyhow::Result<PathBuf> {
    let at = Path::new(EXPOSED).join(name);
    match p.is_dir() {
        true => std::fs::create_dir(&at)?,
        false => drop(std::fs::File::create(&at)?),
    }
    mount(Some(p.as_os_str().to_str().context("a path that is not UTF-8")?), &at, None, libc::MS_BIND, None)?;
    Ok(at)
}

fn mount(
    source: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> anyhow::Result<()> {
    let c = |s: &str| std::ffi::CString::new(s);
    let (source, fstype, data) = (source.map(c).transpose()?, fstype.map(c).transpose()?, data.map(c).transpose()?);
    let target_c = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())?;
    let ptr = |o: &Option<std::ffi::CString>| o.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: every pointer is null or a NUL-terminated string alive for the call.
    let rc = unsafe { libc::mount(ptr(&source), target_c.as_ptr(), ptr(&fstype), flags, ptr(&data).cast()) };
    if rc != 0 {
        anyhow::bail!("cannot mount {} for the sandbox: {}", target.display(), std::io::Error::last_os_error());
    }
    Ok(())
}

/// A new mount namespace for the warden, with nothing propagating back to the host.
fn private_mounts() -> anyhow::Result<()> {
    // SAFETY: unshare takes flags only; the warden is single-threaded here.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        anyhow::bail!("cannot make a mount namespace for the sandbox: {}", std::io::Error::last_os_error());
    }
    mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)
}

fn chown(p: &Path, id: u32) -> anyhow::Result<()> {
    std::os::unix::fs::chown(p, Some(id), Some(id))
        .with_context(|| format!("cannot hand {} to the sandbox's uid {id}", p.display()))
}

fn group_id(name: &str) -> Option<u32> {
    std::fs::read_to_string("/etc/group")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(":x:")?.split(':').next()?.parse().ok())
}

/// Becomes `uid`/`uid` with no supplementary groups but `extra` (e.g. kvm).
fn drop_to(uid: u32, extra: Option<u32>) -> anyhow::Result<()> {
    let groups: Vec<libc::gid_t> = extra.into_iter().collect();
    let fail = |what: &str| anyhow::anyhow!("cannot {what} for the sandbox: {}", std::io::Error::last_os_error());
    // SAFETY: `groups` outlives the call and its length is passed with it.
    if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
        return Err(fail("set the supplementary groups"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(uid, uid, uid) } != 0 {
        return Err(fail("set the gid"));
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresuid(uid, uid, uid) } != 0 {
        return Err(fail("set the uid"));
    }
    Ok(())
}

/// A sparse ext4 image loop-mounted on `mountpoint`, in the warden's private
/// mount namespace: it vanishes (and the loop device detaches) when the sandbox ends.
fn private_disk(mountpoint: &Path, mib: u64) -> anyhow::Result<()> {
    let image = mountpoint.with_extension("img");
    let f = std::fs::File::create(&image).with_context(|| format!("cannot create {}", image.display()))?;
    f.set_len(mib << 20)?;
    drop(f);
    let mkfs =
        Cmd::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image).timeout(Duration::from_secs(60)).run()?;
    anyhow::ensure!(mkfs.success(), "mkfs.ext4 {}: {}", mkfs.describe_end(), mkfs.stderr.trim());
    let mount =
        Cmd::new("mount").args(["-o", "loop"]).arg(&image).arg(mountpoint).timeout(Duration::from_secs(30)).run()?;
    anyhow::ensure!(mount.success(), "mount {}: {}", mount.describe_end(), mount.stderr.trim());
    // The image is only reachable through the mount now; unlink it so nothing stays behind.
    let _ = std::fs::remove_file(&image);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(privileges: Vec<Privilege>, unprivileged: bool) -> Plan {
        Plan {
            vlab: "/x/vlab".into(),
            stage: "/x/stage".into(),
            submitted: "/x/submitted".into(),
            workspace: "/x/ws".into(),
            cache: None,
            cache_locks: Vec::new(),
            cgroup: match privileges.contains(&Privilege::Cgroup) {
                true => vec![("pids".into(), "/sys/fs/cgroup/pids/vlab-grade-1-a/sandbox".into())],
                false => Vec::new(),
            },
            cgroup_v2: false,
            privileges,
            unprivileged,
            tmp_bytes: 1 << 20,
            system: vec![("bin".into(), Some("usr/bin".into())), ("lib64".into(), None)],
        }
    }

    fn text(p: &Plan) -> String {
        p.args().iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn an_unprivileged_sandbox_binds_only_what_checks_need() {
        let t = text(&plan(Vec::new(), true));
        assert!(t.contains("--unshare-user --uid 1000 --gid 1000"), "{t}");
        assert!(t.contains("--symlink usr/bin /bin") && t.contains("--ro-bind /lib64 /lib64"), "{t}");
        assert!(t.contains("--ro-bind /x/stage /opt/vlab/stage") && t.contains("--bind /x/ws /home/student"), "{t}");
        assert!(t.contains("--remount-ro / --clearenv"), "{t}");
        assert!(t.contains("--cap-drop ALL --"), "{t}");
        assert!(t.ends_with("-- /opt/vlab/vlab __grade-one /opt/vlab/stage/spec.json"), "{t}");
        for never in ["/home ", "/root", "--bind / ", "--dev-bind /dev ", "shadow", "--cap-add", "/sys"] {
            assert!(!t.contains(never), "{never} in {t}");
        }
    }

    #[test]
    fn privileges_grant_exactly_what_they_name() {
        let p = plan(vec![Privilege::Cgroup], false);
        let t = text(&p);
        assert!(!t.contains("--unshare-user") && !t.contains("--cap-add"), "{t}");
        assert!(t.contains("--bind /sys/fs/cgroup/pids/vlab-grade-1-a/sandbox /sys/fs/cgroup/pids"), "{t}");
        let t = text(&plan(vec![Privilege::Kvm], true));
        assert!(t.contains("--dev-bind-try /dev/kvm /dev/kvm"), "{t}");
        let t = text(&plan(vec![Privilege::Runc], false));
        assert!(t.contains("--cap-drop ALL --cap-add") && t.contains("--cap-add CAP_SYS_ADMIN"), "{t}");
        assert!(t.contains("--dir /run/vlab-sysfs --remount-ro /"), "runc may mount sysfs in a user namespace: {t}");
        assert!(!t.contains("CAP_SYS_MODULE") && !t.contains("CAP_SYS_RAWIO") && !t.contains("RESOURCE"), "{t}");
        assert_eq!(capability_mask(&[Privilege::Runc]).count_ones(), 16);
        assert_eq!(capability_mask(&[Privilege::Runc]) & (1 << 16 | 1 << 17 | 1 << 24), 0);
    }
}
