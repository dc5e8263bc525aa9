//! cgroup groups the runner owns for a check: it makes an empty parent group
//! per controller, tells the student's script where (`VLAB_CGROUP_*`), watches
//! the processes that join its children while the script runs, reads the
//! limits and their measured effect from the cgroup files afterwards, and
//! always removes everything: kills what is left, removes the directories
//! deepest first. Works on v1, v2 and hybrid hosts (hybrid is used as v1:
//! there the controllers live in the v1 hierarchies). The groups themselves
//! are `crate::cgroup::Group`s; this adds what the labs observe in them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::cgroup::{self as cg, CONTROLLERS, CgroupError, PREFIX, keyed, procs, read, subdirs};
use crate::evidence::Facts;
use crate::supervisor::{self, Registration};

/// A parent group per controller (one directory on v2), removed on drop.
pub(crate) struct Group {
    /// The groups, until removed.
    groups: Option<cg::Group>,
    /// Known to the supervisor (killed and removed on Ctrl-C) until removed.
    registered: Option<Registration>,
    v2: bool,
    /// Controller → the parent group's directory.
    dirs: BTreeMap<String, PathBuf>,
    stop: Arc<AtomicBool>,
    sampler: Option<std::thread::JoinHandle<Samples>>,
    journal: Option<std::thread::JoinHandle<Late>>,
}

/// What the sampler saw, per child group: allowed CPUs, the CPUs its
/// processes were seen running on, their CPU time (clock ticks, per pid),
/// process ids, the programs they ran (by the kernel's exe, at every
/// sample), when its earliest process started and when a process of it was
/// first seen with a root other than the host's (milliseconds since boot),
/// and its limits as they were when its workload started and every value
/// they took after.
#[derive(Default)]
struct Samples {
    limits: BTreeMap<String, Limits>,
    cpus: BTreeMap<String, BTreeSet<u32>>,
    ran_on: BTreeMap<String, BTreeSet<u32>>,
    ticks: BTreeMap<String, BTreeMap<i32, u64>>,
    pids: BTreeMap<String, BTreeSet<i32>>,
    programs: BTreeMap<String, BTreeSet<String>>,
    first: BTreeMap<String, u64>,
    contained: BTreeMap<String, u64>,
}

/// The CPU `pid` last ran on and the CPU time it used so far, in clock ticks
/// (fields 39, 14 and 15 of /proc/PID/stat).
fn cpu_and_ticks(pid: i32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    Some((num(36)? as u32, num(11)? + num(12)?))
}

/// When `pid` started, in milliseconds since boot (field 22 of /proc/PID/stat, in clock ticks).
fn start_ms(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks: u64 = stat[stat.rfind(')')? + 2..].split_whitespace().nth(19)?.parse().ok()?;
    // SAFETY: sysconf takes an integer; its error value (-1) is clamped to 1 below.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1000 / hz)
}

/// Milliseconds since boot now, on the clock process start times use.
fn boot_ms() -> u64 {
    // SAFETY: timespec is plain data, valid all-zero.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid, writable timespec; the result is checked.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    // CLOCK_BOOTTIME exists on every kernel vlab runs on and `ts` is valid, so this cannot fail.
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME): {}", std::io::Error::last_os_error());
    ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000
}

/// The file name of the program `pid` runs now, from the kernel (/proc/PID/exe),
/// not from its argv, which the process writes itself.
fn exe_name(pid: i32) -> Option<String> {
    let path = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = path.file_name()?.to_string_lossy();
    Some(name.strip_suffix(" (deleted)").unwrap_or(&name).to_string())
}

/// Limit files, under the names [`read_controller`] gives them.
const LIMITS: [&str; 5] = ["memory.limit_bytes", "cpu.quota_us", "cpu.period_us", "pids.max", "cpuset.cpus"];

/// Counters that move only once a workload ran in a group.
const MOVED: [&str; 3] = ["memory.peak_bytes", "cpu.nr_periods", "pids.denied"];

/// One group's limits from the moment its workload started (a process was
/// in it, or its counters moved): the values then, and each change after.
#[derive(Default)]
struct Limits {
    at_start: Option<BTreeMap<String, String>>,
    changes: Vec<String>,
}

impl Limits {
    /// Takes one sample of the group's limit files and counters.
    fn sample(&mut self, now: BTreeMap<String, String>, busy: bool) {
        let moved = MOVED.iter().any(|k| now.get(*k).is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0)));
        let limits: BTreeMap<String, String> = now.into_iter().filter(|(k, _)| LIMITS.contains(&k.as_str())).collect();
        match &self.at_start {
            None if busy || moved => self.at_start = Some(limits),
            None => {}
            Some(start) => {
                for (k, v) in &limits {
                    let was = start.get(k).map(String::as_str).unwrap_or("unset");
                    let change = format!("{k} was {was} when the workload started, then {v}");
                    if was != v && !self.changes.contains(&change) {
                        self.changes.push(change);
                    }
                }
            }
        }
    }

    /// `none`, or every change the runner saw (sampled, and the limit files
    /// the kernel reported written after a process joined), for the fact `limit_changes`.
    fn describe(&self, late: Option<&BTreeSet<String>>) -> String {
        let written = late.into_iter().flatten().map(|f| format!("{f} was written after a process joined the group"));
        let all: Vec<String> = self.changes.iter().cloned().chain(written).collect();
        match (&self.at_start, all.is_empty()) {
            (None, true) => "no workload was seen in the group".into(),
            (_, true) => "none".into(),
            (_, false) => all.join("; "),
        }
    }
}

/// Limit files by their names on v1 and v2.
const LIMIT_FILES: [&str; 9] = [
    "memory.max",
    "memory.limit_in_bytes",
    "memory.swap.max",
    "memory.memsw.limit_in_bytes",
    "cpu.max",
    "cpu.cfs_quota_us",
    "cpu.cfs_period_us",
    "pids.max",
    "cpuset.cpus",
];

/// Group name → limit files written after a process joined it.
type Late = BTreeMap<String, BTreeSet<String>>;

/// Every write to a cgroup file is an inotify IN_MODIFY, queued by the
/// kernel in the order the writes happened: a limit raised for the workload
/// and set back between two samples is still seen, by the order of the
/// writes to the limit and to `cgroup.procs`. Groups made after the watch
/// began are watched from when the runner learns of them (IN_CREATE).
struct Journal {
    fd: std::os::fd::OwnedFd,
    /// Watch descriptor → a parent directory, or a child group (name, dir).
    parents: BTreeMap<i32, PathBuf>,
    groups: BTreeMap<i32, String>,
    joined: BTreeSet<String>,
    late: Late,
}

impl Journal {
    fn start(parents: &[PathBuf]) -> Option<Journal> {
        use std::os::fd::FromRawFd;
        // SAFETY: no pointers; the result is checked.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let mut j = Journal {
            fd,
            parents: BTreeMap::new(),
            groups: BTreeMap::new(),
            joined: BTreeSet::new(),
            late: Late::new(),
        };
        for p in parents {
            let wd = j.add(p, libc::IN_CREATE | libc::IN_ONLYDIR)?;
            j.parents.insert(wd, p.clone());
            for dir in subdirs(p) {
                j.watch_group(p, &dir);
            }
        }
        Some(j)
    }

    fn add(&self, path: &Path, mask: u32) -> Option<i32> {
        use std::os::fd::AsRawFd;
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
        // SAFETY: `c` is a NUL-terminated path, the fd is our inotify instance; the result is checked.
        let wd = unsafe { libc::inotify_add_watch(self.fd.as_raw_fd(), c.as_ptr(), mask) };
        (wd >= 0).then_some(wd)
    }

    fn watch_group(&mut self, parent: &Path, dir: &Path) {
        let name = dir.strip_prefix(parent).unwrap_or(dir).display().to_string();
        if let Some(wd) = self.add(dir, libc::IN_MODIFY) {
            self.groups.insert(wd, name.clone());
        }
        // A process that joined before the watch began is in it now, or was.
        if !procs(dir).is_empty() {
            self.joined.insert(name);
        }
    }

    /// Reads events until `stop`, then what is queued; returns the late writes.
    fn run(mut self, stop: &AtomicBool) -> Late {
        use std::os::fd::AsRawFd;
        loop {
            let last = stop.load(Ordering::Relaxed);
            let mut pfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd, alive for the call; the result is checked.
            let ready = unsafe { libc::poll(&mut pfd, 1, 20) };
            // 0: nothing came within the round. -1 can only be EINTR here (the
            // fd is ours and valid): the non-blocking drain reads what is there.
            if ready != 0 || last {
                self.drain();
            }
            if last {
                return self.late;
            }
        }
    }

    fn drain(&mut self) {
        use std::os::fd::AsRawFd;
        let mut buf = [0u64; 512];
        loop {
            // SAFETY: reads into our own buffer of the given size (u64s keep it aligned for inotify_event).
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), std::mem::size_of_val(&buf)) };
            if n <= 0 {
                return;
            }
            // SAFETY: the kernel wrote `n` bytes of whole events into `buf`.
            let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n as usize) };
            let mut at = 0;
            let head = std::mem::size_of::<libc::inotify_event>();
            while at + head <= bytes.len() {
                let field = |o: usize| u32::from_ne_bytes(bytes[at + o..at + o + 4].try_into().unwrap_or([0; 4]));
                let (wd, mask, len) = (field(0) as i32, field(4), field(12) as usize);
                let raw = &bytes[(at + head).min(bytes.len())..(at + head + len).min(bytes.len())];
                let name = String::from_utf8_lossy(raw.split(|c| *c == 0).next().unwrap_or_default()).into_owned();
                at += head + len;
                self.event(wd, mask, &name);
            }
        }
    }

    fn event(&mut self, wd: i32, mask: u32, name: &str) {
        if let Some(parent) = self.parents.get(&wd).cloned() {
            if mask & libc::IN_CREATE != 0 && mask & libc::IN_ISDIR != 0 {
                self.watch_group(&parent, &parent.join(name));
            }
            return;
        }
        let Some(group) = self.groups.get(&wd).cloned() else { return };
        if name == "cgroup.procs" || name == "tasks" {
            self.joined.insert(group);
        } else if LIMIT_FILES.contains(&name) && self.joined.contains(&group) {
            self.late.entry(group).or_default().insert(name.to_string());
        }
    }
}

/// Does `pid` live in a root of its own (pivot_root or chroot), not the host's `/`?
fn contained(pid: i32, host_root: Option<(u64, u64)>) -> bool {
    use std::os::unix::fs::MetadataExt;
    let theirs = std::fs::metadata(format!("/proc/{pid}/root/.")).ok().map(|m| (m.dev(), m.ino()));
    theirs.is_some() && host_root.is_some() && theirs != host_root
}

/// CPU list syntax (`0-2,5`) → set.
pub(crate) fn parse_cpus(list: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
                    set.extend(a..=b);
                }
            }
            None => set.extend(part.parse::<u32>().ok()),
        }
    }
    set
}

pub(crate) fn format_cpus(set: &BTreeSet<u32>) -> String {
    set.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

/// Groups named `vlab-<pid>-...` under the runner's own groups, whichever
/// runner made them (for the tests that prove none is left behind).
pub fn leftovers() -> Vec<PathBuf> {
    cg::leftovers()
}

/// Removes groups named `vlab-<nonce>` (the runc containers of checks) that
/// hold no process and were made over `age` ago: what runc leaves when a check
/// was interrupted before it could run `runc delete`. The age keeps a
/// container that another check is starting right now out of reach.
pub(crate) fn remove_abandoned_runc_groups(age: Duration) {
    let is_runc = |p: &Path| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(PREFIX))
            .is_some_and(|rest| rest.len() == 16 && rest.chars().all(|c| c.is_ascii_hexdigit()))
    };
    for dir in cg::own_groups().into_iter().filter(|p| is_runc(p)) {
        let old = std::fs::metadata(&dir).and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
        let empty = std::iter::once(dir.clone()).chain(subdirs(&dir)).all(|d| procs(&d).is_empty());
        if old && empty {
            let _ = cg::remove_tree(&dir);
        }
    }
}

impl Group {
    /// Makes the parent groups, named `vlab-<runner pid>-<nonce>`, after
    /// removing the groups that runners no longer running left behind.
    pub(crate) fn create(nonce: &str) -> Result<Group, CgroupError> {
        cg::remove_stale();
        let name = format!("{PREFIX}{}-{nonce}", std::process::id());
        // From making the groups to registering them (see `supervisor::making`).
        let making = supervisor::making();
        let groups = cg::Group::create(&name, &CONTROLLERS, cg::Place::Own, &cg::Limits::default())?;
        let v2 = groups.is_v2();
        let dirs: BTreeMap<String, PathBuf> = match v2 {
            // One directory holds every controller.
            true => groups.dirs().iter().flat_map(|(_, d)| CONTROLLERS.map(|c| (c.to_string(), d.clone()))).collect(),
            false => groups.dirs().iter().cloned().collect(),
        };
        let registered = supervisor::cgroups(groups.dirs().iter().map(|(_, d)| d.clone()).collect());
        drop(making);
        Ok(Group {
            groups: Some(groups),
            registered: Some(registered),
            v2,
            dirs,
            stop: Arc::new(AtomicBool::new(false)),
            sampler: None,
            journal: None,
        })
    }

    /// Environment for the student's script.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![("VLAB_CGROUP_MODE".to_string(), if self.v2 { "v2" } else { "v1" }.to_string())];
        for (c, dir) in &self.dirs {
            env.push((format!("VLAB_CGROUP_{}", c.to_uppercase()), dir.display().to_string()));
        }
        env
    }

    /// Starts watching which processes join the child groups and which CPUs
    /// they may run on, until [`Group::facts`].
    pub(crate) fn watch(&mut self) {
        let mut dirs: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for (controller, dir) in &self.dirs {
            dirs.entry(dir.clone()).or_default().push(controller.clone());
        }
        let v2 = self.v2;
        let parents: Vec<PathBuf> = dirs.keys().cloned().collect();
        let stop = self.stop.clone();
        self.journal = Journal::start(&parents).map(|j| std::thread::spawn(move || j.run(&stop)));
        let stop = self.stop.clone();
        self.sampler = Some(std::thread::spawn(move || {
            use std::os::unix::fs::MetadataExt;
            let host_root = std::fs::metadata("/").ok().map(|m| (m.dev(), m.ino()));
            let mut seen = Samples::default();
            loop {
                // One last round after the stop, so the limits at the end are sampled too.
                let last = stop.load(Ordering::Relaxed);
                let mut now: BTreeMap<String, (BTreeMap<String, String>, bool)> = BTreeMap::new();
                for (parent, controllers) in &dirs {
                    for dir in subdirs(parent) {
                        let name = dir.strip_prefix(parent).unwrap_or(&dir).display().to_string();
                        let pids = procs(&dir);
                        let group = now.entry(name.clone()).or_default();
                        group.1 |= !pids.is_empty();
                        for c in controllers {
                            group.0.extend(read_controller(c, &dir, v2));
                        }
                        for pid in pids {
                            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
                            let Some(list) = crate::procfs::status_field(&status, "Cpus_allowed_list:") else {
                                continue;
                            };
                            seen.cpus.entry(name.clone()).or_default().extend(parse_cpus(list));
                            if let Some((cpu, ticks)) = cpu_and_ticks(pid) {
                                seen.ran_on.entry(name.clone()).or_default().insert(cpu);
                                let used = seen.ticks.entry(name.clone()).or_default().entry(pid).or_default();
                                *used = (*used).max(ticks);
                            }
                            if !seen.contained.contains_key(&name) && contained(pid, host_root) {
                                seen.contained.insert(name.clone(), boot_ms());
                            }
                            // At every sample: a process seen before its exec ran something else then.
                            if let Some(program) = exe_name(pid) {
                                seen.programs.entry(name.clone()).or_default().insert(program);
                            }
                            if !seen.pids.entry(name.clone()).or_default().insert(pid) {
                                continue;
                            }
                            let Some(started) = start_ms(pid) else { continue };
                            let first = seen.first.entry(name.clone()).or_insert(started);
                            *first = (*first).min(started);
                        }
                    }
                }
                for (name, (values, busy)) in now {
                    seen.limits.entry(name).or_default().sample(values, busy);
                }
                if last {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            seen
        }));
    }

    /// The child groups' limits, counters and what the watcher saw, as
    /// `cgroup.<child>.<what>` facts. Stops the watcher.
    pub(crate) fn facts(&mut self) -> Facts {
        let mut f = Facts::new();
        self.stop.store(true, Ordering::Relaxed);
        if let Some(seen) = self.sampler.take().and_then(|h| h.join().ok()) {
            for (g, cpus) in &seen.cpus {
                f.insert(format!("cgroup.{g}.cpus_seen"), format_cpus(cpus));
            }
            for (g, cpus) in &seen.ran_on {
                f.insert(format!("cgroup.{g}.ran_on"), format_cpus(cpus));
            }
            // SAFETY: sysconf takes an integer; its error value (-1) is clamped to 1.
            let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
            for (g, per_pid) in &seen.ticks {
                f.insert(format!("cgroup.{g}.cpu_ms"), (per_pid.values().sum::<u64>() * 1000 / hz).to_string());
            }
            for (g, pids) in &seen.pids {
                f.insert(format!("cgroup.{g}.procs_seen"), pids.len().to_string());
            }
            for (g, programs) in &seen.programs {
                f.insert(format!("cgroup.{g}.programs"), programs.iter().cloned().collect::<Vec<_>>().join(","));
            }
            let late = self.journal.take().and_then(|h| h.join().ok()).unwrap_or_default();
            for (g, limits) in &seen.limits {
                f.insert(format!("cgroup.{g}.limit_changes"), limits.describe(late.get(g)));
            }
            for (g, at) in &seen.contained {
                let ms = seen.first.get(g).map(|first| at.saturating_sub(*first)).unwrap_or(0);
                f.insert(format!("cgroup.{g}.contained_after_ms"), ms.to_string());
            }
        }
        for (controller, parent) in &self.dirs {
            for dir in subdirs(parent) {
                let g = dir.strip_prefix(parent).unwrap_or(&dir).display().to_string();
                for (k, v) in read_controller(controller, &dir, self.v2) {
                    f.insert(format!("cgroup.{g}.{k}"), v);
                }
            }
        }
        let periods = throttled_periods(&f);
        f.extend(periods);
        let density = density(&f);
        f.extend(density);
        f
    }

    /// Kills every process in the groups and removes them all.
    pub(crate) fn remove(mut self) -> Result<(), CgroupError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), CgroupError> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.sampler.take() {
            let _ = h.join();
        }
        if let Some(h) = self.journal.take() {
            let _ = h.join();
        }
        let result = self.groups.take().map_or(Ok(()), cg::Group::remove);
        self.registered = None;
        result
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

/// `cgroup.<g>.cpu.throttled_periods_ms`: the wall time the throttled periods
/// must span within the run, with the period in force at the end (which
/// `limit_changes` shows held all along). The first and the last may straddle
/// the run's start and end, so only the others must lie wholly inside it: no
/// run can be shorter than that (seen: 16 periods of 100 ms in a 1.54 s run).
fn throttled_periods(facts: &Facts) -> Facts {
    let mut out = Facts::new();
    for (key, n) in facts {
        let Some(g) = key.strip_prefix("cgroup.").and_then(|k| k.strip_suffix(".cpu.nr_throttled")) else { continue };
        let period = facts.get(&format!("cgroup.{g}.cpu.period_us")).and_then(|p| p.parse::<u64>().ok());
        if let (Ok(n), Some(period)) = (n.parse::<u64>(), period) {
            out.insert(
                format!("cgroup.{g}.cpu.throttled_periods_ms"),
                (n.saturating_sub(2) * period / 1000).to_string(),
            );
        }
    }
    out
}

/// Per-instance averages over groups named `KIND-N` (`container-1`,
/// `uml-2`, ...) that held processes: `density.KIND_instances`, `density.KIND_kib`
/// (peak memory charged to the group) and `density.KIND_start_ms` (from the
/// start of the group's earliest process to when the runner first saw one of
/// its processes in a root of its own: within 10 ms of clock ticks plus one
/// sampling round).
pub(crate) fn density(facts: &Facts) -> Facts {
    let mut kinds: BTreeMap<String, (u32, Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for (key, procs) in facts {
        let Some(group) = key.strip_prefix("cgroup.").and_then(|k| k.strip_suffix(".procs_seen")) else { continue };
        let Some((kind, n)) = group.rsplit_once('-') else { continue };
        if kind.is_empty() || kind.contains('/') || n.parse::<u32>().is_err() || procs == "0" {
            continue;
        }
        let entry = kinds.entry(kind.to_string()).or_default();
        entry.0 += 1;
        let num = |k: &str| facts.get(&format!("cgroup.{group}.{k}")).and_then(|v| v.parse::<f64>().ok());
        entry.1.extend(num("memory.peak_bytes").map(|b| b / 1024.0));
        entry.2.extend(num("contained_after_ms"));
    }
    let avg = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let mut out = Facts::new();
    for (kind, (count, kib, start)) in kinds {
        out.insert(format!("density.{kind}_instances"), count.to_string());
        if !kib.is_empty() {
            out.insert(format!("density.{kind}_kib"), format!("{:.0}", avg(&kib)));
        }
        if !start.is_empty() {
            out.insert(format!("density.{kind}_start_ms"), format!("{:.0}", avg(&start)));
        }
    }
    out
}

/// One controller's files of one group, under names that are the same on v1 and v2.
fn read_controller(controller: &str, dir: &Path, v2: bool) -> Vec<(String, String)> {
    let file = |name: &str| read(&dir.join(name));
    let mut out = Vec::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            out.push((k.to_string(), v));
        }
    };
    let unlimited = |v: String| match v.parse::<u64>() {
        Ok(n) if n >= (i64::MAX as u64) & !0xfff => "max".to_string(),
        _ => v,
    };
    match (controller, v2) {
        ("memory", false) => {
            put("memory.limit_bytes", file("memory.limit_in_bytes").map(unlimited));
            put("memory.failcnt", file("memory.failcnt"));
            put("memory.peak_bytes", file("memory.max_usage_in_bytes"));
            put("memory.oom_kills", file("memory.oom_control").and_then(|t| keyed(&t, "oom_kill")));
        }
        ("memory", true) => {
            put("memory.limit_bytes", file("memory.max"));
            let events = file("memory.events").unwrap_or_default();
            put("memory.failcnt", keyed(&events, "max"));
            put("memory.oom_kills", keyed(&events, "oom_kill"));
            put("memory.peak_bytes", file("memory.peak"));
        }
        ("cpu", false) => {
            let quota = file("cpu.cfs_quota_us");
            put("cpu.quota_us", quota.map(|q| if q == "-1" { "max".into() } else { q }));
            put("cpu.period_us", file("cpu.cfs_period_us"));
            let stat = file("cpu.stat").unwrap_or_default();
            put("cpu.nr_periods", keyed(&stat, "nr_periods"));
            put("cpu.nr_throttled", keyed(&stat, "nr_throttled"));
            put(
                "cpu.throttled_us",
                keyed(&stat, "throttled_time").and_then(|ns| ns.parse::<u64>().ok()).map(|ns| (ns / 1000).to_string()),
            );
        }
        ("cpu", true) => {
            let max = file("cpu.max").unwrap_or_default();
            let mut parts = max.split_whitespace();
            put("cpu.quota_us", parts.next().map(str::to_string));
            put("cpu.period_us", parts.next().map(str::to_string));
            let stat = file("cpu.stat").unwrap_or_default();
            put("cpu.nr_periods", keyed(&stat, "nr_periods"));
            put("cpu.nr_throttled", keyed(&stat, "nr_throttled"));
            put("cpu.throttled_us", keyed(&stat, "throttled_usec"));
        }
        ("pids", _) => {
            put("pids.max", file("pids.max"));
            put("pids.denied", file("pids.events").and_then(|t| keyed(&t, "max")));
        }
        ("cpuset", _) => {
            put("cpuset.cpus", file("cpuset.cpus").map(|c| format_cpus(&parse_cpus(&c))));
            put("cpuset.mems", file("cpuset.mems"));
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(format_cpus(&parse_cpus("0-2,5, 7")), "0,1,2,5,7");
        assert!(parse_cpus("").is_empty());
    }

    #[test]
    fn density_averages_per_kind() {
        let f = Facts::from([
            ("cgroup.container-1.procs_seen".into(), "3".into()),
            ("cgroup.container-1.memory.peak_bytes".into(), "1048576".into()),
            ("cgroup.container-1.contained_after_ms".into(), "40".into()),
            ("cgroup.container-2.procs_seen".into(), "2".into()),
            ("cgroup.container-2.memory.peak_bytes".into(), "3145728".into()),
            ("cgroup.container-2.contained_after_ms".into(), "60".into()),
            ("cgroup.uml-1.procs_seen".into(), "9".into()),
            ("cgroup.uml-1.memory.peak_bytes".into(), "33554432".into()),
            ("cgroup.mem.procs_seen".into(), "1".into()),
        ]);
        let d = density(&f);
        assert_eq!(d["density.container_instances"], "2");
        assert_eq!(d["density.container_kib"], "2048");
        assert_eq!(d["density.container_start_ms"], "50");
        assert_eq!(d["density.uml_kib"], "32768");
        assert!(!d.contains_key("density.uml_start_ms") && !d.contains_key("density.mem_instances"));
    }

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    /// A limit raised for the workload and set back before the end, or set
    /// only at the end, is a change after the workload started.
    #[test]
    fn limits_changed_after_the_workload_started_are_reported() {
        let mut l = Limits::default();
        l.sample(values(&[("pids.max", "max")]), false);
        assert_eq!(l.describe(None), "no workload was seen in the group");
        l.sample(values(&[("pids.max", "1"), ("pids.denied", "0")]), true);
        l.sample(values(&[("pids.max", "1"), ("pids.denied", "4")]), true);
        assert_eq!(l.describe(None), "none");
        l.sample(values(&[("pids.max", "10"), ("pids.denied", "4")]), false);
        assert_eq!(l.describe(None), "pids.max was 1 when the workload started, then 10");
        let mut quiet = Limits::default();
        quiet.sample(values(&[("memory.limit_bytes", "max"), ("memory.peak_bytes", "4096")]), false);
        quiet.sample(values(&[("memory.limit_bytes", "33554432"), ("memory.peak_bytes", "4096")]), false);
        assert!(quiet.describe(None).starts_with("memory.limit_bytes was max"), "{}", quiet.describe(None));
        let late = BTreeSet::from(["pids.max".to_string()]);
        assert_eq!(Limits::default().describe(Some(&late)), "pids.max was written after a process joined the group");
    }

    #[test]
    fn throttled_periods_use_the_period_in_force() {
        let f = Facts::from([
            ("cgroup.cpu.cpu.nr_throttled".into(), "30".into()),
            ("cgroup.cpu.cpu.period_us".into(), "100000".into()),
        ]);
        assert_eq!(throttled_periods(&f)["cgroup.cpu.cpu.throttled_periods_ms"], "2800");
    }

    #[test]
    fn programs_are_named_by_the_kernel_not_by_argv() {
        let mut child =
            std::process::Command::new("bash").args(["-c", "exec -a qemu-system-x86_64 sleep 5"]).spawn().unwrap();
        let pid = child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(5);
        while exe_name(pid).as_deref() != Some("sleep") && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let name = exe_name(pid);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(name.as_deref(), Some("sleep"));
    }

    /// What runc leaves after an interrupted check is swept once it is old and
    /// empty; a group still running something, or made just now, stays.
    #[test]
    fn abandoned_runc_groups_are_swept_only_when_old_and_empty() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 || cg::detect().writable.is_empty() {
            crate::testing::skip("cgroups are not writable here (needs root)");
            return;
        }
        let base = cg::own_base("pids", cg::detect().mode == cg::Mode::V2).unwrap();
        let make = |age: Duration| {
            let dir = base.join(format!("{PREFIX}{:016x}", rand::random::<u64>()));
            std::fs::create_dir(&dir).unwrap();
            let then = std::time::SystemTime::now() - age;
            std::fs::File::open(&dir).unwrap().set_times(std::fs::FileTimes::new().set_modified(then)).unwrap();
            dir
        };
        let (old, fresh, busy) =
            (make(Duration::from_secs(3600)), make(Duration::ZERO), make(Duration::from_secs(3600)));
        let mut sleeper = std::process::Command::new("sleep").arg("60").spawn().unwrap();
        cg::write(&busy.join("cgroup.procs"), &sleeper.id().to_string()).unwrap();
        remove_abandoned_runc_groups(Duration::from_secs(600));
        let (old_gone, fresh_kept, busy_kept) = (!old.exists(), fresh.exists(), busy.exists());
        let _ = sleeper.kill();
        let _ = sleeper.wait();
        for d in [&old, &fresh, &busy] {
            let _ = cg::remove_tree(d);
        }
        assert!(old_gone, "an old, empty runc group was left");
        assert!(fresh_kept, "a group made just now was swept (a check may be starting it)");
        assert!(busy_kept, "a group with a live process was swept");
    }

    #[test]
    fn a_group_is_made_watched_read_and_removed() {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 || cg::detect().writable.is_empty() {
            crate::testing::skip("cgroups are not writable here (needs root)");
            return;
        }
        let mut g = Group::create("unit").unwrap();
        let env: BTreeMap<_, _> = g.env().into_iter().collect();
        let mem = PathBuf::from(&env["VLAB_CGROUP_MEMORY"]);
        let child = mem.join("m");
        std::fs::create_dir(&child).unwrap();
        let limit = if env["VLAB_CGROUP_MODE"] == "v2" { "memory.max" } else { "memory.limit_in_bytes" };
        std::fs::write(child.join(limit), "8388608").unwrap();
        g.watch();
        let f = g.facts();
        assert_eq!(f["cgroup.m.memory.limit_bytes"], "8388608");
        assert_eq!(f["cgroup.m.memory.failcnt"], "0");
        let dirs: Vec<PathBuf> = g.dirs.values().cloned().collect();
        g.remove().unwrap();
        assert!(dirs.iter().all(|d| !d.exists()), "groups left behind: {dirs:?}");
    }
}
