//! The seccomp filter a contained process runs under, seen from the host:
//! the kernel's word that a filter is installed (`Seccomp:` and
//! `Seccomp_filters:` in /proc/PID/status); what those filters answer for a
//! few system calls, evaluated here from the kernel's own copy of them
//! (`PTRACE_SECCOMP_GET_FILTER`, so no file the student can write is
//! believed); and, beside it, the rules the runtime recorded when it
//! installed them (runc's state.json for the container whose init, by pid
//! and start time, is this very process). The check engine adds these to an
//! observe check's facts.

use std::path::Path;

use crate::evidence::Facts;

/// runc 1.1's libcontainer `configs.Action` for SCMP_ACT_ERRNO (Kill = 1, Errno, Trap, Allow, ...).
const RUNC_ACTION_ERRNO: u64 = 2;

/// System calls whose verdict the runner reads from a filtered process's
/// filters: the ones a container's profile typically denies.
const JUDGED: [(&str, libc::c_long); 4] = [
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("mount", libc::SYS_mount),
    ("ptrace", libc::SYS_ptrace),
];

/// Facts `seccomp.mode` (`none`, `strict`, `filter`), `seccomp.filters`,
/// `seccomp.NAME` for each call of [`JUDGED`] and, under runc,
/// `seccomp.errno` (see labs/README.md, observe checks).
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
        if mode == "filter" {
            match kernel_filters(pid) {
                Ok(filters) => {
                    for (name, nr) in JUDGED {
                        f.insert(format!("seccomp.{name}"), describe(verdict(&filters, nr)));
                    }
                }
                Err(why) => {
                    for (name, _) in JUDGED {
                        f.insert(format!("seccomp.{name}"), format!("unknown: {why}"));
                    }
                }
            }
        } else {
            for (name, _) in JUDGED {
                f.insert(format!("seccomp.{name}"), "allow".into());
            }
        }
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

/// `PTRACE_SECCOMP_GET_FILTER` (linux/ptrace.h; not in the libc crate).
const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;

/// Detaches from a seized process however the reading ends; a stopped
/// tracee runs on.
struct Seized(i32);

impl Drop for Seized {
    fn drop(&mut self) {
        // SAFETY: PTRACE_DETACH takes no pointers; failure (the tracee died) leaves nothing to undo.
        unsafe { libc::ptrace(libc::PTRACE_DETACH, self.0, 0, 0) };
    }
}

/// The classic BPF programs of every seccomp filter on `pid`, newest first,
/// as the kernel holds them. Needs CAP_SYS_ADMIN; the process is stopped
/// (PTRACE_SEIZE, PTRACE_INTERRUPT) for the moment it takes and then detached.
fn kernel_filters(pid: i32) -> Result<Vec<Vec<libc::sock_filter>>, String> {
    let os = |what: &str| format!("{what} of pid {pid}: {}", std::io::Error::last_os_error());
    // SAFETY: PTRACE_SEIZE takes no pointers (addr and data 0).
    if unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0, 0) } != 0 {
        return Err(os("PTRACE_SEIZE"));
    }
    let _seized = Seized(pid);
    // SAFETY: PTRACE_INTERRUPT takes no pointers.
    if unsafe { libc::ptrace(libc::PTRACE_INTERRUPT, pid, 0, 0) } != 0 {
        return Err(os("PTRACE_INTERRUPT"));
    }
    let mut status = 0;
    // The requests below need the tracee in a ptrace stop; wait for it.
    loop {
        // SAFETY: `status` is a valid out-pointer for the one int waitpid writes.
        if unsafe { libc::waitpid(pid, &mut status, libc::__WALL) } != pid {
            return Err(os("waitpid"));
        }
        if libc::WIFSTOPPED(status) {
            break;
        }
        if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
            return Err(format!("pid {pid} ended while the runner read its filters"));
        }
    }
    let mut filters = Vec::new();
    for index in 0..64usize {
        // SAFETY: with a null data pointer the kernel only returns the filter's length.
        let len = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, std::ptr::null_mut::<libc::c_void>()) };
        if len < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                break;
            }
            return Err(os("PTRACE_SECCOMP_GET_FILTER"));
        }
        let mut prog = vec![libc::sock_filter { code: 0, jt: 0, jf: 0, k: 0 }; usize::try_from(len).unwrap_or(0)];
        // SAFETY: `prog` has room for the `len` instructions the kernel copies out.
        let got = unsafe { libc::ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, prog.as_mut_ptr()) };
        if got != len {
            return Err(os("PTRACE_SECCOMP_GET_FILTER"));
        }
        filters.push(prog);
    }
    Ok(filters)
}

/// The audit architecture the kernel puts in `seccomp_data.arch` here.
const AUDIT_ARCH: u32 = if cfg!(target_arch = "aarch64") { 0xc000_00b7 } else { 0xc000_003e };

/// What the filters return for system call `nr` with all arguments 0: each
/// filter runs, and the action of highest precedence wins (seccomp.c: the
/// lowest action as a signed number, KILL_PROCESS first, ALLOW last).
fn verdict(filters: &[Vec<libc::sock_filter>], nr: libc::c_long) -> u32 {
    let mut data = [0u8; 64];
    data[0..4].copy_from_slice(&(nr as u32).to_ne_bytes());
    data[4..8].copy_from_slice(&AUDIT_ARCH.to_ne_bytes());
    filters.iter().map(|prog| run_bpf(prog, &data)).min_by_key(|ret| (ret & 0xffff_0000) as i32).unwrap_or(0x7fff_0000)
}

/// A classic BPF interpreter for what the kernel accepts in a seccomp
/// filter (loads of `seccomp_data`, scratch memory, ALU, jumps, returns). A
/// malformed program is killed, as the kernel would have refused it.
fn run_bpf(prog: &[libc::sock_filter], data: &[u8; 64]) -> u32 {
    const KILL: u32 = 0;
    let (mut a, mut x, mut mem, mut pc) = (0u32, 0u32, [0u32; 16], 0usize);
    let word = |k: u32| {
        let k = k as usize;
        (k.is_multiple_of(4) && k + 4 <= data.len())
            .then(|| u32::from_ne_bytes(data[k..k + 4].try_into().unwrap_or([0; 4])))
    };
    while let Some(ins) = prog.get(pc) {
        pc += 1;
        let (code, k) = (ins.code, ins.k);
        let src = if code & 0x08 != 0 { x } else { k };
        match code & 0x07 {
            0x00 | 0x01 => {
                let v = match code & 0xe0 {
                    0x00 => k,
                    0x20 => match word(k) {
                        Some(v) => v,
                        None => return KILL,
                    },
                    0x60 => mem[k as usize % 16],
                    0x80 => data.len() as u32,
                    _ => return KILL,
                };
                if code & 0x07 == 0x00 { a = v } else { x = v }
            }
            0x02 => mem[k as usize % 16] = a,
            0x03 => mem[k as usize % 16] = x,
            0x04 => {
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(src),
                    0x10 => a.wrapping_sub(src),
                    0x20 => a.wrapping_mul(src),
                    0x30 => a.checked_div(src).unwrap_or(0),
                    0x40 => a | src,
                    0x50 => a & src,
                    0x60 => a.checked_shl(src).unwrap_or(0),
                    0x70 => a.checked_shr(src).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(src).unwrap_or(0),
                    0xa0 => a ^ src,
                    _ => return KILL,
                }
            }
            0x05 => {
                let taken = match code & 0xf0 {
                    0x00 => {
                        pc += k as usize;
                        continue;
                    }
                    0x10 => a == src,
                    0x20 => a > src,
                    0x30 => a >= src,
                    0x40 => a & src != 0,
                    _ => return KILL,
                };
                pc += usize::from(if taken { ins.jt } else { ins.jf });
            }
            0x06 => return if code & 0x18 == 0x10 { a } else { k },
            _ => {
                if code & 0xf8 == 0x80 {
                    a = x
                } else {
                    x = a
                }
            }
        }
    }
    KILL
}

/// `allow`, `errno:EPERM`, `kill`, `trap`, `trace`, `log` or `notify`.
fn describe(ret: u32) -> String {
    match ret & 0xffff_0000 {
        0x7fff_0000 => "allow".into(),
        0x0005_0000 => format!("errno:{}", errno_name(u64::from(ret & 0xffff))),
        0x8000_0000 | 0x0000_0000 => "kill".into(),
        0x0003_0000 => "trap".into(),
        0x7ff0_0000 => "trace".into(),
        0x7ffc_0000 => "log".into(),
        0x7fc0_0000 => "notify".into(),
        other => format!("action {other:#x}"),
    }
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
    let file = std::fs::File::options().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
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

    fn ins(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
        libc::sock_filter { code, jt, jf, k }
    }

    /// What runc (libseccomp) makes of a profile that denies unshare with
    /// EPERM: check the architecture, load the call number, compare, return.
    fn deny_unshare() -> Vec<libc::sock_filter> {
        vec![
            ins(0x20, 0, 0, 4),                                // ld [arch]
            ins(0x15, 1, 0, AUDIT_ARCH),                       // jeq arch, +1
            ins(0x06, 0, 0, 0),                                // ret KILL_THREAD
            ins(0x20, 0, 0, 0),                                // ld [nr]
            ins(0x15, 0, 1, libc::SYS_unshare as u32),         // jeq unshare, 0, +1
            ins(0x06, 0, 0, 0x0005_0000 | libc::EPERM as u32), // ret ERRNO(EPERM)
            ins(0x06, 0, 0, 0x7fff_0000),                      // ret ALLOW
        ]
    }

    #[test]
    fn the_interpreter_answers_as_the_filter_says() {
        let prog = deny_unshare();
        assert_eq!(describe(verdict(std::slice::from_ref(&prog), libc::SYS_unshare)), "errno:EPERM");
        assert_eq!(describe(verdict(std::slice::from_ref(&prog), libc::SYS_setns)), "allow");
        assert_eq!(describe(verdict(&[], libc::SYS_unshare)), "allow");
        // Two filters: the stricter action wins, whichever was installed first.
        let kill_all = vec![ins(0x06, 0, 0, 0x8000_0000)];
        assert_eq!(describe(verdict(&[prog.clone(), kill_all], libc::SYS_setns)), "kill");
        // A load outside seccomp_data, or falling off the end, kills.
        assert_eq!(describe(verdict(&[vec![ins(0x20, 0, 0, 64)]], 0)), "kill");
        assert_eq!(describe(verdict(&[vec![ins(0x20, 0, 0, 0)]], 0)), "kill");
    }

    #[test]
    fn the_kernel_copy_of_a_filter_is_read_from_a_running_process() {
        use std::os::unix::process::CommandExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!(
                "SKIPPED the_kernel_copy_of_a_filter_is_read_from_a_running_process: PTRACE_SECCOMP_GET_FILTER needs root"
            );
            return;
        }
        let prog = deny_unshare();
        let mut cmd = std::process::Command::new("sleep");
        cmd.arg("10");
        // SAFETY: between fork and exec the child makes only two prctl calls on
        // memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || {
                let fprog =
                    libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                    || libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &fprog as *const libc::sock_fprog)
                        != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(100));
        let f = facts(pid, Path::new("/nonexistent"));
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(f["seccomp.mode"], "filter");
        assert_eq!(f["seccomp.filters"], "1");
        assert_eq!(f["seccomp.unshare"], "errno:EPERM");
        assert_eq!(f["seccomp.setns"], "allow");
    }
}
