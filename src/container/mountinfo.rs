//! `/proc/PID/mountinfo`, parsed: which mounts a process can reach from its root.

/// One line of mountinfo (see proc(5)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) id: u32,
    pub(crate) parent: u32,
    /// `major:minor` of the filesystem's device.
    pub(crate) device: String,
    /// The directory of the filesystem that is mounted (a bind mount shows its source path).
    pub(crate) root: String,
    /// Where it is mounted, relative to the reading process's root.
    pub(crate) mount_point: String,
    /// Per-mount options: `ro` or `rw` first, then `nosuid`, `nodev`, ...
    pub(crate) options: Vec<String>,
    pub(crate) fs_type: String,
    pub(crate) source: String,
}

impl Mount {
    pub(crate) fn read_only(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(std::str::from_utf8(o).ok()?, 8).ok());
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses one line; None if it is not a mountinfo line.
pub(crate) fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut f = before.split_whitespace();
    let id = f.next()?.parse().ok()?;
    let parent = f.next()?.parse().ok()?;
    let device = f.next()?.to_string();
    let root = unescape(f.next()?);
    let mount_point = unescape(f.next()?);
    let options = f.next()?.split(',').map(str::to_string).collect();
    let mut a = after.split_whitespace();
    let fs_type = a.next()?.to_string();
    let source = unescape(a.next().unwrap_or("none"));
    Some(Mount { id, parent, device, root, mount_point, options, fs_type, source })
}

pub(crate) fn parse(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

/// The mounts `pid` can reach, or an empty list if it is gone.
pub(crate) fn of(pid: &str) -> Vec<Mount> {
    std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).map(|t| parse(&t)).unwrap_or_default()
}

/// The mount on `/` as the process sees it: the last one stacked there.
pub(crate) fn root_mount(mounts: &[Mount]) -> Option<&Mount> {
    mounts.iter().rev().find(|m| m.mount_point == "/")
}

/// The mounts of a container's table (`container`) that show a filesystem of
/// the host, by device: one the host has mounted too (`host`, the runner's
/// own table), other than the container's root and what lies below that root
/// in the same filesystem. A bind of a host directory, the host's /dev or
/// /tmp, a second view of the host's disk: all count. Read-only cgroup views
/// (an OCI runtime's /sys/fs/cgroup) do not: they show the container's own groups.
pub(crate) fn host_filesystems<'a>(container: &'a [Mount], host: &[Mount]) -> Vec<&'a Mount> {
    let Some(root) = root_mount(container) else { return Vec::new() };
    let host_devices: std::collections::HashSet<&str> = host.iter().map(|m| m.device.as_str()).collect();
    let within_root = |m: &Mount| {
        m.device == root.device
            && (root.root == "/" || m.root == root.root || m.root.starts_with(&format!("{}/", root.root)))
    };
    container
        .iter()
        .filter(|m| host_devices.contains(m.device.as_str()))
        .filter(|m| !within_root(m))
        .filter(|m| !(matches!(m.fs_type.as_str(), "cgroup" | "cgroup2") && m.read_only()))
        .collect()
}

/// A mount in words: `/mnt (ext4 254:0 /var/tmp/ws, rw)`.
pub(crate) fn describe(m: &Mount) -> String {
    format!("{} ({} {} {}, {})", m.mount_point, m.fs_type, m.device, m.root, if m.read_only() { "ro" } else { "rw" })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
64 42 254:0 /tmp/ws/rootfs / ro,relatime - ext4 /dev/vda rw,discard
65 64 0:40 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
66 64 254:0 /tmp/a\\040b /mnt/with\\040space rw - ext4 /dev/vda rw
";

    #[test]
    fn parses_fields_and_escapes() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].id, m[0].parent, m[0].device.as_str()), (64, 42, "254:0"));
        assert_eq!(m[0].root, "/tmp/ws/rootfs");
        assert!(m[0].read_only() && !m[1].read_only());
        assert_eq!((m[1].fs_type.as_str(), m[1].source.as_str()), ("proc", "proc"));
        assert_eq!(m[2].mount_point, "/mnt/with space");
        assert_eq!(m[2].root, "/tmp/a b");
    }

    #[test]
    fn root_mount_is_the_top_of_the_stack() {
        let text = "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n9 1 8:1 /x / ro - ext4 /dev/sda1 rw\n";
        assert_eq!(root_mount(&parse(text)).unwrap().id, 9);
        assert!(root_mount(&parse("garbage\n")).is_none());
    }

    #[test]
    fn host_filesystems_are_what_the_host_also_mounts_outside_the_root() {
        let host = parse(
            "20 1 254:0 / / rw - ext4 /dev/vda rw\n21 20 0:5 / /dev rw - devtmpfs udev rw\n22 20 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n",
        );
        let container = parse(
            "65 43 254:0 /ws/rootfs / ro - ext4 /dev/vda rw\n\
             66 65 0:40 / /proc rw - proc proc rw\n\
             67 65 254:0 /ws/rootfs/data /data rw - ext4 /dev/vda rw\n\
             68 65 0:29 /vlab-1 /sys/fs/cgroup/cpu ro - cgroup cgroup rw,cpu\n\
             69 65 254:0 /ws /mnt rw - ext4 /dev/vda rw\n\
             70 65 0:5 / /dev rw - devtmpfs udev rw\n\
             71 65 254:0 /ws/rootfs-old /old rw - ext4 /dev/vda rw\n",
        );
        let seen: Vec<String> = host_filesystems(&container, &host).into_iter().map(describe).collect();
        assert_eq!(
            seen,
            ["/mnt (ext4 254:0 /ws, rw)", "/dev (devtmpfs 0:5 /, rw)", "/old (ext4 254:0 /ws/rootfs-old, rw)"]
        );
    }

    #[test]
    fn reads_our_own_table() {
        assert!(root_mount(&of("self")).is_some());
    }
}
