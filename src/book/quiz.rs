//! Chapter quizzes: `book/quizzes/<chapter>.toml`, one file per chapter,
//! validated on load (unknown fields, unknown chapters and labs, options
//! without an answer are errors naming the file and line). `vlab book sync`
//! compiles them into `book/vlab/quizzes.js`, a script that defines a global,
//! so the book's `quiz.js` renders them with no fetch: stock `mdbook build`
//! and a book opened from file:// show the same quizzes. The served book
//! posts each answer to `vlab serve`, which grades it here again (the page's
//! own verdict is never trusted) and records it in the workspace state.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::Book;
use crate::catalog::{Catalog, LoadError, line_of};
pub(crate) use crate::state::QuizScore;
use crate::state::{Asked, State};

/// Longest answer text the server accepts and stores (an "explain" answer is a paragraph).
pub(crate) const MAX_ANSWER: usize = 2000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    /// Options, one or several correct: checkboxes when several are.
    Choice,
    /// A number, within `tolerance` of `answer`.
    Number,
    /// A short text, equal to one of `accept` ignoring case and spacing.
    Text,
    /// Free text kept for the instructor, judged by keywords (`all_of`, `any_of`).
    Explain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct QuizFile {
    questions: Vec<RawQuestion>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuestion {
    id: Spanned<String>,
    kind: Kind,
    prompt: String,
    #[serde(default)]
    options: Vec<QuizOption>,
    answer: Option<f64>,
    #[serde(default)]
    tolerance: f64,
    #[serde(default)]
    accept: Vec<String>,
    #[serde(default)]
    all_of: Vec<String>,
    #[serde(default)]
    any_of: Vec<String>,
    /// The lab whose question this is: an explain answer is also kept with
    /// the lab's progress, so it travels in the submission to the grader.
    lab: Option<String>,
    why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QuizOption {
    pub(crate) text: String,
    #[serde(default)]
    pub(crate) correct: bool,
    /// Shown after answering, whichever option was picked.
    pub(crate) why: String,
}

/// One question, as the page receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Question {
    pub(crate) id: String,
    pub(crate) kind: Kind,
    pub(crate) prompt: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) options: Vec<QuizOption>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) answer: Option<f64>,
    #[serde(skip_serializing_if = "is_zero")]
    pub(crate) tolerance: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) accept: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) all_of: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) any_of: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) lab: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) why: Option<String>,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Quiz {
    pub(crate) questions: Vec<Question>,
}

/// Every chapter's quiz, keyed by the chapter's file stem (`bare-metal`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub(crate) struct Quizzes {
    pub(crate) chapters: BTreeMap<String, Quiz>,
    /// The chapter the book's index.html shows (its first), for `quiz.js`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) index: Option<String>,
    /// Chapters with a quiz, in the book's order (SUMMARY.md).
    #[serde(skip)]
    pub(crate) order: Vec<String>,
}

/// An answer as the page sends it: option indices, or text.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub(crate) enum Answer {
    Choices(Vec<usize>),
    Text(String),
}

impl Answer {
    /// How the answer is stored and shown to the instructor.
    pub(crate) fn display(&self, q: &Question) -> String {
        match self {
            Answer::Choices(picked) => picked
                .iter()
                .map(|&i| q.options.get(i).map(|o| o.text.clone()).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" | "),
            Answer::Text(t) => t.trim().to_string(),
        }
    }
}

/// Case and runs of whitespace do not matter in text answers and keywords.
fn normalize(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

impl Question {
    /// What the state keeps of this question with an answer.
    pub(crate) fn asked(&self) -> Asked<'_> {
        let explain_for = if self.kind == Kind::Explain { self.lab.as_deref() } else { None };
        Asked { id: &self.id, prompt: &self.prompt, explain_for }
    }

    /// Whether `answer` is right; an error says why it is not an answer to this question at all.
    pub(crate) fn grade(&self, answer: &Answer) -> Result<bool, String> {
        match (self.kind, answer) {
            (Kind::Choice, Answer::Choices(picked)) => {
                let set: BTreeSet<usize> = picked.iter().copied().collect();
                if set.len() != picked.len() || set.iter().any(|&i| i >= self.options.len()) {
                    return Err(format!("choices must be distinct option numbers below {}", self.options.len()));
                }
                let right: BTreeSet<usize> =
                    self.options.iter().enumerate().filter(|(_, o)| o.correct).map(|(i, _)| i).collect();
                Ok(set == right)
            }
            (Kind::Number, Answer::Text(t)) => {
                let x: f64 = t.trim().parse().map_err(|_| format!("`{t}` is not a number"))?;
                Ok(self.answer.is_some_and(|a| x.is_finite() && (x - a).abs() <= self.tolerance))
            }
            (Kind::Text, Answer::Text(t)) => Ok(self.accept.iter().any(|a| normalize(a) == normalize(t))),
            (Kind::Explain, Answer::Text(t)) => {
                let t = normalize(t);
                let all = self.all_of.iter().all(|k| t.contains(&normalize(k)));
                let any = self.any_of.is_empty() || self.any_of.iter().any(|k| t.contains(&normalize(k)));
                Ok(all && any)
            }
            (Kind::Choice, Answer::Text(_)) => Err("a choice question takes a list of option numbers".into()),
            (_, Answer::Choices(_)) => Err("this question takes a text answer".into()),
        }
    }
}

impl Quizzes {
    pub(crate) fn dir(book: &Book) -> PathBuf {
        book.root.join("quizzes")
    }

    /// The quizzes of the book beside the catalog's labs; none when there is no book.
    pub(crate) fn beside(cat: &Catalog) -> anyhow::Result<Quizzes> {
        match Book::beside(&cat.root) {
            Ok(book) => Ok(Quizzes::load(&book, cat)?),
            Err(_) => Ok(Quizzes::default()),
        }
    }

    /// Loads and validates every `quizzes/*.toml` of the book.
    pub(crate) fn load(book: &Book, cat: &Catalog) -> Result<Quizzes, LoadError> {
        let dir = Quizzes::dir(book);
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(LoadError { path: dir, line: None, message: format!("cannot read the quizzes: {e}") });
            }
        };
        files.sort();
        // The book's chapter order, for people; the generated script keeps its keys sorted.
        let summary = std::fs::read_to_string(book.src().join("SUMMARY.md")).unwrap_or_default();
        let chapters: Vec<String> = summary
            .lines()
            .filter_map(super::summary::parse_entry)
            .map(|e| e.link.trim_end_matches(".md").to_string())
            .collect();
        let mut out = Quizzes { index: chapters.first().cloned(), ..Quizzes::default() };
        for path in files {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            if !book.src().join(format!("{stem}.md")).is_file() {
                return Err(LoadError {
                    path,
                    line: None,
                    message: format!(
                        "no chapter {stem}.md in {}; a quiz file is named after its chapter",
                        book.src().display()
                    ),
                });
            }
            let quiz = load_file(&path, cat)?;
            out.chapters.insert(stem, quiz);
        }
        out.order = chapters.into_iter().filter(|c| out.chapters.contains_key(c)).collect();
        out.order.extend(out.chapters.keys().filter(|c| !out.order.contains(c)).cloned().collect::<Vec<_>>());
        Ok(out)
    }

    /// Per chapter: questions, answered, answered correctly (answers to
    /// questions that no longer exist do not count).
    pub(crate) fn scores(&self, state: &State) -> BTreeMap<String, QuizScore> {
        self.chapters
            .iter()
            .map(|(chapter, quiz)| {
                let given = state.quizzes.get(chapter);
                let answers: Vec<_> = quiz.questions.iter().filter_map(|q| given.and_then(|g| g.get(&q.id))).collect();
                let score = QuizScore {
                    questions: quiz.questions.len(),
                    answered: answers.len(),
                    correct: answers.iter().filter(|a| a.correct).count(),
                };
                (chapter.clone(), score)
            })
            .collect()
    }

    /// The scores in the book's chapter order.
    pub(crate) fn ordered_scores(&self, state: &State) -> Vec<(String, QuizScore)> {
        let mut scores = self.scores(state);
        self.order.iter().filter_map(|c| Some((c.clone(), scores.remove(c)?))).collect()
    }

    pub(crate) fn question(&self, chapter: &str, id: &str) -> Option<&Question> {
        self.chapters.get(chapter)?.questions.iter().find(|q| q.id == id)
    }

    /// `book/vlab/quizzes.js`: the quizzes as a global for `quiz.js` (a
    /// script, not a JSON file, because pages opened from file:// may not fetch).
    pub(crate) fn script(&self) -> String {
        let json = serde_json::to_string_pretty(self).unwrap_or_default();
        // `</` would end an inline script; harmless in a file, kept out anyway.
        let json = json.replace("</", "<\\/");
        format!(
            "// Generated by `vlab book sync` from book/quizzes/*.toml; edit those.\nwindow.vlabQuizzes = {json};\n"
        )
    }
}

fn load_file(path: &Path, cat: &Catalog) -> Result<Quiz, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|e| LoadError {
        path: path.to_path_buf(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let line_at = |offset: usize| text[..offset].lines().count().max(1) + usize::from(text[..offset].ends_with('\n'));
    let file: QuizFile = toml::from_str(&text).map_err(|e| LoadError {
        path: path.to_path_buf(),
        line: e.span().map(|s| line_at(s.start)),
        message: e.message().trim().to_string(),
    })?;
    let err = |line: Option<usize>, message: String| LoadError { path: path.to_path_buf(), line, message };
    if file.questions.is_empty() {
        return Err(err(None, "a quiz needs at least one [[questions]]".into()));
    }
    let mut seen = BTreeSet::new();
    let mut questions = Vec::new();
    for raw in file.questions {
        let line = Some(line_at(raw.id.span().start));
        let id = raw.id.into_inner();
        let fail = |m: String| err(line, format!("question `{id}`: {m}"));
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') {
            return Err(fail("an id is lowercase letters, digits and dashes".into()));
        }
        if !seen.insert(id.clone()) {
            return Err(fail("the id is used twice in this quiz".into()));
        }
        if raw.prompt.trim().is_empty() {
            return Err(fail("the prompt is empty".into()));
        }
        let has = |present: bool, field: &str, kinds: &str| {
            if present { Err(fail(format!("`{field}` belongs to {kinds} questions only"))) } else { Ok(()) }
        };
        has(!raw.options.is_empty() && raw.kind != Kind::Choice, "options", "choice")?;
        has(raw.answer.is_some() && raw.kind != Kind::Number, "answer", "number")?;
        has(raw.tolerance != 0.0 && raw.kind != Kind::Number, "tolerance", "number")?;
        has(!raw.accept.is_empty() && raw.kind != Kind::Text, "accept", "text")?;
        has(
            !(raw.all_of.is_empty() && raw.any_of.is_empty()) && raw.kind != Kind::Explain,
            "all_of/any_of",
            "explain",
        )?;
        has(raw.lab.is_some() && raw.kind != Kind::Explain, "lab", "explain")?;
        has(raw.why.is_some() && raw.kind == Kind::Choice, "why", "number, text and explain (options have their own)")?;
        match raw.kind {
            Kind::Choice => {
                if raw.options.len() < 2 || !raw.options.iter().any(|o| o.correct) {
                    return Err(fail("a choice question needs two or more [[questions.options]], one or more of them `correct = true`".into()));
                }
                if raw.options.iter().any(|o| o.text.trim().is_empty() || o.why.trim().is_empty()) {
                    return Err(fail("every option needs its `text` and the `why` shown after answering".into()));
                }
            }
            Kind::Number => {
                if !(raw.answer.is_some_and(f64::is_finite) && raw.tolerance.is_finite() && raw.tolerance >= 0.0) {
                    return Err(fail("a number question needs `answer = <number>` (and `tolerance` ≥ 0)".into()));
                }
            }
            Kind::Text => {
                if raw.accept.iter().all(|a| a.trim().is_empty()) {
                    return Err(fail("a text question needs `accept = [\"...\"]`".into()));
                }
            }
            Kind::Explain => {
                if raw.all_of.iter().chain(&raw.any_of).all(|k| k.trim().is_empty()) {
                    return Err(fail("an explain question needs keywords in `all_of` or `any_of`".into()));
                }
                if let Some(lab) = &raw.lab
                    && !cat.labs.iter().any(|l| &l.id == lab)
                {
                    let ids: Vec<&str> = cat.labs.iter().map(|l| l.id.as_str()).collect();
                    let line = line_of(&text, &format!("\"{lab}\"")).or(line);
                    return Err(err(
                        line,
                        format!("question `{id}`: no lab `{lab}`; the labs are: {}", ids.join(", ")),
                    ));
                }
            }
        }
        if raw.kind != Kind::Choice && raw.why.as_deref().is_none_or(|w| w.trim().is_empty()) {
            return Err(fail("needs `why`: the explanation shown after answering".into()));
        }
        questions.push(Question {
            id,
            kind: raw.kind,
            prompt: raw.prompt.trim().to_string(),
            options: raw.options,
            answer: raw.answer,
            tolerance: raw.tolerance,
            accept: raw.accept,
            all_of: raw.all_of,
            any_of: raw.any_of,
            lab: raw.lab,
            why: raw.why.map(|w| w.trim().to_string()),
        });
    }
    Ok(Quiz { questions })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book_with(quiz: &str) -> (tempfile::TempDir, Book) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("quizzes")).unwrap();
        std::fs::write(dir.path().join("src/uml.md"), "# UML\n").unwrap();
        std::fs::write(dir.path().join("quizzes/uml.toml"), quiz).unwrap();
        let book = Book { root: dir.path().to_path_buf() };
        (dir, book)
    }

    fn catalog() -> Catalog {
        Catalog { root: PathBuf::from("labs"), labs: Vec::new() }
    }

    const GOOD: &str = r#"
[[questions]]
id = "sysemu"
kind = "choice"
prompt = "What does PTRACE_SYSEMU save?"
[[questions.options]]
text = "One of the two stops per system call"
correct = true
why = "It stops at entry and skips the host call."
[[questions.options]]
text = "Nothing"
why = "It does save a stop."

[[questions]]
id = "n"
kind = "number"
prompt = "How many?"
answer = 2
why = "Two."

[[questions]]
id = "t"
kind = "text"
prompt = "Which ptrace request?"
accept = ["PTRACE_SYSEMU"]
why = "SYSEMU."

[[questions]]
id = "e"
kind = "explain"
prompt = "Why?"
all_of = ["hardware"]
any_of = ["pirq", "physical interrupt"]
why = "Only a domain with hardware has them."
"#;

    #[test]
    fn a_good_quiz_loads_and_grades() {
        let (_d, book) = book_with(GOOD);
        let q = Quizzes::load(&book, &catalog()).unwrap();
        let quiz = &q.chapters["uml"];
        assert_eq!(quiz.questions.len(), 4);
        let choice = q.question("uml", "sysemu").unwrap();
        assert_eq!(choice.grade(&Answer::Choices(vec![0])), Ok(true));
        assert_eq!(choice.grade(&Answer::Choices(vec![1])), Ok(false));
        assert_eq!(choice.grade(&Answer::Choices(vec![0, 1])), Ok(false));
        assert!(choice.grade(&Answer::Choices(vec![0, 0])).is_err());
        assert!(choice.grade(&Answer::Choices(vec![7])).is_err());
        assert!(choice.grade(&Answer::Text("0".into())).is_err());
        let n = q.question("uml", "n").unwrap();
        assert_eq!(n.grade(&Answer::Text(" 2 ".into())), Ok(true));
        assert_eq!(n.grade(&Answer::Text("3".into())), Ok(false));
        assert!(n.grade(&Answer::Text("two".into())).is_err());
        let t = q.question("uml", "t").unwrap();
        assert_eq!(t.grade(&Answer::Text("ptrace_sysemu ".into())), Ok(true));
        let e = q.question("uml", "e").unwrap();
        assert_eq!(e.grade(&Answer::Text("A domU has no HARDWARE, so no  Physical   interrupts".into())), Ok(true));
        assert_eq!(e.grade(&Answer::Text("hardware".into())), Ok(false));
        let js = q.script();
        assert!(js.starts_with("// Generated") && js.contains("window.vlabQuizzes = {"), "{js}");
        assert!(js.contains("\"sysemu\""));
    }

    fn load_err(quiz: &str) -> String {
        let (_d, book) = book_with(quiz);
        Quizzes::load(&book, &catalog()).unwrap_err().to_string()
    }

    #[test]
    fn bad_quizzes_name_file_line_and_fix() {
        let unknown = GOOD.replace("answer = 2\n", "answer = 2\nanswers = 3\n");
        let e = load_err(&unknown);
        assert!(e.contains("quizzes/uml.toml:19:") && e.contains("unknown field `answers`"), "{e}");

        let no_correct = GOOD.replace("correct = true\n", "");
        let e = load_err(&no_correct);
        assert!(e.contains("uml.toml:3:") && e.contains("`correct = true`"), "{e}");

        let twice = GOOD.replace("id = \"t\"", "id = \"n\"");
        assert!(load_err(&twice).contains("uml.toml:22: question `n`: the id is used twice"));

        let no_why = GOOD.replace("why = \"Two.\"\n", "");
        assert!(load_err(&no_why).contains("needs `why`"));

        let misplaced = GOOD.replace("accept = [\"PTRACE_SYSEMU\"]", "accept = [\"x\"]\nanswer = 1");
        assert!(load_err(&misplaced).contains("`answer` belongs to number questions only"));

        let lab = GOOD.replace("all_of = [\"hardware\"]", "all_of = [\"hardware\"]\nlab = \"08-nope\"");
        let e = load_err(&lab);
        assert!(e.contains("no lab `08-nope`") && e.contains("uml.toml:33:"), "{e}");

        let (d, book) = book_with(GOOD);
        std::fs::write(d.path().join("quizzes/nowhere.toml"), GOOD).unwrap();
        let e = Quizzes::load(&book, &catalog()).unwrap_err().to_string();
        assert!(e.contains("nowhere.toml") && e.contains("no chapter nowhere.md"), "{e}");
    }
}
