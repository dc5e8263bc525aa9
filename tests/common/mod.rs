//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// True where every precondition a test needs must hold: `CI` is set, and
/// this project's CI machines have root, writable cgroups, /dev/kvm, QEMU,
/// the guest and Xen assets (`vlab setup`), busybox, mdbook and chromium.
fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

fn test_name() -> String {
    std::thread::current().name().unwrap_or("?").to_string()
}

/// Skips the calling test visibly for want of something CI has (see [`ci`]):
/// prints `SKIPPED <test>: <reason>`, and under CI fails the test instead, so
/// CI cannot pass by skipping. The caller returns after it.
pub fn skip(reason: impl std::fmt::Display) {
    let test = test_name();
    if ci() {
        panic!("{test} must run in CI (CI is set) but cannot here: {reason}");
    }
    eprintln!("SKIPPED {test}: {reason}");
}

/// Skips the calling test visibly for a reason even a CI machine may have (the
/// host kernel panics UML, vlab itself reports the step skipped, a QEMU version
/// or a configured kernel that makes the test moot): prints
/// `SKIPPED <test>: <reason>` and never fails. The caller returns after it.
pub fn skip_here(reason: impl std::fmt::Display) {
    eprintln!("SKIPPED {}: {reason}", test_name());
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn labs() -> PathBuf {
    repo().join("labs")
}

/// A workspace on the same disk as target/ (not tmpfs: the I/O checks count
/// block writes), removed when dropped.
pub fn workspace() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new().prefix("ws-").tempdir_in(base).unwrap()
}

/// `vlab` with the repo's labs, the given workspace, no colour.
pub fn vlab(ws: &Path) -> Command {
    vlab_with_labs(ws, &labs())
}

pub fn vlab_with_labs(ws: &Path, labs: &Path) -> Command {
    let mut cmd = Command::cargo_bin("vlab").unwrap();
    cmd.env("VLAB_WORKSPACE", ws).env("VLAB_LABS", labs).env("NO_COLOR", "1").env_remove("VLAB_NONCE");
    cmd.timeout(std::time::Duration::from_secs(600));
    cmd
}

/// Runs `vlab --json ARGS` and parses stdout.
pub fn json(ws: &Path, args: &[&str]) -> (i32, serde_json::Value) {
    let out = vlab(ws).arg("--json").args(args).output().unwrap();
    let code = out.status.code().unwrap_or(-1);
    let value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "vlab {args:?} did not print JSON ({e}); stdout: {}; stderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, value)
}

/// Copies every file of `from` over `to`.
pub fn overlay(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            overlay(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A one-lab labs/ directory built from a lab.toml body; starter and solution
/// hold the given files.
pub fn fixture_labs(
    id: &str,
    lab_toml: &str,
    starter: &[(&str, &str)],
    solution: &[(&str, &str)],
) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::write(root.path().join("README.md"), "# fixture labs\n").unwrap();
    let dir = root.path().join(id);
    for (sub, files) in [("starter", starter), ("solution", solution)] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(sub).join(name), text).unwrap();
        }
    }
    std::fs::write(dir.join("README.md"), "# Fixture\n").unwrap();
    std::fs::write(dir.join("lab.toml"), lab_toml).unwrap();
    root
}

pub use vlab::proc::alive;

/// Supervises this test process as `main` supervises vlab: a child subreaper
/// (the orphans of killed children come back here to be reaped, not to an
/// init that may never reap them) with vlab's Ctrl-C handler. A test that
/// starts children through the library, not through the binary, calls it
/// first; it is idempotent.
pub fn supervise() {
    if let Err(e) = vlab::supervisor::Supervisor::install() {
        panic!("{e}");
    }
}

/// Step outcomes of a `vlab check --json` report.
pub fn outcomes(report: &serde_json::Value) -> Vec<(String, String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
                s["message"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Processes still running with their working directory under `dir` (a
/// student's QEMU or UML runs in the lab's workspace).
pub fn running_in(dir: &Path) -> Vec<i32> {
    let dir = dir.canonicalize().unwrap();
    vlab::proc::processes()
        .into_iter()
        .map(|p| p.pid)
        .filter(|pid| std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd.starts_with(&dir)))
        .filter(|pid| alive(*pid))
        .collect()
}
