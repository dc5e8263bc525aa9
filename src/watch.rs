//! `vlab watch`: re-run the checks whenever a file in the lab's workspace changes.
//! Polling mtimes keeps it portable (no inotify limits, works on any filesystem).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Path → modification time of every file under `dir`, skipping vlab's own `.vlab`.
pub(crate) fn snapshot(dir: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_name() == ".vlab" {
                continue;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() {
                // Big generated trees (a rootfs) are not the student's edits.
                if e.file_name() != "rootfs" {
                    stack.push(e.path());
                }
            } else if let Ok(m) = meta.modified() {
                out.insert(e.path(), m);
            }
        }
    }
    out
}

/// Calls `on_change` once at start and then after every change, until it
/// has run `max_runs` times (forever when None).
pub(crate) fn watch(dir: &Path, interval: Duration, max_runs: Option<u32>, mut on_change: impl FnMut()) {
    let mut last = snapshot(dir);
    let mut runs = 0;
    loop {
        on_change();
        runs += 1;
        if max_runs.is_some_and(|m| runs >= m) {
            return;
        }
        loop {
            std::thread::sleep(interval);
            let now = snapshot(dir);
            if now != last {
                last = now;
                break;
            }
        }
    }
}
