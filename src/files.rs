//! Files on disk: content hashes, writes that are all or nothing, and the
//! files the runner reads back from where a student's command can write.

use std::io::{Read, Seek, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Why a file could not be written, or read back. Each message is whole
/// (the OS error included), so it is shown once, whatever prints it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FileError {
    #[error(
        "{} is a symbolic link: the runner reads back only regular files and follows no links; make it a plain file",
        path.display()
    )]
    Link { path: PathBuf },
    #[error(
        "{} is {what}, not a regular file: the runner reads back only regular files; remove it and write a plain file",
        path.display()
    )]
    NotRegular { path: PathBuf, what: &'static str },
    #[error("cannot {action} {}: {error}", path.display())]
    Io { action: &'static str, path: PathBuf, error: std::io::Error },
}

impl FileError {
    /// An `Io` error maker for `map_err`: "cannot {action} {path}: …".
    fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> FileError {
        let path = path.to_path_buf();
        move |error| FileError::Io { action, path, error }
    }
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `data` to `path` through a synced temp file in the same directory,
/// then renames it: a reader, or a crash, sees the old file or the new one,
/// never half of one. Creates the directory if needed.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), FileError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).map_err(FileError::io("create", dir))?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(FileError::io("write in", dir))?;
    tmp.write_all(data).and_then(|()| tmp.as_file().sync_all()).map_err(FileError::io("write", path))?;
    tmp.persist(path).map_err(|e| FileError::io("write", path)(e.error))?;
    Ok(())
}

/// Opens a file the runner reads back (results, guest code) from a place the
/// student's command can write to: never through a symbolic link
/// (O_NOFOLLOW), never hanging on a FIFO (O_NONBLOCK), and only a regular
/// file. With `create`, opens it for writing too, creating it if absent.
pub(crate) fn open_regular(path: &Path, create: bool) -> Result<std::fs::File, FileError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(create)
        .create(create)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let file = match file {
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FileError::Link { path: path.to_path_buf() }),
        other => other.map_err(FileError::io("open", path))?,
    };
    let kind = file.metadata().map_err(FileError::io("stat", path))?.file_type();
    let what = match () {
        _ if kind.is_file() => return Ok(file),
        _ if kind.is_fifo() => "a FIFO (named pipe)",
        _ if kind.is_socket() => "a socket",
        _ if kind.is_dir() => "a directory",
        _ if kind.is_char_device() || kind.is_block_device() => "a device",
        _ => "not a regular file",
    };
    Err(FileError::NotRegular { path: path.to_path_buf(), what })
}

/// The text of a file the runner reads back (see `open_regular`); "" if absent.
pub(crate) fn read_regular(path: &Path) -> Result<String, FileError> {
    let mut file = match open_regular(path, false) {
        Err(FileError::Io { error, .. }) if error.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        other => other?,
    };
    let mut text = String::new();
    file.read_to_string(&mut text).map_err(FileError::io("read", path))?;
    Ok(text)
}

/// Replaces the content of a file the runner writes back to (see `open_regular`).
pub(crate) fn rewrite_regular(path: &Path, edit: impl FnOnce(&str) -> String) -> Result<(), FileError> {
    let mut file = open_regular(path, true)?;
    let mut old = String::new();
    file.read_to_string(&mut old).map_err(FileError::io("read", path))?;
    let new = edit(&old);
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|_| file.write_all(new.as_bytes()))
        .map_err(FileError::io("write", path))
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
        // Any other failure names the file and the OS error, once even in an anyhow chain.
        let e = anyhow::Error::from(read_regular(&link.join("x")).unwrap_err());
        assert_eq!(format!("{e:#}"), format!("{e}"));
        assert!(e.to_string().starts_with(&format!("cannot open {}: ", link.join("x").display())), "{e}");
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
