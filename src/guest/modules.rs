//! Kernel modules from an unpacked kernel package (or the host's
//! /lib/modules): found by name wherever the package keeps them (Debian 12
//! under lib/modules, Debian 13 under usr/lib/modules), plain or compressed
//! (`.ko.xz`, `.ko.zst`, `.ko.gz`), and unpacked, because busybox's insmod
//! reads plain ELF only. The packages ship no modules.dep (Debian's postinst
//! runs depmod), so each module's own `.modinfo depends=`, which depmod
//! reads too, gives the load order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::{decompress, elf};

/// The module directory of kernel `release` under `root` (an unpacked
/// package, or `/` for the host), if there is one.
pub(super) fn dir(root: &Path, release: &str) -> Option<PathBuf> {
    ["lib/modules", "usr/lib/modules"].iter().map(|d| root.join(d).join(release)).find(|d| d.is_dir())
}

/// The module name of a file name (`virtio_blk.ko.xz` → `virtio_blk`), with
/// dashes read as underscores, as the kernel spells module names.
fn name_of(file: &str) -> Option<String> {
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|s| file.strip_suffix(s))?;
    Some(stem.replace('-', "_"))
}

/// Every module file under `root`, by module name.
pub(super) fn index(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                dirs.push(p);
            } else if let Some(name) = e.file_name().to_str().and_then(name_of) {
                found.insert(name, p);
            }
        }
    }
    found
}

/// The plain ELF of the module file at `path`.
pub(super) fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read the module {}", path.display()))?;
    let name = path.to_string_lossy();
    let plain = if name.ends_with(".xz") {
        decompress::xz(&bytes)
    } else if name.ends_with(".zst") {
        decompress::zstd(&bytes)
    } else if name.ends_with(".gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut out).map(|_| out)
    } else {
        Ok(bytes)
    };
    let plain = plain.with_context(|| format!("cannot decompress the module {}", path.display()))?;
    anyhow::ensure!(elf::machine(&plain).is_some(), "the module {} is not an ELF file once unpacked", path.display());
    Ok(plain)
}

/// Appends `module` to `order` with its plain bytes, after the modules it
/// depends on; each once.
pub(super) fn add_with_deps(
    module: &str,
    files: &BTreeMap<String, PathBuf>,
    order: &mut Vec<(String, Vec<u8>)>,
    depth: usize,
) -> anyhow::Result<()> {
    let module = module.replace('-', "_");
    if order.iter().any(|(m, _)| *m == module) {
        return Ok(());
    }
    anyhow::ensure!(depth < 32, "module dependencies of {module} loop");
    let path =
        files.get(&module).with_context(|| format!("module {module} is needed but not in the kernel package"))?;
    let bytes = read(path)?;
    for dep in elf::module_depends(&bytes).unwrap_or_default() {
        add_with_deps(&dep, files, order, depth + 1)?;
    }
    order.push((module, bytes));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::decompress::tests::{xz_bcj, zstd_large_window};

    /// A minimal ELF64 relocatable with a `.modinfo` section saying `depends=`.
    fn module(depends: &str) -> Vec<u8> {
        let modinfo = format!("license=GPL\0depends={depends}\0name=x\0");
        let names = b"\0.modinfo\0.shstrtab\0";
        let (info_at, names_at) = (64, 64 + modinfo.len());
        let shoff = names_at + names.len();
        let mut elf = vec![0u8; 64];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x12..0x14].copy_from_slice(&62u16.to_le_bytes());
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3A..0x3C].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3C..0x3E].copy_from_slice(&3u16.to_le_bytes());
        elf[0x3E..0x40].copy_from_slice(&2u16.to_le_bytes());
        elf.extend(modinfo.as_bytes());
        elf.extend(names);
        let header = |name: u32, at: usize, len: usize| {
            let mut h = vec![0u8; 64];
            h[..4].copy_from_slice(&name.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&(at as u64).to_le_bytes());
            h[0x20..0x28].copy_from_slice(&(len as u64).to_le_bytes());
            h
        };
        elf.extend(header(0, 0, 0));
        elf.extend(header(1, info_at, modinfo.len()));
        elf.extend(header(10, names_at, names.len()));
        elf
    }

    #[test]
    fn names_follow_the_kernel_spelling() {
        assert_eq!(name_of("xen-blkfront.ko.xz").as_deref(), Some("xen_blkfront"));
        assert_eq!(name_of("virtio_net.ko.zst").as_deref(), Some("virtio_net"));
        assert_eq!(name_of("e1000.ko").as_deref(), Some("e1000"));
        assert_eq!(name_of("modules.dep"), None);
        assert_eq!(name_of("e1000.ko.bz2"), None);
    }

    #[test]
    fn compressed_modules_are_unpacked_after_their_dependencies() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("usr/lib/modules/6.12.0-test");
        std::fs::create_dir_all(root.join("kernel/drivers/net")).unwrap();
        let (top, mid, leaf) = (module("net_failover,virtio_ring"), module("failover"), module(""));
        std::fs::write(root.join("kernel/drivers/net/virtio_net.ko.xz"), xz_bcj(&top)).unwrap();
        std::fs::write(root.join("kernel/drivers/net/net_failover.ko.zst"), zstd_large_window(&mid)).unwrap();
        std::fs::write(root.join("kernel/drivers/net/failover.ko"), &leaf).unwrap();
        std::fs::write(root.join("kernel/virtio_ring.ko.xz"), xz_bcj(&leaf)).unwrap();

        assert_eq!(dir(tmp.path(), "6.12.0-test"), Some(root.clone()));
        assert_eq!(dir(tmp.path(), "6.1.0-other"), None);
        let files = index(&root);
        assert_eq!(files.len(), 4, "{files:?}");
        let mut order = Vec::new();
        add_with_deps("virtio-net", &files, &mut order, 0).unwrap();
        let names: Vec<&str> = order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["failover", "net_failover", "virtio_ring", "virtio_net"]);
        assert!(order[1].1 == mid && order[3].1 == top, "modules are stored plain");
    }

    #[test]
    fn a_missing_dependency_or_a_corrupt_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.ko"), module("b")).unwrap();
        std::fs::write(tmp.path().join("c.ko.xz"), b"\xfd7zXZ\0 cut short").unwrap();
        let files = index(tmp.path());
        let missing = add_with_deps("a", &files, &mut Vec::new(), 0).unwrap_err();
        assert!(format!("{missing:#}").contains("module b is needed"), "{missing:#}");
        let corrupt = add_with_deps("c", &files, &mut Vec::new(), 0).unwrap_err();
        assert!(format!("{corrupt:#}").contains("cannot decompress the module"), "{corrupt:#}");
    }
}
