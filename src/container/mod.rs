//! The container tiers' machinery, shared by the check engine and the labs:
//! mount tables (`mountinfo`), what the host can see of a contained process
//! (`process`), cgroup groups the runner owns and removes (`cgroup`), and the
//! OCI runtime's leftovers (`runc`), and the root a User-Mode-Linux kernel
//! boots from (`uml`): the same busybox root, with the runner's init.

pub mod cgroup;
pub mod mountinfo;
pub mod process;
pub mod runc;
pub mod uml;
