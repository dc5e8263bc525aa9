//! The guest launcher's boot against a plain QEMU boot of the same kernel
//! package and initramfs, measured in the same run: medians of interleaved
//! boots, each timed from QEMU's start to the probe's report on the console
//! (the same watcher times both). Rows that take one of the launcher's choices
//! away show what each is worth. With hardware KVM it also boots under KVM
//! against the 250 ms target.
//!
//!     cargo bench --bench boot            (VLAB_BENCH_RUNS=n for more than 5 runs)

use std::path::Path;
use std::time::Duration;

use vlab::guest::{Accel, GuestAssets, Launch};

/// The goal: the launcher reaches a verified report in at most this share of a plain boot.
const TCG_GOAL: f64 = 0.75;
/// Under hardware KVM: boot to the verified report under this many ms.
const KVM_GOAL_MS: f64 = 250.0;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Milliseconds from QEMU's start to the report, through the launcher.
fn launcher_ms(launch: &Launch) -> f64 {
    let booted = launch.boot().expect("the launcher could not start QEMU");
    assert!(booted.verified(), "the launcher's boot gave no fresh report:\n{}", booted.obs.console);
    booted.fact("boot.ms").and_then(|ms| ms.parse().ok()).expect("a verified boot is timed")
}

/// Milliseconds from QEMU's start to the report, for the plain command.
fn plain_ms(assets: &GuestAssets) -> f64 {
    let nonce = vlab::evidence::fresh_nonce();
    let append = format!("console=ttyS0 panic=-1 vlab.nonce={nonce}");
    let kernel = assets.kernel.vmlinuz();
    let argv: Vec<&str> = vec![
        "qemu-system-x86_64",
        "-m",
        "256",
        "-nographic",
        "-no-reboot",
        "-kernel",
        kernel.to_str().unwrap(),
        "-initrd",
        assets.initrd.to_str().unwrap(),
        "-append",
        &append,
    ];
    let cmd = vlab::proc::Cmd::from_argv(&argv).timeout(Duration::from_secs(120));
    let obs = vlab::guest::boot::boot(&cmd, &nonce).expect("could not start QEMU");
    assert_eq!(obs.facts.get("report.nonce").map(String::as_str), Some("fresh"), "{}", obs.console);
    obs.facts["boot.ms"].parse().unwrap()
}

fn main() {
    // As `main` does: orphans come back here to be reaped, and Ctrl-C kills what the bench started.
    let _supervisor = vlab::supervisor::Supervisor::install().expect("cannot supervise the bench's children");
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        eprintln!("skipped: qemu-system-x86_64 is not installed (`vlab setup`)");
        return;
    }
    let assets = match vlab::guest::assets::ensure() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("skipped: the guest assets are not available: {e:#}");
            return;
        }
    };
    let runs: usize = std::env::var("VLAB_BENCH_RUNS").ok().and_then(|n| n.parse().ok()).unwrap_or(5).max(1);
    let timed = |mut launch: Launch| {
        launch.timeout = Duration::from_secs(120);
        launch
    };
    let best = timed(Launch::new(&assets));
    let mut bzimage = best.clone();
    bzimage.kernel = assets.kernel.vmlinuz();
    let mut seabios = best.clone();
    seabios.firmware = None;

    let kernel = |p: &Path| p.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let firmware = |l: &Launch| l.firmware.as_deref().map(kernel).unwrap_or_else(|| "SeaBIOS".into());
    let rows: Vec<(String, Launch)> = vec![
        (format!("launcher ({}, {})", kernel(&best.kernel), firmware(&best)), best.clone()),
        (format!("launcher with the bzImage ({})", firmware(&bzimage)), bzimage),
        (format!("launcher on SeaBIOS ({})", kernel(&seabios.kernel)), seabios),
    ];
    let (mut plain, mut times) = (Vec::new(), vec![Vec::new(); rows.len()]);
    for _ in 0..runs {
        plain.push(plain_ms(&assets));
        for (i, (_, launch)) in rows.iter().enumerate() {
            times[i].push(launcher_ms(launch));
        }
    }
    let plain = median(plain);
    println!("boot to the probe's report under TCG, medians of {runs} interleaved runs:");
    println!("  {:<44} {plain:>6.0} ms", "plain qemu -kernel vmlinuz -nographic");
    for (i, (name, _)) in rows.iter().enumerate() {
        let ms = median(times[i].clone());
        println!("  {name:<44} {ms:>6.0} ms  {:.2}x", ms / plain);
    }
    let ratio = median(times[0].clone()) / plain;
    println!(
        "launcher / plain = {ratio:.2}x (goal at most {TCG_GOAL}x): {}",
        if ratio <= TCG_GOAL { "met" } else { "MISSED" }
    );

    let caps = vlab::host::detect();
    if !caps.kvm.fast {
        println!("KVM (goal under {KVM_GOAL_MS} ms): not measured here: {}", caps.kvm.reason);
        return;
    }
    let mut kvm = timed(Launch::new(&assets));
    kvm.accel = Accel::Kvm;
    let ms = median((0..runs).map(|_| launcher_ms(&kvm)).collect());
    println!(
        "launcher under KVM: {ms:.0} ms (goal under {KVM_GOAL_MS} ms): {}",
        if ms < KVM_GOAL_MS { "met" } else { "MISSED" }
    );
}
