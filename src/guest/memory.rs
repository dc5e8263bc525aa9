//! What running guests cost in host memory (`kind = "vm-memory"`): the
//! student's command starts QEMU guests and leaves them running; while it
//! runs, the runner samples every real QEMU among its processes (identified
//! by /proc/PID/exe, never by name) for its resident and proportional memory
//! (`/proc/PID/smaps_rollup`) and for the pages KSM merged in it
//! (`/proc/PID/ksm_merging_pages`, Linux 5.19+).
//!
//! KSM is the host's: the runner saves its settings when the check is
//! armed, stops `ksmd` for the check (so every guest is first measured
//! unmerged, whatever the host had), and puts the settings back when the
//! check ends, passed, failed or timed out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::qmp::RealQemu;
use crate::check::{CheckError, Ctx, Observer, Ran, Watch};
use crate::evidence::Facts;
use crate::proc::{self, Cmd};

/// Where the kernel exposes KSM.
const KSM: &str = "/sys/kernel/mm/ksm";

/// The tunables a check may change, in the order they are put back (`run` last).
const KSM_TUNABLES: [&str; 3] = ["pages_to_scan", "sleep_millisecs", "run"];

/// How often the guests are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);

/// Output kept of the command.
const OUTPUT_LIMIT: usize = 256 * 1024;

pub(crate) struct VmMemory;

impl Observer for VmMemory {
    fn kind(&self) -> Option<&'static str> {
        Some("vm-memory")
    }

    fn describe(&self) -> &'static str {
        "runs, sampling every QEMU it starts for its memory and the pages KSM merged in it,"
    }

    fn arm(&self, _ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        let ksm = KsmSettings::save(Path::new(KSM));
        if let Some(k) = &ksm {
            k.stop().map_err(CheckError::io(format!("stop KSM for the check ({KSM}/run; needs root)")))?;
        }
        Ok(Some(Box::new(VmWatch { ksm, real: RealQemu::find() })))
    }
}

/// The host's KSM tunables as they were before the check.
struct KsmSettings {
    dir: PathBuf,
    saved: Vec<(&'static str, String)>,
    /// Ctrl-C kills the check before `restore` runs: the supervisor writes them back then.
    _on_interrupt: crate::supervisor::Registration,
}

impl KsmSettings {
    /// None where the kernel has no KSM.
    fn save(dir: &Path) -> Option<KsmSettings> {
        let saved: Vec<_> = KSM_TUNABLES
            .iter()
            .filter_map(|t| std::fs::read_to_string(dir.join(t)).ok().map(|v| (*t, v.trim().to_string())))
            .collect();
        (saved.len() == KSM_TUNABLES.len()).then(|| {
            let files = saved.iter().map(|(t, v)| (dir.join(t), v.clone())).collect();
            KsmSettings { dir: dir.to_path_buf(), saved, _on_interrupt: crate::supervisor::restore(files) }
        })
    }

    /// `run` = 0: ksmd stops; what it merged stays merged.
    fn stop(&self) -> std::io::Result<()> {
        std::fs::write(self.dir.join("run"), "0")
    }

    fn restore(&self) {
        for (tunable, value) in &self.saved {
            // Best effort: a value the kernel took before, it takes again.
            let _ = std::fs::write(self.dir.join(tunable), value);
        }
    }
}

struct VmWatch {
    ksm: Option<KsmSettings>,
    real: RealQemu,
}

impl Drop for VmWatch {
    fn drop(&mut self) {
        if let Some(k) = &self.ksm {
            k.restore();
        }
    }
}

/// One look at one QEMU.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Sample {
    rss_kib: u64,
    pss_kib: u64,
    merging_pages: u64,
    /// CPU time QEMU used so far: a guest that booted under TCG used seconds.
    cpu_ms: u64,
}

impl Sample {
    fn of(pid: i32) -> Option<Sample> {
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let mut s = parse_rollup(&rollup);
        s.merging_pages = std::fs::read_to_string(format!("/proc/{pid}/ksm_merging_pages"))
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        s.cpu_ms = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok().map(|t| cpu_ms(&t)).unwrap_or(0);
        Some(s)
    }
}

/// utime + stime of a /proc/PID/stat line, in milliseconds.
fn cpu_ms(stat: &str) -> u64 {
    // The fields after the command name, which may hold spaces, start at field 3 (state).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let field = |n: usize| rest.split_whitespace().nth(n - 3).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (field(14) + field(15)) * 1000 / crate::procfs::clock_ticks()
}

/// `Rss:` and `Pss:` of a smaps_rollup.
fn parse_rollup(text: &str) -> Sample {
    let mut s = Sample::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(key), Some(kib)) = (words.next(), words.next().and_then(|v| v.parse().ok())) else { continue };
        match key {
            "Rss:" => s.rss_kib = kib,
            "Pss:" => s.pss_kib = kib,
            _ => {}
        }
    }
    s
}

/// What one QEMU was seen to cost over the check.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Guest {
    rss_peak_kib: u64,
    /// The largest PSS while KSM had merged none of its pages: its cost alone.
    pss_unmerged_kib: u64,
    merging_peak: u64,
    /// PSS when the most of its pages were merged: its cost sharing them.
    pss_merged_kib: u64,
    cpu_ms: u64,
}

impl Guest {
    /// `ksm_on`: ksmd was running when the sample was taken.
    fn add(&mut self, s: Sample, ksm_on: bool) {
        self.rss_peak_kib = self.rss_peak_kib.max(s.rss_kib);
        self.cpu_ms = self.cpu_ms.max(s.cpu_ms);
        if s.merging_pages == 0 && !ksm_on {
            self.pss_unmerged_kib = self.pss_unmerged_kib.max(s.pss_kib);
        }
        if s.merging_pages > 0 && s.merging_pages >= self.merging_peak {
            self.merging_peak = s.merging_pages;
            self.pss_merged_kib = s.pss_kib;
        }
    }
}

/// The facts of the guests seen, `most_at_once` of them running together.
fn guest_facts(guests: &[Guest], most_at_once: usize) -> Facts {
    let mut facts = Facts::new();
    facts.insert("vms.count".into(), most_at_once.to_string());
    facts.insert("vms.seen".into(), guests.len().to_string());
    if guests.is_empty() {
        return facts;
    }
    let mean = |f: fn(&Guest) -> u64| guests.iter().map(f).sum::<u64>() / guests.len() as u64;
    let alone = mean(|g| g.pss_unmerged_kib);
    let merged = mean(|g| if g.merging_peak > 0 { g.pss_merged_kib } else { g.pss_unmerged_kib });
    facts.insert("density.vm_kib".into(), alone.to_string());
    facts.insert("density.vm_ksm_kib".into(), merged.to_string());
    facts.insert("density.vm_rss_kib".into(), mean(|g| g.rss_peak_kib).to_string());
    facts.insert("ksm.saved_kib".into(), alone.saturating_sub(merged).to_string());
    let least_cpu = guests.iter().map(|g| g.cpu_ms).min().unwrap_or(0);
    facts.insert("vms.cpu_ms_min".into(), least_cpu.to_string());
    let least = guests.iter().map(|g| g.merging_peak).min().unwrap_or(0);
    facts.insert("ksm.merging_pages_min".into(), least.to_string());
    facts
}

impl Watch for VmWatch {
    fn run(&mut self, cmd: &Cmd, ctx: &Ctx) -> Result<Ran, CheckError> {
        let child = cmd.spawn()?;
        let mut guests: BTreeMap<i32, Guest> = BTreeMap::new();
        let mut most_at_once = 0;
        let (mut ksm_ran, mut sharing_peak) = (false, 0u64);
        let ended = loop {
            let qemus: Vec<i32> =
                proc::descendants(child.pid()).into_iter().filter(|pid| self.real.runs(*pid)).collect();
            most_at_once = most_at_once.max(qemus.len());
            // Read before the guests: a sample counts as unmerged only while
            // ksmd is stopped, so a script that starts it before the guests
            // boot never shows their cost alone, however slowly ksmd scans.
            let mut ksm_on = false;
            if let Some(k) = &self.ksm {
                let read = |name: &str| -> u64 {
                    std::fs::read_to_string(k.dir.join(name)).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(0)
                };
                ksm_on = read("run") == 1;
                ksm_ran |= ksm_on;
                sharing_peak = sharing_peak.max(read("pages_sharing"));
            }
            for pid in qemus {
                if let Some(s) = Sample::of(pid) {
                    guests.entry(pid).or_default().add(s, ksm_on);
                }
            }
            if let Some(ended) = child.wait_until(Instant::now() + SAMPLE_EVERY)? {
                break Some(ended);
            }
            if child.expired() {
                break None;
            }
        };
        // One last look: a script may turn ksmd on and end between two samples.
        if let Some(k) = &self.ksm {
            ksm_ran |= std::fs::read_to_string(k.dir.join("run")).is_ok_and(|v| v.trim() == "1");
        }
        let (stdout, _) = child.read_stdout(OUTPUT_LIMIT);
        let (stderr, _) = child.read_stderr(OUTPUT_LIMIT);
        child.stop()?;
        let seen: Vec<Guest> = guests.into_values().filter(|g| g.rss_peak_kib > 0).collect();
        let mut facts = guest_facts(&seen, most_at_once);
        facts.insert("ksm.available".into(), if self.ksm.is_some() { "yes" } else { "no" }.into());
        facts.insert("ksm.run".into(), if ksm_ran { "on" } else { "off" }.into());
        facts.insert("ksm.pages_sharing_peak".into(), sharing_peak.to_string());
        facts.insert(
            "exit".into(),
            ended.and_then(|e| e.code).map(|c| c.to_string()).unwrap_or_else(|| "killed".into()),
        );
        let ran = Ran::new(facts, stdout, stderr);
        let shown = ctx.shown;
        if self.ksm.is_none() {
            // Said first: without KSM the script's own writes to it fail too.
            let msg = format!(
                "this machine shows no KSM ({KSM} is absent: a kernel without CONFIG_KSM, or a sandbox without it)"
            );
            return Ok(ran.fail_showing_output(msg));
        }
        let Some(ended) = ended else {
            let timeout = ctx.check.timeout_secs;
            let msg = format!("`{shown}` did not finish within {timeout}s and was killed (with everything it started)");
            return Ok(ran.fail_showing_output(msg));
        };
        if let Some(want) = ctx.check.expect.exit.filter(|w| ended.code != Some(*w)) {
            return Ok(ran.fail_showing_output(format!("`{shown}` {} (expected status {want})", ended.describe())));
        }
        Ok(ran)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_and_pss_are_read_from_the_rollup() {
        let text = "55d0-7ffd ---p 00000000 00:00 0  [rollup]\nRss:              204800 kB\n\
                    Pss:              150000 kB\nPss_Anon:         140000 kB\n";
        let s = parse_rollup(text);
        assert_eq!((s.rss_kib, s.pss_kib), (204800, 150000));
    }

    #[test]
    fn a_guest_costs_its_unmerged_peak_alone_and_its_pss_at_the_merge_peak_shared() {
        let mut g = Guest::default();
        for (pss, merging) in [(40_000, 0), (120_000, 0), (100_000, 3000), (80_000, 9000), (90_000, 5000)] {
            g.add(Sample { rss_kib: pss + 10_000, pss_kib: pss, merging_pages: merging, cpu_ms: 2000 }, merging > 0);
        }
        // ksmd running but not yet at these pages: not the guest's cost alone.
        g.add(Sample { rss_kib: 200_000, pss_kib: 190_000, merging_pages: 0, cpu_ms: 2000 }, true);
        assert_eq!((g.pss_unmerged_kib, g.pss_merged_kib, g.merging_peak), (120_000, 80_000, 9000));
        let f = guest_facts(&[g, Guest { merging_peak: 2000, ..g }], 2);
        assert_eq!(f["density.vm_kib"], "120000");
        assert_eq!(f["ksm.saved_kib"], "40000");
        assert_eq!(f["ksm.merging_pages_min"], "2000", "the least merged guest counts");
        assert_eq!(guest_facts(&[], 0)["vms.count"], "0");
    }

    #[test]
    fn with_ksmd_on_from_the_start_no_sample_is_the_cost_alone() {
        let mut g = Guest::default();
        for (pss, merging) in [(40_000, 0), (150_000, 0), (120_000, 4000)] {
            g.add(Sample { rss_kib: 160_000, pss_kib: pss, merging_pages: merging, cpu_ms: 2000 }, true);
        }
        assert_eq!(g.pss_unmerged_kib, 0);
        assert_eq!(guest_facts(&[g], 1)["density.vm_kib"], "0");
    }

    #[test]
    fn cpu_time_is_read_past_a_command_name_with_spaces() {
        let stat = "4242 (qemu (x) y) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 5 0 1000 0 0";
        assert_eq!(cpu_ms(stat), 300 * 1000 / crate::procfs::clock_ticks());
    }

    /// The check fails (the script exits 1 after turning KSM on); the watch still puts the settings back.
    #[test]
    fn a_failed_check_leaves_the_host_settings_as_they_were() {
        let dir = tempfile::tempdir().unwrap();
        for (t, v) in [("run", "0"), ("pages_to_scan", "100"), ("sleep_millisecs", "20"), ("pages_sharing", "0")] {
            std::fs::write(dir.path().join(t), v).unwrap();
        }
        let check: crate::catalog::Check =
            toml::from_str("kind = \"vm-memory\"\ncommand = [\"sh\"]\nexpect.exit = 0").unwrap();
        let ctx = Ctx { check: &check, workspace: dir.path(), nonce: "n", scratch: dir.path(), shown: "sh" };
        let script = "echo 5000 > \"$1/pages_to_scan\"; echo 1 > \"$1/run\"; exit 1";
        let cmd = Cmd::new("sh").args(["-c", script, "sh"]).arg(dir.path()).timeout(Duration::from_secs(10));
        let mut watch = VmWatch { ksm: KsmSettings::save(dir.path()), real: RealQemu::find() };
        let ran = watch.run(&cmd, &ctx).unwrap();
        assert!(ran.failed.is_some_and(|m| m.contains("status 1")));
        assert_eq!((ran.facts["ksm.run"].as_str(), ran.facts["vms.count"].as_str()), ("on", "0"));
        drop(watch);
        let read = |t: &str| std::fs::read_to_string(dir.path().join(t)).unwrap();
        assert_eq!((read("run"), read("pages_to_scan")), ("0".into(), "100".into()));
    }

    #[test]
    fn the_host_settings_come_back() {
        let dir = tempfile::tempdir().unwrap();
        for (t, v) in [("run", "0\n"), ("pages_to_scan", "100\n"), ("sleep_millisecs", "20\n")] {
            std::fs::write(dir.path().join(t), v).unwrap();
        }
        let saved = KsmSettings::save(dir.path()).unwrap();
        for t in KSM_TUNABLES {
            std::fs::write(dir.path().join(t), "5000").unwrap();
        }
        saved.restore();
        let read = |t: &str| std::fs::read_to_string(dir.path().join(t)).unwrap();
        assert_eq!(
            (read("run"), read("pages_to_scan"), read("sleep_millisecs")),
            ("0".into(), "100".into(), "20".into())
        );
        assert!(KsmSettings::save(&dir.path().join("absent")).is_none());
    }
}
