//! `vlab kvm`: the KVM lab's guest runner, student-written real-mode code on
//! vlab's tiny VMM (`super`), and `vlab kvm verdict`. The runner places 8 nonce bytes in guest memory at
//! `DATA_ADDR`; the guest must send them, in order, to port `PORT` with OUT
//! instructions, then HLT. Every exit is recorded as the VMM saw it.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{Exit, TinyVm};
use crate::check::wrap;

/// Guest-physical address of the nonce bytes (the code is loaded at super::LOAD_ADDR).
pub(crate) const DATA_ADDR: u64 = 0x1800;
pub(crate) const PORT: u16 = 0x10;
/// The guest gets this many exits; a correct one needs 9.
const MAX_EXITS: usize = 64;
/// A guest that loops without exiting is stopped here (KVM_RUN cannot time out by itself).
const WATCHDOG: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Serialize)]
pub(crate) struct VmmRun {
    pub(crate) nonce: String,
    pub(crate) code_bytes: usize,
    /// Every exit, as `out port=0x10 data=ab` / `hlt` / `error ...`.
    pub(crate) exits: Vec<String>,
    /// Bytes the guest sent to `PORT`, as hex.
    pub(crate) out_bytes: String,
    pub(crate) halted: bool,
    /// The guest sent exactly the nonce bytes and halted.
    pub(crate) copied: bool,
    pub(crate) elapsed_ms: f64,
}

impl VmmRun {
    pub(crate) fn describe(&self) -> String {
        let mut s = format!(
            "guest code: {} bytes at {:#x}; nonce {} placed at {DATA_ADDR:#x}\nexits seen by the VMM:\n",
            self.code_bytes,
            super::LOAD_ADDR,
            self.nonce
        );
        for e in &self.exits {
            s.push_str(&format!("  {e}\n"));
        }
        s.push_str(&format!(
            "bytes sent to port {PORT:#x}: {}\n",
            if self.out_bytes.is_empty() { "none" } else { &self.out_bytes }
        ));
        s.push_str(if self.copied {
            "the guest copied the nonce to the port and halted\n"
        } else {
            "the guest did not copy the nonce to the port and halt\n"
        });
        s
    }
}

/// Hex bytes, whitespace-separated or not; `#` starts a comment; an optional `0x` per byte.
pub(crate) fn parse_hex(text: &str) -> anyhow::Result<Vec<u8>> {
    let digits: String = text
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .flat_map(|l| l.split(|c: char| c.is_whitespace() || c == ','))
        .map(|t| t.trim_start_matches("0x").trim_start_matches("0X"))
        .collect();
    if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
        bail!("`{bad}` is not a hex digit; write bytes like `b0 42 e6 10 f4`");
    }
    if !digits.len().is_multiple_of(2) {
        bail!("an odd number of hex digits ({}): every byte is two digits", digits.len());
    }
    Ok((0..digits.len()).step_by(2).map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("checked")).collect())
}

fn nonce_bytes(nonce: &str) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(nonce.len() == 16, "the nonce must be 16 hex digits, got {nonce:?}");
    parse_hex(nonce).with_context(|| format!("the nonce {nonce:?} is not hex"))
}

/// Runs `code` with `nonce` at `DATA_ADDR` and records the exits.
pub(crate) fn run(code: &[u8], nonce: &str) -> anyhow::Result<VmmRun> {
    let data = nonce_bytes(nonce)?;
    let data_off = (DATA_ADDR - super::LOAD_ADDR) as usize;
    if code.is_empty() {
        bail!("the guest code is empty");
    }
    if code.len() > data_off {
        bail!("the guest code is {} bytes; it must fit below {DATA_ADDR:#x} ({data_off} bytes)", code.len());
    }
    let mut image = code.to_vec();
    image.resize(data_off, 0xF4);
    image.extend_from_slice(&data);
    let started = Instant::now();
    let mut vm = TinyVm::new(&image)?;
    let mut exits = Vec::new();
    let mut out = Vec::new();
    let mut halted = false;
    while exits.len() < MAX_EXITS {
        match vm.run() {
            Ok(Exit::Out { port, data }) => {
                exits.push(format!("out port={port:#x} data={}", hex(&data)));
                if port == PORT {
                    out.extend_from_slice(&data);
                }
            }
            Ok(Exit::Halt) => {
                exits.push("hlt".into());
                halted = true;
                break;
            }
            Err(e) => {
                exits.push(format!("error: {e}"));
                break;
            }
        }
    }
    let out_bytes = hex(&out);
    Ok(VmmRun {
        nonce: nonce.to_string(),
        code_bytes: code.len(),
        copied: halted && out == data,
        exits,
        out_bytes,
        halted,
        elapsed_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `vlab kvm run FILE`: reads the code, runs it with the nonce (from
/// `--nonce`, $VLAB_NONCE or fresh) and, inside a check, writes what the VMM
/// observed to $VLAB_RESULTS as `observed_*` lines.
pub(crate) fn run_file(file: &Path, nonce: Option<String>) -> anyhow::Result<VmmRun> {
    let mut text = String::new();
    crate::files::open_regular(file, false)
        .and_then(|mut f| f.read_to_string(&mut text).map_err(Into::into))
        .context("cannot read the guest code")?;
    let code = parse_hex(&text).with_context(|| format!("{}", file.display()))?;
    let nonce = nonce
        .or_else(|| std::env::var("VLAB_NONCE").ok().filter(|n| !n.is_empty()))
        .unwrap_or_else(crate::evidence::fresh_nonce);
    std::thread::spawn(|| {
        std::thread::sleep(WATCHDOG);
        eprintln!(
            "vlab kvm run: the guest ran {}s without an exit the VMM handles (an endless loop?); stopped",
            WATCHDOG.as_secs()
        );
        std::process::exit(3);
    });
    let run = run(&code, &nonce)?;
    if let Some(results) = std::env::var_os("VLAB_RESULTS") {
        let observed = BTreeMap::from([
            ("out_bytes".to_string(), run.out_bytes.clone()),
            ("exits".to_string(), run.exits.len().to_string()),
            ("halted".to_string(), if run.halted { "yes" } else { "no" }.to_string()),
        ]);
        wrap::write_observed(Path::new(&results), &observed)?;
    }
    Ok(run)
}

/// The answers `vlab kvm verdict` holds against doctor's measurement.
const VERDICT_KEYS: [&str; 4] = ["present", "module", "cpu_virt", "fast"];

/// What doctor found about KVM here, in the answers' terms.
pub(crate) fn kvm_facts(kvm: &crate::host::KvmInfo) -> BTreeMap<String, String> {
    let yes = |b: bool| if b { "yes" } else { "no" }.to_string();
    BTreeMap::from([
        ("present".to_string(), yes(kvm.present)),
        ("module".to_string(), kvm.module.clone().unwrap_or_else(|| "none".into())),
        ("cpu_virt".to_string(), yes(kvm.cpu_virt)),
        ("fast".to_string(), yes(kvm.fast)),
    ])
}

/// `vlab kvm verdict -- COMMAND`: the student's command explains this
/// machine's KVM; the runner measures it (as doctor does) and writes
/// `observed_*` lines, including `observed_mismatch` (`none` or the keys that differ).
pub(crate) fn verdict(command: &[String]) -> anyhow::Result<i32> {
    let env = wrap::check_env();
    let code = wrap::finish(wrap::run_student(command, &[])?)?;
    let caps = crate::host::detect();
    let truth = kvm_facts(&caps.kvm);
    let answers = crate::evidence::parse_results(&crate::files::read_regular(&env.results)?);
    let wrong: Vec<String> = VERDICT_KEYS
        .iter()
        .filter(|k| answers.get(&format!("result.{k}")).map(|v| v.trim()) != truth.get(**k).map(String::as_str))
        .map(|k| {
            let said = answers.get(&format!("result.{k}")).map(String::as_str).unwrap_or("nothing");
            format!("{k} (you said {said}, the runner found {})", truth[*k])
        })
        .collect();
    let mut observed = truth.clone();
    observed.insert("mismatch".into(), if wrong.is_empty() { "none".into() } else { wrong.join("; ") });
    wrap::write_observed(&env.results, &observed)?;
    println!("runner's measurement: {}", caps.kvm.reason);
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_read_with_comments_and_prefixes() {
        assert_eq!(parse_hex("b0 42 # mov al, 0x42\n0xe6,0x10\nf4").unwrap(), [0xB0, 0x42, 0xE6, 0x10, 0xF4]);
        assert!(parse_hex("b0 4").is_err());
        assert!(parse_hex("zz").unwrap_err().to_string().contains("hex digit"));
    }

    /// mov si, 0x1800; mov cx, 8; l: lodsb; out 0x10, al; loop l; hlt
    /// (the code runs with CS=DS=0 from 0x1000, so the data is at ds:0x1800).
    pub(crate) const COPY_NONCE: &str = "be 00 18  b9 08 00  ac  e6 10  e2 fb  f4";

    #[test]
    fn a_guest_that_copies_the_nonce_passes_and_one_that_does_not_fails() {
        if !Path::new("/dev/kvm").exists() {
            crate::testing::skip("/dev/kvm is not present on this machine");
            return;
        }
        let good = run(&parse_hex(COPY_NONCE).unwrap(), "0123456789abcdef").unwrap();
        assert!(good.copied, "{}", good.describe());
        assert_eq!(good.out_bytes, "0123456789abcdef");
        assert_eq!(good.exits.len(), 9);
        let fixed = run(&parse_hex("b0 01 e6 10 f4").unwrap(), "0123456789abcdef").unwrap();
        assert!(!fixed.copied && fixed.halted);
    }
}
