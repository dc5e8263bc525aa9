//! Scratch directories: removed when dropped, and by the supervisor's
//! interrupt handler on Ctrl-C, where no destructor runs.

use std::path::Path;

use crate::supervisor::{self, Registration};

/// A directory removed on drop and on Ctrl-C.
#[derive(Debug)]
pub(crate) struct Scratch {
    // Declared first, so the directory leaves the registry before it is removed.
    _registered: Registration,
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates a scratch directory inside `parent` (which must be on a real
    /// disk when the lab measures I/O: tmpfs would hide block writes).
    pub(crate) fn new_in(parent: &Path, prefix: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(parent)?;
        // From making the directory to registering it (see `supervisor::making`).
        let _making = supervisor::making();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir_in(parent)?;
        Ok(Self { _registered: supervisor::path(dir.path().to_path_buf()), dir })
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}
