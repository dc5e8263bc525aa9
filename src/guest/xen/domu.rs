//! Lab 08's domU step: a PV dom0 that runs Xen's own toolstack and starts a
//! domU from the student's xl config. dom0 is Debian's generic kernel (the
//! cloud kernel has no dom0 support) with an initramfs the runner builds:
//! busybox, xl, xenstored and xenconsoled from Debian's xen-utils packages
//! (downloaded and unpacked, never installed) with the host's C libraries
//! they link, the back-end drivers, two hotplug scripts and the runner's
//! dom0 init. The domU is the cloud kernel with its XenBus front-end drivers
//! and a small init. `vlab xen domu CONFIG` boots it all under QEMU.
//!
//! Cache: xen-domu/<hash of the inputs>.img, the dom0 initramfs.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use super::super::assets::{self, GuestAssets, Lock};
use super::super::cpio::Entry;
use super::super::{initramfs, modules};
use crate::cleanup::Scratch;
use crate::guest::qmp;
use crate::proc::Cmd;

const DOM0_INIT: &str = include_str!("dom0-init.sh");
const DOMU_INIT: &str = include_str!("domu-init.sh");
const VIF_SCRIPT: &str = include_str!("vif-vlab");
const BLOCK_SCRIPT: &str = include_str!("block-vlab");

/// Bumped when the image layout changes (3: modules unpacked from .ko.xz,
/// the toolstack of the hypervisor's version; 4: random domids).
const FORMAT: &str = "vlab-xen-dom0-4";

/// Appended to Debian's xl.conf: xl picks each new domain's id at random
/// (xl.conf(5)), so the XenStore paths of a domU differ from boot to boot
/// and a script cannot print last run's handshake as this one's.
const XL_CONF_EXTRA: &str =
    "\n# vlab: a random domid for every domain, so paths differ per boot\ndomid_policy = \"random\"\n";

/// Packages of the toolstack, among everything it depends on: xl and the
/// daemons, the xenstore client, and Xen's own libraries (the host has the C
/// libraries they link).
fn is_toolstack(package: &str) -> bool {
    ["xen-utils-", "xenstore-utils", "libxen", "libyajl"].iter().any(|p| package.starts_with(p))
}

/// The toolstack packages of `apt-cache depends --recurse` output: every
/// package it names (one per unindented line) that `is_toolstack`.
fn toolstack_packages(apt_cache_depends: &str) -> Vec<String> {
    let names: BTreeSet<&str> =
        apt_cache_depends.lines().filter(|l| !l.starts_with(' ')).map(str::trim).filter(|p| is_toolstack(p)).collect();
    names.into_iter().map(str::to_string).collect()
}

/// Debian's toolstack for Xen `version` (xen-utils-X.Y) and the toolstack
/// packages it depends on, as apt resolves them now.
fn toolstack(version: &str) -> anyhow::Result<Vec<String>> {
    let utils = format!("xen-utils-{version}");
    let out = assets::apt("apt-cache", &["depends", "--recurse", "--important", &utils, "xenstore-utils"], None)?;
    let pkgs = toolstack_packages(&out.stdout);
    anyhow::ensure!(
        out.success() && pkgs.contains(&utils),
        "apt knows no {utils}, the toolstack of the cached Xen {version}: run `apt-get update` (as root), \
         then `vlab setup` to fetch the hypervisor and its toolstack again"
    );
    Ok(pkgs)
}

/// Programs dom0's init runs, from the package's private bin directory.
const XEN_BINARIES: &[&str] = &["xl", "xenstored", "xenconsoled", "xen-init-dom0", "libxl-save-helper"];

/// The xenstore client is one program under many names.
const XENSTORE_NAMES: &[&str] =
    &["xenstore-read", "xenstore-write", "xenstore-rm", "xenstore-list", "xenstore-ls", "xenstore-exists"];

/// Back-end side of the split drivers, and the event-channel and grant devices the toolstack opens.
const DOM0_MODULES: &[&str] =
    &["xen-evtchn", "xen-gntdev", "xen-gntalloc", "xen-privcmd", "xenfs", "xen-blkback", "xen-netback"];

/// Front-end drivers for the domU.
const DOMU_MODULES: &[&str] = &["xen-blkfront", "xen-netfront"];

/// Where the domU's kernel and initramfs are inside dom0 (the xl config names them).
pub(crate) const DOMU_KERNEL: &str = "/boot/domu/vmlinuz";
pub(crate) const DOMU_RAMDISK: &str = "/boot/domu/initrd.img";

/// What a domU boot needs.
#[derive(Debug, Clone)]
pub(crate) struct DomuAssets {
    pub(crate) xen: PathBuf,
    /// Debian's generic kernel, dom0: unpacked when it could be (Xen then
    /// skips unpacking it under TCG, seconds faster), else the bzImage.
    pub(crate) dom0_kernel: PathBuf,
    /// The runner's dom0 initramfs (without the student's config).
    pub(crate) dom0_image: PathBuf,
}

/// The assets, built once from Debian's packages and cached.
pub(crate) fn ensure() -> anyhow::Result<DomuAssets> {
    let xen = super::ensure()?;
    let dom0 = assets::generic(false)?;
    let domu = assets::ensure()?;
    let cache = assets::cache_dir();
    let xen_dir = xen.parent().unwrap_or(&xen).to_string_lossy().into_owned();
    let mut h = Sha256::new();
    for part in
        [FORMAT, DOM0_INIT, DOMU_INIT, VIF_SCRIPT, BLOCK_SCRIPT, &xen_dir, &dom0.kernel.sha256, &domu.kernel.sha256]
    {
        h.update(part);
        h.update([0]);
    }
    let key: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    let image = cache.join("xen-domu").join(format!("{key}.img"));
    let out = DomuAssets { xen, dom0_kernel: dom0.kernel.boot_image(), dom0_image: image.clone() };
    if image.is_file() {
        return Ok(out);
    }
    let _lock = Lock::take(&cache)?;
    if image.is_file() {
        return Ok(out);
    }
    let version = super::version_of(&out.xen).with_context(|| {
        format!("cannot tell the Xen version of {}; run `vlab setup` to fetch the hypervisor again", out.xen.display())
    })?;
    let work = Scratch::new_in(&cache, "fetch-")?;
    let root = work.path().join("root");
    let mut pkgs = toolstack(&version)?;
    pkgs.push(package_spec(&dom0)?);
    pkgs.push(package_spec(&domu)?);
    let names: Vec<&str> = pkgs.iter().map(String::as_str).collect();
    for deb in assets::download_all(&names, work.path(), &[])? {
        assets::unpack(&deb, &root)?;
    }
    let bytes = assets::with_progress("building the dom0 initramfs for Xen's toolstack".into(), || {
        dom0_image(&root, &dom0, &domu)
    })?;
    crate::files::write_atomic(&image, &bytes)?;
    // Images of earlier inputs (another kernel, an older runner) are never used again.
    for e in std::fs::read_dir(image.parent().unwrap_or(&cache))?.flatten() {
        if e.path() != image && e.path().extension().is_some_and(|x| x == "img") {
            let _ = std::fs::remove_file(e.path());
        }
    }
    Ok(out)
}

/// `pkg=version` of a kernel fetched from Debian, for apt-get download.
fn package_spec(assets: &GuestAssets) -> anyhow::Result<String> {
    let source = &assets.kernel.source;
    let Some((pkg, version)) = source.strip_prefix("debian:").and_then(|s| s.split_once(' ')) else {
        bail!(
            "the domU step needs Debian's kernel packages (their Xen drivers), but the guest kernel is {source}; \
             unset {} to use Debian's",
            assets::KERNEL_ENV
        );
    };
    Ok(format!("{pkg}={version}"))
}

/// `names` and the modules they depend on, dependencies first, as image entries
/// `lib/modules/NAME.ko` (NAME with underscores, as the kernel spells it); returns the load order.
fn add_modules(entries: &mut Vec<Entry>, root: &Path, release: &str, names: &[&str]) -> anyhow::Result<Vec<String>> {
    let dir = modules::dir(root, release).with_context(|| format!("the package of kernel {release} has no modules"))?;
    let files = modules::index(&dir);
    let mut loaded = Vec::new();
    for n in names {
        modules::add_with_deps(n, &files, &mut loaded, 0)?;
    }
    let order = loaded.iter().map(|(name, _)| name.clone()).collect();
    entries.extend(loaded.into_iter().map(|(name, data)| Entry::File {
        path: format!("lib/modules/{name}.ko"),
        mode: 0o644,
        data,
    }));
    Ok(order)
}

/// Directories an init mounts on or writes into, empty in the image.
const MOUNT_POINTS: &[&str] = &["dev", "proc", "sys", "tmp", "run", "var"];

fn dir_entries(entries: &mut Vec<Entry>, dirs: &[&str]) {
    entries.extend(dirs.iter().map(|d| Entry::Dir { path: d.to_string(), mode: 0o755 }));
}

/// The host's static busybox with a link per applet, and /dev/console.
fn busybox_entries(entries: &mut Vec<Entry>) -> anyhow::Result<()> {
    let busybox = crate::host::tools::static_busybox()?;
    entries.extend(initramfs::busybox_entries(&std::fs::read(&busybox)?, &initramfs::applets(&busybox)?));
    Ok(())
}

/// The domU's initramfs: busybox, the front-end drivers, its init.
fn domu_image(root: &Path, domu: &GuestAssets) -> anyhow::Result<Vec<u8>> {
    let mut e = Vec::new();
    dir_entries(&mut e, MOUNT_POINTS);
    busybox_entries(&mut e)?;
    add_modules(&mut e, root, &domu.kernel.release, DOMU_MODULES)?;
    e.push(Entry::File { path: "init".into(), mode: 0o755, data: DOMU_INIT.as_bytes().to_vec() });
    initramfs::build(&with_parents(e))
}

/// Shared libraries `binary` needs that live outside `root`, as `ldd` resolves them.
fn host_libraries(binary: &Path, root: &Path) -> anyhow::Result<BTreeSet<PathBuf>> {
    let out = Cmd::new("ldd")
        .arg(binary)
        .env("LD_LIBRARY_PATH", root.join("usr/lib/x86_64-linux-gnu"))
        .timeout(Duration::from_secs(30))
        .run()?;
    anyhow::ensure!(out.success(), "`ldd {}` {}: {}", binary.display(), out.describe_end(), out.stderr.trim());
    let mut libs = BTreeSet::new();
    for line in out.stdout.lines() {
        if line.contains("not found") {
            bail!(
                "{} needs a library that is neither on this host nor in Xen's packages: {}",
                binary.display(),
                line.trim()
            );
        }
        let path = line.split("=>").nth(1).and_then(|r| r.split_whitespace().next()).or_else(|| {
            line.split_whitespace().next().filter(|p| p.starts_with('/')) // the dynamic loader
        });
        if let Some(p) = path.map(PathBuf::from).filter(|p| p.is_absolute() && !p.starts_with(root)) {
            libs.insert(p);
        }
    }
    Ok(libs)
}

/// A file or symlink of the unpacked packages as an image entry at `path`.
fn packaged(path: &str, source: &Path) -> anyhow::Result<Entry> {
    let meta = std::fs::symlink_metadata(source).with_context(|| format!("{} is missing", source.display()))?;
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(source)?.to_string_lossy().into_owned();
        return Ok(Entry::Symlink { path: path.into(), target });
    }
    use std::os::unix::fs::PermissionsExt;
    Ok(Entry::File { path: path.into(), mode: meta.permissions().mode() & 0o7777, data: std::fs::read(source)? })
}

fn dom0_image(root: &Path, dom0: &GuestAssets, domu: &GuestAssets) -> anyhow::Result<Vec<u8>> {
    let libdir = "usr/lib/x86_64-linux-gnu";
    let xen_dir = std::fs::read_dir(root.join("usr/lib"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("xen-") && root.join("usr/lib").join(n).join("bin/xl").is_file())
        .context("the xen-utils package has no usr/lib/xen-*/bin/xl")?;
    let mut e = Vec::new();
    // with_parents adds every directory that holds a file; these are the empty ones.
    dir_entries(&mut e, MOUNT_POINTS);
    e.push(Entry::Symlink { path: "usr/lib/xen".into(), target: xen_dir.clone() });
    busybox_entries(&mut e)?;
    let mut binaries = Vec::new();
    for b in XEN_BINARIES {
        let rel = format!("usr/lib/{xen_dir}/bin/{b}");
        e.push(packaged(&rel, &root.join(&rel))?);
        binaries.push(root.join(&rel));
    }
    e.push(packaged("usr/bin/xenstore", &root.join("usr/bin/xenstore"))?);
    binaries.push(root.join("usr/bin/xenstore"));
    for name in XENSTORE_NAMES {
        e.push(Entry::Symlink { path: format!("usr/bin/{name}"), target: "xenstore".into() });
    }
    // Xen's libraries as packaged (with their version symlinks).
    for entry in std::fs::read_dir(root.join(libdir))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if ["libxen", "libxlutil", "libyajl"].iter().any(|p| name.starts_with(p)) && name.contains(".so") {
            e.push(packaged(&format!("{libdir}/{name}"), &entry.path())?);
        }
    }
    // The host's C libraries they link, and libgcc_s, which glibc loads at run
    // time for pthread_cancel (ldd does not list it; xl aborts without it).
    let mut host = BTreeSet::new();
    for b in &binaries {
        host.extend(host_libraries(b, root)?);
    }
    host.insert(PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"));
    for lib in host {
        let data = std::fs::read(&lib)
            .with_context(|| format!("cannot read {} for dom0 (the toolstack links it)", lib.display()))?;
        let path = lib.to_string_lossy().trim_start_matches('/').to_string();
        e.push(Entry::File { path, mode: 0o755, data });
    }
    let order = add_modules(&mut e, root, &dom0.kernel.release, DOM0_MODULES)?;
    e.push(Entry::File { path: "lib/modules/dom0.order".into(), mode: 0o644, data: (order.join("\n") + "\n").into() });
    add_modules(&mut e, root, &dom0.kernel.release, &["brd"])?;
    let mut xl_conf = std::fs::read(root.join("etc/xen/xl.conf")).context("xen-utils-common has no etc/xen/xl.conf")?;
    xl_conf.extend_from_slice(XL_CONF_EXTRA.as_bytes());
    e.push(Entry::File { path: "etc/xen/xl.conf".into(), mode: 0o644, data: xl_conf });
    e.push(Entry::File { path: "etc/xen/scripts/vif-vlab".into(), mode: 0o755, data: VIF_SCRIPT.into() });
    e.push(Entry::File { path: "etc/xen/scripts/block-vlab".into(), mode: 0o755, data: BLOCK_SCRIPT.into() });
    e.push(Entry::File { path: "etc/passwd".into(), mode: 0o644, data: b"root:x:0:0:root:/:/bin/sh\n".to_vec() });
    e.push(Entry::File {
        path: DOMU_KERNEL.trim_start_matches('/').into(),
        mode: 0o644,
        data: std::fs::read(domu.kernel.vmlinuz())?,
    });
    e.push(Entry::File {
        path: DOMU_RAMDISK.trim_start_matches('/').into(),
        mode: 0o644,
        data: domu_image(root, domu)?,
    });
    e.push(Entry::File { path: "init".into(), mode: 0o755, data: DOM0_INIT.as_bytes().to_vec() });
    initramfs::build(&with_parents(e))
}

/// `entries` with every directory first, parents before children, including
/// parents not listed: the kernel's unpacker does not create a missing
/// parent, it drops the file.
fn with_parents(entries: Vec<Entry>) -> Vec<Entry> {
    let mut dirs = std::collections::BTreeMap::new();
    let mut rest = Vec::new();
    for e in entries {
        let mut p = Path::new(e.path()).parent();
        while let Some(parent) = p.filter(|p| !p.as_os_str().is_empty()) {
            dirs.entry(parent.to_string_lossy().into_owned()).or_insert(0o755);
            p = parent.parent();
        }
        match e {
            Entry::Dir { path, mode } => {
                dirs.insert(path, mode);
            }
            other => rest.push(other),
        }
    }
    // Sorted paths put a parent before its children.
    let mut out: Vec<Entry> = dirs.into_iter().map(|(path, mode)| Entry::Dir { path, mode }).collect();
    out.extend(rest);
    out
}

/// The student's xl config, and their dom0 script when there is one, as a
/// second archive appended to the dom0 image: the kernel unpacks
/// concatenated newc archives in order.
fn with_config(image: &Path, config: &[u8], script: Option<&[u8]>, out: &Path) -> anyhow::Result<()> {
    let mut bytes = std::fs::read(image)?;
    let mut files = vec![Entry::File { path: "etc/xen/domu.cfg".into(), mode: 0o644, data: config.into() }];
    if let Some(script) = script {
        files.push(Entry::File { path: DOM0_SCRIPT.trim_start_matches('/').into(), mode: 0o755, data: script.into() });
    }
    bytes.extend(initramfs::build(&files)?);
    std::fs::write(out, bytes)?;
    Ok(())
}

/// QEMU's command line: Xen with one CPU and 512 MiB for dom0, dom0 quiet,
/// its console through Xen's to the serial line on stdout.
pub(crate) fn argv(a: &DomuAssets, initrd: &Path, nonce: &str) -> Vec<String> {
    let modules = format!(
        "{} console=hvc0 earlyprintk=xen panic=-1 quiet vlab.nonce={nonce},{}",
        a.dom0_kernel.display(),
        initrd.display()
    );
    [
        "qemu-system-x86_64",
        "-accel",
        "tcg",
        "-cpu",
        "qemu64",
        "-m",
        "1024",
        "-nodefaults",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        &a.xen.to_string_lossy(),
        "-append",
        "console=com1 dom0_mem=512M,max:512M dom0_max_vcpus=1",
        "-initrd",
        &modules,
    ]
    .into_iter()
    .map(str::to_string)
    .collect()
}

/// Where the student's dom0 script is inside dom0 (dom0-init.sh runs it).
const DOM0_SCRIPT: &str = "/etc/xen/dom0.sh";

/// `vlab xen domu CONFIG [--dom0-script SCRIPT]`: boots Xen and dom0, which
/// starts a domU from `config`, then runs `script` in dom0 while the domU is
/// up; the console goes to stdout. The nonce is $VLAB_NONCE (a check's)
/// or a fresh one; the per-run image goes to $VLAB_SCRATCH when a check set
/// it (the check removes it even when it kills this process).
pub(crate) fn run(config: &Path, script: Option<&Path>, timeout: Duration) -> anyhow::Result<i32> {
    let text = std::fs::read(config).with_context(|| {
        format!(
            "cannot read the xl config {}; write the domU's configuration there (lab 08's README)",
            config.display()
        )
    })?;
    let script = match script {
        Some(p) => Some(std::fs::read(p).with_context(|| {
            format!(
                "cannot read the dom0 script {}; write the script dom0 should run there (lab 08's README)",
                p.display()
            )
        })?),
        None => None,
    };
    let assets = ensure()?;
    let nonce = std::env::var("VLAB_NONCE").ok().filter(|n| !n.is_empty()).unwrap_or_else(crate::evidence::fresh_nonce);
    let own;
    let dir = match std::env::var_os("VLAB_SCRATCH").map(PathBuf::from).filter(|d| d.is_dir()) {
        Some(d) => d,
        None => {
            own = Scratch::new_in(&std::env::temp_dir(), "vlab-xen-domu-")?;
            own.path().to_path_buf()
        }
    };
    let initrd = dir.join("dom0-with-config.img");
    with_config(&assets.dom0_image, &text, script.as_deref(), &initrd)?;
    let mut argv = argv(&assets, &initrd, &nonce);
    // Inside a check, QEMU connects to the runner's QMP and seal sockets, as a student's QEMU would.
    for (env, option) in [(qmp::QMP_ENV, "-qmp"), (qmp::SEAL_ENV, "-serial")] {
        if let Some(path) = std::env::var_os(env).filter(|p| !p.is_empty()) {
            argv.extend([option.to_string(), format!("unix:{}", path.to_string_lossy())]);
        }
    }
    let out = Cmd::from_argv(&argv).timeout(timeout).inherit_output().run()?;
    let _ = std::fs::remove_file(&initrd);
    if out.timed_out {
        eprintln!("vlab xen domu: stopped QEMU after {}s", timeout.as_secs());
    }
    Ok(out.code.unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_rides_in_a_second_archive() {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("dom0.img");
        let first =
            initramfs::build(&[Entry::File { path: "init".into(), mode: 0o755, data: b"#!/bin/sh\n".to_vec() }])
                .unwrap();
        std::fs::write(&image, &first).unwrap();
        let out = dir.path().join("out.img");
        with_config(&image, b"type = \"pv\"\n", Some(b"xl list\n"), &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(&first));
        let second = crate::guest::cpio::read(&bytes[first.len()..]).unwrap();
        assert_eq!(second[0].path(), "etc/xen/domu.cfg");
        assert_eq!(second[1].path(), "etc/xen/dom0.sh");
    }

    #[test]
    fn the_toolstack_is_what_xen_utils_depends_on() {
        let depends = "xen-utils-4.20\n  Depends: libc6\n  Depends: libxenmisc4.20\n  Depends: <python3:any>\n\
                       xenstore-utils\n  Depends: libxenstore4\nlibc6\n  Depends: libgcc-s1\nlibxenmisc4.20\n\
                       \x20 Depends: libxentoolcore1\nlibxenstore4\nxen-utils-common\nlibxentoolcore1\nlibyajl2\n\
                       <python3:any>\npython3\nlibxenmisc4.20\n";
        assert_eq!(
            toolstack_packages(depends),
            [
                "libxenmisc4.20",
                "libxenstore4",
                "libxentoolcore1",
                "libyajl2",
                "xen-utils-4.20",
                "xen-utils-common",
                "xenstore-utils"
            ]
        );
    }

    #[test]
    fn dom0_reads_the_handshake_before_the_students_script_can_touch_it() {
        let read = DOM0_INIT.find("xenbus.$class.$(echo").unwrap();
        let run = DOM0_INIT.find(&format!("sh {DOM0_SCRIPT}")).unwrap();
        assert!(read < run, "the XenStore must be read before the student's script runs");
        assert!(XL_CONF_EXTRA.contains("domid_policy = \"random\""));
    }

    #[test]
    fn every_parent_directory_comes_before_its_files() {
        let e = with_parents(vec![
            Entry::Dir { path: "lib".into(), mode: 0o755 },
            Entry::File { path: "lib/x86_64-linux-gnu/libc.so.6".into(), mode: 0o755, data: vec![] },
        ]);
        let paths: Vec<&str> = e.iter().map(Entry::path).collect();
        assert_eq!(paths, ["lib", "lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu/libc.so.6"]);
    }

    #[test]
    fn qemu_loads_xen_with_dom0_and_its_image_as_modules() {
        let a =
            DomuAssets { xen: "/c/xen.elf".into(), dom0_kernel: "/c/vmlinuz".into(), dom0_image: "/c/d.img".into() };
        let argv = argv(&a, Path::new("/s/dom0.img"), "abc");
        let initrd = &argv[argv.iter().position(|x| x == "-initrd").unwrap() + 1];
        assert_eq!(initrd.matches(',').count(), 1, "QEMU splits modules at commas: {initrd}");
        assert!(
            initrd.starts_with("/c/vmlinuz ") && initrd.ends_with(",/s/dom0.img") && initrd.contains("vlab.nonce=abc")
        );
        let facts = crate::guest::boot::qemu_facts(&argv);
        assert_eq!(facts["vmm.asked.accel"], "tcg");
    }

    #[test]
    fn only_debian_kernels_have_the_drivers_packaged() {
        let mut a = GuestAssets {
            kernel: serde_json::from_str(r#"{"source":"file:/k","release":"x","sha256":"","drivers":{},"groups":{}}"#)
                .unwrap(),
            initrd: PathBuf::new(),
            initrd_sha256: String::new(),
        };
        assert!(package_spec(&a).unwrap_err().to_string().contains(assets::KERNEL_ENV));
        a.kernel.source = "debian:linux-image-6.1.0-56-amd64 6.1.192-2".into();
        assert_eq!(package_spec(&a).unwrap(), "linux-image-6.1.0-56-amd64=6.1.192-2");
    }
}
