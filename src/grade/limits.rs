//! Resource limits for one sandboxed submission: a pids + memory cgroup (v1,
//! v2 or hybrid), removed with everything in it when dropped; and rlimits the
//! sandboxed process sets on itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroup::{self, CgroupError, Place};
use crate::supervisor::{self, Registration};

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Limits {
    /// Processes and threads in the whole submission (a fork bomb stops here).
    pub(crate) pids: u32,
    pub(crate) memory_bytes: u64,
    /// Largest file any process may write (an output flood stops here).
    pub(crate) file_bytes: u64,
    /// Size of the private filesystem the submission works in (a disk filler stops here).
    pub(crate) disk_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { pids: 512, memory_bytes: 2 << 30, file_bytes: 128 << 20, disk_mib: 1024 }
    }
}

/// A cgroup (one directory per v1 controller, or one v2 directory) that dies
/// with this value. The limits sit on it; the submission gets `sandbox/`
/// below it, so nothing it does in its subtree (even with CAP_SYS_ADMIN,
/// unmounting what hides the rest) can raise them: a child cgroup never
/// exceeds its parent.
#[derive(Debug)]
pub(crate) struct Jail {
    group: cgroup::Group,
    /// Known to the supervisor (killed and removed on Ctrl-C) while the jail lives.
    _registered: Registration,
}

/// The submission's subtree inside each jail directory.
const DELEGATED: &str = "sandbox";

/// Names of the jails: `vlab-grade-<grader pid>-<submission>`.
const JAIL_PREFIX: &str = "vlab-grade-";

impl Jail {
    /// Creates `vlab-grade-<name>` with the limits, or explains why it cannot.
    /// `delegate` names more controllers the submission makes groups of its
    /// own in (cpu, cpuset; runc's devices, freezer, ...). A devices group
    /// denies reading and writing every block device: whatever a lab may
    /// mknod, it cannot open a disk.
    pub(crate) fn create(name: &str, limits: &Limits, delegate: &[&str]) -> Result<Jail, CgroupError> {
        let controllers: Vec<&str> = ["pids", "memory"].iter().chain(delegate).copied().collect();
        let limits = cgroup::Limits {
            pids: Some(limits.pids),
            memory_bytes: Some(limits.memory_bytes),
            deny_block_devices: true,
        };
        // From making the groups to registering them (see `supervisor::making`).
        let making = supervisor::making();
        let group = cgroup::Group::create(&format!("{JAIL_PREFIX}{name}"), &controllers, Place::Top, &limits)?;
        let _registered = supervisor::cgroups(group.dirs().iter().map(|(_, d)| d.clone()).collect());
        drop(making);
        group.add_child(DELEGATED)?;
        // v2 lets only a group without processes give controllers to
        // children: the processes live in sandbox/init, and the
        // submission's own groups get the controllers from sandbox/.
        if group.is_v2() {
            group.add_child(&format!("{DELEGATED}/init"))?;
        }
        Ok(Jail { group, _registered })
    }

    /// (controller, directory) of the submission's subtree in each hierarchy; on v2 one entry named "".
    pub(crate) fn delegated(&self) -> Vec<(String, PathBuf)> {
        self.group.dirs().iter().map(|(c, d)| (c.clone(), d.join(DELEGATED))).collect()
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.group.is_v2()
    }

    /// The cgroup.procs files a process writes "0" into to join.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        let inner = if self.is_v2() { Path::new(DELEGATED).join("init") } else { PathBuf::from(DELEGATED) };
        self.group.dirs().iter().map(|(_, d)| d.join(&inner).join("cgroup.procs")).collect()
    }

    /// Did the pids limit stop a fork?
    pub(crate) fn pids_limit_hit(&self) -> bool {
        self.group.dirs().iter().any(|(_, d)| {
            cgroup::read(&d.join("pids.events"))
                .and_then(|t| cgroup::keyed(&t, "max").map(|n| n != "0"))
                .unwrap_or(false)
        })
    }
}

/// Removes `vlab-grade-<pid>-*` cgroups left by a grader that was killed
/// (its pid no longer runs), with anything still inside them.
pub(crate) fn remove_stale_jails() {
    for dir in cgroup::top_groups(JAIL_PREFIX) {
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let Some(pid) =
            name.strip_prefix(JAIL_PREFIX).and_then(|r| r.split('-').next()).and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        if !crate::proc::alive(pid) {
            let _ = cgroup::remove_tree(&dir);
        }
    }
}

/// Sets file-size, core and open-file limits on the calling process (inherited by children).
pub(crate) fn set_rlimits(limits: &Limits) -> std::io::Result<()> {
    for (res, v) in [(libc::RLIMIT_FSIZE, limits.file_bytes), (libc::RLIMIT_CORE, 0), (libc::RLIMIT_NOFILE, 4096)] {
        let lim = libc::rlimit { rlim_cur: v, rlim_max: v };
        // SAFETY: `lim` is a valid rlimit for the duration of the call.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    // A write past RLIMIT_FSIZE should fail with EFBIG, not kill the grader's helper.
    // SAFETY: SIG_IGN is a valid disposition for SIGXFSZ; no handler code runs.
    if unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
