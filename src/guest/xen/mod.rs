//! The Xen hypervisor as a guest of QEMU: Debian's newest hypervisor package
//! (xen-hypervisor-4.17-amd64 on Debian 12, 4.20 on Debian 13),
//! fetched with apt-get and unpacked (never installed on the host), its
//! gzipped image inflated to the multiboot ELF that QEMU's `-kernel` loads;
//! and what Xen itself prints on the serial line, read as facts (`console`).
//!
//! Cache layout under $XDG_CACHE_HOME/vlab (or ~/.cache/vlab):
//!   xen/<package>_<version>/xen.elf   xen/current names the directory in use

pub(crate) mod console;
pub(crate) mod domu;

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::assets::{self, Lock};
use crate::cleanup::Scratch;

/// Debian names its hypervisor packages by Xen's version: xen-hypervisor-X.Y-amd64.
const PACKAGE_PREFIX: &str = "xen-hypervisor-";
const PACKAGE_SUFFIX: &str = "-amd64";

/// The newest `xen-hypervisor-X.Y-amd64` among `names` (one a line, as
/// `apt-cache pkgnames` prints them), and its Xen version `X.Y`.
fn newest_hypervisor(names: &str) -> Option<(String, String)> {
    let version = |name: &str| -> Option<(Vec<u32>, String)> {
        let v = name.strip_prefix(PACKAGE_PREFIX)?.strip_suffix(PACKAGE_SUFFIX)?;
        let parts = v.split('.').map(|p| p.parse().ok()).collect::<Option<Vec<u32>>>()?;
        Some((parts, v.to_string()))
    };
    names
        .lines()
        .filter_map(|n| version(n.trim()).map(|(key, v)| (key, n.trim().to_string(), v)))
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, name, v)| (name, v))
}

/// The Xen version `X.Y` of a cached hypervisor, from its directory's name
/// (the package's file stem, `xen-hypervisor-4.20-amd64_4.20.4+63-..._amd64`).
pub(super) fn version_of(elf: &Path) -> Option<String> {
    let dir = elf.parent()?.file_name()?.to_str()?;
    let (name, _) = dir.split_once('_')?;
    newest_hypervisor(name).map(|(_, v)| v)
}

/// The hypervisor package apt offers now: the newest Xen it knows.
fn hypervisor_package() -> anyhow::Result<String> {
    let out = assets::apt("apt-cache", &["pkgnames", PACKAGE_PREFIX], None)?;
    match newest_hypervisor(&out.stdout) {
        Some((name, _)) => Ok(name),
        None => bail!(
            "apt knows no {PACKAGE_PREFIX}X.Y{PACKAGE_SUFFIX} package: refresh the package lists with \
             `apt-get update` (as root; `vlab setup` does it) and check that /etc/apt has a Debian main source"
        ),
    }
}

/// The hypervisor image, cached; fetched from Debian the first time.
pub fn ensure() -> anyhow::Result<PathBuf> {
    hypervisor(false)
}

/// Like `ensure`, but fetches the package again (`vlab setup`).
pub(crate) fn refresh() -> anyhow::Result<PathBuf> {
    hypervisor(true)
}

fn hypervisor(refresh: bool) -> anyhow::Result<PathBuf> {
    let cache = assets::cache_dir();
    let _lock = Lock::take(&cache)?;
    let base = cache.join("xen");
    let current = base.join("current");
    if !refresh && let Ok(name) = std::fs::read_to_string(&current) {
        let elf = base.join(name.trim()).join("xen.elf");
        if is_elf(&elf) {
            return Ok(elf);
        }
    }
    std::fs::create_dir_all(&base)?;
    let package = hypervisor_package()?;
    let work = Scratch::new_in(&cache, "fetch-")?;
    let deb = assets::download(&package, work.path(), &[])?;
    let root = work.path().join("root");
    assets::unpack(&deb, &root)?;
    let gz = std::fs::read_dir(root.join("boot"))
        .with_context(|| format!("{package} has no /boot"))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("xen-") && n.to_string_lossy().ends_with(".gz"))
        })
        .with_context(|| format!("{package} has no /boot/xen-*.gz"))?;
    let mut image = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&gz)?)
        .read_to_end(&mut image)
        .with_context(|| format!("cannot inflate {}", gz.display()))?;
    if !image.starts_with(b"\x7fELF") {
        bail!("{} did not inflate to an ELF image; the package layout changed", gz.display());
    }
    let name = deb.file_stem().unwrap_or_default().to_string_lossy().into_owned();
    let dir = base.join(&name);
    let staged = work.path().join("xen");
    std::fs::create_dir_all(&staged)?;
    std::fs::write(staged.join("xen.elf"), &image)?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&staged, &dir).with_context(|| format!("cannot move the hypervisor into {}", dir.display()))?;
    std::fs::write(&current, &name)?;
    Ok(dir.join("xen.elf"))
}

fn is_elf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x7fELF"
}

/// Lab prepare `xen-assets`: `xen.elf`, and dom0's kernel and initramfs
/// (`dom0-kernel`, `dom0-initrd.img`) in `dir`, linked to the cache. dom0 is
/// the generic kernel, built with CONFIG_XEN_DOM0: Linux 6.12 without it
/// (Debian 13's cloud kernel) says so in its ELF notes and Xen refuses it.
/// It boots unpacked when it could be unpacked: under TCG, Xen's own
/// unpacking of an xz or zstd payload costs seconds.
pub(crate) fn prepare_assets(dir: &Path) -> anyhow::Result<()> {
    let elf = ensure()?;
    let dom0 = assets::generic(false)?;
    std::fs::create_dir_all(dir)?;
    super::link(&elf, &dir.join("xen.elf"))?;
    super::link(&dom0.kernel.boot_image(), &dir.join("dom0-kernel"))?;
    super::link(&dom0.initrd, &dir.join("dom0-initrd.img"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_hypervisor_is_chosen_by_version() {
        let names = "xen-hypervisor-common\nxen-hypervisor-4.9-amd64\nxen-hypervisor-4.20-amd64-dbg\n\
                     xen-hypervisor-4.20-amd64\nxen-hypervisor-4.17-amd64\nxen-hypervisor-4.20-arm64\n";
        assert_eq!(newest_hypervisor(names), Some(("xen-hypervisor-4.20-amd64".into(), "4.20".into())));
        assert_eq!(newest_hypervisor("xen-hypervisor-4.17-amd64\n").unwrap().1, "4.17");
        assert_eq!(newest_hypervisor("xen-hypervisor-common\nxen-utils-4.20\n"), None);
        assert_eq!(newest_hypervisor(""), None);
    }

    #[test]
    fn the_cached_hypervisor_names_its_version() {
        let elf = Path::new("/c/xen/xen-hypervisor-4.20-amd64_4.20.4+63-g7abfd2bce2-0+deb13u1_amd64/xen.elf");
        assert_eq!(version_of(elf).as_deref(), Some("4.20"));
        assert_eq!(version_of(Path::new("/c/xen/other/xen.elf")), None);
    }
}
