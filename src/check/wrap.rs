//! Observers that are vlab commands wrapping the student's command (`vlab
//! emu translate -- CMD`, `vlab kvm verdict -- CMD`): they run it under the
//! one process runner, pass its output through, then write what the runner
//! itself saw to $VLAB_RESULTS as `observed_*` lines (any the student wrote
//! are dropped), for lab.toml rules to compare with the student's answers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::proc::{self, Cmd, ProcError};

#[derive(Debug, thiserror::Error)]
pub(crate) enum WrapError {
    #[error(transparent)]
    Proc(#[from] ProcError),
    #[error("$VLAB_RESULTS: {0:#}")]
    Results(anyhow::Error),
    #[error("the command did not finish within {0}s and was stopped")]
    TimedOut(u64),
}

/// How long the student's command may run inside the observer.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(150);

/// The check's environment: nonce, results file, scratch directory.
pub(crate) struct CheckEnv {
    pub(crate) nonce: String,
    pub(crate) results: PathBuf,
    pub(crate) scratch: PathBuf,
}

/// The check's environment as the engine set it (or defaults for a run by hand).
pub(crate) fn check_env() -> CheckEnv {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let nonce = var("VLAB_NONCE").unwrap_or_else(crate::evidence::fresh_nonce);
    let results = var("VLAB_RESULTS").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("results.txt"));
    let scratch = var("VLAB_SCRATCH").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    CheckEnv { nonce, results, scratch }
}

/// Keeps the student's results except `observed_*` lines, then appends the
/// runner's; only into a regular file (never a FIFO or a link someone serves).
pub(crate) fn write_observed(results: &Path, observed: &BTreeMap<String, String>) -> Result<(), WrapError> {
    crate::files::rewrite_regular(results, |old| {
        let mut text: String =
            old.lines().filter(|l| !l.trim_start().starts_with("observed_")).map(|l| format!("{l}\n")).collect();
        for (k, v) in observed {
            text.push_str(&format!("observed_{k}={v}\n"));
        }
        text
    })
    .map_err(WrapError::Results)
}

/// Starts the student's command with `env` added, under the observer's deadline.
pub(crate) fn run_student(command: &[String], env: &[(&str, String)]) -> Result<proc::Child, WrapError> {
    let mut cmd = Cmd::from_argv(command).timeout(COMMAND_TIMEOUT);
    for (k, v) in env {
        cmd = cmd.env(k, v);
    }
    Ok(cmd.spawn()?)
}

/// Waits for `child`, passing its output through; returns its exit code.
pub(crate) fn finish(child: proc::Child) -> Result<i32, WrapError> {
    let ended = child.wait_until(Instant::now() + COMMAND_TIMEOUT)?;
    let (stdout, _) = child.read_stdout(64 * 1024);
    let (stderr, _) = child.read_stderr(64 * 1024);
    print!("{stdout}");
    eprint!("{stderr}");
    let timed_out = ended.is_none();
    child.stop()?;
    if timed_out {
        return Err(WrapError::TimedOut(COMMAND_TIMEOUT.as_secs()));
    }
    Ok(ended.and_then(|e| e.code).unwrap_or(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_lines_replace_the_students() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r");
        std::fs::write(&results, "nonce=1\nobserved_x=forged\nmine=2\n").unwrap();
        write_observed(&results, &BTreeMap::from([("x".to_string(), "real".to_string())])).unwrap();
        assert_eq!(std::fs::read_to_string(&results).unwrap(), "nonce=1\nmine=2\nobserved_x=real\n");
    }
}
