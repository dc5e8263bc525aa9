//! The check engine: runs a step's checks in the student's workspace and
//! returns structured results. Every run gets a fresh nonce; facts come from
//! what the runner observes, and lab.toml's rules judge them.

pub mod boot;
pub(crate) mod facts;
pub(crate) mod observe;
pub(crate) mod sink;
mod source;

use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::{Check, CheckKind, Lab, Step};
use crate::cleanup::Scratch;
use crate::host::Capabilities;
use crate::proc::{Cmd, ProcError};
use facts::{Facts, Vars};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Pass,
    Fail,
    /// The runner could not run the check (a tool is missing, I/O failed).
    Error,
    /// Not runnable on this machine; the message says why. Never a pass.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckResult {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    pub(crate) message: String,
    /// The facts the runner gathered (what it saw, not what it was told).
    pub(crate) evidence: Facts,
    /// Facts recorded for the cross-tier comparison (only on a pass).
    pub(crate) recorded: Facts,
    pub(crate) duration_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepResult {
    pub(crate) step: String,
    pub(crate) title: String,
    pub(crate) outcome: Outcome,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
    pub(crate) message: String,
    /// What this machine lacks, in words, when the step was skipped for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) needs: Vec<String>,
    pub(crate) checks: Vec<CheckResult>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabReport {
    pub(crate) lab: String,
    pub(crate) title: String,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
    /// Points of the steps this machine could not run.
    #[serde(default)]
    pub(crate) skipped_points: u32,
    pub(crate) verdict: Verdict,
    pub(crate) steps: Vec<StepResult>,
    /// Seconds since the Unix epoch.
    pub(crate) checked_at: u64,
}

/// A lab's result as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Verdict {
    /// Every step passes.
    Pass,
    /// Every step this machine can run passes; the others were skipped for the host's sake.
    PassRunnable,
    /// A runnable step failed or could not be checked: work remains.
    NotDone,
}

impl LabReport {
    pub(crate) fn new(lab: &Lab, steps: Vec<StepResult>, checked_at: u64) -> Self {
        let outcomes = || steps.iter().map(|s| s.outcome);
        let verdict = if outcomes().all(|o| o == Outcome::Pass) {
            Verdict::Pass
        } else if outcomes().all(|o| matches!(o, Outcome::Pass | Outcome::Skipped)) {
            Verdict::PassRunnable
        } else {
            Verdict::NotDone
        };
        LabReport {
            lab: lab.id.clone(),
            title: lab.title.clone(),
            points: steps.iter().map(|s| s.points).sum(),
            max_points: steps.iter().map(|s| s.max_points).sum(),
            skipped_points: steps.iter().filter(|s| s.outcome == Outcome::Skipped).map(|s| s.max_points).sum(),
            verdict,
            steps,
            checked_at,
        }
    }

    /// Nothing is left for the student to do on this machine.
    pub(crate) fn passed(&self) -> bool {
        self.verdict != Verdict::NotDone
    }

    /// What the skipped steps need, each named once, in step order.
    pub(crate) fn needs(&self) -> Vec<&str> {
        let mut needs: Vec<&str> = Vec::new();
        for n in self.steps.iter().flat_map(|s| &s.needs) {
            if !needs.contains(&n.as_str()) {
                needs.push(n);
            }
        }
        needs
    }
}

/// Checks `lab` in `workspace`, every step or only `only_step`.
pub fn check_lab(
    lab: &Lab,
    workspace: &Path,
    caps: &Capabilities,
    only_step: Option<&str>,
) -> anyhow::Result<LabReport> {
    let steps: Vec<&Step> = match only_step {
        Some(id) => vec![lab.step(id)?],
        None => lab.steps.iter().collect(),
    };
    let steps: Vec<StepResult> = steps.into_iter().map(|s| check_step(lab, s, workspace, caps)).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(LabReport::new(lab, steps, now))
}

pub(crate) fn check_step(lab: &Lab, step: &Step, workspace: &Path, caps: &Capabilities) -> StepResult {
    let mut result = StepResult {
        step: step.id.clone(),
        title: step.title.clone(),
        outcome: Outcome::Pass,
        points: 0,
        max_points: step.points,
        message: String::new(),
        needs: Vec::new(),
        checks: Vec::new(),
    };
    let needs: Vec<_> = lab.requires.iter().chain(&step.requires).copied().collect();
    let missing = caps.missing(&needs);
    if !missing.is_empty() {
        result.outcome = Outcome::Skipped;
        result.message = format!("{NOT_RUNNABLE}{}", missing.join("; "));
        let mut lacking: Vec<_> = needs.into_iter().filter(|c| caps.lacks(*c).is_some()).collect();
        lacking.sort();
        lacking.dedup();
        result.needs = lacking.into_iter().map(|c| c.needed().to_string()).collect();
        return result;
    }
    for check in &step.checks {
        let r = run_check(check, workspace);
        if result.outcome == Outcome::Pass && r.outcome != Outcome::Pass {
            result.outcome = r.outcome;
            result.message = r.message.clone();
        }
        result.checks.push(r);
    }
    if result.outcome == Outcome::Pass {
        result.points = step.points;
        result.message = "passed".into();
    }
    result
}

/// How the message of a step skipped for the host's sake begins.
pub(crate) const NOT_RUNNABLE: &str = "not runnable on this machine: ";

pub fn fresh_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn check_name(check: &Check) -> String {
    check.name.clone().unwrap_or_else(|| shown(&check.command))
}

/// A check's command as the student would type it: `{vlab}` reads `vlab`.
fn shown(command: &[String]) -> String {
    command.iter().map(|a| a.replace("{vlab}", "vlab")).collect::<Vec<_>>().join(" ")
}

/// Runs one check with a fresh nonce and judges what the runner saw.
pub(crate) fn run_check(check: &Check, workspace: &Path) -> CheckResult {
    let started = Instant::now();
    let nonce = fresh_nonce();
    let (outcome, message, evidence) = match execute(check, workspace, &nonce) {
        Ok(Judged { facts, verdict: Ok(()) }) => (Outcome::Pass, "ok".to_string(), facts),
        Ok(Judged { facts, verdict: Err(msg) }) => (Outcome::Fail, msg, facts),
        Err(e) => (Outcome::Error, e, Facts::new()),
    };
    let recorded = if outcome == Outcome::Pass {
        check.record.iter().filter_map(|k| evidence.get(k).map(|v| (k.clone(), v.clone()))).collect()
    } else {
        Facts::new()
    };
    CheckResult {
        name: check_name(check),
        outcome,
        message,
        evidence,
        recorded,
        duration_ms: started.elapsed().as_millis() as u64,
    }
}

struct Judged {
    facts: Facts,
    verdict: Result<(), String>,
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn with_output(msg: String, stdout: &str, stderr: &str) -> String {
    let mut msg = msg;
    for (name, text) in [("stderr", stderr), ("stdout", stdout)] {
        if !text.trim().is_empty() {
            msg.push_str(&format!("\n  last lines of {name}:\n    {}", tail(text, 6).replace('\n', "\n    ")));
        }
    }
    msg
}

fn execute(check: &Check, workspace: &Path, nonce: &str) -> Result<Judged, String> {
    let scratch = Scratch::new_in(&workspace.join(".vlab"), "check-")
        .map_err(|e| format!("cannot create a scratch directory in {}: {e}", workspace.display()))?;
    let results = scratch.path().join("results");
    // The runner makes the results file itself; it reads back only a regular file (files::read_regular).
    std::fs::File::create(&results).map_err(|e| format!("cannot create {}: {e}", results.display()))?;
    let probe = match check.kind {
        CheckKind::Observe => {
            let dir = workspace.join(check.probe_dir.as_deref().unwrap_or(".vlab"));
            observe::place_probe(&dir).map_err(|e| format!("cannot place the probe in {}: {e}", dir.display()))?
        }
        CheckKind::Run | CheckKind::Boot => workspace.join(".vlab").join(observe::PROBE_NAME),
    };
    // `{vlab}` is this runner itself, for checks whose observer is one of its commands.
    let vlab = std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "vlab".into());
    let argv: Vec<String> = check
        .command
        .iter()
        .map(|a| a.replace("{nonce}", nonce).replace("{probe}", &probe.to_string_lossy()).replace("{vlab}", &vlab))
        .collect();
    // Containers started with runc's state in here are deleted (cgroups and all) when this is dropped.
    let runc_root = crate::container::runc::StateRoot::new(scratch.path().join("runc"));
    let mut cgroups = match check.cgroup {
        true => Some(
            crate::container::cgroup::Group::create(nonce)
                .map_err(|e| format!("cannot make this check's cgroups: {e:#}"))?,
        ),
        false => None,
    };
    let mut cmd = Cmd::from_argv(&argv)
        .dir(workspace)
        .env("VLAB_NONCE", nonce)
        .env("VLAB_RESULTS", &results)
        .env("VLAB_SCRATCH", scratch.path())
        .env("VLAB_PROBE", &probe)
        .env("VLAB_WORKSPACE", workspace)
        .env("VLAB_RUNC_ROOT", runc_root.path())
        .timeout(Duration::from_secs(check.timeout_secs));
    // Where the distribution's UML cannot run here, `linux` is the copy `vlab setup` fetched.
    if let Some(dir) = crate::host::uml::known().path_dir() {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let joined = std::env::join_paths(std::iter::once(dir).chain(std::env::split_paths(&path)))
            .map_err(|e| format!("cannot put the UML kernel's directory on PATH: {e}"))?;
        cmd = cmd.env("PATH", joined);
    }
    let sink = match check.sink {
        true => Some(sink::Sink::start().map_err(|e| format!("cannot open a network sink on 127.0.0.1: {e}"))?),
        false => None,
    };
    if let Some(s) = &sink {
        cmd = cmd.env("VLAB_SINK_PORT", s.port().to_string()).env("VLAB_SOURCE_PORT", s.source_port().to_string());
    }
    if let Some(group) = cgroups.as_mut() {
        for (k, v) in group.env() {
            cmd = cmd.env(k, v);
        }
        group.watch();
    }
    let shown = shown(&check.command);
    let not_found = |e: ProcError| e.to_string();
    let mut facts = Facts::new();
    let (stdout, stderr) = match check.kind {
        CheckKind::Run => {
            let out = cmd.run().map_err(not_found)?;
            facts.insert("exit".into(), out.code.map(|c| c.to_string()).unwrap_or_else(|| "killed".into()));
            facts.insert("elapsed_ms".into(), ms(out.elapsed));
            facts.insert("cpu.user_ms".into(), ms(out.usage.user));
            facts.insert("cpu.sys_ms".into(), ms(out.usage.sys));
            facts.insert("cpu.total_ms".into(), ms(out.usage.user + out.usage.sys));
            // How long the processes were runnable: CPU time plus the time they
            // waited for a CPU (PSI). A loop that sleeps is not runnable; where
            // the kernel keeps no PSI, the wall time is the (weaker) bound.
            let runnable = match out.usage.cpu_wait {
                Some(wait) => out.usage.user + out.usage.sys + wait,
                None => out.elapsed,
            };
            facts.insert("cpu.runnable_ms".into(), ms(runnable));
            facts.insert("io.write_bytes".into(), out.usage.block_write_bytes.to_string());
            let counted_by = if out.usage.block_writes_flushed { "blkio" } else { "rusage" };
            facts.insert("io.write_counted_by".into(), counted_by.into());
            if out.timed_out {
                let msg = format!(
                    "`{shown}` did not finish within {}s and was killed (with everything it started)",
                    check.timeout_secs
                );
                return Ok(Judged { facts, verdict: Err(with_output(msg, &out.stdout, &out.stderr)) });
            }
            if let Some(want) = check.expect.exit.filter(|w| out.code != Some(*w)) {
                let msg = format!("`{shown}` {} (expected status {want})", out.describe_end());
                return Ok(Judged { facts, verdict: Err(with_output(msg, &out.stdout, &out.stderr)) });
            }
            (out.stdout, out.stderr)
        }
        CheckKind::Observe => {
            let places =
                observe::Places { workspace, probe: &probe, scratch: scratch.path(), runc_root: runc_root.path() };
            let obs = observe::observe(&cmd, nonce, &places).map_err(not_found)?;
            facts.extend(obs.facts);
            if facts.get("probe.found").map(String::as_str) != Some("yes") {
                let why = match (&obs.ended_early, obs.timed_out) {
                    (Some(end), _) => format!(
                        "`{shown}` {end} without starting the probe ($VLAB_PROBE) with VLAB_NONCE in its environment"
                    ),
                    (None, true) => {
                        format!(
                            "the probe ($VLAB_PROBE) did not start within {}s of `{shown}`; the runner knows its probe by the file it placed, so a copy or a changed probe does not count: run $VLAB_PROBE itself",
                            check.timeout_secs
                        )
                    }
                    (None, false) => format!("the probe was not found under `{shown}`"),
                };
                return Ok(Judged { facts, verdict: Err(with_output(why, &obs.stdout, &obs.stderr)) });
            }
            if facts.get("probe.intact").map(String::as_str) != Some("yes") {
                let msg = "the probe that ran is not the one the runner placed; run $VLAB_PROBE unchanged".to_string();
                return Ok(Judged { facts, verdict: Err(msg) });
            }
            (obs.stdout, obs.stderr)
        }
        CheckKind::Boot => {
            let counts = check.expect.facts.iter().any(|r| r.fact.starts_with("devcount."));
            let obs = boot::boot_counting(&cmd, nonce, counts).map_err(not_found)?;
            facts.extend(obs.facts);
            if let Some(panic) = &obs.panic {
                let msg = format!("the guest kernel panicked: {panic}");
                return Ok(Judged { facts, verdict: Err(with_output(msg, &obs.console, &obs.stderr)) });
            }
            if facts.get("boot.report").map(String::as_str) != Some("found") {
                let why = match (&obs.ended_early, obs.timed_out) {
                    (Some(end), _) => format!("`{shown}` {end} before the probe's report appeared on the console"),
                    (None, _) => format!("no probe report on the console within {}s of `{shown}`", check.timeout_secs),
                };
                return Ok(Judged { facts, verdict: Err(with_output(why, &obs.console, &obs.stderr)) });
            }
            if facts.get("report.nonce").map(String::as_str) != Some("fresh") {
                let msg = "the report does not carry this run's nonce: pass vlab.nonce=$VLAB_NONCE on the kernel command line";
                return Ok(Judged { facts, verdict: Err(msg.to_string()) });
            }
            (obs.console, obs.stderr)
        }
    };
    if let Some(mut group) = cgroups.take() {
        facts.extend(group.facts());
        group.remove().map_err(|e| format!("{e:#}"))?;
    }
    if let Some(s) = &sink {
        facts.extend(s.facts());
    }
    let result_text = match crate::files::read_regular(&results) {
        Ok(text) => text,
        Err(e) => return Ok(Judged { facts, verdict: Err(format!("$VLAB_RESULTS: {e:#}")) }),
    };
    facts.extend(facts::parse_results(&result_text));
    let nonce_state = match facts.get("result.nonce") {
        Some(n) if n == nonce => "fresh",
        Some(_) => "stale",
        None => "missing",
    };
    facts.insert("nonce".into(), nonce_state.into());
    let verdict =
        expectations(check, workspace, nonce, &facts, &stdout, &stderr).map_err(|m| with_output(m, &stdout, &stderr));
    Ok(Judged { facts, verdict })
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1000.0)
}

fn expectations(
    check: &Check,
    workspace: &Path,
    nonce: &str,
    facts: &Facts,
    stdout: &str,
    stderr: &str,
) -> Result<(), String> {
    let e = &check.expect;
    for re in &e.stdout {
        if !regex::Regex::new(re).map_err(|x| x.to_string())?.is_match(stdout) {
            return Err(format!("the output does not match /{re}/"));
        }
    }
    for re in &e.stdout_not {
        if regex::Regex::new(re).map_err(|x| x.to_string())?.is_match(stdout) {
            return Err(format!("the output should not match /{re}/"));
        }
    }
    for re in &e.stderr {
        if !regex::Regex::new(re).map_err(|x| x.to_string())?.is_match(stderr) {
            return Err(format!("the error output does not match /{re}/"));
        }
    }
    for file in &e.files {
        if !workspace.join(file).exists() {
            return Err(format!("expected the file {file} to exist afterwards"));
        }
    }
    if e.nonce {
        match facts.get("nonce").map(String::as_str) {
            Some("fresh") => {}
            Some("stale") => return Err("the results carry an old nonce: they were not measured in this run; write `nonce=$VLAB_NONCE` to $VLAB_RESULTS".into()),
            _ => return Err("no `nonce=...` line in $VLAB_RESULTS; write `nonce=$VLAB_NONCE` there with your results".into()),
        }
    }
    let ws = workspace.to_string_lossy();
    let vars = Vars { nonce, workspace: &ws };
    for rule in &e.facts {
        facts::judge(rule, facts, &vars).map_err(|seen| format!("{} ({seen})", rule.message))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_shown_as_the_student_would_type_them() {
        let command: Vec<String> = ["{vlab}", "emu", "cross", "--", "sh", "cross.sh"].map(String::from).into();
        assert_eq!(shown(&command), "vlab emu cross -- sh cross.sh");
    }
}
