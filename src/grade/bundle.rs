//! Submission bundles: a gzip'd tar holding `manifest.json` and
//! `files/<lab>/<path>` for the files each lab declares. Packing is the
//! student's side (`vlab submit`); unpacking is the grader's, and treats the
//! bundle as hostile: only regular files, relative paths without `..`, under
//! size and count limits, each entry once, only files the canonical lab
//! declares, and each exactly as the manifest lists it (size and sha256).
//! Anything else rejects the whole bundle: a tar where a later entry of the
//! same name silently wins, or where the manifest and the files disagree, is
//! not something `vlab submit` makes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Lab};
use crate::files::sha256_hex;
use crate::state::LabState;

pub(crate) const FORMAT: u32 = 1;
/// Largest file a student may submit.
pub(crate) const MAX_FILE: u64 = 1024 * 1024;
/// Largest bundle content, all files together.
pub(crate) const MAX_TOTAL: u64 = 16 * 1024 * 1024;
pub(crate) const MAX_ENTRIES: usize = 512;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub(crate) format: u32,
    pub(crate) tool_version: String,
    pub(crate) student: String,
    /// Seconds since the Unix epoch, as the student's clock said (informational).
    pub(crate) created_at: u64,
    pub(crate) labs: BTreeMap<String, Vec<FileEntry>>,
    /// The student's own last results: shown to the instructor, never used for grades.
    pub(crate) self_reported: BTreeMap<String, LabState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct FileEntry {
    pub(crate) path: String,
    pub(crate) sha256: String,
    pub(crate) size: u64,
}

/// The files a lab declares, across its steps, sorted and unique.
pub(crate) fn declared_files(lab: &Lab) -> Vec<String> {
    let mut files: Vec<String> = lab.steps.iter().flat_map(|s| s.files.iter().cloned()).collect();
    files.sort();
    files.dedup();
    files
}

/// Packs the declared files of `labs` from the workspace into a bundle at `out`
/// (written to a temp file and renamed, so a failure leaves nothing behind).
pub fn pack(
    labs: &[&Lab],
    workspace_dir: impl Fn(&Lab) -> PathBuf,
    student: &str,
    self_reported: BTreeMap<String, LabState>,
    out: &Path,
) -> anyhow::Result<Manifest> {
    let mut manifest = Manifest {
        format: FORMAT,
        tool_version: env!("CARGO_PKG_VERSION").into(),
        student: student.into(),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        labs: BTreeMap::new(),
        self_reported,
    };
    let mut contents = Vec::new();
    let mut total = 0;
    for lab in labs {
        let dir = workspace_dir(lab);
        let mut entries = Vec::new();
        for file in declared_files(lab) {
            let path = dir.join(&file);
            let data = std::fs::read(&path).with_context(|| {
                format!(
                    "{} is missing from your workspace ({}); restore it or `vlab reset {}`",
                    file,
                    path.display(),
                    lab.id
                )
            })?;
            if data.len() as u64 > MAX_FILE {
                bail!("{} is {} bytes; submitted files are limited to {} bytes", path.display(), data.len(), MAX_FILE);
            }
            total += data.len() as u64;
            entries.push(FileEntry { path: file.clone(), sha256: sha256_hex(&data), size: data.len() as u64 });
            contents.push((format!("files/{}/{}", lab.id, file), data));
        }
        manifest.labs.insert(lab.id.clone(), entries);
    }
    if total > MAX_TOTAL {
        bail!("the submission would be {total} bytes; the limit is {MAX_TOTAL}");
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    {
        let mut tar = tar::Builder::new(&mut gz);
        let json = serde_json::to_vec_pretty(&manifest)?;
        append(&mut tar, "manifest.json", &json)?;
        for (name, data) in &contents {
            append(&mut tar, name, data)?;
        }
        tar.finish()?;
    }
    crate::files::write_atomic(out, &gz.finish()?)?;
    Ok(manifest)
}

fn append<W: std::io::Write>(tar: &mut tar::Builder<W>, name: &str, data: &[u8]) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, name, data)
}

/// A bundle, read safely: the manifest and the declared files' contents.
#[derive(Debug, Clone)]
pub(crate) struct Submission {
    pub(crate) manifest: Manifest,
    /// lab id → (declared path → contents). Only files the canonical lab declares.
    pub(crate) files: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{bundle}: {reason}")]
pub(crate) struct Rejected {
    pub(crate) bundle: String,
    pub(crate) reason: String,
}

/// Checks that a tar path is relative and never climbs out.
fn safe_path(path: &Path) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => return Err(format!("entry `{}` climbs out with `..`", path.display())),
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("entry `{}` is an absolute path", path.display()));
            }
        }
    }
    Ok(parts)
}

/// Reads a bundle as hostile input. Returns a clear reason when it is rejected.
pub(crate) fn unpack(bundle: &Path, catalog: &Catalog) -> Result<Submission, Rejected> {
    let reject = |reason: String| Rejected { bundle: bundle.display().to_string(), reason };
    let raw = std::fs::read(bundle).map_err(|e| reject(format!("cannot read: {e}")))?;
    if raw.len() as u64 > MAX_TOTAL * 2 {
        return Err(reject(format!("{} bytes is larger than any valid submission", raw.len())));
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(raw.as_slice()));
    let entries = archive.entries().map_err(|e| reject(format!("not a vlab submission (gzip'd tar): {e}")))?;
    let mut manifest = None;
    let mut files: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    let (mut count, mut total) = (0usize, 0u64);
    for entry in entries {
        let mut entry = entry.map_err(|e| reject(format!("damaged archive: {e}")))?;
        count += 1;
        if count > MAX_ENTRIES {
            return Err(reject(format!("more than {MAX_ENTRIES} entries")));
        }
        let path = entry.path().map_err(|e| reject(format!("unreadable entry name: {e}")))?.into_owned();
        let parts = safe_path(&path).map_err(reject)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(reject(format!(
                "entry `{}` is a {:?}, not a regular file (links and devices are refused)",
                path.display(),
                kind
            )));
        }
        // `a/./b` and `a/b` are one file to tar's extractors: compare normalised names.
        if !seen.insert(parts.join("/")) {
            return Err(reject(format!(
                "entry `{}` appears twice; a bundle holds each file once (make it with `vlab submit`)",
                path.display()
            )));
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if size > MAX_FILE {
            return Err(reject(format!("entry `{}` is {size} bytes; the limit is {MAX_FILE}", path.display())));
        }
        total += size;
        if total > MAX_TOTAL {
            return Err(reject(format!("contents exceed {MAX_TOTAL} bytes")));
        }
        let mut data = Vec::new();
        entry
            .by_ref()
            .take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| reject(format!("damaged entry `{}`: {e}", path.display())))?;
        match parts.as_slice() {
            [name] if name == "manifest.json" => {
                manifest = Some(
                    serde_json::from_slice::<Manifest>(&data)
                        .map_err(|e| reject(format!("manifest.json is not valid: {e}")))?,
                );
            }
            [files_dir, lab, rest @ ..] if files_dir == "files" && !rest.is_empty() => {
                let rel = rest.join("/");
                let declared =
                    catalog.labs.iter().find(|l| &l.id == lab).is_some_and(|l| declared_files(l).contains(&rel));
                if !declared {
                    return Err(reject(format!(
                        "entry `{}` is not a file any lab asks for; a bundle holds only the labs' declared files",
                        path.display()
                    )));
                }
                files.entry(lab.clone()).or_default().insert(rel, data);
            }
            _ => {
                return Err(reject(format!(
                    "unknown entry `{}`; a bundle holds manifest.json and files/<lab>/<file> only",
                    path.display()
                )));
            }
        }
    }
    let manifest = manifest.ok_or_else(|| reject("no manifest.json: make bundles with `vlab submit`".into()))?;
    if manifest.format != FORMAT {
        return Err(reject(format!(
            "bundle format {} is not {FORMAT}; re-submit with this vlab version",
            manifest.format
        )));
    }
    agrees_with_manifest(&manifest, &files).map_err(reject)?;
    Ok(Submission { manifest, files })
}

/// Every file is in the manifest with its size and sha256, and every file
/// the manifest lists is there: what the student sealed is what is graded.
fn agrees_with_manifest(
    manifest: &Manifest,
    files: &BTreeMap<String, BTreeMap<String, Vec<u8>>>,
) -> Result<(), String> {
    for (lab, entries) in &manifest.labs {
        let got = files.get(lab);
        for e in entries {
            let data = got
                .and_then(|g| g.get(&e.path))
                .ok_or_else(|| format!("the manifest lists files/{lab}/{} but the bundle does not hold it", e.path))?;
            let sha = sha256_hex(data);
            if data.len() as u64 != e.size || sha != e.sha256 {
                return Err(format!(
                    "files/{lab}/{} does not match the manifest ({} bytes, sha256 {}…; the manifest says {} bytes, {}…)",
                    e.path,
                    data.len(),
                    &sha[..12],
                    e.size,
                    e.sha256.get(..12).unwrap_or(&e.sha256)
                ));
            }
        }
    }
    for (lab, held) in files {
        let listed = manifest.labs.get(lab);
        if let Some(path) = held.keys().find(|p| !listed.is_some_and(|l| l.iter().any(|e| &e.path == *p))) {
            return Err(format!("files/{lab}/{path} is in the bundle but not in its manifest"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog::load_with(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/grading/labs"), &crate::tiers::registry())
            .unwrap()
    }

    /// A bundle as `vlab submit` makes it, with `tamper` applied to its entries first.
    fn bundle(tamper: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> (tempfile::TempDir, PathBuf) {
        let cat = catalog();
        let lab = &cat.labs[0];
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("ws")).unwrap();
        for f in declared_files(lab) {
            std::fs::write(dir.path().join("ws").join(&f), "echo honest\n").unwrap();
        }
        let packed = dir.path().join("packed.tar.gz");
        pack(&[lab], |_| dir.path().join("ws"), "s", BTreeMap::new(), &packed).unwrap();
        let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
        let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(&packed).unwrap()));
        for e in tar.entries().unwrap() {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            entries.push((name, data));
        }
        tamper(&mut entries);
        let out = dir.path().join("sub.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        {
            let mut tar = tar::Builder::new(&mut gz);
            for (name, data) in &entries {
                append(&mut tar, name, data).unwrap();
            }
            tar.finish().unwrap();
        }
        std::fs::write(&out, gz.finish().unwrap()).unwrap();
        (dir, out)
    }

    fn reason(tamper: impl FnOnce(&mut Vec<(String, Vec<u8>)>)) -> String {
        let (_dir, path) = bundle(tamper);
        unpack(&path, &catalog()).map(|_| "accepted".to_string()).unwrap_or_else(|r| r.reason)
    }

    #[test]
    fn an_untouched_bundle_is_accepted() {
        assert_eq!(reason(|_| {}), "accepted");
    }

    #[test]
    fn a_file_changed_after_submit_is_rejected() {
        let why = reason(|e| e[1].1 = b"echo swapped\n".to_vec());
        assert!(why.contains("does not match the manifest"), "{why}");
    }

    #[test]
    fn a_second_entry_of_the_same_name_is_rejected() {
        let why = reason(|e| {
            let (name, _) = e[1].clone();
            e.push((name, b"echo later wins\n".to_vec()));
        });
        assert!(why.contains("appears twice"), "{why}");
    }

    #[test]
    fn unknown_and_unlisted_entries_are_rejected() {
        let why = reason(|e| e.push(("files/01-script/lab.toml".into(), b"id = 'x'".to_vec())));
        assert!(why.contains("not a file any lab asks for"), "{why}");
        let why = reason(|e| e.push(("notes.txt".into(), b"hi".to_vec())));
        assert!(why.contains("unknown entry"), "{why}");
        let why = reason(|e| {
            e.remove(1);
        });
        assert!(why.contains("does not hold it"), "{why}");
    }

    #[test]
    fn safe_paths_refuse_escapes() {
        assert!(safe_path(Path::new("files/01-x/a.sh")).is_ok());
        assert!(safe_path(Path::new("files/../../etc/passwd")).unwrap_err().contains(".."));
        assert!(safe_path(Path::new("/etc/passwd")).unwrap_err().contains("absolute"));
    }
}
