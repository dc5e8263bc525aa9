//! The one way vlab runs a child process.
//!
//! Every child gets its own process group, a cgroup of its own where the
//! host lets the runner make one (joined before it runs, so nothing it starts
//! can leave it by `setsid` or by scrubbing its environment), a deadline,
//! output captured to unlinked temp files (bounded when read back), and is
//! killed with its whole cgroup, group and every descendant on timeout and
//! on drop. Ctrl-C and the reaping of orphans belong to the supervisor
//! (`crate::supervisor`), which `main` installs: it makes vlab a child
//! subreaper, so orphans come back to us to be reaped, and kills what is
//! registered when interrupted. Where no cgroup can be made, daemons that
//! `setsid` away are swept by process group and by an environment mark instead.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::cgroup::{CgroupError, RunGroup};
pub(crate) use crate::procfs::descendants;
pub use crate::procfs::{ProcInfo, alive, info, processes};
use crate::procfs::{sigkill, sigkill_group};
use crate::supervisor::{self, MARK, Registration};

/// Bytes of stdout/stderr kept when read back; the rest is counted, not kept.
pub(crate) const DEFAULT_OUTPUT_LIMIT: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error(
        "`{program}` is not installed (not found on PATH); run `vlab doctor` to see what is missing and `vlab setup` to install it"
    )]
    NotFound { program: String },
    #[error("could not start `{program}`: {source}")]
    Spawn { program: String, source: io::Error },
    #[error("while running `{program}`: {source}")]
    Io { program: String, source: io::Error },
    #[error(
        "could not start `{program}`: cannot make its cgroup: {source} (`vlab doctor` shows how children are contained here)"
    )]
    Cgroup { program: String, source: CgroupError },
}

/// CPU and I/O the child and all its descendants used: from its cgroup where
/// it has one, else from rusage (which counts only waited-for descendants).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Usage {
    pub(crate) user: Duration,
    pub(crate) sys: Duration,
    /// Time its processes were runnable but waiting for a CPU (cgroup
    /// cpu.pressure); `None` where the kernel does not say.
    pub(crate) cpu_wait: Option<Duration>,
    /// Bytes written to block devices on the child's behalf.
    pub(crate) block_write_bytes: u64,
    /// Whether `block_write_bytes` counts what its processes sent to the
    /// device themselves (an fsync's writes: the cgroup's blkio counters)
    /// rather than what they dirtied in the page cache (rusage).
    pub(crate) block_writes_flushed: bool,
    pub(crate) max_rss_kib: u64,
}

/// How a child ended: its exit code, or the signal that killed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub(crate) code: Option<i32>,
    pub(crate) signal: Option<i32>,
}

impl Ended {
    pub(crate) fn describe(&self) -> String {
        match (self.code, self.signal) {
            (Some(c), _) => format!("exited with status {c}"),
            (_, Some(s)) => format!("was killed by signal {s}"),
            _ => "ended".to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    /// Exit code, `None` when killed by a signal.
    pub code: Option<i32>,
    pub(crate) signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// Output beyond the limit was dropped.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests read it"))]
    pub(crate) truncated: bool,
    pub(crate) elapsed: Duration,
    pub(crate) timed_out: bool,
    pub(crate) usage: Usage,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }

    /// One line describing how the child ended, for messages.
    pub(crate) fn describe_end(&self) -> String {
        if self.timed_out {
            format!("timed out after {:.1}s and was killed", self.elapsed.as_secs_f64())
        } else {
            Ended { code: self.code, signal: self.signal }.describe()
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    dir: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    stdin: Vec<u8>,
    output_limit: usize,
    inherit_output: bool,
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Self {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            dir: None,
            env: Vec::new(),
            timeout: Duration::from_secs(30),
            stdin: Vec::new(),
            output_limit: DEFAULT_OUTPUT_LIMIT,
            inherit_output: false,
        }
    }

    /// `argv[0]` is the program.
    pub fn from_argv<S: AsRef<OsStr>>(argv: &[S]) -> Self {
        let mut cmd = Self::new(argv.first().map(AsRef::as_ref).unwrap_or_default());
        cmd.args = argv.iter().skip(1).map(|a| a.as_ref().to_owned()).collect();
        cmd
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(crate) fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_owned());
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), val.as_ref().to_owned()));
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    #[cfg(test)]
    pub(crate) fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.stdin = bytes.into();
        self
    }

    pub(crate) fn output_limit(mut self, bytes: usize) -> Self {
        self.output_limit = bytes;
        self
    }

    /// Let the child write straight to our terminal (for `vlab setup`).
    pub(crate) fn inherit_output(mut self) -> Self {
        self.inherit_output = true;
        self
    }

    pub(crate) fn program_name(&self) -> String {
        self.program.to_string_lossy().into_owned()
    }

    /// Runs to completion or to the deadline; the group is always killed after.
    pub fn run(&self) -> Result<Output, ProcError> {
        let before = children_usage();
        let mut child = self.spawn()?;
        let end = child.wait_until(Instant::now() + self.timeout)?;
        let timed_out = end.is_none();
        let status = child.wait_final()?;
        sweep();
        let mut usage = children_usage().since(&before);
        if let Some(m) = &child.measured {
            m.apply(&mut usage);
        }
        let (stdout, t1) = child.read_stdout(self.output_limit);
        let (stderr, t2) = child.read_stderr(self.output_limit);
        Ok(Output {
            code: if timed_out { None } else { status.code },
            signal: status.signal,
            stdout,
            stderr,
            truncated: t1 || t2,
            elapsed: child.started.elapsed(),
            timed_out,
            usage,
        })
    }

    /// Starts a long-lived child. It dies with its group when the returned
    /// value is dropped, or at the latest at its deadline via `Child::expired`.
    ///
    /// Containment on Ctrl-C, and the reaping of orphans, need the
    /// [`supervisor::Supervisor`] installed (by `main`, or by a test).
    pub fn spawn(&self) -> Result<Child, ProcError> {
        // The library's unit tests have no `main` to install the supervisor.
        #[cfg(test)]
        let _ = supervisor::Supervisor::install();
        let program = self.program_name();
        let io_err = |source| ProcError::Io { program: program.clone(), source };
        let stdout = tempfile::tempfile().map_err(io_err)?;
        let stderr = tempfile::tempfile().map_err(io_err)?;
        // From making its cgroups to registering the child (see `supervisor::making`).
        let making = supervisor::making();
        let group = match supervisor::run_base() {
            Ok(base) => Some(
                RunGroup::create(base, &supervisor::run_group_name())
                    .map_err(|source| ProcError::Cgroup { program: program.clone(), source })?,
            ),
            // `vlab doctor` says so; the process-group and mark sweep stands in.
            Err(_) => None,
        };
        let in_cgroup = group.as_ref().map(|g| supervisor::cgroups(g.dirs()));
        let fds = group.as_ref().map(RunGroup::procs_fds).unwrap_or_default();
        let mut expr =
            duct::cmd(&self.program, &self.args).unchecked().stdin_bytes(self.stdin.clone()).before_spawn(move |c| {
                c.process_group(0);
                let fds = fds.clone();
                // SAFETY: the hook runs in the forked child before exec and
                // only makes async-signal-safe calls (prctl, write) on
                // descriptors the parent keeps open until the spawn returns.
                unsafe {
                    c.pre_exec(move || {
                        // If vlab itself is killed (even by SIGKILL), its children die too.
                        if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        // Join the run's cgroups before the program runs: from
                        // its first instruction on, all it starts is inside.
                        for fd in &fds {
                            if libc::write(*fd, b"0".as_ptr().cast(), 1) != 1 {
                                return Err(io::Error::last_os_error());
                            }
                        }
                        Ok(())
                    })
                };
                Ok(())
            });
        if !self.inherit_output {
            expr =
                expr.stdout_file(stdout.try_clone().map_err(io_err)?).stderr_file(stderr.try_clone().map_err(io_err)?);
        }
        if let Some(dir) = &self.dir {
            expr = expr.dir(dir);
        }
        expr = expr.env(MARK, std::process::id().to_string());
        for (k, v) in &self.env {
            expr = expr.env(k, v);
        }
        let started = Instant::now();
        let handle = expr.start().map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                ProcError::NotFound { program: program.clone() }
            } else {
                ProcError::Spawn { program: program.clone(), source }
            }
        })?;
        let pid = handle.pids().first().copied().unwrap_or(0) as i32;
        let registered = supervisor::child(pid);
        drop(making);
        Ok(Child {
            handle,
            pid,
            program,
            started,
            deadline: started + self.timeout,
            stdout,
            stderr,
            finished: false,
            group,
            registered: Some(registered),
            in_cgroup,
            measured: None,
        })
    }
}

/// A running child; killed with its whole tree on drop.
pub struct Child {
    handle: duct::Handle,
    pid: i32,
    program: String,
    started: Instant,
    deadline: Instant,
    stdout: File,
    stderr: File,
    finished: bool,
    /// The cgroup everything it started lives in, until it is killed.
    group: Option<RunGroup>,
    /// Its process group in the supervisor's registry, until it is reaped.
    registered: Option<Registration>,
    /// Its cgroups in the registry, until they are removed.
    in_cgroup: Option<Registration>,
    /// What the cgroup counted, read once everything in it ended.
    measured: Option<Measured>,
}

/// A run's cgroup counters, read before the group is removed.
#[derive(Debug, Clone, Copy)]
struct Measured {
    cpu: Option<(Duration, Duration)>,
    cpu_wait: Option<Duration>,
    block_write_bytes: Option<u64>,
}

impl Measured {
    fn read(group: &RunGroup) -> Measured {
        Measured { cpu: group.cpu(), cpu_wait: group.cpu_wait(), block_write_bytes: group.block_write_bytes() }
    }

    fn apply(&self, usage: &mut Usage) {
        if let Some((user, sys)) = self.cpu {
            (usage.user, usage.sys) = (user, sys);
        }
        usage.cpu_wait = self.cpu_wait;
        if let Some(bytes) = self.block_write_bytes {
            (usage.block_write_bytes, usage.block_writes_flushed) = (bytes, true);
        }
    }
}

impl Child {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }

    /// Still running (not exited, not reaped)?
    pub fn is_running(&self) -> bool {
        matches!(self.handle.try_wait(), Ok(None))
    }

    /// Waits for exit until `until` (capped by the child's own deadline).
    /// Returns `None` if it is still running then.
    pub fn wait_until(&self, until: Instant) -> Result<Option<Ended>, ProcError> {
        let until = until.min(self.deadline);
        match self.handle.wait_deadline(until) {
            Ok(Some(out)) => Ok(Some(exit_parts(&out.status))),
            Ok(None) => Ok(None),
            Err(source) => Err(ProcError::Io { program: self.program.clone(), source }),
        }
    }

    /// Stdout written so far, up to `limit` bytes.
    pub fn read_stdout(&self, limit: usize) -> (String, bool) {
        read_capped(&self.stdout, limit)
    }

    /// Stdout bytes from `offset` on, at most `limit` of them: a watcher reads
    /// only what is new instead of the whole output on every poll.
    pub(crate) fn read_stdout_at(&self, offset: u64, limit: usize) -> Vec<u8> {
        read_from(&self.stdout, offset, limit).0
    }

    pub fn read_stderr(&self, limit: usize) -> (String, bool) {
        read_capped(&self.stderr, limit)
    }

    /// SIGKILL to the cgroup, the process group and every descendant,
    /// wherever it moved. Returns the processes it signalled.
    pub(crate) fn kill_tree(&self) -> Vec<i32> {
        let mut tree = descendants(self.pid);
        if let Some(g) = &self.group {
            tree.extend(g.kill().into_iter().filter(|p| *p != self.pid));
            tree.sort_unstable();
            tree.dedup();
        }
        // Best effort by nature: a process we may not signal (EPERM) is not one we started.
        let _ = sigkill_group(self.pid);
        for pid in &tree {
            let _ = sigkill(*pid);
        }
        tree
    }

    /// Kills what is left and reaps the child and the descendants it killed;
    /// returns (code, signal).
    fn wait_final(&mut self) -> Result<Ended, ProcError> {
        let tree = self.kill_tree();
        let out = self.handle.wait().map_err(|source| ProcError::Io { program: self.program.clone(), source })?;
        let parts = exit_parts(&out.status);
        self.finished = true;
        self.registered = None;
        reap_killed(&tree, Instant::now() + REAP_GRACE);
        if let Some(group) = self.group.take() {
            // Whatever forked while the kill went out is in the group still.
            let late = group.kill();
            reap_killed(&late, Instant::now() + REAP_GRACE);
            self.measured = Some(Measured::read(&group));
        }
        // The groups are gone (or left to the stale sweep): nothing for an interrupt to remove.
        self.in_cgroup = None;
        Ok(parts)
    }

    /// Stops the child now and reaps it and every orphan it left.
    pub(crate) fn stop(mut self) -> Result<Ended, ProcError> {
        let parts = self.wait_final();
        sweep();
        parts
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.wait_final();
            sweep();
        }
    }
}

fn exit_parts(status: &std::process::ExitStatus) -> Ended {
    use std::os::unix::process::ExitStatusExt;
    Ended { code: status.code(), signal: status.signal() }
}

fn read_capped(file: &File, limit: usize) -> (String, bool) {
    let (buf, len) = read_from(file, 0, limit);
    (String::from_utf8_lossy(&buf).into_owned(), len > limit as u64)
}

/// The bytes of `file` from `offset` on, at most `limit`, and the file's whole length.
fn read_from(file: &File, offset: u64, limit: usize) -> (Vec<u8>, u64) {
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut buf = vec![0u8; (len.saturating_sub(offset) as usize).min(limit)];
    let n = file.read_at(&mut buf, offset).unwrap_or(0);
    buf.truncate(n);
    (buf, len)
}

fn sweep() {
    supervisor::sweep_orphans();
}

/// How long a killed tree may take to die and come back to us for reaping.
const REAP_GRACE: Duration = Duration::from_secs(3);

/// Waits for each killed descendant to be gone, reaping it once it is our
/// child: its parent died too, so the kernel re-parents it to us (the
/// subreaper), and unless we wait for it, it stays a zombie, and after we
/// exit a zombie of init's (which may not reap: a container's init often does not).
fn reap_killed(tree: &[i32], until: Instant) {
    let me = std::process::id() as i32;
    for &pid in tree {
        loop {
            match info(pid) {
                None => break,
                Some(p) if p.ppid == me => {
                    // SAFETY: `pid` is our own child (checked just now); WNOHANG never blocks.
                    if unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } != 0 {
                        break;
                    }
                }
                // Still owned by a parent that is dying, or moved out of our reach.
                Some(_) => {}
            }
            if Instant::now() >= until {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn children_usage() -> Usage {
    // SAFETY: rusage is plain data, valid all-zero.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage; RUSAGE_CHILDREN cannot fail with it, but a zeroed result is harmless.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return Usage::default();
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    Usage {
        user: tv(ru.ru_utime),
        sys: tv(ru.ru_stime),
        block_write_bytes: ru.ru_oublock as u64 * 512,
        max_rss_kib: ru.ru_maxrss as u64,
        ..Usage::default()
    }
}

impl Usage {
    fn since(&self, before: &Usage) -> Usage {
        Usage {
            user: self.user.saturating_sub(before.user),
            sys: self.sys.saturating_sub(before.sys),
            block_write_bytes: self.block_write_bytes.saturating_sub(before.block_write_bytes),
            max_rss_kib: self.max_rss_kib,
            ..Usage::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_and_status() {
        let out = Cmd::new("sh").args(["-c", "echo hi; echo err >&2; exit 3"]).run().unwrap();
        assert_eq!(out.code, Some(3));
        assert_eq!(out.stdout, "hi\n");
        assert_eq!(out.stderr, "err\n");
        assert!(!out.timed_out);
    }

    #[test]
    fn missing_program_says_what_to_do() {
        let err = Cmd::new("vlab-no-such-tool").run().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("vlab-no-such-tool") && msg.contains("vlab setup"), "{msg}");
    }

    #[test]
    fn timeout_kills_child_and_grandchildren_even_setsid_ones() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script =
            format!("sleep 1000 & echo $! >> {p}; setsid sleep 1000 & echo $! >> {p}; sleep 1000", p = pids.display());
        let out = Cmd::new("sh").args(["-c", &script]).timeout(Duration::from_millis(500)).run().unwrap();
        assert!(out.timed_out);
        assert_eq!(out.code, None);
        let listed = std::fs::read_to_string(&pids).unwrap();
        let listed: Vec<i32> = listed.lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(listed.len(), 2);
        for pid in listed {
            assert!(!alive(pid), "grandchild {pid} survived the timeout");
        }
    }

    /// A killed process whose parent died too comes back to us; unless we
    /// wait for it, it stays a zombie (and after we exit, one of init's).
    #[test]
    fn killed_descendants_are_reaped_not_left_as_zombies() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!(
            "setsid sh -c 'echo $$ >> {p}; sleep 1000 & echo $! >> {p}; wait' & sleep 1000 & echo $! >> {p}; wait",
            p = pids.display()
        );
        let out = Cmd::new("sh").args(["-c", &script]).timeout(Duration::from_millis(500)).run().unwrap();
        assert!(out.timed_out);
        let listed: Vec<i32> = std::fs::read_to_string(&pids).unwrap().lines().map(|l| l.parse().unwrap()).collect();
        assert_eq!(listed.len(), 3);
        for pid in listed {
            let state = info(pid).map(|p| p.state);
            assert_eq!(state, None, "descendant {pid} is still in /proc (state {state:?}): killed but never reaped");
        }
    }

    #[test]
    fn background_leftovers_die_when_the_command_exits() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!("setsid sleep 1000 & echo $! > {}; exit 0", pidfile.display());
        let out = Cmd::new("sh").args(["-c", &script]).run().unwrap();
        assert!(out.success());
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        assert!(!alive(pid), "daemonised leftover {pid} survived");
    }

    /// A daemon that leaves its session and process group, scrubs the mark
    /// from its environment and double-forks is still in the run's cgroup.
    #[test]
    fn a_daemon_that_scrubs_its_mark_and_double_forks_dies_with_the_command() {
        if let Err(why) = supervisor::run_base() {
            crate::testing::skip(&format!("no cgroup for children here ({why})"));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "env -u {MARK} setsid sh -c 'sh -c \"echo \\$\\$ > {p}; exec sleep 1000\" & exit 0' & \
             while [ ! -s {p} ]; do sleep 0.01; done; exit 0",
            p = pidfile.display()
        );
        let out = Cmd::new("sh").args(["-c", &script]).run().unwrap();
        assert!(out.success(), "{out:?}");
        let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
        let state = info(pid).map(|p| p.state);
        assert_eq!(state, None, "the daemon {pid} is still in /proc (state {state:?}): it escaped or was never reaped");
    }

    #[test]
    fn output_is_bounded() {
        let out = Cmd::new("sh").args(["-c", "yes | head -c 100000"]).output_limit(1000).run().unwrap();
        assert_eq!(out.stdout.len(), 1000);
        assert!(out.truncated);
    }

    #[test]
    fn dropping_a_spawned_child_kills_it() {
        let child = Cmd::new("sleep").arg("1000").spawn().unwrap();
        let pid = child.pid();
        assert!(alive(pid));
        drop(child);
        assert!(!alive(pid));
    }

    #[test]
    fn usage_counts_cpu_time_of_the_child() {
        let out = Cmd::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]).run().unwrap();
        assert!(out.usage.user + out.usage.sys > Duration::from_millis(20), "{:?}", out.usage);
    }
}
