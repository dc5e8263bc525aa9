//! The engine's registry: every observer the check engine knows, each
//! implemented by its tier. The engine (check/) names no tier; the command
//! layer builds this list and hands it in. A new check kind is one more
//! line here and its observer in its tier's folder (ARCHITECTURE.md).

use std::path::Path;

use crate::catalog::{Capability, NoSuchStep};
use crate::check::{self, LabReport, Registry};
use crate::{container, guest, host};

/// What the boot observer reads on a guest's console beside the probe's report.
const CONSOLE_READERS: &[&dyn guest::boot::ConsoleReader] = &[&guest::xen::console::XenConsole];

/// Every observer, in the order the engine arms and finishes them: the
/// check kinds first, then what watches around every check.
pub(crate) fn registry() -> Registry {
    Registry::new(vec![
        // Check kinds: `kind = "…"` in lab.toml.
        Box::new(check::run::RunToCompletion),
        Box::new(container::observe::Probe),
        Box::new(guest::boot::ConsoleReport::reading(CONSOLE_READERS)),
        Box::new(guest::memory::VmMemory),
        // Around every check that asks for them.
        Box::new(container::observe::RuncState),
        Box::new(container::observe::Cgroups),
        Box::new(container::observe::UmlOnPath),
        Box::new(check::sink::NetworkSink),
    ])
}

impl check::Host for host::Capabilities {
    fn missing(&self, needs: &[Capability]) -> Vec<String> {
        host::Capabilities::missing(self, needs)
    }

    fn lacks(&self, need: Capability) -> bool {
        host::Capabilities::lacks(self, need).is_some()
    }
}

/// Checks `lab` in `workspace` with every observer: `vlab check`, the grader, the benches.
pub fn check_lab(
    lab: &crate::catalog::Lab,
    workspace: &Path,
    caps: &host::Capabilities,
    only_step: Option<&str>,
) -> Result<LabReport, NoSuchStep> {
    check::check_lab(lab, workspace, caps, only_step, &registry())
}
