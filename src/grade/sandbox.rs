//! One submission, graded in a sandbox: `vlab __grade-one` runs under
//! `unshare` in new mount, PID, network, IPC and UTS namespaces (plus a user
//! namespace when not root), inside a pids+memory cgroup, with rlimits, on a
//! private size-limited filesystem, with only a loopback network. When it
//! ends, the PID namespace takes every process with it, the mount namespace
//! takes the filesystem, and the cgroup is removed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::limits::{Jail, Limits};
use crate::catalog::{Capability, Catalog};
use crate::check::LabReport;
use crate::proc::Cmd;

/// What the sandboxed grader prints on stdout as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Graded {
    pub reports: Vec<LabReport>,
    /// Which protections were in force (some need root).
    pub protections: Vec<String>,
}

/// Arguments handed to the sandboxed `vlab __grade-one`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Inside {
    pub labs_root: PathBuf,
    pub lab_ids: Vec<String>,
    /// submission files: <dir>/<lab>/<path>
    pub files: PathBuf,
    /// Where the workspace filesystem goes.
    pub work: PathBuf,
    pub cgroup_procs: Vec<PathBuf>,
    pub limits: Limits,
    pub protections: Vec<String>,
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

/// Grades the submission files under `files` for `lab_ids`, sandboxed. `name`
/// must be unique among concurrent gradings (it names the cgroup).
#[allow(clippy::too_many_arguments)]
pub fn grade_sandboxed(
    vlab: &Path,
    name: &str,
    labs_root: &Path,
    lab_ids: &[String],
    files: &Path,
    work: &Path,
    limits: &Limits,
    timeout: Duration,
) -> Result<Graded, String> {
    let mut protections = vec!["namespaces: mount, pid, net (loopback only), ipc, uts".to_string()];
    let jail = match Jail::create(name, limits) {
        Ok(j) => {
            protections.push(format!("cgroup: pids.max={} memory={} MiB", limits.pids, limits.memory_bytes >> 20));
            Some(j)
        }
        Err(why) => {
            protections.push(format!("no cgroup limits ({why})"));
            None
        }
    };
    let inside = Inside {
        labs_root: labs_root.to_path_buf(),
        lab_ids: lab_ids.to_vec(),
        files: files.to_path_buf(),
        work: work.to_path_buf(),
        cgroup_procs: jail.as_ref().map(|j| j.procs_files()).unwrap_or_default(),
        limits: *limits,
        protections,
    };
    std::fs::create_dir_all(work).map_err(|e| format!("cannot create {}: {e}", work.display()))?;
    let spec = work.join("sandbox.json");
    std::fs::write(&spec, serde_json::to_vec(&inside).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    let mut cmd = Cmd::new("unshare").args(["--mount", "--pid", "--fork", "--kill-child", "--net", "--ipc", "--uts"]);
    if !is_root() {
        cmd = cmd.args(["--user", "--map-root-user"]);
    }
    let out = cmd
        .arg(vlab)
        .arg("__grade-one")
        .arg(&spec)
        .env("NO_COLOR", "1")
        .timeout(timeout)
        .output_limit(16 << 20)
        .run()
        .map_err(|e| e.to_string())?;
    let pids_hit = jail.as_ref().is_some_and(Jail::pids_limit_hit);
    drop(jail);
    if out.timed_out {
        return Err(format!("the submission did not finish grading within {}s and was stopped", timeout.as_secs()));
    }
    let graded: Result<Graded, _> = serde_json::from_str(out.stdout.trim());
    match graded {
        Ok(mut g) if out.success() => {
            if pids_hit {
                g.protections.push("the process limit stopped a fork bomb".into());
            }
            Ok(g)
        }
        _ => {
            let why: Vec<&str> = out
                .stderr
                .lines()
                .filter(|l| l.starts_with("vlab:") || l.contains("panicked") || l.contains("rror"))
                .take(3)
                .collect();
            Err(format!("the sandboxed grader {}: {}", out.describe_end(), why.join(" / ")))
        }
    }
}

/// Runs inside the sandbox: confine, set up the private filesystem, grade, print JSON.
pub fn grade_inside(spec: &Path) -> anyhow::Result<Graded> {
    let inside: Inside = serde_json::from_slice(&std::fs::read(spec).context("reading the sandbox spec")?)?;
    for procs in &inside.cgroup_procs {
        std::fs::write(procs, "0").with_context(|| format!("joining {}", procs.display()))?;
    }
    let mut protections = inside.protections.clone();
    // Mounts made here must never reach the host.
    let root = std::ffi::CString::new("/")?;
    unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    // Our /proc must show this PID namespace, or the process runner could not
    // find (and kill, and reap) the submission's processes.
    let (proc_src, proc_dir) = (std::ffi::CString::new("proc")?, std::ffi::CString::new("/proc")?);
    if unsafe { libc::mount(proc_src.as_ptr(), proc_dir.as_ptr(), proc_src.as_ptr(), 0, std::ptr::null()) } != 0 {
        anyhow::bail!("cannot mount /proc in the sandbox: {}", std::io::Error::last_os_error());
    }
    loopback_up();
    let ws_root = inside.work.join("ws");
    std::fs::create_dir_all(&ws_root)?;
    if is_root() && private_disk(&inside.work, &ws_root, inside.limits.disk_mib).is_ok() {
        protections.push(format!("private {} MiB filesystem", inside.limits.disk_mib));
    } else {
        protections.push("no disk quota (needs root for a loop-mounted filesystem)".into());
    }
    let tmp = ws_root.join(".tmp");
    std::fs::create_dir_all(&tmp)?;
    // SAFETY: single-threaded at this point; children inherit TMPDIR so floods land on the private disk.
    unsafe { std::env::set_var("TMPDIR", &tmp) };
    super::limits::set_rlimits(&inside.limits);
    protections.push(format!("files up to {} MiB", inside.limits.file_bytes >> 20));

    let catalog = Catalog::load(&inside.labs_root)?;
    let ws = crate::workspace::Workspace { root: ws_root };
    let needs_kvm = inside.lab_ids.iter().filter_map(|id| catalog.find(id).ok()).any(|l| {
        l.requires
            .iter()
            .chain(l.steps.iter().flat_map(|s| s.requires.iter()))
            .any(|c| matches!(c, Capability::Kvm | Capability::KvmFast))
    });
    let caps = crate::host::detect_with(needs_kvm);
    let mut reports = Vec::new();
    for id in &inside.lab_ids {
        let lab = catalog.find(id)?;
        let dir = ws.lab_dir(lab);
        ws.copy_from(lab, "starter", &dir)?;
        let submitted = inside.files.join(&lab.id);
        if submitted.is_dir() {
            crate::workspace::copy_tree(&submitted, &dir)?;
        }
        reports.push(crate::check::check_lab(lab, &dir, &caps, None)?);
    }
    Ok(Graded { reports, protections })
}

/// Brings up `lo` in this (new) network namespace.
fn loopback_up() {
    unsafe {
        let sock = libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0);
        if sock < 0 {
            return;
        }
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo\0".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        if libc::ioctl(sock, libc::SIOCGIFFLAGS, &mut req) == 0 {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(sock, libc::SIOCSIFFLAGS, &mut req);
        }
        libc::close(sock);
    }
}

/// A sparse ext4 image loop-mounted on `mountpoint`, in our private mount
/// namespace: it vanishes (and the loop device detaches) when the sandbox ends.
fn private_disk(work: &Path, mountpoint: &Path, mib: u64) -> anyhow::Result<()> {
    let image = work.join("disk.img");
    let f = std::fs::File::create(&image)?;
    f.set_len(mib << 20)?;
    drop(f);
    let mkfs =
        Cmd::new("mkfs.ext4").args(["-q", "-F", "-m", "0"]).arg(&image).timeout(Duration::from_secs(60)).run()?;
    anyhow::ensure!(mkfs.success(), "mkfs.ext4 {}", mkfs.describe_end());
    let mount =
        Cmd::new("mount").args(["-o", "loop"]).arg(&image).arg(mountpoint).timeout(Duration::from_secs(30)).run()?;
    anyhow::ensure!(mount.success(), "mount {}", mount.describe_end());
    // The image is only reachable through the mount now; unlink it so nothing stays behind.
    let _ = std::fs::remove_file(&image);
    Ok(())
}
