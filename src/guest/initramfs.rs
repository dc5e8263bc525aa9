//! The runner's initramfs: static busybox with a link per applet, the driver
//! modules of the guest kernel, and the probe init (init.sh) as /init.
//! Content-addressed: the file name is the hash of everything put in, so a
//! second build with the same inputs costs a hash and nothing else.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use sha2::{Digest, Sha256};

use super::cpio::{Entry, Writer};
use crate::files::sha256_hex;

/// The probe init, run as PID 1 in every vlab guest.
pub(crate) const PROBE_INIT: &str = include_str!("init.sh");

/// Bumped when the layout below changes, so old cached images are not reused.
const FORMAT: &str = "vlab-initramfs-2";

/// What the image takes from a guest kernel (assets::Kernel::modules): its
/// driver modules, by group in load order, from its cache directory.
pub(crate) struct KernelModules<'a> {
    /// The kernel's hash, which names its modules' versions.
    pub(crate) sha256: &'a str,
    /// The directory holding `modules/<name>.ko`.
    pub(crate) dir: &'a Path,
    pub(crate) groups: &'a BTreeMap<String, Vec<String>>,
}

impl KernelModules<'_> {
    pub(crate) fn module_path(&self, name: &str) -> PathBuf {
        self.dir.join("modules").join(format!("{name}.ko"))
    }
}

/// Every member of the image, in order.
pub(crate) fn entries(busybox: &[u8], applets: &[String], kernel: &KernelModules) -> anyhow::Result<Vec<Entry>> {
    let dir = |p: &str| Entry::Dir { path: p.into(), mode: 0o755 };
    let mut out: Vec<Entry> =
        ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules", "etc"]
            .into_iter()
            .map(dir)
            .collect();
    out.extend(busybox_entries(busybox, applets));
    for (group, modules) in kernel.groups {
        for m in modules {
            let data = std::fs::read(kernel.module_path(m)).with_context(|| {
                format!("the cached module {m} is missing; remove {} and retry", kernel.dir.display())
            })?;
            out.push(Entry::File { path: format!("lib/modules/{m}.ko"), mode: 0o644, data });
        }
        out.push(Entry::File {
            path: format!("lib/modules/{group}.order"),
            mode: 0o644,
            data: (modules.join("\n") + "\n").into_bytes(),
        });
    }
    out.push(Entry::File { path: "etc/passwd".into(), mode: 0o644, data: b"root:x:0:0:root:/:/bin/sh\n".to_vec() });
    out.push(Entry::File { path: "init".into(), mode: 0o755, data: PROBE_INIT.as_bytes().to_vec() });
    Ok(out)
}

/// /dev/console, busybox, and a relative link to it per applet (`bin/sh`, `usr/bin/awk`...).
pub(crate) fn busybox_entries(busybox: &[u8], applets: &[String]) -> Vec<Entry> {
    let mut out = vec![
        Entry::CharDev { path: "dev/console".into(), mode: 0o600, major: 5, minor: 1 },
        Entry::File { path: "bin/busybox".into(), mode: 0o755, data: busybox.to_vec() },
    ];
    for applet in applets {
        let target = format!("{}bin/busybox", "../".repeat(applet.matches('/').count()));
        out.push(Entry::Symlink { path: applet.clone(), target });
    }
    out
}

/// The content key of a list of entries.
fn key(entries: &[Entry]) -> String {
    let mut h = Sha256::new();
    h.update(FORMAT);
    for e in entries {
        match e {
            Entry::File { path, mode, data } => {
                h.update(format!("F {path} {mode:o} {}", data.len()));
                h.update(data);
            }
            other => h.update(format!("{other:?}")),
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The newc archive of `entries`, uncompressed: under TCG the guest kernel's
/// inflate runs emulated and costs about half a second of boot, while QEMU
/// copies a few more megabytes into guest memory in no time.
pub(crate) fn build(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut w = Writer::new(Vec::new());
    for e in entries {
        w.add(e)?;
    }
    Ok(w.finish()?)
}

/// Applet paths (`bin/sh`, `usr/bin/awk`...) of the host's static busybox.
pub(crate) fn applets(busybox: &Path) -> anyhow::Result<Vec<String>> {
    let list = crate::proc::Cmd::new(busybox).arg("--list-full").run()?;
    anyhow::ensure!(list.success(), "`busybox --list-full` {}", list.describe_end());
    Ok(list.stdout.lines().filter(|l| !l.is_empty() && *l != "bin/busybox").map(str::to_string).collect())
}

/// The image for `kernel` in `dir`, built unless already there; returns its
/// path and the sha256 of its bytes.
pub(crate) fn ensure(dir: &Path, kernel: &KernelModules) -> anyhow::Result<(PathBuf, String)> {
    let busybox = crate::host::tools::static_busybox()?;
    // Hashing every input costs seconds in a debug build; a stamp keyed by the
    // inputs' identities (file metadata, kernel hash) remembers the image.
    let stamp = dir.join("by-inputs").join(fingerprint(&busybox, kernel)?);
    if let Some((name, sha)) = std::fs::read_to_string(&stamp).ok().as_deref().and_then(|s| s.trim().split_once(' ')) {
        let path = dir.join(name);
        if path.is_file() {
            return Ok((path, sha.to_string()));
        }
    }
    let bytes = std::fs::read(&busybox)?;
    let entries = entries(&bytes, &applets(&busybox)?, kernel)?;
    let path = dir.join(format!("{}.img", key(&entries)));
    let sha = match std::fs::read(&path) {
        Ok(existing) => sha256_hex(&existing),
        Err(_) => {
            let image = build(&entries)?;
            crate::files::write_atomic(&path, &image)?;
            sha256_hex(&image)
        }
    };
    std::fs::create_dir_all(stamp.parent().unwrap_or(dir))?;
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    std::fs::write(&stamp, format!("{name} {sha}\n"))?;
    Ok((path, sha))
}

/// Identity of the inputs without reading them: busybox's metadata, the
/// kernel's recorded hash and modules, this runner's init and layout.
fn fingerprint(busybox: &Path, kernel: &KernelModules) -> anyhow::Result<String> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(busybox)?;
    let mut h = Sha256::new();
    h.update(FORMAT);
    h.update(PROBE_INIT);
    h.update(format!(
        "{} {} {} {} {}",
        busybox.display(),
        m.dev(),
        m.ino(),
        m.len(),
        m.mtime_nsec() + m.mtime() * 1_000_000_000
    ));
    h.update(format!("{} {} {:?}", kernel.sha256, kernel.dir.display(), kernel.groups));
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_MODULES: BTreeMap<String, Vec<String>> = BTreeMap::new();

    fn kernel_without_modules() -> KernelModules<'static> {
        KernelModules { sha256: "", dir: Path::new(""), groups: &NO_MODULES }
    }

    #[test]
    fn image_unpacks_to_init_and_busybox() {
        let entries =
            entries(b"\x7fELF fake", &["bin/sh".into(), "usr/bin/awk".into()], &kernel_without_modules()).unwrap();
        let back = super::super::cpio::read(&build(&entries).unwrap()).unwrap();
        assert_eq!(back, entries);
        let init = back.iter().find(|e| e.path() == "init").unwrap();
        assert!(matches!(init, Entry::File { mode: 0o755, data, .. } if data.starts_with(b"#!/bin/sh")));
        assert!(back.contains(&Entry::Symlink { path: "usr/bin/awk".into(), target: "../../bin/busybox".into() }));
    }

    #[test]
    fn the_key_follows_the_content() {
        let k = kernel_without_modules();
        let a = entries(b"one", &[], &k).unwrap();
        let b = entries(b"two", &[], &k).unwrap();
        assert_eq!(key(&a), key(&entries(b"one", &[], &k).unwrap()));
        assert_ne!(key(&a), key(&b));
    }

    #[test]
    fn the_probe_init_speaks_the_report_protocol() {
        assert!(PROBE_INIT.contains(crate::guest::boot::BEGIN) && PROBE_INIT.contains(crate::guest::boot::END));
        assert!(PROBE_INIT.contains("vlab.nonce") && PROBE_INIT.contains("poweroff -f"));
    }
}
