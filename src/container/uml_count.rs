//! The UML lab's counting observer, `vlab uml count MODE -- COMMAND`: how many
//! host system calls the UML kernel makes for one guest system call.
//!
//! The guest workload is `dd bs=1 count=N` from /dev/zero to /dev/null: one
//! read and one write per byte, so 2N guest system calls, N derived from the
//! nonce. The runner places the init that runs it (`.vlab/uml-count`, reading
//! N from `vlab.count=` on the kernel command line) in the lab's rootfs, runs
//! the student's command with $VLAB_COUNT set and watches it for a UML kernel
//! booted with that count. Then it measures the same thing itself, on its own
//! root: it boots the kernel the labs use under `strace -c` (the UML kernel
//! process only, not its guest processes, which the kernel itself traces in
//! ptrace mode) once with count 0 and once with count N, and divides the
//! difference in each host system call's count by 2N. What boot costs
//! cancels out. The results go to $VLAB_RESULTS as `observed_*` lines.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::check::wrap::{check_env, finish, run_student, write_observed};
use crate::cleanup::Scratch;
use crate::host::uml::Mode;
use crate::proc::{self, Cmd};

/// Path of the counting init inside a root.
pub(crate) const COUNT_INIT_PATH: &str = ".vlab/uml-count";

/// Printed by the counting init once the workload ran.
const DONE: &str = "VLAB-COUNT-DONE";

/// The counting init. Every command names /bin/busybox so that it runs the
/// same in the lab's rootfs and in the runner's own minimal root.
const COUNT_INIT: &str = r#"#!/bin/busybox sh
# vlab UML counting workload: placed by the runner, rewritten before every check.
/bin/busybox mount -t proc proc /proc
n=$(/bin/busybox sed -n 's/.*vlab\.count=\([0-9]*\).*/\1/p' /proc/cmdline)
/bin/busybox dd if=/dev/zero of=/dev/null bs=1 count=${n:-0} 2>/dev/null
/bin/busybox echo "VLAB-COUNT-DONE count=${n:-0}"
/bin/busybox poweroff -f
"#;

/// How long one of the runner's own boots under strace may take.
const BOOT_TIMEOUT: Duration = Duration::from_secs(150);

/// The dd count for this nonce: 4000..=8000 bytes, 8000 to 16000 guest system
/// calls: enough that boot's share of a single run stays under a tenth.
pub(crate) fn count_n(nonce: &str) -> u64 {
    let h = u64::from_str_radix(nonce.get(..8).unwrap_or(nonce), 16).unwrap_or(0);
    4000 + h % 4001
}

pub(crate) fn parse_mode(name: &str) -> anyhow::Result<Mode> {
    match name {
        "ptrace" => Ok(Mode::Ptrace),
        "seccomp" => Ok(Mode::Seccomp),
        other => bail!("unknown UML mode {other:?}; expected ptrace or seccomp"),
    }
}

/// Writes the counting init into `root` (every time: a changed init never decides a result).
pub(crate) fn place_count_init(root: &Path) -> anyhow::Result<()> {
    let init = root.join(COUNT_INIT_PATH);
    let dir = init.parent().unwrap_or(root);
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let _ = std::fs::remove_file(&init);
    std::fs::write(&init, COUNT_INIT).with_context(|| format!("cannot write {}", init.display()))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Calls per system call name from `strace -c` output, and `total`.
pub(crate) fn parse_strace_summary(text: &str) -> BTreeMap<String, u64> {
    let mut calls = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        // % time, seconds, usecs/call, calls, [errors,] syscall
        if f.len() < 5 || f[0].parse::<f64>().is_err() {
            continue;
        }
        if let (Some(name), Ok(n)) = (f.last(), f[3].parse::<u64>()) {
            calls.insert((*name).to_string(), n);
        }
    }
    calls
}

/// Host system calls of the UML kernel per guest system call, from two runs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PerSyscall {
    /// Calls in the run with the workload, per name.
    pub(crate) with: BTreeMap<String, u64>,
    /// (with − without) / guest calls, per name.
    pub(crate) per_call: BTreeMap<String, f64>,
}

pub(crate) fn per_syscall(without: &BTreeMap<String, u64>, with: &BTreeMap<String, u64>, guest: u64) -> PerSyscall {
    let per_call = with
        .iter()
        .map(|(name, n)| {
            let base = without.get(name).copied().unwrap_or(0);
            (name.clone(), n.saturating_sub(base) as f64 / guest.max(1) as f64)
        })
        .collect();
    PerSyscall { with: with.clone(), per_call }
}

/// The runner's own root: static busybox and the counting init.
fn own_root(root: &Path) -> anyhow::Result<()> {
    let busybox = crate::host::tools::static_busybox()?;
    for d in ["bin", "dev", "proc", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(&busybox, root.join("bin/busybox"))?;
    place_count_init(root)
}

/// Boots `program` in `mode` with count `n` under `strace -c`; the summary's counts.
fn boot_counted(program: &Path, mode: Mode, n: u64, scratch: &Path) -> anyhow::Result<BTreeMap<String, u64>> {
    let strace = crate::host::tools::which("strace").context("strace is not installed (`vlab setup`)")?;
    let root = scratch.join("root");
    let summary = scratch.join(format!("strace-{}-{n}.txt", mode.name()));
    let uml_dir = scratch.join(format!("uml-{n}"));
    std::fs::create_dir_all(&uml_dir)?;
    let out = Cmd::new(&strace)
        .args(["-c", "-o"])
        .arg(&summary)
        .arg("--")
        .arg(program)
        .arg("mem=64M")
        .arg("rootfstype=hostfs")
        .arg(format!("rootflags={}", root.display()))
        .args(["rw", &format!("init=/{COUNT_INIT_PATH}"), "con0=fd:0,fd:1", "con=null"])
        .arg(format!("uml_dir={}", uml_dir.display()))
        .arg(mode.param())
        .arg(format!("vlab.count={n}"))
        .timeout(BOOT_TIMEOUT)
        .run()?;
    if !out.stdout.contains(&format!("{DONE} count={n}")) {
        let last = out.stdout.lines().chain(out.stderr.lines()).rfind(|l| !l.trim().is_empty()).unwrap_or("");
        bail!("the runner's own UML boot ({} mode, count {n}) did not run its workload: {}", mode.name(), last.trim());
    }
    let text = std::fs::read_to_string(&summary).context("strace -c wrote no summary")?;
    Ok(parse_strace_summary(&text))
}

/// The runner's own measurement: count 0 and count `n`, in `mode`.
pub(crate) fn measure(program: &Path, mode: Mode, n: u64, scratch: &Path) -> anyhow::Result<PerSyscall> {
    own_root(&scratch.join("root"))?;
    let without = boot_counted(program, mode, 0, scratch)?;
    let with = boot_counted(program, mode, n, scratch)?;
    Ok(per_syscall(&without, &with, 2 * n))
}

/// What the runner saw of the student's UML kernels.
#[derive(Debug, Default)]
struct Seen {
    /// Kernels booted with `vlab.count=` the expected count, by pid.
    boots: BTreeMap<i32, Option<&'static str>>,
    /// Programs that traced such a kernel (strace, perf, ...).
    tracers: Vec<String>,
    /// The binary of the first such kernel: the runner counts with the same one.
    exe: Option<PathBuf>,
}

fn field<'a>(status: &'a str, key: &str) -> Option<&'a str> {
    status.lines().find_map(|l| l.strip_prefix(key)).map(str::trim)
}

/// How `kernel`'s guest processes run: traced by it, or under a seccomp filter.
fn userspace_mode(kernel: i32) -> Option<&'static str> {
    proc::descendants(kernel).into_iter().find_map(|pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        if field(&status, "Name:")? != "uml-userspace" {
            return None;
        }
        match (field(&status, "TracerPid:")?.parse::<i32>().ok()?, field(&status, "Seccomp:")?) {
            (0, "2") => Some("seccomp"),
            (t, _) if t != 0 && Path::new(&format!("/proc/{kernel}/task/{t}")).exists() => Some("ptrace"),
            _ => None,
        }
    })
}

fn look(pid: i32, kernels: &[PathBuf], n: u64, seen: &mut Seen) {
    let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) else { return };
    if !kernels.contains(&exe) {
        return;
    }
    // The kernel's guest processes and helpers run the same binary: only the kernel itself counts.
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let parent = field(&status, "PPid:").and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
    if parent.is_some_and(|p| kernels.contains(&p)) {
        return;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let want = format!("vlab.count={n}");
    if !cmdline.split(|b| *b == 0).any(|a| a == want.as_bytes()) {
        return;
    }
    seen.exe.get_or_insert(exe);
    let mode = userspace_mode(pid);
    let entry = seen.boots.entry(pid).or_default();
    *entry = entry.or(mode);
    if let Some(tracer) = field(&status, "TracerPid:").and_then(|t| t.parse::<i32>().ok()).filter(|t| *t != 0) {
        let name = std::fs::read_link(format!("/proc/{tracer}/exe"))
            .ok()
            .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()));
        if let Some(name) = name.filter(|n| !seen.tracers.contains(n)) {
            seen.tracers.push(name);
        }
    }
}

/// The `observed_*` facts: what the runner saw of the student's boots, and its
/// own count (`none` where it made none).
fn observed_facts(n: u64, mode: Mode, seen: &Seen, own: Option<&PerSyscall>) -> BTreeMap<String, String> {
    let modes: Vec<&str> = seen.boots.values().filter_map(|m| *m).collect();
    let uml_mode = if modes.contains(&mode.name()) { mode.name() } else { modes.first().copied().unwrap_or("none") };
    let mut facts = BTreeMap::from([
        ("count_n".to_string(), n.to_string()),
        ("guest_syscalls".to_string(), (2 * n).to_string()),
        ("uml_boots".to_string(), seen.boots.len().to_string()),
        ("uml_mode".to_string(), uml_mode.to_string()),
        ("tracer".to_string(), if seen.tracers.is_empty() { "none".into() } else { seen.tracers.join(",") }),
    ]);
    for name in ["ptrace", "wait4", "futex", "total"] {
        let key = if name == "total" { "host_syscalls" } else { name };
        let rate = own.map_or("none".into(), |o| format!("{:.3}", o.per_call.get(name).copied().unwrap_or(0.0)));
        facts.insert(format!("{key}_per_syscall"), rate);
        if name != "total" {
            let total = own.map_or("none".into(), |o| o.with.get(name).copied().unwrap_or(0).to_string());
            facts.insert(format!("{key}_calls"), total);
        }
    }
    facts
}

/// `vlab uml count MODE -- COMMAND`.
pub(crate) fn count(mode: &str, command: &[String]) -> anyhow::Result<i32> {
    let mode = parse_mode(mode)?;
    let env = check_env();
    let n = count_n(&env.nonce);
    let rootfs = std::env::current_dir()?.join("rootfs");
    if !rootfs.join("bin/busybox").exists() {
        bail!("no busybox root at {}: run `vlab start uml` (it prepares rootfs/)", rootfs.display());
    }
    place_count_init(&rootfs)?;
    let uml = crate::host::uml::known();
    let best = uml.best().cloned().ok_or_else(|| {
        anyhow::anyhow!("{}", uml.lacks().unwrap_or_else(|| "no UML kernel runs here (`vlab doctor`)".into()))
    })?;
    let kernels = uml.working_exes();
    let child = run_student(command, &[("VLAB_COUNT", n.to_string())])?;
    let mut seen = Seen::default();
    while child.wait_until(Instant::now() + Duration::from_millis(20))?.is_none() && !child.expired() {
        for pid in proc::descendants(child.pid()) {
            look(pid, &kernels, n, &mut seen);
        }
    }
    let code = finish(child)?;
    if code != 0 {
        // Nothing to compare with; the student's error output says why.
        return Ok(code);
    }
    // Without a boot to compare, the runner's own count (a minute of boots) would judge nothing.
    let own = match seen.boots.is_empty() {
        true => None,
        false => {
            let same = uml.kernels.iter().find(|k| Some(&k.exe) == seen.exe.as_ref() && k.boots(mode));
            let program = same.map_or(&best.program, |k| &k.program);
            let scratch = Scratch::new_in(&env.scratch, "uml-count-")?;
            Some(measure(program, mode, n, scratch.path())?)
        }
    };
    let observed = observed_facts(n, mode, &seen, own.as_ref());
    write_observed(&env.results, &observed)?;
    if own.is_none() {
        println!("the runner saw no UML kernel booted with vlab.count={n}, so it counted nothing itself");
        return Ok(code);
    }
    println!(
        "runner's own count, {} mode, dd of {n} bytes ({} guest system calls): per guest call {} ptrace, {} wait4, {} futex, {} host system calls in all",
        mode.name(),
        2 * n,
        observed["ptrace_per_syscall"],
        observed["wait4_per_syscall"],
        observed["futex_per_syscall"],
        observed["host_syscalls_per_syscall"]
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 70.24    0.345471           6     57119        11 ptrace
 22.91    0.112671           9     11994        33 wait4
  0.09    0.000423         211         2           futex
------ ----------- ----------- --------- --------- ----------------
100.00    0.491812           6     72559       279 total
";

    #[test]
    fn strace_summaries_are_read_with_and_without_an_errors_column() {
        let c = parse_strace_summary(SUMMARY);
        assert_eq!(c["ptrace"], 57119);
        assert_eq!(c["wait4"], 11994);
        assert_eq!(c["futex"], 2);
        assert_eq!(c["total"], 72559);
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn boot_cancels_out_of_the_per_call_rate() {
        let without = BTreeMap::from([("ptrace".to_string(), 4623), ("futex".to_string(), 2)]);
        let with = BTreeMap::from([("ptrace".to_string(), 57119), ("futex".to_string(), 2), ("wait4".into(), 10)]);
        let r = per_syscall(&without, &with, 10000);
        assert!((r.per_call["ptrace"] - 5.2496).abs() < 1e-9);
        assert_eq!(r.per_call["futex"], 0.0);
        assert_eq!(r.per_call["wait4"], 0.001);
    }

    #[test]
    fn without_a_boot_there_is_no_count_and_with_one_the_mode_asked_for_wins() {
        let none = observed_facts(4000, Mode::Ptrace, &Seen::default(), None);
        assert_eq!(none["uml_boots"], "0");
        assert_eq!(none["uml_mode"], "none");
        assert_eq!(none["ptrace_per_syscall"], "none");
        assert_eq!(none["futex_calls"], "none");
        assert_eq!(none["guest_syscalls"], "8000");
        let seen = Seen {
            boots: BTreeMap::from([(7, Some("seccomp")), (9, Some("ptrace"))]),
            tracers: vec!["strace".into()],
            exe: None,
        };
        let own = per_syscall(&BTreeMap::new(), &BTreeMap::from([("total".to_string(), 16000)]), 8000);
        let facts = observed_facts(4000, Mode::Ptrace, &seen, Some(&own));
        assert_eq!(facts["uml_mode"], "ptrace");
        assert_eq!(facts["tracer"], "strace");
        assert_eq!(facts["host_syscalls_per_syscall"], "2.000");
        assert_eq!(facts["ptrace_calls"], "0");
    }

    #[test]
    fn the_count_follows_the_nonce_within_its_range() {
        assert_eq!(count_n("00000000"), 4000);
        assert!((4000..=8000).contains(&count_n("ffffffffffffffff")));
        assert_ne!(count_n("0123456789abcdef"), count_n("fedcba9876543210"));
        assert!(parse_mode("kvm").is_err());
    }

    #[test]
    fn the_runners_own_count_in_ptrace_mode_is_one_stop_and_about_five_ptrace_calls_per_guest_call() {
        let Some(kernel) = crate::host::uml::known().best().cloned() else {
            // A host kernel can make every UML panic (DESIGN.md): a reason CI may have too.
            eprintln!("SKIPPED the_runners_own_count: no UML kernel boots here (`vlab doctor`)");
            return;
        };
        if crate::host::tools::which("strace").is_none() {
            crate::testing::skip("strace is not installed");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let r = measure(&kernel.program, Mode::Ptrace, 1000, dir.path()).unwrap();
        // GETREGS, GETREGSET, SETREGS, SETREGSET and SYSEMU, after one wait4 for the stop;
        // timer signals and a loaded machine add a little.
        assert!((4.0..7.0).contains(&r.per_call["ptrace"]), "{r:?}");
        assert!((0.9..1.6).contains(&r.per_call["wait4"]), "{r:?}");
    }
}
