//! Every lab under labs/: its starter fails each step, its solution passes
//! each step, and a "faker" that only prints the expected output fails.
//! Steps this machine cannot run are skipped, with the reason printed.
//!
//! Each test goes through every lab even after a wrong step, so one run (on
//! a new distribution, say) names every broken lab, not just the first. It
//! prints `skipped LAB/STEP: reason` and `FAILED [KIND] LAB/STEP: why` as it goes and
//! one summary line at the end; `.ci/distro` collects these lines.

mod common;

use std::panic::{AssertUnwindSafe, catch_unwind};

use common::*;

/// VLAB_TEST_LABS=11-pv-drivers,09-software-emulation runs only those labs (all when unset).
fn selected(lab: &str) -> bool {
    std::env::var("VLAB_TEST_LABS").map_or(true, |list| list.split(',').any(|l| l.trim() == lab))
}

fn lab_ids() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(labs())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("lab.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|id| selected(id))
        .collect();
    ids.sort();
    assert!(!ids.is_empty(), "no labs found (or none named in VLAB_TEST_LABS)");
    ids
}

fn steps_of(ws: &std::path::Path, lab: &str) -> Vec<String> {
    let (_, list) = json(ws, &["list"]);
    let lab = list.as_array().unwrap().iter().find(|l| l["id"] == lab).unwrap().clone();
    lab["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

/// Checks each step alone; returns (step, outcome, message).
fn check_each_step(ws: &std::path::Path, lab: &str) -> Vec<(String, String, String)> {
    steps_of(ws, lab)
        .iter()
        .map(|step| {
            let (_, report) = json(ws, &["check", lab, "--step", step]);
            outcomes(&report).pop().unwrap()
        })
        .collect()
}

/// What one test saw across all labs.
struct Tally {
    test: &'static str,
    /// starter, solution or faker: tags the FAILED lines, as the tests run in parallel.
    kind: &'static str,
    checked: usize,
    skipped: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(test: &'static str, kind: &'static str) -> Self {
        Tally { test, kind, checked: 0, skipped: 0, failures: Vec::new() }
    }

    /// Records a failure as one line (vlab's messages and assert_cmd's
    /// panics span many), so that the summary can list them.
    fn fail(&mut self, what: String) {
        let mut line = what.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some((cut, _)) = line.char_indices().nth(600) {
            line.truncate(cut);
            line.push('…');
        }
        eprintln!("FAILED [{}] {line}", self.kind);
        self.failures.push(line);
    }

    /// Runs one lab's part; a panic in it (vlab printed no JSON, `start`
    /// failed) is a failure of that lab, and the next lab still runs.
    fn lab(&mut self, lab: &str, body: impl FnOnce(&mut Tally)) {
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| body(self))) {
            let why = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("panicked");
            self.fail(format!("{lab}: {why}"));
        }
    }

    /// Records one step: skipped (with the reason printed), as `want`ed, or a failure.
    fn step(&mut self, lab: &str, (step, outcome, message): (String, String, String), want: &str, rule: &str) {
        if outcome == "skipped" {
            eprintln!("skipped {lab}/{step}: {message}");
            self.skipped += 1;
            return;
        }
        self.checked += 1;
        if outcome != want {
            self.fail(format!("{lab}/{step}: {rule}; got {outcome}: {message}"));
        } else if outcome == "fail" && message.is_empty() {
            self.fail(format!("{lab}/{step}: a failure must say why"));
        }
    }

    /// Prints the summary line and fails the test if any step was wrong.
    fn finish(self) {
        eprintln!(
            "summary {}: {} steps checked, {} skipped, {} failed",
            self.test,
            self.checked,
            self.skipped,
            self.failures.len()
        );
        assert!(self.checked > 0, "{}: no step was run", self.test);
        assert!(self.failures.is_empty(), "{} wrong:\n{}", self.test, self.failures.join("\n"));
    }
}

#[test]
fn every_starter_fails_every_step() {
    let mut tally = Tally::new("every_starter_fails_every_step", "starter");
    for lab in lab_ids() {
        tally.lab(&lab, |tally| {
            let ws = workspace();
            vlab(ws.path()).args(["start", &lab]).assert().success();
            for step in check_each_step(ws.path(), &lab) {
                tally.step(&lab, step, "fail", "the starter must fail");
            }
        });
    }
    tally.finish();
}

#[test]
fn every_solution_passes_every_step() {
    let mut tally = Tally::new("every_solution_passes_every_step", "solution");
    for lab in lab_ids() {
        tally.lab(&lab, |tally| {
            let ws = workspace();
            vlab(ws.path()).args(["start", &lab]).assert().success();
            overlay(&labs().join(&lab).join("solution"), &ws.path().join(&lab));
            for step in check_each_step(ws.path(), &lab) {
                tally.step(&lab, step, "pass", "the solution must pass");
            }
        });
    }
    tally.finish();
}

/// tests/fakes/<lab>/ holds fakes: files that print plausible expected
/// output, or cheat, without doing the work. Its plain files are one fake,
/// and every runnable step must fail with them. Each directory `<fake>/` is
/// another (its files are copied over the started lab), judged by
/// `<fake>.expect` beside it, whose lines `step: text` name the steps it must
/// fail and a part of the message each must fail with: what the runner saw.
/// A fake directory without `.expect` belongs to a test of its own
/// (tests/fakes_engine.rs).
#[test]
fn fakers_that_print_the_expected_text_fail() {
    let mut tally = Tally::new("fakers_that_print_the_expected_text_fail", "faker");
    let fakes = repo().join("tests").join("fakes");
    let mut entries: Vec<_> = std::fs::read_dir(&fakes).unwrap().map(|e| e.unwrap()).collect();
    entries.sort_by_key(|e| e.file_name());
    entries.retain(|e| selected(&e.file_name().to_string_lossy()));
    for entry in entries {
        let lab = entry.file_name().to_string_lossy().into_owned();
        tally.lab(&lab, |tally| {
            let mut sets: Vec<std::path::PathBuf> =
                std::fs::read_dir(entry.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
            sets.sort();
            // Plain files beside the fake directories are one fake of their own.
            let plain: Vec<std::path::PathBuf> = std::fs::read_dir(entry.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.is_file() && p.extension().is_none_or(|x| x != "expect"))
                .collect();
            if !plain.is_empty() {
                let ws = workspace();
                vlab(ws.path()).args(["start", &lab]).assert().success();
                for f in &plain {
                    std::fs::copy(f, ws.path().join(&lab).join(f.file_name().unwrap())).unwrap();
                }
                for step in check_each_step(ws.path(), &lab) {
                    tally.step(&lab, step, "fail", "a faker must fail");
                }
            }
            for set in sets {
                let fake = set.file_name().unwrap().to_string_lossy().into_owned();
                // A fake without `.expect` is judged by a test of its own (tests/fakes_engine.rs).
                let Ok(expect) = std::fs::read_to_string(set.with_extension("expect")) else { continue };
                let ws = workspace();
                vlab(ws.path()).args(["start", &lab]).assert().success();
                overlay(&set, &ws.path().join(&lab));
                for line in expect.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                    let (step, seen) = line.split_once(':').unwrap_or_else(|| panic!("{lab}/{fake}.expect: {line:?}"));
                    let (_, report) = json(ws.path(), &["check", &lab, "--step", step.trim()]);
                    let (step, outcome, message) = outcomes(&report).pop().unwrap();
                    if outcome == "fail" && !message.contains(seen.trim()) {
                        tally.fail(format!("{lab}/{fake}/{step}: expected {:?} in: {message}", seen.trim()));
                    }
                    tally.step(&format!("{lab}/{fake}"), (step, outcome, message), "fail", "a faker must fail");
                }
            }
        });
    }
    tally.finish();
}
