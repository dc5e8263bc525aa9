//! The partitioning lab's observer, `vlab partition -- COMMAND`: it runs the
//! student's script and, every 10 ms, lists the processes of the slices `a`
//! (the workload's, CPU 0), `b` (the neighbour's own CPU) and `c` (a neighbour
//! given the workload's CPU: the counterfactual) under $VLAB_CGROUP_CPUSET.
//! Each stretch of time in which slice `a` holds processes is one run of the
//! workload, named by which neighbour slice was busy meanwhile. For each run
//! the runner adds up its processes' /proc/PID/schedstat: nanoseconds on a CPU
//! and nanoseconds runnable but waiting for one. The workload's slowdown is
//! (running + waiting) / running, measured by the kernel's scheduler, not by
//! a clock the student reads. It also reads whether CPUs 0 and 1 are SMT
//! siblings. All of it goes to $VLAB_RESULTS as `observed_*` lines.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::check::wrap::{check_env, finish, run_student, write_observed};
use crate::host::topology::Topology;

/// How often the slices are listed.
const TICK: Duration = Duration::from_millis(10);

/// SCHED_FIFO priority of the sampler: above the slices' `chrt -r 1`.
const SAMPLER_PRIORITY: libc::c_int = 10;

/// A run shorter than this on the CPU is no workload run (a shell that only joined the slice).
const MIN_RUN_NS: u64 = 50_000_000;

/// Which neighbour was busy while the workload ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Setting {
    /// No neighbour in any slice.
    Alone,
    /// A neighbour in slice b, on its own CPU.
    Partitioned,
    /// A neighbour in slice c, on the workload's CPU.
    Shared,
}

impl Setting {
    fn name(self) -> &'static str {
        match self {
            Setting::Alone => "alone",
            Setting::Partitioned => "partitioned",
            Setting::Shared => "shared",
        }
    }
}

/// One stretch of time with processes in slice a.
#[derive(Debug, Default, Clone)]
pub(crate) struct Run {
    samples: u32,
    with_b: u32,
    with_c: u32,
    /// Latest (running, waiting) nanoseconds of each process seen in slice a.
    procs: BTreeMap<i32, (u64, u64)>,
}

impl Run {
    fn setting(&self) -> Setting {
        if self.with_c * 2 > self.samples {
            Setting::Shared
        } else if self.with_b * 2 > self.samples {
            Setting::Partitioned
        } else {
            Setting::Alone
        }
    }

    fn totals(&self) -> (u64, u64) {
        self.procs.values().fold((0, 0), |(r, w), (pr, pw)| (r + pr, w + pw))
    }

    /// Time waiting for a CPU per unit of time on one: the slowdown less one.
    fn wait_share(&self) -> Option<f64> {
        let (run, wait) = self.totals();
        (run >= MIN_RUN_NS).then(|| wait as f64 / run as f64)
    }
}

/// (running, waiting) nanoseconds of a process since it started.
fn schedstat(pid: i32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).ok()?;
    let mut f = text.split_whitespace().map(|v| v.parse::<u64>().ok());
    Some((f.next()??, f.next()??))
}

fn procs(dir: &Path) -> Vec<i32> {
    std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Splits the samples into runs of the workload.
#[derive(Debug, Default)]
pub(crate) struct Watch {
    open: Option<Run>,
    done: Vec<Run>,
}

impl Watch {
    /// One sample: the processes of slice a with their schedstat, and whether b and c held any.
    pub(crate) fn sample(&mut self, a: &[(i32, (u64, u64))], b_busy: bool, c_busy: bool) {
        if a.is_empty() {
            self.done.extend(self.open.take());
            return;
        }
        let run = self.open.get_or_insert_with(Run::default);
        run.samples += 1;
        run.with_b += u32::from(b_busy);
        run.with_c += u32::from(c_busy);
        for (pid, stat) in a {
            run.procs.insert(*pid, *stat);
        }
    }

    /// Per setting, the wait share of its longest run.
    pub(crate) fn finish(mut self) -> BTreeMap<Setting, f64> {
        self.done.extend(self.open.take());
        let mut best: BTreeMap<Setting, (u64, f64)> = BTreeMap::new();
        for run in &self.done {
            let Some(share) = run.wait_share() else { continue };
            let on_cpu = run.totals().0;
            let entry = best.entry(run.setting()).or_insert((0, share));
            if on_cpu >= entry.0 {
                *entry = (on_cpu, share);
            }
        }
        best.into_iter().map(|(s, (_, share))| (s, share)).collect()
    }
}

/// The facts written for the rules: per setting the slowdown and the wait share
/// (`none` when the runner saw no such run), and the SMT relation of CPUs 0 and 1.
pub(crate) fn observed(shares: &BTreeMap<Setting, f64>, siblings: Option<bool>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for s in [Setting::Alone, Setting::Partitioned, Setting::Shared] {
        let (slowdown, wait) = match shares.get(&s) {
            Some(w) => (format!("{:.3}", 1.0 + w), format!("{w:.3}")),
            None => ("none".into(), "none".into()),
        };
        out.insert(format!("{}_slowdown", s.name()), slowdown);
        out.insert(format!("{}_wait_share", s.name()), wait);
    }
    let smt = match siblings {
        Some(true) => "1",
        Some(false) => "0",
        None => "unknown",
    };
    out.insert("smt_siblings".into(), smt.into());
    out
}

/// Puts the calling thread in `policy` at `priority`; false where not allowed
/// (no CAP_SYS_NICE). SCHED_RESET_ON_FORK: nothing it starts inherits it.
fn set_policy(policy: libc::c_int, priority: libc::c_int) -> bool {
    let param = libc::sched_param { sched_priority: priority };
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives the call.
    unsafe { libc::sched_setscheduler(0, policy | libc::SCHED_RESET_ON_FORK, &param) == 0 }
}

/// One partition measurement at a time on this machine: two at once would
/// each be the other's neighbour on both CPUs (the test suite runs the
/// solution's and the fakes' checks side by side). Held until dropped; where
/// the cache cannot hold a lock file (a grading sandbox), none is taken.
fn measurement_lock() -> Option<std::fs::File> {
    use std::os::fd::AsRawFd;
    let dir = crate::guest::assets::cache_dir();
    std::fs::create_dir_all(&dir).ok()?;
    let file = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("partition.lock")).ok()?;
    // SAFETY: flock on a descriptor `file` owns and keeps open while the lock is held; the result is checked.
    (unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0).then_some(file)
}

/// `vlab partition -- COMMAND`.
pub(crate) fn watch(command: &[String]) -> anyhow::Result<i32> {
    let env = check_env();
    let cpuset = std::env::var_os("VLAB_CGROUP_CPUSET").map(PathBuf::from).filter(|p| p.is_dir()).ok_or_else(|| {
        anyhow::anyhow!("$VLAB_CGROUP_CPUSET names no cgroup directory: run this through `vlab check partitioning`")
    })?;
    let _lock = measurement_lock();
    let child = run_student(command, &[])?;
    // The lab's slices may run at real-time priority (the README says why);
    // the sampler must still get a CPU every tick, so it runs above them.
    let realtime = set_policy(libc::SCHED_FIFO, SAMPLER_PRIORITY);
    let mut watch = Watch::default();
    let slice = |s: &str| cpuset.join(s);
    while child.wait_until(Instant::now() + TICK)?.is_none() && !child.expired() {
        let a: Vec<(i32, (u64, u64))> =
            procs(&slice("a")).into_iter().filter_map(|p| schedstat(p).map(|s| (p, s))).collect();
        watch.sample(&a, !procs(&slice("b")).is_empty(), !procs(&slice("c")).is_empty());
    }
    if realtime {
        set_policy(libc::SCHED_OTHER, 0);
    }
    let code = finish(child)?;
    let shares = watch.finish();
    let observed = observed(&shares, Topology::host().smt_siblings(0, 1));
    write_observed(&env.results, &observed)?;
    println!(
        "runner saw the workload's slowdown (running + waiting for CPU 0, over running): alone {}, neighbour in slice b {}, neighbour in slice c {}; CPUs 0 and 1 SMT siblings: {}",
        observed["alone_slowdown"],
        observed["partitioned_slowdown"],
        observed["shared_slowdown"],
        observed["smt_siblings"]
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn runs_are_split_where_slice_a_empties_and_named_by_the_busy_neighbour() {
        let mut w = Watch::default();
        // Alone: 400 ms on the CPU, 4 ms waiting.
        w.sample(&[(10, (100 * MS, MS))], false, false);
        w.sample(&[(10, (400 * MS, 4 * MS))], false, false);
        w.sample(&[], false, false);
        // Neighbour in b.
        w.sample(&[(11, (200 * MS, 10 * MS))], true, false);
        w.sample(&[(11, (400 * MS, 20 * MS))], true, false);
        w.sample(&[], true, false);
        // Neighbour in c: as long waiting as running.
        w.sample(&[(12, (200 * MS, 200 * MS))], true, true);
        w.sample(&[(12, (400 * MS, 400 * MS)), (13, (MS, 0))], false, true);
        // A shell that only joined slice a is no run.
        w.sample(&[], false, false);
        w.sample(&[(14, (MS, 50 * MS))], false, false);
        let shares = w.finish();
        assert!((shares[&Setting::Alone] - 0.01).abs() < 1e-9, "{shares:?}");
        assert!((shares[&Setting::Partitioned] - 0.05).abs() < 1e-9);
        assert!((shares[&Setting::Shared] - 400.0 / 401.0).abs() < 1e-9);
        let facts = observed(&shares, Some(false));
        assert_eq!(facts["shared_slowdown"], "1.998");
        assert_eq!(facts["partitioned_wait_share"], "0.050");
        assert_eq!(facts["smt_siblings"], "0");
    }

    #[test]
    fn a_setting_never_seen_is_none() {
        let facts = observed(&BTreeMap::new(), None);
        assert_eq!(facts["shared_slowdown"], "none");
        assert_eq!(facts["alone_wait_share"], "none");
        assert_eq!(facts["smt_siblings"], "unknown");
    }

    #[test]
    fn schedstat_of_this_process_has_run_time() {
        let (run, _) = schedstat(std::process::id() as i32).expect("/proc/self/schedstat");
        assert!(run > 0);
    }
}
