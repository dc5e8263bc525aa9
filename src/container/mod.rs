//! The container tiers' machinery, shared by the check engine and the labs:
//! mount tables (`mountinfo`), what the host can see of a contained process
//! (`process`), cgroup groups the runner owns and removes (`cgroup`), and the
//! OCI runtime's leftovers (`runc`).

pub mod cgroup;
pub mod mountinfo;
pub mod process;
pub mod runc;
