//! The software-emulation lab's observers. Each runs the student's command,
//! then writes what the runner itself saw to $VLAB_RESULTS as `observed_*`
//! lines (any the student wrote are dropped; check::wrap), for lab.toml
//! rules to compare with the student's answers.
//!
//! `translate`: the workload is busybox `seq N` under qemu-x86_64 in an empty
//! environment, N derived from the nonce; the runner counts, in its own run,
//! the blocks QEMU translated (`-d in_asm`) and executed with and without
//! block chaining (`-d nochain,exec` / `-d exec`).
//! `cross`: the runner watches the command's processes and records which
//! qemu-user emulator ran which guest binary (its ELF machine, read from the
//! file the emulator mapped) and how much CPU the emulated and native runs used.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::elf;
use crate::check::wrap::{check_env, finish, run_student, write_observed};
use crate::cleanup::Scratch;
use crate::proc::{self, Cmd};

/// The `seq` count for this nonce: 100..=999. Each step adds about 400
/// executed blocks, so with the check's 0.1% margin a fixed answer matches
/// about one nonce in 900.
pub(crate) fn seq_n(nonce: &str) -> u64 {
    let h = u64::from_str_radix(nonce.get(..8).unwrap_or(nonce), 16).unwrap_or(0);
    100 + h % 900
}

/// The translator's counts for `busybox seq n` under qemu-x86_64, measured here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TbCounts {
    pub(crate) translated: u64,
    pub(crate) executed: u64,
    pub(crate) executed_chained: u64,
}

fn count_lines(path: &Path, prefix: &str) -> anyhow::Result<u64> {
    let file = std::fs::File::open(path).with_context(|| format!("QEMU wrote no log at {}", path.display()))?;
    let mut n = 0;
    for line in std::io::BufReader::new(file).split(b'\n') {
        if line?.starts_with(prefix.as_bytes()) {
            n += 1;
        }
    }
    Ok(n)
}

/// Runs the workload twice under QEMU's logging, in an empty environment.
pub(crate) fn measure_tb(n: u64, scratch: &Path) -> anyhow::Result<TbCounts> {
    let busybox = crate::host::tools::which("busybox").context("busybox is not installed (`vlab setup`)")?;
    let qemu = crate::host::tools::which("qemu-x86_64-static")
        .context("qemu-x86_64-static is not installed; it comes with qemu-user-static (`vlab setup`)")?;
    let run = |flags: &str, log: &Path| -> anyhow::Result<()> {
        // Output to /dev/null, as the lab has the student do: where stdout goes
        // changes how busybox buffers it, and so the blocks it runs.
        let out = Cmd::new("sh")
            .args(["-c", "exec \"$@\" > /dev/null", "sh", "env", "-i"])
            .arg(&qemu)
            .args(["-d", flags, "-D"])
            .arg(log)
            .arg(&busybox)
            .args(["seq", &n.to_string()])
            .timeout(Duration::from_secs(60))
            .run()?;
        if !out.success() {
            bail!("the runner's own qemu-x86_64 run {}: {}", out.describe_end(), out.stderr.trim());
        }
        Ok(())
    };
    let unchained = scratch.join("runner-nochain.log");
    run("in_asm,nochain,exec", &unchained)?;
    let chained = scratch.join("runner-chain.log");
    run("exec", &chained)?;
    let counts = TbCounts {
        translated: count_lines(&unchained, "IN:")?,
        executed: count_lines(&unchained, "Trace ")?,
        executed_chained: count_lines(&chained, "Trace ")?,
    };
    for log in [unchained, chained] {
        let _ = std::fs::remove_file(log);
    }
    Ok(counts)
}

/// `vlab emu translate -- COMMAND`.
pub(crate) fn translate(command: &[String]) -> anyhow::Result<i32> {
    let env = check_env();
    let n = seq_n(&env.nonce);
    let child = run_student(command, &[("VLAB_SEQ_N", n.to_string())])?;
    let code = finish(child)?;
    if code != 0 {
        // Nothing to compare with; the student's error output says why.
        return Ok(code);
    }
    let scratch = Scratch::new_in(&env.scratch, "tb-")?;
    let counts = measure_tb(n, scratch.path())?;
    let observed = BTreeMap::from([
        ("seq_n".to_string(), n.to_string()),
        ("blocks_translated".to_string(), counts.translated.to_string()),
        ("blocks_executed".to_string(), counts.executed.to_string()),
        ("blocks_executed_chained".to_string(), counts.executed_chained.to_string()),
    ]);
    write_observed(&env.results, &observed)?;
    println!(
        "runner's own count for busybox seq {n}: {} blocks translated, {} executed without chaining, {} with",
        counts.translated, counts.executed, counts.executed_chained
    );
    Ok(code)
}

/// What the observer saw of one process.
#[derive(Debug, Default, Clone)]
struct Seen {
    emulator: Option<String>,
    guest_arch: Option<String>,
    cpu_ms: f64,
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf takes an integer; its error value (-1) is clamped to 1.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }).max(1) as f64
}

/// utime+stime of `pid` in ms.
fn cpu_ms(pid: i32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks * 1000.0 / clock_ticks())
}

/// The ELF machine of the first mapped file that is an ELF for another architecture.
fn mapped_guest_arch(pid: i32) -> Option<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let mut files: Vec<&str> =
        maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.starts_with('/')).collect();
    files.dedup();
    files.into_iter().filter(|f| exe.as_deref() != Some(Path::new(f))).find_map(|f| {
        let mut head = [0u8; 64];
        let n = std::io::Read::read(&mut std::fs::File::open(f).ok()?, &mut head).ok()?;
        elf::machine(&head[..n]).filter(|m| *m != elf::EM_X86_64).map(elf::machine_name)
    })
}

fn look(pid: i32) -> Option<Seen> {
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    let name = exe.file_name()?.to_string_lossy().into_owned();
    let cpu = cpu_ms(pid).unwrap_or(0.0);
    if name.starts_with("qemu-") && !name.starts_with("qemu-system") {
        return Some(Seen { emulator: Some(name), guest_arch: mapped_guest_arch(pid), cpu_ms: cpu });
    }
    (name == "busybox").then_some(Seen { emulator: None, guest_arch: None, cpu_ms: cpu })
}

/// `vlab emu cross -- COMMAND`.
pub(crate) fn cross(command: &[String]) -> anyhow::Result<i32> {
    let env = check_env();
    let child = run_student(command, &[])?;
    let mut seen: BTreeMap<i32, Seen> = BTreeMap::new();
    while child.wait_until(Instant::now() + Duration::from_millis(10))?.is_none() && !child.expired() {
        for pid in proc::descendants(child.pid()) {
            if let Some(now) = look(pid) {
                let entry = seen.entry(pid).or_default();
                entry.cpu_ms = entry.cpu_ms.max(now.cpu_ms);
                entry.emulator = entry.emulator.take().or(now.emulator);
                entry.guest_arch = entry.guest_arch.take().or(now.guest_arch);
            }
        }
    }
    let code = finish(child)?;
    let emulated: Vec<&Seen> = seen.values().filter(|s| s.emulator.is_some()).collect();
    // `+ 0.0` turns the empty sum's -0.0 into 0.
    let native_ms: f64 = seen.values().filter(|s| s.emulator.is_none()).map(|s| s.cpu_ms).sum::<f64>() + 0.0;
    let emulated_ms: f64 = emulated.iter().map(|s| s.cpu_ms).sum::<f64>() + 0.0;
    let first = |f: fn(&Seen) -> Option<String>| emulated.iter().find_map(|s| f(s)).unwrap_or_else(|| "none".into());
    let observed = BTreeMap::from([
        ("emulator".to_string(), first(|s| s.emulator.clone())),
        ("guest_arch".to_string(), first(|s| s.guest_arch.clone())),
        ("emulated_cpu_ms".to_string(), format!("{emulated_ms:.0}")),
        ("native_cpu_ms".to_string(), format!("{native_ms:.0}")),
        ("slowdown".to_string(), format!("{:.2}", if native_ms > 0.0 { emulated_ms / native_ms } else { 0.0 })),
    ]);
    write_observed(&env.results, &observed)?;
    println!(
        "runner saw: emulator {}, guest binary {}, {emulated_ms:.0} ms CPU emulated, {native_ms:.0} ms CPU in native busybox",
        observed["emulator"], observed["guest_arch"]
    );
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_n_follows_the_nonce_and_stays_small() {
        assert_eq!(seq_n("0000000000000000"), 100);
        assert_ne!(seq_n("0123456789abcdef"), seq_n("fedcba9876543210"));
        assert!((100..1000).contains(&seq_n("ffffffffffffffff")));
    }

    #[test]
    fn translation_counts_are_deterministic_in_an_empty_environment() {
        if crate::host::tools::which("qemu-x86_64-static").is_none() {
            crate::testing::skip("qemu-x86_64-static is not installed (qemu-user-static)");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let a = measure_tb(120, dir.path()).unwrap();
        let b = measure_tb(120, dir.path()).unwrap();
        assert_eq!(a, b);
        assert!(a.translated > 100 && a.executed > a.translated && a.executed > a.executed_chained, "{a:?}");
    }
}
