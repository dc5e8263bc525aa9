//! The one trait every kind of observation implements, and the registry the
//! engine iterates. The engine names no tier: the command layer builds the
//! registry (src/tiers.rs) and hands it in.
//!
//! A check's life, as the engine drives it: every observer is armed (those
//! the check does not ask for decline); the student's command gets the
//! environment each armed watch adds; the observer whose `kind` the check
//! names runs the command and says what it saw; then every other watch
//! reports its facts and cleans up.

use std::ffi::OsString;
use std::path::Path;

use crate::catalog::{Check, InvalidCheck, Kinds};
use crate::evidence::Facts;
use crate::proc::{Cmd, ProcError};

/// File name of the probe the runner places for a check (`$VLAB_PROBE`).
pub(crate) const PROBE_NAME: &str = "vlab-probe";

/// What an observer knows of the check it watches.
pub(crate) struct Ctx<'a> {
    pub(crate) check: &'a Check,
    pub(crate) workspace: &'a Path,
    pub(crate) nonce: &'a str,
    /// The check's own scratch directory, removed after it.
    pub(crate) scratch: &'a Path,
    /// The command as the student would type it, for messages.
    pub(crate) shown: &'a str,
}

/// Why the runner could not run a check (Outcome::Error): not a verdict on the student's work.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("cannot {what}: {source}")]
    Io { what: String, source: std::io::Error },
    #[error("cannot {what}: {source:#}")]
    Setup { what: String, source: anyhow::Error },
    #[error("no observer runs checks of kind \"{0}\"; the known kinds are: {1}")]
    UnknownKind(String, String),
    #[error("the observer of kind \"{0}\" declined to run this check")]
    Declined(String),
    #[error("the runner's {0} observer was asked to run a command, which it does not do")]
    NotARunner(&'static str),
    #[error("the runner's {0} observer was asked to run its command twice")]
    RanTwice(&'static str),
}

impl CheckError {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CheckError {
        let what = what.into();
        move |source| CheckError::Io { what, source }
    }
}

/// What the observer that ran the command saw.
pub(crate) struct Ran {
    pub(crate) facts: Facts,
    /// What the command printed: stdout (a guest's console) and stderr.
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    /// Why the check already fails, whatever the rules say (the command
    /// timed out, the probe never started, the report is stale).
    pub(crate) failed: Option<String>,
}

impl Ran {
    pub(crate) fn new(facts: Facts, stdout: String, stderr: String) -> Self {
        Ran { facts, stdout, stderr, failed: None }
    }

    /// Fails the check with `msg`.
    pub(crate) fn fail(mut self, msg: impl Into<String>) -> Self {
        self.failed = Some(msg.into());
        self
    }

    /// Fails the check with `msg` and the last lines the command printed.
    pub(crate) fn fail_showing_output(self, msg: impl Into<String>) -> Self {
        let msg = with_output(msg.into(), &self.stdout, &self.stderr);
        self.fail(msg)
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `msg` followed by the last lines of the command's stderr and stdout.
pub(crate) fn with_output(mut msg: String, stdout: &str, stderr: &str) -> String {
    for (name, text) in [("stderr", stderr), ("stdout", stdout)] {
        if !text.trim().is_empty() {
            msg.push_str(&format!("\n  last lines of {name}:\n    {}", tail(text, 6).replace('\n', "\n    ")));
        }
    }
    msg
}

/// One kind of observation: a run to completion, a probe process, a cgroup's
/// counters, a guest's console, the network sink. It implements the
/// verifier's protections for what it watches (process identity from the
/// kernel, channels the student's command cannot read).
pub(crate) trait Observer: Sync {
    /// The `kind = "…"` that names this observer in lab.toml when it runs the
    /// check's command itself; None for one that watches around every check
    /// that asks for it.
    fn kind(&self) -> Option<&'static str> {
        None
    }

    /// What a check of this kind does with its command, as the book says it:
    /// "The runner {describe} `command` in your workspace".
    fn describe(&self) -> &'static str {
        "runs"
    }

    /// Load-time checks of a check this observer runs (fields only it reads).
    fn validate(&self, _check: &Check) -> Result<(), InvalidCheck> {
        Ok(())
    }

    /// Prepares to watch the check before its command starts; None when the
    /// check does not ask for this observer.
    fn arm(&self, ctx: &Ctx) -> Result<Option<Box<dyn Watch>>, CheckError>;
}

/// One observer armed for one check. Dropping it releases what it holds.
pub(crate) trait Watch {
    /// Variables the student's command gets (later watches override earlier ones).
    fn env(&self) -> Vec<(String, OsString)> {
        Vec::new()
    }

    /// The command is about to start.
    fn started(&mut self) {}

    /// Runs the command to its end: asked only of the watch whose observer
    /// has the check's `kind`.
    fn run(&mut self, _cmd: &Cmd, _ctx: &Ctx) -> Result<Ran, CheckError> {
        Err(CheckError::NotARunner(std::any::type_name::<Self>()))
    }

    /// The command has ended: what this watch saw. Asked of every watch but the kind's.
    fn finish(&mut self) -> Result<Facts, CheckError> {
        Ok(Facts::new())
    }
}

/// Every observer the engine knows, in the order they are armed and finished.
pub(crate) struct Registry {
    observers: Vec<Box<dyn Observer>>,
}

impl Registry {
    pub(crate) fn new(observers: Vec<Box<dyn Observer>>) -> Self {
        Registry { observers }
    }

    /// The observer that runs checks of `kind`.
    pub(crate) fn runner(&self, kind: &str) -> Result<&dyn Observer, CheckError> {
        self.observers
            .iter()
            .find(|o| o.kind() == Some(kind))
            .map(|o| o.as_ref())
            .ok_or_else(|| CheckError::UnknownKind(kind.into(), self.names().join(", ")))
    }

    /// The observers that watch around a command rather than run it.
    pub(crate) fn watchers(&self) -> impl Iterator<Item = &dyn Observer> {
        self.observers.iter().filter(|o| o.kind().is_none()).map(|o| o.as_ref())
    }

    fn names(&self) -> Vec<&'static str> {
        self.observers.iter().filter_map(|o| o.kind()).collect()
    }

    /// How the book says what a check of `kind` does.
    pub(crate) fn describe(&self, kind: &str) -> &'static str {
        self.runner(kind).map(|o| o.describe()).unwrap_or("runs")
    }
}

impl Kinds for Registry {
    fn validate(&self, check: &Check) -> Result<(), InvalidCheck> {
        match self.runner(&check.kind) {
            Ok(o) => o.validate(check),
            Err(_) => {
                let known: Vec<String> = self.names().iter().map(|n| format!("`{n}`")).collect();
                Err(InvalidCheck(format!("unknown check kind `{}`, expected one of {}", check.kind, known.join(", "))))
            }
        }
    }
}
