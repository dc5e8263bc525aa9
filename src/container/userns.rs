//! Who a contained process is, seen from the host: the user namespace's maps
//! as the kernel holds them, whether `setgroups` was denied before the gid
//! map was written, the process's uid on the host, and which program started
//! it (by the parent's `/proc/PID/exe`, never by a name or argv). The check
//! engine adds these to an observe check's facts.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::evidence::Facts;

/// Facts `uid_map.full`, `gid_map`, `gid_map.full`, `setgroups`, `uid.host`,
/// `parent.exe` of `pid` (see labs/README.md, observe checks).
pub(crate) fn facts(pid: i32, workspace: &Path) -> Facts {
    let mut f = Facts::new();
    for (name, file) in [("uid_map", "uid_map"), ("gid_map", "gid_map")] {
        if let Ok(map) = std::fs::read_to_string(format!("/proc/{pid}/{file}")) {
            let lines: Vec<String> = map.lines().map(squeeze).filter(|l| !l.is_empty()).collect();
            f.insert(format!("{name}.full"), lines.join(";"));
            // `uid_map` (the first line) comes with every observation already.
            if name == "gid_map" {
                f.insert(name.into(), lines.first().cloned().unwrap_or_default());
            }
        }
    }
    if let Ok(setgroups) = std::fs::read_to_string(format!("/proc/{pid}/setgroups")) {
        f.insert("setgroups".into(), setgroups.trim().into());
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    // The real uid, as the reader's (the host's) user namespace sees it.
    if let Some(uid) = super::process::status_field(&status, "Uid:").and_then(|u| u.split_whitespace().next()) {
        f.insert("uid.host".into(), uid.into());
    }
    if let Some(ppid) = super::process::status_field(&status, "PPid:").and_then(|p| p.parse::<i32>().ok()) {
        f.insert("parent.exe".into(), exe_of(ppid, workspace));
    }
    f
}

/// The file `/proc/PID/exe` is: `workspace:NAME` when it is (by device and
/// inode) a file at the top of the workspace, such as a program the check
/// compiled there, else the path the kernel gives, e.g. `/usr/bin/unshare`.
fn exe_of(pid: i32, workspace: &Path) -> String {
    let exe = format!("/proc/{pid}/exe");
    let Ok(theirs) = std::fs::metadata(&exe) else { return "unknown".into() };
    let here = std::fs::read_dir(workspace).into_iter().flatten().flatten().find(|e| {
        std::fs::metadata(e.path()).is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == (theirs.dev(), theirs.ino()))
    });
    match here {
        Some(entry) => format!("workspace:{}", entry.file_name().to_string_lossy()),
        None => std::fs::read_link(&exe).map(|p| p.display().to_string()).unwrap_or_else(|_| "unknown".into()),
    }
}

/// `0 1000 1` from the kernel's padded `         0       1000          1`.
fn squeeze(line: &str) -> String {
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_maps_and_parent_are_read() {
        let f = facts(std::process::id() as i32, Path::new("/nonexistent"));
        // The host's own user namespace maps every id to itself.
        assert_eq!(f["uid_map.full"], "0 0 4294967295");
        assert_eq!(f["gid_map"], "0 0 4294967295");
        assert_eq!(f["setgroups"], "allow");
        assert_eq!(f["uid.host"], my_uid().to_string());
        assert!(f["parent.exe"].starts_with('/'), "{}", f["parent.exe"]);
    }

    #[test]
    fn a_program_in_the_workspace_is_named_by_its_inode() {
        let me = std::fs::read_link("/proc/self/exe").unwrap();
        // Beside the test binary: a hard link needs the same filesystem.
        let dir = tempfile::tempdir_in(me.parent().unwrap()).unwrap();
        let pid = std::process::id() as i32;
        std::fs::write(dir.path().join("other"), "#!/bin/sh\n").unwrap();
        assert_eq!(exe_of(pid, dir.path()), me.display().to_string(), "no file here is our program");
        std::fs::hard_link(&me, dir.path().join("container")).unwrap();
        assert_eq!(exe_of(pid, dir.path()), "workspace:container");
    }

    #[test]
    fn padded_map_lines_are_squeezed() {
        assert_eq!(squeeze("         0     100000      65536"), "0 100000 65536");
    }

    fn my_uid() -> u32 {
        std::fs::metadata("/proc/self").unwrap().uid()
    }
}
