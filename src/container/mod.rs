//! The container tiers' machinery, shared by the check engine and the labs:
//! mount tables (`mountinfo`), what the host can see of a contained process
//! (`process`), the ways out of a container the runner tries (`escape`),
//! cgroup groups the runner owns and removes (`cgroup`), the OCI runtime's
//! leftovers (`runc`), a contained process's user-namespace maps and parent
//! program (`userns`) and seccomp filters (`seccomp`), and the root a
//! User-Mode-Linux kernel boots from (`uml`): the same busybox root, with the
//! runner's init. `observe` holds the tier's observers for the check engine.

pub mod cgroup;
pub(crate) mod escape;
pub(crate) mod mountinfo;
pub(crate) mod observe;
pub(crate) mod partition;
pub(crate) mod process;
pub(crate) mod runc;
pub(crate) mod seccomp;
pub(crate) mod uml;
pub(crate) mod uml_count;
pub(crate) mod userns;
