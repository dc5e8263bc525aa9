//! The one supervisor of everything vlab starts: the Ctrl-C (and SIGTERM)
//! handler, vlab as child subreaper, and the registry of what must die or be
//! removed when vlab is interrupted (process groups, cgroups, scratch paths).
//!
//! `main` installs it explicitly, before any child starts, and ends through
//! [`exit`]; nothing installs it as a side effect of running a child. Owned
//! values (`proc::Child`, `cgroup::Group`, `cleanup::Scratch`) still clean
//! up in `Drop`, with or without it. The registry exists for the interrupt,
//! where no destructor runs, and the subreaper so that orphans of killed
//! children come back to vlab to be reaped.
//!
//! A library user without `main` (the integration tests, the benches) calls
//! [`Supervisor::install`] too: it is idempotent, so every test may. The
//! library's own unit tests get it from `proc::Cmd::spawn` under `cfg(test)`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use crate::cgroup::{self, CgroupError, RunBase};
use crate::procfs::{descendants, processes, sigkill, sigkill_group};

/// Set in every child's environment to the runner's pid, and inherited by their
/// descendants: an orphan that `setsid`ed into a group of its own is still ours
/// by this mark. Children this process started some other way (a test
/// harness's own) carry no mark and are left alone.
pub(crate) const MARK: &str = "VLAB_RUNNER_PID";

#[derive(Debug, Clone, thiserror::Error)]
pub enum SupervisorError {
    #[error(
        "cannot become a child subreaper ({}): a child that daemonizes could escape vlab and its zombies would not be reaped",
        std::io::Error::from_raw_os_error(*errno)
    )]
    Subreaper { errno: i32 },
    #[error("cannot install the Ctrl-C handler ({message}): an interrupted check could leave its processes running")]
    Handler { message: String },
}

/// Proof that the supervisor is installed in this process; `main` keeps it
/// until it ends through [`exit`].
#[derive(Debug)]
pub struct Supervisor {
    _installed: (),
}

/// What this process supervises. Process-global by necessity, and only here:
/// a signal is delivered to the whole process, ctrlc runs the handler on a
/// thread of its own with nothing to hand it, and every child, cgroup and
/// scratch directory (made on any thread, by any owner) must be reachable
/// from that handler. Everything else is owned by values with `Drop`.
struct State {
    installed: OnceLock<Result<(), SupervisorError>>,
    interrupted: AtomicBool,
    registry: Mutex<Registry>,
    /// Held while something is made and registered (see [`making`]).
    making: Mutex<()>,
    /// Where run groups go, found once per process (finding it makes probe groups).
    run_base: OnceLock<Result<RunBase, CgroupError>>,
    /// Numbers this process's run groups.
    runs: AtomicU64,
}

struct Registry {
    /// Process groups of children still running.
    live: BTreeSet<i32>,
    /// Every process group this process has started: an orphan in one of them is ours.
    spawned: BTreeSet<i32>,
    cgroups: BTreeSet<PathBuf>,
    paths: BTreeSet<PathBuf>,
}

static STATE: State = State {
    installed: OnceLock::new(),
    interrupted: AtomicBool::new(false),
    registry: Mutex::new(Registry {
        live: BTreeSet::new(),
        spawned: BTreeSet::new(),
        cgroups: BTreeSet::new(),
        paths: BTreeSet::new(),
    }),
    making: Mutex::new(()),
    run_base: OnceLock::new(),
    runs: AtomicU64::new(0),
};

fn registry() -> MutexGuard<'static, Registry> {
    STATE.registry.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Supervisor {
    /// Makes this process a child subreaper (orphans of its children
    /// re-parent to it, so the sweep finds and reaps them) and installs the
    /// SIGINT/SIGTERM handler, which kills every registered group and cgroup,
    /// removes every registered path and exits 130. Idempotent: the first
    /// call does the work, later ones return its result. Either half that
    /// fails leaves the other in place, and vlab still runs, less contained:
    /// the error says what is missing (a fork-bombed sandbox, say, may have
    /// no thread left for the handler).
    pub fn install() -> Result<Supervisor, SupervisorError> {
        let done = STATE.installed.get_or_init(|| {
            // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer; no memory is passed. The result is checked.
            let subreaper = match unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } {
                0 => Ok(()),
                _ => Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0)),
            };
            let handler = ctrlc::set_handler(on_interrupt);
            match (subreaper, handler) {
                (_, Err(e)) => Err(SupervisorError::Handler { message: e.to_string() }),
                (Err(errno), Ok(())) => Err(SupervisorError::Subreaper { errno }),
                (Ok(()), Ok(())) => Ok(()),
            }
        });
        done.clone().map(|()| Supervisor { _installed: () })
    }
}

/// Exits with `code`, unless interrupted: then the handler is cleaning up and
/// exits with 130 itself, so this waits for it. Reaps the zombies no child
/// handle is left to wait for.
pub fn exit(code: i32) -> ! {
    while interrupted() {
        std::thread::sleep(Duration::from_millis(50));
    }
    reap_zombies();
    std::process::exit(code)
}

/// Has Ctrl-C (or SIGTERM) been received? A command that sees its children
/// die checks this before reporting their deaths as results.
pub fn interrupted() -> bool {
    STATE.interrupted.load(Ordering::SeqCst)
}

fn on_interrupt() {
    // First, so the main thread (which sees its children die) does not
    // report their deaths as results or exit with its own status.
    STATE.interrupted.store(true, Ordering::SeqCst);
    // Held until the exit: whatever is being made now is registered first,
    // and nothing is made after the registry is read.
    let making = making();
    kill_everything(&making);
    reap_zombies();
    eprintln!("vlab: interrupted; every child was stopped and scratch files removed");
    std::process::exit(130);
}

/// Kills all registered groups, cgroups and our descendants, removes registered paths.
fn kill_everything(making: &MutexGuard<'static, ()>) {
    let (groups, cgroups, paths) = {
        let reg = registry();
        (reg.live.clone(), reg.cgroups.clone(), reg.paths.clone())
    };
    // Best effort by nature: nothing is left to tell of a failure but the exit.
    for pgid in groups {
        let _ = sigkill_group(pgid);
    }
    // Processes that left their process group (timeout, setsid) but not their cgroup.
    for dir in &cgroups {
        cgroup::kill_tree(dir);
    }
    for dir in &cgroups {
        let _ = cgroup::remove_tree_within(dir, Duration::from_secs(1));
    }
    sweep(making, false);
    for path in paths {
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Something the interrupt handler kills or removes for as long as this value lives.
#[must_use = "the registration ends when this value is dropped"]
#[derive(Debug)]
pub(crate) struct Registration {
    entry: Entry,
}

#[derive(Debug)]
enum Entry {
    Group(i32),
    Cgroups(Vec<PathBuf>),
    Path(PathBuf),
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut reg = registry();
        match &self.entry {
            Entry::Group(pgid) => {
                reg.live.remove(pgid);
            }
            Entry::Cgroups(dirs) => {
                for d in dirs {
                    reg.cgroups.remove(d);
                }
            }
            Entry::Path(p) => {
                reg.paths.remove(p);
            }
        }
    }
}

/// Held while making something the interrupt handler must know of (starting
/// a child, making a cgroup or a scratch directory) until it is registered.
/// The orphan sweep holds it, so it never mistakes a child another thread
/// just started for an orphan; the interrupt handler takes it and keeps it
/// until the process exits, so nothing is made that it would not see.
pub(crate) fn making() -> MutexGuard<'static, ()> {
    STATE.making.lock().unwrap_or_else(|p| p.into_inner())
}

/// A child just started, leading process group `pgid`: killed on interrupt
/// while registered; its orphans stay ours afterwards.
pub(crate) fn child(pgid: i32) -> Registration {
    let mut reg = registry();
    reg.live.insert(pgid);
    reg.spawned.insert(pgid);
    Registration { entry: Entry::Group(pgid) }
}

/// cgroup directories whose processes die, and which are removed, on interrupt.
pub(crate) fn cgroups(dirs: Vec<PathBuf>) -> Registration {
    registry().cgroups.extend(dirs.iter().cloned());
    Registration { entry: Entry::Cgroups(dirs) }
}

/// A scratch path removed on interrupt.
pub(crate) fn path(path: PathBuf) -> Registration {
    registry().paths.insert(path.clone());
    Registration { entry: Entry::Path(path) }
}

/// Where this process puts each child's cgroups, or why it cannot.
pub(crate) fn run_base() -> Result<&'static RunBase, &'static CgroupError> {
    STATE.run_base.get_or_init(RunBase::find).as_ref()
}

/// A fresh name for a child's run group, `vlab-<runner pid>-run<n>`.
pub(crate) fn run_group_name() -> String {
    format!("{}{}-run{}", cgroup::PREFIX, std::process::id(), STATE.runs.fetch_add(1, Ordering::Relaxed))
}

/// Reaps every zombie child of ours, whoever started it: called as vlab
/// exits, when no child handle is left to wait for its own.
pub(crate) fn reap_zombies() {
    // SAFETY: WNOHANG never blocks; the loop ends at 0 (none exited) or -1 (no children: nothing to reap).
    while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
}

/// Kills and reaps every direct child of ours that is not the leader of, or
/// inside, a live registered group, and that we started (by group or by the
/// environment mark): these are orphans of finished commands, re-parented to us.
/// (On Ctrl-C, every child goes.)
pub(crate) fn sweep_orphans() {
    sweep(&making(), true);
}

/// The sweep, under the lock that keeps children from being started meanwhile.
fn sweep(_making: &MutexGuard<'static, ()>, spare_live: bool) {
    // Read the live set under the lock: a child spawned meanwhile is in it.
    let (live, spawned) = {
        let reg = registry();
        (if spare_live { reg.live.clone() } else { BTreeSet::new() }, reg.spawned.clone())
    };
    let me = std::process::id() as i32;
    let mark = format!("{MARK}={me}");
    let marked = |pid: i32| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|c| *c == 0).any(|kv| kv == mark.as_bytes()))
    };
    for p in processes() {
        if p.ppid != me || live.contains(&p.pgid) || live.contains(&p.pid) {
            continue;
        }
        // A zombie has no environment to read its mark from, and nothing left
        // to kill: whoever started it, only we can reap it now.
        if !spawned.contains(&p.pgid) && !marked(p.pid) && p.state != 'Z' {
            continue;
        }
        // A process we may not signal (EPERM) is not one we started: best effort.
        for d in descendants(p.pid) {
            let _ = sigkill(d);
        }
        if sigkill(p.pid).is_err() {
            continue;
        }
        // SAFETY: `p` is our own child (its ppid is us), so waitpid reaps it,
        // and a null status pointer is allowed.
        let reaped = unsafe { libc::waitpid(p.pid, std::ptr::null_mut(), 0) };
        // -1 is ECHILD: another thread reaped it first. Either way it is gone.
        debug_assert!(reaped == p.pid || reaped == -1, "waitpid({}) returned {reaped}", p.pid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent() {
        let first = Supervisor::install().map(|_| ()).map_err(|e| e.to_string());
        let second = Supervisor::install().map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(first, second);
        assert!(first.is_ok(), "{first:?}");
    }

    #[test]
    fn registrations_end_with_their_values() {
        let dir = PathBuf::from("/nonexistent/vlab-registration-test");
        let reg = path(dir.clone());
        assert!(registry().paths.contains(&dir));
        drop(reg);
        assert!(!registry().paths.contains(&dir));
        let group = child(-424242);
        assert!(registry().live.contains(&-424242));
        drop(group);
        let reg = registry();
        assert!(!reg.live.contains(&-424242) && reg.spawned.contains(&-424242), "the group's orphans stay ours");
    }
}
