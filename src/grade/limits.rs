//! Resource limits for one sandboxed submission: a pids + memory cgroup (v1,
//! v2 or hybrid), removed with everything in it when dropped; and rlimits the
//! sandboxed process sets on itself.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// (controller, directory); on v2 one entry, named "".
    dirs: Vec<(String, PathBuf)>,
    v2: bool,
}

/// The submission's subtree inside each jail directory.
const DELEGATED: &str = "sandbox";

impl Jail {
    /// Creates `vlab-grade-<name>` with the limits, or explains why it cannot.
    /// `delegate` names more controllers the submission makes groups of its
    /// own in (cpu, cpuset; runc's devices, freezer, ...). A devices group
    /// denies reading and writing every block device: whatever a lab may
    /// mknod, it cannot open a disk.
    pub(crate) fn create(name: &str, limits: &Limits, delegate: &[&str]) -> Result<Jail, String> {
        let root = Path::new("/sys/fs/cgroup");
        let leaf = format!("vlab-grade-{name}");
        let write =
            |p: PathBuf, v: String| std::fs::write(&p, v).map_err(|e| format!("cannot write {}: {e}", p.display()));
        let mkdir = |p: &Path| std::fs::create_dir(p).map_err(|e| format!("cannot create {}: {e}", p.display()));
        let controllers: Vec<&str> = ["pids", "memory"].iter().chain(delegate).copied().collect();
        if crate::host::cgroup::detect().mode == crate::host::cgroup::Mode::V2 {
            let ctl = std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
            for c in controllers.iter().filter(|c| ["pids", "memory", "cpu", "cpuset"].contains(c)) {
                if !ctl.split_whitespace().any(|x| x == *c) {
                    write(root.join("cgroup.subtree_control"), format!("+{c}"))?;
                }
            }
            let dir = root.join(&leaf);
            mkdir(&dir)?;
            let jail = Jail { dirs: vec![(String::new(), dir.clone())], v2: true };
            write(dir.join("pids.max"), limits.pids.to_string())?;
            write(dir.join("memory.max"), limits.memory_bytes.to_string())?;
            // v2 lets only a group without processes give controllers to
            // children: the processes live in sandbox/init, and the
            // submission's own groups get the controllers from sandbox/.
            let inner = dir.join(DELEGATED);
            for d in [&dir, &inner] {
                if d == &inner {
                    mkdir(&inner)?;
                }
                for c in &controllers {
                    let _ = std::fs::write(d.join("cgroup.subtree_control"), format!("+{c}"));
                }
            }
            mkdir(&inner.join("init"))?;
            return Ok(jail);
        }
        let mut jail = Jail { dirs: Vec::new(), v2: false };
        for ctl in controllers {
            if !root.join(ctl).is_dir() {
                continue;
            }
            let dir = root.join(ctl).join(&leaf);
            mkdir(&dir)?;
            jail.dirs.push((ctl.to_string(), dir.clone()));
            match ctl {
                "pids" => write(dir.join("pids.max"), limits.pids.to_string())?,
                "memory" => write(dir.join("memory.limit_in_bytes"), limits.memory_bytes.to_string())?,
                "devices" => write(dir.join("devices.deny"), "b *:* rw".into())?,
                _ => {}
            }
            let inner = dir.join(DELEGATED);
            mkdir(&inner)?;
            if ctl == "cpuset" {
                // A v1 cpuset takes no tasks until it has CPUs and memory nodes: the parent's.
                for d in [&dir, &inner] {
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let parent = std::fs::read_to_string(d.parent().unwrap_or(root).join(f)).unwrap_or_default();
                        write(d.join(f), parent.trim().to_string())?;
                    }
                }
            }
        }
        Ok(jail)
    }

    /// (controller, directory) of the submission's subtree in each hierarchy; on v2 one entry named "".
    pub(crate) fn delegated(&self) -> Vec<(String, PathBuf)> {
        self.dirs.iter().map(|(c, d)| (c.clone(), d.join(DELEGATED))).collect()
    }

    pub(crate) fn is_v2(&self) -> bool {
        self.v2
    }

    /// The cgroup.procs files a process writes "0" into to join.
    pub(crate) fn procs_files(&self) -> Vec<PathBuf> {
        match self.v2 {
            true => self.dirs.iter().map(|(_, d)| d.join(DELEGATED).join("init").join("cgroup.procs")).collect(),
            false => self.dirs.iter().map(|(_, d)| d.join(DELEGATED).join("cgroup.procs")).collect(),
        }
    }

    /// Did the pids limit stop a fork?
    pub(crate) fn pids_limit_hit(&self) -> bool {
        self.dirs.iter().any(|(_, d)| {
            std::fs::read_to_string(d.join("pids.events"))
                .ok()
                .and_then(|t| t.lines().find_map(|l| l.strip_prefix("max ").map(|n| n.trim() != "0")))
                .unwrap_or(false)
        })
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        // The labs' cgroup teardown: kill everything inside, remove deepest first, retry while they exit.
        for (_, dir) in self.dirs.iter().rev() {
            let _ = crate::container::cgroup::remove_tree(dir);
        }
    }
}

/// Removes `vlab-grade-<pid>-*` cgroups left by a grader that was killed
/// (its pid no longer runs), with anything still inside them.
pub(crate) fn remove_stale_jails() {
    let roots = [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/cpu",
        "/sys/fs/cgroup/cpuset",
    ];
    for root in roots {
        let Ok(rd) = std::fs::read_dir(root) else { continue };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(pid) =
                name.strip_prefix("vlab-grade-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            if !crate::proc::alive(pid) {
                drop(Jail { dirs: vec![(String::new(), e.path())], v2: false });
            }
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
