//! cgroup mode (v1, v2 or hybrid) and which controllers vlab may write.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    V1,
    V2,
    Hybrid,
    None,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CgroupInfo {
    pub mode: Mode,
    /// Controllers whose hierarchy we can create groups in.
    pub writable: Vec<String>,
    pub reason: String,
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn fs_magic(p: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statfs(c.as_ptr(), &mut st) } == 0).then_some(st.f_type as i64)
}

fn writable(p: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) else { return false };
    unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
}

pub fn detect() -> CgroupInfo {
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

#[cfg(test)]
mod tests {
    #[test]
    fn detects_some_mode_with_a_reason() {
        let info = super::detect();
        assert!(!info.reason.is_empty());
    }
}
