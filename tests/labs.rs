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

/// tests/fakes/<lab>/ holds fakes: files that print plausible expected
/// output, or cheat, without doing the work. Either it holds one fake's
/// files, and every runnable step must fail with them; or one directory per
/// fake, `<fake>/` (its files are copied over the started lab) beside
/// `<fake>.expect`, whose lines `step: text` name the steps it must fail and
/// a part of the message each must fail with: what the runner saw.
#[test]
fn fakers_that_print_the_expected_text_fail() {
    let fakes = repo().join("tests").join("fakes");
    let mut tried = 0;
    for entry in std::fs::read_dir(&fakes).unwrap() {
        let entry = entry.unwrap();
        let lab = entry.file_name().to_string_lossy().into_owned();
        let mut sets: Vec<std::path::PathBuf> =
            std::fs::read_dir(entry.path()).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
        sets.sort();
        if sets.is_empty() {
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
            continue;
        }
        for set in sets {
            let fake = set.file_name().unwrap().to_string_lossy().into_owned();
            let expect = std::fs::read_to_string(set.with_extension("expect"))
                .unwrap_or_else(|e| panic!("{lab}/{fake}: no {fake}.expect beside it ({e})"));
            let ws = workspace();
            vlab(ws.path()).args(["start", &lab]).assert().success();
            overlay(&set, &ws.path().join(&lab));
            for line in expect.lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
                let (step, seen) = line.split_once(':').unwrap_or_else(|| panic!("{lab}/{fake}.expect: {line:?}"));
                let (_, report) = json(ws.path(), &["check", &lab, "--step", step.trim()]);
                let (_, outcome, message) = outcomes(&report).pop().unwrap();
                if outcome == "skipped" {
                    eprintln!("skipped {lab}/{fake}/{step}: {message}");
                    continue;
                }
                assert_eq!(outcome, "fail", "{lab}/{fake}/{step}: a faker must fail; got {outcome}: {message}");
                assert!(message.contains(seen.trim()), "{lab}/{fake}/{step}: expected {:?} in: {message}", seen.trim());
                tried += 1;
            }
        }
    }
    assert!(tried > 0, "no faker step was run");
}
