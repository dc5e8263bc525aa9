//! Lab 11 on real guests under TCG: the emulated device set (generic kernel)
//! binds ata_piix and e1000, the virtio set binds virtio_blk and virtio_net,
//! both record their numbers (QEMU's own device list and disk counters beside
//! the guest's), a configuration that only names virtio fails on the drivers
//! the guest bound, and no QEMU outlives a check.

mod common;

use common::*;
use serde_json::Value;

const LAB: &str = "11-pv-drivers";

/// A workspace with the lab started, or None (with the reason) when this machine cannot boot guests.
fn started_or_skip() -> Option<tempfile::TempDir> {
    supervise();
    if vlab::host::tools::which("qemu-system-x86_64").is_none() {
        skip("qemu-system-x86_64 is not installed (`vlab setup`)");
        return None;
    }
    if let Err(e) = vlab::guest::assets::ensure().and_then(|_| vlab::guest::assets::generic(false)) {
        skip(format_args!("the guest assets are not available here: {e:#}"));
        return None;
    }
    let ws = workspace();
    vlab(ws.path()).args(["start", LAB]).assert().success();
    Some(ws)
}

/// The only check of `step`, run alone: (outcome, message, evidence, recorded).
fn check(ws: &std::path::Path, step: &str) -> (String, String, Value, Value) {
    let (_, report) = json(ws, &["check", LAB, "--step", step]);
    let c = report["steps"][0]["checks"][0].clone();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    (s(&c["outcome"]), s(&c["message"]), c["evidence"].clone(), c["recorded"].clone())
}

fn fact<'a>(evidence: &'a Value, name: &str) -> &'a str {
    evidence[name].as_str().unwrap_or_else(|| panic!("no fact {name} in {evidence:#}"))
}

fn number(recorded: &Value, name: &str) -> f64 {
    let v = recorded[name].as_str().unwrap_or_else(|| panic!("{name} was not recorded: {recorded:#}"));
    v.parse().unwrap_or_else(|_| panic!("{name} = {v} is not a number"))
}

/// Processes still running in the lab's workspace (the student's QEMU runs there).
fn left_in(ws: &std::path::Path) -> Vec<i32> {
    running_in(&ws.join(LAB))
}

#[test]
fn both_device_sets_bind_their_drivers_and_record_numbers() {
    let Some(ws) = started_or_skip() else { return };
    overlay(&labs().join(LAB).join("solution"), &ws.path().join(LAB));

    let (outcome, message, ev, rec) = check(ws.path(), "emulated");
    assert_eq!(outcome, "pass", "emulated: {message}");
    assert_eq!(fact(&ev, "vmm.accel"), "tcg");
    // The devices as QEMU itself reported them over QMP, and the bytes it saw the guest write.
    let devices: Vec<&str> = fact(&ev, "vmm.devices").split(',').collect();
    assert!(devices.contains(&"ide-hd") && devices.contains(&"e1000"), "{ev:#}");
    assert_eq!(fact(&ev, "vmm.block.wr_bytes"), fact(&ev, "guest.measure.disk_bytes"), "{ev:#}");
    assert_eq!(fact(&ev, "report.sealed"), "yes");
    assert_eq!((fact(&ev, "guest.disk.driver"), fact(&ev, "guest.disk.controller")), ("sd", "ata_piix"));
    assert_eq!(fact(&ev, "guest.net.driver"), "e1000", "{ev:#}");
    // The solution's own traced boot sends and receives too, before the watched one.
    let at_least = |a: &str, b: &str| fact(&ev, a).parse::<u64>().unwrap() >= fact(&ev, b).parse::<u64>().unwrap();
    assert!(at_least("sink.bytes", "guest.measure.net_bytes"), "the sink got what the guest sent: {ev:#}");
    assert!(at_least("source.bytes", "guest.measure.net_rx_bytes"), "the source sent what the guest got: {ev:#}");
    assert!(!fact(&ev, "guest.kernel").contains("cloud"), "both device runs boot the generic kernel: {ev:#}");
    // The runner's own count, in the phases the probe marked.
    assert_eq!(fact(&ev, "devcount.phases"), "disk_write,disk_read,net_tx,net_rx", "{ev:#}");
    assert_eq!((fact(&ev, "devcount.disk_write.device"), fact(&ev, "devcount.net_tx.device")), ("ide", "e1000"));
    let emulated = rec.clone();
    assert!(number(&rec, "guest.measure.disk_write_kib_s") > 0.0 && number(&rec, "guest.measure.net_kib_s") > 0.0);
    assert!(number(&rec, "sink.mbit_s") > 0.0);
    assert!(fact(&ev, "guest.net.link_ms").parse::<u64>().is_ok(), "{ev:#}");
    assert!(left_in(ws.path()).is_empty(), "a QEMU outlived the emulated check: {:?}", left_in(ws.path()));

    let (outcome, message, ev, rec) = check(ws.path(), "virtio");
    assert_eq!(outcome, "pass", "virtio: {message}");
    assert_eq!((fact(&ev, "guest.disk.driver"), fact(&ev, "guest.disk.controller")), ("virtio_blk", "virtio-pci"));
    assert_eq!((fact(&ev, "guest.net.driver"), fact(&ev, "guest.net.controller")), ("virtio_net", "virtio-pci"));
    let at_least = |a: &str, b: &str| fact(&ev, a).parse::<u64>().unwrap() >= fact(&ev, b).parse::<u64>().unwrap();
    assert!(
        at_least("sink.bytes", "guest.measure.net_bytes") && at_least("source.bytes", "guest.measure.net_rx_bytes")
    );
    assert_eq!(
        (fact(&ev, "devcount.disk_read.device"), fact(&ev, "devcount.net_rx.device")),
        ("virtio-blk", "virtio-net")
    );
    assert!(!fact(&ev, "guest.kernel").contains("cloud"), "both device runs boot the generic kernel: {ev:#}");
    // The README's lesson, as counted: virtio needs several times fewer register
    // accesses per MiB of disk and per packet sent than the emulated devices.
    for (key, times) in [("devcount.disk_per_mib", 5.0), ("devcount.net_tx_per_packet", 2.0)] {
        assert!(
            number(&rec, key) * times < number(&emulated, key),
            "{key}: virtio {} against emulated {}",
            number(&rec, key),
            number(&emulated, key)
        );
    }
    assert!(number(&rec, "guest.measure.disk_read_kib_s") > 0.0 && number(&rec, "sink.mbit_s") > 0.0);
    assert!(number(&rec, "guest.measure.net_kib_s") > 0.0);
    // No speed comparison: under TCG both cards move bytes at the pace of the
    // emulated CPU (the README says so), so either may come out ahead.
    assert!(fact(&ev, "guest.net.link_ms").parse::<u64>().is_ok(), "{ev:#}");
    assert!(left_in(ws.path()).is_empty(), "a QEMU outlived the virtio check: {:?}", left_in(ws.path()));

    let (_, status) = json(ws.path(), &["status"]);
    let text = status.to_string();
    for key in [
        "emulated.guest.measure.disk_write_kib_s",
        "emulated.guest.measure.net_kib_s",
        "virtio.guest.measure.net_kib_s",
        "virtio.sink.mbit_s",
        "emulated.devcount.disk_per_mib",
        "virtio.devcount.net_tx_per_packet",
    ] {
        assert!(text.contains(key), "`vlab status` lacks the measurement {key}: {text}");
    }
}

#[test]
fn a_configuration_that_only_names_virtio_fails() {
    let Some(ws) = started_or_skip() else { return };
    // Every id says virtio; the devices are an IDE disk and an RTL8139.
    overlay(&repo().join("tests").join("fakes").join(LAB), &ws.path().join(LAB));
    let (outcome, message, ev, rec) = check(ws.path(), "virtio");
    assert_eq!(outcome, "fail", "a disguised emulated configuration passed: {ev:#}");
    assert_eq!(fact(&ev, "report.nonce"), "fresh", "the guest did boot");
    assert_eq!(fact(&ev, "guest.disk.driver"), "sd");
    assert!(message.contains("virtio_blk"), "the failure must name the driver the guest bound: {message}");
    assert!(rec.as_object().is_none_or(|m| m.is_empty()), "a failed check recorded numbers: {rec}");
    assert!(left_in(ws.path()).is_empty(), "a QEMU outlived the failed check: {:?}", left_in(ws.path()));
}
