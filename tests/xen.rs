//! The Xen lab for real: Debian's hypervisor under QEMU's TCG boots the
//! Debian kernel as a PV dom0 with the runner's probe; plain Linux dressed up
//! with Xen's text fails; `-cpu max` kills dom0 as the lab text says (QEMU
//! 7.2); a dom0 without its console fails as soon as it powers off; a
//! domU started by xl connects to dom0's back ends; and no QEMU outlives a
//! check.

mod common;

use std::path::Path;

use common::*;

const LAB: &str = "08-xen";

/// A started lab workspace, or None (with the reason printed) when this
/// machine cannot boot Xen.
fn lab_or_skip() -> Option<tempfile::TempDir> {
    supervise();
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        skip("qemu-system-x86_64 is not installed (`vlab setup`)");
        return None;
    }
    if let Err(e) = vlab::guest::assets::generic(false).and_then(|_| vlab::guest::xen::ensure()) {
        skip(format_args!("the guest or Xen assets are not available here: {e:#}"));
        return None;
    }
    let ws = workspace();
    vlab(ws.path()).args(["start", LAB]).assert().success();
    Some(ws)
}

/// Checks the boot step; returns (outcome, message, evidence).
fn check_boot(ws: &Path) -> (String, String, serde_json::Value) {
    let (_, report) = json(ws, &["check", LAB, "--step", "boot"]);
    let step = &report["steps"][0];
    let check = &step["checks"][0];
    (
        step["outcome"].as_str().unwrap().to_string(),
        check["message"].as_str().unwrap_or("").to_string(),
        check["evidence"].clone(),
    )
}

/// Processes still running in the lab's workspace (the student's QEMU runs there).
fn left_in(ws: &Path) -> Vec<i32> {
    running_in(&ws.join(LAB))
}

#[test]
fn the_solution_boots_xen_with_a_pv_dom0_and_leaves_no_qemu() {
    let Some(ws) = lab_or_skip() else { return };
    overlay(&labs().join(LAB).join("solution"), &ws.path().join(LAB));
    let (outcome, message, facts) = check_boot(ws.path());
    assert_eq!(outcome, "pass", "{message}");
    assert_eq!(facts["guest.hypervisor.type"], "xen");
    assert_eq!(facts["guest.xen.guest_type"], "PV");
    // What dom0 learnt by hypercall is what Xen printed on its own console.
    assert_eq!(facts["guest.xen.version"], facts["xen.version"]);
    assert_eq!(facts["guest.xen.balloon.target_kib"], "393216");
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check: {:?}", left_in(ws.path()));
}

/// Step 3 goes through the runner's own command (`vlab xen domu`), which
/// starts QEMU itself: the check must still find QEMU, and leave neither it
/// nor the per-run dom0 image behind.
#[test]
fn a_domu_from_xl_connects_over_xenbus_and_nothing_outlives_the_check() {
    let Some(ws) = lab_or_skip() else { return };
    overlay(&labs().join(LAB).join("solution"), &ws.path().join(LAB));
    let (_, report) = json(ws.path(), &["check", LAB, "--step", "domu"]);
    let step = &report["steps"][0];
    let facts = &step["checks"][0]["evidence"];
    assert_eq!(step["outcome"], "pass", "{}", step["checks"][0]["message"]);
    assert_eq!(facts["vmm.accel"], "tcg", "the check did not find QEMU under `vlab xen domu`");
    assert_eq!(facts["guest.domu.vbd"], "vbd:Connected");
    assert_eq!(facts["guest.domu.vif"], "vif:Connected");
    let backends = facts["guest.domu.backends"].as_str().unwrap();
    assert!(backends.contains("vbd") && backends.contains("vif"), "dom0's XenStore back ends: {backends}");
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check: {:?}", left_in(ws.path()));
    let scratch: Vec<_> = std::fs::read_dir(ws.path().join(LAB).join(".vlab"))
        .map(|d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default();
    assert!(scratch.is_empty(), "the check left its scratch (with the dom0 image): {scratch:?}");
}

#[test]
fn plain_linux_printing_xen_text_fails() {
    let Some(ws) = lab_or_skip() else { return };
    overlay(&repo().join("tests/fakes").join(LAB), &ws.path().join(LAB));
    let (outcome, message, facts) = check_boot(ws.path());
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("/sys/hypervisor/type"), "{message}");
    // The faker did boot a guest: the probe reported, from plain Linux.
    assert_eq!(facts["report.nonce"], "fresh", "{message}");
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check");
}

/// The crash is QEMU 7.2's TCG (Debian 12); QEMU 10 (Debian 13) was measured
/// to boot dom0 with `-cpu max`, as the lab's README says.
#[test]
fn with_cpu_max_dom0_crashes_as_the_lab_says() {
    let Some(ws) = lab_or_skip() else { return };
    let version = vlab::proc::Cmd::new("qemu-system-x86_64").arg("--version").run().unwrap().stdout;
    let major: u32 = version.split("version ").nth(1).and_then(|v| v.split('.').next()?.parse().ok()).unwrap_or(0);
    if major >= 10 {
        skip_here(format_args!("QEMU {major} emulates SMAP without crashing dom0 under -cpu max"));
        return;
    }
    let dir = ws.path().join(LAB);
    overlay(&labs().join(LAB).join("solution"), &dir);
    let script = std::fs::read_to_string(dir.join("boot.sh")).unwrap();
    assert!(script.contains("-cpu qemu64"));
    std::fs::write(dir.join("boot.sh"), script.replace("-cpu qemu64", "-cpu max")).unwrap();
    let started = std::time::Instant::now();
    let (outcome, message, _) = check_boot(ws.path());
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("Dom0 crashed") || message.contains("create_bounce_frame"), "{message}");
    assert!(started.elapsed().as_secs() < 90, "the crash took {:?} to notice", started.elapsed());
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check");
}

/// dom0's console is hvc0, through Xen to the serial line: without it the
/// report is lost, dom0 powers the machine off, and the check fails at once
/// rather than at its 150 s deadline.
#[test]
fn without_its_console_dom0_fails_as_soon_as_it_powers_off() {
    let Some(ws) = lab_or_skip() else { return };
    let dir = ws.path().join(LAB);
    overlay(&labs().join(LAB).join("solution"), &dir);
    let script = std::fs::read_to_string(dir.join("boot.sh")).unwrap();
    assert!(script.contains("console=hvc0 "));
    std::fs::write(dir.join("boot.sh"), script.replace("console=hvc0 ", "")).unwrap();
    let started = std::time::Instant::now();
    let (outcome, message, _) = check_boot(ws.path());
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("before the probe's report appeared"), "{message}");
    assert!(started.elapsed().as_secs() < 90, "took {:?}", started.elapsed());
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check");
}
