//! runc's leftovers. A check gives runc a private state directory
//! (`VLAB_RUNC_ROOT`, inside the check's scratch directory); afterwards every
//! container recorded there is deleted with `runc delete --force`, which kills
//! its processes and removes the cgroups runc made for it. Killing the
//! `runc run` process alone would leave those cgroups behind. A check
//! interrupted by Ctrl-C cannot do that; its empty groups are removed by a
//! later check once they are ten minutes old. A state.json forged to name a
//! host process is removed without asking runc to kill anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proc::Cmd;

/// A check's private runc state directory; every container in it is deleted on drop.
pub(crate) struct StateRoot(PathBuf);

impl StateRoot {
    /// Also removes what interrupted checks left (see
    /// [`crate::container::cgroup::remove_abandoned_runc_groups`]).
    pub(crate) fn new(path: PathBuf) -> Self {
        super::cgroup::remove_abandoned_runc_groups(std::time::Duration::from_secs(600));
        Self(path)
    }

    /// Where a check keeps runc's state: in its scratch directory.
    pub(crate) fn dir_in(scratch: &Path) -> PathBuf {
        scratch.join("runc")
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateRoot {
    fn drop(&mut self) {
        delete_all(&self.0);
    }
}

/// Container ids recorded in the state directory `root`.
pub(crate) fn containers(root: &Path) -> Vec<String> {
    std::fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().join("state.json").is_file())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// `runc --root ROOT state ID` parsed, or None if runc does not know it.
pub(crate) fn state(root: &Path, id: &str) -> Option<serde_json::Value> {
    let out =
        Cmd::new("runc").arg("--root").arg(root).args(["state", id]).timeout(Duration::from_secs(10)).run().ok()?;
    out.success().then(|| serde_json::from_str(&out.stdout).ok()).flatten()
}

/// The container's init as runc recorded it in `root/ID/state.json`: its pid
/// and its start time (clock ticks after boot, as in /proc/PID/stat). The
/// file must be a regular file (not a link, not a FIFO that would block).
pub(crate) fn recorded_init(root: &Path, id: &str) -> Option<(i32, u64)> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(root.join(id).join("state.json"))
        .ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).ok()?;
    Some((i32::try_from(state["init_process_pid"].as_i64()?).ok()?, state["init_process_start"].as_u64()?))
}

/// Deletes every container in `root` (processes, cgroups, state). Returns the
/// ids runc could not delete.
pub(crate) fn delete_all(root: &Path) -> Vec<String> {
    let mut failed = Vec::new();
    for id in containers(root) {
        // `runc delete --force` kills the init a state.json names. The student
        // can write one naming any process; a real container's init never
        // shares the runner's mount namespace, so such a file is only removed.
        if let Some((pid, _)) = recorded_init(root, &id)
            && crate::proc::alive(pid)
            && std::fs::read_link(format!("/proc/{pid}/ns/mnt")).ok() == std::fs::read_link("/proc/self/ns/mnt").ok()
        {
            let _ = std::fs::remove_dir_all(root.join(&id));
            continue;
        }
        let out = Cmd::new("runc")
            .arg("--root")
            .arg(root)
            .args(["delete", "--force", &id])
            .timeout(Duration::from_secs(20))
            .run();
        if !out.is_ok_and(|o| o.success()) && root.join(&id).exists() {
            failed.push(id);
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_recorded_init_is_read_from_a_regular_state_file_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::fs::write(dir.path().join("a/state.json"), r#"{"init_process_pid": 42, "init_process_start": 7}"#)
            .unwrap();
        assert_eq!(super::recorded_init(dir.path(), "a"), Some((42, 7)));
        std::fs::create_dir(dir.path().join("b")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a/state.json"), dir.path().join("b/state.json")).unwrap();
        assert_eq!(super::recorded_init(dir.path(), "b"), None);
        assert_eq!(super::recorded_init(dir.path(), "missing"), None);
    }

    #[test]
    fn a_state_naming_a_host_process_is_removed_not_killed() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let start = crate::container::process::start_time(me).unwrap();
        std::fs::create_dir(dir.path().join("forged")).unwrap();
        let state = format!(r#"{{"init_process_pid": {me}, "init_process_start": {start}}}"#);
        std::fs::write(dir.path().join("forged/state.json"), state).unwrap();
        assert!(super::delete_all(dir.path()).is_empty());
        assert!(!dir.path().join("forged").exists());
    }

    #[test]
    fn an_empty_or_missing_root_has_no_containers() {
        let dir = tempfile::tempdir().unwrap();
        assert!(super::containers(dir.path()).is_empty());
        assert!(super::delete_all(&dir.path().join("missing")).is_empty());
    }
}
