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

/// The student names of the bundles in `dir`.
fn dir_students(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().strip_suffix(".tar.gz").map(str::to_string))
        .collect()
}

fn vlab_cgroups() -> Vec<String> {
    ["/sys/fs/cgroup", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory"]
        .iter()
        .filter_map(|r| std::fs::read_dir(r).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("vlab-grade-"))
        .collect()
}

/// Loop devices whose backing file lies under `dir` (a private disk that outlived its sandbox).
fn loops_under(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/sys/block")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| std::fs::read_to_string(e.path().join("loop/backing_file")).ok())
                .filter(|b| b.starts_with(&dir.display().to_string()))
                .collect()
        })
        .unwrap_or_default()
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
    // Whether the bomb outlives the limit or the script's own next fork fails first is a race.
    let bomb = message("forkbomb");
    assert!(bomb.contains("did not finish within 5s") || bomb.contains("Cannot fork"), "{bomb}");
    assert!(message("replay").contains("old nonce"), "{}", message("replay"));
    let error = |s: &str| result(out.path(), s)["error"].as_str().unwrap_or("").to_string();
    assert!(error("escape").contains("..") && error("escape").contains("rejected"), "{}", error("escape"));
    assert!(error("symlink").contains("not a regular file"), "{}", error("symlink"));
    assert!(error("ownlab").contains("not a file any lab asks for"), "{}", error("ownlab"));
    assert!(error("twice").contains("appears twice"), "{}", error("twice"));

    // The host is unharmed: nothing escaped, nothing was left behind.
    assert!(!Path::new("/tmp/vlab-escape").exists());
    assert!(listener.accept().is_err(), "a sandboxed submission reached a host listener");
    // Only this class's: other graders (other tests, benches) may be running beside it.
    let ours = |c: &String| dir_students(dir).iter().any(|s| c.ends_with(&format!("-{s}")));
    let new: Vec<String> = vlab_cgroups().into_iter().filter(|c| !cgroups_before.contains(c) && ours(c)).collect();
    assert!(new.is_empty(), "grading cgroups were left behind: {new:?}");
    assert_eq!(loop_devices(), loops_before, "a private filesystem stayed mounted");
    assert_eq!(loops_under(out.path()), Vec::<String>::new(), "a private disk's loop device stayed attached");
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
    // Finished results only: a result being written is a temporary file beside them.
    let count = || {
        std::fs::read_dir(&results)
            .map(|r| r.flatten().filter(|e| e.file_name().to_string_lossy().ends_with(".json")).count())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while count() < 2 {
        assert!(Instant::now() < deadline, "the grader made no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    grader.kill().unwrap();
    grader.wait().unwrap();
    // The kernel drops the dead grader's lock on OUT/.lock once every
    // descriptor of it is closed; a child caught between fork and exec holds
    // one for a moment. It must not outlive the grader for long.
    let lock = std::fs::File::open(out.path().join(".lock")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // SAFETY: flock on a descriptor this test owns; the result is checked.
    while unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        assert!(Instant::now() < deadline, "the killed grader's lock on OUT/.lock outlived it by 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(lock);
    let before = count();
    assert!(before < 6, "the grader finished before it could be killed");

    let (code, summary) = {
        let o =
            vlab_g(ws.path()).args(["--json", "grade", "--out"]).arg(out.path()).arg(class.path()).output().unwrap();
        let summary = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap_or_else(|e| {
            panic!("the resumed grader printed no summary ({e}); it said: {}", String::from_utf8_lossy(&o.stderr))
        });
        (o.status.code(), summary)
    };
    assert_eq!(code, Some(0));
    assert_eq!(summary["resumed"].as_u64().unwrap() as usize, before, "finished results must not be regraded");
    assert_eq!(summary["graded"].as_u64().unwrap() as usize, 6 - before);
    for i in 0..6 {
        let want = if i % 2 == 0 { 3.0 } else { 2.0 };
        assert_eq!(result(out.path(), &format!("s{i}"))["score"].as_f64().unwrap(), want, "s{i}");
    }
    check_exports(out.path(), 6);
    assert_eq!(std::fs::read_dir(&results).unwrap().count(), 6, "a half-written result was left behind");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        vlab_cgroups().iter().all(|c| !c.contains(&format!("-{}-", grader.id()))),
        "the killed grader's cgroups were not cleaned"
    );
    // Its sandboxes died with it (bubblewrap's --die-with-parent), taking their private disks.
    assert_eq!(loops_under(out.path()), Vec::<String>::new(), "a killed sandbox's loop device stayed attached");
    assert!(!out.path().join(".work").exists(), "the killed grader's work directories were not cleaned");
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

/// Copies of what a hostile submission would love to change: the fixture
/// labs (solutions included) and the vlab binary the grader runs. The tests
/// grade with these, so an escape could never damage the repo or target/.
struct Grader {
    dir: tempfile::TempDir,
}

impl Grader {
    fn new() -> Grader {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("labs")).unwrap();
        overlay(&grading_labs(), &dir.path().join("labs"));
        std::fs::copy(assert_cmd::cargo::cargo_bin("vlab"), dir.path().join("vlab")).unwrap();
        Grader { dir }
    }
    fn labs(&self) -> PathBuf {
        self.dir.path().join("labs")
    }
    fn exe(&self) -> PathBuf {
        self.dir.path().join("vlab")
    }
    fn cmd(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(self.exe());
        cmd.env("VLAB_LABS", self.labs()).env("NO_COLOR", "1");
        cmd
    }
    /// Grades `class` into `out`; returns the grader's pid (it names its cgroups) and its output.
    fn grade(&self, out: &Path, class: &Path) -> (u32, std::process::Output) {
        let child = self
            .cmd()
            .args(["grade", "--jobs", "2", "--out"])
            .arg(out)
            .arg(class)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        (child.id(), child.wait_with_output().unwrap())
    }
}

/// Every regular file under `dir` with its content, for byte-for-byte comparisons.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let t = e.file_type().unwrap();
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                files.insert(e.path(), std::fs::read(e.path()).unwrap());
            }
        }
    }
    files
}

fn all_text(dir: &Path) -> String {
    snapshot(dir).values().map(|b| String::from_utf8_lossy(b).into_owned()).collect::<Vec<_>>().join("\n")
}

/// An attack, then the honest solution: the submission must score what the solution alone scores.
/// A success prints a marker assembled at run time (the script's text never holds it).
fn hostile(attack: &str) -> String {
    format!("M=ESC; M=\"${{M}}APED\"\n{attack}\n{SOLUTION}")
}

#[test]
fn hostile_submissions_change_nothing_on_the_host_and_learn_nothing() {
    let g = Grader::new();
    let class = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let tag = format!("vlab-pwned-{}", std::process::id());
    let (labs, outp, classp, exe) = (g.labs(), out.path().to_path_buf(), class.path().to_path_buf(), g.exe());
    let writes: Vec<String> = [
        format!("/tmp/{tag}"),
        format!("/root/{tag}"),
        format!("/etc/{tag}"),
        format!("/usr/{tag}"),
        format!("/{tag}"),
        format!("{}/{tag}", classp.display()),
        format!("{}/{tag}", outp.display()),
        format!("{}/results/honest.json", outp.display()),
        format!("{}/.lock", outp.display()),
        format!("{}/gradebook.csv", outp.display()),
        format!("{}/01-script/lab.toml", labs.display()),
        format!("{}/01-script/solution/work.sh", labs.display()),
        exe.display().to_string(),
    ]
    .into_iter()
    .collect();
    let write_all = format!(
        "for p in {}; do (echo pwned > \"$p\") 2>/dev/null && echo \"$M:write:$p\"; done\n\
         rm -rf {}/results {} 2>/dev/null; [ -e {} ] || echo \"$M:removed\"",
        writes.join(" "),
        outp.display(),
        labs.display(),
        labs.display()
    );
    let secrets = format!(
        "for f in /etc/shadow /etc/gshadow /root/.bash_history {}/01-script/solution/work.sh {}/honest.tar.gz; do \
         c=$(head -c 300 \"$f\" 2>/dev/null | base64 -w0) && [ -n \"$c\" ] && echo \"$M:read:$f:$c\"; done",
        labs.display(),
        classp.display()
    );
    // Its own workspace ($HOME, where the runner makes each check's results file) is its own to see.
    let find_and_exec = "sol=$(find / -path '*/01-script/solution/work.sh' 2>/dev/null | head -1)\n\
        [ -n \"$sol\" ] && echo \"$M:found:$sol\" && cp \"$sol\" ./stolen.sh && exec sh ./stolen.sh \"$1\"\n\
        for f in $(find / \\( -path /usr -o -path /proc -o -path \"$HOME\" \\) -prune -o \\( -name 'lab.toml' -o -name '*.tar.gz' -o -name 'results' -o -name 'solution' \\) -print 2>/dev/null); do echo \"$M:saw:$f\"; done";
    let devices = "mknod ./sda b 8 0 2>/dev/null && echo \"$M:mknod\"\n\
        unshare -r sh -c 'mknod ./sdb b 8 16' 2>/dev/null && echo \"$M:mknod-userns\"\n\
        for d in /dev/sd? /dev/vd? /dev/nvme0n1 /dev/xvda /dev/loop0 /dev/mapper /dev/mem /dev/kmem /dev/port; do [ -e \"$d\" ] && echo \"$M:device:$d\"; done\n\
        mkdir -p mnt; for d in /dev/sda1 /dev/vda1 /dev/loop0; do mount \"$d\" mnt 2>/dev/null && echo \"$M:mount:$d\"; \
        unshare -rm sh -c \"mount $d mnt\" 2>/dev/null && echo \"$M:mount-userns:$d\"; done\n\
        mount -t proc proc mnt 2>/dev/null && echo \"$M:mount-proc\"";
    let kernel = "modprobe dummy 2>/dev/null && echo \"$M:modprobe\"\n\
        m=$(find /lib/modules /usr/lib/modules -name 'dummy.ko*' 2>/dev/null | head -1); [ -n \"$m\" ] && insmod \"$m\" 2>/dev/null && echo \"$M:insmod\"\n\
        hostname vlab-pwned 2>/dev/null && echo \"$M:hostname\"\n\
        (echo vlab-pwned > /proc/sys/kernel/hostname) 2>/dev/null && echo \"$M:sysctl-hostname\"\n\
        (echo 1 > /proc/sys/vm/drop_caches) 2>/dev/null && echo \"$M:sysctl-vm\"\n\
        (echo 17 > /proc/sys/vm/swappiness) 2>/dev/null && echo \"$M:sysctl-swappiness\"\n\
        (echo 0 > /proc/sys/kernel/randomize_va_space) 2>/dev/null && echo \"$M:sysctl-aslr\"\n\
        [ -e /sys/fs/cgroup/cgroup.procs ] || [ -d /sys/fs/cgroup/pids ] && echo \"$M:cgroupfs\"; true";
    // The grader inside the sandbox runs as the same uid: its stdout (the
    // verdict) and its memory must still be out of the submission's reach.
    let forge = "for p in $PPID 1 2 3; do (printf '{\"reports\":[],\"protections\":[]}\\n' > /proc/$p/fd/1) 2>/dev/null && echo \"$M:forged:$p\"; \
        (head -c 1 /proc/$p/mem) 2>/dev/null >/dev/null && echo \"$M:mem:$p\"; \
        ls /proc/$p/fd/ >/dev/null 2>&1 && echo \"$M:fds:$p\"; done; true";
    submit(class.path(), "honest", SOLUTION);
    submit(class.path(), "writer", &hostile(&write_all));
    submit(class.path(), "reader", &hostile(&secrets));
    submit(class.path(), "devices", &hostile(devices));
    submit(class.path(), "kernel", &hostile(kernel));
    submit(class.path(), "forger", &hostile(forge));
    // The issue's thief: a starter that runs the instructor's solution if it can find one.
    submit(class.path(), "thief", &format!("M=ESC; M=\"${{M}}APED\"\n{find_and_exec}\n{STARTER}"));

    let host_hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let sysctls = ["vm/swappiness", "kernel/randomize_va_space", "kernel/domainname"]
        .map(|s| std::fs::read_to_string(format!("/proc/sys/{s}")).unwrap());
    // Some kernels (and containers) have no /proc/modules; then insmod is judged by the marker alone.
    let modules_before = std::fs::read_to_string("/proc/modules").unwrap_or_default();
    let labs_before = snapshot(&g.labs());
    let class_before = snapshot(class.path());
    let exe_before = std::fs::read(g.exe()).unwrap();
    let loops_before = loop_devices();

    let (pid, o) = g.grade(out.path(), class.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The grader's own state and the host: byte for byte unchanged.
    assert_eq!(snapshot(&g.labs()), labs_before, "the canonical labs changed");
    assert_eq!(snapshot(class.path()), class_before, "the submissions changed");
    assert!(std::fs::read(g.exe()).unwrap() == exe_before, "the vlab binary changed");
    for p in &writes {
        assert!(!std::fs::read_to_string(p).unwrap_or_default().starts_with("pwned"), "{p} was written");
    }
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host_hostname);
    let after = ["vm/swappiness", "kernel/randomize_va_space", "kernel/domainname"]
        .map(|s| std::fs::read_to_string(format!("/proc/sys/{s}")).unwrap());
    assert_eq!(after, sysctls, "a host sysctl changed");
    if !modules_before.lines().any(|l| l.starts_with("dummy ")) {
        let modules = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        assert!(!modules.lines().any(|l| l.starts_with("dummy ")), "a submission loaded a kernel module");
    }
    // Nothing got out, and nothing secret came back.
    let text = all_text(out.path());
    let escapes: Vec<&str> = text.lines().filter(|l| l.contains("ESCAPED")).collect();
    assert!(escapes.is_empty(), "attacks succeeded inside the sandbox: {escapes:#?}");
    if let Ok(shadow) = std::fs::read_to_string("/etc/shadow") {
        let first = shadow.lines().next().unwrap_or_default();
        assert!(first.len() < 8 || !text.contains(first), "/etc/shadow came back in the results");
    }
    let solution = std::fs::read_to_string(g.labs().join("01-script/solution/work.sh")).unwrap();
    assert!(!text.contains(solution.trim()), "the instructor's solution came back in the results");

    // Each scores exactly what its honest files score: the attacks are no-ops.
    let score = |s: &str| result(out.path(), s)["score"].as_f64().unwrap();
    for s in ["honest", "writer", "reader", "devices", "kernel", "forger"] {
        assert_eq!(score(s), 3.0, "{s}: {:#}", result(out.path(), s));
    }
    assert_eq!(score("thief"), 0.0, "the thief ran the solution: {:#}", result(out.path(), "thief"));
    let steps = |s: &str| {
        result(out.path(), s)["labs"][0]["report"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["step"].clone(), s["outcome"].clone()))
            .collect::<Vec<_>>()
    };
    for s in ["writer", "reader", "devices", "kernel", "forger"] {
        assert_eq!(steps(s), steps("honest"), "{s}");
    }
    let protections = result(out.path(), "honest")["protections"].to_string();
    assert!(protections.contains("own root filesystem") && protections.contains("no capabilities"), "{protections}");
    let left: Vec<String> = vlab_cgroups().into_iter().filter(|c| c.contains(&format!("-{pid}-"))).collect();
    assert!(left.is_empty(), "grading cgroups were left behind: {left:?}");
    assert!(loop_devices() <= loops_before, "a private filesystem stayed mounted");
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(loops_under(out.path()), Vec::<String>::new(), "a private disk's loop device stayed attached");
    assert!(!out.path().join(".work").exists(), "work directories were left behind");
    for p in [format!("/tmp/{tag}"), format!("/{tag}")] {
        assert!(!Path::new(&p).exists(), "{p} exists");
    }
}

#[test]
fn a_second_grader_on_the_same_output_refuses_and_nothing_is_graded_twice() {
    let g = Grader::new();
    let class = tempfile::tempdir().unwrap();
    for i in 0..4 {
        submit(class.path(), &format!("s{i}"), &format!("sleep 1\n{SOLUTION}"));
    }
    let out = tempfile::tempdir().unwrap();
    let first = g
        .cmd()
        .args(["--json", "grade", "--jobs", "1", "--out"])
        .arg(out.path())
        .arg(class.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lock = out.path().join(".lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read_to_string(&lock).unwrap_or_default().trim() != first.id().to_string() {
        assert!(Instant::now() < deadline, "the first grader never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, second) = g.grade(out.path(), class.path());
    assert_eq!(second.status.code(), Some(2));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("another `vlab grade`") && err.contains(&first.id().to_string()) && err.contains("--out"),
        "{err}"
    );
    let summary: serde_json::Value = {
        let o = first.wait_with_output().unwrap();
        assert!(o.status.success());
        serde_json::from_slice(&o.stdout).unwrap()
    };
    assert_eq!(summary["graded"], 4);
    for i in 0..4 {
        assert_eq!(result(out.path(), &format!("s{i}"))["score"].as_f64().unwrap(), 3.0);
    }
    // The lock dies with its grader: the next run resumes everything, grades nothing twice.
    let o = g.cmd().args(["--json", "grade", "--out"]).arg(out.path()).arg(class.path()).output().unwrap();
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((again["graded"].as_u64(), again["resumed"].as_u64()), (Some(0), Some(4)));
}

#[test]
fn a_privileged_lab_gets_its_own_cgroup_subtree_and_nothing_more() {
    let g = Grader::new();
    let toml = g.labs().join("01-script/lab.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("estimate_minutes = 1\n", "estimate_minutes = 1\n\n[grading]\nprivileges = [\"cgroup\"]\n"),
    )
    .unwrap();
    let probe = "M=ESC; M=\"${M}APED\"\n\
        p=/sys/fs/cgroup/pids\n\
        mkdir \"$p/mine-$1\" && echo 5 > \"$p/mine-$1/pids.max\" && sh -c 'echo $$ > \"$0/cgroup.procs\"' \"$p/mine-$1\" && echo DELEGATED\n\
        ls \"$p\" | grep -q vlab-grade && echo \"$M:saw-other-jails\"\n\
        [ -e /sys/fs/cgroup/blkio ] && echo \"$M:undelegated-controller\"\n\
        grep -q '^CapEff:\\s*0*$' /proc/self/status || echo \"$M:capabilities\"\n\
        mknod ./sda b 8 0 2>/dev/null && echo \"$M:mknod\"\n\
        hostname vlab-pwned 2>/dev/null && echo \"$M:hostname\"\n\
        (echo pwned > /etc/passwd) 2>/dev/null && echo \"$M:etc\"\n\
        echo \"uid=$(id -u)\"\n\
        (echo max > \"$p/pids.max\"; for i in $(seq 600); do sleep 1 & done; wait) 2>/dev/null && echo \"$M:raised-pids\"\n";
    let class = tempfile::tempdir().unwrap();
    // The answer step passes; the file step prints what it saw and fails, so the feedback shows it.
    // The pids flood comes last: past it, the script's shell cannot fork (only builtins follow).
    submit(class.path(), "root", &format!("{probe}[ \"$1\" = file ] && exit 1\n{SOLUTION}"));
    let host_pids: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let out = tempfile::tempdir().unwrap();
    let (pid, o) = g.grade(out.path(), class.path());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = result(out.path(), "root");
    if r["protections"].to_string().contains("not granted") || r["protections"].to_string().contains("no cgroup") {
        skip(format_args!("cgroup privileges need root and a writable cgroup hierarchy: {}", r["protections"]));
        return;
    }
    assert_eq!(r["score"].as_f64().unwrap(), 2.0, "{r:#}");
    let seen = r["labs"][0]["report"]["steps"][1]["message"].as_str().unwrap().to_string();
    assert!(seen.contains("DELEGATED") && seen.contains("uid=0"), "{seen}");
    assert!(!seen.contains("ESCAPED"), "{seen}");
    assert!(r["protections"].to_string().contains("capabilities: none"), "{}", r["protections"]);
    let after: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let made: Vec<&String> = after.iter().filter(|d| d.starts_with("mine-") && !host_pids.contains(d)).collect();
    assert!(made.is_empty(), "{made:?} were made in the host's hierarchy");
    let left: Vec<String> = vlab_cgroups().into_iter().filter(|c| c.contains(&format!("-{pid}-"))).collect();
    assert!(left.is_empty(), "grading cgroups were left behind: {left:?}");
}

/// The real container labs' solutions, graded in the sandbox, score what they
/// score on the host: lab 03 nests user namespaces and mounts its own /proc,
/// and lab 05's rootless step has runc mount /proc and /sys in a user
/// namespace and stat /sys/fs/cgroup as a mapped root.
#[test]
fn the_container_labs_solutions_grade_fully_in_the_sandbox() {
    supervise();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return skip("grading runc labs in the sandbox needs root");
    }
    let ws = workspace();
    let out = workspace();
    let bundle = ws.path().join("honest.tar.gz");
    for lab in ["03-namespaces", "05-oci"] {
        vlab(ws.path()).args(["start", lab]).assert().success();
        overlay(&labs().join(lab).join("solution"), &ws.path().join(lab));
    }
    vlab(ws.path())
        .args(["submit", "--student", "honest", "03-namespaces", "05-oci", "-o"])
        .arg(&bundle)
        .assert()
        .success();
    vlab(ws.path()).args(["grade", "--out"]).arg(out.path()).arg(&bundle).assert().success();
    let graded = result(out.path(), "honest");
    for lab in ["03-namespaces", "05-oci"] {
        let report = graded["labs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["report"]["lab"] == lab)
            .unwrap_or_else(|| panic!("{lab} not graded: {graded:#}"));
        let steps = report["report"]["steps"].as_array().unwrap();
        let lost: Vec<_> = steps
            .iter()
            .filter(|s| s["outcome"] != "pass" && s["outcome"] != "skipped")
            .map(|s| (&s["step"], &s["message"]))
            .collect();
        assert!(lost.is_empty(), "{lab}'s solution lost points in the sandbox: {lost:#?}");
        let passed = steps.iter().filter(|s| s["outcome"] == "pass").count();
        assert!(passed * 2 > steps.len(), "{lab}: most steps must really run and pass, not be skipped: {steps:#?}");
    }
}
