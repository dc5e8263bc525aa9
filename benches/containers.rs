//! Container-tier checks against the raw tools they drive, measured in the
//! same run (medians of interleaved runs): an OCI check against a plain
//! `runc run` of the same bundle, a UML check against a plain boot.
//!
//!     cargo bench --bench containers

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;

use common::*;

fn verdict(what: &str, check: f64, raw: f64, target: f64) {
    let ratio = check / raw;
    println!(
        "{what}: {check:.0} ms / {raw:.0} ms = {ratio:.2}x (target at most {target}x): {}",
        if ratio <= target { "met" } else { "MISSED" }
    );
}

fn main() {
    oci_check_against_a_raw_runc_run();
    uml_check_against_a_raw_boot();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Runs `check` (the check's own duration) and `raw` (wall time) `n` times, interleaved.
fn interleaved(n: usize, check: impl Fn() -> Option<f64>, raw: impl Fn() -> f64) -> Option<(f64, f64)> {
    let (mut checks, mut raws) = (Vec::new(), Vec::new());
    for _ in 0..n {
        checks.push(check()?);
        raws.push(raw());
    }
    Some((median(checks), median(raws)))
}

fn check_ms(ws: &Path, lab: &str, step: &str) -> Option<f64> {
    let (_, report) = json(ws, &["check", lab, "--step", step]);
    let check = &report["steps"][0]["checks"][0];
    match report["steps"][0]["outcome"].as_str() {
        Some("pass") => check["duration_ms"].as_f64(),
        other => {
            eprintln!("skipped: {lab}/{step} is {other:?}: {}", report["steps"][0]["message"]);
            None
        }
    }
}

/// The budget: a container check costs at most 3× a raw `runc run` of
/// the same bundle. Medians of interleaved runs.
fn oci_check_against_a_raw_runc_run() {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: runc needs root here");
        return;
    }
    let ws = workspace();
    vlab(ws.path()).args(["start", "oci"]).assert().success();
    let lab = ws.path().join("05-oci");
    overlay(&labs().join("05-oci/solution"), &lab);
    let bundle = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(lab.join("config.json"))
        .unwrap()
        .replace("@VLAB_NONCE@", "raw")
        .replace("\"path\": \"rootfs\"", &format!("\"path\": \"{}\"", lab.join("rootfs").display()))
        .replace("\"/.vlab/vlab-probe\"", "\"/bin/true\"");
    std::fs::write(bundle.path().join("config.json"), config).unwrap();
    let state = bundle.path().join("state");
    let runs = std::cell::Cell::new(0);
    let raw = || {
        runs.set(runs.get() + 1);
        let started = std::time::Instant::now();
        assert_cmd::Command::new("runc")
            .arg("--root")
            .arg(&state)
            .args(["run", "--bundle"])
            .arg(bundle.path())
            .arg(format!("raw-{}", runs.get()))
            .assert()
            .success();
        started.elapsed().as_secs_f64() * 1000.0
    };
    let Some((check, raw)) = interleaved(5, || check_ms(ws.path(), "oci", "hostname"), raw) else { return };
    verdict("OCI check (05-oci/hostname) / raw runc run", check, raw, 3.0);
}

/// The budget: the UML check costs at most 1.2× a raw boot of the same command.
fn uml_check_against_a_raw_boot() {
    let ws = workspace();
    vlab(ws.path()).args(["start", "uml"]).assert().success();
    let lab = ws.path().join("07-uml");
    overlay(&labs().join("07-uml/solution"), &lab);
    let raw = || {
        let scratch = tempfile::tempdir_in(ws.path()).unwrap();
        let started = std::time::Instant::now();
        let out = assert_cmd::Command::new("sh")
            .arg("boot.sh")
            .current_dir(&lab)
            .env("VLAB_NONCE", "raw")
            .env("VLAB_SCRATCH", scratch.path())
            .timeout(std::time::Duration::from_secs(90))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("VLAB-REPORT-END nonce=raw"));
        started.elapsed().as_secs_f64() * 1000.0
    };
    let Some((check, raw)) = interleaved(3, || check_ms(ws.path(), "uml", "boot"), raw) else { return };
    verdict("UML check (07-uml/boot) / raw UML boot", check, raw, 1.2);
}
