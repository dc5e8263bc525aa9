//! Boot checks: the student's command boots a kernel (QEMU, UML, Xen) whose
//! console is on stdout; the runner's probe, running as init inside, prints a
//! report framed by nonce-carrying markers. The runner reads the console as it
//! comes, fails fast on a kernel panic, and inspects the VMM process it finds
//! among the command's descendants (by the binary it runs, never its name)
//! before killing it. A QEMU also connects to the runner's own sockets
//! (guest::qmp): the runner asks it what it really runs, and hands the probe
//! the key that seals the report.
//!
//! Report protocol (one line each, on the console):
//!   VLAB-REPORT-BEGIN nonce=<nonce>
//!   key=value              (any number; become facts `guest.<key>`)
//!   seal=<sha256>          (of the runner's key and the lines above; see guest::qmp)
//!   VLAB-REPORT-END nonce=<nonce>

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::qmp::{Channels, RealQemu, Report};
use crate::check::{CheckError, Ctx, Observer, Ran, Watch};
use crate::evidence::{Facts, Freshness};
use crate::proc::{self, Cmd, ProcError};

/// The boot observer (`kind = "boot"`): the command boots a guest whose
/// console is its stdout; the check needs the probe's fresh report there.
/// Its readers add what else the console says (a hypervisor's own lines).
pub(crate) struct ConsoleReport {
    readers: &'static [&'static dyn ConsoleReader],
}

impl ConsoleReport {
    pub(crate) fn reading(readers: &'static [&'static dyn ConsoleReader]) -> Self {
        ConsoleReport { readers }
    }
}

/// What a guest's console says beside the probe's report: a hypervisor's
/// own lines (Xen's: guest::xen::console). Registered with the boot
/// observer in src/tiers.rs.
pub(crate) trait ConsoleReader: Send + Sync {
    /// How the machine ended for good, if `lines` say it did ("Xen: …").
    fn ended(&self, lines: &str) -> Option<String>;
    /// Facts read from the whole console.
    fn facts(&self, console: &str) -> Facts;
}

impl Observer for ConsoleReport {
    fn kind(&self) -> Option<&'static str> {
        Some("boot")
    }

    fn describe(&self) -> &'static str {
        "boots, and reads the probe's report from the console of,"
    }

    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError> {
        let mut channels = Channels::open()
            .map_err(CheckError::io("open the runner's QMP and seal sockets (in the temp dir)".to_string()))?;
        // The runner counts the verified QEMU's device accesses itself when a rule asks (guest::devcount).
        if ctx.check.expect.facts.iter().any(|r| r.fact.starts_with("devcount.")) {
            channels.count_devices();
        }
        Ok(Some(Box::new(BootWatch { channels: Some(channels), readers: self.readers })))
    }
}

struct BootWatch {
    channels: Option<Channels>,
    readers: &'static [&'static dyn ConsoleReader],
}

impl Watch for BootWatch {
    fn env(&self) -> Vec<(String, std::ffi::OsString)> {
        self.channels.iter().flat_map(|c| c.env()).map(|(k, v)| (k.into(), v.into())).collect()
    }

    fn run(&mut self, cmd: &Cmd, ctx: &Ctx) -> Result<Ran, CheckError> {
        let channels = self.channels.take().ok_or(CheckError::RanTwice("boot"))?;
        let obs = boot_with(cmd, ctx.nonce, channels, self.readers)?;
        let shown = ctx.shown;
        let ran = Ran::new(obs.facts, obs.console, obs.stderr);
        if let Some(panic) = &obs.panic {
            return Ok(ran.fail_showing_output(format!("the guest kernel panicked: {panic}")));
        }
        if !obs.report_found {
            let why = match (&obs.ended_early, obs.timed_out) {
                (Some(end), _) => format!("`{shown}` {end} before the probe's report appeared on the console"),
                (None, _) => format!("no probe report on the console within {}s of `{shown}`", ctx.check.timeout_secs),
            };
            return Ok(ran.fail_showing_output(why));
        }
        if obs.report_nonce != Freshness::Fresh {
            return Ok(ran.fail(
                "the report does not carry this run's nonce: pass vlab.nonce=$VLAB_NONCE on the kernel command line",
            ));
        }
        Ok(ran)
    }
}

pub(crate) const BEGIN: &str = "VLAB-REPORT-BEGIN";
pub(crate) const END: &str = "VLAB-REPORT-END";

/// Console lines that mean the guest kernel died.
const PANICS: [&str; 3] = ["Kernel panic - not syncing", "---[ end Kernel panic", "(XEN) Panic on CPU"];

/// Console bytes kept; a guest flooding its console is cut here.
const CONSOLE_LIMIT: usize = 4 * 1024 * 1024;

pub struct BootObservation {
    pub facts: Facts,
    /// The guest's console (the command's stdout).
    pub console: String,
    /// What the command and the VMM said on stderr (QEMU's own errors).
    pub(crate) stderr: String,
    /// The kernel panic line, if the guest panicked.
    pub panic: Option<String>,
    /// Whether a complete report came (fact `boot.report`).
    pub(crate) report_found: bool,
    /// Whether it carries this run's nonce (fact `report.nonce`).
    pub(crate) report_nonce: Freshness,
    pub(crate) ended_early: Option<String>,
    pub timed_out: bool,
}

/// The last complete report: its `guest.*` facts, and its lines for the seal.
fn report_lines(console: &str) -> Option<(Facts, Report)> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let end = lines.iter().rposition(|l| l.contains(END))?;
    let begin = lines[..end].iter().rposition(|l| l.contains(BEGIN))?;
    let report = Report::from_lines(lines[begin + 1..end].iter().copied());
    let mut facts = Facts::new();
    let nonce = |l: &str| l.split("nonce=").nth(1).map(|n| n.trim().to_string()).unwrap_or_default();
    facts.insert("guest.nonce".into(), nonce(lines[begin]));
    for line in &lines[begin + 1..end] {
        if let Some((k, v)) = line.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-') {
                facts.insert(format!("guest.{k}"), v.trim().to_string());
            }
        }
    }
    facts.remove("guest.seal");
    Some((facts, report))
}

fn panic_line(console: &str) -> Option<String> {
    console.lines().find(|l| PANICS.iter().any(|p| l.contains(p))).map(|l| l.trim().to_string())
}

/// Reads the console as it grows and scans each complete line once.
#[derive(Default)]
struct ConsoleWatch {
    scanned: u64,
}

impl ConsoleWatch {
    /// The complete lines written since the last call.
    fn new_lines(&mut self, child: &proc::Child) -> String {
        let room = (CONSOLE_LIMIT as u64).saturating_sub(self.scanned) as usize;
        let bytes = child.read_stdout_at(self.scanned, room);
        let Some(end) = bytes.iter().rposition(|b| *b == b'\n') else { return String::new() };
        self.scanned += end as u64 + 1;
        String::from_utf8_lossy(&bytes[..=end]).into_owned()
    }
}

/// How often the console is looked at: the report's arrival is timed to this.
const POLL: Duration = Duration::from_millis(10);

/// How often the command's processes are searched for the VMM until it is found.
const INSPECT_EVERY: Duration = Duration::from_millis(50);

/// Starts `cmd` with `$VLAB_QMP` and `$VLAB_SEAL` naming the runner's
/// sockets, and waits for a complete report, a panic, its exit or its deadline.
pub fn boot(cmd: &Cmd, nonce: &str) -> Result<BootObservation, ProcError> {
    let channels = Channels::open().map_err(|source| ProcError::Io {
        program: "the runner's QMP and seal sockets (in the temp dir)".into(),
        error: source,
    })?;
    let mut cmd = cmd.clone();
    for (k, v) in channels.env() {
        cmd = cmd.env(k, v);
    }
    boot_with(&cmd, nonce, channels, &[])
}

/// Like `boot`, for a command that already connects QEMU to `channels`.
/// `readers` read the console beside the report.
pub(crate) fn boot_with(
    cmd: &Cmd,
    nonce: &str,
    mut channels: Channels,
    readers: &[&dyn ConsoleReader],
) -> Result<BootObservation, ProcError> {
    let uml = crate::host::uml::known().working_exes();
    let real = RealQemu::find();
    let child = cmd.spawn()?;
    let mut vmm = Facts::new();
    let mut userspace = None;
    let mut ended_early = None;
    let mut timed_out = false;
    let mut report_at = None;
    let mut watch = ConsoleWatch::default();
    let mut inspected: Option<Instant> = None;
    loop {
        // Finding the VMM (and a UML kernel's guest processes) scans all of /proc: not on every console poll.
        let looking = vmm.is_empty() || (userspace.is_none() && is_uml(&vmm));
        if looking && inspected.is_none_or(|at| at.elapsed() >= INSPECT_EVERY) {
            if vmm.is_empty() {
                vmm = inspect_vmm(child.pid(), &real, &uml);
            }
            userspace = userspace.or_else(|| uml_userspace(&vmm));
            inspected = Some(Instant::now());
        }
        channels.poll(child.pid());
        let lines = watch.new_lines(&child);
        if lines.lines().any(|l| l.contains(END)) {
            report_at = Some(child.started().elapsed());
            break;
        }
        if panic_line(&lines).is_some() {
            // Let the panic's backtrace reach the console for the student.
            std::thread::sleep(Duration::from_millis(300));
            break;
        }
        if let Some(line) = readers.iter().find_map(|r| r.ended(&lines)) {
            // A hypervisor that stops its CPUs (Xen, when dom0 ends) leaves QEMU running: nothing more will come.
            ended_early = Some(format!("ended ({line})"));
            break;
        }
        if let Some(ended) = child.wait_until(Instant::now() + POLL)? {
            // The report may have come out just before the VMM powered off.
            if child.read_stdout(CONSOLE_LIMIT).0.lines().any(|l| l.contains(END)) {
                report_at = Some(child.started().elapsed());
            }
            ended_early = Some(ended.describe());
            break;
        }
        if child.expired() {
            timed_out = true;
            break;
        }
    }
    channels.poll(child.pid());
    if let Some(pid) = channels.qemu_pid() {
        // The QEMU that proved itself over QMP is the VMM, whichever other one runs.
        vmm = vmm_facts(pid, "qemu");
    } else if vmm.is_empty() {
        // A report can come sooner than the next search: look once more while the VMM still runs.
        vmm = inspect_vmm(child.pid(), &real, &uml);
    }
    userspace = userspace.or_else(|| uml_userspace(&vmm));
    // Asked while QEMU still runs: the disks' I/O as QEMU counted it.
    let from_qemu = channels.facts();
    let (console, _) = child.read_stdout(CONSOLE_LIMIT);
    let (stderr, _) = child.read_stderr(64 * 1024);
    child.stop()?;
    let mut facts = vmm;
    if !is_uml(&facts) {
        facts.extend(from_qemu);
    }
    // QEMU is gone: the trace's last lines are in the pipe.
    facts.extend(channels.device_facts(Duration::from_secs(3)));
    let (report, lines) = report_lines(&console).unzip();
    facts.insert("report.sealed".into(), channels.seal_of(lines.as_ref()));
    facts.insert("boot.report".into(), if report.is_some() { "found" } else { "missing" }.into());
    let report_found = report.is_some();
    let report_nonce = Freshness::of(report.as_ref().and_then(|r| r.get("guest.nonce")).map(String::as_str), nonce);
    facts.insert("report.nonce".into(), report_nonce.name().into());
    if let Some(at) = report_at {
        facts.insert("boot.ms".into(), format!("{:.0}", at.as_secs_f64() * 1000.0));
    }
    if let Some(mode) = userspace {
        facts.insert("vmm.uml_userspace".into(), mode.into());
        // The same probe measures both modes: file its numbers under the mode seen, so one step can record both.
        for key in ["syscall_us", "syscall_count"] {
            if let Some(v) = report.as_ref().and_then(|r| r.get(&format!("guest.{key}"))) {
                facts.insert(format!("uml.{mode}.{key}"), v.clone());
            }
        }
    }
    facts.extend(report.unwrap_or_default());
    facts.extend(crate::guest::devcount::ratios(&facts));
    facts.extend(readers.iter().flat_map(|r| r.facts(&console)));
    let panic = panic_line(&console);
    facts.insert("boot.panic".into(), if panic.is_some() { "yes" } else { "no" }.into());
    Ok(BootObservation { facts, console, stderr, panic, report_found, report_nonce, ended_early, timed_out })
}

/// Facts about the first VMM among `root` and its descendants, recognised by
/// the binary it runs (`/proc/PID/exe`), whatever it calls itself: the real
/// QEMU (what its command line asks for: `vmm.asked.*`, `vmm.machine`,
/// `vmm.cpu`, `vmm.memory`; what it runs comes over QMP) or a UML kernel (one
/// of `uml`, the kernels `vlab doctor` booted here).
pub(crate) fn inspect_vmm(root: i32, real: &RealQemu, uml: &[PathBuf]) -> Facts {
    for pid in std::iter::once(root).chain(proc::descendants(root)) {
        if real.runs(pid) {
            return vmm_facts(pid, "qemu");
        }
        if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| uml.contains(&exe)) {
            return vmm_facts(pid, "uml");
        }
    }
    Facts::new()
}

/// What the VMM process `pid` (identified by its binary as `kind`) was asked
/// for, read from its own command line.
fn vmm_facts(pid: i32, kind: &str) -> Facts {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let argv: Vec<String> =
        raw.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let mut facts = match kind {
        "qemu" => qemu_facts(&argv),
        _ => Facts::from([("vmm.accel".to_string(), "uml".to_string())]),
    };
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
    facts.insert("vmm.program".into(), exe.file_name().unwrap_or_default().to_string_lossy().into_owned());
    facts.insert("vmm.pid".into(), pid.to_string());
    facts.insert("vmm.cmdline".into(), argv.join(" "));
    facts
}

fn is_uml(vmm: &Facts) -> bool {
    vmm.get("vmm.accel").is_some_and(|a| a == "uml")
}

/// How the UML kernel found in `vmm` runs its guest's processes, as the host
/// sees them: each is a child process named `uml-userspace` that the kernel
/// either traces (ptrace mode: its TracerPid is one of the kernel's threads)
/// or that runs untraced under a seccomp filter (seccomp mode). None until
/// the first one has been set up.
fn uml_userspace(vmm: &Facts) -> Option<&'static str> {
    let kernel: i32 = vmm.get("vmm.pid").filter(|_| is_uml(vmm))?.parse().ok()?;
    proc::descendants(kernel).into_iter().find_map(|pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |key| crate::procfs::status_field(&status, key);
        if field("Name:")? != "uml-userspace" {
            return None;
        }
        let tracer: i32 = field("TracerPid:")?.parse().ok()?;
        if tracer != 0 && std::path::Path::new(&format!("/proc/{kernel}/task/{tracer}")).exists() {
            Some("ptrace")
        } else if tracer == 0 && field("Seccomp:")? == "2" {
            Some("seccomp")
        } else {
            None
        }
    })
}

/// What a QEMU command line asks for, as QEMU itself would read it: the
/// accelerator and devices as `vmm.asked.accel` and `vmm.asked.devices`
/// (what QEMU really runs is QMP's `vmm.accel` and `vmm.devices`).
pub(crate) fn qemu_facts(argv: &[String]) -> Facts {
    let mut facts = Facts::new();
    let mut accel = Vec::new();
    let mut devices = Vec::new();
    for (i, arg) in argv.iter().enumerate().skip(1) {
        let opt = arg.trim_start_matches('-');
        let value = || argv.get(i + 1).cloned().unwrap_or_default();
        let driver = |v: &str| v.split(',').next().unwrap_or("").trim_start_matches("driver=").to_string();
        let prop =
            |v: &str, key: &str| v.split(',').find_map(|kv| kv.strip_prefix(&format!("{key}="))).map(str::to_string);
        match opt {
            "enable-kvm" => accel.push("kvm".to_string()),
            "accel" => accel.extend(value().split(',').next().map(|a| a.trim_start_matches("accel=").to_string())),
            "machine" | "M" => {
                let v = value();
                facts.insert("vmm.machine".into(), driver(&v));
                if let Some(a) = prop(&v, "accel") {
                    accel.extend(a.split(':').map(str::to_string));
                }
            }
            "cpu" => {
                facts.insert("vmm.cpu".into(), driver(&value()));
            }
            "m" => {
                facts.insert("vmm.memory".into(), value().split(',').next().unwrap_or("").to_string());
            }
            "device" => devices.push(driver(&value())),
            "drive" => {
                let v = value();
                devices.push(format!("drive:{}", prop(&v, "if").unwrap_or_else(|| "ide".into())));
            }
            "nic" => {
                let v = value();
                devices.push(format!("nic:{}", prop(&v, "model").unwrap_or_else(|| "e1000".into())));
            }
            "net" if value().starts_with("nic") => {
                devices.push(format!("nic:{}", prop(&value(), "model").unwrap_or_else(|| "e1000".into())));
            }
            _ => {}
        }
    }
    // QEMU's default is TCG when no accelerator is named.
    facts.insert("vmm.asked.accel".into(), accel.first().cloned().unwrap_or_else(|| "tcg".into()));
    facts.insert("vmm.asked.devices".into(), devices.join(","));
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn the_vmms_errors_are_kept_apart_from_the_console() {
        let cmd = Cmd::new("sh").args(["-c", "echo booting; echo 'qemu: -bogus: invalid option' >&2; exit 1"]);
        let obs = boot(&cmd.timeout(Duration::from_secs(10)), "n").unwrap();
        assert_eq!(obs.console.trim(), "booting");
        assert!(obs.stderr.contains("invalid option"), "{}", obs.stderr);
        assert!(obs.ended_early.is_some() && !obs.timed_out);
        assert_eq!(obs.facts["boot.report"], "missing");
    }

    struct Halts;

    impl ConsoleReader for Halts {
        fn ended(&self, lines: &str) -> Option<String> {
            lines.lines().find(|l| l.starts_with("HALT")).map(str::to_string)
        }

        fn facts(&self, console: &str) -> Facts {
            Facts::from([("halts.lines".into(), console.lines().count().to_string())])
        }
    }

    #[test]
    fn a_console_reader_ends_the_boot_and_adds_its_facts() {
        let cmd = Cmd::new("sh").args(["-c", "echo booting; echo HALT now; sleep 30"]).timeout(Duration::from_secs(20));
        let started = Instant::now();
        let obs = boot_with(&cmd, "n", Channels::open().unwrap(), &[&Halts]).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "the reader's end stops the wait");
        assert_eq!(obs.ended_early.as_deref(), Some("ended (HALT now)"));
        assert_eq!(obs.facts["halts.lines"], "2");
        assert!(!obs.report_found && !obs.timed_out);
    }

    #[test]
    fn the_console_is_scanned_a_complete_line_at_a_time() {
        let child = Cmd::new("sh")
            .args(["-c", "printf 'one\\ntw'; sleep 1; printf 'o\\nthree'"])
            .timeout(Duration::from_secs(10))
            .spawn()
            .unwrap();
        let mut watch = ConsoleWatch::default();
        let mut first = String::new();
        while first.is_empty() {
            first = watch.new_lines(&child);
            std::thread::sleep(POLL);
        }
        assert_eq!(first, "one\n", "the partial line is held back until it ends");
        child.wait_until(Instant::now() + Duration::from_secs(5)).unwrap();
        assert_eq!(watch.new_lines(&child), "two\n", "each line once, whole; an unended one not at all");
        child.stop().unwrap();
    }

    #[test]
    fn reads_the_last_complete_report() {
        let console = "noise\nVLAB-REPORT-BEGIN nonce=old\nx=1\nVLAB-REPORT-END nonce=old\n\
                       [    1.0] boot\r\nVLAB-REPORT-BEGIN nonce=abc\r\nkernel=6.1\r\ncpu.vendor = AuthenticAMD\r\nbad key=1\r\nVLAB-REPORT-END nonce=abc\r\n";
        let (f, lines) = report_lines(console).unwrap();
        assert_eq!(f["guest.nonce"], "abc");
        assert_eq!(f["guest.kernel"], "6.1");
        assert_eq!(f["guest.cpu.vendor"], "AuthenticAMD");
        assert!(!f.contains_key("guest.x") && !f.contains_key("guest.bad key"));
        assert_eq!(lines.body, ["kernel=6.1", "cpu.vendor = AuthenticAMD", "bad key=1"]);
        assert!(report_lines("VLAB-REPORT-BEGIN nonce=a\nx=1\n").is_none());
    }

    #[test]
    fn qemu_accelerator_defaults_to_tcg_and_reads_every_spelling() {
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -m 256 -kernel k"))["vmm.asked.accel"], "tcg");
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -accel kvm"))["vmm.asked.accel"], "kvm");
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -enable-kvm"))["vmm.asked.accel"], "kvm");
        let f = qemu_facts(&argv("qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512M"));
        assert_eq!(
            (f["vmm.asked.accel"].as_str(), f["vmm.machine"].as_str(), f["vmm.cpu"].as_str()),
            ("tcg", "q35", "max")
        );
        assert_eq!(f["vmm.memory"], "512M");
    }

    #[test]
    fn qemu_devices_are_listed_by_driver() {
        let f = qemu_facts(&argv(
            "qemu-system-x86_64 -device virtio-blk-pci,drive=d0 -drive file=x,if=none,id=d0 -nic user,model=rtl8139 -device driver=e1000",
        ));
        assert_eq!(f["vmm.asked.devices"], "virtio-blk-pci,drive:none,nic:rtl8139,e1000");
    }

    #[test]
    fn a_panic_is_noticed() {
        assert!(panic_line("ok\n[ 1.2] Kernel panic - not syncing: VFS: Unable to mount root fs\n").is_some());
        assert!(panic_line("all good\n").is_none());
    }
}
