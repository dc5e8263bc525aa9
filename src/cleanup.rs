//! What must die with vlab: process groups of running children and scratch
//! paths. Owned values (`proc::Child`, `Scratch`) clean up in `Drop`; this
//! registry exists only for the Ctrl-C path, where no destructor runs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

#[derive(Default)]
struct Registry {
    groups: BTreeSet<i32>,
    paths: BTreeSet<PathBuf>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry { groups: BTreeSet::new(), paths: BTreeSet::new() });
static HANDLER: Once = Once::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|poison| poison.into_inner())
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Has Ctrl-C (or SIGTERM) been received?
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Exits with `code`, unless interrupted: then the handler is cleaning up and
/// exits with 130 itself, so this waits for it.
pub fn exit(code: i32) -> ! {
    while interrupted() {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    crate::proc::reap_zombies();
    std::process::exit(code)
}

/// Installs the SIGINT/SIGTERM handler once. It kills every registered group,
/// removes every registered path and exits 130, so Ctrl-C leaves nothing.
pub(crate) fn install_interrupt_handler() {
    HANDLER.call_once(|| {
        // Orphans of our children re-parent to us, so the sweep can find them.
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer; no memory is passed.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            eprintln!(
                "vlab: cannot become a child subreaper ({}); a child that daemonizes may escape the sweep on Ctrl-C",
                std::io::Error::last_os_error()
            );
        }
        let _ = ctrlc::set_handler(|| {
            // First, so the main thread (which sees its children die) does not
            // report their deaths as results or exit with its own status.
            INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
            kill_everything();
            crate::proc::reap_zombies();
            eprintln!("vlab: interrupted; every child was stopped and scratch files removed");
            std::process::exit(130);
        });
    });
}

/// Kills all registered groups and all our descendants, removes registered paths.
pub(crate) fn kill_everything() {
    let (groups, paths) = {
        let reg = registry();
        (reg.groups.clone(), reg.paths.clone())
    };
    for pgid in groups {
        // SAFETY: a plain signal send. The result is not an error to report:
        // a group that is already gone (ESRCH) is what this sweep wants.
        unsafe { libc::killpg(pgid, libc::SIGKILL) };
    }
    // Processes that left their process group (timeout, setsid) but not their cgroup.
    crate::container::cgroup::remove_live();
    crate::proc::kill_orphans(false);
    for path in paths {
        let _ = std::fs::remove_dir_all(&path);
    }
}

pub(crate) fn register_group(pgid: i32) {
    registry().groups.insert(pgid);
}

pub(crate) fn unregister_group(pgid: i32) {
    registry().groups.remove(&pgid);
}

pub(crate) fn live_groups() -> Vec<i32> {
    registry().groups.iter().copied().collect()
}

/// A directory removed on drop and on Ctrl-C.
#[derive(Debug)]
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates a scratch directory inside `parent` (which must be on a real
    /// disk when the lab measures I/O: tmpfs would hide block writes).
    pub(crate) fn new_in(parent: &Path, prefix: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(parent)?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        registry().paths.insert(dir.path().to_path_buf());
        Ok(Self { dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        registry().paths.remove(self.dir.path());
    }
}
