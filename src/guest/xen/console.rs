//! Xen's console: what the hypervisor itself prints on the serial line,
//! read as facts beside a guest's report (guest::boot), and the line after
//! which the machine does nothing more.

use crate::evidence::Facts;
use crate::guest::boot::ConsoleReader;

/// Xen's console, read beside a guest's report by the boot observer.
pub(crate) struct XenConsole;

impl ConsoleReader for XenConsole {
    /// Xen stops its CPUs when dom0 ends, but QEMU runs on.
    fn ended(&self, lines: &str) -> Option<String> {
        dom0_ended(lines).map(|line| format!("Xen: \"{line}\""))
    }

    fn facts(&self, console: &str) -> Facts {
        facts(console)
    }
}

/// Facts from the hypervisor's own `(XEN)` lines on the console (none when
/// there are none): `xen.version`, `xen.cmdline`, `xen.dom0_mem_kib` (the
/// first size of its `dom0_mem=`), `xen.cpus` (CPUs Xen brought up),
/// `xen.dom0_vcpus`, `xen.dom0_halted`.
pub(crate) fn facts(console: &str) -> Facts {
    let mut facts = Facts::new();
    let lines = console.lines().filter_map(|l| l.trim_end_matches('\r').strip_prefix("(XEN) "));
    for line in lines {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Xen version ") {
            facts.entry("xen.version".into()).or_insert_with(|| v.split_whitespace().next().unwrap_or("").to_string());
        } else if let Some(v) = line.strip_prefix("Command line:") {
            let cmdline = v.trim().to_string();
            if let Some(kib) =
                cmdline.split_whitespace().find_map(|w| w.strip_prefix("dom0_mem=")).and_then(dom0_mem_kib)
            {
                facts.insert("xen.dom0_mem_kib".into(), kib.to_string());
            }
            facts.insert("xen.cmdline".into(), cmdline);
        } else if let Some(v) = line.strip_prefix("Brought up ").and_then(|v| v.strip_suffix(" CPUs")) {
            facts.insert("xen.cpus".into(), v.to_string());
        } else if let Some(v) = line.strip_prefix("Dom0 has maximum ").and_then(|v| v.strip_suffix(" VCPUs")) {
            facts.insert("xen.dom0_vcpus".into(), v.to_string());
        } else if line.starts_with("Hardware Dom0 halted") {
            facts.insert("xen.dom0_halted".into(), "yes".into());
        }
    }
    facts
}

/// Xen's line saying dom0 has ended (halted, shut down or crashed), after
/// which the machine does nothing more.
pub(crate) fn dom0_ended(console: &str) -> Option<&str> {
    console
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("(XEN) "))
        .find(|l| ["halted", "shutdown", "crashed"].iter().any(|w| l.starts_with(&format!("Hardware Dom0 {w}"))))
}

/// The first plain size of a `dom0_mem=` value (`512M`, `512M,max:512M`,
/// `min:128M,384M`), in KiB; Xen reads a bare number as KiB.
fn dom0_mem_kib(value: &str) -> Option<u64> {
    let size = value.split(',').find(|p| !p.contains(':'))?;
    let (digits, unit) = size.split_at(size.find(|c: char| !c.is_ascii_digit()).unwrap_or(size.len()));
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" | "K" => 0,
        "M" => 10,
        "G" => 20,
        "T" => 30,
        "B" => return Some(n >> 10),
        _ => return None,
    };
    Some(n << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_xen_printed() {
        let console = "(XEN) Xen version 4.17.7 (Debian 4.17.7+13) (pkg-xen-devel@lists) debug=n\r\n\
                       (XEN) Command line: console=com1 dom0_mem=384M,max:384M dom0_max_vcpus=1\r\n\
                       (XEN) Brought up 2 CPUs\n(XEN) Dom0 has maximum 1 VCPUs\n\
                       [    2.2] Xen version: 4.17.7 (preserve-AD)\n(XEN) Hardware Dom0 halted: halting machine\n";
        let f = facts(console);
        assert_eq!(f["xen.version"], "4.17.7");
        assert_eq!(f["xen.cmdline"], "console=com1 dom0_mem=384M,max:384M dom0_max_vcpus=1");
        assert_eq!(f["xen.dom0_mem_kib"], "393216");
        assert_eq!(f["xen.cpus"], "2");
        assert_eq!(f["xen.dom0_vcpus"], "1");
        assert_eq!(f["xen.dom0_halted"], "yes");
    }

    #[test]
    fn a_console_without_xen_gives_no_facts() {
        assert!(facts("[    0.0] Linux version 6.1\nXen version 4.17 (XEN) Command line: x\n").is_empty());
    }

    #[test]
    fn dom0_ending_is_seen() {
        assert_eq!(
            dom0_ended("x\n(XEN) Hardware Dom0 halted: halting machine\r\n"),
            Some("Hardware Dom0 halted: halting machine")
        );
        assert!(dom0_ended("(XEN) Hardware Dom0 crashed: rebooting machine in 5 seconds.\n").is_some());
        assert_eq!(dom0_ended("[ 1.0] Hardware Dom0 halted\n(XEN) Dom0 has maximum 1 VCPUs\n"), None);
    }

    #[test]
    fn dom0_mem_sizes() {
        assert_eq!(dom0_mem_kib("512M"), Some(524288));
        assert_eq!(dom0_mem_kib("min:128M,1G"), Some(1048576));
        assert_eq!(dom0_mem_kib("262144"), Some(262144));
        assert_eq!(dom0_mem_kib("max:512M"), None);
        assert_eq!(dom0_mem_kib("12Q"), None);
    }
}
