//! Nothing survives a check: not on timeout, not on Ctrl-C. And observing
//! checks see what really ran, not what was printed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use predicates::prelude::*;

fn lab_toml(id: &str, check: &str) -> String {
    format!(
        "id = \"{id}\"\ntitle = \"T\"\ntier = \"containers\"\nchapter = \"containers.md\"\nsummary = \"s\"\nestimate_minutes = 1\n\n\
         [[steps]]\nid = \"only\"\ntitle = \"Only\"\npoints = 1\ninstructions = \"x\"\nhints = [\"h\"]\nfiles = [\"run.sh\"]\n\n[[steps.checks]]\n{check}\n"
    )
}

const SLEEPER: &str = "sleep 1000 & echo $! > bg.pid\nsetsid sleep 1000 & echo $! >> bg.pid\nsleep 1000\n";

fn pids(path: &std::path::Path) -> Vec<i32> {
    std::fs::read_to_string(path).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

fn scratch_dirs(ws: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(ws.join(".vlab"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("check-"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_check_that_sleeps_forever_is_killed_at_its_limit_with_its_children() {
    let toml = lab_toml("01-sleep", "kind = \"run\"\ncommand = [\"sh\", \"run.sh\"]\ntimeout_secs = 1");
    let labs = fixture_labs("01-sleep", &toml, &[("run.sh", SLEEPER)], &[("run.sh", "true\n")]);
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-sleep"]).assert().success();
    let started = Instant::now();
    vlab_with_labs(ws.path(), labs.path())
        .args(["check", "01-sleep"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("did not finish within 1s and was killed"));
    assert!(started.elapsed() < Duration::from_secs(30));
    let bg = pids(&ws.path().join("01-sleep/bg.pid"));
    assert_eq!(bg.len(), 2, "the script did not record its background children");
    for pid in bg {
        assert!(!alive(pid), "background child {pid} outlived the check");
    }
    assert!(
        scratch_dirs(&ws.path().join("01-sleep")).is_empty(),
        "scratch left behind: {:?}",
        scratch_dirs(&ws.path().join("01-sleep"))
    );
}

#[test]
fn ctrl_c_stops_every_child_and_removes_scratch() {
    let toml = lab_toml("01-sleep", "kind = \"run\"\ncommand = [\"sh\", \"run.sh\"]\ntimeout_secs = 600");
    let labs = fixture_labs("01-sleep", &toml, &[("run.sh", SLEEPER)], &[("run.sh", "true\n")]);
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-sleep"]).assert().success();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("vlab"))
        .args(["check", "01-sleep"])
        .env("VLAB_WORKSPACE", ws.path())
        .env("VLAB_LABS", labs.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pidfile = ws.path().join("01-sleep/bg.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while pids(&pidfile).len() < 2 {
        assert!(Instant::now() < deadline, "the check never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!scratch_dirs(&ws.path().join("01-sleep")).is_empty(), "a running check has a scratch dir");
    // SAFETY: a plain signal send to the vlab this test started; the result is checked.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0, "cannot interrupt vlab");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "vlab did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted"), "{err}");
    std::thread::sleep(Duration::from_millis(100));
    for pid in pids(&pidfile) {
        assert!(!alive(pid), "child {pid} outlived Ctrl-C");
    }
    assert!(
        scratch_dirs(&ws.path().join("01-sleep")).is_empty(),
        "scratch left behind: {:?}",
        scratch_dirs(&ws.path().join("01-sleep"))
    );
}

/// Leaves its session and process group, drops the runner's mark and
/// double-forks: only the check's cgroup still holds it.
const DAEMON: &str = "env -u VLAB_RUNNER_PID setsid sh -c 'sh -c \"echo \\$\\$ > daemon.pid; exec sleep 1000\" & exit 0' &\n\
                      while [ ! -s daemon.pid ]; do sleep 0.01; done\nsleep 1000\n";

#[test]
fn a_check_killed_at_its_limit_takes_a_detached_scrubbed_daemon_with_it() {
    let toml = lab_toml("01-daemon", "kind = \"run\"\ncommand = [\"sh\", \"run.sh\"]\ntimeout_secs = 2");
    let labs = fixture_labs("01-daemon", &toml, &[("run.sh", DAEMON)], &[("run.sh", "true\n")]);
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-daemon"]).assert().success();
    vlab_with_labs(ws.path(), labs.path())
        .args(["check", "01-daemon"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("did not finish within 2s and was killed"));
    let daemon = pids(&ws.path().join("01-daemon/daemon.pid"));
    assert_eq!(daemon.len(), 1, "the script did not record its daemon");
    let state = vlab::proc::info(daemon[0]).map(|p| p.state);
    if state.is_some() {
        // SAFETY: a plain signal send to the daemon this test made, so it does not outlive the test.
        unsafe { libc::kill(daemon[0], libc::SIGKILL) };
    }
    assert_eq!(state, None, "the daemon {} outlived the check (state {state:?})", daemon[0]);
}

const OBSERVE: &str = r#"kind = "observe"
command = ["sh", "run.sh"]
timeout_secs = 20
[expect]
facts = [
    { fact = "ns.pid", equals = "new", message = "the shell must be in a new PID namespace" },
    { fact = "ns.uts", equals = "new", message = "new UTS namespace" },
    { fact = "ns.net", equals = "new", message = "new network namespace" },
    { fact = "pid_in_ns", equals = "1", message = "the probe must be PID 1" },
    { fact = "hostname", equals = "box", message = "hostname must be box" },
    { fact = "net.interfaces", equals = "lo", message = "only loopback" },
]"#;

fn observe_labs() -> tempfile::TempDir {
    let toml = lab_toml("01-observe", &OBSERVE.replace("[expect]", "[steps.checks.expect]"));
    let solution = "exec unshare --user --map-root-user --pid --fork --mount-proc --uts --net sh -c 'hostname box; exec sh \"$VLAB_PROBE\"'\n";
    fixture_labs("01-observe", &toml, &[("run.sh", "exec sh \"$VLAB_PROBE\"\n")], &[("run.sh", solution)])
}

fn observe_with(script: &str) -> serde_json::Value {
    let labs = observe_labs();
    let ws = workspace();
    vlab_with_labs(ws.path(), labs.path()).args(["start", "01-observe"]).assert().success();
    std::fs::write(ws.path().join("01-observe/run.sh"), script).unwrap();
    let out = vlab_with_labs(ws.path(), labs.path()).args(["--json", "check", "01-observe"]).output().unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn observe_sees_the_namespaces_the_probe_really_runs_in() {
    let script = "exec unshare --user --map-root-user --pid --fork --mount-proc --uts --net sh -c 'hostname box; exec sh \"$VLAB_PROBE\"'\n";
    let report = observe_with(script);
    let step = &report["steps"][0];
    assert_eq!(step["outcome"], "pass", "{step:#}");
    let evidence = &step["checks"][0]["evidence"];
    assert_eq!(evidence["ns.user"], "new");
    assert_eq!(evidence["ns.mnt"], "new");
    assert_eq!(evidence["probe.intact"], "yes");
}

#[test]
fn observe_fails_a_probe_left_on_the_host() {
    let report = observe_with("exec sh \"$VLAB_PROBE\"\n");
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "fail");
    assert!(message.contains("new PID namespace") && message.contains("\"host\""), "{message}");
}

#[test]
fn observe_fails_a_script_that_only_prints_the_probe_line() {
    let report = observe_with("echo \"vlab-probe: nonce=$VLAB_NONCE pid=1\"\nsleep 1\n");
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "fail");
    assert!(message.contains("without starting the probe"), "{message}");
}

#[test]
fn observe_fails_a_modified_probe() {
    let script = "mkdir -p fake && sed 's/sleep 0.1/sleep 0.2/' \"$VLAB_PROBE\" > fake/vlab-probe\n\
                  exec unshare --user --map-root-user --pid --fork --mount-proc --uts --net sh -c 'hostname box; exec sh fake/vlab-probe'\n";
    let report = observe_with(script);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "fail");
    // A changed copy is not the probe the runner placed (it knows that one by its inode): never found.
    assert!(message.contains("a copy or a changed probe does not count"), "{message}");
}
