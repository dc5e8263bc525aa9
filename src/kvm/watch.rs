//! `vlab kvm watch --mode MODE -- VMM`: the KVM lab's observer of a VMM the
//! student wrote. The runner makes a guest for this check from the nonce,
//! runs `VMM real|long GUEST` with its stdin on a pipe the runner holds, and
//! watches the VMM's processes from /proc. Only once a process whose
//! executable is the student's compiled binary holds a KVM VM and a vCPU
//! (`anon_inode:kvm-vm`, `anon_inode:kvm-vcpu`) does the runner write the
//! guest's seed, a secret of this check, to that pipe: the guest reads it
//! with `in` from port 0x11 and prints a few thousand xorshift steps of it,
//! so only a VMM that ran the guest knows what to print. Then the runner
//! holds what the VMM printed against what this guest prints, and the exits
//! the VMM counted against the guest's known structure, and writes
//! `observed_*` lines to $VLAB_RESULTS for the lab's rules.
//!
//! The guests (hand-assembled below): memory is 64 KiB of RAM at
//! guest-physical 0, the image is loaded at 0x1000 and starts there.
//! - `real`: real mode; the seed from port 0x11, 16 bytes of output as hex
//!   digits and a newline on port 0x10, then `hlt`.
//! - `mmio`: real mode; 8 rounds of three writes (4, 2 and 1 bytes) to
//!   unbacked addresses in a 12 KiB window whose base comes from the nonce.
//! - `paged`: long mode (the VMM builds the page tables), a 64-bit xorshift
//!   whose bytes go through a buffer in RAM at a nonce-chosen address.
//! - `cost`: `real` with a loop of port-0x12 writes in front, one exit each;
//!   the VMM reports its time per `KVM_RUN`, which the runner holds against
//!   the process's lifetime and its own measurement.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::check::wrap;
use crate::cleanup::Scratch;
use crate::proc::{self, Cmd};

/// How long the VMM may take to create its VM and vCPU, and then to run the guest.
const OBSERVE_LIMIT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    Real,
    Mmio,
    Paged,
    Cost,
}

impl Mode {
    /// The CPU mode the VMM is told to set up (its first argument).
    fn cpu(self) -> &'static str {
        if self == Mode::Paged { "long" } else { "real" }
    }
}

/// What the VMM should print and count for one guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// Bytes the guest sends to port 0x10.
    pub(crate) console: Vec<u8>,
    /// MMIO writes: address, length, value.
    pub(crate) mmio: Vec<(u64, u32, u64)>,
    pub(crate) exits: Counts,
    /// Exits on port 0x12, whose round trips the `cost` guest times.
    pub(crate) timed_exits: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Counts {
    pub(crate) io: u64,
    pub(crate) mmio: u64,
    pub(crate) hlt: u64,
}

/// The per-check constants the nonce chooses.
#[derive(Debug, Clone, Copy)]
struct Params {
    key: u64,
    iters: u16,
    mmio_seg: u16,
    buf: u32,
    cost_exits: u16,
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn params(nonce: &str) -> Params {
    let mut s = u64::from_str_radix(nonce.get(..16).unwrap_or(nonce), 16).unwrap_or(0);
    let key = splitmix(&mut s);
    let r = splitmix(&mut s);
    Params {
        key,
        // 16 rounds of 150..=249 steps: a few thousand steps, milliseconds even at 1 M instructions/s.
        iters: 150 + (r % 100) as u16,
        // A 4 KiB-aligned base from 0x10000 to 0xCF000; the window's top stays below 1 MiB.
        mmio_seg: 0x1000 + (((r >> 8) % 0xC0) as u16) * 0x100,
        // A buffer in 0x2000..0x7000, clear of the code page and of page tables at 0x8000 and up.
        buf: 0x2000 + (((r >> 16) % 0x50) as u32) * 0x100,
        cost_exits: 1000 + ((r >> 32) % 2000) as u16,
    }
}

const OUTS: u16 = 16;
const MMIO_ROUNDS: u16 = 8;

/// A tiny assembler: bytes, and backward rel8 jumps to a label.
struct Asm(Vec<u8>);

impl Asm {
    fn emit(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
    fn here(&self) -> usize {
        self.0.len()
    }
    /// `loop` (E2), `jnz` (75) back to `target`.
    fn back(&mut self, op: u8, target: usize) -> &mut Self {
        let rel = target as i64 - (self.here() as i64 + 2);
        let rel = i8::try_from(rel).expect("guest loops are short");
        self.emit(&[op, rel as u8])
    }
}

const LOOP: u8 = 0xE2;
const JNZ: u8 = 0x75;
/// `mov al, bl; shr al, 4; add al, '0'; cmp al, '9'; jbe +2; add al, 39; out 0x10, al`,
/// then the same for the low nibble: the byte in BL as two hex digits (same bytes in 16 and 64 bits).
const HEX_BL: [u8; 29] = [
    0x88, 0xD8, 0xC0, 0xE8, 0x04, 0x04, 0x30, 0x3C, 0x39, 0x76, 0x02, 0x04, 0x27, 0xE6, 0x10, //
    0x88, 0xD8, 0x24, 0x0F, 0x04, 0x30, 0x3C, 0x39, 0x76, 0x02, 0x04, 0x27, 0xE6, 0x10,
];
/// 32-bit xorshift of EBX in real mode (0x66 prefixes): x ^= x<<13; x ^= x>>17; x ^= x<<5.
const XORSHIFT32_16: [u8; 30] = [
    0x66, 0x89, 0xD8, 0x66, 0xC1, 0xE0, 0x0D, 0x66, 0x31, 0xC3, //
    0x66, 0x89, 0xD8, 0x66, 0xC1, 0xE8, 0x11, 0x66, 0x31, 0xC3, //
    0x66, 0x89, 0xD8, 0x66, 0xC1, 0xE0, 0x05, 0x66, 0x31, 0xC3,
];
/// 64-bit xorshift of RBX (REX.W): x ^= x<<13; x ^= x>>7; x ^= x<<17.
const XORSHIFT64: [u8; 30] = [
    0x48, 0x89, 0xD8, 0x48, 0xC1, 0xE0, 0x0D, 0x48, 0x31, 0xC3, //
    0x48, 0x89, 0xD8, 0x48, 0xC1, 0xE8, 0x07, 0x48, 0x31, 0xC3, //
    0x48, 0x89, 0xD8, 0x48, 0xC1, 0xE0, 0x11, 0x48, 0x31, 0xC3,
];

fn xorshift32(mut x: u32) -> u32 {
    x ^= x << 13;
    x ^= x >> 17;
    x ^ (x << 5)
}

fn xorshift64(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^ (x << 17)
}

fn hex_line(bytes: &[u8]) -> Vec<u8> {
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    s.into_bytes()
}

/// Real mode: the four seed bytes from port 0x11 into EBX, big-endian.
fn seed16(a: &mut Asm) {
    a.emit(&[0x66, 0x31, 0xDB, 0xB9, 0x04, 0x00]); // xor ebx, ebx; mov cx, 4
    let l = a.here();
    a.emit(&[0xE4, 0x11, 0x66, 0xC1, 0xE3, 0x08, 0x88, 0xC3]); // in al, 0x11; shl ebx, 8; mov bl, al
    a.back(LOOP, l);
}

/// The guest image for `mode`, and what running it with `seed` must show.
pub(crate) fn guest(mode: Mode, nonce: &str, seed: [u8; 4]) -> (Vec<u8>, Expected) {
    let p = params(nonce);
    let seed32 = u32::from_be_bytes(seed);
    let mut a = Asm(Vec::new());
    let mut exp =
        Expected { console: Vec::new(), mmio: Vec::new(), exits: Counts { io: 4, mmio: 0, hlt: 1 }, timed_exits: 0 };
    let iters = p.iters.to_le_bytes();
    match mode {
        Mode::Real | Mode::Cost | Mode::Mmio => {
            seed16(&mut a);
            let key = (p.key as u32).to_le_bytes();
            a.emit(&[0x66, 0x81, 0xF3]).emit(&key); // xor ebx, key
            a.emit(&[0x66, 0x83, 0xCB, 0x01]); // or ebx, 1
            let mut x = (seed32 ^ p.key as u32) | 1;
            if mode == Mode::Cost {
                a.emit(&[0xB9]).emit(&p.cost_exits.to_le_bytes()); // mov cx, n
                let l = a.here();
                a.emit(&[0xE6, 0x12]).back(LOOP, l); // out 0x12, al; loop
                exp.exits.io += u64::from(p.cost_exits);
                exp.timed_exits = u64::from(p.cost_exits);
            }
            if mode == Mode::Mmio {
                a.emit(&[0xB8]).emit(&p.mmio_seg.to_le_bytes()).emit(&[0x8E, 0xC0]); // mov ax, seg; mov es, ax
                a.emit(&[0xBE]).emit(&MMIO_ROUNDS.to_le_bytes()); // mov si, rounds
            } else {
                a.emit(&[0xBE]).emit(&OUTS.to_le_bytes()); // mov si, outs
            }
            let outer = a.here();
            a.emit(&[0xB9]).emit(&iters); // mov cx, iters
            let inner = a.here();
            a.emit(&XORSHIFT32_16).back(LOOP, inner);
            if mode == Mode::Mmio {
                a.emit(&[0x89, 0xDF, 0x81, 0xE7, 0xFC, 0x0F]); // mov di, bx; and di, 0xffc
                a.emit(&[0x26, 0x66, 0x89, 0x1D]); // mov [es:di], ebx
                a.emit(&[0x66, 0x89, 0xD8, 0x66, 0xC1, 0xE8, 0x10]); // mov eax, ebx; shr eax, 16
                a.emit(&[0x26, 0x89, 0x85, 0x00, 0x10]); // mov [es:di+0x1000], ax
                a.emit(&[0x26, 0x88, 0xBD, 0x00, 0x20]); // mov [es:di+0x2000], bh
            } else {
                a.emit(&HEX_BL);
            }
            a.emit(&[0x4E]).back(JNZ, outer); // dec si; jnz
            let base = u64::from(p.mmio_seg) << 4;
            let rounds = if mode == Mode::Mmio { MMIO_ROUNDS } else { OUTS };
            let mut out = Vec::new();
            for _ in 0..rounds {
                for _ in 0..p.iters {
                    x = xorshift32(x);
                }
                if mode == Mode::Mmio {
                    let off = u64::from(x & 0xFFC);
                    exp.mmio.push((base + off, 4, u64::from(x)));
                    exp.mmio.push((base + 0x1000 + off, 2, u64::from(x >> 16)));
                    exp.mmio.push((base + 0x2000 + off, 1, u64::from((x >> 8) & 0xFF)));
                } else {
                    out.push(x as u8);
                }
            }
            if mode == Mode::Mmio {
                exp.exits.mmio = exp.mmio.len() as u64;
            } else {
                a.emit(&[0xB0, 0x0A, 0xE6, 0x10]); // mov al, 10; out 0x10, al
                exp.console = hex_line(&out);
                exp.exits.io += exp.console.len() as u64;
            }
            a.emit(&[0xF4]);
        }
        Mode::Paged => {
            a.emit(&[0x31, 0xDB, 0xB9, 0x04, 0x00, 0x00, 0x00]); // xor ebx, ebx; mov ecx, 4
            let l = a.here();
            a.emit(&[0xE4, 0x11, 0xC1, 0xE3, 0x08, 0x88, 0xC3]).back(LOOP, l); // in; shl ebx, 8; mov bl, al
            // rbx = (seed << 32 | seed) ^ key | 1
            a.emit(&[0x48, 0x89, 0xD8, 0x48, 0xC1, 0xE0, 0x20, 0x48, 0x09, 0xC3]);
            a.emit(&[0x48, 0xB8]).emit(&p.key.to_le_bytes()).emit(&[0x48, 0x31, 0xC3, 0x48, 0x83, 0xCB, 0x01]);
            let buf = p.buf.to_le_bytes();
            let outs = u32::from(OUTS).to_le_bytes();
            a.emit(&[0xBF]).emit(&buf).emit(&[0xBE]).emit(&outs); // mov edi, buf; mov esi, outs
            let outer = a.here();
            a.emit(&[0xB9]).emit(&u32::from(p.iters).to_le_bytes()); // mov ecx, iters
            let inner = a.here();
            a.emit(&XORSHIFT64).back(LOOP, inner);
            a.emit(&[0x88, 0x1F, 0x48, 0xFF, 0xC7, 0xFF, 0xCE]).back(JNZ, outer); // mov [rdi], bl; inc rdi; dec esi; jnz
            a.emit(&[0xBF]).emit(&buf).emit(&[0xBE]).emit(&outs);
            let print = a.here();
            a.emit(&[0x8A, 0x1F]).emit(&HEX_BL); // mov bl, [rdi]
            a.emit(&[0x48, 0xFF, 0xC7, 0xFF, 0xCE]).back(JNZ, print); // inc rdi; dec esi; jnz
            a.emit(&[0xB0, 0x0A, 0xE6, 0x10, 0xF4]); // newline; hlt
            let mut x = ((u64::from(seed32) << 32) | u64::from(seed32)) ^ p.key | 1;
            let mut out = Vec::new();
            for _ in 0..OUTS {
                for _ in 0..p.iters {
                    x = xorshift64(x);
                }
                out.push(x as u8);
            }
            exp.console = hex_line(&out);
            exp.exits.io += exp.console.len() as u64;
        }
    }
    (a.0, exp)
}

/// What the VMM printed: the guest's console, `mmio ADDR LEN VALUE` lines and
/// the final `exits io=N mmio=N hlt=N ns_per_exit=N` line.
#[derive(Debug, Default, PartialEq)]
struct Printed {
    console: Vec<u8>,
    mmio: Vec<(u64, u32, u64)>,
    exits: Option<Counts>,
    ns_per_exit: Option<u64>,
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

fn parse_printed(out: &[u8]) -> Printed {
    let mut p = Printed::default();
    for line in out.split_inclusive(|b| *b == b'\n') {
        let text = String::from_utf8_lossy(line);
        let words: Vec<&str> = text.split_whitespace().collect();
        match words.first() {
            Some(&"mmio") if words.len() == 4 => {
                if let (Some(a), Some(l), Some(v)) = (number(words[1]), number(words[2]), number(words[3])) {
                    p.mmio.push((a, l as u32, v));
                    continue;
                }
                p.console.extend_from_slice(line);
            }
            Some(&"exits") => {
                let kv: BTreeMap<&str, u64> = words[1..]
                    .iter()
                    .filter_map(|w| w.split_once('='))
                    .filter_map(|(k, v)| Some((k, number(v)?)))
                    .collect();
                p.exits = Some(Counts {
                    io: kv.get("io").copied().unwrap_or(0),
                    mmio: kv.get("mmio").copied().unwrap_or(0),
                    hlt: kv.get("hlt").copied().unwrap_or(0),
                });
                p.ns_per_exit = kv.get("ns_per_exit").copied();
            }
            _ => p.console.extend_from_slice(line),
        }
    }
    p
}

/// A file's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ident {
    dev: u64,
    ino: u64,
}

impl Ident {
    fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Ident { dev: m.dev(), ino: m.ino() })
    }
}

/// Programs that run guests on /dev/kvm but are not the student's: the runner
/// itself and QEMU, by identity and by content.
fn known_vmms() -> Vec<(String, PathBuf)> {
    let mut v = Vec::new();
    if let Ok(me) = std::fs::read_link("/proc/self/exe") {
        v.push(("vlab (the runner itself)".to_string(), me));
    }
    for q in ["qemu-system-x86_64", "qemu-x86_64-static", "qemu-x86_64"] {
        if let Some(p) = crate::host::tools::which(q) {
            v.push((q.to_string(), p));
        }
    }
    v
}

fn same_content(a: &Path, b: &Path) -> bool {
    let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) else { return false };
    ma.len() == mb.len() && std::fs::read(a).ok() == std::fs::read(b).ok()
}

/// The student's VMM binary, checked before it runs: a compiled program of
/// its own, not a link to (or copy of) one that already is a VMM.
fn student_binary(arg0: &str) -> Result<Ident, String> {
    if !arg0.contains('/') {
        return Err(format!("`{arg0}` is not a path; the check runs your compiled VMM as ./vmm"));
    }
    let path = Path::new(arg0);
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{arg0}: {e}: did it compile?"))?;
    if !meta.file_type().is_file() {
        return Err(format!("{arg0} is not a regular file (a link?): it must be the program cc built from vmm.c"));
    }
    if meta.nlink() != 1 {
        return Err(format!("{arg0} has {} names (a hard link?): it must be the program cc built", meta.nlink()));
    }
    let mut head = [0u8; 4];
    let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    if n < 4 || head != *b"\x7fELF" {
        return Err(format!("{arg0} is not an ELF executable: it must be the program cc built from vmm.c"));
    }
    for (name, known) in known_vmms() {
        if Ident::of(&known) == Some(Ident { dev: meta.dev(), ino: meta.ino() }) || same_content(path, &known) {
            return Err(format!("{arg0} is {name}, not a VMM of your own"));
        }
    }
    Ok(Ident { dev: meta.dev(), ino: meta.ino() })
}

/// A process of the VMM's that the runner judged: one holding KVM file
/// descriptors, or one that is a known VMM (the runner, QEMU) with or without them.
#[derive(Debug, Clone)]
struct Holder {
    exe: String,
    yours: bool,
    vm: bool,
    vcpu: bool,
}

fn kvm_fds(pid: i32) -> (bool, bool) {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return (false, false) };
    let mut vm = false;
    let mut vcpu = false;
    for e in dir.flatten() {
        if let Ok(target) = std::fs::read_link(e.path()) {
            let t = target.to_string_lossy();
            vm |= t == "anon_inode:kvm-vm";
            vcpu |= t.starts_with("anon_inode:kvm-vcpu");
        }
    }
    (vm, vcpu)
}

fn look(pid: i32, vmm: Ident, known: &[(String, Ident)]) -> Option<Holder> {
    let exe_link = format!("/proc/{pid}/exe");
    // A process on its way out has dropped its memory (and /proc/PID/exe)
    // before its file descriptors: nothing to judge in that sample.
    let ident = Ident::of(Path::new(&exe_link))?;
    let known = known.iter().find(|(_, k)| *k == ident).map(|(name, _)| name.clone());
    let (vm, vcpu) = kvm_fds(pid);
    if !vm && !vcpu && known.is_none() {
        return None;
    }
    let exe = known.unwrap_or_else(|| {
        std::fs::read_link(&exe_link).map(|p| p.display().to_string()).unwrap_or_else(|_| "?".into())
    });
    Some(Holder { exe, yours: ident == vmm, vm, vcpu })
}

/// The runner's own cost of one exit to user space: vlab's tiny VMM running a
/// guest that exits after five instructions, in ns per KVM_RUN.
fn runner_ns_per_exit() -> anyhow::Result<u64> {
    let mut vm = crate::kvm::TinyVm::new(&crate::kvm::busy_loop_code(1))?;
    vm.run()?;
    let rounds = 1000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        vm.run()?;
    }
    Ok((started.elapsed().as_nanos() / u128::from(rounds)) as u64)
}

/// What the runner saw, as the `observed_*` lines.
struct Seen {
    observed: BTreeMap<String, String>,
}

impl Seen {
    fn new(mode: Mode) -> Self {
        let mut observed = BTreeMap::from([
            ("vmm".to_string(), "none: no process of your VMM held a KVM VM and a vCPU".to_string()),
            ("output".to_string(), "none: the guest did not run".to_string()),
            ("exits".to_string(), "none: the VMM printed no `exits` line".to_string()),
        ]);
        if mode == Mode::Cost {
            observed.insert("exit_cost".into(), "none: not measured".into());
        }
        Seen { observed }
    }
    fn set(&mut self, k: &str, v: impl Into<String>) {
        self.observed.insert(k.to_string(), v.into());
    }
}

/// `vlab kvm watch --mode MODE -- COMMAND`.
pub(crate) fn watch(mode: Mode, command: &[String]) -> anyhow::Result<i32> {
    let env = wrap::check_env();
    let mut seen = Seen::new(mode);
    let vmm = match student_binary(&command[0]) {
        Ok(id) => id,
        Err(why) => {
            seen.set("vmm", why.clone());
            wrap::write_observed(&env.results, &seen.observed)?;
            eprintln!("vlab kvm watch: {why}");
            return Ok(1);
        }
    };
    let seed: [u8; 4] = rand::random();
    let (image, expected) = guest(mode, &env.nonce, seed);
    let scratch = Scratch::new_in(&env.scratch, "kvm-")?;
    let image_path = scratch.path().join("guest.bin");
    std::fs::write(&image_path, &image).context("cannot write the guest image")?;
    let fifo = scratch.path().join("seed");
    let c_fifo = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).context("scratch path")?;
    // SAFETY: a NUL-terminated path; the result is checked.
    if unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot make the seed pipe");
    }
    // Opened read-write, so neither this open nor the VMM's blocks.
    let mut writer = Some(std::fs::OpenOptions::new().read(true).write(true).open(&fifo)?);
    let child = Cmd::new("sh")
        .args(["-c", "exec \"$@\" < \"$0\""])
        .arg(&fifo)
        .args(command)
        .arg(mode.cpu())
        .arg(&image_path)
        .timeout(OBSERVE_LIMIT * 2 + Duration::from_secs(5))
        .spawn()?;
    let started = Instant::now();
    let mut seeded_at: Option<Instant> = None;
    let mut foreign: Option<Holder> = None;
    let known: Vec<(String, Ident)> =
        known_vmms().into_iter().filter_map(|(name, path)| Some((name, Ident::of(&path)?))).collect();
    loop {
        let mut pids = vec![child.pid()];
        pids.extend(proc::descendants(child.pid()));
        for holder in pids.into_iter().filter_map(|pid| look(pid, vmm, &known)) {
            if !holder.yours {
                foreign.get_or_insert(holder);
            } else if holder.vm && holder.vcpu && seeded_at.is_none() && foreign.is_none() {
                let mut w = writer.take().expect("written once");
                w.write_all(&seed).context("cannot hand the seed to the VMM")?;
                seeded_at = Some(Instant::now());
            }
        }
        if foreign.is_some() {
            child.kill_tree();
            break;
        }
        if child.wait_until(Instant::now() + Duration::from_millis(3))?.is_some() {
            break;
        }
        let since = seeded_at.unwrap_or(started);
        if since.elapsed() > OBSERVE_LIMIT {
            child.kill_tree();
            break;
        }
    }
    drop(writer);
    let elapsed = started.elapsed();
    let stdout = child.read_stdout_at(0, 256 * 1024);
    let code = wrap::finish(child)?;
    let printed = parse_printed(&stdout);
    if let Some(h) = &foreign {
        let what = match (h.vm, h.vcpu) {
            (true, _) => "held a KVM VM",
            (false, true) => "held a KVM vCPU",
            (false, false) => "ran among your VMM's processes",
        };
        seen.set("vmm", format!("{} {what}: the guest must run in your compiled VMM itself", h.exe));
    } else if let Some(at) = seeded_at {
        seen.set("vmm", "yours");
        if at.elapsed() > OBSERVE_LIMIT {
            seen.set("output", format!("none: the guest did not halt within {}s", OBSERVE_LIMIT.as_secs()));
        } else {
            judge(mode, &expected, &printed, &mut seen);
        }
    } else if started.elapsed() > OBSERVE_LIMIT {
        seen.set(
            "vmm",
            format!("none: within {}s no process of your VMM held both a KVM VM and a vCPU", OBSERVE_LIMIT.as_secs()),
        );
    } else {
        seen.set("vmm", format!("none: your VMM ended (status {code}) before it held both a KVM VM and a vCPU"));
    }
    if mode == Mode::Cost && seen.observed["vmm"] == "yours" {
        cost(&expected, &printed, elapsed, &mut seen)?;
    }
    wrap::write_observed(&env.results, &seen.observed)?;
    println!("runner saw: {}", seen.observed.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join("; "));
    Ok(code)
}

fn judge(mode: Mode, expected: &Expected, printed: &Printed, seen: &mut Seen) {
    let output = if mode == Mode::Mmio {
        match expected.mmio.iter().zip(&printed.mmio).position(|(e, p)| e != p) {
            None if expected.mmio.len() == printed.mmio.len() => "match".to_string(),
            None => format!(
                "the VMM printed {} `mmio` lines; this guest makes {} MMIO writes",
                printed.mmio.len(),
                expected.mmio.len()
            ),
            Some(i) => {
                let (a, l, v) = expected.mmio[i];
                let (pa, pl, pv) = printed.mmio[i];
                format!(
                    "MMIO write {} was `mmio {a:#x} {l} {v:#x}`; the VMM printed `mmio {pa:#x} {pl} {pv:#x}`",
                    i + 1
                )
            }
        }
    } else if printed.console == expected.console {
        "match".to_string()
    } else {
        format!(
            "the guest's port 0x10 output was {:?}; the VMM printed {:?}",
            String::from_utf8_lossy(&expected.console),
            String::from_utf8_lossy(&printed.console)
        )
    };
    seen.set("output", output);
    if let Some(c) = printed.exits {
        let e = expected.exits;
        seen.set(
            "exits",
            if c == e {
                "match".to_string()
            } else {
                format!(
                    "the VMM counted io={} mmio={} hlt={}; this guest makes io={} mmio={} hlt={}",
                    c.io, c.mmio, c.hlt, e.io, e.mmio, e.hlt
                )
            },
        );
    }
}

/// The exit cost the VMM reported (the mean length of the KVM_RUN calls that
/// returned for port 0x12), held against the time its process ran and
/// the runner's own measurement (within a factor of ten either way: timing on
/// a shared machine varies, a made-up number rarely lands there).
fn cost(expected: &Expected, printed: &Printed, elapsed: Duration, seen: &mut Seen) -> anyhow::Result<()> {
    let runner = runner_ns_per_exit()?;
    seen.set("runner_ns_per_exit", runner.to_string());
    let runs = expected.timed_exits;
    let verdict = match printed.ns_per_exit {
        None => "none: the `exits` line has no ns_per_exit=".to_string(),
        Some(ns) if ns == 0 || u128::from(ns) * u128::from(runs) > elapsed.as_nanos() => format!(
            "ns_per_exit={ns} cannot be: {runs} KVM_RUN calls of that length do not fit in the {:.0} ms your VMM ran",
            elapsed.as_secs_f64() * 1000.0
        ),
        Some(ns) if ns * 10 < runner || ns > runner * 10 => {
            format!("ns_per_exit={ns} is far from the runner's own measurement ({runner} ns per KVM_RUN)")
        }
        Some(ns) => {
            seen.set("ns_per_exit", ns.to_string());
            "plausible".to_string()
        }
    };
    seen.set("exit_cost", verdict);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCE: &str = "0123456789abcdef";
    /// The guest's RAM: 64 KiB at 0; MMIO addresses lie above it.
    const RAM_SIZE: u64 = 0x10000;
    const SEED: [u8; 4] = [0xde, 0xad, 0xbe, 0xef];

    #[test]
    fn the_guests_follow_the_nonce_and_the_seed() {
        let (real, e) = guest(Mode::Real, NONCE, SEED);
        assert_eq!(String::from_utf8(e.console.clone()).unwrap(), "ec2ad69ddea1b3361235886cd6b917e6\n");
        assert_eq!(e.exits, Counts { io: 4 + 33, mmio: 0, hlt: 1 });
        assert_eq!(real[..6], [0x66, 0x31, 0xDB, 0xB9, 0x04, 0x00]);
        assert_eq!(*real.last().unwrap(), 0xF4);
        let (_, other) = guest(Mode::Real, NONCE, [0, 0, 0, 1]);
        assert_ne!(other.console, e.console, "the seed changes the output");
        let (_, m) = guest(Mode::Mmio, NONCE, SEED);
        assert_eq!(m.mmio.len(), 24);
        assert!(m.mmio.iter().all(|(a, _, _)| *a >= RAM_SIZE && *a < 0x10_0000), "{m:?}");
        assert_eq!(m.mmio[0], (0x60BEC, 4, 0xAF57_5BEC));
        let (paged, p) = guest(Mode::Paged, NONCE, SEED);
        assert_eq!(String::from_utf8(p.console).unwrap(), "2c53aaa73f83d2c0c0cacead49a2764b\n");
        assert!(paged.len() < 0x1000);
        let (_, c) = guest(Mode::Cost, NONCE, SEED);
        assert_eq!(c.console, e.console);
        assert_eq!(c.exits.io, e.exits.io + u64::from(params(NONCE).cost_exits));
    }

    /// The lab's VMM, as the solution's vmm.c does it, on the real /dev/kvm:
    /// what it prints for `image`, given `seed` on port 0x11.
    fn run_on_kvm(image: &[u8], long: bool, seed: [u8; 4]) -> Printed {
        use kvm_ioctls::{Kvm, VcpuExit};
        const MEM: usize = 0x10000;
        let kvm = Kvm::new().unwrap();
        let vm = kvm.create_vm().unwrap();
        // SAFETY: an anonymous private mapping the kernel places; MAP_FAILED is checked.
        let mem = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                MEM,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(mem, libc::MAP_FAILED);
        {
            // SAFETY: the MEM bytes just mapped, not yet shared with KVM; the slice ends before the guest runs.
            let ram = unsafe { std::slice::from_raw_parts_mut(mem.cast::<u8>(), MEM) };
            ram[0x1000..0x1000 + image.len()].copy_from_slice(image);
            if long {
                for (at, entry) in [(0x8000, 0x9003u64), (0x9000, 0xA003), (0xA000, 0x83)] {
                    ram[at..at + 8].copy_from_slice(&entry.to_le_bytes());
                }
            }
        }
        let region = kvm_bindings::kvm_userspace_memory_region {
            slot: 0,
            guest_phys_addr: 0,
            memory_size: MEM as u64,
            userspace_addr: mem as u64,
            flags: 0,
        };
        // SAFETY: the mapping outlives the VM: it is unmapped below, after the vCPU and VM are dropped.
        unsafe { vm.set_user_memory_region(region) }.unwrap();
        let mut vcpu = vm.create_vcpu(0).unwrap();
        let mut sregs = vcpu.get_sregs().unwrap();
        if long {
            sregs.cr3 = 0x8000;
            sregs.cr4 = 1 << 5;
            sregs.cr0 = 1 | (1 << 31);
            sregs.efer = (1 << 8) | (1 << 10);
            let code = kvm_bindings::kvm_segment {
                base: 0,
                limit: 0xFFFF_FFFF,
                selector: 8,
                type_: 11,
                present: 1,
                s: 1,
                l: 1,
                g: 1,
                ..Default::default()
            };
            sregs.cs = code;
            let data = kvm_bindings::kvm_segment { selector: 16, type_: 3, l: 0, db: 1, ..code };
            (sregs.ds, sregs.es, sregs.fs, sregs.gs, sregs.ss) = (data, data, data, data, data);
        } else {
            sregs.cs.base = 0;
            sregs.cs.selector = 0;
        }
        vcpu.set_sregs(&sregs).unwrap();
        let mut regs = vcpu.get_regs().unwrap();
        regs.rip = 0x1000;
        regs.rflags = 2;
        vcpu.set_regs(&regs).unwrap();
        let mut p = Printed::default();
        let mut counts = Counts::default();
        let mut input = seed.into_iter();
        loop {
            match vcpu.run() {
                Ok(VcpuExit::IoOut(port, data)) => {
                    counts.io += 1;
                    if port == 0x10 {
                        p.console.extend_from_slice(data);
                    }
                }
                Ok(VcpuExit::IoIn(0x11, data)) => {
                    counts.io += 1;
                    data.fill(input.next().unwrap_or(0xFF));
                }
                Ok(VcpuExit::MmioWrite(addr, data)) => {
                    counts.mmio += 1;
                    let mut v = [0u8; 8];
                    v[..data.len()].copy_from_slice(data);
                    p.mmio.push((addr, data.len() as u32, u64::from_le_bytes(v)));
                }
                Ok(VcpuExit::Hlt) => break,
                Err(e) if e.errno() == libc::EINTR => continue,
                other => panic!("unexpected exit {other:?}"),
            }
        }
        counts.hlt = 1;
        p.exits = Some(counts);
        drop(vcpu);
        drop(vm);
        // SAFETY: the mapping made above; its VM is gone.
        assert_eq!(unsafe { libc::munmap(mem, MEM) }, 0);
        p
    }

    #[test]
    fn every_guest_prints_on_kvm_what_its_model_says() {
        if !Path::new("/dev/kvm").exists() {
            crate::testing::skip("/dev/kvm is not present on this machine");
            return;
        }
        for mode in [Mode::Real, Mode::Mmio, Mode::Paged, Mode::Cost] {
            let (image, expected) = guest(mode, "fedcba9876543210", SEED);
            let printed = run_on_kvm(&image, mode == Mode::Paged, SEED);
            assert_eq!(printed.console, expected.console, "{mode:?}");
            assert_eq!(printed.mmio, expected.mmio, "{mode:?}");
            assert_eq!(printed.exits, Some(expected.exits), "{mode:?}");
        }
    }

    #[test]
    fn the_vmms_printout_is_read_line_by_line() {
        let p = parse_printed(
            b"0a1b\nmmio 0x10010 4 0x12345678\nmmio 65552 2 255\nexits io=37 mmio=2 hlt=1 ns_per_exit=900\n",
        );
        assert_eq!(p.console, b"0a1b\n");
        assert_eq!(p.mmio, [(0x10010, 4, 0x12345678), (65552, 2, 255)]);
        assert_eq!(p.exits, Some(Counts { io: 37, mmio: 2, hlt: 1 }));
        assert_eq!(p.ns_per_exit, Some(900));
    }

    #[test]
    fn a_vmm_that_is_a_link_or_a_script_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("vmm");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(student_binary(script.to_str().unwrap()).unwrap_err().contains("ELF"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/bin/sh", &link).unwrap();
        assert!(student_binary(link.to_str().unwrap()).unwrap_err().contains("regular file"));
        assert!(student_binary("vmm").unwrap_err().contains("not a path"));
    }
}
