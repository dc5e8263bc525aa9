//! The container labs against the real host: rootless namespaces, chroot
//! fakes, ways out of a container, and nothing left behind (mounts, network namespaces, interfaces,
//! cgroups, runc containers, processes) after success, failure and timeout.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;

/// The tests here time things and watch the whole host: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poison| poison.into_inner())
}

fn root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// What a check could leave on the host, limited to what belongs to `ws`
/// where the host is shared with other tests.
#[derive(Debug, PartialEq)]
struct HostState {
    mounts: BTreeSet<String>,
    netns: BTreeSet<String>,
    interfaces: BTreeSet<String>,
    cgroups: Vec<std::path::PathBuf>,
    processes: Vec<String>,
    /// UML instance directories in the default uml_dir.
    uml_dirs: BTreeSet<String>,
}

fn names(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default()
}

fn host_state(ws: &Path) -> HostState {
    let ws_text = ws.to_string_lossy().into_owned();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(&ws_text))
        .map(str::to_string)
        .collect();
    // Processes whose root or working directory lies in the workspace, or that run UML or runc from it.
    let mut processes = Vec::new();
    for pid in names("/proc").iter().filter(|p| p.parse::<u32>().is_ok()) {
        let link = |what: &str| std::fs::read_link(format!("/proc/{pid}/{what}")).ok();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let inside = [link("root"), link("cwd")].into_iter().flatten().any(|p| p.starts_with(ws))
            || String::from_utf8_lossy(&cmdline).contains(&ws_text);
        if inside && alive(pid.parse().unwrap()) {
            processes.push(format!("{pid}: {}", String::from_utf8_lossy(&cmdline).replace('\0', " ")));
        }
    }
    HostState {
        mounts,
        netns: names("/run/netns"),
        interfaces: names("/sys/class/net"),
        // Groups of runners still running belong to tests running alongside.
        cgroups: vlab::container::cgroup::leftovers()
            .into_iter()
            .filter(|d| {
                let name = d.file_name().unwrap().to_string_lossy().into_owned();
                let pid = name.trim_start_matches("vlab-").split('-').next().unwrap().parse().unwrap();
                !alive(pid)
            })
            .collect(),
        processes,
        uml_dirs: names(&format!("{}/.uml", std::env::var("HOME").unwrap_or_default())),
    }
}

fn assert_left_as_it_was(before: &HostState, ws: &Path) {
    let after = host_state(ws);
    assert_eq!(before, &after, "the host changed: something was left behind");
    assert!(after.cgroups.is_empty(), "vlab cgroups left: {:?}", after.cgroups);
}

/// `vlab` run as the unprivileged user nobody, with `ws` as its workspace and home.
fn vlab_as_nobody(ws: &Path) -> assert_cmd::Command {
    let bin = assert_cmd::cargo::cargo_bin("vlab");
    let mut cmd = assert_cmd::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin)
        .env("VLAB_WORKSPACE", ws)
        .env("VLAB_LABS", labs())
        .env("HOME", ws)
        .env("NO_COLOR", "1")
        .env_remove("VLAB_NONCE")
        .timeout(std::time::Duration::from_secs(300));
    cmd
}

#[test]
fn namespaces_solution_passes_rootless_and_leaves_nothing() {
    let _serial = serial();
    if !root() {
        skip("needs root to switch to the user nobody for the rootless run");
        return;
    }
    let ws = workspace();
    std::fs::set_permissions(ws.path(), std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let before = host_state(ws.path());
    vlab_as_nobody(ws.path()).args(["start", "namespaces"]).assert().success();
    overlay(&labs().join("03-namespaces/solution"), &ws.path().join("03-namespaces"));
    let out = vlab_as_nobody(ws.path()).args(["--json", "check", "namespaces"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("no JSON ({e}): {}", String::from_utf8_lossy(&out.stderr)));
    for (step, outcome, message) in outcomes(&report) {
        if outcome == "skipped" && message.contains("userns") {
            skip(&message);
            return;
        }
        assert_eq!(outcome, "pass", "rootless {step}: {message}");
    }
    let uid_map = &report["steps"][4]["checks"][0]["evidence"]["uid_map"];
    assert_eq!(uid_map, "0 65534 1", "root inside must be nobody outside");
    assert_left_as_it_was(&before, ws.path());
}

/// The namespaces solution with `edit` applied to its script.
fn namespaces_variant(edit: impl Fn(&str) -> String) -> (tempfile::TempDir, HostState) {
    let ws = workspace();
    let before = host_state(ws.path());
    vlab(ws.path()).args(["start", "namespaces"]).assert().success();
    let script = std::fs::read_to_string(labs().join("03-namespaces/solution/container.sh")).unwrap();
    std::fs::write(ws.path().join("03-namespaces/container.sh"), edit(&script)).unwrap();
    (ws, before)
}

fn pivot_message(ws: &Path) -> (String, String) {
    let (_, report) = json(ws, &["check", "namespaces", "--step", "pivot"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    (outcome, message)
}

#[test]
fn chroot_inside_namespaces_is_not_pivot_root() {
    let _serial = serial();
    let (ws, before) = namespaces_variant(|s| {
        let start = s.find("        # pivot_root wants").unwrap();
        let end = s.find("    '\n").unwrap();
        format!(
            "{}        mount --bind rootfs rootfs\n        exec chroot rootfs /bin/sh -c \"mount -t proc proc /proc; exec /.vlab/vlab-probe\"\n{}",
            &s[..start],
            &s[end..]
        )
    });
    let (outcome, message) = pivot_message(ws.path());
    if outcome == "skipped" {
        skip(&message);
        return;
    }
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("mnt.ns_root"), "{message}");
    assert_left_as_it_was(&before, ws.path());
}

#[test]
fn pivot_root_without_unmounting_the_old_root_fails() {
    let _serial = serial();
    let (ws, before) = namespaces_variant(|s| s.replace("/bin/busybox umount -l /old-root", "true"));
    let (outcome, message) = pivot_message(ws.path());
    if outcome == "skipped" {
        skip(&message);
        return;
    }
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("mnt.old_root_visible"), "{message}");
    assert_left_as_it_was(&before, ws.path());
}

/// Files named like the runner's escape markers under `dir`.
fn markers(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                dirs.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with("vlab-marker-") {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn ways_out_of_a_container_fail_and_leave_nothing_behind() {
    let _serial = serial();
    let cases = [
        ("03-namespaces", "move-chroot", "pivot", "lies under the container's root"),
        ("03-namespaces", "fd-on-host-root", "pivot", "the runner's marker"),
        ("05-oci", "host-root-bind", "bundle", "the runner's marker"),
        ("05-oci", "decoy-runc", "bundle", "not the runc binary"),
    ];
    for (lab, fake, step, seen) in cases {
        let ws = workspace();
        let before = host_state(ws.path());
        vlab(ws.path()).args(["start", lab]).assert().success();
        overlay(&repo().join("tests/fakes").join(lab).join(fake), &ws.path().join(lab));
        let (_, report) = json(ws.path(), &["check", lab, "--step", step]);
        let (_, outcome, message) = outcomes(&report).pop().unwrap();
        if outcome == "skipped" {
            skip(format_args!("{lab}/{fake}: {message}"));
            continue;
        }
        assert_eq!(outcome, "fail", "{lab}/{fake}: {message}");
        assert!(message.contains(seen), "{lab}/{fake}: {message}");
        assert_eq!(markers(ws.path()), Vec::<std::path::PathBuf>::new(), "{lab}/{fake}: a marker was left");
        assert_left_as_it_was(&before, ws.path());
    }
}

const CGROUP_LAB: &str = r#"
id = "90-cgroup-leak"
title = "Groups with processes that outlive the script"
tier = "containers"
chapter = "containers.md"
summary = "fixture"
estimate_minutes = 1

[[steps]]
id = "hang"
title = "hang inside a group"
points = 1
instructions = "x"
hints = ["x"]
files = ["leak.sh"]
requires = ["root", "cgroup-writable"]

[[steps.checks]]
kind = "run"
command = ["sh", "leak.sh"]
cgroup = true
timeout_secs = 2
[steps.checks.expect]
exit = 0
"#;

/// A script that makes nested groups in every controller, leaves a daemon in
/// them, and then either fails or hangs until the runner's deadline.
const LEAK_SH: &str = r#"set -eu
for d in "$VLAB_CGROUP_MEMORY" "$VLAB_CGROUP_CPU" "$VLAB_CGROUP_PIDS" "$VLAB_CGROUP_CPUSET"; do
    mkdir -p "$d/a/b"
    [ -e "$d/a/b/cpuset.cpus" ] && cat "$d/cpuset.cpus" > "$d/a/cpuset.cpus" && cat "$d/cpuset.cpus" > "$d/a/b/cpuset.cpus"
    [ -e "$d/a/b/cpuset.mems" ] && cat "$d/cpuset.mems" > "$d/a/cpuset.mems" && cat "$d/cpuset.mems" > "$d/a/b/cpuset.mems"
done
sh -c 'for d in "$VLAB_CGROUP_MEMORY" "$VLAB_CGROUP_CPU" "$VLAB_CGROUP_PIDS" "$VLAB_CGROUP_CPUSET"; do
           echo $$ > "$d/a/b/cgroup.procs"; done
       exec setsid sleep 1000' &
sleep 0.3
"#;

#[test]
fn cgroups_and_their_processes_are_removed_after_failure_and_timeout() {
    let _serial = serial();
    for (case, tail) in [("failure", "exit 1\n"), ("timeout", "sleep 1000\n")] {
        let script = format!("{LEAK_SH}{tail}");
        let fixture = fixture_labs("90-cgroup-leak", CGROUP_LAB, &[("leak.sh", &script)], &[("leak.sh", &script)]);
        let ws = workspace();
        let before = host_state(ws.path());
        vlab_with_labs(ws.path(), fixture.path()).args(["start", "90-cgroup-leak"]).assert().success();
        let out =
            vlab_with_labs(ws.path(), fixture.path()).args(["--json", "check", "90-cgroup-leak"]).output().unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let (_, outcome, message) = outcomes(&report).pop().unwrap();
        if outcome == "skipped" {
            skip(&message);
            return;
        }
        assert_eq!(outcome, "fail", "{case}: {message}");
        assert_left_as_it_was(&before, ws.path());
    }
}

/// Groups runc made for containers named `vlab-<nonce>`, anywhere in the
/// memory hierarchy below the runner's own group.
fn runc_groups() -> Vec<std::path::PathBuf> {
    let pattern = regex::Regex::new("^vlab-[0-9a-f]{16}$").unwrap();
    let mine = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let memory = mine
        .lines()
        .find_map(|l| l.split(':').nth(1).filter(|c| c.split(',').any(|c| c == "memory")).and(l.split(':').nth(2)))
        .map(|p| Path::new("/sys/fs/cgroup/memory").join(p.trim_start_matches('/')))
        .unwrap_or_else(|| "/sys/fs/cgroup".into());
    std::fs::read_dir(memory)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| pattern.is_match(&e.file_name().to_string_lossy()))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn oci_containers_are_deleted_after_every_check() {
    let _serial = serial();
    let ws = workspace();
    let before = host_state(ws.path());
    let groups_before = runc_groups();
    vlab(ws.path()).args(["start", "oci"]).assert().success();
    overlay(&labs().join("05-oci/solution"), &ws.path().join("05-oci"));
    let (_, report) = json(ws.path(), &["check", "oci", "--step", "memory"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    if outcome == "skipped" {
        skip(&message);
        return;
    }
    assert_eq!(outcome, "pass", "{message}");
    assert_left_as_it_was(&before, ws.path());
    let leaked: Vec<_> = runc_groups().into_iter().filter(|g| !groups_before.contains(g)).collect();
    assert!(leaked.is_empty(), "runc's cgroups were left behind: {leaked:?}");
}

const UML_HANG_LAB: &str = r#"
id = "91-uml-hang"
title = "A UML guest whose init never reports"
tier = "uml"
chapter = "uml.md"
summary = "fixture"
estimate_minutes = 1
requires = ["uml", "busybox"]
prepare = ["busybox-rootfs"]

[[steps]]
id = "hang"
title = "hang"
points = 1
instructions = "x"
hints = ["x"]
files = ["boot.sh"]

[[steps.checks]]
kind = "boot"
command = ["sh", "boot.sh"]
timeout_secs = 8
"#;

#[test]
fn uml_leaves_nothing_after_a_pass_and_after_a_timeout() {
    let _serial = serial();
    let solution = std::fs::read_to_string(labs().join("07-uml/solution/boot.sh")).unwrap();
    // Passing: the real lab's solution.
    let ws = workspace();
    let before = host_state(ws.path());
    vlab(ws.path()).args(["start", "uml"]).assert().success();
    overlay(&labs().join("07-uml/solution"), &ws.path().join("07-uml"));
    let (_, report) = json(ws.path(), &["check", "uml", "--step", "boot"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    if outcome == "skipped" {
        skip_here(&message);
        return;
    }
    assert_eq!(outcome, "pass", "{message}");
    assert_left_as_it_was(&before, ws.path());

    // Hanging: init is a long sleep, so no report ever comes; the runner's deadline ends it.
    let hang = solution
        .replace("init=/.vlab/uml-init", "init=/hang")
        .replace("exec linux", "printf '#!/bin/sh\\nsleep 1000\\n' > rootfs/hang && chmod +x rootfs/hang\nexec linux");
    let fixture = fixture_labs("91-uml-hang", UML_HANG_LAB, &[("boot.sh", &hang)], &[("boot.sh", &hang)]);
    let ws = workspace();
    let before = host_state(ws.path());
    vlab_with_labs(ws.path(), fixture.path()).args(["start", "91-uml-hang"]).assert().success();
    let out = vlab_with_labs(ws.path(), fixture.path()).args(["--json", "check", "91-uml-hang"]).output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("within 8s"), "{message}");
    assert_left_as_it_was(&before, ws.path());
}

/// A shell that calls itself `linux` and prints the probe's report, with this run's nonce.
const DISGUISED_UML: &str = r#"#!/bin/sh
ln -sf /bin/sh "$VLAB_SCRATCH/linux"
exec "$VLAB_SCRATCH/linux" -c 'printf "VLAB-REPORT-BEGIN nonce=%s\nvendor_id=User Mode Linux\nrootfs=hostfs\nsyscall_count=20000\nsyscall_us=400000\nVLAB-REPORT-END nonce=%s\n" "$VLAB_NONCE" "$VLAB_NONCE"; sleep 1'
"#;

#[test]
fn uml_is_known_by_its_binary_and_its_mode_by_what_the_host_sees() {
    let _serial = serial();
    let ws = workspace();
    let before = host_state(ws.path());
    vlab(ws.path()).args(["start", "uml"]).assert().success();
    let dir = ws.path().join("07-uml");
    std::fs::write(dir.join("boot.sh"), DISGUISED_UML).unwrap();
    let (_, report) = json(ws.path(), &["check", "uml", "--step", "boot"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    if outcome == "skipped" {
        skip_here(&message);
        return;
    }
    assert_eq!(outcome, "fail", "a process named linux is no UML kernel: {message}");
    assert!(message.contains("no UML kernel"), "{message}");

    // The real kernel, always in seccomp mode whatever boot.sh is asked for.
    let solution = std::fs::read_to_string(labs().join("07-uml/solution/boot.sh")).unwrap();
    std::fs::write(dir.join("boot.sh"), solution.replace("$mode quiet", "seccomp=on quiet")).unwrap();
    let (_, report) = json(ws.path(), &["check", "uml", "--step", "modes"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    if outcome == "skipped" {
        skip_here(&message);
        return;
    }
    assert_eq!(outcome, "fail", "{message}");
    assert!(message.contains("seccomp=off") && message.contains("\"seccomp\""), "{message}");
    assert_left_as_it_was(&before, ws.path());
}

#[test]
fn after_ctrl_c_nothing_runs_and_the_next_check_removes_the_groups() {
    let _serial = serial();
    if !root() || vlab::host::cgroup::detect().writable.is_empty() {
        skip("needs root and writable cgroups");
        return;
    }
    let ws = workspace();
    let before = host_state(ws.path());
    vlab(ws.path()).args(["start", "cgroups"]).assert().success();
    overlay(&labs().join("04-cgroups/solution"), &ws.path().join("04-cgroups"));
    let bin = assert_cmd::cargo::cargo_bin("vlab");
    let mut child = std::process::Command::new(bin)
        .args(["check", "cgroups", "--step", "cpu"])
        .env("VLAB_WORKSPACE", ws.path())
        .env("VLAB_LABS", labs())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Interrupt while the busy loop runs inside the group.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mine = |d: &std::path::PathBuf| d.file_name().unwrap().to_string_lossy().starts_with(&format!("vlab-{pid}-"));
    while !vlab::container::cgroup::leftovers().iter().any(mine) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    // SAFETY: a plain signal send to the vlab this test started; the result is checked.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGINT) }, 0, "cannot interrupt vlab (pid {pid})");
    // The exit status is the interrupt handler's business; here only what is left matters.
    child.wait().unwrap();
    let survivors = host_state(ws.path()).processes;
    assert!(survivors.is_empty(), "processes survived Ctrl-C: {survivors:?}");
    // The next cgroup check removes the groups the interrupted runner left.
    let (_, report) = json(ws.path(), &["check", "cgroups", "--step", "pids"]);
    let (_, outcome, message) = outcomes(&report).pop().unwrap();
    assert_eq!(outcome, "pass", "{message}");
    assert!(!vlab::container::cgroup::leftovers().iter().any(mine), "the interrupted run's groups are still there");
    assert_left_as_it_was(&before, ws.path());
}
