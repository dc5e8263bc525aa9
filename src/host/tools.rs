//! Host tools the labs drive: present or not, which version, which package.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::proc::Cmd;

/// The host's busybox, when it is statically linked: it has to run inside
/// guests and container roots that hold no shared libraries.
pub(crate) fn static_busybox() -> anyhow::Result<PathBuf> {
    which("busybox").filter(|p| is_static_elf(p)).ok_or_else(|| {
        anyhow::anyhow!("a static busybox is needed; install the Debian package busybox-static (`vlab setup`)")
    })
}

/// A tool vlab uses: doctor's name, the binary (or, for a file that is no
/// program, its absolute path), how to ask its version, the Debian package.
/// (UML is not among them: a `linux` is only present if it boots; see host/uml.rs.)
pub(crate) struct Tool {
    pub(crate) name: &'static str,
    pub(crate) binary: &'static str,
    pub(crate) version_args: &'static [&'static str],
    pub(crate) package: &'static str,
    pub(crate) must_be_static: bool,
}

pub(crate) const TOOLS: &[Tool] = &[
    Tool {
        name: "qemu-system",
        binary: "qemu-system-x86_64",
        version_args: &["--version"],
        package: "qemu-system-x86",
        must_be_static: false,
    },
    Tool {
        name: "qemu-user",
        binary: "qemu-aarch64-static",
        version_args: &["--version"],
        package: "qemu-user-static",
        must_be_static: false,
    },
    Tool { name: "runc", binary: "runc", version_args: &["--version"], package: "runc", must_be_static: false },
    // Runs a UML fetched from a newer Debian suite with that suite's C library (host/uml.rs).
    Tool {
        name: "patchelf",
        binary: "patchelf",
        version_args: &["--version"],
        package: "patchelf",
        must_be_static: false,
    },
    Tool { name: "busybox", binary: "busybox", version_args: &[], package: "busybox-static", must_be_static: true },
    Tool {
        name: "nsenter",
        binary: "nsenter",
        version_args: &["--version"],
        package: "util-linux",
        must_be_static: false,
    },
    // Counts the UML kernel's host system calls (lab 07, src/container/uml_count.rs).
    Tool { name: "strace", binary: "strace", version_args: &["-V"], package: "strace", must_be_static: false },
    // The grader's sandbox (src/grade/sandbox.rs): Flatpak's, kept by Debian.
    Tool { name: "bwrap", binary: "bwrap", version_args: &["--version"], package: "bubblewrap", must_be_static: false },
    // The C compiler and the C library's headers (with the kernel's, <linux/kvm.h>,
    // which libc6-dev pulls in): labs where the student writes the system calls
    // (10-kvm's VMM) build their programs with `cc`.
    Tool { name: "cc", binary: "cc", version_args: &["--version"], package: "gcc", must_be_static: false },
    Tool {
        name: "libc-dev",
        binary: "/usr/include/stdio.h",
        version_args: &[],
        package: "libc6-dev",
        must_be_static: false,
    },
    Tool {
        name: "unshare",
        binary: "unshare",
        version_args: &["--version"],
        package: "util-linux",
        must_be_static: false,
    },
];

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ToolInfo {
    pub(crate) present: bool,
    pub(crate) path: Option<PathBuf>,
    pub(crate) version: Option<String>,
    /// The Debian package that provides it; empty when installing a package
    /// would not help (the reason then says what does).
    pub(crate) package: String,
    /// Why it is not usable, when it is not.
    pub(crate) reason: Option<String>,
}

pub fn which(binary: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into());
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(binary))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// True if the ELF file has no PT_INTERP program header (no dynamic loader).
pub(crate) fn is_static_elf(p: &Path) -> bool {
    let Ok(data) = std::fs::read(p) else { return false };
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 {
        return false;
    }
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(data[0x20..0x28].try_into().unwrap_or_default()) as usize;
    let (size, count) = (u16_at(0x36), u16_at(0x38));
    (0..count).all(|i| {
        let at = phoff + i * size;
        data.get(at..at + 4).is_some_and(|t| u32::from_le_bytes(t.try_into().unwrap_or_default()) != 3)
    })
}

fn inspect(tool: &Tool) -> ToolInfo {
    let file = tool.binary.starts_with('/');
    let mut info = ToolInfo {
        present: false,
        path: if file { Some(PathBuf::from(tool.binary)).filter(|p| p.is_file()) } else { which(tool.binary) },
        version: None,
        package: tool.package.into(),
        reason: None,
    };
    let Some(path) = info.path.clone() else {
        info.reason = Some(format!("{} not found; install the Debian package {}", tool.binary, tool.package));
        return info;
    };
    if file {
        // A header has no version to ask for: being there is all.
        info.present = true;
        return info;
    }
    if tool.must_be_static && !is_static_elf(&path) {
        info.reason = Some(format!(
            "{} is dynamically linked; install {} for a static one that runs in any root",
            path.display(),
            tool.package
        ));
        return info;
    }
    let out = Cmd::new(&path).args(tool.version_args).timeout(Duration::from_secs(3)).run();
    info.version = out.ok().and_then(|o| {
        let text = if o.stdout.trim().is_empty() { o.stderr } else { o.stdout };
        text.lines().find(|l| !l.trim().is_empty()).map(|l| l.trim().to_string())
    });
    info.present = true;
    info
}

/// Inspects every tool in parallel (doctor has a 200 ms budget).
pub(crate) fn inspect_all() -> BTreeMap<String, ToolInfo> {
    std::thread::scope(|s| {
        let handles: Vec<_> = TOOLS.iter().map(|t| (t.name, s.spawn(move || inspect(t)))).collect();
        handles.into_iter().map(|(n, h)| (n.to_string(), h.join().expect("tool inspection panicked"))).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_detection_reads_program_headers() {
        // /bin/sh on Debian is dynamically linked (dash).
        assert!(!is_static_elf(Path::new("/bin/sh")));
        assert!(!is_static_elf(Path::new("/etc/hostname")));
    }

    #[test]
    fn a_missing_file_names_its_package() {
        let tool = Tool {
            name: "x",
            binary: "/nonexistent/vlab.h",
            version_args: &[],
            package: "libvlab-dev",
            must_be_static: false,
        };
        let info = inspect(&tool);
        assert!(!info.present && info.package == "libvlab-dev", "{info:?}");
        let cc = TOOLS.iter().find(|t| t.name == "libc-dev").unwrap();
        assert_eq!(inspect(cc).present, Path::new("/usr/include/stdio.h").is_file());
    }

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("vlab-no-such-tool").is_none());
    }
}
