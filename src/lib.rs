//! vlab: the lab runner behind the book "vlab: Virtualization, tier by tier".
//!
//! Modules, one job each: `catalog` (lab.toml), `check` (the engine),
//! `proc` (the one process runner), `cleanup` (what dies on Ctrl-C),
//! `host` (doctor), `kvm` (a tiny VMM), `workspace` and `state` (the
//! student's files and progress), `report` (text output), `app` (commands).

pub mod app;
pub mod book;
pub mod catalog;
pub mod check;
pub mod cleanup;
pub mod cli;
pub mod compare;
pub mod container;
pub mod files;
pub mod grade;
pub mod guest;
pub mod host;
pub mod kvm;
pub mod prepare;
pub mod proc;
pub mod report;
pub mod setup;
pub mod state;
#[cfg(test)]
mod testing;
pub mod watch;
pub mod workspace;
