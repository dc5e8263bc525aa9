//! The student's workspace: one directory per started lab, holding a copy of
//! its starter. It lives at --workspace, else $VLAB_WORKSPACE, else ~/vlab.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::catalog::Lab;

#[derive(Debug, Clone)]
pub struct Workspace {
    pub root: PathBuf,
}

impl Workspace {
    pub(crate) fn locate(explicit: Option<&Path>) -> anyhow::Result<Self> {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join("vlab")).context(
                "cannot tell where the workspace goes: HOME is unset; pass --workspace DIR or set VLAB_WORKSPACE",
            )?,
        };
        // Absolute, so the paths a check hands its command (VLAB_WORKSPACE,
        // VLAB_PROBE, ...) still hold after the student's script `cd`s.
        let root = std::path::absolute(&root)
            .with_context(|| format!("cannot make the workspace path {} absolute", root.display()))?;
        Ok(Self { root })
    }

    pub(crate) fn lab_dir(&self, lab: &Lab) -> PathBuf {
        self.root.join(&lab.id)
    }

    /// Directory for vlab's own files (state, scratch, cache keys).
    pub(crate) fn meta_dir(&self) -> PathBuf {
        self.root.join(".vlab")
    }

    pub(crate) fn is_started(&self, lab: &Lab) -> bool {
        self.lab_dir(lab).is_dir()
    }

    /// The lab's directory, or an error telling the student to start it.
    pub(crate) fn require_started(&self, lab: &Lab) -> anyhow::Result<PathBuf> {
        let dir = self.lab_dir(lab);
        if !dir.is_dir() {
            bail!("lab {} is not started in {}; run `vlab start {}` first", lab.id, self.root.display(), lab.id);
        }
        Ok(dir)
    }

    /// Copies the starter into a new lab directory, `prepare` filling it in
    /// (crate::prepare: what lab.toml's `prepare` asks for).
    pub(crate) fn start(
        &self,
        lab: &Lab,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<PathBuf> {
        let dir = self.lab_dir(lab);
        if dir.exists() {
            bail!(
                "lab {} is already started in {}; edit the files there, or `vlab reset {}` to start over",
                lab.id,
                dir.display(),
                lab.id
            );
        }
        self.copy_from(lab, "starter", &dir, prepare)?;
        Ok(dir)
    }

    /// Moves the current work aside (never deletes it) and copies the starter afresh.
    /// Returns where the old work went.
    pub(crate) fn reset(
        &self,
        lab: &Lab,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<Option<PathBuf>> {
        let dir = self.lab_dir(lab);
        let backup = if dir.exists() {
            let stamp =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
            let to = self.meta_dir().join("backups").join(format!("{}-{stamp}", lab.id));
            std::fs::create_dir_all(to.parent().expect("backup path has a parent"))?;
            std::fs::rename(&dir, &to)
                .with_context(|| format!("cannot move {} aside to {}", dir.display(), to.display()))?;
            Some(to)
        } else {
            None
        };
        self.copy_from(lab, "starter", &dir, prepare)?;
        Ok(backup)
    }

    /// Copies `lab/<which>/` to `to`, `prepare` filling the copy in, via a
    /// temporary sibling, so a failure leaves no half-written lab directory.
    /// The workspace itself fetches nothing: what a lab needs beyond its
    /// files (kernels, a root filesystem) is the caller's `prepare`.
    pub fn copy_from(
        &self,
        lab: &Lab,
        which: &str,
        to: &Path,
        prepare: impl FnOnce(&Path) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let from = lab.dir.join(which);
        std::fs::create_dir_all(&self.root)
            .with_context(|| format!("cannot create the workspace {}", self.root.display()))?;
        let tmp = tempfile::Builder::new().prefix(".starting-").tempdir_in(&self.root)?;
        copy_tree(&from, tmp.path()).with_context(|| format!("cannot copy {} into the workspace", from.display()))?;
        prepare(tmp.path())?;
        std::fs::rename(tmp.keep(), to).with_context(|| format!("cannot create {}", to.display()))?;
        Ok(())
    }
}

/// Copies files and directories, keeping permission bits (scripts stay executable).
pub fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let ty = entry.file_type()?;
        if ty.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
