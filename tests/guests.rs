//! Real guests under QEMU: the launcher's fast failure on a panic, its
//! deadline, its cleanup, the asset cache, the KVM fast path where the
//! machine has one, and the tiny VMM on this machine's /dev/kvm.

mod common;

use std::time::{Duration, Instant};

use common::*;
use vlab::guest::{Accel, Launch, assets};

/// The assets, or the reason this machine cannot have them.
fn assets_or_skip() -> Option<assets::GuestAssets> {
    supervise();
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        skip("qemu-system-x86_64 is not installed (`vlab setup`)");
        return None;
    }
    match assets::ensure() {
        Ok(a) => Some(a),
        Err(e) => {
            skip(format_args!("the guest assets are not available here: {e:#}"));
            None
        }
    }
}

/// Runs the vlab binary through vlab's own process runner: the in-process
/// launcher tests sweep orphaned children of this test process, and a child
/// started any other way would look like one.
fn run_vlab(ws: &std::path::Path, args: &[&str]) -> vlab::proc::Output {
    supervise();
    vlab::proc::Cmd::new(env!("CARGO_BIN_EXE_vlab"))
        .args(args)
        .env("VLAB_WORKSPACE", ws)
        .env("VLAB_LABS", labs())
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(300))
        .run()
        .unwrap()
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<i32> {
    vlab::proc::processes()
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{}/cmdline", p.pid))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .filter(|p| alive(p.pid))
        .map(|p| p.pid)
        .collect()
}

#[test]
fn assets_are_cached_by_content() {
    let Some(first) = assets_or_skip() else { return };
    let started = Instant::now();
    let second = assets::ensure().unwrap();
    let took = started.elapsed();
    assert_eq!(first.initrd, second.initrd);
    assert_eq!(first.initrd_sha256, second.initrd_sha256);
    assert_eq!(first.kernel.sha256, second.kernel.sha256);
    assert!(took < Duration::from_secs(3), "a cached prepare took {took:?}");
    let name = first.initrd.file_stem().unwrap().to_string_lossy().into_owned();
    assert_eq!(name.len(), 64, "the initramfs is named by its content hash: {name}");
    let image = std::fs::read(&first.initrd).unwrap();
    assert_eq!(vlab::files::sha256_hex(&image), first.initrd_sha256);
}

/// Both Debian kernels as packaged (LZ4 and xz payloads on Debian 12, zstd on
/// 13; modules plain or .ko.xz): unpacked for a direct boot, with every
/// driver the config builds as a module cached plain.
#[test]
fn both_kernels_unpack_with_their_modules() {
    if assets_or_skip().is_none() {
        return;
    }
    if std::env::var_os(assets::KERNEL_ENV).is_some_and(|v| !v.is_empty()) {
        skip_here(format_args!("{} names the kernel, not Debian's packages", assets::KERNEL_ENV));
        return;
    }
    for a in [assets::ensure().unwrap(), assets::generic(false).unwrap()] {
        let k = &a.kernel;
        assert_eq!(k.vmlinux_unavailable, None, "{} does not unpack", k.source);
        let vmlinux = std::fs::read(k.vmlinux.as_ref().unwrap()).unwrap();
        assert!(vlab::guest::elf::pvh_entry(&vmlinux).is_some(), "{}: no PVH entry", k.source);
        let modules: Vec<&String> = k.drivers.iter().filter(|(_, s)| *s == "module").map(|(m, _)| m).collect();
        assert!(!modules.is_empty(), "{}: no driver is a module: {:?}", k.source, k.drivers);
        for m in modules {
            let bytes = std::fs::read(k.module_path(m)).unwrap_or_else(|e| panic!("{}: {m}: {e}", k.source));
            assert_eq!(vlab::guest::elf::machine(&bytes), Some(vlab::guest::elf::EM_X86_64), "{m} is not plain ELF");
            assert!(k.groups.values().flatten().any(|g| g == m), "{m} is in no load order: {:?}", k.groups);
        }
    }
}

#[test]
fn a_tcg_boot_reports_with_a_fresh_nonce_and_leaves_no_qemu() {
    let Some(a) = assets_or_skip() else { return };
    let mut launch = Launch::new(&a);
    launch.timeout = Duration::from_secs(120);
    let booted = launch.boot().unwrap();
    assert!(booted.verified(), "no fresh report:\n{}", booted.obs.console);
    assert_eq!(booted.fact("guest.kernel"), Some(a.kernel.release.as_str()));
    assert_eq!(booted.fact("vmm.accel"), Some("tcg"));
    assert_eq!(booted.fact("guest.cpu.hypervisor"), Some("yes"));
    let cmdline = booted.fact("vmm.cmdline").unwrap();
    assert!(cmdline.contains(&format!("-kernel {}", a.kernel.boot_image().display())), "{cmdline}");
    if let Some(why) = &a.kernel.vmlinux_unavailable {
        eprintln!("note: this kernel boots as a bzImage: {why}");
    }
    let pid: i32 = booted.fact("vmm.pid").unwrap().parse().unwrap();
    assert!(!alive(pid), "qemu {pid} outlived the boot");
    assert!(processes_mentioning(&booted.nonce).is_empty(), "a process with this boot's nonce survived");
}

/// The launcher's fallback, for kernels it cannot unpack or hosts without
/// qboot: the bzImage on QEMU's default firmware reaches the same report.
#[test]
fn the_bzimage_on_the_default_firmware_boots_too() {
    let Some(a) = assets_or_skip() else { return };
    let mut launch = Launch::with_files(&a.kernel.vmlinuz(), &a.initrd);
    launch.timeout = Duration::from_secs(120);
    let booted = launch.boot().unwrap();
    assert!(booted.verified(), "no fresh report:\n{}", booted.obs.console);
    let cmdline = booted.fact("vmm.cmdline").unwrap();
    assert!(cmdline.contains("vmlinuz") && !cmdline.contains("-bios"), "{cmdline}");
}

#[test]
fn a_panicking_guest_fails_fast_with_the_panic_shown() {
    let Some(a) = assets_or_skip() else { return };
    let mut launch = Launch::new(&a);
    // No such init: the kernel falls back to a root device it does not have, and panics.
    launch.cmdline.push("rdinit=/vlab-no-such-init".into());
    launch.timeout = Duration::from_secs(120);
    let booted = launch.boot().unwrap();
    let panic = booted.obs.panic.clone().unwrap_or_else(|| panic!("no panic seen:\n{}", booted.obs.console));
    assert!(panic.contains("Kernel panic"), "{panic}");
    assert_eq!(booted.fact("boot.panic"), Some("yes"));
    assert!(!booted.verified());
    assert!(booted.elapsed < Duration::from_secs(60), "the panic took {:?} to notice", booted.elapsed);
    assert!(processes_mentioning(&booted.nonce).is_empty(), "qemu survived the panic");
}

#[test]
fn a_hung_guest_is_killed_at_its_deadline() {
    let Some(a) = assets_or_skip() else { return };
    let mut launch = Launch::new(&a);
    // -S: QEMU starts with the CPU stopped, so the guest never gets anywhere.
    launch.devices.push("-S".into());
    launch.timeout = Duration::from_secs(3);
    let started = Instant::now();
    let booted = launch.boot().unwrap();
    assert!(booted.obs.timed_out, "the stopped guest was not timed out");
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(processes_mentioning(&booted.nonce).is_empty(), "qemu survived its deadline");
}

#[test]
fn a_lab_check_leaves_no_qemu_behind() {
    if assets_or_skip().is_none() {
        return;
    }
    let ws = workspace();
    let lab = "09-software-emulation";
    assert!(run_vlab(ws.path(), &["start", lab]).success());
    overlay(&labs().join(lab).join("solution"), &ws.path().join(lab));
    let out = run_vlab(ws.path(), &["check", lab, "--step", "boot"]);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    // The student's QEMU runs in the lab's workspace; nothing may still run there.
    let dir = ws.path().join(lab);
    let left = running_in(&dir);
    assert!(left.is_empty(), "processes of the check survived in {}: {left:?}", dir.display());
}

#[test]
#[ignore = "needs hardware KVM (vlab doctor: kvm fast); this project's machines have a slow, nested one"]
fn a_kvm_boot_where_doctor_says_kvm_is_fast() {
    supervise();
    let caps = vlab::host::detect();
    assert!(caps.kvm.fast, "KVM is not fast here: {}", caps.kvm.reason);
    let Some(a) = assets_or_skip() else { return };
    let mut launch = Launch::new(&a);
    launch.accel = Accel::Kvm;
    launch.cmdline.push("vlab.measure=cpu".into());
    launch.timeout = Duration::from_secs(60);
    let booted = launch.boot().unwrap();
    assert!(booted.verified(), "no fresh report:\n{}", booted.obs.console);
    assert_eq!(booted.fact("vmm.accel"), Some("kvm"));
    assert_eq!(booted.fact("guest.hypervisor.vendor"), Some("KVM"));
    assert!(booted.fact("guest.measure.cpu_us").is_some());
}

#[test]
fn the_tiny_vmm_runs_student_code_on_this_machines_kvm() {
    supervise();
    let caps = vlab::host::detect();
    if !caps.kvm.openable {
        skip(format_args!("{}", caps.kvm.reason));
        return;
    }
    let ws = workspace();
    let guest = labs().join("10-kvm").join("solution").join("guest.hex");
    let out = run_vlab(ws.path(), &["kvm", "run", "--nonce", "00112233445566ff", &guest.to_string_lossy()]);
    assert!(out.success(), "{}\n{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("bytes sent to port 0x10: 00112233445566ff"), "{}", out.stdout);
    assert_eq!(out.stdout.matches("out port=0x10").count(), 8, "{}", out.stdout);
    let starter = labs().join("10-kvm").join("starter").join("guest.hex");
    assert_eq!(run_vlab(ws.path(), &["kvm", "run", &starter.to_string_lossy()]).code, Some(1));
}
