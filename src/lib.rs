//! vlab: the lab runner behind the book "vlab: Virtualization, tier by tier".
//!
//! Modules, one job each, listed below. The `pub` ones are what the binary
//! (src/main.rs), the integration tests and the benches use; everything else is
//! `pub(crate)`. ARCHITECTURE.md describes the layers.

/// What each command does: glue between the CLI, the library and the reporters.
pub mod app;
/// The book: mdBook pages generated from the labs, built, and served with live lab status.
pub mod book;
/// The lab catalog: lab.toml files under labs/, loaded and validated.
pub mod catalog;
/// cgroups at the bottom: mode detection, groups with limits, the runner's per-child groups, kill and remove.
pub(crate) mod cgroup;
/// The check engine: runs a step's checks and returns structured results, with facts and evidence.
pub mod check;
/// Scratch directories, removed on drop and on Ctrl-C.
pub(crate) mod cleanup;
/// Command-line types (clap derive) only.
pub mod cli;
/// The reader's comparison of every tier, from the measurements the labs recorded.
pub(crate) mod compare;
/// The container tiers: mount tables, cgroups, namespaced processes, runc, UML, escape probes.
pub mod container;
/// The bottom layer: facts, the nonce, outcomes and check results, importing nothing of vlab.
pub mod evidence;
/// Files on disk: content hashes, all-or-nothing writes, bounded reads of student-writable files.
pub mod files;
/// Instructor grading: re-run the canonical checks on each submission in a sandbox, and export.
pub mod grade;
/// Full-system guests: cached assets, initramfs, the QEMU launcher, QMP, boot reports, emulation, Xen.
pub mod guest;
/// `vlab doctor`: what this machine can really do, measured, with reasons.
pub mod host;
/// A tiny VMM on /dev/kvm, which `vlab doctor` times to tell fast KVM from slow, and `vlab kvm`.
pub(crate) mod kvm;
/// What the runner builds into a lab's workspace (lab.toml `prepare`).
pub mod prepare;
/// The one way vlab runs a child process: deadline, process group, cgroup, kill on drop.
pub mod proc;
/// Processes as /proc shows them (parent, group, state), and SIGKILL that takes "already gone" for done.
pub(crate) mod procfs;
/// Results rendered for people (terminal text, chart); `--json` prints the models.
pub(crate) mod report;
/// `vlab setup`: install the host packages the labs need from the distribution.
pub(crate) mod setup;
/// Progress that outlives one command, stored as JSON in the workspace.
pub(crate) mod state;
/// The one supervisor: Ctrl-C handler, child subreaper, and what must die when vlab is interrupted.
pub mod supervisor;
/// Visible skips for the unit tests.
#[cfg(test)]
mod testing;
/// The engine's registry: every observer, each implemented by its tier, handed to the check engine.
pub mod tiers;
/// `vlab watch`: re-run the checks whenever a file in the lab's workspace changes.
pub(crate) mod watch;
/// The student's workspace: one directory per started lab, copied from its starter.
pub mod workspace;
