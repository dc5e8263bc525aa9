//! The runner's own line to a guest's QEMU, which the student's script cannot
//! read or imitate. Before a boot the runner listens on two Unix sockets in a
//! directory it made: `$VLAB_QMP`, where QEMU's QMP monitor connects
//! (`-qmp unix:$VLAB_QMP`), and `$VLAB_SEAL`, where QEMU's second serial port
//! connects (`-serial unix:$VLAB_SEAL`, the guest's ttyS1). QEMU is the client
//! of both, so the kernel names the connecting process (SO_PEERCRED): it must
//! run the real QEMU binary (by device and inode of /proc/PID/exe) and be
//! among the check's own processes.
//!
//! Over QMP the runner asks QEMU what it really runs (the accelerator, the
//! devices, the disks' I/O). Over ttyS1 it hands the guest's probe a fresh key
//! when the probe asks for it after boot; the probe seals its report with
//! sha256(key, report), and `seal_of` checks it. A report the script prints
//! never saw the key.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};

use crate::cleanup::Scratch;
use crate::evidence::Facts;
use crate::proc;

/// The environment variables naming the two sockets.
pub(crate) const QMP_ENV: &str = "VLAB_QMP";
pub(crate) const SEAL_ENV: &str = "VLAB_SEAL";

/// The line the probe sends on ttyS1 to ask for its key.
const SEAL_REQUEST: &str = "VLAB-SEAL";

/// How long one QMP exchange may take (QEMU answers from its main loop, busy under TCG).
const QMP_TIMEOUT: Duration = Duration::from_secs(20);

/// The QEMU binaries this machine has, by device and inode: what a VMM's
/// /proc/PID/exe must be, whatever the process calls itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct RealQemu {
    binaries: Vec<(PathBuf, u64, u64)>,
}

impl RealQemu {
    /// `qemu-system-x86_64` as found on the runner's PATH.
    pub(crate) fn find() -> Self {
        let binaries = ["qemu-system-x86_64"]
            .into_iter()
            .filter_map(crate::host::tools::which)
            .filter_map(|p| std::fs::metadata(&p).ok().map(|m| (p, m.dev(), m.ino())))
            .collect();
        RealQemu { binaries }
    }

    /// True when `pid` runs one of the real QEMU binaries.
    pub(crate) fn runs(&self, pid: i32) -> bool {
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .is_ok_and(|m| self.binaries.iter().any(|(_, dev, ino)| m.dev() == *dev && m.ino() == *ino))
    }

    fn describe(&self) -> String {
        match self.binaries.first() {
            Some((p, _, _)) => p.display().to_string(),
            None => "none: qemu-system-x86_64 is not on the runner's PATH".into(),
        }
    }
}

/// What the process `pid` runs, for messages.
fn exe_of(pid: i32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe")).map(|p| p.display().to_string()).unwrap_or_else(|_| "gone".into())
}

/// The process at the other end of a Unix socket, as the kernel recorded it at connect.
fn peer_pid(stream: &UnixStream) -> std::io::Result<i32> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for writes of the sizes given; the fd is open for the call.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.pid)
}

/// Why `pid` may not speak for the check's VMM, if it may not.
fn refuse(pid: i32, root: i32, real: &RealQemu) -> Option<String> {
    if !real.runs(pid) {
        return Some(format!("pid {pid} runs {}, not the real QEMU ({})", exe_of(pid), real.describe()));
    }
    if pid != root && !proc::descendants(root).contains(&pid) {
        return Some(format!("pid {pid} is a QEMU outside this check's processes"));
    }
    // LD_PRELOAD, LD_AUDIT or a library path could put the student's code inside the real binary.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let foreign = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).find(|path| {
        path.contains(".so") && !["/usr/lib/", "/lib/", "/usr/lib64/", "/lib64/"].iter().any(|d| path.starts_with(d))
    });
    foreign.map(|lib| {
        format!("pid {pid} (QEMU) has {lib} loaded, a library from outside the system's: the runner accepts only an unmodified QEMU")
    })
}

/// A verified QMP connection.
struct Monitor {
    pid: i32,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Monitor {
    fn open(stream: UnixStream, pid: i32) -> Result<Monitor, String> {
        let err = |e: std::io::Error| format!("QMP with pid {pid}: {e}");
        stream.set_nonblocking(false).map_err(err)?;
        stream.set_read_timeout(Some(QMP_TIMEOUT)).map_err(err)?;
        let writer = stream.try_clone().map_err(err)?;
        let mut m = Monitor { pid, reader: BufReader::new(stream), writer };
        let greeting = m.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(format!("pid {pid} did not greet as a QMP monitor: {greeting}"));
        }
        m.execute("qmp_capabilities", Value::Null)?;
        m.prove()?;
        Ok(m)
    }

    /// Makes sure the process answering is `pid` itself, not another one
    /// sharing its socket (one that connected, forked a forger and then
    /// exec'd QEMU): QEMU's `getfd` takes a file descriptor the runner sends
    /// along, which must then appear among /proc/PID/fd.
    fn prove(&mut self) -> Result<(), String> {
        let err = |e: std::io::Error| format!("cannot hand QEMU (pid {}) the runner's proof: {e}", self.pid);
        // SAFETY: the name is a NUL-terminated string; the result is checked.
        let fd = unsafe { libc::memfd_create(c"vlab-proof".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor nothing else owns.
        let proof = unsafe { std::fs::File::from_raw_fd(fd) };
        let meta = proof.metadata().map_err(err)?;
        let msg = json!({ "execute": "getfd", "arguments": { "fdname": "vlab-proof" } });
        send_with_fd(&self.writer, format!("{msg}\n").as_bytes(), proof.as_raw_fd()).map_err(err)?;
        let reply = self.read_message()?;
        if reply.get("return").is_none() {
            return Err(format!("QEMU (pid {}) did not take the runner's file descriptor: {reply}", self.pid));
        }
        let held = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| std::fs::metadata(e.path()).is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino()));
        if !held {
            return Err(format!(
                "the process answering on $VLAB_QMP is not pid {} (QEMU): the file descriptor the runner \
                 sent went elsewhere",
                self.pid
            ));
        }
        self.execute("closefd", json!({ "fdname": "vlab-proof" }))?;
        Ok(())
    }

    /// The next message that is not an asynchronous event.
    fn read_message(&mut self) -> Result<Value, String> {
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => return Err(format!("QEMU (pid {}) closed its QMP connection", self.pid)),
                Ok(_) => {}
                Err(e) => return Err(format!("no answer from QEMU's QMP (pid {}): {e}", self.pid)),
            }
            let v: Value =
                serde_json::from_str(&line).map_err(|e| format!("QEMU's QMP sent something not JSON ({e}): {line}"))?;
            if v.get("event").is_none() {
                return Ok(v);
            }
        }
    }

    /// Hands QEMU `fd` under `name` (QMP `getfd`).
    fn pass_fd(&mut self, name: &str, fd: RawFd) -> Result<(), String> {
        let msg = json!({ "execute": "getfd", "arguments": { "fdname": name } });
        send_with_fd(&self.writer, format!("{msg}\n").as_bytes(), fd)
            .map_err(|e| format!("cannot hand QEMU (pid {}) a file descriptor: {e}", self.pid))?;
        match self.read_message()? {
            r if r.get("return").is_some() => Ok(()),
            r => Err(format!("QEMU (pid {}) did not take the runner's file descriptor: {r}", self.pid)),
        }
    }

    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        let mut msg = json!({ "execute": command });
        if !arguments.is_null() {
            msg["arguments"] = arguments;
        }
        writeln!(self.writer, "{msg}").map_err(|e| format!("cannot write to QEMU's QMP (pid {}): {e}", self.pid))?;
        let reply = self.read_message()?;
        match (reply.get("return"), reply.get("error")) {
            (Some(r), _) => Ok(r.clone()),
            (None, Some(e)) => Err(format!("QEMU refused {command}: {e}")),
            _ => Err(format!("QEMU's QMP answered {command} with {reply}")),
        }
    }

    /// `vmm.accel` (query-kvm) and `vmm.devices` (the QOM types of the machine's devices).
    fn machine_facts(&mut self) -> Result<Facts, String> {
        let mut facts = Facts::new();
        let kvm = self.execute("query-kvm", Value::Null)?;
        let accel = if kvm["enabled"].as_bool() == Some(true) { "kvm" } else { "tcg" };
        facts.insert("vmm.accel".into(), accel.into());
        let mut devices: Vec<String> = Vec::new();
        for path in ["/machine/peripheral", "/machine/peripheral-anon", "/machine/unattached"] {
            let children = self.execute("qom-list", json!({ "path": path }))?;
            devices.extend(device_types(&children).into_iter().filter(|t| !devices.contains(t)).collect::<Vec<_>>());
        }
        facts.insert("vmm.devices".into(), devices.join(","));
        Ok(facts)
    }

    /// `vmm.block.rd_bytes` and `vmm.block.wr_bytes`: what the guest's disks moved so far.
    fn block_facts(&mut self) -> Result<Facts, String> {
        let stats = self.execute("query-blockstats", Value::Null)?;
        let sum = |key: &str| -> u64 {
            stats.as_array().into_iter().flatten().filter_map(|d| d["stats"][key].as_u64()).sum()
        };
        Ok(Facts::from([
            ("vmm.block.rd_bytes".into(), sum("rd_bytes").to_string()),
            ("vmm.block.wr_bytes".into(), sum("wr_bytes").to_string()),
        ]))
    }

    /// `vmm.balloon.*` where the machine has a balloon device: the memory QEMU
    /// says the guest kept (`query-balloon`), the RAM it was given, and what
    /// the balloon took back. An error (no balloon) says nothing.
    fn balloon_facts(&mut self) -> Result<Facts, String> {
        let actual = self.execute("query-balloon", Value::Null)?["actual"].as_u64().unwrap_or(0);
        let ram = self.execute("query-memory-size-summary", Value::Null)?["base-memory"].as_u64().unwrap_or(0);
        Ok(Facts::from([
            ("vmm.balloon.actual_kib".into(), (actual / 1024).to_string()),
            ("vmm.ram_kib".into(), (ram / 1024).to_string()),
            ("vmm.balloon.taken_kib".into(), (ram.saturating_sub(actual) / 1024).to_string()),
        ]))
    }
}

impl super::devcount::Qmp for Monitor {
    fn pid(&self) -> i32 {
        self.pid
    }

    fn pass_fd(&mut self, name: &str, fd: RawFd) -> Result<(), String> {
        Monitor::pass_fd(self, name, fd)
    }

    fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, String> {
        Monitor::execute(self, command, arguments)
    }
}

/// Writes `data` on `stream` with `fd` attached (SCM_RIGHTS).
fn send_with_fd(stream: &UnixStream, data: &[u8], fd: RawFd) -> std::io::Result<()> {
    let fd_size = std::mem::size_of::<RawFd>() as u32;
    let mut iov = libc::iovec { iov_base: data.as_ptr() as *mut libc::c_void, iov_len: data.len() };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(fd_size) } as usize;
    // u64s keep the control buffer aligned for cmsghdr.
    let mut control = vec![0u64; space.div_ceil(8)];
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: msg_control points at `space` zeroed, aligned bytes: room for one
    // header carrying one fd, which CMSG_FIRSTHDR therefore returns non-null.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = libc::CMSG_LEN(fd_size) as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
    }
    // SAFETY: `msg`, the iovec and the control buffer it points to outlive the call.
    let sent = unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, 0) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if sent as usize != data.len() {
        return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "a short write on the QMP socket"));
    }
    Ok(())
}

/// The device types among a `qom-list` answer's `child<TYPE>` entries
/// (not the machine's memory regions, interrupt lines or buses).
fn device_types(children: &Value) -> Vec<String> {
    let mut types = Vec::new();
    for child in children.as_array().into_iter().flatten() {
        let Some(t) = child["type"].as_str().and_then(|t| t.strip_prefix("child<")).and_then(|t| t.strip_suffix('>'))
        else {
            continue;
        };
        if !["memory-region", "irq", "System"].contains(&t) && !types.iter().any(|x| x == t) {
            types.push(t.to_string());
        }
    }
    types
}

/// The two listening sockets of one boot, and what came through them.
pub(crate) struct Channels {
    dir: Scratch,
    qmp: UnixListener,
    seal: UnixListener,
    real: RealQemu,
    key: String,
    monitor: Option<Monitor>,
    /// The ttyS1 connection, its peer, and what the guest sent so far.
    serial: Option<(UnixStream, i32, Vec<u8>)>,
    key_sent: bool,
    facts: Facts,
    /// What the runner refused, in words.
    refused: Vec<String>,
    /// The runner's own count of device accesses (guest::devcount), when asked for.
    devices: super::devcount::DeviceCount,
}

impl Channels {
    /// Listens on `qmp` and `seal` in a fresh directory under the system's temp
    /// dir (a Unix socket's path must stay under 108 bytes; a workspace's may
    /// not), removed on drop and on Ctrl-C.
    pub(crate) fn open() -> std::io::Result<Channels> {
        let dir = Scratch::new_in(&std::env::temp_dir(), "vlab-vmm-")?;
        let listen = |name: &str| -> std::io::Result<UnixListener> {
            let l = UnixListener::bind(dir.path().join(name))?;
            l.set_nonblocking(true)?;
            Ok(l)
        };
        let (qmp, seal) = (listen("qmp")?, listen("seal")?);
        Ok(Channels {
            dir,
            qmp,
            seal,
            real: RealQemu::find(),
            key: crate::evidence::fresh_nonce() + &crate::evidence::fresh_nonce(),
            monitor: None,
            serial: None,
            key_sent: false,
            facts: Facts::new(),
            refused: Vec::new(),
            devices: Default::default(),
        })
    }

    pub(crate) fn qmp_path(&self) -> PathBuf {
        self.dir.path().join("qmp")
    }

    pub(crate) fn seal_path(&self) -> PathBuf {
        self.dir.path().join("seal")
    }

    /// `$VLAB_QMP` and `$VLAB_SEAL` for the student's command.
    pub(crate) fn env(&self) -> [(&'static str, PathBuf); 2] {
        [(QMP_ENV, self.qmp_path()), (SEAL_ENV, self.seal_path())]
    }

    /// The QEMU options that connect both (for a QEMU the runner starts itself).
    pub(crate) fn qemu_args(&self) -> Vec<String> {
        vec![
            "-qmp".into(),
            format!("unix:{}", self.qmp_path().display()),
            "-serial".into(),
            format!("unix:{}", self.seal_path().display()),
        ]
    }

    /// The pid of the verified QEMU, once its QMP monitor connected.
    pub(crate) fn qemu_pid(&self) -> Option<i32> {
        self.monitor.as_ref().map(|m| m.pid)
    }

    /// Takes pending connections from processes under `root` and serves the
    /// guest's key request. Never blocks, except for the QMP handshake.
    pub(crate) fn poll(&mut self, root: i32) {
        while self.monitor.is_none() {
            let Ok((stream, _)) = self.qmp.accept() else { break };
            match peer_pid(&stream) {
                Ok(pid) => match refuse(pid, root, &self.real) {
                    Some(why) => self.refused.push(format!("$VLAB_QMP: {why}")),
                    None => match Monitor::open(stream, pid).and_then(|mut m| m.machine_facts().map(|f| (m, f))) {
                        Ok((mut m, facts)) => {
                            self.facts.extend(facts);
                            self.devices.attach(&mut m);
                            self.monitor = Some(m);
                        }
                        Err(e) => self.refused.push(e),
                    },
                },
                Err(e) => self.refused.push(format!("$VLAB_QMP: cannot tell who connected: {e}")),
            }
        }
        while self.serial.is_none() {
            let Ok((stream, _)) = self.seal.accept() else { break };
            match peer_pid(&stream).map_err(|e| e.to_string()).and_then(|pid| match refuse(pid, root, &self.real) {
                Some(why) => Err(why),
                None => stream.set_nonblocking(true).map(|_| pid).map_err(|e| e.to_string()),
            }) {
                Ok(pid) => self.serial = Some((stream, pid, Vec::new())),
                Err(why) => self.refused.push(format!("$VLAB_SEAL: {why}")),
            }
        }
        self.serve_key();
    }

    /// Count the device accesses of the QEMU that connects (see guest::devcount).
    pub(crate) fn count_devices(&mut self) {
        self.devices = super::devcount::DeviceCount::Wanted;
    }

    /// `devcount.*`, once QEMU has ended (waits at most `wait` for its last lines).
    pub(crate) fn device_facts(&self, wait: Duration) -> Facts {
        self.devices.facts(wait)
    }

    /// Hands the key over ttyS1 once the guest asked, and only to the QEMU whose QMP was verified.
    fn serve_key(&mut self) {
        let qemu = self.qemu_pid();
        let Some((stream, pid, seen)) = self.serial.as_mut() else { return };
        if self.key_sent {
            return;
        }
        let mut buf = [0u8; 256];
        while let Ok(n) = stream.read(&mut buf) {
            if n == 0 || seen.len() > 64 * 1024 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
        }
        let asked = seen.split(|b| *b == b'\n').any(|l| String::from_utf8_lossy(l).contains(SEAL_REQUEST))
            && seen.ends_with(b"\n");
        if !asked || qemu.is_none() {
            return;
        }
        if qemu != Some(*pid) {
            self.refused.push(format!("$VLAB_SEAL: pid {pid} is not the QEMU whose QMP connected"));
            self.serial = None;
            return;
        }
        // A blocking write of 33 bytes into a UART QEMU drains at once.
        let _ = stream.set_nonblocking(false);
        if writeln!(stream, "{}", self.key).is_ok() {
            self.key_sent = true;
        }
    }

    /// What the runner learned from QEMU itself (`vmm.*`), plus `vmm.qmp`
    /// (`connected`, or what the runner saw instead) and the disks' I/O so
    /// far; then tells the probe, which waits for that before it powers off.
    pub(crate) fn facts(&mut self) -> Facts {
        let mut facts = self.facts.clone();
        let block = self.monitor.as_mut().map(Monitor::block_facts);
        match block {
            Some(Ok(f)) => facts.extend(f),
            Some(Err(e)) => self.refused.push(e),
            None => {}
        }
        if let Some(Ok(f)) = self.monitor.as_mut().map(Monitor::balloon_facts) {
            facts.extend(f);
        }
        let qmp = match (&self.monitor, self.refused.first()) {
            (Some(_), _) => "connected".to_string(),
            (None, Some(why)) => format!("refused: {why}"),
            (None, None) => "missing: no QEMU connected its QMP monitor to $VLAB_QMP".to_string(),
        };
        facts.insert("vmm.qmp".into(), qmp);
        if let Some(pid) = self.qemu_pid() {
            facts.insert("vmm.qmp_pid".into(), pid.to_string());
        }
        if let Some((stream, _, _)) = self.serial.as_mut().filter(|_| self.key_sent) {
            let _ = writeln!(stream, "done");
        }
        facts
    }

    /// `report.sealed`: `yes` when the report's seal is sha256 of the key this
    /// runner handed the guest and of the report's lines; else what was wrong.
    pub(crate) fn seal_of(&self, report: Option<&Report>) -> String {
        let Some(report) = report else { return "no: there is no report to check".into() };
        if self.serial.is_none() {
            let why = self.refused.iter().find(|r| r.starts_with("$VLAB_SEAL")).cloned().unwrap_or_else(|| {
                "no QEMU connected a serial port to $VLAB_SEAL (add -serial unix:$VLAB_SEAL)".into()
            });
            return format!("no: {why}");
        }
        if !self.key_sent {
            return "no: the guest never asked for its key on ttyS1, so the runner handed it none".into();
        }
        match &report.seal {
            None => "no: the report carries no seal= line".into(),
            Some(s) if *s == seal(&self.key, &report.body) => "yes".into(),
            Some(_) => "no: the report's seal does not match the key the runner handed this guest: \
                        the report was not written by the probe in this boot"
                .into(),
        }
    }
}

/// The seal of `body` under `key`, as the probe computes it: the sha256 of the
/// key's line followed by the report's lines.
pub(crate) fn seal(key: &str, body: &[String]) -> String {
    let mut text = format!("{key}\n");
    for line in body {
        text.push_str(line);
        text.push('\n');
    }
    crate::files::sha256_hex(text.as_bytes())
}

/// A report's lines between its markers (without the seal) and its `seal=` value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Report {
    pub(crate) body: Vec<String>,
    pub(crate) seal: Option<String>,
}

impl Report {
    pub(crate) fn from_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Report {
        let mut report = Report::default();
        for line in lines {
            match line.strip_prefix("seal=") {
                Some(s) => report.seal = Some(s.trim().to_string()),
                None => report.body.push(line.to_string()),
            }
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_types_skip_regions_and_repeats() {
        let v = json!([{"name": "type", "type": "string"}, {"name": "device[0]", "type": "child<e1000>"},
                       {"name": "io[0]", "type": "child<memory-region>"}, {"name": "device[1]", "type": "child<e1000>"},
                       {"name": "device[2]", "type": "child<ide-hd>"}]);
        assert_eq!(device_types(&v), ["e1000", "ide-hd"]);
    }

    #[test]
    fn the_seal_covers_the_key_and_every_line() {
        let body = vec!["kernel=6.1".to_string(), "arch=x86_64".to_string()];
        let s = seal("k", &body);
        // printf 'k\nkernel=6.1\narch=x86_64\n' | sha256sum
        assert_eq!(s, crate::files::sha256_hex(b"k\nkernel=6.1\narch=x86_64\n"));
        assert_ne!(s, seal("other", &body));
        let r = Report::from_lines(["kernel=6.1", &format!("seal={s}"), "arch=x86_64"]);
        assert_eq!((r.body, r.seal), (body, Some(s)));
    }

    /// A forger sharing the real QEMU's socket answers every command; the
    /// runner's file descriptor then lands outside the claimed process.
    #[test]
    fn a_monitor_whose_answers_come_from_another_process_is_refused() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let forger = std::thread::spawn(move || {
            let mut w = theirs.try_clone().unwrap();
            writeln!(w, "{}", json!({"QMP": {"version": {}}})).unwrap();
            for line in BufReader::new(theirs).lines() {
                if line.is_err() || writeln!(w, "{}", json!({"return": {}})).is_err() {
                    break;
                }
            }
        });
        let claimed = proc::Cmd::new("sleep").arg("30").spawn().unwrap();
        let err = Monitor::open(ours, claimed.pid()).err().expect("the forger was believed");
        assert!(err.contains("is not pid") && err.contains("went elsewhere"), "{err}");
        claimed.stop().unwrap();
        forger.join().unwrap();
    }

    #[test]
    fn a_connection_from_a_process_that_is_not_qemu_is_refused() {
        let mut ch = Channels::open().unwrap();
        assert!(ch.qmp_path().as_os_str().len() < 108, "a Unix socket's path must fit sockaddr_un");
        let me = std::process::id() as i32;
        let _client = UnixStream::connect(ch.qmp_path()).unwrap();
        ch.poll(me);
        let f = ch.facts();
        assert!(f["vmm.qmp"].starts_with("refused: $VLAB_QMP: pid"), "{f:?}");
        assert!(f["vmm.qmp"].contains("not the real QEMU"), "{f:?}");
        assert!(!f.contains_key("vmm.accel"));
        let report = Report::from_lines(["x=1", "seal=abc"]);
        assert!(ch.seal_of(Some(&report)).starts_with("no: no QEMU connected"), "{}", ch.seal_of(Some(&report)));
        let dir = ch.dir.path().to_path_buf();
        drop(ch);
        assert!(!dir.exists(), "the sockets' directory outlived the channels");
    }
}
