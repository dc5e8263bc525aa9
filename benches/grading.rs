//! Grading throughput: a class of N submissions of a container lab, graded
//! sandboxed with --jobs = cores, against a raw baseline measured in the same
//! run (the same checks, unsandboxed, one at a time, in-process).
//!
//!     cargo bench --bench grading            # 100 submissions of 03-namespaces
//!     VLAB_BENCH_N=20 VLAB_BENCH_LAB=01-bare-metal cargo bench --bench grading

use std::path::Path;
use std::time::Instant;

use vlab::catalog::{Catalog, Lab, find_labs_root};
use vlab::grade::{self, bundle, limits::Limits, policy::Policy};
use vlab::workspace::{Workspace, copy_tree};

/// Target from the grading issue: 100 container-lab submissions in 60 s on 2 cores.
const TARGET_SECONDS_PER_100: f64 = 60.0;

fn make_bundle(lab: &Lab, which: &str, dir: &Path, name: &str) -> std::path::PathBuf {
    let src = lab.dir.join(which);
    let bundle = dir.join(format!("{name}.tar.gz"));
    bundle::pack(&[lab], |_| src.clone(), name, Default::default(), &bundle).expect("pack");
    bundle
}

fn main() {
    // As `main` does: orphans come back here to be reaped, and Ctrl-C kills what the bench started.
    let _supervisor = vlab::supervisor::Supervisor::install().expect("cannot supervise the bench's children");
    let n: usize = std::env::var("VLAB_BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(100);
    let lab_id = std::env::var("VLAB_BENCH_LAB").unwrap_or_else(|_| "03-namespaces".into());
    let catalog = Catalog::load(&find_labs_root(None).expect("labs")).expect("catalog");
    let lab = catalog.find(&lab_id).expect("lab").clone();
    let jobs = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let class = tempfile::tempdir().unwrap();
    for i in 0..n {
        let which = if i % 2 == 0 { "solution" } else { "starter" };
        make_bundle(&lab, which, class.path(), &format!("student{i:03}"));
    }

    // Raw baseline: what the checks cost with no sandbox, no bundle, no export.
    let caps = vlab::host::detect();
    let raw_runs = 4.min(n);
    let base = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let ws = Workspace { root: base.path().to_path_buf() };
    let raw_started = Instant::now();
    for i in 0..raw_runs {
        let dir = base.path().join(format!("raw{i}"));
        ws.copy_from(&lab, "starter", &dir, |d| vlab::prepare::prepare(&lab, d)).unwrap();
        copy_tree(&lab.dir.join(if i % 2 == 0 { "solution" } else { "starter" }), &dir).unwrap();
        vlab::tiers::check_lab(&lab, &dir, &caps, None).unwrap();
    }
    let raw_each = raw_started.elapsed().as_secs_f64() / raw_runs as f64;

    let out = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let opts = grade::Options {
        vlab: env!("CARGO_BIN_EXE_vlab").into(),
        inputs: vec![class.path().to_path_buf()],
        out: out.path().to_path_buf(),
        jobs,
        labs: vec![lab.id.clone()],
        policy: Policy::default(),
        limits: Limits::default(),
        progress: false,
    };
    let started = Instant::now();
    let summary = grade::grade(&catalog, &opts).expect("grading");
    let total = started.elapsed().as_secs_f64();
    let each = total * jobs as f64 / n as f64;
    let scaled = total * 100.0 / n as f64;
    println!("grading bench: {n} submissions of {} with --jobs {jobs}", lab.id);
    println!(
        "  sandboxed: {total:.1} s total, {:.2} submissions/s, {each:.2} s per submission per job",
        n as f64 / total
    );
    println!("  raw baseline (same checks, unsandboxed, in-process): {raw_each:.2} s per submission");
    println!("  sandbox cost ratio (per submission, sandboxed / raw): {:.2}x", each / raw_each);
    println!(
        "  scaled to 100 submissions: {scaled:.1} s (target {TARGET_SECONDS_PER_100:.0} s): {}",
        if scaled <= TARGET_SECONDS_PER_100 { "met" } else { "MISSED" }
    );
    assert_eq!(summary.graded, n, "every submission is graded");
}
