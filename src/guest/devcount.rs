//! What each device costs in device accesses, counted by the runner itself
//! in the QEMU it verified. Every register access a guest driver makes to an
//! emulated or virtio device (an `in`/`out` or an MMIO load/store) goes through
//! a QEMU `MemoryRegion`, and QEMU's `memory_region_ops_read`/`_write` trace
//! events name the region. Under KVM each such access would be a VM exit
//! (or an ioeventfd); under TCG it is a call into the device model. The count
//! is the same either way, which is why it shows what TCG's times drown.
//!
//! How the runner gets the events without trusting a file the student can
//! write: over its verified QMP connection it hands QEMU the write end of a
//! pipe (`getfd`), points QEMU's log at it (HMP `logfile /proc/self/fd/N`,
//! QEMU 7.2's trace backend is `log`) and enables the two events (HMP
//! `log trace:...`). Only QEMU and the runner hold the pipe.
//!
//! The runner's probe marks its measurement phases with one byte written to
//! I/O port 0x80 (`/dev/port`; the kernel's own port-0x80 delays write 0):
//! 0xa1 disk write, 0xa2 disk read, 0xa3 network send, 0xa4 network receive,
//! 0xa0 end. Accesses are attributed to the phase open when they happen.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::evidence::Facts;

/// What counting needs of the runner's verified QMP connection (guest::qmp's
/// monitor implements it; this module does not name it, so the two form no cycle).
pub(super) trait Qmp {
    fn pid(&self) -> i32;
    /// Hands QEMU `fd` under `name` (QMP `getfd`).
    fn pass_fd(&mut self, name: &str, fd: std::os::fd::RawFd) -> Result<(), String>;
    fn execute(&mut self, command: &str, arguments: serde_json::Value) -> Result<serde_json::Value, String>;
}

/// The marker port and the phases its bytes open (0xa0 closes).
const MARK_PORT: u64 = 0x80;
const MARK_END: u64 = 0xa0;
const PHASES: [(u64, &str); 4] = [(0xa1, "disk_write"), (0xa2, "disk_read"), (0xa3, "net_tx"), (0xa4, "net_rx")];

/// The events the runner enables. A virtio queue notification is a guest
/// write to the notify register too, but QEMU hands it to an ioeventfd
/// without calling the region's ops (under TCG as under KVM), so it shows as
/// `virtio_queue_notify` instead; `virtio_set_status` names which device is which.
const EVENTS: &str = "trace:memory_region_ops_read,trace:memory_region_ops_write,\
                      trace:virtio_queue_notify,trace:virtio_set_status";

/// A trace line longer than this is not one of ours (and is skipped).
const LINE_LIMIT: usize = 4096;

/// The device a QEMU memory region belongs to, by the names QEMU 7.2 gives
/// them (hw/ide, hw/net/e1000.c, hw/net/rtl8139.c, hw/virtio/virtio-pci.c:
/// `virtio-pci-{common,isr,device,notify}-<virtio device>`).
pub(crate) fn device_of(region: &str) -> Option<&'static str> {
    Some(match region {
        "ide" | "piix-bmdma" | "bmdma" | "piix-bmdma-container" => "ide",
        r if r.starts_with("e1000e") => "e1000e",
        r if r.starts_with("e1000") => "e1000",
        r if r.starts_with("rtl8139") => "rtl8139",
        r if r.contains("virtio-blk") => "virtio-blk",
        r if r.contains("virtio-net") => "virtio-net",
        // The legacy (virtio 0.9) I/O BAR carries no device name.
        "virtio-pci" => "virtio-legacy",
        _ => return None,
    })
}

/// One traced access: by a vCPU (`cpu` >= 0) or by a device (-1, e.g. an MSI).
#[derive(Debug, PartialEq)]
struct Access<'a> {
    write: bool,
    cpu: i64,
    addr: u64,
    value: u64,
    region: &'a str,
}

fn hex(s: &str) -> Option<u64> {
    u64::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
}

/// Parses `memory_region_ops_write cpu 0 mr 0x55.. addr 0x80 value 0xa1 size 1 name 'ioport80'`,
/// with or without the `PID@TIME:` prefix `-msg timestamp=on` adds.
fn parse(line: &str) -> Option<Access<'_>> {
    let at = line.find("memory_region_ops_")?;
    let rest = &line[at + "memory_region_ops_".len()..];
    let (op, rest) = rest.split_once(' ')?;
    let write = match op {
        "read" => false,
        "write" => true,
        _ => return None,
    };
    let (fields, name) = rest.split_once(" name '")?;
    let region = name.trim_end().strip_suffix('\'')?;
    let mut it = fields.split_whitespace();
    let mut get = |key: &str| -> Option<&str> {
        if it.next()? != key {
            return None;
        }
        it.next()
    };
    let cpu = get("cpu")?.parse().ok()?;
    get("mr")?;
    let addr = hex(get("addr")?)?;
    let value = hex(get("value")?)?;
    Some(Access { write, cpu, addr, value, region })
}

/// The `vdev` of a `NAME vdev 0x... ...` line (a virtio event).
fn virtio_event<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = &line[line.find(name)? + name.len()..];
    rest.strip_prefix(" vdev ")?.split_whitespace().next()
}

/// What the trace showed so far.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    phase: Option<&'static str>,
    /// The device of the last vCPU write to a virtio region: the
    /// `virtio_set_status` that such a write causes comes right after it.
    last_virtio_write: Option<&'static str>,
    /// virtio devices by the `vdev` pointer QEMU's virtio events print.
    vdevs: BTreeMap<String, &'static str>,
    /// (phase, device) → vCPU accesses.
    counts: BTreeMap<(&'static str, &'static str), u64>,
    /// The phases opened, in order.
    opened: Vec<&'static str>,
    lines: u64,
}

impl Tally {
    pub(crate) fn line(&mut self, line: &str) {
        self.lines += 1;
        if let Some(vdev) = virtio_event(line, "virtio_set_status") {
            if let Some(device) = self.last_virtio_write.take() {
                self.vdevs.insert(vdev.to_string(), device);
            }
            return;
        }
        if let Some(vdev) = virtio_event(line, "virtio_queue_notify") {
            let device = self.vdevs.get(vdev).copied().unwrap_or("virtio");
            if let Some(phase) = self.phase {
                *self.counts.entry((phase, device)).or_default() += 1;
            }
            return;
        }
        let Some(a) = parse(line) else { return };
        if a.cpu < 0 {
            return;
        }
        let device = device_of(a.region);
        self.last_virtio_write = device.filter(|d| a.write && d.starts_with("virtio"));
        if a.write && a.region == "ioport80" && a.addr == MARK_PORT {
            if a.value == MARK_END {
                self.phase = None;
            } else if let Some((_, name)) = PHASES.iter().find(|(v, _)| *v == a.value) {
                self.phase = Some(name);
                self.opened.push(name);
            }
            return;
        }
        if let (Some(phase), Some(device)) = (self.phase, device) {
            *self.counts.entry((phase, device)).or_default() += 1;
        }
    }

    /// `devcount.phases` (in order), and per phase `devcount.PHASE.DEVICE`,
    /// `devcount.PHASE.device` (the device accessed most) and `devcount.PHASE.accesses` (its count).
    pub(crate) fn facts(&self) -> Facts {
        let mut f = Facts::new();
        f.insert("devcount.trace".into(), "on".into());
        f.insert("devcount.lines".into(), self.lines.to_string());
        f.insert("devcount.phases".into(), self.opened.join(","));
        for (_, phase) in PHASES {
            let mine: Vec<(&str, u64)> =
                self.counts.iter().filter(|((p, _), _)| *p == phase).map(|((_, d), n)| (*d, *n)).collect();
            for (device, n) in &mine {
                f.insert(format!("devcount.{phase}.{device}"), n.to_string());
            }
            if self.opened.contains(&phase) {
                let (device, n) = mine.iter().max_by_key(|(_, n)| *n).copied().unwrap_or(("none", 0));
                f.insert(format!("devcount.{phase}.device"), device.into());
                f.insert(format!("devcount.{phase}.accesses"), n.to_string());
            }
        }
        f
    }
}

/// The runner's reading end of QEMU's log.
pub(super) struct Counter {
    tally: Arc<Mutex<Tally>>,
    thread: std::thread::JoinHandle<()>,
}

impl Counter {
    /// Points the log of the QEMU behind `m` at a fresh pipe and enables the events.
    fn attach(m: &mut dyn Qmp) -> Result<Counter, String> {
        let err = |what: &str, e: std::io::Error| format!("cannot {what} for QEMU's trace: {e}");
        let mut fds = [0; 2];
        // SAFETY: `fds` has room for the two descriptors pipe2 writes; the result is checked.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(err("make a pipe", std::io::Error::last_os_error()));
        }
        // SAFETY: pipe2 succeeded, so both are fresh descriptors nothing else owns.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let pipe = std::fs::File::from(write);
        let ino = pipe.metadata().map_err(|e| err("stat the pipe", e))?.ino();
        m.pass_fd("vlab-trace", pipe.as_raw_fd())?;
        drop(pipe);
        // The number QEMU gave the pipe, so that its own fopen() can name it.
        let pid = m.pid();
        let fd = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map_err(|e| err("list QEMU's files", e))?
            .flatten()
            .find(|e| std::fs::metadata(e.path()).is_ok_and(|md| md.ino() == ino))
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .ok_or_else(|| format!("QEMU (pid {pid}) took the trace pipe but does not hold it"))?;
        hmp(m, &format!("logfile /proc/self/fd/{fd}"))?;
        m.execute("closefd", json!({ "fdname": "vlab-trace" }))?;
        hmp(m, &format!("log {EVENTS}"))?;
        let tally = Arc::new(Mutex::new(Tally::default()));
        let tally2 = tally.clone();
        let thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(std::fs::File::from(read));
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.by_ref().take(LINE_LIMIT as u64).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => tally2.lock().unwrap_or_else(|p| p.into_inner()).line(&String::from_utf8_lossy(&buf)),
                }
            }
        });
        Ok(Counter { tally, thread })
    }
}

/// An HMP command through QMP; HMP answers errors as text.
fn hmp(m: &mut dyn Qmp, line: &str) -> Result<(), String> {
    let answer = m.execute("human-monitor-command", json!({ "command-line": line }))?;
    match answer.as_str().map(str::trim) {
        Some("") | None => Ok(()),
        Some(text) => Err(format!("QEMU refused `{line}`: {text}")),
    }
}

/// Whether a boot counts device accesses, and how far it got.
#[derive(Default)]
pub(super) enum DeviceCount {
    #[default]
    Off,
    Wanted,
    Counting(Counter),
    Failed(String),
}

impl DeviceCount {
    /// Starts counting on a freshly verified monitor, when wanted.
    pub(super) fn attach(&mut self, m: &mut dyn Qmp) {
        if matches!(self, DeviceCount::Wanted) {
            *self = match Counter::attach(m) {
                Ok(c) => DeviceCount::Counting(c),
                Err(e) => DeviceCount::Failed(e),
            };
        }
    }

    /// The counts, once QEMU is gone (its end of the pipe closed; at most `wait`
    /// after that), or `devcount.trace` saying why there are none.
    pub(super) fn facts(&self, wait: Duration) -> Facts {
        let why = match self {
            DeviceCount::Off => return Facts::new(),
            DeviceCount::Wanted => "off: no verified QEMU connected its QMP monitor to $VLAB_QMP".to_string(),
            DeviceCount::Failed(e) => format!("off: {e}"),
            DeviceCount::Counting(c) => {
                let deadline = Instant::now() + wait;
                while !c.thread.is_finished() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                return c.tally.lock().unwrap_or_else(|p| p.into_inner()).facts();
            }
        };
        Facts::from([("devcount.trace".to_string(), why)])
    }
}

/// Accesses per MiB moved and per packet, from the runner's counts and the
/// amounts the probe moved (which the checks hold against QEMU's block
/// statistics and the runner's sink and source): `devcount.disk_per_mib`,
/// `devcount.net_tx_per_mib`, `devcount.net_rx_per_mib`,
/// `devcount.net_tx_per_packet`, `devcount.net_rx_per_packet`.
pub(crate) fn ratios(facts: &Facts) -> Facts {
    let num = |k: &str| facts.get(k).and_then(|v| v.parse::<f64>().ok());
    let mib = 1024.0 * 1024.0;
    let mut out = Facts::new();
    let mut put = |key: &str, accesses: Option<f64>, per: Option<f64>| {
        if let (Some(a), Some(p)) = (accesses, per.filter(|p| *p > 0.0)) {
            out.insert(format!("devcount.{key}"), format!("{:.2}", a / p));
        }
    };
    let disk = num("devcount.disk_write.accesses").zip(num("devcount.disk_read.accesses")).map(|(w, r)| w + r);
    put("disk_per_mib", disk, num("guest.measure.disk_bytes").map(|b| 2.0 * b / mib));
    put("net_tx_per_mib", num("devcount.net_tx.accesses"), num("guest.measure.net_bytes").map(|b| b / mib));
    put("net_rx_per_mib", num("devcount.net_rx.accesses"), num("guest.measure.net_rx_bytes").map(|b| b / mib));
    put("net_tx_per_packet", num("devcount.net_tx.accesses"), num("guest.measure.net_packets"));
    put("net_rx_per_packet", num("devcount.net_rx.accesses"), num("guest.measure.net_rx_packets"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
memory_region_ops_write cpu 0 mr 0x5628368b78a0 addr 0x70 value 0x8f size 1 name 'rtc-index'
memory_region_ops_write cpu 0 mr 0x7e addr 0x14 value 0x0 size 1 name 'virtio-pci-common-virtio-net'
virtio_set_status vdev 0x5568f19c8fa0 val 0
virtio_queue_notify vdev 0x5568f19c8fa0 n 1 vq 0x7f5ce7255010
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0x0 size 1 name 'ioport80'
memory_region_ops_read cpu 0 mr 0x55fa87a0 addr 0xc0 value 0x80000000 size 4 name 'e1000-mmio'
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0xa3 size 1 name 'ioport80'
memory_region_ops_write cpu 0 mr 0x55fa87a0 addr 0x3818 value 0x5 size 4 name 'e1000-mmio'
memory_region_ops_read cpu 0 mr 0x55fa87a0 addr 0xc0 value 0x1 size 4 name 'e1000-mmio'
memory_region_ops_write cpu -1 mr 0x56283611cde0 addr 0xfee00000 value 0x0 size 4 name 'apic-msi'
memory_region_ops_read cpu 0 mr 0x5628 addr 0xf0 value 0x1 size 4 name 'hpet'
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0x0 size 1 name 'ioport80'
12345@1700000000.000001:memory_region_ops_write cpu 0 mr 0x55fa87a0 addr 0x3818 value 0x6 size 4 name 'e1000-mmio'
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0xa0 size 1 name 'ioport80'
memory_region_ops_write cpu 0 mr 0x55fa87a0 addr 0x3818 value 0x7 size 4 name 'e1000-mmio'
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0xa4 size 1 name 'ioport80'
memory_region_ops_write cpu 0 mr 0x7f addr 0x0 value 0x0 size 2 name 'virtio-pci-notify-virtio-net'
virtio_queue_notify vdev 0x5568f19c8fa0 n 1 vq 0x7f5ce7255010
virtio_queue_notify vdev 0x99 n 0 vq 0x7f5ce7255010
memory_region_ops_write cpu 0 mr 0x55fa87acca00 addr 0x80 value 0xa0 size 1 name 'ioport80'
memory_region_ops_write cpu 0 mr 0x7f addr 0x0 value 0x0 size 2 name 'virtio-pci-notify-virtio-net'
e1000_core_write something else
memory_region_ops_write cpu 0 mr 0x7f addr 0x0 value 0x0 size 2 name 'unterminated
";

    fn tally(log: &str) -> Tally {
        let mut t = Tally::default();
        log.lines().for_each(|l| t.line(l));
        t
    }

    #[test]
    fn parses_a_trace_line_with_or_without_a_timestamp() {
        let a = parse("memory_region_ops_write cpu 0 mr 0x55 addr 0x80 value 0xa1 size 1 name 'ioport80'\n");
        assert_eq!(a, Some(Access { write: true, cpu: 0, addr: 0x80, value: 0xa1, region: "ioport80" }));
        let b =
            parse("1@2.3:memory_region_ops_read cpu -1 mr 0x1 addr 0x10 value 0x2 size 4 name 'e1000-mmio'").unwrap();
        assert_eq!((b.write, b.cpu, b.region), (false, -1, "e1000-mmio"));
        assert!(parse("memory_region_ops_write cpu 0 mr 0x1 addr zz value 0x0 size 1 name 'x'").is_none());
        assert!(parse("memory_region_subpage_read cpu 0 mr 0x1 addr 0x0 value 0x0 size 1 name 'x'").is_none());
    }

    #[test]
    fn counts_a_devices_vcpu_accesses_inside_the_marked_phases_only() {
        let f = tally(LOG).facts();
        // Before the first marker, the kernel's own 0x80 write (value 0), an MSI (cpu -1),
        // another device (hpet) and the accesses after 0xa0 do not count.
        assert_eq!(f["devcount.net_tx.e1000"], "3");
        assert_eq!(f["devcount.net_tx.device"], "e1000");
        assert_eq!(f["devcount.net_tx.accesses"], "3");
        // A notification the memory trace does not show, by the device that set its status;
        // one from a device never named is plain virtio.
        assert_eq!(f["devcount.net_rx.virtio-net"], "2");
        assert_eq!(f["devcount.net_rx.virtio"], "1");
        assert_eq!(f["devcount.net_rx.device"], "virtio-net");
        assert_eq!(f["devcount.phases"], "net_tx,net_rx");
        assert!(!f.contains_key("devcount.disk_write.device"), "a phase never opened has no device");
        assert_eq!(f["devcount.lines"], LOG.lines().count().to_string());
    }

    #[test]
    fn regions_are_named_after_their_device() {
        assert_eq!(device_of("virtio-pci-common-virtio-blk"), Some("virtio-blk"));
        assert_eq!(device_of("virtio-pci-notify-virtio-net"), Some("virtio-net"));
        assert_eq!(device_of("piix-bmdma"), Some("ide"));
        assert_eq!(device_of("e1000-mmio"), Some("e1000"));
        assert_eq!(device_of("e1000e-mmio"), Some("e1000e"));
        assert_eq!(device_of("rtl8139"), Some("rtl8139"));
        assert_eq!(device_of("hpet"), None);
    }

    #[test]
    fn ratios_divide_by_what_the_probe_moved() {
        let facts = Facts::from(
            [
                ("devcount.disk_write.accesses", "160"),
                ("devcount.disk_read.accesses", "160"),
                ("guest.measure.disk_bytes", "8388608"),
                ("devcount.net_tx.accesses", "3000"),
                ("guest.measure.net_bytes", "1048576"),
                ("guest.measure.net_packets", "1000"),
                ("devcount.net_rx.accesses", "10"),
                ("guest.measure.net_rx_packets", "0"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let r = ratios(&facts);
        assert_eq!(r["devcount.disk_per_mib"], "20.00");
        assert_eq!(r["devcount.net_tx_per_mib"], "3000.00");
        assert_eq!(r["devcount.net_tx_per_packet"], "3.00");
        assert!(!r.contains_key("devcount.net_rx_per_packet"), "no packets: no ratio");
        assert!(!r.contains_key("devcount.net_rx_per_mib"), "no bytes: no ratio");
    }
}
