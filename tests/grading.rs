//! Instructor grading, end to end: a class of honest, half-done, cheating and
//! hostile submissions is graded correctly, the host is unharmed, exports
//! validate, and a grader killed mid-run resumes without loss.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const SOLUTION: &str = "case \"$1\" in\n    answer) printf 'nonce=%s\\nanswer=42\\n' \"$VLAB_NONCE\" > \"$VLAB_RESULTS\" ;;\n    file) echo made > made.txt ;;\nesac\n";
const HALF: &str = "case \"$1\" in\n    answer) printf 'nonce=%s\\nanswer=42\\n' \"$VLAB_NONCE\" > \"$VLAB_RESULTS\" ;;\n    *) exit 1 ;;\nesac\n";
const STARTER: &str = "echo \"not done\" >&2\nexit 1\n";

fn grading_labs() -> PathBuf {
    repo().join("tests/grading/labs")
}

fn vlab_g(ws: &Path) -> assert_cmd::Command {
    vlab_with_labs(ws, &grading_labs())
}

/// A bundle made the way a student makes it: start, edit work.sh, submit.
fn submit(dir: &Path, name: &str, script: &str) -> PathBuf {
    let ws = workspace();
    vlab_g(ws.path()).args(["start", "01-script"]).assert().success();
    std::fs::write(ws.path().join("01-script/work.sh"), script).unwrap();
    let bundle = dir.join(format!("{name}.tar.gz"));
    vlab_g(ws.path()).args(["submit", "--student", name, "-o"]).arg(&bundle).assert().success();
    bundle
}

/// A bundle written by hand (as an attacker would), with raw entry names.
fn raw_bundle(path: &Path, entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
    let manifest = br#"{"format":1,"tool_version":"0","student":"x","created_at":0,"labs":{},"self_reported":{}}"#;
    let gz = flate2::write::GzEncoder::new(std::fs::File::create(path).unwrap(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let mut all: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> =
        vec![("manifest.json", tar::EntryType::Regular, manifest, None)];
    all.extend_from_slice(entries);
    for (name, kind, data, link) in all {
        let mut h = tar::Header::new_old();
        // Raw bytes: the tar crate would refuse to write `..` itself.
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        if let Some(l) = link {
            h.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        h.set_cksum();
        tar.append(&h, data).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

fn result(out: &Path, student: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(out.join(format!("results/{student}.json"))).unwrap()).unwrap()
}

fn vlab_cgroups() -> Vec<String> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"]
        .iter()
        .filter_map(|r| std::fs::read_dir(r).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("vlab-grade-"))
        .collect()
}

fn loop_devices() -> usize {
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains("/dev/loop")).count()
}

#[test]
fn a_hostile_class_is_graded_fairly_and_the_host_is_unharmed() {
    let class = tempfile::tempdir().unwrap();
    let dir = class.path();
    // A host listener the network-cheat tries to reach; it must hear nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    submit(dir, "honest", SOLUTION);
    submit(dir, "half", HALF);
    submit(dir, "starter", STARTER);
    submit(dir, "forkbomb", "f() { f | f & }\nf\nsleep 30\n");
    submit(dir, "endless", "while :; do :; done\n");
    submit(dir, "flood", "yes 'flood flood flood'\n");
    submit(dir, "filler", "i=0\nwhile :; do dd if=/dev/zero of=fill$i bs=1M count=64 2>/dev/null; i=$((i+1)); done\n");
    submit(dir, "replay", "printf 'nonce=0123456789abcdef\\nanswer=42\\n' > \"$VLAB_RESULTS\"\n");
    let net = format!(
        "a=$(python3 -c \"import socket; s=socket.create_connection(('127.0.0.1', {port}), 2); print(s.recv(9).decode())\")\n\
         printf 'nonce=%s\\nanswer=%s\\n' \"$VLAB_NONCE\" \"$a\" > \"$VLAB_RESULTS\"\n"
    );
    submit(dir, "network", &net);
    raw_bundle(
        &dir.join("escape.tar.gz"),
        &[("files/01-script/../../../../tmp/vlab-escape", tar::EntryType::Regular, b"x", None)],
    );
    raw_bundle(
        &dir.join("symlink.tar.gz"),
        &[("files/01-script/work.sh", tar::EntryType::Symlink, b"", Some("/etc/shadow"))],
    );
    let permissive = "id = \"01-script\"\n[[steps]]\n";
    raw_bundle(
        &dir.join("ownlab.tar.gz"),
        &[
            ("files/01-script/lab.toml", tar::EntryType::Regular, permissive.as_bytes(), None),
            ("files/01-script/work.sh", tar::EntryType::Regular, STARTER.as_bytes(), None),
        ],
    );

    // The same file twice: a tar extractor would keep the last, a reader the first.
    raw_bundle(
        &dir.join("twice.tar.gz"),
        &[
            ("files/01-script/work.sh", tar::EntryType::Regular, STARTER.as_bytes(), None),
            ("files/01-script/./work.sh", tar::EntryType::Regular, SOLUTION.as_bytes(), None),
        ],
    );

    let cgroups_before = vlab_cgroups();
    let loops_before = loop_devices();
    let out = tempfile::tempdir().unwrap();
    let ws = workspace();
    let started = Instant::now();
    vlab_g(ws.path()).args(["grade", "--jobs", "2", "--out"]).arg(out.path()).arg(dir).assert().success();
    eprintln!("graded the class in {:.1}s", started.elapsed().as_secs_f64());

    let score = |s: &str| result(out.path(), s)["score"].as_f64().unwrap();
    assert_eq!(score("honest"), 3.0);
    assert_eq!(score("half"), 2.0);
    for zero in [
        "starter", "forkbomb", "endless", "flood", "filler", "replay", "network", "escape", "symlink", "ownlab",
        "twice",
    ] {
        assert_eq!(score(zero), 0.0, "{zero} must score 0: {:#}", result(out.path(), zero));
    }
    // Clear errors for the hostile ones.
    let message =
        |s: &str| result(out.path(), s)["labs"][0]["report"]["steps"][0]["message"].as_str().unwrap_or("").to_string();
    assert!(message("endless").contains("did not finish within 5s"), "{}", message("endless"));
    assert!(message("forkbomb").contains("did not finish within 5s"), "{}", message("forkbomb"));
    assert!(message("replay").contains("old nonce"), "{}", message("replay"));
    let error = |s: &str| result(out.path(), s)["error"].as_str().unwrap_or("").to_string();
    assert!(error("escape").contains("..") && error("escape").contains("rejected"), "{}", error("escape"));
    assert!(error("symlink").contains("not a regular file"), "{}", error("symlink"));
    assert!(error("ownlab").contains("not a file any lab asks for"), "{}", error("ownlab"));
    assert!(error("twice").contains("appears twice"), "{}", error("twice"));

    // The host is unharmed: nothing escaped, nothing was left behind.
    assert!(!Path::new("/tmp/vlab-escape").exists());
    assert!(listener.accept().is_err(), "a sandboxed submission reached a host listener");
    let new: Vec<String> = vlab_cgroups().into_iter().filter(|c| !cgroups_before.contains(c)).collect();
    assert!(new.is_empty(), "grading cgroups were left behind: {new:?}");
    assert_eq!(loop_devices(), loops_before, "a private filesystem stayed mounted");
    assert!(!out.path().join(".work").exists(), "work directories were left behind");

    // An honest submission scores the same graded alone.
    let alone = tempfile::tempdir().unwrap();
    vlab_g(ws.path()).args(["grade", "--out"]).arg(alone.path()).arg(dir.join("honest.tar.gz")).assert().success();
    let steps = |o: &Path| {
        result(o, "honest")["labs"][0]["report"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["outcome"].clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(steps(out.path()), steps(alone.path()));

    check_exports(out.path(), 13);
}

fn check_exports(out: &Path, students: usize) {
    let mut csv = csv::Reader::from_path(out.join("gradebook.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    assert_eq!(&headers[0], "student");
    assert!(headers.iter().any(|h| h == "01-script") && headers.iter().any(|h| h == "total"));
    assert_eq!(csv.records().count(), students);
    let junit = std::fs::read_to_string(out.join("junit.xml")).unwrap();
    let doc = roxmltree::Document::parse(&junit).expect("JUnit XML parses");
    assert_eq!(doc.root_element().tag_name().name(), "testsuites");
    assert_eq!(doc.root_element().children().filter(|n| n.has_tag_name("testsuite")).count(), students);
    for entry in std::fs::read_dir(out.join("gradescope")).unwrap() {
        let gs: serde_json::Value =
            serde_json::from_slice(&std::fs::read(entry.unwrap().path().join("results.json")).unwrap()).unwrap();
        assert!(gs["score"].is_number());
        for t in gs["tests"].as_array().unwrap() {
            assert!(
                t["name"].is_string()
                    && t["score"].is_number()
                    && t["max_score"].is_number()
                    && t["output"].is_string()
            );
            assert!(
                ["hidden", "after_due_date", "after_published", "visible"].contains(&t["visibility"].as_str().unwrap())
            );
        }
    }
    assert_eq!(std::fs::read_dir(out.join("feedback")).unwrap().count(), students);
}

#[test]
fn a_killed_grader_resumes_without_losing_or_duplicating_grades() {
    let class = tempfile::tempdir().unwrap();
    for i in 0..6 {
        submit(class.path(), &format!("s{i}"), if i % 2 == 0 { SOLUTION } else { HALF });
    }
    let out = tempfile::tempdir().unwrap();
    let ws = workspace();
    let mut grader = std::process::Command::new(assert_cmd::cargo::cargo_bin("vlab"))
        .args(["grade", "--jobs", "1", "--out"])
        .arg(out.path())
        .arg(class.path())
        .env("VLAB_LABS", grading_labs())
        .env("VLAB_WORKSPACE", ws.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let results = out.path().join("results");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_dir(&results).map(|r| r.count()).unwrap_or(0) < 2 {
        assert!(Instant::now() < deadline, "the grader made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    grader.kill().unwrap();
    grader.wait().unwrap();
    let before = std::fs::read_dir(&results).unwrap().count();
    assert!(before < 6, "the grader finished before it could be killed");

    let (code, summary) = {
        let o =
            vlab_g(ws.path()).args(["--json", "grade", "--out"]).arg(out.path()).arg(class.path()).output().unwrap();
        (o.status.code(), serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap())
    };
    assert_eq!(code, Some(0));
    assert_eq!(summary["resumed"].as_u64().unwrap() as usize, before, "finished results must not be regraded");
    assert_eq!(summary["graded"].as_u64().unwrap() as usize, 6 - before);
    for i in 0..6 {
        let want = if i % 2 == 0 { 3.0 } else { 2.0 };
        assert_eq!(result(out.path(), &format!("s{i}"))["score"].as_f64().unwrap(), want, "s{i}");
    }
    check_exports(out.path(), 6);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        vlab_cgroups().iter().all(|c| !c.contains(&format!("-{}-", grader.id()))),
        "the killed grader's cgroups were not cleaned"
    );
}

#[test]
fn policy_applies_late_penalties_and_hides_steps() {
    let class = tempfile::tempdir().unwrap();
    submit(class.path(), "late", SOLUTION);
    let policy = class.path().join("policy.toml");
    std::fs::write(&policy, "deadline = 1000\nlate_penalty_percent_per_day = 10\nmax_late_penalty_percent = 30\nhidden_steps = [\"01-script/file\"]\n").unwrap();
    let out = tempfile::tempdir().unwrap();
    let ws = workspace();
    vlab_g(ws.path())
        .args(["grade", "--policy"])
        .arg(&policy)
        .arg("--out")
        .arg(out.path())
        .arg(class.path().join("late.tar.gz"))
        .assert()
        .success();
    let r = result(out.path(), "late");
    assert_eq!(r["penalty_percent"].as_f64().unwrap(), 30.0);
    assert!((r["score"].as_f64().unwrap() - 2.1).abs() < 1e-9);
    let gs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("gradescope/late/results.json")).unwrap()).unwrap();
    let file_test = gs["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"].as_str().unwrap().contains(": file"))
        .unwrap()
        .clone();
    assert_eq!(file_test["visibility"], "after_published");
    let feedback = std::fs::read_to_string(out.path().join("feedback/late.md")).unwrap();
    assert!(feedback.contains("hidden until released"));
    // A broken policy names file and line.
    std::fs::write(&policy, "deadline = \"soon\"\n").unwrap();
    vlab_g(ws.path())
        .args(["grade", "--policy"])
        .arg(&policy)
        .arg("--out")
        .arg(out.path())
        .arg(class.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("policy.toml:1"));
}

#[test]
fn gradescope_mode_reads_the_autograder_layout() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("submission")).unwrap();
    submit(&root.path().join("submission"), "gs", SOLUTION);
    let ws = workspace();
    vlab_g(ws.path()).args(["grade", "--gradescope", "--autograder-root"]).arg(root.path()).assert().success();
    let gs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.path().join("results/results.json")).unwrap()).unwrap();
    assert_eq!(gs["score"].as_f64().unwrap(), 3.0);
    assert_eq!(gs["tests"].as_array().unwrap().len(), 2);
}

#[test]
fn submit_packs_only_declared_files_and_refuses_missing_ones() {
    let ws = workspace();
    vlab_g(ws.path()).args(["start", "01-script"]).assert().success();
    std::fs::write(ws.path().join("01-script/extra.txt"), "not declared").unwrap();
    let out = tempfile::tempdir().unwrap();
    let bundle = out.path().join("b.tar.gz");
    vlab_g(ws.path()).args(["submit", "--student", "x", "-o"]).arg(&bundle).assert().success();
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&bundle).unwrap()));
    for e in archive.entries().unwrap() {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names, ["manifest.json", "files/01-script/work.sh"]);
    std::fs::remove_file(ws.path().join("01-script/work.sh")).unwrap();
    vlab_g(ws.path())
        .args(["submit", "--student", "x", "-o"])
        .arg(out.path().join("c.tar.gz"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("work.sh is missing"));
    assert!(!out.path().join("c.tar.gz").exists(), "a failed submit must not leave a half-written bundle");
}
