//! Files on disk: content hashes, writes that are all or nothing, and the
//! files the runner reads back from where a student's command can write.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `data` to `path` through a synced temp file in the same directory,
/// then renames it: a reader, or a crash, sees the old file or the new one,
/// never half of one. Creates the directory if needed.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Opens a file the runner reads back (results, guest code) from a place the
/// student's command can write to: never through a symbolic link
/// (O_NOFOLLOW), never hanging on a FIFO (O_NONBLOCK), and only a regular
/// file. With `create`, opens it for writing too, creating it if absent.
pub(crate) fn open_regular(path: &Path, create: bool) -> anyhow::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => anyhow::bail!(
            "{} is a symbolic link: the runner reads back only regular files and follows no links; \
             make it a plain file",
            path.display()
        ),
        other => other.with_context(|| format!("cannot open {}", path.display()))?,
    };
    let kind = file.metadata().with_context(|| format!("cannot stat {}", path.display()))?.file_type();
    let what = match () {
        _ if kind.is_file() => return Ok(file),
        _ if kind.is_fifo() => "a FIFO (named pipe)",
        _ if kind.is_socket() => "a socket",
        _ if kind.is_dir() => "a directory",
        _ if kind.is_char_device() || kind.is_block_device() => "a device",
        _ => "not a regular file",
    };
    anyhow::bail!(
        "{} is {what}, not a regular file: the runner reads back only regular files; remove it and write a plain file",
        path.display()
    )
}

/// The text of a file the runner reads back (see `open_regular`); "" if absent.
pub(crate) fn read_regular(path: &Path) -> anyhow::Result<String> {
    let mut file = match open_regular(path, false) {
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound) => {
            return Ok(String::new());
        }
        other => other?,
    };
    let mut text = String::new();
    file.read_to_string(&mut text).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(text)
}

/// Replaces the content of a file the runner writes back to (see `open_regular`).
pub(crate) fn rewrite_regular(path: &Path, edit: impl FnOnce(&str) -> String) -> anyhow::Result<()> {
    let mut file = open_regular(path, true)?;
    let mut old = String::new();
    file.read_to_string(&mut old).with_context(|| format!("cannot read {}", path.display()))?;
    let new = edit(&old);
    file.set_len(0)?;
    file.rewind()?;
    file.write_all(new.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_read_back_must_be_regular() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a NUL-terminated path; the result is checked.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_regular(&fifo).unwrap_err().to_string();
        assert!(e.contains("is a FIFO (named pipe), not a regular file"), "{e}");
        assert!(rewrite_regular(&fifo, |_| "x".into()).is_err(), "a FIFO is not written either");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(read_regular(&link).unwrap_err().to_string().contains("is a symbolic link"));
        assert_eq!(read_regular(&dir.path().join("absent")).unwrap(), "");
        let plain = dir.path().join("plain");
        rewrite_regular(&plain, |old| format!("{old}one\n")).unwrap();
        rewrite_regular(&plain, |old| format!("{old}two\n")).unwrap();
        assert_eq!(read_regular(&plain).unwrap(), "one\ntwo\n");
    }

    #[test]
    fn sha256_is_hex() {
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn write_atomic_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/f.txt");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(dir.path().join("sub")).unwrap().count(), 1, "no temp file is left");
    }
}
