//! The check engine: runs a step's checks in the student's workspace and
//! returns structured results. Every run gets a fresh nonce; facts come from
//! what the runner observes, and lab.toml's rules judge them. The engine
//! names no tier: observers (`observer.rs`) do the watching, and the command
//! layer hands their registry in (src/tiers.rs).

pub(crate) mod facts;
pub(crate) mod observer;
pub(crate) mod run;
pub(crate) mod sink;
mod source;
pub(crate) mod wrap;

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::catalog::{Capability, Check, Lab, NoSuchStep, Step};
use crate::cleanup::Scratch;
pub(crate) use crate::evidence::{CheckResult, Outcome};
use crate::evidence::{Facts, Freshness, Vars, fresh_nonce};
use crate::proc::Cmd;
pub(crate) use observer::{CheckError, Ctx, Observer, PROBE_NAME, Ran, Registry, Watch, with_output};

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

/// What the engine asks of the machine: which of a step's needs it lacks
/// (host::Capabilities, measured by `vlab doctor`).
pub(crate) trait Host {
    /// Each missing need in words, why it is missing included.
    fn missing(&self, needs: &[Capability]) -> Vec<String>;
    fn lacks(&self, need: Capability) -> bool;
}

/// Checks `lab` in `workspace`, every step or only `only_step`, with `observers`.
pub(crate) fn check_lab(
    lab: &Lab,
    workspace: &Path,
    caps: &dyn Host,
    only_step: Option<&str>,
    observers: &Registry,
) -> Result<LabReport, NoSuchStep> {
    let steps: Vec<&Step> = match only_step {
        Some(id) => vec![lab.step(id)?],
        None => lab.steps.iter().collect(),
    };
    let steps: Vec<StepResult> = steps.into_iter().map(|s| check_step(lab, s, workspace, caps, observers)).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    Ok(LabReport::new(lab, steps, now))
}

pub(crate) fn check_step(
    lab: &Lab,
    step: &Step,
    workspace: &Path,
    caps: &dyn Host,
    observers: &Registry,
) -> StepResult {
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
        let mut lacking: Vec<_> = needs.into_iter().filter(|c| caps.lacks(*c)).collect();
        lacking.sort();
        lacking.dedup();
        result.needs = lacking.into_iter().map(|c| c.needed().to_string()).collect();
        return result;
    }
    for check in &step.checks {
        let r = run_check(check, workspace, observers);
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

fn check_name(check: &Check) -> String {
    check.name.clone().unwrap_or_else(|| shown(&check.command))
}

/// A check's command as the student would type it: `{vlab}` reads `vlab`.
fn shown(command: &[String]) -> String {
    command.iter().map(|a| a.replace("{vlab}", "vlab")).collect::<Vec<_>>().join(" ")
}

/// Runs one check with a fresh nonce and judges what the runner saw.
pub(crate) fn run_check(check: &Check, workspace: &Path, observers: &Registry) -> CheckResult {
    let started = Instant::now();
    let nonce = fresh_nonce();
    let (outcome, message, evidence) = match execute(check, workspace, &nonce, observers) {
        Ok(Judged { facts, failed: None }) => (Outcome::Pass, "ok".to_string(), facts),
        Ok(Judged { facts, failed: Some(Unmet(msg)) }) => (Outcome::Fail, msg, facts),
        Err(e) => (Outcome::Error, e.to_string(), Facts::new()),
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

/// Why a check fails: what the student reads.
#[derive(Debug)]
struct Unmet(String);

struct Judged {
    facts: Facts,
    failed: Option<Unmet>,
}

/// The watches armed for one check, dropped last-armed first.
struct Armed(Vec<Box<dyn Watch>>);

impl Drop for Armed {
    fn drop(&mut self) {
        while self.0.pop().is_some() {}
    }
}

fn execute(check: &Check, workspace: &Path, nonce: &str, observers: &Registry) -> Result<Judged, CheckError> {
    let scratch = Scratch::new_in(&workspace.join(".vlab"), "check-")
        .map_err(CheckError::io(format!("create a scratch directory in {}", workspace.display())))?;
    let results = scratch.path().join("results");
    // The runner makes the results file itself; it reads back only a regular file (files::read_regular).
    std::fs::File::create(&results).map_err(CheckError::io(format!("create {}", results.display())))?;
    let shown = shown(&check.command);
    let ctx = Ctx { check, workspace, nonce, scratch: scratch.path(), shown: &shown };
    let mut runner = observers.runner(&check.kind)?.arm(&ctx)?.ok_or(CheckError::Declined(check.kind.clone()))?;
    let mut watches = Armed(Vec::new());
    for observer in observers.watchers() {
        watches.0.extend(observer.arm(&ctx)?);
    }
    let mut env: Vec<(String, OsString)> = vec![
        ("VLAB_NONCE".into(), nonce.into()),
        ("VLAB_RESULTS".into(), results.clone().into()),
        ("VLAB_SCRATCH".into(), scratch.path().into()),
        ("VLAB_PROBE".into(), workspace.join(".vlab").join(PROBE_NAME).into()),
        ("VLAB_WORKSPACE".into(), workspace.into()),
    ];
    env.extend(runner.env());
    env.extend(watches.0.iter().flat_map(|w| w.env()));
    let probe = env.iter().rev().find(|(k, _)| k == "VLAB_PROBE").map(|(_, v)| v.to_string_lossy().into_owned());
    // `{vlab}` is this runner itself, for checks whose observer is one of its commands.
    let vlab = std::env::current_exe().map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| "vlab".into());
    let argv: Vec<String> = check
        .command
        .iter()
        .map(|a| {
            a.replace("{nonce}", nonce)
                .replace("{probe}", probe.as_deref().unwrap_or_default())
                .replace("{vlab}", &vlab)
        })
        .collect();
    let mut cmd = Cmd::from_argv(&argv).dir(workspace).timeout(Duration::from_secs(check.timeout_secs));
    for (k, v) in &env {
        cmd = cmd.env(k, v);
    }
    runner.started();
    watches.0.iter_mut().for_each(|w| w.started());
    let Ran { mut facts, stdout, stderr, failed } = runner.run(&cmd, &ctx)?;
    if let Some(msg) = failed {
        return Ok(Judged { facts, failed: Some(Unmet(msg)) });
    }
    for w in watches.0.iter_mut() {
        facts.extend(w.finish()?);
    }
    let result_text = match crate::files::read_regular(&results) {
        Ok(text) => text,
        Err(e) => return Ok(Judged { facts, failed: Some(Unmet(format!("$VLAB_RESULTS: {e:#}"))) }),
    };
    facts.extend(crate::evidence::parse_results(&result_text));
    let fresh = Freshness::of(facts.get("result.nonce").map(String::as_str), nonce);
    facts.insert("nonce".into(), fresh.name().into());
    let failed = expectations(check, workspace, nonce, fresh, &facts, &stdout, &stderr)
        .err()
        .map(|Unmet(m)| Unmet(with_output(m, &stdout, &stderr)));
    Ok(Judged { facts, failed })
}

fn expectations(
    check: &Check,
    workspace: &Path,
    nonce: &str,
    fresh: Freshness,
    facts: &Facts,
    stdout: &str,
    stderr: &str,
) -> Result<(), Unmet> {
    let e = &check.expect;
    let regex = |re: &str| regex::Regex::new(re).map_err(|x| Unmet(x.to_string()));
    for re in &e.stdout {
        if !regex(re)?.is_match(stdout) {
            return Err(Unmet(format!("the output does not match /{re}/")));
        }
    }
    for re in &e.stdout_not {
        if regex(re)?.is_match(stdout) {
            return Err(Unmet(format!("the output should not match /{re}/")));
        }
    }
    for re in &e.stderr {
        if !regex(re)?.is_match(stderr) {
            return Err(Unmet(format!("the error output does not match /{re}/")));
        }
    }
    for file in &e.files {
        if !workspace.join(file).exists() {
            return Err(Unmet(format!("expected the file {file} to exist afterwards")));
        }
    }
    if e.nonce {
        match fresh {
            Freshness::Fresh => {}
            Freshness::Stale => return Err(Unmet("the results carry an old nonce: they were not measured in this run; write `nonce=$VLAB_NONCE` to $VLAB_RESULTS".into())),
            Freshness::Missing => return Err(Unmet("no `nonce=...` line in $VLAB_RESULTS; write `nonce=$VLAB_NONCE` there with your results".into())),
        }
    }
    let ws = workspace.to_string_lossy();
    let vars = Vars { nonce, workspace: &ws };
    for rule in &e.facts {
        facts::judge(rule, facts, &vars).map_err(|seen| Unmet(format!("{} ({seen})", rule.message)))?;
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

    /// A check kind that is only a plug-in: it runs the command and reports what it printed.
    struct Echo;

    impl Observer for Echo {
        fn kind(&self) -> Option<&'static str> {
            Some("echo")
        }

        fn arm(&self, _ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
            Ok(Some(Box::new(EchoWatch)))
        }
    }

    struct EchoWatch;

    impl Watch for EchoWatch {
        fn run(&mut self, cmd: &Cmd, _ctx: &Ctx) -> Result<Ran, CheckError> {
            let out = cmd.run()?;
            Ok(Ran::new(Facts::from([("echo.said".into(), out.stdout.trim().into())]), out.stdout, out.stderr))
        }
    }

    /// Something that watches around every check: hands the command a value, then reports it.
    struct Tag;

    impl Observer for Tag {
        fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
            Ok(Some(Box::new(TagWatch(ctx.nonce.chars().rev().collect()))))
        }
    }

    struct TagWatch(String);

    impl Watch for TagWatch {
        fn env(&self) -> Vec<(String, OsString)> {
            vec![("TAG".into(), self.0.clone().into())]
        }

        fn finish(&mut self) -> Result<Facts, CheckError> {
            Ok(Facts::from([("tag".into(), self.0.clone())]))
        }
    }

    fn check(toml: &str) -> Check {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn a_kind_is_a_plug_in_the_registry_names() {
        let ws = tempfile::tempdir().unwrap();
        let registry = Registry::new(vec![Box::new(Echo), Box::new(Tag)]);
        let said = |fact: &str, want: &str| {
            check(&format!(
                "kind = \"echo\"\ncommand = [\"sh\", \"-c\", \"echo $TAG\"]\n\
                 expect.facts = [{{ fact = \"{fact}\", equals = \"{want}\", message = \"m\" }}]"
            ))
        };
        let r = run_check(&said("echo.said", "hello"), ws.path(), &registry);
        assert_eq!(r.outcome, Outcome::Fail, "{}", r.message);
        let tag = r.evidence["tag"].clone();
        assert_eq!(r.evidence["echo.said"], tag, "the command got the watch's environment");
        assert!(r.message.starts_with(&format!("m (`echo.said` is {tag:?}, expected \"hello\")")), "{}", r.message);
        let r = run_check(&check("kind = \"echo\"\ncommand = [\"true\"]"), ws.path(), &registry);
        assert_eq!(r.outcome, Outcome::Pass, "{}", r.message);
    }

    #[test]
    fn a_kind_no_observer_runs_is_an_error_naming_the_known_ones() {
        let ws = tempfile::tempdir().unwrap();
        let registry = Registry::new(vec![Box::new(Echo), Box::new(Tag)]);
        let r = run_check(&check("kind = \"exe\"\ncommand = [\"true\"]"), ws.path(), &registry);
        assert_eq!(r.outcome, Outcome::Error);
        assert!(r.message.contains("\"exe\"") && r.message.contains("echo"), "{}", r.message);
    }
}
