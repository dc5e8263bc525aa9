//! What `vlab doctor` says about cgroups: the mode, the controllers vlab may
//! write, and how the runner contains the children it starts. The facts
//! come from `crate::cgroup`; this only words them.

pub use crate::cgroup::CgroupInfo;

/// The cgroup mode and what may be written, with how the runner contains
/// the children it starts (said once, here, when it has to fall back).
pub fn detect() -> CgroupInfo {
    let mut info = crate::cgroup::detect();
    let contained = match crate::supervisor::run_base() {
        Ok(base) => base.describe(),
        Err(why) => format!(
            "no cgroup for children ({why}): a child that leaves its process group and scrubs VLAB_RUNNER_PID can outlive a check; run as root for cgroup containment"
        ),
    };
    info.reason = format!("{}; {contained}", info.reason);
    info
}

#[cfg(test)]
mod tests {
    #[test]
    fn detects_some_mode_with_a_reason() {
        let info = super::detect();
        assert!(info.reason.contains("; "), "{}", info.reason);
    }
}
