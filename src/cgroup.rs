//! cgroups, at the bottom: the one place that knows where they are mounted
//! (/sys/fs/cgroup) and how they differ between v1, v2 and hybrid hosts.
//!
//! - [`detect`]: the mode, and which controllers this user may write.
//! - [`Group`]: a group per controller (one directory on v2) with optional
//!   limits, for a check's cgroups and the grader's jail.
//! - [`RunBase`] and [`RunGroup`]: where the process runner puts each child it
//!   starts, joined before it runs, killed with `cgroup.kill` (v2) or frozen
//!   then killed (v1 freezer).
//! - [`Owned`]: a directory this runner made, held under a shared flock while
//!   it lives, so that another runner's stale sweep ([`remove_stale`]) knows
//!   it is in use even from another PID namespace.
//!
//! It imports nothing of vlab but `procfs` (to send signals): the supervisor,
//! the runner, the labs and the grader build on it.

use std::collections::BTreeSet;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Where every cgroup hierarchy is mounted.
const ROOT: &str = "/sys/fs/cgroup";

/// Controllers a lab may use and the grader limits, as v1 names its hierarchies.
pub(crate) const CONTROLLERS: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];

/// Prefix of every group a runner makes below its own; the runner's pid
/// follows (`vlab-<pid>-...`), which [`leftovers`] looks for.
pub(crate) const PREFIX: &str = "vlab-";

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("no cgroup filesystem is mounted under {ROOT}")]
    NotMounted,
    #[error("no cgroup v1 controller hierarchy under {ROOT} could be used")]
    NoController,
    #[error("cannot create the cgroup {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
    #[error("cannot remove the cgroup {}: {source}", path.display())]
    Remove { path: PathBuf, source: io::Error },
    /// No group for children can be made here; the reasons, one per hierarchy tried.
    #[error("{0}")]
    NoRunBase(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    V1,
    V2,
    Hybrid,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupInfo {
    pub(crate) mode: Mode,
    /// Controllers whose hierarchy we can create groups in.
    pub writable: Vec<String>,
    pub(crate) reason: String,
}

fn c_path(p: &Path) -> Option<std::ffi::CString> {
    std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()
}

fn fs_magic(p: &Path) -> Option<i64> {
    let c = c_path(p)?;
    // SAFETY: statfs is plain data, valid all-zero.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs; the result is checked.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn is_cgroup2(p: &Path) -> bool {
    fs_magic(p) == Some(CGROUP2_SUPER_MAGIC)
}

fn writable(p: &Path) -> bool {
    let Some(c) = c_path(p) else { return false };
    // SAFETY: `c` is a NUL-terminated path; access only reads it. Any failure means "not writable".
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The cgroup mode and the controllers this user may make groups in.
pub(crate) fn detect() -> CgroupInfo {
    let root = Path::new(ROOT);
    if is_cgroup2(root) {
        let controllers = read(&root.join("cgroup.controllers")).unwrap_or_default();
        let writable: Vec<String> = if writable(root) {
            CONTROLLERS
                .iter()
                .filter(|c| controllers.split_whitespace().any(|x| x == **c))
                .map(|c| c.to_string())
                .collect()
        } else {
            Vec::new()
        };
        let reason = if writable.is_empty() {
            "cgroup v2 is mounted but not writable by this user (run as root or under a delegated systemd scope)"
        } else {
            "unified cgroup v2 hierarchy"
        };
        return CgroupInfo { mode: Mode::V2, writable, reason: reason.into() };
    }
    let v1: Vec<String> = CONTROLLERS.iter().filter(|c| root.join(c).is_dir()).map(|c| c.to_string()).collect();
    if v1.is_empty() {
        return CgroupInfo {
            mode: Mode::None,
            writable: Vec::new(),
            reason: format!("no cgroup filesystem under {ROOT}"),
        };
    }
    let hybrid = is_cgroup2(&root.join("unified"));
    let writable: Vec<String> = v1.into_iter().filter(|c| writable(&root.join(c))).collect();
    let mode = if hybrid { Mode::Hybrid } else { Mode::V1 };
    let reason = match (hybrid, writable.is_empty()) {
        (_, true) => "cgroup v1 controllers are mounted but not writable by this user (run as root)".to_string(),
        (true, false) => format!(
            "hybrid: v1 controllers with an empty v2 hierarchy at {ROOT}/unified (runc works; crun refuses this mode)"
        ),
        (false, false) => "legacy cgroup v1 hierarchy".to_string(),
    };
    CgroupInfo { mode, writable, reason }
}

/// This process's own group in the hierarchy `v1` names (a v1 controller) or
/// the v2 one (`None`), from /proc/self/cgroup.
fn own_path(v1: Option<&str>) -> Option<String> {
    let mine = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    mine.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (id, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match v1 {
            None => id == "0" && ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        hit.then(|| path.trim_start_matches('/').to_string())
    })
}

/// `base` joined with a group path from /proc/self/cgroup (empty at the root).
fn below(base: PathBuf, group: Option<String>) -> PathBuf {
    match group.filter(|g| !g.is_empty()) {
        Some(g) => base.join(g),
        None => base,
    }
}

/// Where a controller's groups are made: under the runner's own group in
/// that hierarchy (so limits the host put on the runner still hold).
pub(crate) fn own_base(controller: &str, v2: bool) -> Option<PathBuf> {
    if v2 {
        // A v2 group holding processes cannot give its children controllers:
        // use the root's level, which may.
        return Some(PathBuf::from(ROOT));
    }
    Some(Path::new(ROOT).join(controller).join(own_path(Some(controller))?))
}

/// Where a group of `controller` is seen inside a sandbox that mounts it at
/// the usual place (on v2, the one hierarchy).
pub(crate) fn mount_point(controller: &str, v2: bool) -> PathBuf {
    match v2 {
        true => PathBuf::from(ROOT),
        false => Path::new(ROOT).join(controller),
    }
}

/// Writes a cgroup file, naming it in the error.
pub(crate) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    std::fs::write(path, value).map_err(|source| CgroupError::Write { path: path.to_path_buf(), source })
}

/// A cgroup file's contents, trimmed; `None` where it cannot be read.
pub(crate) fn read(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// `key value` lines (cpu.stat, memory.events, pids.events, memory.oom_control).
pub(crate) fn keyed(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix(' ').map(|v| v.trim().to_string()))
}

/// Every directory below `dir`, deepest first.
pub(crate) fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.filter_map(|e| e.ok()).filter(|e| e.file_type().is_ok_and(|t| t.is_dir())) {
            out.extend(subdirs(&e.path()));
            out.push(e.path());
        }
    }
    out
}

/// The processes in the group `dir` itself (not below it).
pub(crate) fn procs(dir: &Path) -> Vec<i32> {
    read(&dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// SIGKILL to every process in `dir` and below: at once with `cgroup.kill`
/// where the kernel has it (v2), else one by one.
pub(crate) fn kill_tree(dir: &Path) {
    if std::fs::write(dir.join("cgroup.kill"), "1").is_ok() {
        return;
    }
    for d in std::iter::once(dir.to_path_buf()).chain(subdirs(dir)) {
        for pid in procs(&d) {
            // The caller retries while any is left; one we may not signal stays for it to report.
            let _ = crate::procfs::sigkill(pid);
        }
    }
}

/// Kills every process in `dir` and below, then removes the directories,
/// deepest first, retrying for up to five seconds while killed processes
/// finish exiting.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    remove_tree_within(dir, Duration::from_secs(5))
}

/// [`remove_tree`] with its own patience (the interrupt handler waits at most a second).
pub(crate) fn remove_tree_within(dir: &Path, patience: Duration) -> Result<(), CgroupError> {
    let deadline = Instant::now() + patience;
    loop {
        kill_tree(dir);
        let mut all = subdirs(dir);
        all.push(dir.to_path_buf());
        let mut last = Ok(());
        for d in &all {
            if let Err(source) = std::fs::remove_dir(d)
                && source.kind() != io::ErrorKind::NotFound
            {
                last = Err(CgroupError::Remove { path: d.clone(), source });
            }
        }
        match last {
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            other => return other,
        }
    }
}

/// A group directory this runner made. While the value lives its directory is
/// held open under a shared flock: the mark of a live owner that other runners
/// can test even from another PID namespace, where our pid means nothing (see
/// [`abandoned`]). Dropping it kills what is left inside and removes it.
#[derive(Debug)]
pub(crate) struct Owned {
    path: PathBuf,
    _lock: Option<File>,
    /// Removed already (or given up on): nothing left for `Drop`.
    done: bool,
}

impl Owned {
    /// Creates the group `dir` and takes its lock.
    pub(crate) fn make(dir: &Path) -> Result<Owned, CgroupError> {
        let create = |source| CgroupError::Create { path: dir.to_path_buf(), source };
        std::fs::create_dir(dir).map_err(create)?;
        let lock = match std::fs::File::open(dir) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir(dir);
                return Err(create(e));
            }
        };
        // SAFETY: flock on a descriptor we own; the result is checked.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
            let e = io::Error::last_os_error();
            let _ = std::fs::remove_dir(dir);
            return Err(create(e));
        }
        Ok(Owned { path: dir.to_path_buf(), _lock: Some(lock), done: false })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Kills what is inside and removes the directories, saying why not.
    /// Either way the group is no longer held: one that could not be removed
    /// is left to the stale sweep.
    pub(crate) fn remove(mut self) -> Result<(), CgroupError> {
        self.done = true;
        remove_tree(&self.path)
    }

    /// Lets go of the lock and leaves the group, as a runner killed mid-check would.
    #[cfg(test)]
    fn abandon(mut self) -> PathBuf {
        self.done = true;
        self._lock = None;
        self.path.clone()
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        if !self.done {
            let _ = remove_tree(&self.path);
        }
    }
}

/// No live runner holds `dir`: its lock is free, and it is older than the
/// moment between a runner's mkdir and its flock.
pub(crate) fn abandoned(dir: &Path) -> bool {
    let Ok(file) = std::fs::File::open(dir) else { return false };
    let settled = file.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() >= 5));
    // SAFETY: flock on a descriptor we own; the lock dies with `file` at the end of this call.
    settled && unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0
}

/// The directories runners make their groups in: the labs' bases and the run groups' bases.
fn bases() -> BTreeSet<PathBuf> {
    let v2 = detect().mode == Mode::V2;
    let mut bases: BTreeSet<PathBuf> = match v2 {
        true => own_base("", true).into_iter().collect(),
        false => CONTROLLERS.iter().filter_map(|c| own_base(c, false)).collect(),
    };
    bases.extend(RunBase::candidates());
    bases
}

/// Every group directly below the runner's own group in each hierarchy.
pub(crate) fn own_groups() -> Vec<PathBuf> {
    bases()
        .iter()
        .filter_map(|b| std::fs::read_dir(b).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect()
}

/// The runner pid in a group name `vlab-<pid>-<tag>`.
fn owner(dir: &Path) -> Option<i32> {
    let name = dir.file_name()?.to_string_lossy().into_owned();
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

/// Groups named `vlab-<pid>-...` under the runner's own groups, whichever runner made them.
pub(crate) fn leftovers() -> Vec<PathBuf> {
    own_groups().into_iter().filter(|p| owner(p).is_some()).collect()
}

/// Removes groups left behind by runners that no longer exist. Not by the
/// pid in the name: from inside a PID namespace every runner outside looks
/// dead, and removing a group kills what runs in it.
pub(crate) fn remove_stale() {
    for dir in leftovers() {
        if abandoned(&dir) {
            let _ = remove_tree(&dir);
        }
    }
}

/// Groups at the top of each hierarchy whose name starts with `prefix`
/// (the grader's jails, which are made there).
pub(crate) fn top_groups(prefix: &str) -> Vec<PathBuf> {
    let tops = std::iter::once(PathBuf::from(ROOT)).chain(CONTROLLERS.iter().map(|c| Path::new(ROOT).join(c)));
    tops.filter_map(|t| std::fs::read_dir(t).ok())
        .flat_map(|rd| rd.filter_map(|e| e.ok()))
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir())
        .map(|e| e.path())
        .collect()
}

/// Where a [`Group`] is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    /// Below the runner's own group in each v1 hierarchy (so limits the host
    /// put on the runner still hold); on v2 at the root's level.
    Own,
    /// At the top of each hierarchy.
    Top,
}

/// Limits set on a [`Group`] as it is made; `None` leaves the kernel's default.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Limits {
    pub(crate) pids: Option<u32>,
    pub(crate) memory_bytes: Option<u64>,
    /// Deny reading and writing every block device (v1 `devices`; v2 has no file for it).
    pub(crate) deny_block_devices: bool,
}

/// One group per controller (one directory on v2), with its limits, killed
/// and removed when dropped.
#[derive(Debug)]
pub(crate) struct Group {
    v2: bool,
    /// (controller, directory), in the order asked; on v2 one entry named "".
    dirs: Vec<(String, PathBuf)>,
    /// Controllers enabled for the group's children (v2).
    controllers: Vec<String>,
    /// Each directory once, in the order made.
    owned: Vec<Owned>,
}

impl Group {
    /// Makes `name` in the hierarchy of each of `controllers` that the host
    /// has (v1), or once with those controllers enabled for it and its
    /// children (v2), and sets `limits`.
    pub(crate) fn create(
        name: &str,
        controllers: &[&str],
        place: Place,
        limits: &Limits,
    ) -> Result<Group, CgroupError> {
        let v2 = match detect().mode {
            Mode::V2 => true,
            Mode::V1 | Mode::Hybrid => false,
            Mode::None => return Err(CgroupError::NotMounted),
        };
        let controllers: Vec<String> = controllers.iter().map(|c| c.to_string()).collect();
        let mut group = Group { v2, dirs: Vec::new(), controllers: controllers.clone(), owned: Vec::new() };
        // (controller, where its group goes); on v2 one hierarchy for all.
        let bases: Vec<(String, PathBuf)> = match v2 {
            true => vec![(String::new(), PathBuf::from(ROOT))],
            false => controllers
                .iter()
                .filter_map(|c| match place {
                    Place::Own => own_base(c, false).map(|b| (c.clone(), b)),
                    Place::Top => Some((c.clone(), Path::new(ROOT).join(c))),
                })
                .filter(|(_, b)| b.is_dir())
                .collect(),
        };
        for (c, base) in bases {
            if v2 {
                group.enable(&base);
            }
            let owned = Owned::make(&base.join(name))?;
            let dir = owned.path().to_path_buf();
            group.owned.push(owned);
            group.dirs.push((c.clone(), dir.clone()));
            if v2 {
                group.enable(&dir);
            }
            copy_cpuset(&c, &dir)?;
            for (file, value) in limit_files(&c, v2, limits) {
                write(&dir.join(file), &value)?;
            }
        }
        if group.dirs.is_empty() {
            return Err(CgroupError::NoController);
        }
        Ok(group)
    }

    /// Enables the group's controllers for the children of `dir` (v2), each
    /// alone: one the host lacks or has enabled already changes nothing.
    fn enable(&self, dir: &Path) {
        let ctl = dir.join("cgroup.subtree_control");
        let on = read(&ctl).unwrap_or_default();
        for c in self.controllers.iter().filter(|c| !on.split_whitespace().any(|x| x == c.as_str())) {
            let _ = std::fs::write(&ctl, format!("+{c}"));
        }
    }

    /// Makes the group `rel` below the group in every hierarchy: on v2 with
    /// the controllers enabled for it, on v1 with a cpuset's CPUs and memory
    /// nodes. (A v2 group that holds processes must not enable controllers
    /// for children of its own, so `rel` itself gets none.)
    pub(crate) fn add_child(&self, rel: &str) -> Result<(), CgroupError> {
        for (c, dir) in &self.dirs {
            let child = dir.join(rel);
            if self.v2 {
                self.enable(child.parent().unwrap_or(dir));
            }
            std::fs::create_dir(&child).map_err(|source| CgroupError::Create { path: child.clone(), source })?;
            copy_cpuset(c, &child)?;
        }
        Ok(())
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.v2
    }

    /// (controller, directory) of each hierarchy; on v2 one entry named "".
    pub(crate) fn dirs(&self) -> &[(String, PathBuf)] {
        &self.dirs
    }

    /// Kills every process in the groups and removes them all, saying why not.
    pub(crate) fn remove(mut self) -> Result<(), CgroupError> {
        let mut result = Ok(());
        while let Some(owned) = self.owned.pop() {
            if let Err(e) = owned.remove() {
                result = result.and(Err(e));
            }
        }
        result
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // In the reverse order they were made; each `Owned` kills and removes its tree.
        while self.owned.pop().is_some() {}
    }
}

/// The files that set `limits` in a group of `controller` (on v2, "": the one
/// group of every controller), with their values.
fn limit_files(controller: &str, v2: bool, limits: &Limits) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(n) = limits.pids
        && (v2 || controller == "pids")
    {
        out.push(("pids.max", n.to_string()));
    }
    if let Some(n) = limits.memory_bytes
        && (v2 || controller == "memory")
    {
        out.push((if v2 { "memory.max" } else { "memory.limit_in_bytes" }, n.to_string()));
    }
    if limits.deny_block_devices && !v2 && controller == "devices" {
        out.push(("devices.deny", "b *:* rw".to_string()));
    }
    out
}

/// A v1 cpuset takes no tasks (nor children with CPUs) until it has CPUs and
/// memory nodes: `dir` gets its parent's.
fn copy_cpuset(controller: &str, dir: &Path) -> Result<(), CgroupError> {
    if controller != "cpuset" {
        return Ok(());
    }
    let parent = dir.parent().unwrap_or(Path::new(ROOT));
    for f in ["cpuset.cpus", "cpuset.mems"] {
        write(&dir.join(f), &read(&parent.join(f)).unwrap_or_default())?;
    }
    Ok(())
}

/// Where the runner can put each child it starts so that nothing the child
/// does (setsid, double fork, a scrubbed environment) takes it out of reach:
/// a v2 group killed with `cgroup.kill` (the unified hierarchy of a hybrid
/// host counts), else a v1 freezer group frozen, then killed. On v1 and
/// hybrid hosts a blkio group beside it counts the bytes the child's
/// processes sent to block devices themselves.
#[derive(Debug, Clone)]
pub(crate) struct RunBase {
    member: Member,
    blkio: Option<PathBuf>,
}

/// How a run group holds its processes and kills them.
#[derive(Debug, Clone, PartialEq)]
enum Member {
    V2(PathBuf),
    Freezer(PathBuf),
}

impl Member {
    fn dir(&self) -> &Path {
        match self {
            Member::V2(d) | Member::Freezer(d) => d,
        }
    }
}

/// Tries a group below `base` once: can it be made, and does it have `file`?
fn usable(base: &Path, file: &str) -> Result<(), String> {
    let probe = base.join(format!("{PREFIX}{}-probe", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("cannot create a group in {}: {e}", base.display()))?;
    let has = probe.join(file).exists();
    let _ = std::fs::remove_dir(&probe);
    if has { Ok(()) } else { Err(format!("{} has no {file} (the kernel is older than 5.14)", base.display())) }
}

impl RunBase {
    /// The unified hierarchy: the root on v2, `unified` on a hybrid host.
    fn unified() -> Option<PathBuf> {
        let root = Path::new(ROOT);
        [root.to_path_buf(), root.join("unified")].into_iter().find(|p| is_cgroup2(p))
    }

    /// Finds where run groups go (this makes and removes a probe group in
    /// each hierarchy it tries), or why they cannot be made.
    pub(crate) fn find() -> Result<RunBase, CgroupError> {
        let root = Path::new(ROOT);
        let mut why = Vec::new();
        let mut member = None;
        if let Some(u) = RunBase::unified() {
            let base = below(u, own_path(None));
            match usable(&base, "cgroup.kill") {
                Ok(()) => member = Some(Member::V2(base)),
                Err(e) => why.push(e),
            }
        }
        if member.is_none() && !is_cgroup2(root) {
            let base = below(root.join("freezer"), own_path(Some("freezer")));
            match usable(&base, "freezer.state") {
                Ok(()) => member = Some(Member::Freezer(base)),
                Err(e) => why.push(e),
            }
        }
        let Some(member) = member else {
            if why.is_empty() {
                why.push(format!("no cgroup v2 hierarchy nor v1 freezer under {ROOT}"));
            }
            return Err(CgroupError::NoRunBase(why.join("; ")));
        };
        let blkio = (!is_cgroup2(root))
            .then(|| below(root.join("blkio"), own_path(Some("blkio"))))
            .filter(|b| usable(b, "blkio.throttle.io_service_bytes").is_ok());
        Ok(RunBase { member, blkio })
    }

    /// Where run groups would go, usable or not (for the stale sweep).
    fn candidates() -> Vec<PathBuf> {
        let root = Path::new(ROOT);
        let mut out: Vec<PathBuf> = RunBase::unified().map(|u| below(u, own_path(None))).into_iter().collect();
        if !is_cgroup2(root) {
            for c in ["freezer", "blkio"] {
                out.push(below(root.join(c), own_path(Some(c))));
            }
        }
        out
    }

    /// How children are contained, for `vlab doctor`.
    pub(crate) fn describe(&self) -> String {
        let how = match &self.member {
            Member::V2(d) => format!("each child in its own cgroup under {}, killed with cgroup.kill", d.display()),
            Member::Freezer(d) => {
                format!("each child in its own freezer cgroup under {}, frozen then killed", d.display())
            }
        };
        let io = if self.blkio.is_some() {
            "; block writes counted by blkio"
        } else {
            "; block writes from rusage (bytes dirtied, not flushed)"
        };
        format!("{how}{io}")
    }
}

/// One child's groups: it joins them before it runs (a pre-exec write of `0`
/// to each `cgroup.procs`, through [`RunGroup::procs_fds`]), everything it
/// starts stays in them, and [`RunGroup::kill`] ends them all however they
/// detached. Dropping it kills what is left and removes the groups.
#[derive(Debug)]
pub(crate) struct RunGroup {
    member: Member,
    /// The blkio group, where a throttle rule makes the kernel count.
    blkio: Option<PathBuf>,
    /// cgroup.procs of each group, open for the child to write itself into.
    procs: Vec<File>,
    owned: Vec<Owned>,
}

impl RunGroup {
    /// Makes the groups `name` under `base` (`name` should be `vlab-<runner pid>-...`).
    pub(crate) fn create(base: &RunBase, name: &str) -> Result<RunGroup, CgroupError> {
        let member_dir = Owned::make(&base.member.dir().join(name))?;
        let member = match &base.member {
            Member::V2(_) => Member::V2(member_dir.path().to_path_buf()),
            Member::Freezer(_) => Member::Freezer(member_dir.path().to_path_buf()),
        };
        let mut group = RunGroup { member, blkio: None, procs: Vec::new(), owned: vec![member_dir] };
        if let Some(b) = &base.blkio {
            let dir = Owned::make(&b.join(name))?;
            // The kernel keeps per-group byte counts only where a throttle rule
            // applies: a limit no disk reaches makes it count, and slows nothing.
            let rule = dir.path().join("blkio.throttle.write_bps_device");
            let counted = block_devices()
                .iter()
                .filter(|dev| std::fs::write(&rule, format!("{dev} {}", 1u64 << 50)).is_ok())
                .count();
            // Where no disk takes a rule, rusage's count stands in (and `dir` is removed as it drops).
            if counted > 0 {
                group.blkio = Some(dir.path().to_path_buf());
                group.owned.push(dir);
            }
        }
        for dir in group.dirs() {
            let path = dir.join("cgroup.procs");
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| CgroupError::Write { path: path.clone(), source })?;
            group.procs.push(file);
        }
        Ok(group)
    }

    /// The group directories (member, and blkio where it counts).
    pub(crate) fn dirs(&self) -> Vec<PathBuf> {
        self.owned.iter().map(|o| o.path().to_path_buf()).collect()
    }

    /// Descriptors of the `cgroup.procs` files; writing `0` to each moves the writer in.
    pub(crate) fn procs_fds(&self) -> Vec<std::os::fd::RawFd> {
        self.procs.iter().map(|f| f.as_raw_fd()).collect()
    }

    /// SIGKILL to everything in the group, including what forks meanwhile;
    /// returns the processes it found there, for the caller to reap.
    pub(crate) fn kill(&self) -> Vec<i32> {
        match &self.member {
            Member::V2(dir) => {
                let pids = procs(dir);
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                pids
            }
            Member::Freezer(dir) => {
                // Frozen, nothing in it can fork while it is listed and killed.
                let state = dir.join("freezer.state");
                let _ = std::fs::write(&state, "FROZEN");
                let until = Instant::now() + Duration::from_secs(1);
                while read(&state).is_some_and(|s| s != "FROZEN") && Instant::now() < until {
                    std::thread::sleep(Duration::from_millis(1));
                }
                let pids = procs(dir);
                for pid in &pids {
                    // Best effort: the caller kills the tree it knows of too, and reaps.
                    let _ = crate::procfs::sigkill(*pid);
                }
                let _ = std::fs::write(&state, "THAWED");
                pids
            }
        }
    }

    /// CPU time of everything that ran in the group (v2 only: v1 keeps it in cpuacct).
    pub(crate) fn cpu(&self) -> Option<(Duration, Duration)> {
        let Member::V2(dir) = &self.member else { return None };
        let stat = read(&dir.join("cpu.stat"))?;
        let us = |k: &str| keyed(&stat, k).and_then(|v| v.parse::<u64>().ok()).map(Duration::from_micros);
        Some((us("user_usec")?, us("system_usec")?))
    }

    /// How long the group's processes waited for a CPU while runnable (cpu.pressure, `some`).
    pub(crate) fn cpu_wait(&self) -> Option<Duration> {
        let Member::V2(dir) = &self.member else { return None };
        let text = read(&dir.join("cpu.pressure"))?;
        let some = text.lines().find(|l| l.starts_with("some "))?;
        let total = some.split_whitespace().find_map(|f| f.strip_prefix("total="))?;
        total.parse().ok().map(Duration::from_micros)
    }

    /// Bytes the group's processes themselves sent to block devices (an
    /// fsync's writes; not what the kernel's flusher writes back later).
    pub(crate) fn block_write_bytes(&self) -> Option<u64> {
        let text = read(&self.blkio.as_ref()?.join("blkio.throttle.io_service_bytes_recursive"))?;
        Some(
            text.lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.len() == 3 && f[1] == "Write").then(|| f[2].parse::<u64>().ok()).flatten()
                })
                .sum(),
        )
    }
}

impl Drop for RunGroup {
    /// Closes the `cgroup.procs` files, then each `Owned` kills what is left
    /// and removes its group once the killed processes have left it.
    fn drop(&mut self) {
        self.procs.clear();
        self.owned.clear();
    }
}

/// `major:minor` of every whole disk (throttle rules take no partitions).
fn block_devices() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/block") else { return Vec::new() };
    rd.filter_map(|e| read(&e.ok()?.path().join("dev"))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root_with_cgroups() -> bool {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 || detect().writable.is_empty() {
            crate::testing::skip("cgroups are not writable here (needs root)");
            return false;
        }
        true
    }

    #[test]
    fn detects_some_mode_with_a_reason() {
        assert!(!detect().reason.is_empty());
    }

    #[test]
    fn limits_go_to_the_files_of_their_controller() {
        let l = Limits { pids: Some(10), memory_bytes: Some(4096), deny_block_devices: true };
        assert_eq!(limit_files("", true, &l), [("pids.max", "10".into()), ("memory.max", "4096".into())]);
        assert_eq!(limit_files("memory", false, &l), [("memory.limit_in_bytes", "4096".to_string())]);
        assert_eq!(limit_files("devices", false, &l), [("devices.deny", "b *:* rw".to_string())]);
        assert!(limit_files("cpu", false, &l).is_empty());
        assert!(limit_files("pids", false, &Limits::default()).is_empty());
    }

    #[test]
    fn keyed_lines_are_found_exactly() {
        let t = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed(t, "oom_kill").as_deref(), Some("3"));
        assert_eq!(keyed("max 12\n", "max").as_deref(), Some("12"));
        assert_eq!(keyed("throttled_usec 5\n", "throttled"), None);
    }

    /// A runner's group is known live by the lock it holds, not by its pid
    /// (which another PID namespace cannot see); an old group nobody holds is stale.
    #[test]
    fn a_group_is_stale_only_when_no_runner_holds_it() {
        if !root_with_cgroups() {
            return;
        }
        let base = own_base("pids", detect().mode == Mode::V2).unwrap();
        let backdate = |dir: &Path| {
            let then = std::time::SystemTime::now() - Duration::from_secs(3600);
            std::fs::File::open(dir).unwrap().set_times(std::fs::FileTimes::new().set_modified(then)).unwrap();
        };
        // Named for a pid that no process has: the old rule called it stale at once.
        let held = Owned::make(&base.join(format!("{PREFIX}999999999-held{:08x}", rand::random::<u32>()))).unwrap();
        backdate(held.path());
        let held_is_live = !abandoned(held.path());
        let dropped =
            Owned::make(&base.join(format!("{PREFIX}999999999-dropped{:08x}", rand::random::<u32>()))).unwrap();
        let fresh_is_live = !abandoned(dropped.path());
        let path = dropped.abandon();
        backdate(&path);
        let dropped_is_stale = abandoned(&path);
        drop(held);
        let _ = remove_tree(&path);
        assert!(held_is_live, "a group its runner still holds was taken for stale");
        assert!(fresh_is_live, "a group made just now was taken for stale");
        assert!(dropped_is_stale, "an old group no runner holds was not taken for stale");
    }

    #[test]
    fn a_group_with_limits_is_made_and_removed() {
        if !root_with_cgroups() {
            return;
        }
        let limits = Limits { pids: Some(7), memory_bytes: Some(64 << 20), deny_block_devices: false };
        let name = format!("{PREFIX}{}-unit{:08x}", std::process::id(), rand::random::<u32>());
        let g = Group::create(&name, &["pids", "memory"], Place::Own, &limits).unwrap();
        g.add_child("inner").unwrap();
        let pids_dir = g.dirs().iter().find(|(c, _)| c == "pids" || c.is_empty()).unwrap().1.clone();
        assert_eq!(read(&pids_dir.join("pids.max")).as_deref(), Some("7"));
        assert!(pids_dir.join("inner").is_dir());
        let dirs: Vec<PathBuf> = g.dirs().iter().map(|(_, d)| d.clone()).collect();
        g.remove().unwrap();
        assert!(dirs.iter().all(|d| !d.exists()), "groups left behind: {dirs:?}");
    }
}
