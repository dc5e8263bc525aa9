//! Processes as /proc shows them: parent, process group and state, read by
//! the kernel's account, not by anything a process says about itself.

#[derive(Debug, Clone, Copy)]
pub struct ProcInfo {
    pub pid: i32,
    pub(crate) ppid: i32,
    pub(crate) pgid: i32,
    /// R, S, D, Z, ... as in /proc/PID/stat.
    pub state: char,
}

/// Every process on the host, from /proc/<pid>/stat.
pub fn processes() -> Vec<ProcInfo> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()).filter_map(info).collect()
}

/// One process, from /proc/<pid>/stat.
pub fn info(pid: i32) -> Option<ProcInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: parse after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgid = fields.next()?.parse().ok()?;
    Some(ProcInfo { pid, ppid, pgid, state })
}

/// All descendants of `root` (not including it), parents before children.
pub(crate) fn descendants(root: i32) -> Vec<i32> {
    let all = processes();
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for p in all.iter().filter(|p| p.ppid == parent) {
            out.push(p.pid);
            frontier.push(p.pid);
        }
    }
    out
}

/// The value of the `key` line (`Cpus_allowed_list:`, `CapEff:`, ...) of a /proc/PID/status text.
pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// True if `pid` exists and is not a zombie.
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with(|c| c != 'Z' && c != 'X')))
        .unwrap_or(false)
}

/// SIGKILL to `pid`. A process already gone (ESRCH) is what a kill wants, so
/// it is no error; EPERM (not ours to signal) is.
pub(crate) fn sigkill(pid: i32) -> std::io::Result<()> {
    // SAFETY: a plain signal send; no memory is passed. The result is checked.
    gone_is_fine(unsafe { libc::kill(pid, libc::SIGKILL) })
}

/// SIGKILL to every process in the process group `pgid`; as [`sigkill`].
pub(crate) fn sigkill_group(pgid: i32) -> std::io::Result<()> {
    // SAFETY: a plain signal send; no memory is passed. The result is checked.
    gone_is_fine(unsafe { libc::killpg(pgid, libc::SIGKILL) })
}

fn gone_is_fine(rc: i32) -> std::io::Result<()> {
    let e = std::io::Error::last_os_error();
    match rc {
        0 => Ok(()),
        _ if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        _ => Err(e),
    }
}
