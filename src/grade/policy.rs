//! Course policy for grading: late penalties and hidden steps.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Unix seconds; a submission whose bundle file is newer is late.
    pub(crate) deadline: Option<u64>,
    /// Percent of the score taken per started day late.
    #[serde(default)]
    pub(crate) late_penalty_percent_per_day: f64,
    /// The most a late submission can lose, in percent.
    #[serde(default = "hundred")]
    pub(crate) max_late_penalty_percent: f64,
    /// `lab/step` ids counted for the grade but not shown to students until released.
    #[serde(default)]
    pub(crate) hidden_steps: Vec<String>,
    #[serde(default)]
    pub(crate) release_hidden: bool,
}

fn hundred() -> f64 {
    100.0
}

impl Policy {
    pub(crate) fn load(path: &Path) -> anyhow::Result<Policy> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the policy file {}", path.display()))?;
        toml::from_str(&text).map_err(|e| {
            let line = e.span().map(|s| text[..s.start].lines().count().max(1)).unwrap_or(0);
            anyhow::anyhow!("{}:{line}: {}", path.display(), e.message().trim())
        })
    }

    /// (days late, penalty percent) for a submission made at `submitted_at`.
    pub(crate) fn lateness(&self, submitted_at: u64) -> (u64, f64) {
        match self.deadline {
            Some(deadline) if submitted_at > deadline => {
                let days = (submitted_at - deadline).div_ceil(86_400);
                (days, (days as f64 * self.late_penalty_percent_per_day).min(self.max_late_penalty_percent))
            }
            _ => (0, 0.0),
        }
    }

    /// Is this step's feedback withheld from the student?
    pub(crate) fn hidden(&self, lab: &str, step: &str) -> bool {
        !self.release_hidden && self.hidden_steps.iter().any(|h| h == &format!("{lab}/{step}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_days_start_counting_after_the_deadline_and_cap() {
        let p = Policy {
            deadline: Some(1000),
            late_penalty_percent_per_day: 30.0,
            max_late_penalty_percent: 50.0,
            ..Default::default()
        };
        assert_eq!(p.lateness(1000), (0, 0.0));
        assert_eq!(p.lateness(1001), (1, 30.0));
        assert_eq!(p.lateness(1000 + 3 * 86_400), (3, 50.0));
    }

    #[test]
    fn hidden_until_released() {
        let mut p = Policy { hidden_steps: vec!["01-x/a".into()], ..Default::default() };
        assert!(p.hidden("01-x", "a") && !p.hidden("01-x", "b"));
        p.release_hidden = true;
        assert!(!p.hidden("01-x", "a"));
    }
}
