//! Every lab under labs/: its starter fails each step, its solution passes
//! each step, and a "faker" that only prints the expected output fails.
//! Steps this machine cannot run are skipped, with the reason printed.

mod common;

use common::*;

fn lab_ids() -> Vec<String> {
    let mut ids: Vec<String> = std::fs::read_dir(labs())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("lab.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    ids.sort();
    assert!(!ids.is_empty(), "no labs found");
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

#[test]
fn every_starter_fails_every_step() {
    for lab in lab_ids() {
        let ws = workspace();
        vlab(ws.path()).args(["start", &lab]).assert().success();
        for (step, outcome, message) in check_each_step(ws.path(), &lab) {
            if outcome == "skipped" {
                eprintln!("skipped {lab}/{step}: {message}");
                continue;
            }
            assert_eq!(outcome, "fail", "{lab}/{step}: the starter must fail; got {outcome}: {message}");
            assert!(!message.is_empty(), "{lab}/{step}: a failure must say why");
        }
    }
}

#[test]
fn every_solution_passes_every_step() {
    for lab in lab_ids() {
        let ws = workspace();
        vlab(ws.path()).args(["start", &lab]).assert().success();
        overlay(&labs().join(&lab).join("solution"), &ws.path().join(&lab));
        for (step, outcome, message) in check_each_step(ws.path(), &lab) {
            if outcome == "skipped" {
                eprintln!("skipped {lab}/{step}: {message}");
                continue;
            }
            assert_eq!(outcome, "pass", "{lab}/{step}: the solution must pass; got {outcome}: {message}");
        }
    }
}

/// tests/fakes/<lab>/ holds files that print plausible expected output
/// without doing the work. Every runnable step must fail with them.
#[test]
fn fakers_that_print_the_expected_text_fail() {
    let fakes = repo().join("tests").join("fakes");
    let mut tried = 0;
    for entry in std::fs::read_dir(&fakes).unwrap() {
        let entry = entry.unwrap();
        let lab = entry.file_name().to_string_lossy().into_owned();
        let ws = workspace();
        vlab(ws.path()).args(["start", &lab]).assert().success();
        overlay(&entry.path(), &ws.path().join(&lab));
        for (step, outcome, message) in check_each_step(ws.path(), &lab) {
            if outcome == "skipped" {
                eprintln!("skipped {lab}/{step}: {message}");
                continue;
            }
            assert_eq!(outcome, "fail", "{lab}/{step}: a faker must fail; got {outcome}: {message}");
            tried += 1;
        }
    }
    assert!(tried > 0, "no faker step was run");
}
