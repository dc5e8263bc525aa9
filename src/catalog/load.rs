//! Loading lab.toml with errors that name the file, the line and what was expected.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::model::{Check, Lab};

#[derive(Debug, thiserror::Error)]
#[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct LoadError {
    pub(crate) path: PathBuf,
    pub(crate) line: Option<usize>,
    pub(crate) message: String,
}

/// A check that lab.toml describes wrongly, in words for its author.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct InvalidCheck(pub(crate) String);

/// The check kinds a runner knows, and what each requires of a check: the
/// engine's registry of observers, handed to the loader by the command layer.
pub(crate) trait Kinds {
    /// Ok if `check.kind` is known and the check suits it.
    fn validate(&self, check: &Check) -> Result<(), InvalidCheck>;
}

#[derive(Debug, Clone)]
pub struct Catalog {
    pub(crate) root: PathBuf,
    pub labs: Vec<Lab>,
}

/// 1-based line of the first occurrence of `needle` in `text`.
pub fn line_of(text: &str, needle: &str) -> Option<usize> {
    text.find(needle).map(|i| text[..i].lines().count().max(1) + usize::from(text[..i].ends_with('\n')))
}

/// Where the labs live: an explicit path, else ./labs, else next to the
/// executable's ancestors (a cargo build in the repo), else the source tree.
/// Where the labs are not, or which lab is not there.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error(
        "labs directory {} does not exist; pass --labs DIR (or set VLAB_LABS) to the labs/ folder of a vlab checkout",
        .0.display()
    )]
    NoLabsDir(PathBuf),
    #[error("no labs/ directory found; run vlab from a vlab checkout or pass --labs DIR")]
    NoLabsFound,
    #[error("no lab named `{name}`; the labs are: {labs} (see `vlab list`)")]
    NoSuchLab { name: String, labs: String },
}

pub fn find_labs_root(explicit: Option<&Path>) -> Result<PathBuf, CatalogError> {
    if let Some(p) = explicit {
        if !p.join("").is_dir() {
            return Err(CatalogError::NoLabsDir(p.to_path_buf()));
        }
        return Ok(p.to_path_buf());
    }
    let mut candidates = vec![PathBuf::from("labs")];
    if let Ok(exe) = std::env::current_exe() {
        candidates.extend(exe.ancestors().skip(1).map(|a| a.join("labs")));
    }
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("labs"));
    candidates.into_iter().find(|c| c.join("README.md").is_file() && c.is_dir()).ok_or(CatalogError::NoLabsFound)
}

impl Catalog {
    /// Loads every lab under `root`, its check kinds unchecked (for the book and the bundles).
    pub fn load(root: &Path) -> Result<Catalog, LoadError> {
        Self::load_inner(root, None)
    }

    /// Loads every lab under `root`, each check's kind known to `kinds` and suited to it.
    pub(crate) fn load_with(root: &Path, kinds: &dyn Kinds) -> Result<Catalog, LoadError> {
        Self::load_inner(root, Some(kinds))
    }

    fn load_inner(root: &Path, kinds: Option<&dyn Kinds>) -> Result<Catalog, LoadError> {
        let entries = std::fs::read_dir(root).map_err(|e| LoadError {
            path: root.to_path_buf(),
            line: None,
            message: format!("cannot read the labs directory: {e}"),
        })?;
        let mut dirs: Vec<PathBuf> =
            entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.join("lab.toml").is_file()).collect();
        dirs.sort();
        let labs = dirs.iter().map(|d| load_lab(d, kinds)).collect::<Result<Vec<_>, _>>()?;
        Ok(Catalog { root: root.to_path_buf(), labs })
    }

    /// Finds a lab by full id (`01-bare-metal`), number (`01`, `1`) or slug (`bare-metal`).
    pub fn find(&self, name: &str) -> Result<&Lab, CatalogError> {
        let by_number = |lab: &Lab| {
            let num = lab.id.split('-').next().unwrap_or("");
            name.parse::<u32>().ok().is_some_and(|n| num.parse::<u32>().ok() == Some(n))
        };
        self.labs
            .iter()
            .find(|l| l.id == name)
            .or_else(|| self.labs.iter().find(|l| by_number(l)))
            .or_else(|| self.labs.iter().find(|l| l.id.split_once('-').map(|(_, s)| s) == Some(name)))
            .ok_or_else(|| CatalogError::NoSuchLab {
                name: name.into(),
                labs: self.labs.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", "),
            })
    }
}

fn load_lab(dir: &Path, kinds: Option<&dyn Kinds>) -> Result<Lab, LoadError> {
    let path = dir.join("lab.toml");
    let text = std::fs::read_to_string(&path).map_err(|e| LoadError {
        path: path.clone(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    let mut lab: Lab = toml::from_str(&text).map_err(|e| {
        let message = e.message().trim().to_string();
        // A bad fact rule is reported for its whole list: point at the rule itself.
        let start = e.span().map(|s| {
            let rule = message.strip_prefix("fact rule for `").and_then(|m| m.split_once('`')).map(|(fact, _)| fact);
            let own = rule.and_then(|fact| text[s.start..].find(&format!("\"{fact}\"")));
            s.start + own.unwrap_or(0)
        });
        let line = start.map(|s| text[..s].lines().count().max(1) + usize::from(text[..s].ends_with('\n')));
        LoadError { path: path.clone(), line, message }
    })?;
    lab.dir = dir.to_path_buf();
    validate(&lab, kinds).map_err(|(needle, message)| LoadError {
        path: path.clone(),
        line: needle.and_then(|n| line_of(&text, &n)),
        message,
    })?;
    Ok(lab)
}

type Invalid = (Option<String>, String);

fn validate(lab: &Lab, kinds: Option<&dyn Kinds>) -> Result<(), Invalid> {
    let dir_name = lab.dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let at = |s: &str| Some(s.to_string());
    if lab.id != dir_name {
        return Err((
            at("id"),
            format!("id is \"{}\" but the directory is \"{dir_name}\"; they must be the same", lab.id),
        ));
    }
    let well_formed = lab.id.split_once('-').is_some_and(|(n, s)| {
        n.len() == 2
            && n.chars().all(|c| c.is_ascii_digit())
            && !s.is_empty()
            && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if !well_formed {
        return Err((
            at("id"),
            format!("lab id \"{}\" must look like NN-slug (two digits, a dash, lowercase words)", lab.id),
        ));
    }
    if lab.steps.is_empty() {
        return Err((None, "a lab needs at least one [[steps]] table".into()));
    }
    for sub in ["starter", "solution"] {
        if !lab.dir.join(sub).is_dir() {
            return Err((
                None,
                format!("missing {sub}/ directory next to lab.toml; every lab ships a starter and a solution"),
            ));
        }
    }
    let readme = std::fs::read_to_string(lab.dir.join("README.md")).unwrap_or_default();
    let mut seen = BTreeSet::new();
    for step in &lab.steps {
        let here = at(&format!("id = \"{}\"", step.id));
        if !seen.insert(step.id.as_str()) {
            return Err((here, format!("step id \"{}\" is used twice; step ids must be unique", step.id)));
        }
        if step.points == 0 {
            return Err((here, format!("step \"{}\" has 0 points; give it at least 1", step.id)));
        }
        if step.hints.is_empty() {
            return Err((here, format!("step \"{}\" has no hints; the hint ladder needs at least one", step.id)));
        }
        if step.checks.is_empty() {
            return Err((here, format!("step \"{}\" has no checks; add at least one [[steps.checks]]", step.id)));
        }
        match (&step.instructions, &step.readme_section) {
            (Some(_), Some(_)) | (None, None) => {
                return Err((
                    here,
                    format!("step \"{}\" needs exactly one of `instructions` or `readme_section`", step.id),
                ));
            }
            (None, Some(section)) if !has_heading(&readme, section) => {
                return Err((
                    at(&format!("\"{section}\"")),
                    format!("readme_section \"{section}\" is not a heading in {}/README.md", lab.id),
                ));
            }
            _ => {}
        }
        for file in &step.files {
            for sub in ["starter", "solution"] {
                if !lab.dir.join(sub).join(file).exists() {
                    return Err((
                        at(&format!("\"{file}\"")),
                        format!("step \"{}\" names file \"{file}\" but {sub}/{file} does not exist", step.id),
                    ));
                }
            }
        }
        for check in &step.checks {
            validate_check(check).map_err(|m| (here.clone(), format!("step \"{}\": {m}", step.id)))?;
            if let Some(Err(InvalidCheck(m))) = kinds.map(|k| k.validate(check)) {
                let kind_line = format!("\"{}\"", check.kind);
                return Err((
                    at(&kind_line).filter(|_| m.starts_with("unknown")).or(here),
                    format!("step \"{}\": {m}", step.id),
                ));
            }
        }
    }
    let mut granted = BTreeSet::new();
    for p in &lab.grading.privileges {
        if !granted.insert(p) {
            return Err((
                at(&format!("\"{}\"", p.name())),
                format!("[grading] privileges names \"{}\" twice; name each privilege once", p.name()),
            ));
        }
    }
    Ok(())
}

fn has_heading(readme: &str, section: &str) -> bool {
    readme.lines().any(|l| l.starts_with('#') && l.trim_start_matches('#').trim() == section)
}

fn validate_check(check: &Check) -> Result<(), InvalidCheck> {
    if check.command.is_empty() {
        return Err(InvalidCheck("a check's `command` must not be empty".into()));
    }
    if check.timeout_secs == 0 || check.timeout_secs > 1800 {
        return Err(InvalidCheck(format!("timeout_secs = {} is out of range; use 1..=1800", check.timeout_secs)));
    }
    let e = &check.expect;
    for re in e.stdout.iter().chain(&e.stdout_not).chain(&e.stderr) {
        regex::Regex::new(re).map_err(|err| InvalidCheck(format!("bad regex {re:?}: {err}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Privilege;

    fn lab_dir(toml: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("01-demo");
        for sub in ["starter", "solution"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            std::fs::write(dir.join(sub).join("a.sh"), "true\n").unwrap();
        }
        std::fs::write(dir.join("README.md"), "# Demo\n\n## Step one\n\ntext\n").unwrap();
        std::fs::write(dir.join("lab.toml"), toml).unwrap();
        root
    }

    const GOOD: &str = r#"id = "01-demo"
title = "Demo"
tier = "bare-metal"
chapter = "bare-metal.md"
summary = "A demo."
estimate_minutes = 5

[[steps]]
id = "one"
title = "Step one"
points = 1
readme_section = "Step one"
hints = ["try"]
files = ["a.sh"]

[[steps.checks]]
kind = "run"
command = ["sh", "a.sh"]
"#;

    #[test]
    fn loads_a_good_lab() {
        let root = lab_dir(GOOD);
        let cat = Catalog::load(root.path()).unwrap();
        assert_eq!(cat.labs[0].steps[0].checks[0].timeout_secs, 30);
        assert_eq!(cat.find("1").unwrap().id, "01-demo");
        assert_eq!(cat.find("demo").unwrap().id, "01-demo");
        assert!(cat.find("nope").unwrap_err().to_string().contains("01-demo"));
    }

    #[test]
    fn unknown_check_kind_names_line_and_choices() {
        let root = lab_dir(&GOOD.replace("kind = \"run\"", "kind = \"exe\""));
        assert!(Catalog::load(root.path()).is_ok(), "without the registry a kind is not judged");
        let err = Catalog::load_with(root.path(), &crate::tiers::registry()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:17"), "{err}");
        assert!(err.contains("exe") && err.contains("run") && err.contains("observe"), "{err}");
    }

    #[test]
    fn unknown_field_is_rejected() {
        let root = lab_dir(&GOOD.replace("points = 1", "points = 1\npoints_extra = 2"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:12") && err.contains("points_extra"), "{err}");
    }

    #[test]
    fn missing_solution_file_is_reported() {
        let root = lab_dir(&GOOD.replace("files = [\"a.sh\"]", "files = [\"b.sh\"]"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:14") && err.contains("starter/b.sh"), "{err}");
    }

    #[test]
    fn readme_section_must_exist() {
        let root = lab_dir(&GOOD.replace("readme_section = \"Step one\"", "readme_section = \"Nope\""));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:12") && err.contains("not a heading"), "{err}");
    }

    #[test]
    fn grading_privileges_are_named_and_checked() {
        let with = |p: &str| {
            GOOD.replace("estimate_minutes = 5\n", &format!("estimate_minutes = 5\n[grading]\nprivileges = {p}\n"))
        };
        let root = lab_dir(&with("[\"cgroup\", \"kvm\"]"));
        let cat = Catalog::load(root.path()).unwrap();
        assert_eq!(cat.labs[0].grading.privileges, [Privilege::Cgroup, Privilege::Kvm]);
        let root = lab_dir(&with("[\"root\"]"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:8") && err.contains("root") && err.contains("cgroup"), "{err}");
        let root = lab_dir(&with("[\"kvm\", \"kvm\"]"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:8") && err.contains("twice"), "{err}");
    }

    #[test]
    fn a_bad_fact_rule_names_its_own_line() {
        let with = |rule: &str| {
            GOOD.to_string()
                + &format!("expect.facts = [\n  {{ fact = \"a\", min = 1.0, message = \"m\" }},\n  {rule},\n]\n")
        };
        let root = lab_dir(&with("{ fact = \"b\", equals = \"1\", min = 2.0, message = \"m\" }"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(
            err.contains("lab.toml:21") && err.contains("needs exactly one of equals, matches, min/max, at_least"),
            "{err}"
        );
        let root = lab_dir(&with("{ fact = \"b\", min = 2.0, factor = 2.0, message = \"m\" }"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:21") && err.contains("`factor` only goes with `at_least`"), "{err}");
        let root = lab_dir(&with("{ fact = \"b\", matches = \"(\", message = \"m\" }"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:21") && err.contains("bad regex"), "{err}");
        let root = lab_dir(&with("{ fact = \"b\", max = 2.0, message = \"m\", typo = 1 }"));
        let err = Catalog::load(root.path()).unwrap_err().to_string();
        assert!(err.contains("lab.toml:21") && err.contains("typo"), "{err}");
        let root = lab_dir(&with("{ fact = \"b\", at_least = \"a\", factor = 0.5, message = \"m\" }"));
        let rule = &Catalog::load(root.path()).unwrap().labs[0].steps[0].checks[0].expect.facts[1];
        assert_eq!(rule.test, crate::catalog::FactTest::AtLeast { other: "a".into(), factor: 0.5 });
    }

    #[test]
    fn line_of_counts_from_one() {
        assert_eq!(line_of("a\nb\nc", "a"), Some(1));
        assert_eq!(line_of("a\nb\nc", "c"), Some(3));
    }
}
