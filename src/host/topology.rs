//! The CPU topology as the kernel exports it under
//! /sys/devices/system/cpu/cpuN/topology (Documentation/admin-guide/cputopology.rst):
//! which package and core a logical CPU belongs to, and which logical CPUs
//! are SMT siblings (hyperthreads) of one core, sharing its execution units
//! and caches. Partitioning by CPU number is only hardware isolation when the
//! slices' CPUs are not siblings.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Where the kernel exports the CPUs.
const SYSFS_CPU: &str = "/sys/devices/system/cpu";

/// One logical CPU's place in the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cpu {
    pub(crate) package: i64,
    pub(crate) core: i64,
    /// `thread_siblings_list`: the logical CPUs of this one's core, itself included.
    pub(crate) siblings: BTreeSet<u32>,
}

/// Reads the topology of logical CPUs under a sysfs CPU directory (a test passes its own).
pub(crate) struct Topology {
    root: PathBuf,
}

impl Topology {
    pub(crate) fn host() -> Topology {
        Topology { root: PathBuf::from(SYSFS_CPU) }
    }

    #[cfg(test)]
    fn at(root: &Path) -> Topology {
        Topology { root: root.to_path_buf() }
    }

    fn read(&self, rel: impl AsRef<Path>) -> Option<String> {
        std::fs::read_to_string(self.root.join(rel)).ok().map(|s| s.trim().to_string())
    }

    /// The online CPUs (`online`, a list such as `0-3,6`).
    pub(crate) fn online(&self) -> BTreeSet<u32> {
        self.read("online").map(|l| parse_list(&l)).unwrap_or_default()
    }

    pub(crate) fn cpu(&self, n: u32) -> Option<Cpu> {
        let dir = PathBuf::from(format!("cpu{n}/topology"));
        let num = |f: &str| self.read(dir.join(f)).and_then(|v| v.parse::<i64>().ok());
        let siblings = parse_list(&self.read(dir.join("thread_siblings_list"))?);
        Some(Cpu { package: num("physical_package_id").unwrap_or(-1), core: num("core_id")?, siblings })
    }

    /// Whether logical CPUs `a` and `b` are hyperthreads of one core; None when
    /// the kernel exports no topology for them.
    pub(crate) fn smt_siblings(&self, a: u32, b: u32) -> Option<bool> {
        let (ca, cb) = (self.cpu(a)?, self.cpu(b)?);
        Some(a != b && (ca.siblings.contains(&b) || cb.siblings.contains(&a)))
    }
}

/// A kernel CPU list (`0-3,6`); what does not parse is left out.
pub(crate) fn parse_list(list: &str) -> BTreeSet<u32> {
    let mut set = BTreeSet::new();
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<u32>(), hi.trim().parse::<u32>()) {
            set.extend(lo..=hi.min(lo.saturating_add(4096)));
        }
    }
    set
}

/// Why this host cannot be cut into two one-CPU slices, or None.
pub(crate) fn lacks_two_cpus() -> Option<String> {
    let online = Topology::host().online();
    let n = if online.is_empty() { std::thread::available_parallelism().map_or(1, usize::from) } else { online.len() };
    (n < 2).then(|| {
        format!("this machine has {n} online CPU; two slices of one CPU each need two (a VM can be given more)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu(root: &Path, n: u32, package: i64, core: i64, siblings: &str) {
        let dir = root.join(format!("cpu{n}/topology"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("physical_package_id"), format!("{package}\n")).unwrap();
        std::fs::write(dir.join("core_id"), format!("{core}\n")).unwrap();
        std::fs::write(dir.join("thread_siblings_list"), format!("{siblings}\n")).unwrap();
    }

    #[test]
    fn hyperthreads_of_one_core_are_siblings_and_separate_cores_are_not() {
        let dir = tempfile::tempdir().unwrap();
        // A laptop's numbering: CPUs 0 and 4 share core 0; 1 and 5 share core 1.
        cpu(dir.path(), 0, 0, 0, "0,4");
        cpu(dir.path(), 1, 0, 1, "1,5");
        cpu(dir.path(), 4, 0, 0, "0,4");
        std::fs::write(dir.path().join("online"), "0-1,4\n").unwrap();
        let t = Topology::at(dir.path());
        assert_eq!(t.smt_siblings(0, 4), Some(true));
        assert_eq!(t.smt_siblings(0, 1), Some(false));
        assert_eq!(t.smt_siblings(0, 0), Some(false));
        assert_eq!(t.smt_siblings(0, 7), None);
        assert_eq!(t.online(), BTreeSet::from([0, 1, 4]));
        assert_eq!(parse_list("0-2,5,x"), BTreeSet::from([0, 1, 2, 5]));
        assert_eq!(t.cpu(1).unwrap(), Cpu { package: 0, core: 1, siblings: BTreeSet::from([1, 5]) });
    }

    #[test]
    fn this_hosts_first_two_cpus_have_a_topology_when_it_has_two() {
        let t = Topology::host();
        if t.online().len() < 2 {
            crate::testing::skip("this machine has fewer than two online CPUs");
            return;
        }
        assert!(t.smt_siblings(0, 1).is_some(), "no topology for CPUs 0 and 1 under {SYSFS_CPU}");
        assert!(lacks_two_cpus().is_none());
    }
}
