//! Observing checks: the student's setup starts the runner's probe somewhere
//! (a new namespace, a new root); the runner finds that process from the host
//! and reads the facts itself from /proc. Nothing the student prints counts.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::facts::Facts;
use crate::proc::{self, Cmd};

/// File name of the probe; the runner finds the probe process by it.
pub const PROBE_NAME: &str = "vlab-probe";

/// The probe is a POSIX sh script so it runs in any busybox root. It announces
/// itself and waits, so the runner can look at it; the runner kills it after.
pub const PROBE_SCRIPT: &str = "#!/bin/sh\n\
# vlab probe: placed by the runner, rewritten before every check.\n\
echo \"vlab-probe: nonce=${VLAB_NONCE:-missing} pid=$$\"\n\
i=0\n\
while [ \"$i\" -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n";

pub const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// Writes a fresh probe into `dir` and returns its host path.
pub fn place_probe(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(PROBE_NAME);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, PROBE_SCRIPT)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// What an observe run produced.
pub struct Observation {
    pub facts: Facts,
    pub stdout: String,
    pub stderr: String,
    /// How the student's command ended before the probe was found, if it did.
    pub ended_early: Option<String>,
    pub timed_out: bool,
}

/// Starts `cmd`, waits for the probe carrying `nonce` to appear among its
/// descendants, gathers facts, then kills the whole tree.
pub fn observe(cmd: &Cmd, nonce: &str, workspace: &Path) -> Result<Observation, proc::ProcError> {
    let child = cmd.spawn()?;
    let mut facts = Facts::new();
    let mut ended_early = None;
    let mut timed_out = false;
    loop {
        if let Some(pid) = find_probe(child.pid(), nonce) {
            // Give the probe a moment to print before we read its view.
            std::thread::sleep(Duration::from_millis(5));
            facts = gather(pid, workspace);
            break;
        }
        if let Some(ended) = child.wait_until(Instant::now() + Duration::from_millis(20))? {
            // One last look: the probe may have been started in the background.
            if let Some(pid) = find_probe(child.pid(), nonce) {
                facts = gather(pid, workspace);
            } else {
                ended_early = Some(ended.describe());
            }
            break;
        }
        if child.expired() {
            timed_out = true;
            break;
        }
    }
    let (stdout, _) = child.read_stdout(64 * 1024);
    let (stderr, _) = child.read_stderr(64 * 1024);
    child.stop()?;
    facts.insert("probe.found".into(), if facts.contains_key("pid_in_ns") { "yes" } else { "no" }.into());
    Ok(Observation { facts, stdout, stderr, ended_early, timed_out })
}

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

/// The probe's path as the process itself named it (its script argument).
fn probe_arg(pid: i32) -> Option<String> {
    cmdline(pid).into_iter().skip(1).find(|a| a.ends_with(PROBE_NAME))
}

fn find_probe(root: i32, nonce: &str) -> Option<i32> {
    let needle = format!("VLAB_NONCE={nonce}");
    std::iter::once(root).chain(proc::descendants(root)).find(|&pid| {
        probe_arg(pid).is_some()
            && std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|c| *c == 0).any(|kv| kv == needle.as_bytes()))
                .unwrap_or(false)
    })
}

fn innermost_nspid(pid: i32) -> Option<(String, usize)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("NSpid:"))?;
    let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
    Some((ids.last()?.to_string(), ids.len()))
}

fn ns_inode(pid: &str, ns: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok().map(|l| l.to_string_lossy().into_owned())
}

/// Everything the runner can see about the probe process from the host.
pub fn gather(pid: i32, workspace: &Path) -> Facts {
    let mut f = Facts::new();
    for ns in NAMESPACES {
        if let (Some(theirs), Some(ours)) = (ns_inode(&pid.to_string(), ns), ns_inode("self", ns)) {
            f.insert(format!("ns.{ns}"), if theirs == ours { "host" } else { "new" }.into());
            f.insert(format!("ns.{ns}.id"), theirs);
        }
    }
    if let Some((id, depth)) = innermost_nspid(pid) {
        f.insert("pid_in_ns".into(), id);
        f.insert("pid_ns_depth".into(), depth.to_string());
    }
    if let Some((id, _)) = proc::info(pid).and_then(|p| innermost_nspid(p.ppid)) {
        f.insert("parent.pid_in_ns".into(), id);
    }
    f.insert("root".into(), root_of(pid, workspace));
    if let Ok(dev) = std::fs::read_to_string(format!("/proc/{pid}/net/dev")) {
        let mut names: Vec<&str> = dev.lines().skip(2).filter_map(|l| l.split(':').next()).map(str::trim).collect();
        names.sort();
        f.insert("net.interfaces".into(), names.join(","));
    }
    if let Ok(map) = std::fs::read_to_string(format!("/proc/{pid}/uid_map")) {
        let first = map.lines().next().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
        f.insert("uid_map".into(), first);
    }
    if let Ok(cg) = std::fs::read_to_string(format!("/proc/{pid}/cgroup")) {
        f.insert("cgroup".into(), cg.trim().replace('\n', ";"));
    }
    if let Some(host) = hostname_of(pid) {
        f.insert("hostname".into(), host);
    }
    let intact = probe_arg(pid)
        .and_then(|arg| {
            std::fs::read_to_string(format!("/proc/{pid}/root/{}", arg.trim_start_matches('/'))).ok().or_else(|| {
                // A relative path resolves against the probe's own working directory.
                std::fs::read_to_string(format!("/proc/{pid}/cwd/{arg}")).ok()
            })
        })
        .is_some_and(|text| text == PROBE_SCRIPT);
    f.insert("probe.intact".into(), if intact { "yes" } else { "no" }.into());
    f.extend(crate::container::process::facts(pid, workspace));
    f
}

/// "host" if the process sees the host's root, "workspace:<rel>" if its root is
/// a directory of the workspace (compared by device and inode, which survive
/// bind mounts and pivot_root), else "other".
fn root_of(pid: i32, workspace: &Path) -> String {
    match std::fs::metadata(format!("/proc/{pid}/root/.")) {
        Ok(theirs) => crate::container::process::locate(theirs.dev(), theirs.ino(), workspace),
        Err(_) => "unknown".into(),
    }
}

/// The hostname in the process's UTS namespace, read by entering it.
fn hostname_of(pid: i32) -> Option<String> {
    let pid = pid.to_string();
    let attempt = |extra: &[&str]| {
        Cmd::new("nsenter")
            .args(["--target", &pid])
            .args(extra)
            .args(["--uts", "cat", "/proc/sys/kernel/hostname"])
            .timeout(Duration::from_secs(5))
            .run()
            .ok()
            .filter(|o| o.success())
            .map(|o| o.stdout.trim().to_string())
    };
    attempt(&[]).or_else(|| attempt(&["--user", "--preserve-credentials"]))
}
