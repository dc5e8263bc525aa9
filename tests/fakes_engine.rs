//! Fakes that attack the engine rather than the output: numbers typed in
//! after a cheap burn, writes never flushed, a limit changed once the
//! counters moved, a decoy named like the real program, a daemon that tries
//! to outlive its check. Each fails, with a message that says what the
//! runner saw, and leaves nothing running.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

fn fake(lab: &str, name: &str) -> PathBuf {
    repo().join("tests").join("fakes").join(lab).join(name)
}

/// Starts `lab` in a fresh workspace and overlays the fake `name` on it.
fn started_with_fake(lab: &str, name: &str) -> tempfile::TempDir {
    let ws = workspace();
    vlab(ws.path()).args(["start", lab]).assert().success();
    overlay(&fake(lab, name), &ws.path().join(lab));
    ws
}

/// Checks one step; (outcome, message, the evidence of its checks).
fn check_step(ws: &Path, lab: &str, step: &str) -> (String, String, serde_json::Value) {
    let (_, report) = json(ws, &["check", lab, "--step", step]);
    let s = &report["steps"][0];
    let evidence =
        s["checks"].as_array().map(|c| c.iter().map(|c| c["evidence"].clone()).collect()).unwrap_or_default();
    (s["outcome"].as_str().unwrap().to_string(), s["message"].as_str().unwrap().to_string(), evidence)
}

/// The step fails (or was skipped here, said aloud) and its message holds every one of `saw`.
fn assert_fails_saying(ws: &Path, lab: &str, step: &str, saw: &[&str]) {
    let (outcome, message, evidence) = check_step(ws, lab, step);
    if outcome == "skipped" {
        skip_here(format_args!("{lab}/{step}: {message}"));
        return;
    }
    assert_eq!(outcome, "fail", "{lab}/{step}: the fake must fail; got {outcome}: {message}\nevidence: {evidence}");
    for s in saw {
        assert!(message.contains(s), "{lab}/{step}: the message does not say {s:?}: {message}\nevidence: {evidence}");
    }
}

#[test]
fn lab01_hard_coded_numbers_after_a_cheap_burn_fail() {
    let ws = started_with_fake("01-bare-metal", "hardcoded-numbers");
    assert_fails_saying(ws.path(), "01-bare-metal", "cpu", &["`cpu.runnable_ms` = ", "`result.cpu_us` = 2000000"]);
    assert_fails_saying(
        ws.path(),
        "01-bare-metal",
        "syscall",
        &["`cpu.runnable_ms` = ", "`result.syscall_us` = 1500000"],
    );
    assert_fails_saying(ws.path(), "01-bare-metal", "io", &["`io.write_bytes` = ", "`result.io_bytes` = 33554432"]);
}

#[test]
fn lab01_writes_never_flushed_to_disk_fail() {
    let ws = started_with_fake("01-bare-metal", "no-fsync");
    assert_fails_saying(ws.path(), "01-bare-metal", "io", &["sent fewer bytes to the disk", "`io.write_bytes` = "]);
}

#[test]
fn lab04_limits_changed_after_the_counters_moved_fail() {
    let ws = started_with_fake("04-cgroups", "limit-changed");
    let lab = "04-cgroups";
    let late = "was written after a process joined the group";
    assert_fails_saying(ws.path(), lab, "memory", &["`cgroup.mem.limit_changes` is", late]);
    assert_fails_saying(ws.path(), lab, "cpu", &["`cgroup.cpu.limit_changes` is", late]);
    assert_fails_saying(
        ws.path(),
        lab,
        "pids",
        &["`cgroup.pids.limit_changes` is", "pids.max was written after a process joined"],
    );
}

#[test]
fn lab06_a_decoy_named_linux_is_not_a_uml_kernel() {
    let ws = started_with_fake("06-density", "decoy-linux");
    assert_fails_saying(ws.path(), "06-density", "uml", &["`cgroup.uml-1.programs` is", "sleep"]);
}

/// A daemon that setsids, scrubs VLAB_RUNNER_PID and double-forks is dead
/// (and reaped: not even a zombie) when `vlab check` returns, and stops writing.
#[test]
fn a_daemon_that_scrubs_its_mark_and_double_forks_dies_with_the_check() {
    let lab = "01-bare-metal";
    let ws = started_with_fake(lab, "setsid-daemon");
    let dir = ws.path().join(lab);
    let (outcome, message, _) = check_step(ws.path(), lab, "cpu");
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("exited with status 3"), "{message}");
    let pid: i32 = std::fs::read_to_string(dir.join("daemon.pid")).unwrap().trim().parse().unwrap();
    let state = vlab::proc::info(pid).map(|p| p.state);
    let size = || std::fs::metadata(dir.join("daemon.beat")).map(|m| m.len()).unwrap_or(0);
    let before = size();
    std::thread::sleep(Duration::from_millis(300));
    if state.is_some() {
        // SAFETY: a plain signal send to the escaped daemon this test made, so it does not outlive the test.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    assert_eq!(state, None, "the daemon {pid} outlived the check (state {state:?})");
    assert_eq!(size(), before, "something still writes daemon.beat after the check");
}
