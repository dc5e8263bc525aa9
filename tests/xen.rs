//! The Xen lab for real: Debian's hypervisor under QEMU's TCG boots the
//! Debian kernel as a PV dom0 with the runner's probe; plain Linux dressed up
//! with Xen's text fails; `-cpu max` kills dom0 as the lab text says; a dom0
//! whose log does not reach the serial line fails as soon as Xen halts; a
//! domU started by xl connects to dom0's back ends; and no QEMU outlives a
//! check.

mod common;

use std::path::Path;

use common::*;

const LAB: &str = "08-xen";

/// A started lab workspace, or None (with the reason printed) when this
/// machine cannot boot Xen.
fn lab_or_skip() -> Option<tempfile::TempDir> {
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        eprintln!("skipped: qemu-system-x86_64 is not installed (`vlab setup`)");
        return None;
    }
    if let Err(e) = vlab::guest::xen::dom0_assets().and_then(|_| vlab::guest::xen::ensure()) {
        eprintln!("skipped: the guest or Xen assets are not available here: {e:#}");
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

#[test]
fn with_cpu_max_dom0_crashes_as_the_lab_says() {
    let Some(ws) = lab_or_skip() else { return };
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

/// Only a dom0 kernel without CONFIG_XEN_DOM0 (Debian 12's cloud kernel)
/// needs earlyprintk for its report; a real dom0 kernel has its console.
#[test]
fn without_earlyprintk_the_check_ends_when_xen_halts() {
    let Some(ws) = lab_or_skip() else { return };
    let (dom0, cloud) = (vlab::guest::xen::dom0_assets().unwrap(), vlab::guest::assets::ensure().unwrap());
    if dom0.kernel.dir != cloud.kernel.dir {
        eprintln!("skipped: dom0 is {}, whose console works without earlyprintk", dom0.kernel.source);
        return;
    }
    let dir = ws.path().join(LAB);
    overlay(&labs().join(LAB).join("solution"), &dir);
    let script = std::fs::read_to_string(dir.join("boot.sh")).unwrap();
    assert!(script.contains("earlyprintk=xen "));
    std::fs::write(dir.join("boot.sh"), script.replace("earlyprintk=xen ", "")).unwrap();
    let started = std::time::Instant::now();
    let (outcome, message, _) = check_boot(ws.path());
    assert_eq!(outcome, "fail", "{message}");
    // dom0 ran and powered off, but its report never reached the serial line;
    // the check does not wait for its 150 s deadline with a halted machine.
    assert!(message.contains("Hardware Dom0 halted"), "{message}");
    assert!(started.elapsed().as_secs() < 90, "took {:?}", started.elapsed());
    assert!(left_in(ws.path()).is_empty(), "QEMU outlived the check");
}
