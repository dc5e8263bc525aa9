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
    /// Chapter (file stem) → question id → the last answer given in the book.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) quizzes: BTreeMap<String, BTreeMap<String, QuizAnswer>>,
}

/// A quiz answer as `vlab serve` graded it.
/// The question a quiz answer belongs to, as the state keeps it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Asked<'a> {
    pub(crate) id: &'a str,
    pub(crate) prompt: &'a str,
    /// The lab whose "explain" question this is: its answer goes to the grader too.
    pub(crate) explain_for: Option<&'a str>,
}

/// A chapter's quiz score, as `vlab status` and the book's sidebar show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub(crate) struct QuizScore {
    pub(crate) questions: usize,
    pub(crate) answered: usize,
    pub(crate) correct: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct QuizAnswer {
    pub(crate) correct: bool,
    /// The options picked, or the text given (bounded by the server).
    pub(crate) answer: String,
    pub(crate) attempts: u32,
    /// Seconds since the Unix epoch.
    pub(crate) answered_at: u64,
}

/// A lab's "explain" question answered in the book: kept with the lab's
/// progress so that `vlab submit` carries it to the instructor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainAnswer {
    pub(crate) question: String,
    pub(crate) answer: String,
    /// Whether the lab's keywords were all found: a hint for the instructor, not a grade.
    pub(crate) keywords_found: bool,
    pub(crate) answered_at: u64,
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
    /// Question id → the student's answer to the lab's explain question.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) explain: BTreeMap<String, ExplainAnswer>,
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

    /// Records a graded quiz answer (the latest answer counts); an explain
    /// question of a lab is kept with that lab too.
    pub(crate) fn record_quiz(&mut self, chapter: &str, q: Asked, answer: String, correct: bool, now: u64) {
        let slot = self.quizzes.entry(chapter.to_string()).or_default();
        let attempts = slot.get(q.id).map_or(0, |a| a.attempts).saturating_add(1);
        if let Some(lab) = q.explain_for {
            let explain = ExplainAnswer {
                question: q.prompt.to_string(),
                answer: answer.clone(),
                keywords_found: correct,
                answered_at: now,
            };
            self.labs.entry(lab.to_string()).or_default().explain.insert(q.id.to_string(), explain);
        }
        slot.insert(q.id.to_string(), QuizAnswer { correct, answer, attempts, answered_at: now });
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
    fn quiz_answers_count_attempts_and_explanations_stay_with_their_lab() {
        let q = |id: &'static str, explain_for: Option<&'static str>| Asked { id, prompt: "Why?", explain_for };
        let mut s = State::default();
        s.record_quiz("uml", q("a", None), "one".into(), false, 1);
        s.record_quiz("uml", q("a", None), "two".into(), true, 2);
        let a = &s.quizzes["uml"]["a"];
        assert_eq!((a.correct, a.answer.as_str(), a.attempts, a.answered_at), (true, "two", 2, 2));
        assert!(s.labs.is_empty(), "a plain question belongs to no lab");
        s.record_quiz("paravirtualization", q("e", Some("08-xen")), "x because".into(), true, 3);
        let e = &s.labs["08-xen"].explain["e"];
        assert_eq!((e.question.as_str(), e.answer.as_str(), e.keywords_found), ("Why?", "x because", true));
        // Older state files (no quizzes, no explain) still load.
        let old: State = serde_json::from_str(r#"{"labs":{"l":{"last_checked":null}}}"#).unwrap();
        assert!(old.quizzes.is_empty() && old.labs["l"].explain.is_empty());
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
