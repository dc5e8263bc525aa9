//! The seccomp filter a contained process runs under, seen from the host:
//! the kernel's word that a filter is installed (`Seccomp:` and
//! `Seccomp_filters:` in /proc/PID/status), cross-checked with the rules the
//! runtime recorded when it installed them (runc's state.json for the
//! container whose init, by pid and start time, is this very process). The
//! check engine adds these to an observe check's facts.

use std::path::Path;

use crate::check::facts::Facts;

/// runc 1.1's libcontainer `configs.Action` for SCMP_ACT_ERRNO (Kill = 1, Errno, Trap, Allow, ...).
const RUNC_ACTION_ERRNO: u64 = 2;

/// Facts `seccomp.mode` (`none`, `strict`, `filter`), `seccomp.filters` and,
/// under runc, `seccomp.errno` (see labs/README.md, observe checks).
pub(crate) fn facts(pid: i32, runc_root: &Path) -> Facts {
    let mut f = Facts::new();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    if let Some(mode) = super::process::status_field(&status, "Seccomp:") {
        let mode = match mode {
            "0" => "none",
            "1" => "strict",
            "2" => "filter",
            other => other,
        };
        f.insert("seccomp.mode".into(), mode.into());
    }
    if let Some(n) = super::process::status_field(&status, "Seccomp_filters:") {
        f.insert("seccomp.filters".into(), n.into());
    }
    let started = super::process::start_time(pid);
    let recorded = super::runc::containers(runc_root).into_iter().find_map(|id| {
        let state = read_state(&runc_root.join(id).join("state.json"))?;
        let init = (state["init_process_pid"].as_i64()?, state["init_process_start"].as_u64()?);
        (init == (i64::from(pid), started?)).then_some(state)
    });
    if let Some(state) = recorded {
        f.insert("seccomp.errno".into(), errno_rules(&state["config"]["seccomp"]));
    }
    f
}

/// The system calls a runc seccomp config makes fail, and with which errno:
/// `unshare:EPERM,setns:ENOSYS`, `*:EPERM` for a default action of errno,
/// or `none`.
fn errno_rules(seccomp: &serde_json::Value) -> String {
    let default_errno = seccomp["default_errno_ret"].as_u64().unwrap_or(libc::EPERM as u64);
    let mut rules: Vec<String> = seccomp["syscalls"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["action"].as_u64() == Some(RUNC_ACTION_ERRNO))
        .filter_map(|s| {
            let errno = s["errnoRet"].as_u64().unwrap_or(default_errno);
            Some(format!("{}:{}", s["name"].as_str()?, errno_name(errno)))
        })
        .collect();
    rules.sort();
    rules.dedup();
    if seccomp["default_action"].as_u64() == Some(RUNC_ACTION_ERRNO) {
        rules.insert(0, format!("*:{}", errno_name(default_errno)));
    }
    if rules.is_empty() { "none".into() } else { rules.join(",") }
}

fn errno_name(errno: u64) -> String {
    let name = match i32::try_from(errno).unwrap_or(-1) {
        libc::EPERM => "EPERM",
        libc::ENOSYS => "ENOSYS",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        _ => return errno.to_string(),
    };
    name.into()
}

/// A state.json the student could have replaced: a regular file only (not a
/// link, not a FIFO that would block), at most 1 MiB.
fn read_state(path: &Path) -> Option<serde_json::Value> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file =
        std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = String::new();
    file.take(1 << 20).read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_rules_name_each_call_and_its_errno() {
        let cfg = serde_json::json!({
            "default_action": 4,
            "syscalls": [
                {"name": "unshare", "action": 2, "errnoRet": 38},
                {"name": "setns", "action": 2},
                {"name": "read", "action": 4},
            ],
        });
        assert_eq!(errno_rules(&cfg), "setns:EPERM,unshare:ENOSYS");
        let deny_all = serde_json::json!({"default_action": 2, "default_errno_ret": 38, "syscalls": []});
        assert_eq!(errno_rules(&deny_all), "*:ENOSYS");
        assert_eq!(errno_rules(&serde_json::Value::Null), "none");
    }

    #[test]
    fn our_own_status_says_no_filter_and_no_runc_state() {
        let dir = tempfile::tempdir().unwrap();
        let f = facts(std::process::id() as i32, dir.path());
        assert!(f.contains_key("seccomp.mode"));
        assert!(f.contains_key("seccomp.filters"));
        assert!(!f.contains_key("seccomp.errno"), "no container in an empty state directory names us");
    }

    #[test]
    fn a_state_naming_this_process_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let start = super::super::process::start_time(me).unwrap();
        std::fs::create_dir(dir.path().join("c")).unwrap();
        let state = serde_json::json!({
            "init_process_pid": me, "init_process_start": start,
            "config": {"seccomp": {"default_action": 4, "syscalls": [{"name": "unshare", "action": 2}]}},
        });
        std::fs::write(dir.path().join("c/state.json"), state.to_string()).unwrap();
        assert_eq!(facts(me, dir.path())["seccomp.errno"], "unshare:EPERM");
    }
}
