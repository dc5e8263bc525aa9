//! cgroup mode (v1, v2 or hybrid) and which controllers vlab may write.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

const ROOT: &str = "/sys/fs/cgroup";

fn fs_magic(p: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: statfs is plain data, valid all-zero.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs; the result is checked.
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn writable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    // SAFETY: `c` is a NUL-terminated path; access only reads it.
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

/// The cgroup mode and what may be written, with how the runner contains
/// the children it starts (said once, here, when it has to fall back).
pub fn detect() -> CgroupInfo {
    let mut info = detect_mode();
    info.reason = format!("{}; {}", info.reason, RunBase::describe());
    info
}

fn detect_mode() -> CgroupInfo {
    let root = Path::new("/sys/fs/cgroup");
    let wanted = ["cpu", "cpuset", "memory", "pids"];
    if fs_magic(root) == Some(CGROUP2_SUPER_MAGIC) {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers")).unwrap_or_default();
        let writable: Vec<String> = if writable(root) {
            wanted.iter().filter(|c| controllers.split_whitespace().any(|x| x == **c)).map(|c| c.to_string()).collect()
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
    let v1: Vec<String> = wanted.iter().filter(|c| root.join(c).is_dir()).map(|c| c.to_string()).collect();
    if v1.is_empty() {
        return CgroupInfo {
            mode: Mode::None,
            writable: Vec::new(),
            reason: "no cgroup filesystem under /sys/fs/cgroup".into(),
        };
    }
    let hybrid = fs_magic(&root.join("unified")) == Some(CGROUP2_SUPER_MAGIC);
    let writable: Vec<String> = v1.into_iter().filter(|c| writable(&root.join(c))).collect();
    let mode = if hybrid { Mode::Hybrid } else { Mode::V1 };
    let reason = match (hybrid, writable.is_empty()) {
        (_, true) => "cgroup v1 controllers are mounted but not writable by this user (run as root)",
        (true, false) => {
            "hybrid: v1 controllers with an empty v2 hierarchy at /sys/fs/cgroup/unified (runc works; crun refuses this mode)"
        }
        (false, false) => "legacy cgroup v1 hierarchy",
    };
    CgroupInfo { mode, writable, reason: reason.into() }
}

/// Where the runner can put each child it starts so that nothing the child
/// does (setsid, double fork, a scrubbed environment) takes it out of reach:
/// a v2 group killed with `cgroup.kill` (the unified hierarchy of a hybrid
/// host counts), else a v1 freezer group frozen, then killed. On v1 and
/// hybrid hosts a blkio group beside it counts the bytes the child's
/// processes sent to block devices themselves.
#[derive(Debug, Clone)]
pub(crate) struct RunBase {
    pub(crate) member: Member,
    pub(crate) blkio: Option<PathBuf>,
}

/// How a run group holds its processes and kills them.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Member {
    V2(PathBuf),
    Freezer(PathBuf),
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

fn is_cgroup2(p: &Path) -> bool {
    fs_magic(p) == Some(CGROUP2_SUPER_MAGIC)
}

/// Tries a group below `base` once: can it be made, and does it have `file`?
fn usable(base: &Path, file: &str) -> Result<(), String> {
    let probe = base.join(format!("vlab-{}-probe", std::process::id()));
    std::fs::create_dir(&probe).map_err(|e| format!("cannot create a group in {}: {e}", base.display()))?;
    let has = probe.join(file).exists();
    let _ = std::fs::remove_dir(&probe);
    if has { Ok(()) } else { Err(format!("{} has no {file} (the kernel is older than 5.14)", base.display())) }
}

impl RunBase {
    /// Finds out once per process where run groups go, or why they cannot be made.
    pub(crate) fn get() -> Result<&'static RunBase, &'static str> {
        static FOUND: std::sync::OnceLock<Result<RunBase, String>> = std::sync::OnceLock::new();
        FOUND.get_or_init(RunBase::find).as_ref().map_err(String::as_str)
    }

    fn find() -> Result<RunBase, String> {
        let root = Path::new(ROOT);
        let unified = [root.to_path_buf(), root.join("unified")].into_iter().find(|p| is_cgroup2(p));
        let mut why = Vec::new();
        let mut member = None;
        if let Some(u) = unified {
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
            return Err(why.join("; "));
        };
        let blkio = (!is_cgroup2(root))
            .then(|| below(root.join("blkio"), own_path(Some("blkio"))))
            .filter(|b| usable(b, "blkio.throttle.io_service_bytes").is_ok());
        Ok(RunBase { member, blkio })
    }

    /// The directories run groups are made in.
    pub(crate) fn dirs_above(&self) -> Vec<PathBuf> {
        let member = match &self.member {
            Member::V2(d) | Member::Freezer(d) => d.clone(),
        };
        std::iter::once(member).chain(self.blkio.clone()).collect()
    }

    /// What `vlab doctor` says about how children are contained.
    pub(crate) fn describe() -> String {
        match RunBase::get() {
            Ok(b) => {
                let how = match &b.member {
                    Member::V2(d) => {
                        format!("each child in its own cgroup under {}, killed with cgroup.kill", d.display())
                    }
                    Member::Freezer(d) => {
                        format!("each child in its own freezer cgroup under {}, frozen then killed", d.display())
                    }
                };
                let io = if b.blkio.is_some() {
                    "; block writes counted by blkio"
                } else {
                    "; block writes from rusage (bytes dirtied, not flushed)"
                };
                format!("{how}{io}")
            }
            Err(why) => format!(
                "no cgroup for children ({why}): a child that leaves its process group and scrubs VLAB_RUNNER_PID can outlive a check; run as root for cgroup containment"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_some_mode_with_a_reason() {
        let info = super::detect();
        assert!(!info.reason.is_empty());
    }
}
