//! Boot checks: the student's command boots a kernel (QEMU, UML, Xen) whose
//! console is on stdout; the runner's probe, running as init inside, prints a
//! report framed by nonce-carrying markers. The runner reads the console as it
//! comes, fails fast on a kernel panic, and inspects the VMM process it finds
//! among the command's descendants (accelerator, devices) before killing it.
//!
//! Report protocol (one line each, on the console):
//!   VLAB-REPORT-BEGIN nonce=<nonce>
//!   key=value              (any number; become facts `guest.<key>`)
//!   VLAB-REPORT-END nonce=<nonce>

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::facts::Facts;
use crate::proc::{self, Cmd};

pub const BEGIN: &str = "VLAB-REPORT-BEGIN";
pub const END: &str = "VLAB-REPORT-END";

/// Console lines that mean the guest kernel died.
const PANICS: [&str; 3] = ["Kernel panic - not syncing", "---[ end Kernel panic", "(XEN) Panic on CPU"];

/// Console bytes kept; a guest flooding its console is cut here.
const CONSOLE_LIMIT: usize = 4 * 1024 * 1024;

pub struct BootObservation {
    pub facts: Facts,
    /// The guest's console (the command's stdout).
    pub console: String,
    /// What the command and the VMM said on stderr (QEMU's own errors).
    pub stderr: String,
    /// The kernel panic line, if the guest panicked.
    pub panic: Option<String>,
    pub ended_early: Option<String>,
    pub timed_out: bool,
}

/// Parses the last complete report on the console into `guest.*` facts.
pub fn parse_report(console: &str) -> Option<Facts> {
    let lines: Vec<&str> = console.lines().map(|l| l.trim_end_matches('\r')).collect();
    let end = lines.iter().rposition(|l| l.contains(END))?;
    let begin = lines[..end].iter().rposition(|l| l.contains(BEGIN))?;
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
    Some(facts)
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

/// Starts `cmd` and waits for a complete report, a panic, its exit or its deadline.
pub fn boot(cmd: &Cmd, nonce: &str) -> Result<BootObservation, proc::ProcError> {
    let uml = crate::host::uml::known().working_exes();
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
                vmm = inspect_vmm(child.pid(), &uml);
            }
            userspace = userspace.or_else(|| uml_userspace(&vmm));
            inspected = Some(Instant::now());
        }
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
        if let Some(line) = crate::guest::xen::dom0_ended(&lines) {
            // Xen stops its CPUs when dom0 ends, but QEMU runs on: nothing more will come.
            ended_early = Some(format!("ended (Xen: \"{line}\")"));
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
    if vmm.is_empty() {
        // A report can come sooner than the next search: look once more while the VMM still runs.
        vmm = inspect_vmm(child.pid(), &uml);
    }
    userspace = userspace.or_else(|| uml_userspace(&vmm));
    let (console, _) = child.read_stdout(CONSOLE_LIMIT);
    let (stderr, _) = child.read_stderr(64 * 1024);
    child.stop()?;
    let mut facts = vmm;
    let report = parse_report(&console);
    facts.insert("boot.report".into(), if report.is_some() { "found" } else { "missing" }.into());
    let freshness = match report.as_ref().and_then(|r| r.get("guest.nonce")) {
        Some(n) if n == nonce => "fresh",
        Some(_) => "stale",
        None => "missing",
    };
    facts.insert("report.nonce".into(), freshness.into());
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
    facts.extend(crate::guest::xen::console_facts(&console));
    let panic = panic_line(&console);
    facts.insert("boot.panic".into(), if panic.is_some() { "yes" } else { "no" }.into());
    Ok(BootObservation { facts, console, stderr, panic, ended_early, timed_out })
}

/// Facts about the first VMM among `root` and its descendants: QEMU
/// (`vmm.accel`, `vmm.machine`, `vmm.cpu`, `vmm.memory`, `vmm.devices`) or a
/// UML kernel, recognised by its binary (`/proc/PID/exe`): one of `uml`, the
/// kernels `vlab doctor` booted here, whatever the process calls itself.
pub fn inspect_vmm(root: i32, uml: &[PathBuf]) -> Facts {
    let mut facts = Facts::new();
    for pid in std::iter::once(root).chain(proc::descendants(root)) {
        let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let argv: Vec<String> =
            raw.split(|c| *c == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let Some(program) = argv.first().map(|a| a.rsplit('/').next().unwrap_or(a).to_string()) else { continue };
        if program.starts_with("qemu-system") {
            facts.extend(qemu_facts(&argv));
        } else if std::fs::read_link(format!("/proc/{pid}/exe")).is_ok_and(|exe| uml.contains(&exe)) {
            facts.insert("vmm.accel".into(), "uml".into());
        } else {
            continue;
        }
        facts.insert("vmm.program".into(), program);
        facts.insert("vmm.pid".into(), pid.to_string());
        facts.insert("vmm.cmdline".into(), argv.join(" "));
        break;
    }
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
        let field = |key| crate::container::process::status_field(&status, key);
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

/// What a QEMU command line asks for, as QEMU itself would read it.
pub fn qemu_facts(argv: &[String]) -> Facts {
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
    facts.insert("vmm.accel".into(), accel.first().cloned().unwrap_or_else(|| "tcg".into()));
    facts.insert("vmm.devices".into(), devices.join(","));
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
        let f = parse_report(console).unwrap();
        assert_eq!(f["guest.nonce"], "abc");
        assert_eq!(f["guest.kernel"], "6.1");
        assert_eq!(f["guest.cpu.vendor"], "AuthenticAMD");
        assert!(!f.contains_key("guest.x") && !f.contains_key("guest.bad key"));
        assert!(parse_report("VLAB-REPORT-BEGIN nonce=a\nx=1\n").is_none());
    }

    #[test]
    fn qemu_accelerator_defaults_to_tcg_and_reads_every_spelling() {
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -m 256 -kernel k"))["vmm.accel"], "tcg");
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -accel kvm"))["vmm.accel"], "kvm");
        assert_eq!(qemu_facts(&argv("qemu-system-x86_64 -enable-kvm"))["vmm.accel"], "kvm");
        let f = qemu_facts(&argv("qemu-system-x86_64 -machine q35,accel=tcg -cpu max -m 512M"));
        assert_eq!((f["vmm.accel"].as_str(), f["vmm.machine"].as_str(), f["vmm.cpu"].as_str()), ("tcg", "q35", "max"));
        assert_eq!(f["vmm.memory"], "512M");
    }

    #[test]
    fn qemu_devices_are_listed_by_driver() {
        let f = qemu_facts(&argv(
            "qemu-system-x86_64 -device virtio-blk-pci,drive=d0 -drive file=x,if=none,id=d0 -nic user,model=rtl8139 -device driver=e1000",
        ));
        assert_eq!(f["vmm.devices"], "virtio-blk-pci,drive:none,nic:rtl8139,e1000");
    }

    #[test]
    fn a_panic_is_noticed() {
        assert!(panic_line("ok\n[ 1.2] Kernel panic - not syncing: VFS: Unable to mount root fs\n").is_some());
        assert!(panic_line("all good\n").is_none());
    }
}
