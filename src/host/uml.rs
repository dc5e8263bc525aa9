//! User-Mode-Linux, measured: a UML kernel is only "there" if it boots a
//! tiny root to init on this host kernel. Whether it does depends on the pair
//! (UML build, host kernel): Debian 12's 6.1 and Debian 13's 6.12 panic at
//! init on some host kernels where Debian unstable's 7.2 runs. So every UML
//! found (the host's `linux`, and copies `vlab setup` fetched into the cache)
//! is booted once per binary and host kernel release, in both of its ways of
//! running guest processes (ptrace and, since Linux 6.16, seccomp), and the
//! verdict is cached. `vlab setup` fetches a newer UML (and the C library it
//! needs) from a newer Debian suite through a private apt index when no UML
//! here boots, or none has the seccomp mode.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::tools::{self, ToolInfo};
use crate::cleanup::Scratch;
use crate::guest::assets::cache_dir;
use crate::proc::Cmd;

/// The Debian package that ships UML as `linux.uml` (and `linux` through alternatives).
pub(crate) const PACKAGE: &str = "user-mode-linux";

/// Suites tried, newest first, when the host's UML does not do: the first whose UML boots is kept.
const SUITES: [&str; 2] = ["unstable", "testing"];

/// Where the private index fetches from (override with VLAB_DEBIAN_MIRROR).
const MIRROR: &str = "http://deb.debian.org/debian";

/// How long a boot test may take; a UML that works here powers off in about a second.
const BOOT_BUDGET: Duration = Duration::from_secs(20);

/// What the test root's init prints once it runs: userspace works.
const MARKER: &str = "VLAB-UML-INIT-RAN";

/// UML's early check that appears only when its seccomp mode is in use.
const SECCOMP_OK: &str = "Checking that seccomp filters can be installed...OK";

/// The two ways a UML kernel runs its guest's processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Mode {
    /// Each guest process is a host process the UML kernel stops with PTRACE_SYSEMU at every system call.
    Ptrace,
    /// Each guest process runs under a seccomp filter that turns its system calls into SIGSYS,
    /// handled by a stub that hands them to the UML kernel through shared memory.
    Seccomp,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Ptrace => "ptrace",
            Mode::Seccomp => "seccomp",
        }
    }

    /// The kernel parameter that selects this mode (Linux 6.16 and later).
    pub(crate) fn param(self) -> &'static str {
        match self {
            Mode::Ptrace => "seccomp=off",
            Mode::Seccomp => "seccomp=on",
        }
    }
}

/// One boot test's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Boot {
    pub(crate) ok: bool,
    /// What happened: how long the boot took, or the panic line, or what else went wrong.
    pub(crate) detail: String,
}

/// A UML kernel found on this machine, and how it booted here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Kernel {
    /// What a shell runs: the host's `linux`, or `bin/linux` in vlab's cache.
    pub(crate) program: PathBuf,
    /// The binary itself: what `/proc/PID/exe` of a running instance resolves to.
    pub(crate) exe: PathBuf,
    /// Where it comes from, for people.
    pub(crate) origin: String,
    /// `linux --version`.
    pub(crate) version: String,
    /// The host kernel release it was tested on.
    pub(crate) host_release: String,
    pub(crate) ptrace: Boot,
    pub(crate) seccomp: Boot,
}

impl Kernel {
    pub(crate) fn boots(&self, mode: Mode) -> bool {
        match mode {
            Mode::Ptrace => self.ptrace.ok,
            Mode::Seccomp => self.seccomp.ok,
        }
    }

    fn runs(&self) -> bool {
        self.ptrace.ok || self.seccomp.ok
    }

    /// True for a copy in vlab's cache (not the host's package).
    fn cached(&self) -> bool {
        self.program.starts_with(uml_cache())
    }

    fn describe(&self) -> String {
        format!("UML {} ({}, {})", self.version, self.origin, self.program.display())
    }

    /// Both boot tests, for messages.
    fn summary(&self) -> String {
        format!("{}: ptrace mode: {}; seccomp mode: {}", self.describe(), self.ptrace.detail, self.seccomp.detail)
    }

    /// Why it does not run its guest's processes, for messages.
    fn failure(&self) -> String {
        format!("{} cannot run its init on host kernel {}: {}", self.describe(), self.host_release, self.ptrace.detail)
    }
}

/// Every UML found, with its verdict; `problem` when none could be tested at all.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct UmlInfo {
    pub(crate) kernels: Vec<Kernel>,
    pub(crate) problem: Option<String>,
}

impl UmlInfo {
    /// The kernel the labs use: one that boots in both modes, else in either; vlab's copy
    /// only where it does better than the host's.
    pub(crate) fn best(&self) -> Option<&Kernel> {
        self.kernels
            .iter()
            .filter(|k| k.runs())
            .max_by_key(|k| (k.boots(Mode::Seccomp) && k.boots(Mode::Ptrace), k.runs(), !k.cached()))
    }

    /// Why no UML can be used here, with what to do.
    pub(crate) fn lacks(&self) -> Option<String> {
        if self.best().is_some() {
            return None;
        }
        if let Some(p) = &self.problem {
            return Some(p.clone());
        }
        if self.kernels.is_empty() {
            return Some(format!(
                "no UML kernel (`linux`) is installed; `sudo vlab setup` installs Debian's {PACKAGE} and, if that one cannot run here, fetches a newer one into vlab's cache"
            ));
        }
        let why: Vec<String> = self.kernels.iter().map(Kernel::failure).collect();
        Some(format!(
            "{}; run `vlab setup` to fetch Debian unstable's {PACKAGE} (and the C library it needs) into vlab's cache",
            why.join("; ")
        ))
    }

    /// Why the labs cannot compare UML's two modes here, with what to do.
    pub(crate) fn lacks_seccomp(&self) -> Option<String> {
        let Some(best) = self.best() else {
            return Some("no UML kernel runs here at all (see `uml`)".into());
        };
        (!(best.boots(Mode::Seccomp) && best.boots(Mode::Ptrace))).then(|| {
            let (mode, boot) =
                if best.boots(Mode::Ptrace) { ("seccomp", &best.seccomp) } else { ("ptrace", &best.ptrace) };
            format!(
                "{} does not boot in {mode} mode ({}); UML has run processes under seccomp since Linux 6.16: `vlab setup` fetches Debian unstable's {PACKAGE}",
                best.describe(),
                boot.detail
            )
        })
    }

    /// Doctor's line for `uml`: the kernel the labs use, or why there is none.
    pub(crate) fn tool_info(&self) -> ToolInfo {
        match self.best() {
            Some(k) => {
                let modes: Vec<&str> =
                    [Mode::Ptrace, Mode::Seccomp].into_iter().filter(|m| k.boots(*m)).map(Mode::name).collect();
                let others: Vec<String> = self.kernels.iter().filter(|o| !o.runs()).map(Kernel::failure).collect();
                ToolInfo {
                    present: true,
                    path: Some(k.program.clone()),
                    version: Some(format!(
                        "{} ({}) booted to init in {} mode{}",
                        k.version,
                        k.origin,
                        modes.join(" and "),
                        others.iter().map(|o| format!("; {o}")).collect::<String>()
                    )),
                    package: PACKAGE.into(),
                    reason: None,
                }
            }
            None => ToolInfo {
                present: false,
                path: self.kernels.first().map(|k| k.program.clone()),
                version: self.kernels.first().map(|k| k.version.clone()),
                // Installing the package again would not help a UML that is there but cannot run.
                package: if self.kernels.is_empty() { PACKAGE.into() } else { String::new() },
                reason: self.lacks(),
            },
        }
    }

    /// The binaries (`/proc/PID/exe` targets) of the UML kernels that boot here.
    pub(crate) fn working_exes(&self) -> Vec<PathBuf> {
        self.kernels.iter().filter(|k| k.runs()).map(|k| k.exe.clone()).collect()
    }

    /// The directory to put first on PATH so that `linux` is the kernel the labs use,
    /// when that is vlab's copy rather than the host's.
    pub(crate) fn path_dir(&self) -> Option<PathBuf> {
        self.best().filter(|k| k.cached()).and_then(|k| k.program.parent().map(Path::to_path_buf))
    }
}

/// Every UML here, boot-tested (once per binary and host kernel; cached after).
pub(crate) fn detect() -> UmlInfo {
    survey(true)
}

/// Every UML here with a cached verdict, without booting anything: for the
/// check engine, which runs after doctor has tested them.
pub(crate) fn known() -> UmlInfo {
    survey(false)
}

fn uml_cache() -> PathBuf {
    cache_dir().join("uml")
}

fn host_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").map(|s| s.trim().to_string()).unwrap_or_default()
}

/// The candidates: the host's `linux`, then every copy in the cache.
fn candidates() -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    // A PATH that leads to a cached copy (a check's, for nested runs) names no host UML.
    if let Some(p) = tools::which("linux").filter(|p| !p.starts_with(uml_cache())) {
        found.push((p, format!("Debian's {PACKAGE} as installed on this host")));
    }
    if let Ok(dir) = std::fs::read_dir(uml_cache()) {
        let mut copies: Vec<PathBuf> =
            dir.filter_map(|e| e.ok().map(|e| e.path().join("bin/linux"))).filter(|p| p.is_file()).collect();
        copies.sort();
        // Newest version first (by name), after the host's.
        for p in copies.into_iter().rev() {
            let origin = origin_of(&p);
            found.push((p, origin));
        }
    }
    found
}

/// What `fetch` wrote about a cached copy's provenance.
fn origin_of(program: &Path) -> String {
    std::fs::read_to_string(program.parent().and_then(Path::parent).unwrap_or(program).join("origin"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "vlab's cached copy".into())
}

fn survey(boot: bool) -> UmlInfo {
    let release = host_release();
    let mut info = UmlInfo::default();
    let found = candidates();
    let tested: Vec<Result<Option<Kernel>, TestError>> = std::thread::scope(|s| {
        let handles: Vec<_> = found.iter().map(|(p, origin)| s.spawn(|| verdict(p, origin, &release, boot))).collect();
        handles.into_iter().map(|h| h.join().unwrap_or(Err(TestError::Panicked))).collect()
    });
    for t in tested {
        match t {
            // The host's PATH may lead to a cached copy too: each binary once.
            Ok(Some(k)) if info.kernels.iter().any(|o| o.exe == k.exe) => {}
            Ok(Some(k)) => info.kernels.push(k),
            Ok(None) => {}
            Err(why) => info.problem = Some(why.to_string()),
        }
    }
    info
}

/// Identifies a binary's contents and the host kernel it runs on, for the verdict cache.
fn verdict_key(exe: &Path, release: &str) -> Option<String> {
    let m = std::fs::metadata(exe).ok()?;
    let mut h = Sha256::new();
    h.update(format!(
        "{}\0{}\0{}\0{}\0{}\0{}\0{release}",
        exe.display(),
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ));
    Some(h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect())
}

/// Why a UML binary could not be tested: no verdict, and none cached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TestError {
    #[error("cannot resolve {}: {error}", program.display())]
    Resolve { program: PathBuf, error: std::io::Error },
    #[error("cannot read {}", exe.display())]
    Unreadable { exe: PathBuf },
    #[error("cannot make a test root in {}: {error}", dir.display())]
    Scratch { dir: PathBuf, error: std::io::Error },
    #[error("cannot build UML's test root: {0:#}")]
    TestRoot(anyhow::Error),
    #[error(transparent)]
    Run(#[from] crate::proc::ProcError),
    #[error("the boot test panicked")]
    Panicked,
}

/// The cached verdict for `program`, or (when `boot`) a fresh one. `Err` when it cannot be tested.
fn verdict(program: &Path, origin: &str, release: &str, boot: bool) -> Result<Option<Kernel>, TestError> {
    let exe = std::fs::canonicalize(program)
        .map_err(|source| TestError::Resolve { program: program.to_path_buf(), error: source })?;
    let key = verdict_key(&exe, release).ok_or_else(|| TestError::Unreadable { exe: exe.clone() })?;
    let file = uml_cache().join("verdicts").join(format!("{key}.json"));
    if let Some(k) = std::fs::read(&file).ok().and_then(|b| serde_json::from_slice::<Kernel>(&b).ok()) {
        return Ok(Some(k));
    }
    if !boot {
        return Ok(None);
    }
    let version = Cmd::new(program)
        .arg("--version")
        .timeout(Duration::from_secs(5))
        .run()
        .ok()
        .and_then(|o| o.stdout.lines().next().map(|l| l.trim().to_string()))
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown version".into());
    let (ptrace, seccomp) = std::thread::scope(|s| {
        let ptrace = s.spawn(|| boot_test(program, Mode::Ptrace));
        let seccomp = boot_test(program, Mode::Seccomp);
        (ptrace.join().unwrap_or(Err(TestError::Panicked)), seccomp)
    });
    let kernel = Kernel {
        program: program.to_path_buf(),
        exe,
        origin: origin.to_string(),
        version,
        host_release: release.to_string(),
        ptrace: ptrace?,
        seccomp: seccomp?,
    };
    // A verdict that could not be written is measured again next time. Written
    // aside and renamed: a check reading it meanwhile sees all of it or none.
    let staged = file.with_extension(format!("{}.tmp", std::process::id()));
    if std::fs::create_dir_all(file.parent().unwrap_or(&file)).is_ok()
        && serde_json::to_vec_pretty(&kernel).is_ok_and(|b| std::fs::write(&staged, b).is_ok())
    {
        let _ = std::fs::rename(&staged, &file);
    }
    Ok(Some(kernel))
}

/// The smallest root UML can boot to: static busybox and an init that says so and powers off.
fn test_root(root: &Path) -> anyhow::Result<()> {
    let busybox = tools::static_busybox()?;
    for d in ["bin", "dev", "proc", "tmp"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy(&busybox, root.join("bin/busybox"))?;
    let init = root.join("init");
    std::fs::write(&init, format!("#!/bin/busybox sh\n/bin/busybox echo {MARKER}\n/bin/busybox poweroff -f\n"))?;
    std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Boots `program` in `mode` on a fresh test root. `Err` when the test itself
/// could not run (no static busybox, no disk): such an outcome is not a
/// verdict and is not cached. A boot that hangs is one (and is cached, so
/// that doctor stays quick): its detail says how to test again.
pub(crate) fn boot_test(program: &Path, mode: Mode) -> Result<Boot, TestError> {
    let scratch = Scratch::new_in(&uml_cache(), "boot-test-")
        .map_err(|source| TestError::Scratch { dir: uml_cache(), error: source })?;
    let root = scratch.path().join("root");
    test_root(&root).map_err(TestError::TestRoot)?;
    let uml_dir = scratch.path().join("uml");
    let started = Instant::now();
    let out = Cmd::new(program)
        .arg("mem=64M")
        .arg("rootfstype=hostfs")
        .arg(format!("rootflags={}", root.display()))
        .args(["rw", "init=/init", "con0=fd:0,fd:1", "con=null"])
        .arg(format!("uml_dir={}", uml_dir.display()))
        .arg(mode.param())
        .timeout(BOOT_BUDGET)
        .run()?;
    Ok(judge_boot(mode, &out.stdout, &out.stderr, out.timed_out, started.elapsed()))
}

/// Reads a boot test's console (stdout) and UML's early messages (stderr).
fn judge_boot(mode: Mode, stdout: &str, stderr: &str, timed_out: bool, took: Duration) -> Boot {
    let panic = stdout.lines().find(|l| l.contains("Kernel panic")).map(|l| l.trim().to_string());
    let ran = stdout.lines().any(|l| l.trim() == MARKER);
    let boot = |ok, detail: String| Boot { ok, detail };
    match (ran, panic) {
        (true, _) if mode == Mode::Seccomp && !stderr.contains(SECCOMP_OK) => {
            boot(false, "it has no seccomp mode (it ran its init under ptrace)".into())
        }
        (true, _) => boot(true, format!("booted to init and powered off in {:.1} s", took.as_secs_f64())),
        (false, Some(p)) => boot(false, format!("`{p}`")),
        (false, None) if timed_out => boot(
            false,
            format!(
                "no sign of init within {}s (on a loaded machine, remove {} and run `vlab doctor` again)",
                BOOT_BUDGET.as_secs(),
                uml_cache().join("verdicts").display()
            ),
        ),
        (false, None) => {
            let last = stdout.lines().chain(stderr.lines()).rfind(|l| !l.trim().is_empty()).unwrap_or("");
            boot(false, format!("it ended without running init (last words: `{}`)", last.trim()))
        }
    }
}

/// Makes sure a UML that boots in both modes is here: the host's if it does,
/// else a newer Debian suite's, fetched into the cache and boot-tested.
pub(crate) fn provide() -> anyhow::Result<Kernel> {
    let info = detect();
    if let Some(why) = &info.problem {
        bail!("cannot test UML here: {why}");
    }
    if let Some(k) = info.best().filter(|k| k.boots(Mode::Ptrace) && k.boots(Mode::Seccomp)) {
        return Ok(k.clone());
    }
    let mut tried = Vec::new();
    for suite in SUITES {
        let tested = fetch(suite)
            .with_context(|| format!("cannot fetch {PACKAGE} from Debian {suite}"))
            .and_then(|p| verdict(&p, &origin_of(&p), &host_release(), true).map_err(anyhow::Error::from));
        match tested {
            Ok(Some(k)) if k.boots(Mode::Ptrace) && k.boots(Mode::Seccomp) => return Ok(k),
            Ok(Some(k)) => tried.push(k.summary()),
            Ok(None) => {}
            Err(e) => tried.push(format!("{e:#}")),
        }
    }
    match info.best() {
        Some(k) => {
            // The labs still run on it; only the step comparing the two modes is skipped.
            eprintln!(
                "warning: no UML here boots in both ptrace and seccomp mode ({}); lab 07's mode step will be skipped",
                tried.join("; ")
            );
            Ok(k.clone())
        }
        None => bail!(
            "no User-Mode-Linux kernel boots on this host kernel: {}; the UML labs will be skipped",
            tried.join("; ")
        ),
    }
}

/// `apt-get` or `apt-cache` with the private index in `work`: the host's apt setup is untouched.
fn private_apt(tool: &str, work: &Path, args: &[&str]) -> anyhow::Result<crate::proc::Output> {
    let mut opts = vec![
        format!("Dir::Etc::SourceList={}", work.join("sources.list").display()),
        format!("Dir::Etc::SourceParts={}", work.join("sources.list.d").display()),
        format!("Dir::State::Lists={}", work.join("lists").display()),
        format!("Dir::Cache={}", work.join("cache").display()),
        "Dir::State::status=/dev/null".to_string(),
    ];
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        // apt drops to its _apt user for downloads, which cannot write into our cache.
        opts.push("APT::Sandbox::User=root".into());
    }
    let mut cmd = Cmd::new(tool).env("DEBIAN_FRONTEND", "noninteractive").timeout(Duration::from_secs(900));
    for o in &opts {
        cmd = cmd.args(["-o", o]);
    }
    let out = cmd.args(args).dir(work).run()?;
    if !out.success() {
        bail!(
            "`{tool} {}` {}: {}; check the network to the Debian mirror ({})",
            args.join(" "),
            out.describe_end(),
            out.stderr.trim(),
            mirror()
        );
    }
    Ok(out)
}

fn mirror() -> String {
    std::env::var("VLAB_DEBIAN_MIRROR").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| MIRROR.into())
}

/// A package's version in the private index.
fn version_of(work: &Path, pkg: &str) -> anyhow::Result<String> {
    let show = private_apt("apt-cache", work, &["show", "--no-all-versions", pkg])?;
    show.stdout
        .lines()
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("Debian's index names no version of {pkg}"))
}

/// Holds the cache's lock: one fetch at a time across vlab processes.
struct Lock {
    _file: std::fs::File,
}

impl Lock {
    fn take(dir: &Path) -> anyhow::Result<Self> {
        use std::os::fd::AsRawFd;
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let file = std::fs::File::create(dir.join(".lock"))?;
        // SAFETY: the descriptor is open and owned by `file`, which outlives the lock.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!("cannot lock {}: {}", dir.display(), std::io::Error::last_os_error());
        }
        Ok(Lock { _file: file })
    }
}

/// Fetches `suite`'s user-mode-linux and libc6 through a private apt index,
/// keeps the UML binary and the C library in the cache (keyed by both package
/// versions), and points the binary at that C library with patchelf. Returns
/// the cached `bin/linux`. Only the binary is kept: UML 7.x embeds its
/// userspace stub (it execs it from a memfd) and execs no helper for the
/// consoles the labs use (fd: and null; port-helper belongs to uml-utilities
/// and serves only port: consoles), and the hostfs root needs no modules.
fn fetch(suite: &str) -> anyhow::Result<PathBuf> {
    let cache = uml_cache();
    let _lock = Lock::take(&cache)?;
    let patchelf = tools::which("patchelf").context("patchelf is needed to run a newer UML with its own C library; install the Debian package patchelf (`sudo vlab setup`)")?;
    let work = Scratch::new_in(&cache, "fetch-")?;
    let w = work.path();
    for d in ["lists/partial", "cache/archives/partial", "sources.list.d"] {
        std::fs::create_dir_all(w.join(d))?;
    }
    std::fs::write(w.join("sources.list"), format!("deb {} {suite} main\n", mirror()))?;
    private_apt("apt-get", w, &["-q", "update"])?;
    let (uml_version, libc_version) = (version_of(w, PACKAGE)?, version_of(w, "libc6")?);
    let name = format!("{PACKAGE}_{uml_version}+libc6_{libc_version}").replace(['/', ':'], "_");
    let dir = cache.join(&name);
    let program = dir.join("bin/linux");
    if program.is_file() {
        return Ok(program);
    }
    eprintln!("fetching {PACKAGE} {uml_version} and libc6 {libc_version} from Debian {suite} into {}", dir.display());
    // apt-get download saves into its working directory, the work directory.
    private_apt("apt-get", w, &["-q", "download", PACKAGE, "libc6"])?;
    let unpacked = w.join("unpacked");
    for deb in std::fs::read_dir(w)?.filter_map(|e| e.ok().map(|e| e.path())) {
        if deb.extension().is_some_and(|e| e == "deb") {
            let out =
                Cmd::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked).timeout(Duration::from_secs(600)).run()?;
            if !out.success() {
                bail!("`dpkg-deb -x {}` {}: {}", deb.display(), out.describe_end(), out.stderr.trim());
            }
        }
    }
    let binary = unpacked.join("usr/bin/linux.uml");
    anyhow::ensure!(binary.is_file(), "{PACKAGE} {uml_version} holds no usr/bin/linux.uml");
    let loader = find_loader(&unpacked.join("usr/lib"))
        .with_context(|| format!("libc6 {libc_version} holds no usr/lib/*/ld-linux*.so.*"))?;
    let libdir_rel =
        loader.parent().and_then(|p| p.strip_prefix(&unpacked).ok()).context("the loader's directory")?.to_path_buf();
    // Laid out under the final name, then renamed into place whole.
    let stage = w.join("stage");
    std::fs::create_dir_all(stage.join("bin"))?;
    std::fs::create_dir_all(stage.join("usr/bin"))?;
    copy_dir(&unpacked.join(&libdir_rel), &stage.join(&libdir_rel))?;
    std::fs::copy(&binary, stage.join("usr/bin/linux.uml"))?;
    let final_loader = dir.join(&libdir_rel).join(loader.file_name().context("loader name")?);
    let out = Cmd::new(&patchelf)
        .arg("--set-interpreter")
        .arg(&final_loader)
        .arg("--set-rpath")
        .arg(dir.join(&libdir_rel))
        .arg(stage.join("usr/bin/linux.uml"))
        .timeout(Duration::from_secs(60))
        .run()?;
    if !out.success() {
        bail!("`patchelf` on {PACKAGE}'s linux.uml {}: {}", out.describe_end(), out.stderr.trim());
    }
    std::os::unix::fs::symlink("../usr/bin/linux.uml", stage.join("bin/linux"))?;
    std::fs::write(
        stage.join("origin"),
        format!("Debian {suite}'s {PACKAGE} {uml_version} with libc6 {libc_version}, in vlab's cache\n"),
    )?;
    std::fs::rename(&stage, &dir).with_context(|| format!("cannot move the fetched UML to {}", dir.display()))?;
    Ok(program)
}

fn find_loader(usr_lib: &Path) -> Option<PathBuf> {
    std::fs::read_dir(usr_lib).ok()?.filter_map(|e| e.ok()).find_map(|e| {
        std::fs::read_dir(e.path()).ok()?.filter_map(|f| f.ok().map(|f| f.path())).find(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("ld-linux") && n.contains(".so"))
        })
    })
}

/// Copies a directory tree of files and symlinks (the C library's directory).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_dir(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(program: &str, ptrace: bool, seccomp: bool) -> Kernel {
        let boot = |ok| Boot { ok, detail: if ok { "booted".into() } else { "`Kernel panic - not syncing`".into() } };
        Kernel {
            program: program.into(),
            exe: program.into(),
            origin: "test".into(),
            version: "7.2.7".into(),
            host_release: "6.18".into(),
            ptrace: boot(ptrace),
            seccomp: boot(seccomp),
        }
    }

    #[test]
    fn the_best_kernel_boots_in_both_modes_and_the_hosts_wins_a_tie() {
        let cached = uml_cache().join("x/bin/linux").to_string_lossy().into_owned();
        let info = UmlInfo {
            kernels: vec![kernel("/usr/bin/linux", true, false), kernel(&cached, true, true)],
            problem: None,
        };
        assert_eq!(info.best().unwrap().program, PathBuf::from(&cached));
        assert_eq!(info.path_dir(), Some(uml_cache().join("x/bin")));
        assert!(info.lacks().is_none() && info.lacks_seccomp().is_none());
        let tie =
            UmlInfo { kernels: vec![kernel("/usr/bin/linux", true, true), kernel(&cached, true, true)], problem: None };
        assert_eq!(tie.best().unwrap().program, PathBuf::from("/usr/bin/linux"));
        assert_eq!(tie.path_dir(), None);
    }

    #[test]
    fn a_kernel_that_panics_is_no_kernel_and_the_reason_says_why_and_what_to_do() {
        let info = UmlInfo { kernels: vec![kernel("/usr/bin/linux", false, false)], problem: None };
        let why = info.lacks().unwrap();
        assert!(why.contains("Kernel panic") && why.contains("vlab setup"), "{why}");
        assert!(info.working_exes().is_empty());
        let tool = info.tool_info();
        assert!(!tool.present && tool.package.is_empty(), "installing the package again would not help");
        let ptrace_only = UmlInfo { kernels: vec![kernel("/usr/bin/linux", true, false)], problem: None };
        assert!(ptrace_only.lacks().is_none());
        assert!(ptrace_only.lacks_seccomp().unwrap().contains("seccomp"));
    }

    #[test]
    fn boot_tests_are_judged_by_init_running_not_by_the_exit_status() {
        let t = Duration::from_millis(900);
        let ok = judge_boot(Mode::Ptrace, &format!("noise\n{MARKER}\nreboot: Power down\n"), "", false, t);
        assert!(ok.ok, "{}", ok.detail);
        let panic = "Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n";
        let bad = judge_boot(Mode::Ptrace, panic, "", false, t);
        assert!(!bad.ok && bad.detail.contains("Attempted to kill init"), "{}", bad.detail);
        let no_seccomp =
            judge_boot(Mode::Seccomp, &format!("{MARKER}\n"), "Checking syscall emulation for ptrace...OK", false, t);
        assert!(!no_seccomp.ok, "a UML without seccomp mode boots under ptrace even when asked for seccomp");
        assert!(judge_boot(Mode::Seccomp, &format!("{MARKER}\n"), SECCOMP_OK, false, t).ok);
        let hung = judge_boot(Mode::Ptrace, "booting\n", "", true, t);
        assert!(!hung.ok && hung.detail.contains("vlab doctor"), "a hang is a verdict that says how to retest");
    }
}
