//! A newc ("070701") cpio writer, the format the Linux kernel unpacks as an
//! initramfs, and a reader used to test it. Entries are written in the order
//! given, with fixed owners and times, so the same input gives the same bytes.

use std::io::{self, Write};

const MAGIC: &str = "070701";
const TRAILER: &str = "TRAILER!!!";

/// One archive member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir { path: String, mode: u32 },
    File { path: String, mode: u32, data: Vec<u8> },
    Symlink { path: String, target: String },
    CharDev { path: String, mode: u32, major: u32, minor: u32 },
}

impl Entry {
    pub(crate) fn path(&self) -> &str {
        match self {
            Entry::Dir { path, .. }
            | Entry::File { path, .. }
            | Entry::Symlink { path, .. }
            | Entry::CharDev { path, .. } => path,
        }
    }
}

/// Writes newc records; `finish` adds the trailer.
pub(crate) struct Writer<W: Write> {
    out: W,
    written: u64,
    ino: u32,
}

impl<W: Write> Writer<W> {
    pub(crate) fn new(out: W) -> Self {
        Self { out, written: 0, ino: 1 }
    }

    pub(crate) fn add(&mut self, entry: &Entry) -> io::Result<()> {
        let (mode, body, rdev): (u32, &[u8], (u32, u32)) = match entry {
            Entry::Dir { mode, .. } => (0o040000 | (mode & 0o7777), &[], (0, 0)),
            Entry::File { mode, data, .. } => (0o100000 | (mode & 0o7777), data, (0, 0)),
            Entry::Symlink { target, .. } => (0o120777, target.as_bytes(), (0, 0)),
            Entry::CharDev { mode, major, minor, .. } => (0o020000 | (mode & 0o7777), &[], (*major, *minor)),
        };
        let nlink = if matches!(entry, Entry::Dir { .. }) { 2 } else { 1 };
        let ino = self.ino;
        self.ino += 1;
        self.record(entry.path().trim_start_matches('/'), ino, mode, nlink, body, rdev)
    }

    fn record(&mut self, name: &str, ino: u32, mode: u32, nlink: u32, body: &[u8], rdev: (u32, u32)) -> io::Result<()> {
        let namesize = name.len() + 1;
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [ino, mode, 0, 0, nlink, 0, body.len() as u32, 0, 0, rdev.0, rdev.1, namesize as u32, 0];
        let mut header = String::from(MAGIC);
        for f in fields {
            header.push_str(&format!("{f:08x}"));
        }
        self.put(header.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()?;
        self.put(body)?;
        self.pad()
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Header+name and data are each padded to a 4-byte boundary.
    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.put(&[0u8; 3][..n])
    }

    pub(crate) fn finish(mut self) -> io::Result<W> {
        self.record(TRAILER, 0, 0, 1, &[], (0, 0))?;
        Ok(self.out)
    }
}

/// Reads a newc archive back into entries (for the tests).
#[cfg(test)]
pub(crate) fn read(bytes: &[u8]) -> io::Result<Vec<Entry>> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("not a newc cpio archive: {what}"));
    let align = |n: usize| n.div_ceil(4) * 4;
    let mut entries = Vec::new();
    let mut at = 0;
    loop {
        let header = bytes.get(at..at + 110).ok_or_else(|| bad("truncated header"))?;
        if &header[..6] != MAGIC.as_bytes() {
            return Err(bad("bad magic"));
        }
        let field = |i: usize| {
            std::str::from_utf8(&header[6 + 8 * i..14 + 8 * i])
                .ok()
                .and_then(|s| u32::from_str_radix(s, 16).ok())
                .ok_or_else(|| bad("bad header field"))
        };
        let (mode, size, namesize) = (field(1)?, field(6)? as usize, field(11)? as usize);
        let name_end = at + 110 + namesize;
        let name = bytes.get(at + 110..name_end - 1).ok_or_else(|| bad("truncated name"))?;
        let name = String::from_utf8_lossy(name).into_owned();
        let data_at = align(name_end);
        let data = bytes.get(data_at..data_at + size).ok_or_else(|| bad("truncated data"))?.to_vec();
        at = align(data_at + size);
        if name == TRAILER {
            return Ok(entries);
        }
        entries.push(match mode & 0o170000 {
            0o040000 => Entry::Dir { path: name, mode: mode & 0o7777 },
            0o120000 => Entry::Symlink { path: name, target: String::from_utf8_lossy(&data).into_owned() },
            0o020000 => Entry::CharDev { path: name, mode: mode & 0o7777, major: field(9)?, minor: field(10)? },
            _ => Entry::File { path: name, mode: mode & 0o7777, data },
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Entry> {
        vec![
            Entry::Dir { path: "bin".into(), mode: 0o755 },
            Entry::File { path: "init".into(), mode: 0o755, data: b"#!/bin/sh\necho hi\n".to_vec() },
            Entry::File { path: "empty".into(), mode: 0o644, data: Vec::new() },
            Entry::Symlink { path: "bin/sh".into(), target: "busybox".into() },
            Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
        ]
    }

    fn archive(entries: &[Entry]) -> Vec<u8> {
        let mut w = Writer::new(Vec::new());
        for e in entries {
            w.add(e).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn round_trips_and_is_aligned() {
        let bytes = archive(&sample());
        assert_eq!(bytes.len() % 4, 0);
        assert_eq!(read(&bytes).unwrap(), sample());
    }

    #[test]
    fn same_input_same_bytes() {
        assert_eq!(archive(&sample()), archive(&sample()));
    }

    #[test]
    fn busybox_cpio_lists_what_we_wrote() {
        let Some(busybox) = crate::host::tools::which("busybox") else {
            crate::testing::skip("busybox is not installed");
            return;
        };
        let out =
            crate::proc::Cmd::new(busybox).args(["cpio", "-t"]).stdin(archive(&sample())).run().expect("busybox runs");
        assert!(out.success(), "{}", out.stderr);
        assert_eq!(out.stdout.lines().collect::<Vec<_>>(), ["bin", "init", "empty", "bin/sh", "dev/console"]);
    }
}
