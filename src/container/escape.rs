//! Can a contained process reach the host? The runner plants a marker file on
//! the host, outside the container's root, under a fresh random name, and then
//! tries, itself and from the host, every way out the container holds:
//!
//! - every directory a container process holds (its root, its working
//!   directory, each directory fd it has open or inherited): `..` is followed
//!   from there as high as it goes, which is where chroot-in-chroot (or plain
//!   `cd ..` from an fd outside the root) takes a process with CAP_SYS_CHROOT;
//! - `/proc/1/root` as the container sees it (the host's init when the
//!   container shows the host's /proc);
//! - every mount point of its mount table, with every tail of the marker's
//!   path below it (a bind mount of any host directory above the marker);
//! - what lies *under* its root in its mount namespace, which mountinfo does
//!   not show: a host filesystem there (root moved over `/` with mount
//!   --move instead of pivot_root) comes back with `umount -l /`. The kernel
//!   tells this through statmount(2) (Linux 6.11 and later); an older kernel
//!   leaves it untried, and `escape.tried` says so.
//!
//! Nothing here runs in the container or reads what the student's processes
//! print: the paths are opened from the host through `/proc/PID/...`, so no
//! report can be forged or suppressed. The runner is more capable than the
//! process it inspects (it climbs even where the container lacks
//! CAP_SYS_CHROOT): a way out counts if it exists in the filesystem, whoever
//! holds the key today.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::mountinfo::Mount;
use crate::evidence::Facts;

/// A file only an escape reaches; removed on drop.
pub(crate) struct Marker {
    path: PathBuf,
    id: (u64, u64),
}

impl Marker {
    /// Plants a marker under a fresh random name in `dir` (a directory of the
    /// host outside the container's root, e.g. the check's scratch directory).
    pub(crate) fn plant(dir: &Path) -> std::io::Result<Marker> {
        let path = dir.join(format!("vlab-marker-{:016x}", rand::random::<u64>()));
        let mut file = File::options().write(true).create_new(true).mode(0o444).open(&path)?;
        file.write_all(b"planted by vlab: a container that reaches this file is not contained\n")?;
        let meta = file.metadata()?;
        Ok(Marker { path, id: (meta.dev(), meta.ino()) })
    }
}

impl Drop for Marker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn cstring(path: &Path) -> std::io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| std::io::ErrorKind::InvalidInput.into())
}

/// `openat(dir, path, O_PATH | extra)`: a handle on the place, nothing read.
fn open_path(dir: Option<&OwnedFd>, path: &Path, extra: i32) -> std::io::Result<OwnedFd> {
    let c = cstring(path)?;
    let dirfd = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is a valid NUL-terminated string and `dirfd` an open fd or AT_FDCWD.
    let fd = unsafe { libc::openat(dirfd, c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens `path` as a process whose root is `root` would: `..` and absolute
/// symlinks stay inside `root` (openat2 RESOLVE_IN_ROOT), as they do for it.
pub(crate) fn open_in_root(root: &OwnedFd, path: &Path, flags: i32) -> std::io::Result<OwnedFd> {
    let c = cstring(path)?;
    // SAFETY: open_how is plain data; all zeroes is a valid value.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT;
    // SAFETY: `c` is NUL-terminated, `how` is a valid open_how whose size we pass.
    let fd = unsafe {
        libc::syscall(libc::SYS_openat2, root.as_raw_fd(), c.as_ptr(), &how, std::mem::size_of::<libc::open_how>())
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: openat2 returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Device and inode of what `fd` refers to.
fn id_of(fd: &OwnedFd) -> std::io::Result<(u64, u64)> {
    // SAFETY: a zeroed stat is a valid out-buffer for fstat.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open (O_PATH fds may be fstat'ed) and `st` is writable.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// The host's name for what `fd` refers to, for messages.
fn shown(fd: &OwnedFd) -> String {
    std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "?".into())
}

/// Follows `..` from `start` for as long as it leads higher: the top of the
/// mount tree `start` lies in. From a directory inside a pivot_root'ed
/// container that is the container's root; from anything else, a host root.
fn climb(start: OwnedFd) -> std::io::Result<OwnedFd> {
    let mut here = start;
    let mut id = id_of(&here)?;
    // A bound on the depth of a directory tree, against a filesystem that lies.
    for _ in 0..4096 {
        let up = open_path(Some(&here), Path::new(".."), libc::O_DIRECTORY)?;
        let up_id = id_of(&up)?;
        if up_id == id {
            break;
        }
        (here, id) = (up, up_id);
    }
    Ok(here)
}

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|c| c.trim().to_string()).unwrap_or_default()
}

/// The directories the container's processes hold: root, working directory
/// and every open directory fd, with what they are in words.
fn held_directories(pids: &[i32]) -> Vec<(String, OwnedFd)> {
    let mut held = Vec::new();
    for &pid in pids {
        let who = format!("pid {pid} ({})", comm(pid));
        for (what, link) in [("the root", "root"), ("the working directory", "cwd")] {
            if let Ok(fd) = open_path(None, Path::new(&format!("/proc/{pid}/{link}")), libc::O_DIRECTORY) {
                held.push((format!("{what} of {who}"), fd));
            }
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for entry in fds.flatten() {
            // Not a directory (a pipe, a file): ENOTDIR, nothing to climb from.
            if let Ok(fd) = open_path(None, &entry.path(), libc::O_DIRECTORY) {
                held.push((format!("fd {} of {who}", entry.file_name().to_string_lossy()), fd));
            }
        }
    }
    held
}

/// statmount(2) and its request (include/uapi/linux/mount.h). New system
/// calls have one number on every architecture but alpha.
const SYS_STATMOUNT: libc::c_long = 457;
const STATMOUNT_SB_BASIC: u64 = 0x1;
const STATMOUNT_MNT_BASIC: u64 = 0x2;

#[repr(C)]
struct MntIdReq {
    size: u32,
    spare: u32,
    mnt_id: u64,
    param: u64,
    mnt_ns_id: u64,
}

/// What statmount says of one mount: its device, its parent's unique id and
/// its id as mountinfo shows it.
struct StatMount {
    device: String,
    parent: u64,
    old_id: u32,
}

fn statmount(mnt_id: u64, ns_id: u64) -> std::io::Result<StatMount> {
    let req = MntIdReq {
        size: std::mem::size_of::<MntIdReq>() as u32,
        spare: 0,
        mnt_id,
        param: STATMOUNT_SB_BASIC | STATMOUNT_MNT_BASIC,
        mnt_ns_id: ns_id,
    };
    // struct statmount without its strings: 64-bit aligned, room to spare.
    let mut buf = [0u64; 64];
    // SAFETY: `req` is a valid request of the size it states; `buf` is writable for the size passed.
    let r = unsafe { libc::syscall(SYS_STATMOUNT, &req, buf.as_mut_ptr(), std::mem::size_of_val(&buf), 0) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Offsets of struct statmount: sb_dev_major at byte 16, minor at 20, mnt_parent_id at 48, mnt_id_old at 56.
    let u32_at = |byte: usize| (buf[byte / 8] >> (8 * (byte % 8))) as u32;
    Ok(StatMount { device: format!("{}:{}", u32_at(16), u32_at(20)), parent: buf[6], old_id: u32_at(56) })
}

/// The mounts under `pid`'s root in its mount namespace, nearest first, as
/// (mountinfo id, device): Err if the kernel cannot tell (before 6.11).
fn under_root(pid: i32) -> std::io::Result<Vec<(u32, String)>> {
    let ns = File::open(format!("/proc/{pid}/ns/mnt"))?;
    let mut ns_id = 0u64;
    // SAFETY: NS_GET_MNTNS_ID writes one u64 into `ns_id`; `ns` is an open namespace fd.
    if unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_MNTNS_ID, &mut ns_id) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let path = cstring(Path::new(&format!("/proc/{pid}/root")))?;
    // SAFETY: a zeroed statx is a valid out-buffer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stx` writable.
    if unsafe { libc::statx(libc::AT_FDCWD, path.as_ptr(), 0, libc::STATX_MNT_ID_UNIQUE, &mut stx) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID_UNIQUE == 0 {
        return Err(std::io::ErrorKind::Unsupported.into());
    }
    let mut below = Vec::new();
    let mut here = stx.stx_mnt_id;
    for _ in 0..64 {
        let up = statmount(here, ns_id)?.parent;
        if up == here || up == 0 {
            break;
        }
        let parent = statmount(up, ns_id)?;
        below.push((parent.old_id, parent.device));
        here = up;
    }
    Ok(below)
}

/// Tries every way out of the container whose first process is `probe` (its
/// other processes are `pids`) and whose mount table is `mounts`. Facts:
/// `escape` (`none`, or the first way out, in words) and `escape.tried`.
pub(crate) fn probe(probe: i32, pids: &[i32], mounts: &[Mount], marker: &Marker) -> Facts {
    let mut f = Facts::new();
    let root = open_path(None, Path::new(&format!("/proc/{probe}/root")), libc::O_DIRECTORY);
    let Ok((root, root_id)) = root.and_then(|r| id_of(&r).map(|id| (r, id))) else {
        f.insert("escape".into(), format!("unknown: the root of pid {probe} cannot be opened"));
        return f;
    };
    let reaches = |dir: &OwnedFd| {
        open_in_root(dir, &marker.path, libc::O_PATH | libc::O_NOFOLLOW)
            .and_then(|fd| id_of(&fd))
            .is_ok_and(|id| id == marker.id)
    };
    let marker_shown = marker.path.display();
    let mut reached = Vec::new();
    let mut outside = Vec::new();

    let mut starts = held_directories(pids);
    let proc1 = open_in_root(&root, Path::new("/proc/1"), libc::O_PATH | libc::O_DIRECTORY)
        .and_then(|p| open_path(Some(&p), Path::new("root"), libc::O_DIRECTORY));
    if let Ok(fd) = proc1 {
        starts.push(("/proc/1/root as the container sees it".into(), fd));
    }
    let ways = starts.len();
    for (what, fd) in starts {
        let Ok(top) = climb(fd) else { continue };
        if id_of(&top).is_ok_and(|id| id == root_id) {
            continue;
        }
        let way = format!("climbing `..` from {what} leaves the container's root and ends at {}", shown(&top));
        if reaches(&top) {
            reached.push(format!("{way}, where the runner's marker {marker_shown} is"));
        } else {
            outside.push(way);
        }
    }

    // Every tail of the marker's path below every mount point: a bind mount
    // of the marker's directory or of any directory above it.
    let tails: Vec<PathBuf> =
        marker.path.ancestors().filter_map(|a| marker.path.strip_prefix(a).ok()).map(Path::to_path_buf).collect();
    for m in mounts {
        for tail in tails.iter().filter(|t| !t.as_os_str().is_empty()) {
            let inside = Path::new(&m.mount_point).join(tail);
            let found = open_in_root(&root, &inside, libc::O_PATH | libc::O_NOFOLLOW)
                .and_then(|fd| id_of(&fd))
                .is_ok_and(|id| id == marker.id);
            if found {
                reached.push(format!(
                    "the runner's marker {marker_shown} is at {} inside the container, through the mount {}",
                    inside.display(),
                    super::mountinfo::describe(m),
                ));
            }
        }
    }
    // Under the root: a host filesystem (by device) anywhere below it.
    let host_devices: Vec<String> = super::mountinfo::of("self").into_iter().map(|m| m.device).collect();
    let under = match under_root(probe) {
        Ok(below) => {
            if let Some((id, dev)) = below.iter().find(|(_, dev)| host_devices.contains(dev)) {
                outside.push(format!(
                    "a host filesystem ({dev}, mount {id}) lies under the container's root in its mount namespace: \
                     `umount -l /` inside brings it back (mount --move is not pivot_root)"
                ));
            }
            format!("{} mounts under the root", below.len())
        }
        Err(e) => format!("the mounts under the root untried (statmount: {e})"),
    };
    let escape = reached.into_iter().chain(outside).next().unwrap_or_else(|| "none".into());
    f.insert("escape".into(), escape);
    f.insert(
        "escape.tried".into(),
        format!("{ways} held directories of {} processes, {} mount points, {under}", pids.len(), mounts.len()),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_planted_fresh_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Marker::plant(dir.path()).unwrap(), Marker::plant(dir.path()).unwrap());
        assert_ne!(a.path, b.path);
        let path = a.path.clone();
        assert!(path.is_file());
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn climbing_from_anywhere_on_the_host_ends_at_the_host_root() {
        let dir = tempfile::tempdir().unwrap();
        let top = climb(open_path(None, dir.path(), libc::O_DIRECTORY).unwrap()).unwrap();
        let host = open_path(None, Path::new("/"), libc::O_DIRECTORY).unwrap();
        assert_eq!(id_of(&top).unwrap(), id_of(&host).unwrap());
    }

    #[test]
    fn resolving_in_a_root_keeps_dotdot_and_absolute_symlinks_inside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc", dir.path().join("link")).unwrap();
        let root = open_path(None, dir.path(), libc::O_DIRECTORY).unwrap();
        let inner = id_of(&open_path(None, &dir.path().join("etc"), libc::O_DIRECTORY).unwrap()).unwrap();
        for path in ["/etc", "/../../etc", "/link", "link/../etc"] {
            let fd = open_in_root(&root, Path::new(path), libc::O_PATH).unwrap();
            assert_eq!(id_of(&fd).unwrap(), inner, "{path}");
        }
    }

    #[test]
    fn a_process_on_the_host_reaches_the_marker() {
        let dir = tempfile::tempdir().unwrap();
        let marker = Marker::plant(dir.path()).unwrap();
        let me = std::process::id() as i32;
        let f = probe(me, &[me], &super::super::mountinfo::of("self"), &marker);
        assert!(f["escape"].contains("runner's marker"), "{f:?}");
    }
}
