//! The live lab status the served book shows: every lab and step of the
//! catalog with its last check result from the student's workspace state.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use super::quiz::{QuizScore, Quizzes};
use crate::catalog::Catalog;
use crate::check::Outcome;
use crate::state::State;
use crate::workspace::Workspace;

#[derive(Debug, Serialize)]
pub(crate) struct LiveStatus {
    /// Bumped on every rebuild of the book: a page that saw another value reloads.
    pub(crate) generation: u64,
    /// Why the last rebuild failed (the previous build is still served).
    pub(crate) build_error: Option<String>,
    /// Why the status could not be read (a broken lab.toml or state file).
    pub(crate) error: Option<String>,
    pub(crate) workspace: PathBuf,
    pub(crate) labs: BTreeMap<String, LabStatus>,
    /// Chapter (file stem) → the reader's quiz score.
    pub(crate) quizzes: BTreeMap<String, QuizScore>,
}

#[derive(Debug, Serialize)]
pub(crate) struct LabStatus {
    pub(crate) title: String,
    pub(crate) started: bool,
    pub(crate) dir: PathBuf,
    /// Seconds since the Unix epoch of the last `vlab check`.
    pub(crate) last_checked: Option<u64>,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
    /// In the lab's order.
    pub(crate) steps: Vec<StepStatus>,
}

#[derive(Debug, Serialize)]
pub(crate) struct StepStatus {
    pub(crate) id: String,
    pub(crate) title: String,
    /// None until the step has been checked.
    pub(crate) outcome: Option<Outcome>,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
    pub(crate) message: String,
}

impl LiveStatus {
    pub(crate) fn gather(
        cat: &Catalog,
        quizzes: &Quizzes,
        ws: &Workspace,
        generation: u64,
        build_error: Option<String>,
    ) -> LiveStatus {
        let mut out = LiveStatus {
            generation,
            build_error,
            error: None,
            workspace: ws.root.clone(),
            labs: BTreeMap::new(),
            quizzes: BTreeMap::new(),
        };
        let state = match State::load(&ws.meta_dir()) {
            Ok(s) => s,
            Err(e) => {
                out.error = Some(format!("{e:#}"));
                State::default()
            }
        };
        out.quizzes = quizzes.scores(&state);
        for lab in &cat.labs {
            let ls = state.labs.get(&lab.id);
            let steps: Vec<StepStatus> = lab
                .steps
                .iter()
                .map(|s| {
                    let st = ls.and_then(|l| l.steps.get(&s.id));
                    StepStatus {
                        id: s.id.clone(),
                        title: s.title.clone(),
                        outcome: st.map(|x| x.outcome),
                        points: st.map(|x| x.points).unwrap_or(0),
                        max_points: s.points,
                        message: st.map(|x| x.message.clone()).unwrap_or_default(),
                    }
                })
                .collect();
            out.labs.insert(
                lab.id.clone(),
                LabStatus {
                    title: lab.title.clone(),
                    started: ws.is_started(lab),
                    dir: ws.lab_dir(lab),
                    last_checked: ls.and_then(|l| l.last_checked),
                    points: steps.iter().map(|s| s.points).sum(),
                    max_points: steps.iter().map(|s| s.max_points).sum(),
                    steps,
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Lab;
    use crate::state::{LabState, StepState};

    const LAB: &str = r#"
id = "01-x"
title = "X"
tier = "bare-metal"
chapter = "x.md"
summary = "s"
estimate_minutes = 1
[[steps]]
id = "b"
title = "First in the lab"
points = 1
instructions = "i"
hints = []
files = []
[[steps.checks]]
kind = "run"
command = ["true"]
[[steps]]
id = "a"
title = "Second"
points = 2
instructions = "i"
hints = []
files = []
[[steps.checks]]
kind = "run"
command = ["true"]
"#;

    #[test]
    fn status_follows_the_state_in_lab_order() {
        let lab: Lab = toml::from_str(LAB).unwrap();
        let cat = Catalog { root: PathBuf::from("labs"), labs: vec![lab] };
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace { root: dir.path().to_path_buf() };

        let st = LiveStatus::gather(&cat, &Quizzes::default(), &ws, 3, None);
        let lab = &st.labs["01-x"];
        assert_eq!((st.generation, lab.started, lab.last_checked, lab.max_points), (3, false, None, 3));
        assert!(lab.steps.iter().all(|s| s.outcome.is_none()));

        std::fs::create_dir(dir.path().join("01-x")).unwrap();
        let mut state = State::default();
        let step = StepState { outcome: Outcome::Pass, points: 2, max_points: 2, message: String::new() };
        let ls = LabState { last_checked: Some(7), steps: [("a".to_string(), step)].into(), ..Default::default() };
        state.labs.insert("01-x".into(), ls);
        state.save(&ws.meta_dir()).unwrap();

        let st = LiveStatus::gather(&cat, &Quizzes::default(), &ws, 4, None);
        let lab = &st.labs["01-x"];
        assert_eq!((lab.started, lab.last_checked, lab.points), (true, Some(7), 2));
        let ids: Vec<(&str, Option<Outcome>)> = lab.steps.iter().map(|s| (s.id.as_str(), s.outcome)).collect();
        assert_eq!(ids, [("b", None), ("a", Some(Outcome::Pass))]);

        std::fs::write(State::path(&ws.meta_dir()), "{broken").unwrap();
        assert!(LiveStatus::gather(&cat, &Quizzes::default(), &ws, 5, None).error.unwrap().contains("damaged"));
    }
}
