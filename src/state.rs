//! Progress that outlives one command: hints revealed, last results,
//! measurements recorded for the comparison. Stored as JSON in the workspace,
//! written atomically (temp file + rename) so a crash never leaves half a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::check::{LabReport, Outcome};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    #[serde(default)]
    pub(crate) labs: BTreeMap<String, LabState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LabState {
    /// Step id → how many hints have been revealed.
    #[serde(default)]
    pub(crate) hints: BTreeMap<String, usize>,
    /// Step id → last outcome and points.
    #[serde(default)]
    pub(crate) steps: BTreeMap<String, StepState>,
    /// `<step>.<fact>` → value, from passing checks that record it (keyed by
    /// step, since two steps may measure the same thing under different setups).
    #[serde(default)]
    pub(crate) measurements: BTreeMap<String, String>,
    pub(crate) last_checked: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StepState {
    pub(crate) outcome: Outcome,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
    pub(crate) message: String,
}

impl State {
    pub(crate) fn path(meta_dir: &Path) -> PathBuf {
        meta_dir.join("state.json")
    }

    pub(crate) fn load(meta_dir: &Path) -> anyhow::Result<State> {
        let path = Self::path(meta_dir);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is damaged; move it away to start progress afresh (your lab files are not affected)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    pub(crate) fn save(&self, meta_dir: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_vec_pretty(self)?;
        crate::files::write_atomic(&Self::path(meta_dir), &json).context("cannot save progress")
    }

    pub(crate) fn record(&mut self, report: &LabReport) {
        let lab = self.labs.entry(report.lab.clone()).or_default();
        lab.last_checked = Some(report.checked_at);
        for step in &report.steps {
            lab.steps.insert(
                step.step.clone(),
                StepState {
                    outcome: step.outcome,
                    points: step.points,
                    max_points: step.max_points,
                    message: step.message.clone(),
                },
            );
            for check in &step.checks {
                lab.measurements.extend(check.recorded.iter().map(|(k, v)| (format!("{}.{k}", step.step), v.clone())));
            }
        }
    }

    /// Reveals one more hint for a step (up to `available`); returns how many are shown.
    pub(crate) fn reveal_hint(&mut self, lab: &str, step: &str, available: usize) -> usize {
        let shown = self.labs.entry(lab.to_string()).or_default().hints.entry(step.to_string()).or_insert(0);
        *shown = (*shown + 1).min(available);
        *shown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_climb_the_ladder_and_stop_at_the_top() {
        let mut s = State::default();
        assert_eq!(s.reveal_hint("l", "a", 2), 1);
        assert_eq!(s.reveal_hint("l", "a", 2), 2);
        assert_eq!(s.reveal_hint("l", "a", 2), 2);
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = State::default();
        s.reveal_hint("l", "a", 3);
        s.save(dir.path()).unwrap();
        assert_eq!(State::load(dir.path()).unwrap().labs["l"].hints["a"], 1);
        std::fs::write(State::path(dir.path()), "{broken").unwrap();
        let err = State::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
