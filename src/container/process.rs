//! What the host can see of a contained process, beyond its namespaces: the
//! root of its mount namespace (pivot_root or only chroot?), whether the old
//! root is still reachable, how `/` is mounted and which host filesystems its
//! whole mount table shows, its effective capabilities, the memory limit of
//! its cgroup, the block devices it may open or sees in /dev, and, under runc,
//! whether the runtime is the real runc binary and its state names this
//! process. The check engine adds these to an observe check's facts.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::mountinfo;
use crate::evidence::Facts;

/// Capability names by bit number (capability.h), without the `CAP_` prefix.
const CAPS: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// Names of the capabilities set in a `CapEff:`-style hex mask, comma-separated.
pub(crate) fn cap_names(mask: u64) -> String {
    (0..64)
        .filter(|bit| mask & (1u64 << bit) != 0)
        .map(|bit| CAPS.get(bit).map(|n| n.to_string()).unwrap_or_else(|| format!("cap_{bit}")))
        .collect::<Vec<_>>()
        .join(",")
}

/// Facts about `pid` (see labs/README.md, observe checks). `runc_root` is the
/// runner's own runc state directory for this check.
pub(crate) fn facts(pid: i32, workspace: &Path, runc_root: &Path) -> Facts {
    let mut f = Facts::new();
    let mounts = mountinfo::of(&pid.to_string());
    if let Some(root) = mountinfo::root_mount(&mounts) {
        f.insert("mnt.root_options".into(), if root.read_only() { "ro" } else { "rw" }.into());
    }
    let host = mountinfo::of("self");
    if let Some(host_root) = mountinfo::root_mount(&host) {
        let visible =
            mounts.iter().any(|m| m.mount_point != "/" && m.device == host_root.device && m.root == host_root.root);
        f.insert("mnt.old_root_visible".into(), if visible { "yes" } else { "no" }.into());
    }
    let beside: Vec<String> =
        mountinfo::host_filesystems(&mounts, &host).into_iter().map(mountinfo::describe).collect();
    f.insert("mnt.host".into(), if beside.is_empty() { "none".into() } else { beside.join("; ") });
    f.insert("mnt.proc".into(), proc_mount(pid).into());
    if let Some((dev, ino)) = namespace_root(pid) {
        f.insert("mnt.ns_root".into(), locate(dev, ino, workspace));
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    if let Some(mask) = status_field(&status, "CapEff:").and_then(|h| u64::from_str_radix(h, 16).ok()) {
        f.insert("caps.eff".into(), cap_names(mask));
        f.insert("caps.eff_count".into(), mask.count_ones().to_string());
    }
    if let Some(cpus) = status_field(&status, "Cpus_allowed_list:") {
        f.insert("cpus_allowed".into(), cpus.to_string());
    }
    if let Some(limit) = memory_limit(pid) {
        f.insert("memory.limit_bytes".into(), limit);
    }
    f.insert("devices.block".into(), block_device_rules(pid));
    f.insert("devices.nodes".into(), block_nodes(pid));
    f.extend(runc_facts(pid, runc_root));
    f
}

fn argv(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect()
        })
        .unwrap_or_default()
}

/// Fields of /proc/PID/stat after the command name (field 3, the state, first).
fn stat_fields(pid: i32) -> Vec<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rfind(')').map(|i| stat[i + 1..].split_whitespace().map(str::to_string).collect()).unwrap_or_default()
}

fn parent_of(pid: i32) -> Option<i32> {
    stat_fields(pid).get(1)?.parse().ok()
}

/// When the process started, in clock ticks after boot (field 22 of /proc/PID/stat).
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    stat_fields(pid).get(19)?.parse().ok()
}

/// Device and inode of a file, following links (`/proc/PID/exe` included).
fn file_id(path: impl AsRef<Path>) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// What runc says of the container whose init `pid` is. The runtime is known
/// by its binary: the probe's parent (runc runs the container's init as its
/// own child) must be the runc on PATH by device and inode, whatever it is
/// called. Its command line, honest because the binary is, names the state
/// directory and the container; that directory must be the runner's own, and
/// the init runc recorded there (pid and start time) must be this very
/// process. Facts `runc.parent`, `runc.id`, `runc.init_is_probe`, `runc.status`.
fn runc_facts(pid: i32, runc_root: &Path) -> Facts {
    let mut f = Facts::new();
    let Some(parent) = parent_of(pid) else { return f };
    let Some(runc) = crate::host::tools::which("runc") else {
        f.insert("runc.parent".into(), "unknown: no runc on PATH".into());
        return f;
    };
    if file_id(format!("/proc/{parent}/exe")).is_none_or(|id| file_id(&runc) != Some(id)) {
        let exe = std::fs::read_link(format!("/proc/{parent}/exe")).map(|p| p.display().to_string());
        let shown = format!("{} (pid {parent}, called {:?})", exe.unwrap_or_else(|_| "?".into()), comm(parent));
        f.insert("runc.parent".into(), format!("{shown}, not the runc binary {}", runc.display()));
        return f;
    }
    f.insert("runc.parent".into(), "runc".into());
    let args = argv(parent);
    let root = args.iter().position(|a| a == "--root").and_then(|i| args.get(i + 1)).cloned();
    let root = root.or_else(|| args.iter().find_map(|a| a.strip_prefix("--root=")).map(str::to_string));
    let (Some(root), Some(id)) = (root, args.last()) else { return f };
    f.insert("runc.id".into(), id.clone());
    let resolved = Path::new(&format!("/proc/{parent}/cwd")).join(&root).canonicalize().ok();
    if resolved.is_none() || resolved != runc_root.canonicalize().ok() {
        f.insert("runc.init_is_probe".into(), format!("no: runc keeps its state in {root}, not in $VLAB_RUNC_ROOT"));
        return f;
    }
    let verdict = match (super::runc::recorded_init(runc_root, id), start_time(pid)) {
        (Some(init), Some(started)) if init == (pid, started) => "yes".to_string(),
        (Some((p, t)), started) => format!(
            "no: runc's state.json names pid {p} started at tick {t}; the probe is pid {pid} started at tick {}",
            started.map(|s| s.to_string()).unwrap_or_else(|| "?".into())
        ),
        (None, _) => format!("no: no readable state.json for {id} in $VLAB_RUNC_ROOT"),
    };
    f.insert("runc.init_is_probe".into(), verdict);
    if let Some(state) = super::runc::state(runc_root, id) {
        f.insert("runc.status".into(), state["status"].as_str().unwrap_or("unknown").to_string());
    }
    f
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()).unwrap_or_default()
}

/// Which block devices the process's device cgroup lets it read or write:
/// `none`, or the rules of its `devices.list` (cgroup v1) that allow it.
fn block_device_rules(pid: i32) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v1 = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == "devices").then(|| path.trim_start_matches('/').to_string())
    });
    let Some(path) = v1 else {
        return "unknown: cgroup v2 keeps device rules in an eBPF program the runner does not read".into();
    };
    let list = Path::new("/sys/fs/cgroup/devices").join(path).join("devices.list");
    match std::fs::read_to_string(&list) {
        Ok(text) => block_rules(&text),
        Err(e) => format!("unknown: cannot read {}: {e}", list.display()),
    }
}

/// The lines of a `devices.list` that allow reading or writing a block device.
fn block_rules(text: &str) -> String {
    let open: Vec<&str> = text
        .lines()
        .filter(|l| {
            let mut r = l.split_whitespace();
            matches!(r.next(), Some("a" | "b")) && r.nth(1).is_some_and(|access| access.contains(['r', 'w']))
        })
        .collect();
    if open.is_empty() { "none".into() } else { open.join(", ") }
}

/// Block device nodes under the process's /dev and one level below, as it
/// sees them: `none`, or their paths (a host disk, if the container has one).
fn block_nodes(pid: i32) -> String {
    use std::os::unix::fs::FileTypeExt;
    let Ok(root) = File::open(format!("/proc/{pid}/root")).map(OwnedFd::from) else { return "none".into() };
    let Ok(dev) = super::escape::open_in_root(&root, Path::new("/dev"), libc::O_RDONLY | libc::O_DIRECTORY) else {
        return "none".into();
    };
    let base = Path::new("/proc/self/fd").join(dev.as_raw_fd().to_string());
    let mut found = Vec::new();
    let mut dirs = vec![(base.clone(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_block_device() {
                let rel = entry.path().strip_prefix(&base).map(|r| r.display().to_string()).unwrap_or_default();
                found.push(format!("/dev/{rel}"));
            } else if kind.is_dir() && depth < 1 {
                dirs.push((entry.path(), depth + 1));
            }
        }
    }
    found.sort();
    if found.is_empty() { "none".into() } else { found.join(",") }
}

/// Whose /proc the process sees: `own` when its /proc shows its own PID
/// namespace (pid 1 there is in the same namespace as the process), `other`
/// for a /proc of another namespace (the host's), `missing` when none is mounted.
pub(crate) fn proc_mount(pid: i32) -> &'static str {
    let theirs = std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    if std::fs::metadata(format!("/proc/{pid}/root/proc/1")).is_err() {
        return "missing";
    }
    let init = std::fs::read_link(format!("/proc/{pid}/root/proc/1/ns/pid")).ok();
    if theirs.is_some() && init == theirs { "own" } else { "other" }
}

pub(crate) fn status_field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// The memory limit of the process's cgroup (v1 memory controller or v2),
/// in bytes, or `max` when unlimited.
pub(crate) fn memory_limit(pid: i32) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let base = Path::new("/sys/fs/cgroup");
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|v| v.trim().to_string());
    let v1 = cgroups.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls.split(',').any(|c| c == "memory").then(|| path.trim_start_matches('/').to_string())
    });
    let value = match v1 {
        Some(path) => read(&base.join("memory").join(path).join("memory.limit_in_bytes"))?,
        None => {
            let path = cgroups.lines().find_map(|l| l.strip_prefix("0::"))?.trim_start_matches('/');
            read(&base.join(path).join("memory.max"))?
        }
    };
    // cgroup v1 writes "no limit" as the largest page-aligned i64.
    Some(match value.parse::<u64>() {
        Ok(v) if v >= (i64::MAX as u64) & !0xfff => "max".into(),
        _ => value,
    })
}

/// Where the device/inode pair lies: `host` (the host's `/`), `workspace:REL`
/// for a directory of the workspace (two levels deep), else `other`.
pub(crate) fn locate(dev: u64, ino: u64, workspace: &Path) -> String {
    let same = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.dev() == dev && m.ino() == ino);
    if same(Path::new("/")) {
        return "host".into();
    }
    let mut frontier = vec![(workspace.to_path_buf(), 0)];
    while let Some((dir, depth)) = frontier.pop() {
        if same(&dir) {
            let rel = dir.strip_prefix(workspace).unwrap_or(&dir).display().to_string();
            return format!("workspace:{}", if rel.is_empty() { "." } else { &rel });
        }
        if depth < 2
            && let Ok(rd) = std::fs::read_dir(&dir)
        {
            frontier.extend(
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| (e.path(), depth + 1)),
            );
        }
    }
    "other".into()
}

/// Device and inode of the root of `pid`'s mount namespace: what a process
/// entering that namespace sees as `/`. After pivot_root this is the new root;
/// after only chroot it is still the host's root, whatever the process's own
/// root is. A forked child (raw system calls only: the parent may have other
/// threads) enters the namespace, stats `/` and reports through a pipe; no
/// program from the container is run. Unprivileged, it enters the owning user
/// namespace first, which its creator may.
pub(crate) fn namespace_root(pid: i32) -> Option<(u64, u64)> {
    let mnt = File::open(format!("/proc/{pid}/ns/mnt")).ok()?;
    let user = File::open(format!("/proc/{pid}/ns/user")).ok()?;
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two fds pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return None;
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let slash = c"/";
    // SAFETY: the child makes only async-signal-safe system calls on memory
    // prepared before the fork, then _exits; it never returns into Rust code.
    match unsafe { libc::fork() } {
        -1 => None,
        // SAFETY: as above; the fds are open, `st` and `buf` are local buffers.
        0 => unsafe {
            let entered = libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) == 0
                || (libc::setns(user.as_raw_fd(), libc::CLONE_NEWUSER) == 0
                    && libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) == 0);
            let mut st: libc::stat = std::mem::zeroed();
            if entered && libc::stat(slash.as_ptr(), &mut st) == 0 {
                let buf = [st.st_dev, st.st_ino];
                libc::write(wr.as_raw_fd(), buf.as_ptr().cast(), std::mem::size_of_val(&buf));
            }
            libc::_exit(0)
        },
        child => {
            drop(wr);
            let mut buf = [0u64; 2];
            let want = std::mem::size_of_val(&buf);
            // SAFETY: `buf` is writable for `want` bytes and `rd` is open.
            let n = unsafe { libc::read(rd.as_raw_fd(), buf.as_mut_ptr().cast(), want) };
            // SAFETY: reaps our own child; a null status pointer is allowed.
            unsafe { libc::waitpid(child, std::ptr::null_mut(), 0) };
            (n == want as isize).then_some((buf[0], buf[1]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_masks_name_their_bits() {
        assert_eq!(cap_names(0), "");
        assert_eq!(cap_names(1 << 10), "net_bind_service");
        assert_eq!(cap_names((1 << 21) | 1 | (1 << 45)), "chown,sys_admin,cap_45");
        // runc's default set.
        assert_eq!(cap_names(0xa80425fb).split(',').count(), 14);
    }

    #[test]
    fn block_rules_are_those_that_read_or_write_a_block_device() {
        let runc_default = "b *:* m\nc *:* m\nc 1:3 rwm\nc 136:* rwm\n";
        assert_eq!(block_rules(runc_default), "none");
        assert_eq!(block_rules("a *:* rwm\n"), "a *:* rwm");
        assert_eq!(block_rules("c 1:3 rwm\nb 254:0 r\nb 7:* m\n"), "b 254:0 r");
    }

    #[test]
    fn our_own_namespace_root_is_the_host_root() {
        let me = std::process::id() as i32;
        let (dev, ino) = namespace_root(me).expect("stat / in our own mount namespace");
        assert_eq!(locate(dev, ino, Path::new("/nonexistent")), "host");
    }

    #[test]
    fn our_own_facts_are_readable() {
        let f = facts(std::process::id() as i32, Path::new("/nonexistent"), Path::new("/nonexistent"));
        assert_eq!(f["mnt.ns_root"], "host");
        assert_eq!(f["mnt.old_root_visible"], "no");
        assert!(["own", "other"].contains(&f["mnt.proc"].as_str()));
        assert!(f.contains_key("caps.eff_count"));
        assert!(f.contains_key("cpus_allowed"));
    }
}
