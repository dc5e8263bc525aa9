//! Results rendered for people. Programs get the same models as JSON (`--json`).

pub(crate) mod chart;

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::catalog::{Catalog, Lab};
use crate::check::{LabReport, Outcome, Verdict};
use crate::host::Capabilities;
use crate::state::{QuizScore, State};
use crate::workspace::Workspace;

/// Colour on a terminal unless NO_COLOR is set (https://no-color.org).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Style {
    pub(crate) color: bool,
}

impl Style {
    pub(crate) fn detect(no_color_flag: bool) -> Self {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style { color: !no_color_flag && !no_color && std::io::stdout().is_terminal() }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    pub(crate) fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub(crate) fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub(crate) fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub(crate) fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub(crate) fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }

    pub(crate) fn mark(&self, outcome: Outcome) -> String {
        match outcome {
            Outcome::Pass => self.green("✓"),
            Outcome::Fail => self.red("✗"),
            Outcome::Error => self.red("!"),
            Outcome::Skipped => self.yellow("–"),
        }
    }
}

pub(crate) fn lab_report(r: &LabReport, s: &Style) -> String {
    let mut out = format!("{} {}\n", s.bold(&r.lab), r.title);
    for step in &r.steps {
        let _ = writeln!(
            out,
            "  {} {:<12} {:>2}/{:<2} {}",
            s.mark(step.outcome),
            step.step,
            step.points,
            step.max_points,
            step.title
        );
        if step.outcome != Outcome::Pass {
            for line in step.message.lines() {
                let _ = writeln!(out, "      {line}");
            }
        }
    }
    let _ = writeln!(out, "  total {}/{} — {}", r.points, r.max_points, verdict(r, s));
    out
}

/// One line on the lab as a whole; steps skipped for the host's sake are
/// neither work left to do nor points earned.
fn verdict(r: &LabReport, s: &Style) -> String {
    let needs = r.needs().join(" or ");
    match r.verdict {
        Verdict::Pass => s.green("all steps pass"),
        Verdict::PassRunnable if r.points == 0 => {
            s.yellow(&format!("no step can run on this machine; its {} points need {needs}", r.skipped_points))
        }
        Verdict::PassRunnable => {
            s.green(&format!("all {} points runnable here pass; {} more need {needs}", r.points, r.skipped_points))
        }
        Verdict::NotDone => "not done yet: `vlab hint` helps".to_string(),
    }
}

pub(crate) fn lab_list(cat: &Catalog, ws: &Workspace, s: &Style) -> String {
    let mut out = String::new();
    // Columns as wide as their longest cell (counted in characters, not bytes:
    // titles hold dashes and arrows), padded before colour is added.
    let width = |cell: &dyn Fn(&Lab) -> String| cat.labs.iter().map(|l| cell(l).chars().count()).max().unwrap_or(0);
    let pad = |text: &str, w: usize| format!("{text}{}", " ".repeat(w.saturating_sub(text.chars().count())));
    let (id_w, title_w) = (width(&|l| l.id.clone()), width(&|l| l.title.clone()));
    let (tier_w, time_w) = (width(&|l| l.tier.name().to_string()), width(&|l| format!("~{} min", l.estimate_minutes)));
    for lab in &cat.labs {
        let started = if ws.is_started(lab) { s.green("started") } else { s.dim("not started") };
        let _ = writeln!(
            out,
            "{}  {}  {}  {}  {}",
            s.bold(&pad(&lab.id, id_w)),
            pad(&lab.title, title_w),
            pad(lab.tier.name(), tier_w),
            pad(&format!("~{} min", lab.estimate_minutes), time_w),
            started
        );
    }
    let _ = writeln!(out, "\nStart one with `vlab start <lab>`; labs are copied into {}", ws.root.display());
    out
}

/// `vlab status --json`: the stored progress, plus each chapter's quiz score.
#[derive(Debug, serde::Serialize)]
pub(crate) struct StatusModel<'a> {
    #[serde(flatten)]
    pub(crate) state: &'a State,
    pub(crate) quiz_scores: BTreeMap<String, QuizScore>,
}

impl<'a> StatusModel<'a> {
    pub(crate) fn new(state: &'a State, scores: &[(String, QuizScore)]) -> Self {
        StatusModel { state, quiz_scores: scores.iter().cloned().collect() }
    }
}

/// `scores`: each chapter's quiz score, in the book's order.
pub(crate) fn status(cat: &Catalog, state: &State, scores: &[(String, QuizScore)], s: &Style) -> String {
    let mut out = String::new();
    let (mut got, mut max) = (0, 0);
    for lab in &cat.labs {
        let ls = state.labs.get(&lab.id);
        let marks: String = lab
            .steps
            .iter()
            .map(|st| match ls.and_then(|l| l.steps.get(&st.id)) {
                Some(x) => s.mark(x.outcome),
                None => s.dim("·"),
            })
            .collect();
        let points: u32 = ls.map(|l| l.steps.values().map(|x| x.points).sum()).unwrap_or(0);
        let lab_max: u32 = lab.steps.iter().map(|st| st.points).sum();
        got += points;
        max += lab_max;
        let _ = writeln!(out, "{:<22} {} {:>3}/{:<3} {}", lab.id, marks, points, lab_max, lab.title);
    }
    let _ = writeln!(out, "total {got}/{max}");
    if !scores.is_empty() {
        let _ = writeln!(out, "\nchapter quizzes (in the book; `vlab serve` records your answers)");
    }
    for (chapter, q) in scores {
        let line = format!("quiz: {}/{} correct", q.correct, q.questions);
        let line = match q.answered {
            0 => s.dim(&format!("quiz: not taken ({} questions)", q.questions)),
            n if n < q.questions => format!("{line}, {} unanswered", q.questions - n),
            _ if q.correct == q.questions => s.green(&line),
            _ => line,
        };
        let _ = writeln!(out, "{chapter:<22} {line}");
    }
    out
}

pub(crate) fn hint(lab: &Lab, step: &str, hints: &[String], shown: usize, s: &Style) -> String {
    let mut out = format!("{} step {}\n", s.bold(&lab.id), step);
    for (i, h) in hints.iter().take(shown).enumerate() {
        let _ = writeln!(out, "  hint {}/{}: {h}", i + 1, hints.len());
    }
    if shown < hints.len() {
        let _ = writeln!(out, "  (run `vlab hint {} {step}` again for the next hint)", lab.id);
    } else {
        let _ = writeln!(out, "  (that was the last hint; the lab's README and book chapter explain more)");
    }
    out
}

pub(crate) fn doctor(c: &Capabilities, s: &Style) -> String {
    let yes = |ok: bool| if ok { s.green("yes") } else { s.red("no") };
    let mut out = String::new();
    let _ = writeln!(out, "{}", s.bold("vlab doctor — what this machine can do"));
    let _ = writeln!(out, "  root             {}", yes(c.root));
    let _ = writeln!(out, "  user namespaces  {}  {}", yes(c.userns.ok), s.dim(&c.userns.reason));
    let _ = writeln!(
        out,
        "  cgroups          {:?}, writable: {}  {}",
        c.cgroup.mode,
        if c.cgroup.writable.is_empty() { "none".into() } else { c.cgroup.writable.join(" ") },
        s.dim(&c.cgroup.reason)
    );
    let k = &c.kvm;
    let rate = k.rate.map(|r| format!("{:.1} M instr/s", r / 1e6)).unwrap_or_else(|| "not measured".into());
    let speed = if k.fast { s.green("fast") } else { s.yellow("slow") };
    let _ = writeln!(
        out,
        "  /dev/kvm         present {}, usable {}, {rate}, {}",
        yes(k.present),
        yes(k.openable),
        if k.openable { speed } else { "—".into() }
    );
    let _ = writeln!(out, "                   {}", s.dim(&k.reason));
    for (name, t) in &c.tools {
        let detail =
            if t.present { t.version.clone().unwrap_or_default() } else { t.reason.clone().unwrap_or_default() };
        let _ = writeln!(out, "  {:<16} {}  {}", name, yes(t.present), s.dim(&detail));
    }
    let pkgs = c.missing_packages();
    if !pkgs.is_empty() {
        let _ =
            writeln!(out, "\n  missing tools: run `vlab setup` (as root) or `sudo apt-get install {}`", pkgs.join(" "));
    }
    let _ = writeln!(out, "  (measured in {:.0} ms)", c.elapsed_ms);
    out
}

pub(crate) fn comparison(c: &crate::compare::Comparison, svg: Option<&std::path::Path>, s: &Style) -> String {
    let mut out = format!("{}\n", s.bold(&format!("Every tier, measured on {}", c.host)));
    let mut last = String::new();
    for r in c.measured() {
        let title = if r.title != last { r.title.clone() } else { String::new() };
        last = r.title.clone();
        let value = r.value.map(|v| if v >= 100.0 { format!("{v:.0}") } else { format!("{v:.2}") }).unwrap_or_default();
        let rel = r.vs_bare_metal.map(|x| format!("{x:.2}× bare metal")).unwrap_or_default();
        let _ = writeln!(out, "  {title:<36} {:<32} {:>10} {:<13} {rel}", r.tier, value, r.unit);
    }
    if c.measured().next().is_none() {
        let _ = writeln!(out, "  no measurements yet; the labs below record them.");
    }
    if !c.missing.is_empty() {
        let _ = writeln!(out, "\nmissing ({}):", c.missing.len());
        for m in &c.missing {
            let _ = writeln!(out, "  {}", s.dim(m));
        }
    }
    if let Some(p) = svg {
        let _ = writeln!(out, "\nchart: {}", p.display());
    }
    out
}

pub(crate) fn advice(a: &crate::compare::Advice, s: &Style) -> String {
    let mut out = format!("Recommended tier: {}\n", s.bold(&a.tier));
    for w in &a.why {
        let _ = writeln!(out, "  because {w}");
    }
    let _ = writeln!(out, "Your numbers:");
    for e in &a.evidence {
        let _ = writeln!(out, "  {e}");
    }
    if !a.alternatives.is_empty() {
        let _ = writeln!(out, "Also consider: {}", a.alternatives.join("; "));
    }
    out
}
