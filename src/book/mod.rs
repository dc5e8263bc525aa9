//! The book: an mdBook under `book/` whose lab pages are generated from the
//! same lab.toml and README.md files the runner checks (`pages`), built with
//! mdBook's own library, and served with live reload and live lab status
//! (`serve`, `status`).
//!
//! The generated pages are committed, so stock `mdbook build book` builds the
//! same book; `vlab book sync --check` (and a test) fail when they are stale.

pub(crate) mod pages;
pub(crate) mod quiz;
pub(crate) mod serve;
pub(crate) mod status;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::catalog::Catalog;

/// A book directory: `book.toml` plus `src/SUMMARY.md`.
#[derive(Debug, Clone)]
pub struct Book {
    pub(crate) root: PathBuf,
}

impl Book {
    /// The book that belongs to a labs directory: its sibling `book/`.
    pub fn beside(labs_root: &Path) -> anyhow::Result<Book> {
        let labs = labs_root.canonicalize().with_context(|| format!("cannot open {}", labs_root.display()))?;
        let root = labs.parent().map(|p| p.join("book")).unwrap_or_else(|| PathBuf::from("book"));
        anyhow::ensure!(
            root.join("book.toml").is_file(),
            "no book next to the labs: {} has no book.toml; run vlab from a vlab checkout (book/ beside labs/)",
            root.display()
        );
        Ok(Book { root })
    }

    pub fn src(&self) -> PathBuf {
        self.root.join("src")
    }

    /// Where stock `mdbook build` writes (book.toml's build-dir, `book` by default).
    pub(crate) fn default_out(&self) -> PathBuf {
        self.root.join("book")
    }

    /// Brings the generated pages in line with the catalog; returns the files
    /// written or removed.
    pub(crate) fn sync(&self, cat: &Catalog) -> anyhow::Result<Vec<PathBuf>> {
        pages::plan(self, cat)?.apply()
    }

    /// Files that `sync` would change: empty when the committed book is current.
    pub fn stale(&self, cat: &Catalog) -> anyhow::Result<Vec<PathBuf>> {
        Ok(pages::plan(self, cat)?.changes())
    }

    /// Renders the HTML book into `out` with mdBook's library, exactly as stock
    /// `mdbook build` would with the same book.toml.
    pub(crate) fn build(&self, out: &Path) -> anyhow::Result<()> {
        let mut md = mdbook_driver::MDBook::load(&self.root)
            .with_context(|| format!("cannot load the book in {}", self.root.display()))?;
        md.config.build.build_dir = std::path::absolute(out)?;
        md.build().with_context(|| format!("cannot build the book from {}", self.root.display()))?;
        Ok(())
    }
}
