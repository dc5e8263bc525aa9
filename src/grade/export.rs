//! Grades out: gradebook CSV, Gradescope results.json, JUnit XML and
//! per-student Markdown feedback, all rebuilt from the per-submission results.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::SubmissionResult;
use super::policy::Policy;
use crate::catalog::Catalog;
use crate::check::Outcome;
use crate::files::write_atomic;

pub(crate) fn write_all(
    catalog: &Catalog,
    results: &[SubmissionResult],
    policy: &Policy,
    out: &Path,
) -> anyhow::Result<()> {
    write_atomic(&out.join("gradebook.csv"), gradebook(results)?.as_bytes())?;
    write_atomic(&out.join("junit.xml"), junit(results).as_bytes())?;
    for r in results {
        let gs = serde_json::to_vec_pretty(&gradescope(catalog, r, policy))?;
        write_atomic(&out.join("gradescope").join(&r.student).join("results.json"), &gs)?;
        write_atomic(&out.join("feedback").join(format!("{}.md", r.student)), feedback(catalog, r, policy).as_bytes())?;
    }
    Ok(())
}

/// Longest explanation shown from a bundle (the student's side bounds it too;
/// a bundle is hostile, so the grader bounds it again).
const MAX_EXPLAIN: usize = 2000;

/// The student's own text as a spreadsheet cell: bounded, and never read as
/// a formula (a cell starting with `=`, `+`, `-` or `@` would be).
fn text_cell(text: &str) -> String {
    let text: String = text.chars().take(MAX_EXPLAIN).collect();
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text }
}

/// Explain answers a bundle may bring per lab: the manifest is the student's,
/// and each one is a gradebook column.
const MAX_EXPLAIN_PER_LAB: usize = 8;

/// `(lab, question)` of every explain answer in the results, sorted: graded
/// labs only, question ids as quizzes have them, a few per lab.
fn explain_keys(results: &[SubmissionResult]) -> Vec<(String, String)> {
    let plausible =
        |q: &str| q.len() <= 64 && q.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    let mut keys: Vec<(String, String)> = results
        .iter()
        .flat_map(|r| {
            r.self_reported.iter().filter(|(lab, _)| r.labs.iter().any(|g| &g.lab == *lab)).flat_map(|(lab, s)| {
                s.explain.keys().filter(|q| plausible(q)).take(MAX_EXPLAIN_PER_LAB).map(|q| (lab.clone(), q.clone()))
            })
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// One row per student, one column per lab, then total, maximum, late
/// penalty and error, then the text of each lab's "explain" answer (from the
/// book's quizzes; the instructor judges it, it carries no points).
pub(crate) fn gradebook(results: &[SubmissionResult]) -> anyhow::Result<String> {
    let mut labs: Vec<String> = results.iter().flat_map(|r| r.labs.iter().map(|l| l.lab.clone())).collect();
    labs.sort();
    labs.dedup();
    let explain = explain_keys(results);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["student".to_string()];
    header.extend(labs.iter().cloned());
    header.extend(["total", "max", "late_penalty_percent", "error"].map(String::from));
    header.extend(explain.iter().map(|(lab, q)| format!("explain {lab}/{q}")));
    w.write_record(&header)?;
    for r in results {
        let mut row = vec![r.student.clone()];
        for lab in &labs {
            row.push(r.labs.iter().find(|l| &l.lab == lab).map(|l| l.points.to_string()).unwrap_or_default());
        }
        row.extend([
            r.score.to_string(),
            r.max_score.to_string(),
            r.penalty_percent.to_string(),
            r.error.clone().unwrap_or_default(),
        ]);
        for (lab, q) in &explain {
            let answer = r.self_reported.get(lab).and_then(|s| s.explain.get(q));
            row.push(answer.map(|a| text_cell(&a.answer)).unwrap_or_default());
        }
        w.write_record(&row)?;
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

/// Gradescope's autograder results format (score, tests with name, score,
/// max_score, output, visibility).
#[derive(Debug, Serialize)]
pub(crate) struct Gradescope {
    pub(crate) score: f64,
    pub(crate) output: String,
    pub(crate) visibility: &'static str,
    pub(crate) stdout_visibility: &'static str,
    pub(crate) tests: Vec<GradescopeTest>,
}

#[derive(Debug, Serialize)]
pub(crate) struct GradescopeTest {
    pub(crate) name: String,
    pub(crate) score: f64,
    pub(crate) max_score: f64,
    pub(crate) output: String,
    pub(crate) visibility: &'static str,
}

pub(crate) fn gradescope(catalog: &Catalog, r: &SubmissionResult, policy: &Policy) -> Gradescope {
    let mut tests = Vec::new();
    for lab in &r.labs {
        let Some(report) = &lab.report else {
            tests.push(GradescopeTest {
                name: lab.lab.clone(),
                score: 0.0,
                max_score: lab.max_points as f64,
                output: lab.error.clone().unwrap_or_default(),
                visibility: "visible",
            });
            continue;
        };
        for step in &report.steps {
            let hidden = policy.hidden(&lab.lab, &step.step);
            let output = if hidden {
                "hidden until the instructor releases it".to_string()
            } else {
                step_output(catalog, &lab.lab, step)
            };
            tests.push(GradescopeTest {
                name: format!("{}: {} — {}", lab.lab, step.step, step.title),
                score: step.points as f64,
                max_score: step.max_points as f64,
                output,
                visibility: if hidden { "after_published" } else { "visible" },
            });
        }
    }
    let mut output = format!("Graded by vlab {} with fresh checks in a sandbox.", env!("CARGO_PKG_VERSION"));
    if r.late_days > 0 {
        let _ = write!(output, " Late by {} day(s): −{}%.", r.late_days, r.penalty_percent);
    }
    if let Some(e) = &r.error {
        let _ = write!(output, " {e}");
    }
    Gradescope { score: r.score, output, visibility: "visible", stdout_visibility: "hidden", tests }
}

fn step_output(catalog: &Catalog, lab: &str, step: &crate::check::StepResult) -> String {
    match step.outcome {
        Outcome::Pass => "passed".into(),
        _ => {
            let hint = catalog
                .find(lab)
                .ok()
                .and_then(|l| l.steps.iter().find(|s| s.id == step.step))
                .and_then(|s| s.hints.first())
                .map(|h| format!("\nHint: {h}"))
                .unwrap_or_default();
            format!("{}{hint}", step.message)
        }
    }
}

fn xml_escape(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: a testsuite per student, a testcase per lab step.
pub(crate) fn junit(results: &[SubmissionResult]) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"vlab\">\n");
    for r in results {
        let mut cases = String::new();
        let (mut tests, mut failures, mut errors, mut skipped) = (0, 0, 0, 0);
        for lab in &r.labs {
            let class = xml_escape(&format!("{}.{}", r.student, lab.lab));
            let Some(report) = &lab.report else {
                tests += 1;
                errors += 1;
                let msg = xml_escape(lab.error.as_deref().unwrap_or("not graded"));
                let _ = writeln!(
                    cases,
                    "    <testcase classname=\"{class}\" name=\"{}\"><error message=\"{msg}\"/></testcase>",
                    xml_escape(&lab.lab)
                );
                continue;
            };
            for step in &report.steps {
                tests += 1;
                let secs: f64 = step.checks.iter().map(|c| c.duration_ms as f64 / 1000.0).sum();
                let body = match step.outcome {
                    Outcome::Pass => String::new(),
                    Outcome::Fail => {
                        failures += 1;
                        format!(
                            "<failure message=\"{}\">{}</failure>",
                            xml_escape(step.message.lines().next().unwrap_or("")),
                            xml_escape(&step.message)
                        )
                    }
                    Outcome::Error => {
                        errors += 1;
                        format!("<error message=\"{}\"/>", xml_escape(&step.message))
                    }
                    Outcome::Skipped => {
                        skipped += 1;
                        format!("<skipped message=\"{}\"/>", xml_escape(&step.message))
                    }
                };
                let _ = writeln!(
                    cases,
                    "    <testcase classname=\"{class}\" name=\"{}\" time=\"{secs:.3}\">{body}</testcase>",
                    xml_escape(&step.step)
                );
            }
        }
        let _ = write!(
            x,
            "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{:.3}\">\n{cases}  </testsuite>\n",
            xml_escape(&r.student),
            r.grading_seconds
        );
    }
    x.push_str("</testsuites>\n");
    x
}

/// What passed, what failed and why, with the first hint; hidden steps withheld.
pub(crate) fn feedback(catalog: &Catalog, r: &SubmissionResult, policy: &Policy) -> String {
    let mut md = format!("# Feedback for {}\n\nScore: **{} / {}**", r.student, r.score, r.max_score);
    if r.late_days > 0 {
        let _ = write!(md, " (late by {} day(s), −{}%)", r.late_days, r.penalty_percent);
    }
    md.push_str("\n\n");
    if let Some(e) = &r.error {
        let _ = writeln!(md, "> {e}\n");
    }
    for lab in &r.labs {
        let title = catalog.find(&lab.lab).map(|l| l.title.clone()).unwrap_or_default();
        let _ = writeln!(md, "## {} {title} — {}/{}\n", lab.lab, lab.points, lab.max_points);
        let Some(report) = &lab.report else {
            let _ = writeln!(md, "{}\n", lab.error.as_deref().unwrap_or("not graded"));
            continue;
        };
        for step in &report.steps {
            if policy.hidden(&lab.lab, &step.step) {
                let _ = writeln!(md, "- **{}** {}: hidden until released\n", step.step, step.title);
                continue;
            }
            let mark = match step.outcome {
                Outcome::Pass => "✓",
                Outcome::Fail => "✗",
                Outcome::Error => "!",
                Outcome::Skipped => "–",
            };
            let _ = writeln!(md, "- {mark} **{}** {} ({}/{})", step.step, step.title, step.points, step.max_points);
            if step.outcome != Outcome::Pass {
                let text = step_output(catalog, &lab.lab, step).replace('\n', "\n  ");
                let _ = writeln!(md, "  ```text\n  {text}\n  ```");
            }
            md.push('\n');
        }
        let explained = r.self_reported.get(&lab.lab).map(|s| &s.explain);
        for (q, a) in explained.into_iter().flatten().take(MAX_EXPLAIN_PER_LAB) {
            let found = if a.keywords_found { "names the key ideas" } else { "misses some key ideas" };
            let _ = writeln!(md, "- **{q}** (explain, judged by your instructor; the keyword check says it {found})");
            let _ = writeln!(md, "  > {}", text_cell(&a.question).replace('\n', " "));
            // Four-backtick fence: a student's ``` cannot close it.
            let answer = text_cell(&a.answer).replace("````", "` ` ` `").replace('\n', "\n  ");
            let _ = writeln!(md, "  ````text\n  {answer}\n  ````\n");
        }
    }
    md
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use super::*;
    use crate::grade::LabGrade;
    use crate::state::{ExplainAnswer, LabState};

    fn result(student: &str, answer: Option<&str>) -> SubmissionResult {
        let mut self_reported = BTreeMap::new();
        if let Some(text) = answer {
            let a = ExplainAnswer {
                question: "Which would a domU not have?".into(),
                answer: text.into(),
                keywords_found: true,
                answered_at: 1,
            };
            let ls = LabState { explain: [("lab08-pirq".to_string(), a)].into(), ..Default::default() };
            self_reported.insert("08-xen".to_string(), ls);
        }
        SubmissionResult {
            student: student.into(),
            bundle: PathBuf::from("b"),
            bundle_hash: String::new(),
            claimed_student: None,
            submitted_at: 0,
            labs: vec![LabGrade { lab: "08-xen".into(), report: None, error: None, points: 3, max_points: 5 }],
            error: None,
            protections: Vec::new(),
            self_reported,
            late_days: 0,
            penalty_percent: 0.0,
            score: 3.0,
            max_score: 5.0,
            grading_seconds: 0.0,
        }
    }

    #[test]
    fn explain_answers_reach_the_gradebook_bounded_and_inert() {
        let rs = [
            result("ann", Some("xen-pirq: no physical devices")),
            result("bob", None),
            result("eve", Some("=HYPERLINK(\"x\")")),
        ];
        let csv = gradebook(&rs).unwrap();
        let mut r = csv::Reader::from_reader(csv.as_bytes());
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(header.last().unwrap(), "explain 08-xen/lab08-pirq");
        let rows: Vec<Vec<String>> = r.records().map(|x| x.unwrap().iter().map(String::from).collect()).collect();
        assert_eq!(rows[0].last().unwrap(), "xen-pirq: no physical devices");
        assert_eq!(rows[1].last().unwrap(), "");
        assert_eq!(rows[2].last().unwrap(), "'=HYPERLINK(\"x\")", "never a formula");
        assert_eq!(text_cell(&"x".repeat(10_000)).len(), MAX_EXPLAIN);
        // A hostile manifest cannot add columns without bound, nor for labs not graded.
        let mut flood = result("mal", None);
        let a = ExplainAnswer { question: "q".into(), answer: "a".into(), keywords_found: false, answered_at: 0 };
        let many = (0..100).map(|i| (format!("q{i}"), a.clone())).chain([("Bad Id".to_string(), a.clone())]);
        flood.self_reported.insert("08-xen".into(), LabState { explain: many.collect(), ..Default::default() });
        flood
            .self_reported
            .insert("99-other".into(), LabState { explain: [("q".to_string(), a)].into(), ..Default::default() });
        let csv = gradebook(&[flood]).unwrap();
        assert_eq!(csv.lines().next().unwrap().matches("explain ").count(), MAX_EXPLAIN_PER_LAB, "{csv}");
        assert!(!csv.contains("99-other") && !csv.contains("Bad Id"), "{csv}");
        // Without explain answers the gradebook keeps its columns.
        let plain = gradebook(&[result("bob", None)]).unwrap();
        assert!(!plain.contains("explain"), "{plain}");
    }
}
