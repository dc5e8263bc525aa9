//! The container tier's observers.
//!
//! `kind = "observe"`: the student's setup starts the runner's probe
//! somewhere (a new namespace, a new root); the runner finds that process
//! from the host and reads the facts itself from /proc. Nothing the student
//! prints counts.
//!
//! Around every check: runc's state directory (containers started with it
//! are deleted with the check), the check's own cgroups when it asks for
//! them (`cgroup = true`), and the UML kernel that runs here on PATH.

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroup::Group;
use super::escape;
use super::runc::StateRoot;
use crate::check::{CheckError, Ctx, Observer, PROBE_NAME, Ran, Watch};
use crate::evidence::Facts;
use crate::proc::{self, Cmd};

/// The probe observer. The runner knows the probe process not by its file
/// name but by the file itself (device and inode), which the shell running
/// it holds open.
pub(crate) struct Probe;

impl Observer for Probe {
    fn kind(&self) -> Option<&'static str> {
        Some("observe")
    }

    fn describe(&self) -> &'static str {
        "starts, and observes from the host the probe process it must start,"
    }

    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        let dir = ctx.workspace.join(ctx.check.probe_dir.as_deref().unwrap_or(".vlab"));
        let probe = place_probe(&dir).map_err(CheckError::io(format!("place the probe in {}", dir.display())))?;
        Ok(Some(Box::new(ProbeWatch { probe })))
    }
}

struct ProbeWatch {
    probe: PathBuf,
}

impl Watch for ProbeWatch {
    fn env(&self) -> Vec<(String, OsString)> {
        vec![("VLAB_PROBE".into(), self.probe.clone().into())]
    }

    fn run(&mut self, cmd: &Cmd, ctx: &Ctx) -> Result<Ran, CheckError> {
        let runc_root = StateRoot::dir_in(ctx.scratch);
        let places =
            Places { workspace: ctx.workspace, probe: &self.probe, scratch: ctx.scratch, runc_root: &runc_root };
        let obs = observe(cmd, ctx.nonce, &places)?;
        let shown = ctx.shown;
        let ran = Ran::new(obs.facts(), obs.stdout, obs.stderr);
        let Some(seen) = obs.probe else {
            let why = match (&obs.ended_early, obs.timed_out) {
                (Some(end), _) => {
                    format!(
                        "`{shown}` {end} without starting the probe ($VLAB_PROBE) with VLAB_NONCE in its environment"
                    )
                }
                (None, true) => format!(
                    "the probe ($VLAB_PROBE) did not start within {}s of `{shown}`; the runner knows its probe by the file it placed, so a copy or a changed probe does not count: run $VLAB_PROBE itself",
                    ctx.check.timeout_secs
                ),
                (None, false) => format!("the probe was not found under `{shown}`"),
            };
            return Ok(ran.fail_showing_output(why));
        };
        if !seen.intact {
            return Ok(ran.fail("the probe that ran is not the one the runner placed; run $VLAB_PROBE unchanged"));
        }
        Ok(ran)
    }
}

/// runc's state directory for every check: `$VLAB_RUNC_ROOT`. Containers
/// started with it are deleted, cgroups and all, when the check ends.
pub(crate) struct RuncState;

impl Observer for RuncState {
    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        Ok(Some(Box::new(StateRoot::new(StateRoot::dir_in(ctx.scratch)))))
    }
}

impl Watch for StateRoot {
    fn env(&self) -> Vec<(String, OsString)> {
        vec![("VLAB_RUNC_ROOT".into(), self.path().into())]
    }
}

/// The check's own empty cgroups (`cgroup = true`): made before the command
/// starts (`VLAB_CGROUP_*`), read and removed after it (`cgroup.*` facts).
pub(crate) struct Cgroups;

impl Observer for Cgroups {
    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        if !ctx.check.cgroup {
            return Ok(None);
        }
        let group = Group::create(ctx.nonce)
            .map_err(|source| CheckError::Setup { what: "make this check's cgroups".into(), source: source.into() })?;
        Ok(Some(Box::new(GroupWatch(Some(group)))))
    }
}

struct GroupWatch(Option<Group>);

impl Watch for GroupWatch {
    fn env(&self) -> Vec<(String, OsString)> {
        self.0.iter().flat_map(|g| g.env()).map(|(k, v)| (k, v.into())).collect()
    }

    fn started(&mut self) {
        if let Some(g) = self.0.as_mut() {
            g.watch();
        }
    }

    fn finish(&mut self) -> Result<Facts, CheckError> {
        let Some(mut group) = self.0.take() else { return Ok(Facts::new()) };
        let facts = group.facts();
        group.remove().map_err(|source| CheckError::Setup {
            what: "remove this check's cgroups".into(),
            source: source.into(),
        })?;
        Ok(facts)
    }
}

/// Where the distribution's UML cannot run here, `linux` on the command's
/// PATH is the copy `vlab setup` fetched.
pub(crate) struct UmlOnPath;

impl Observer for UmlOnPath {
    fn arm(&self, _ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        let Some(dir) = crate::host::uml::known().path_dir() else { return Ok(None) };
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path))).map_err(|e| {
            CheckError::Setup { what: "put the UML kernel's directory on PATH".into(), source: e.into() }
        })?;
        Ok(Some(Box::new(PathWatch(joined))))
    }
}

struct PathWatch(OsString);

impl Watch for PathWatch {
    fn env(&self) -> Vec<(String, OsString)> {
        vec![("PATH".into(), self.0.clone())]
    }
}

/// The probe is a POSIX sh script so it runs in any busybox root. It announces
/// itself and waits, so the runner can look at it and try the ways out of its
/// container from the host (src/container/escape.rs); the runner kills it after.
pub(crate) const PROBE_SCRIPT: &str = "#!/bin/sh\n\
# vlab probe: placed by the runner, rewritten before every check.\n\
echo \"vlab-probe: nonce=${VLAB_NONCE:-missing} pid=$$\"\n\
i=0\n\
while [ \"$i\" -lt 1200 ]; do sleep 0.1; i=$((i+1)); done\n";

pub(crate) const NAMESPACES: [&str; 7] = ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"];

/// Writes a fresh probe into `dir` and returns its host path.
pub(crate) fn place_probe(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(PROBE_NAME);
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, PROBE_SCRIPT)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// What the runner owns in this check: the workspace, the probe it placed,
/// its scratch directory (where the escape marker is planted) and runc's
/// state directory.
pub(crate) struct Places<'a> {
    pub(crate) workspace: &'a Path,
    pub(crate) probe: &'a Path,
    pub(crate) scratch: &'a Path,
    pub(crate) runc_root: &'a Path,
}

/// What an observe run produced.
pub(crate) struct Observation {
    /// The probe as the runner saw it, if it found it.
    pub(crate) probe: Option<Seen>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// How the student's command ended before the probe was found, if it did.
    pub(crate) ended_early: Option<String>,
    pub(crate) timed_out: bool,
}

/// The probe process, found.
pub(crate) struct Seen {
    /// Its facts, read from the host (namespaces, root, mounts, escapes).
    pub(crate) facts: Facts,
    /// Whether the script it runs is the one the runner placed.
    pub(crate) intact: bool,
}

impl Observation {
    /// The evidence: the probe's facts, and `probe.found`/`probe.intact` for the student to read.
    pub(crate) fn facts(&self) -> Facts {
        let mut facts = self.probe.as_ref().map(|p| p.facts.clone()).unwrap_or_default();
        let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
        facts.insert("probe.found".into(), yes(self.probe.is_some()));
        if let Some(p) = &self.probe {
            facts.insert("probe.intact".into(), yes(p.intact));
        }
        facts
    }
}

/// Starts `cmd`, waits for the probe carrying `nonce` to appear among its
/// descendants, gathers facts, then kills the whole tree.
pub(crate) fn observe(cmd: &Cmd, nonce: &str, places: &Places) -> Result<Observation, proc::ProcError> {
    // The probe is known by the file the runner has just written, which the
    // shell running it holds open: by device and inode, not by any name.
    let placed = std::fs::metadata(places.probe).map(|m| (m.dev(), m.ino())).ok();
    let child = cmd.spawn()?;
    let mut seen = None;
    let mut ended_early = None;
    let mut timed_out = false;
    loop {
        if let Some(probe) = placed.and_then(|id| find_probe(child.pid(), nonce, id)) {
            // Give the probe a moment to print before we read its view.
            std::thread::sleep(Duration::from_millis(5));
            seen = gather(probe, child.pid(), places);
            break;
        }
        if let Some(ended) = child.wait_until(Instant::now() + Duration::from_millis(20))? {
            // One last look: the probe may have been started in the background.
            match placed.and_then(|id| find_probe(child.pid(), nonce, id)) {
                Some(probe) => seen = gather(probe, child.pid(), places),
                None => ended_early = Some(ended.describe()),
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
    Ok(Observation { probe: seen, stdout, stderr, ended_early, timed_out })
}

/// The probe process: its pid and the fd on which it holds the placed file.
struct ProbeProcess {
    pid: i32,
    script_fd: PathBuf,
}

/// Among `root` and its descendants, the process with this run's nonce in
/// its environment that holds the file `placed` (device, inode) open.
fn find_probe(root: i32, nonce: &str, placed: (u64, u64)) -> Option<ProbeProcess> {
    let needle = format!("VLAB_NONCE={nonce}");
    std::iter::once(root).chain(proc::descendants(root)).find_map(|pid| {
        let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
        env.split(|c| *c == 0).any(|kv| kv == needle.as_bytes()).then_some(())?;
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        let script_fd = fds
            .flatten()
            .map(|e| e.path())
            .find(|fd| std::fs::metadata(fd).is_ok_and(|m| (m.dev(), m.ino()) == placed))?;
        Some(ProbeProcess { pid, script_fd })
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

/// The container's processes: the probe and the descendants of the
/// student's command (`root`) in the probe's PID namespace.
fn container_pids(probe: i32, root: i32) -> Vec<i32> {
    let ns = ns_inode(&probe.to_string(), "pid");
    let mut pids = vec![probe];
    pids.extend(proc::descendants(root).into_iter().filter(|&p| p != probe && ns_inode(&p.to_string(), "pid") == ns));
    pids
}

/// Everything the runner can see about the probe process from the host.
/// None if the process is gone before its PID namespace could be read.
fn gather(probe: ProbeProcess, root: i32, places: &Places) -> Option<Seen> {
    let pid = probe.pid;
    let workspace = places.workspace;
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
    // The script as the probe process reads it: through its own open fd.
    let intact = std::fs::read_to_string(&probe.script_fd).is_ok_and(|text| text == PROBE_SCRIPT);
    f.extend(super::process::facts(pid, workspace, places.runc_root));
    f.extend(super::userns::facts(pid, workspace));
    f.extend(super::seccomp::facts(pid, places.runc_root));
    // Planted only now, when the student's setup has run: nothing could prepare for its name.
    match escape::Marker::plant(places.scratch) {
        Ok(marker) => {
            f.extend(escape::probe(pid, &container_pids(pid, root), &super::mountinfo::of(&pid.to_string()), &marker))
        }
        Err(e) => {
            f.insert("escape".into(), format!("unknown: cannot plant a marker in {}: {e}", places.scratch.display()));
        }
    }
    f.contains_key("pid_in_ns").then_some(Seen { facts: f, intact })
}

/// "host" if the process sees the host's root, "workspace:<rel>" if its root is
/// a directory of the workspace (compared by device and inode, which survive
/// bind mounts and pivot_root), else "other".
fn root_of(pid: i32, workspace: &Path) -> String {
    match std::fs::metadata(format!("/proc/{pid}/root/.")) {
        Ok(theirs) => super::process::locate(theirs.dev(), theirs.ino(), workspace),
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
