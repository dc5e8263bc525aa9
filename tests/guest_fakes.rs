//! Cheats against the guest labs (08-11), each tried as a student would:
//! a decoy process that calls itself QEMU beside a printed report, a report
//! forged with this run's nonce beside a real QEMU, a real QEMU without the
//! runner's seal line, and results or guest code served through a FIFO by a
//! daemon. Each must fail with a message that says what the runner saw, and
//! leave no process in the workspace.

mod common;

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

/// The lab started in a fresh workspace, or None (with the reason) when this
/// machine cannot boot its guests.
fn started_or_skip(lab: &str) -> Option<tempfile::TempDir> {
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        skip(format_args!("{lab}: qemu-system-x86_64 is not installed (`vlab setup`)"));
        return None;
    }
    let ws = workspace();
    let out = vlab(ws.path()).args(["start", lab]).output().unwrap();
    if !out.status.success() {
        skip(format_args!("{lab}: `vlab start` failed here: {}", String::from_utf8_lossy(&out.stderr)));
        return None;
    }
    Some(ws)
}

/// The first check of `step`, run alone: (outcome, message, evidence).
fn check(ws: &Path, lab: &str, step: &str) -> (String, String, Value) {
    let (_, report) = json(ws, &["check", lab, "--step", step]);
    let step = &report["steps"][0];
    let c = &step["checks"][0];
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    if s(&step["outcome"]) == "skipped" {
        return ("skipped".into(), s(&step["message"]), Value::Null);
    }
    (s(&c["outcome"]), s(&c["message"]), c["evidence"].clone())
}

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

/// A report with every fact the labs' boot steps ask for, this run's nonce, and a made-up seal.
const FORGED_REPORT: &str = r#"echo "(XEN) Xen version 4.17.7 (Debian 4.17.7+13) debug=n"
echo "(XEN) Command line: console=com1 dom0_mem=384M,max:384M dom0_max_vcpus=1"
echo "(XEN) Brought up 2 CPUs"
echo "(XEN) Dom0 has maximum 1 VCPUs"
echo "VLAB-REPORT-BEGIN nonce=$VLAB_NONCE"
echo "kernel=6.1.0-56-cloud-amd64"
echo "arch=x86_64"
echo "cpu.hypervisor=yes"
echo "cpu.count=1"
echo "mem.total_kib=380000"
echo "hypervisor.type=xen"
echo "xen.guest_type=PV"
echo "xen.boot_message=Booting kernel on Xen"
echo "xen.balloon.target_kib=393216"
echo "measure.cpu_iterations=20000"
echo "measure.cpu_us=1000000"
echo "disk.controller=ata_piix"
echo "measure.disk=ok"
echo "measure.disk_bytes=8388608"
echo "net.driver=e1000"
echo "measure.net=ok"
echo "measure.net_bytes=0"
echo "seal=0000000000000000000000000000000000000000000000000000000000000000"
echo "VLAB-REPORT-END nonce=$VLAB_NONCE"
"#;

/// The runner's check of a lab dir: nothing of the check runs there any more.
fn assert_nothing_left(ws: &Path, lab: &str) {
    let left = running_in(&ws.join(lab));
    assert!(left.is_empty(), "{lab}: processes outlived the check: {left:?}");
}

/// The issue's cheat: `exec -a qemu-system-x86_64 sleep 60` beside a report
/// printed with the nonce passed the boot steps of labs 08 to 11.
#[test]
fn a_decoy_named_qemu_beside_a_printed_report_fails_every_boot_lab() {
    let decoy = format!(
        "#!/bin/sh\n# Fake: a decoy that calls itself QEMU, beside a report printed with this run's nonce.\n\
         echo \"nonce=$VLAB_NONCE\" > \"$VLAB_RESULTS\"\n\
         bash -c 'exec -a qemu-system-x86_64 sleep 60' &\n{FORGED_REPORT}wait\n"
    );
    for (lab, step) in [
        ("08-xen", "boot"),
        ("09-software-emulation", "boot"),
        ("10-kvm", "tcg-baseline"),
        ("11-pv-drivers", "emulated"),
    ] {
        let Some(ws) = started_or_skip(lab) else { continue };
        write(&ws.path().join(lab), "boot.sh", &decoy);
        let (outcome, message, ev) = check(ws.path(), lab, step);
        assert_eq!(outcome, "fail", "{lab}/{step}: the decoy passed: {message}");
        assert!(message.contains("could not talk to QEMU itself"), "{lab}/{step}: {message}");
        assert!(message.contains("no QEMU connected its QMP monitor to $VLAB_QMP"), "{lab}/{step}: {message}");
        assert!(ev.get("vmm.pid").is_none(), "{lab}/{step}: the decoy was taken for the VMM: {ev:#}");
        assert!(ev.get("vmm.accel").is_none(), "{lab}/{step}: an accelerator without QEMU's word: {ev:#}");
        assert_nothing_left(ws.path(), lab);
    }
}

const LAB09: &str = "09-software-emulation";

/// The solution's boot.sh of lab 09, edited.
fn lab09_boot(ws: &Path, edit: impl FnOnce(String) -> String) {
    let solution = std::fs::read_to_string(labs().join(LAB09).join("solution").join("boot.sh")).unwrap();
    let edited = edit(solution.clone());
    assert_ne!(edited, solution, "the edit did not apply to the solution's boot.sh");
    write(&ws.join(LAB09), "boot.sh", &edited);
}

/// A real QEMU connected to the runner, its console in a file, and a report
/// the script prints itself with the nonce: the seal gives it away.
#[test]
fn a_forged_report_beside_a_real_qemu_fails_on_its_seal() {
    let Some(ws) = started_or_skip(LAB09) else { return };
    lab09_boot(ws.path(), |s| {
        s.replace("exec qemu-system-x86_64", "qemu-system-x86_64")
            .replace("-serial stdio $WATCH", "-serial file:$VLAB_SCRATCH/console $WATCH")
            .replace("vlab.nonce=$NONCE\"", "vlab.nonce=$NONCE\" &\nsleep 2\n")
            + FORGED_REPORT
            + "wait\n"
    });
    let (outcome, message, ev) = check(ws.path(), LAB09, "boot");
    assert_eq!(outcome, "fail", "a forged report passed: {message}");
    assert_eq!(ev["vmm.qmp"], "connected", "the real QEMU did connect: {ev:#}");
    assert!(message.contains("is not sealed with the key the runner handed"), "{message}");
    let sealed = ev["report.sealed"].as_str().unwrap();
    assert!(
        sealed.contains("never asked for its key") || sealed.contains("does not match the key"),
        "the runner must say why the seal fails: {sealed}"
    );
    assert_nothing_left(ws.path(), LAB09);
}

/// The honest guest on a real QEMU, but without the second serial line: the
/// probe gets no key, and its true report is unsealed.
#[test]
fn a_real_qemu_without_the_seal_line_fails() {
    let Some(ws) = started_or_skip(LAB09) else { return };
    lab09_boot(ws.path(), |s| s.replace(" -serial unix:$VLAB_SEAL\"", "\""));
    let (outcome, message, ev) = check(ws.path(), LAB09, "boot");
    assert_eq!(outcome, "fail", "an unsealed report passed: {message}");
    assert_eq!(ev["report.nonce"], "fresh", "the guest did boot: {ev:#}");
    assert_eq!(ev["vmm.qmp"], "connected");
    assert!(message.contains("no QEMU connected a serial port to $VLAB_SEAL"), "{message}");
    assert_nothing_left(ws.path(), LAB09);
}

/// The real QEMU binary with a library of the script's own preloaded (here a
/// harmless copy of zlib; a hook could rewrite QMP's answers in-process).
#[test]
fn a_real_qemu_with_a_preloaded_library_is_refused() {
    let Some(ws) = started_or_skip(LAB09) else { return };
    lab09_boot(ws.path(), |s| {
        s.replace(
            "exec qemu-system-x86_64",
            "cp \"$(ldd \"$(command -v qemu-system-x86_64)\" | awk '/libz.so/ { print $3 }')\" \"$VLAB_SCRATCH/libhook.so\"\n\
             LD_PRELOAD=$VLAB_SCRATCH/libhook.so exec qemu-system-x86_64",
        )
    });
    let (outcome, message, ev) = check(ws.path(), LAB09, "boot");
    assert_eq!(outcome, "fail", "a QEMU with a preloaded library passed: {message}");
    let qmp = ev["vmm.qmp"].as_str().unwrap();
    assert!(qmp.contains("libhook.so loaded, a library from outside the system's"), "{qmp}");
    assert_nothing_left(ws.path(), LAB09);
}

/// The daemon a fake script detaches with setsid; killed when dropped.
struct Daemon {
    pid_file: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = std::fs::read_to_string(&self.pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            // SAFETY: kill(2) on the pid the test's daemon wrote; the result is checked below.
            let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
            assert!(rc == 0 || !alive(pid), "cannot stop the test's daemon {pid}");
        }
    }
}

/// The issue's cheat on `vlab emu translate`: $VLAB_RESULTS turned into a
/// FIFO that a setsid daemon keeps serving with the runner's own line names.
#[test]
fn results_served_through_a_fifo_are_refused() {
    let Some(ws) = started_or_skip(LAB09) else { return };
    let daemon = Daemon { pid_file: ws.path().join("daemon.pid") };
    let script = format!(
        "#!/bin/sh\n# Fake: the results are a FIFO that a detached daemon serves.\n\
         rm -f \"$VLAB_RESULTS\"\nmkfifo \"$VLAB_RESULTS\"\n\
         setsid sh -c 'echo $$ > {pid}; while :; do \
         printf \"nonce=%s\\nblocks_translated=1\\nobserved_blocks_translated=1\\n\" \"$VLAB_NONCE\" > \"$VLAB_RESULTS\"; \
         done' < /dev/null > /dev/null 2>&1 &\n\
         while [ ! -s {pid} ]; do sleep 0.05; done\n",
        pid = daemon.pid_file.display()
    );
    write(&ws.path().join(LAB09), "translate.sh", &script);
    let (outcome, message, _) = check(ws.path(), LAB09, "translate");
    assert_eq!(outcome, "fail", "results from a FIFO passed: {message}");
    assert!(message.contains("is a FIFO (named pipe), not a regular file"), "{message}");
    drop(daemon);
    assert_nothing_left(ws.path(), LAB09);
}

/// `vlab kvm run guest.hex` with guest.hex a FIFO a daemon serves (the
/// solution's code, so that only the FIFO is wrong).
#[test]
fn guest_code_served_through_a_fifo_is_refused() {
    const LAB: &str = "10-kvm";
    let Some(ws) = started_or_skip(LAB) else { return };
    let dir = ws.path().join(LAB);
    let hex = dir.join("guest.hex");
    std::fs::remove_file(&hex).unwrap();
    let path = std::ffi::CString::new(hex.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path; the result is checked.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0, "mkfifo {}", hex.display());
    // The server: the solution's code to every reader, until told to stop.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let server = {
        let (stop, hex) = (stop.clone(), hex.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(mut w) = std::fs::OpenOptions::new().write(true).open(&hex) {
                    let _ = std::io::Write::write_all(&mut w, b"be 00 18 b9 08 00 ac e6 10 e2 fb f4\n");
                }
            }
        })
    };
    let (outcome, message, _) = check(ws.path(), LAB, "tiny-vmm");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    // A reader, held until the server is gone, releases it from its blocking open so it sees `stop`.
    let reader = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&hex).unwrap();
    server.join().unwrap();
    drop(reader);
    if outcome == "skipped" {
        skip_here(format_args!("{LAB}/tiny-vmm: {message}"));
        return;
    }
    assert_eq!(outcome, "fail", "guest code from a FIFO passed: {message}");
    assert!(message.contains("guest.hex is a FIFO (named pipe), not a regular file"), "{message}");
}
