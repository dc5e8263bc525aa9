//! The student commands and their error paths, through the real binary.

mod common;

use common::*;
use predicates::prelude::*;

#[test]
fn help_names_every_command() {
    let ws = workspace();
    let out = vlab(ws.path()).arg("--help").assert().success().get_output().stdout.clone();
    let help = String::from_utf8(out).unwrap();
    for cmd in ["list", "start", "check", "watch", "hint", "status", "reset", "doctor", "setup"] {
        assert!(help.contains(cmd), "--help does not mention {cmd}:\n{help}");
    }
}

#[test]
fn list_shows_labs_as_text_and_json() {
    let ws = workspace();
    vlab(ws.path()).arg("list").assert().success().stdout(predicate::str::contains("01-bare-metal"));
    let (code, list) = json(ws.path(), &["list"]);
    assert_eq!(code, 0);
    let first = &list[0];
    assert_eq!(first["id"], "01-bare-metal");
    assert_eq!(first["started"], false);
    assert!(first["steps"].as_array().unwrap().len() >= 3);
}

#[test]
fn start_copies_the_starter_once() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "bare-metal"]).assert().success().stdout(predicate::str::contains("measure.sh"));
    let script = ws.path().join("01-bare-metal/measure.sh");
    assert_eq!(
        std::fs::read(&script).unwrap(),
        std::fs::read(labs().join("01-bare-metal/starter/measure.sh")).unwrap()
    );
    vlab(ws.path())
        .args(["start", "1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("already started").and(predicate::str::contains("vlab reset")));
}

#[test]
fn unknown_lab_lists_the_real_ones() {
    let ws = workspace();
    vlab(ws.path())
        .args(["start", "no-such-lab"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no lab named `no-such-lab`").and(predicate::str::contains("01-bare-metal")));
}

#[test]
fn check_before_start_says_to_start() {
    let ws = workspace();
    vlab(ws.path())
        .args(["check", "01-bare-metal"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("vlab start 01-bare-metal"));
    vlab(ws.path()).arg("check").assert().code(2).stderr(predicate::str::contains("no lab is started"));
}

#[test]
fn check_starter_fails_with_messages_then_solution_passes() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "01-bare-metal"]).assert().success();
    vlab(ws.path()).args(["check", "01-bare-metal"]).assert().code(1).stdout(
        predicate::str::contains("✗ cpu")
            .and(predicate::str::contains("cpu is not written yet"))
            .and(predicate::str::contains("total 0/8")),
    );
    overlay(&labs().join("01-bare-metal/solution"), &ws.path().join("01-bare-metal"));
    // Without a lab name: the only started lab is checked.
    vlab(ws.path()).arg("check").assert().success().stdout(predicate::str::contains("total 8/8"));
    let (_, status) = json(ws.path(), &["status"]);
    let lab = &status["labs"]["01-bare-metal"];
    assert_eq!(lab["steps"]["io"]["outcome"], "pass");
    let syscalls: f64 = lab["measurements"]["syscall.result.syscall_count"].as_str().unwrap().parse().unwrap();
    assert!(syscalls >= 100000.0);
    vlab(ws.path()).arg("status").assert().success().stdout(predicate::str::contains("8/8"));
}

#[test]
fn check_json_carries_evidence_and_an_unknown_step_is_an_error() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "01-bare-metal"]).assert().success();
    overlay(&labs().join("01-bare-metal/solution"), &ws.path().join("01-bare-metal"));
    let (code, report) = json(ws.path(), &["check", "01-bare-metal", "--step", "cpu"]);
    assert_eq!(code, 0);
    let evidence = &report["steps"][0]["checks"][0]["evidence"];
    assert_eq!(evidence["nonce"], "fresh");
    assert!(evidence["cpu.user_ms"].as_str().unwrap().parse::<f64>().unwrap() > 0.0);
    vlab(ws.path())
        .args(["check", "01-bare-metal", "--step", "nope"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no step `nope`").and(predicate::str::contains("cpu, syscall, io")));
}

#[test]
fn hints_climb_a_ladder() {
    let ws = workspace();
    let (_, first) = json(ws.path(), &["hint", "01-bare-metal", "syscall"]);
    assert_eq!(first["shown"].as_array().unwrap().len(), 1);
    let (_, second) = json(ws.path(), &["hint", "01-bare-metal", "syscall"]);
    assert_eq!(second["shown"].as_array().unwrap().len(), 2);
    vlab(ws.path()).args(["hint", "01-bare-metal"]).assert().success().stdout(predicate::str::contains("step cpu"));
}

#[test]
fn reset_keeps_the_old_work() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "01-bare-metal"]).assert().success();
    let script = ws.path().join("01-bare-metal/measure.sh");
    std::fs::write(&script, "my work\n").unwrap();
    let (code, out) = json(ws.path(), &["reset", "01-bare-metal"]);
    assert_eq!(code, 0);
    let backup = std::path::PathBuf::from(out["backup"].as_str().unwrap());
    assert_eq!(std::fs::read_to_string(backup.join("measure.sh")).unwrap(), "my work\n");
    assert_ne!(std::fs::read_to_string(&script).unwrap(), "my work\n");
}

#[test]
fn doctor_reports_measured_kvm_speed() {
    let ws = workspace();
    let (code, caps) = json(ws.path(), &["doctor"]);
    assert_eq!(code, 0);
    let kvm = &caps["kvm"];
    assert_eq!(kvm["present"], std::path::Path::new("/dev/kvm").exists());
    if kvm["openable"] == true {
        let rate = kvm["rate"].as_f64().expect("a usable /dev/kvm is timed");
        assert_eq!(kvm["fast"], rate >= 100e6, "fast must follow the measured rate {rate}");
    }
    if std::path::Path::new("/sys/module/kvm_pvm").exists() {
        // This project's machines: PVM must be called slow for unmodified guests, and say why.
        assert_eq!(kvm["fast"], false);
        assert!(
            kvm["reason"].as_str().unwrap().contains("must emulate an unmodified guest's real-mode and ring-0 code")
        );
    }
    for tool in ["qemu-system", "runc", "busybox", "uml"] {
        assert!(caps["tools"][tool]["present"].is_boolean(), "{tool} missing from doctor");
    }
    vlab(ws.path()).arg("doctor").assert().success().stdout(predicate::str::contains("/dev/kvm"));
}

/// Doctor says how children are contained, and says so plainly when they cannot be.
#[test]
fn doctor_says_how_children_are_contained() {
    let ws = workspace();
    let (_, caps) = json(ws.path(), &["doctor"]);
    let reason = caps["cgroup"]["reason"].as_str().unwrap();
    let contained = reason.contains("each child in its own");
    assert!(contained || reason.contains("no cgroup for children"), "{reason}");
    let v2 = ["/sys/fs/cgroup/cgroup.procs", "/sys/fs/cgroup/unified/cgroup.procs"];
    // SAFETY: geteuid cannot fail and touches no memory.
    if unsafe { libc::geteuid() } == 0 && v2.iter().any(|p| std::path::Path::new(p).exists()) {
        assert!(contained, "root on a host with cgroup v2 (or hybrid) must contain children: {reason}");
    }
}

#[test]
fn setup_dry_run_names_the_apt_command_or_nothing() {
    let ws = workspace();
    let (code, out) = json(ws.path(), &["setup", "--dry-run"]);
    assert_eq!(code, 0);
    let (_, caps) = json(ws.path(), &["doctor"]);
    let missing: Vec<&str> = caps["tools"]
        .as_object()
        .unwrap()
        .values()
        .filter(|t| t["present"] == false)
        .map(|t| t["package"].as_str().unwrap())
        .collect();
    match out["command"].as_str() {
        None => assert!(missing.is_empty()),
        Some(cmd) => {
            assert!(cmd.starts_with("apt-get install"));
            assert!(missing.iter().all(|p| cmd.contains(p)));
        }
    }
}

#[test]
fn no_color_means_no_escape_codes() {
    let ws = workspace();
    let out = vlab(ws.path()).arg("doctor").assert().success().get_output().stdout.clone();
    assert!(!out.contains(&0x1b));
}

const BROKEN: &str = r#"id = "01-broken"
title = "Broken"
tier = "bare-metal"
chapter = "bare-metal.md"
summary = "s"
estimate_minutes = 1

[[steps]]
id = "a"
title = "A"
points = 1
instructions = "do it"
hints = ["h"]
files = []

[[steps.checks]]
kind = "exe"
command = ["true"]
"#;

#[test]
fn a_broken_lab_toml_names_file_line_and_choices() {
    let labs = fixture_labs("01-broken", BROKEN, &[], &[]);
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).arg("list").assert().code(2).stderr(
        predicate::str::contains("01-broken/lab.toml:17")
            .and(predicate::str::contains("`exe`"))
            .and(predicate::str::contains("`run`, `observe`")),
    );
}

fn single_check_lab(id: &str, check: &str, requires: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"T\"\ntier = \"bare-metal\"\nchapter = \"bare-metal.md\"\nsummary = \"s\"\nrequires = [{requires}]\nestimate_minutes = 1\n\n\
         [[steps]]\nid = \"only\"\ntitle = \"Only\"\npoints = 1\ninstructions = \"x\"\nhints = [\"h\"]\nfiles = []\n\n[[steps.checks]]\n{check}\n"
    )
}

#[test]
fn a_missing_tool_is_an_error_that_says_what_to_do() {
    let labs = fixture_labs(
        "01-tool",
        &single_check_lab("01-tool", "kind = \"run\"\ncommand = [\"vlab-no-such-tool\"]", ""),
        &[],
        &[],
    );
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-tool"]).assert().success();
    let out = vlab_with_labs(ws.path(), labs.path())
        .args(["--json", "check", "01-tool"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let report: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "error");
    assert!(message.contains("vlab-no-such-tool") && message.contains("vlab setup"), "{message}");
}

/// A lab with a runnable step (`here`, 2 points, running `here_cmd`) and one
/// that needs `lacking` (`elsewhere`, 3 points).
fn lab_with_a_step_needing(lacking: &str, here_cmd: &str) -> String {
    format!(
        "id = \"01-cap\"\ntitle = \"T\"\ntier = \"bare-metal\"\nchapter = \"bare-metal.md\"\nsummary = \"s\"\nestimate_minutes = 1\n\n\
         [[steps]]\nid = \"here\"\ntitle = \"Here\"\npoints = 2\ninstructions = \"x\"\nhints = [\"h\"]\nfiles = []\n\n\
         [[steps.checks]]\nkind = \"run\"\ncommand = [\"{here_cmd}\"]\n[steps.checks.expect]\nexit = 0\n\n\
         [[steps]]\nid = \"elsewhere\"\ntitle = \"Elsewhere\"\npoints = 3\ninstructions = \"x\"\nhints = [\"h\"]\nfiles = []\nrequires = [{lacking}]\n\n\
         [[steps.checks]]\nkind = \"run\"\ncommand = [\"true\"]\n"
    )
}

#[test]
fn a_step_this_machine_cannot_run_is_skipped_never_passed() {
    // Require something this machine lacks: kvm-fast where KVM is slow or
    // absent, else root for a non-root user.
    let ws = workspace();
    let (_, caps) = json(ws.path(), &["doctor"]);
    let (lacking, need) = if caps["kvm"]["fast"] == false {
        ("\"kvm-fast\"", "fast KVM")
    } else if caps["root"] == false {
        ("\"root\"", "root")
    } else {
        skip_here("this machine has every capability; nothing to skip");
        return;
    };
    // Every runnable step passes: the total says what the rest needs, and that is success.
    let labs = fixture_labs("01-cap", &lab_with_a_step_needing(lacking, "true"), &[], &[]);
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-cap"]).assert().success();
    vlab_with_labs(ws.path(), labs.path())
        .args(["check", "01-cap"])
        .assert()
        .code(0)
        .stdout(predicate::str::contains("not runnable on this machine"))
        .stdout(predicate::str::contains(format!("total 2/5 — all 2 points runnable here pass; 3 more need {need}")));
    let out = vlab_with_labs(ws.path(), labs.path()).args(["--json", "check", "01-cap"]).assert().code(0);
    let report: serde_json::Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["verdict"], "pass-runnable");
    assert_eq!(report["skipped_points"], 3);
    assert_eq!(report["points"], 2);
    let steps = outcomes(&report);
    assert_eq!((steps[0].1.as_str(), steps[1].1.as_str()), ("pass", "skipped"), "{steps:?}");
    assert_eq!(report["steps"][1]["needs"][0], need);

    // A runnable step that fails is work left to do, whatever else was skipped.
    let ws = workspace();
    let labs = fixture_labs("01-cap", &lab_with_a_step_needing(lacking, "false"), &[], &[]);
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-cap"]).assert().success();
    vlab_with_labs(ws.path(), labs.path())
        .args(["check", "01-cap"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("total 0/5 — not done yet"));
}

#[test]
fn watch_rechecks_after_a_save() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "01-bare-metal"]).assert().success();
    let script = ws.path().join("01-bare-metal/measure.sh");
    let solution = labs().join("01-bare-metal/solution/measure.sh");
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vlab"))
        .args(["watch", "01-bare-metal", "--step", "cpu", "--max-runs", "2"])
        .env("VLAB_WORKSPACE", ws.path())
        .env("VLAB_LABS", labs())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first run, then save the solution over the starter.
    let state = ws.path().join(".vlab/state.json");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !state.exists() {
        assert!(std::time::Instant::now() < deadline, "watch never ran the first check");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(400));
    std::fs::copy(&solution, &script).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("01-bare-metal Bare-metal baseline").count(), 2, "{text}");
    assert!(text.contains("✗ cpu") && text.contains("✓ cpu"), "{text}");
    assert!(out.status.success());
}

#[test]
fn list_aligns_its_columns_whatever_the_title_length() {
    let ws = workspace();
    let out = vlab(ws.path()).arg("list").assert().success().get_output().stdout.clone();
    let text = String::from_utf8(out).unwrap();
    let rows: Vec<&str> = text.lines().take_while(|l| !l.is_empty()).collect();
    assert!(rows.len() > 5, "{text}");
    // Each lab's estimate ("~N min") starts in the same column, however long the title before it.
    let column = |row: &str| row.chars().collect::<String>().find(" ~").map(|b| row[..b].chars().count());
    let first = column(rows[0]).unwrap();
    assert!(rows.iter().all(|r| column(r) == Some(first)), "{text}");
}

#[test]
fn a_relative_workspace_still_works_after_the_script_cds() {
    let lab = single_check_lab(
        "01-cd",
        "kind = \"run\"\ncommand = [\"sh\", \"-c\", \"cd / && test -d \\\"$VLAB_WORKSPACE\\\" && test -d \\\"$VLAB_SCRATCH\\\"\"]\n[steps.checks.expect]\nexit = 0",
        "",
    );
    let labs = fixture_labs("01-cd", &lab, &[], &[]);
    let parent = workspace();
    let run = |args: &[&str]| {
        let mut cmd = assert_cmd::Command::cargo_bin("vlab").unwrap();
        cmd.current_dir(parent.path()).env("VLAB_LABS", labs.path()).env("NO_COLOR", "1").env_remove("VLAB_WORKSPACE");
        cmd.args(["--workspace", "ws"]).args(args).assert()
    };
    run(&["start", "01-cd"]).success();
    run(&["check", "01-cd"]).code(0).stdout(predicate::str::contains("all steps pass"));
}
