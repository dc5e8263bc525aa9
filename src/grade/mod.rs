//! Instructor grading: re-run the canonical checks on every submission, each
//! sandboxed, in parallel, resumable, and export the results everywhere.

pub mod bundle;
pub(crate) mod export;
pub mod limits;
pub mod policy;
pub(crate) mod sandbox;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::catalog::Catalog;
use crate::check::LabReport;
use crate::files::{sha256_hex, write_atomic};
use crate::state::LabState;
use limits::Limits;
use policy::Policy;

pub struct Options {
    /// The vlab executable the sandbox runs (`vlab __grade-one`).
    pub vlab: PathBuf,
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub jobs: usize,
    /// Labs to grade; empty means every lab any submission contains.
    pub labs: Vec<String>,
    pub policy: Policy,
    pub limits: Limits,
    pub progress: bool,
}

/// The graded result of one submission, written atomically to results/<student>.json.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SubmissionResult {
    pub(crate) student: String,
    pub(crate) bundle: PathBuf,
    pub(crate) bundle_hash: String,
    /// The name the student's bundle claims (informational).
    pub(crate) claimed_student: Option<String>,
    pub(crate) submitted_at: u64,
    pub(crate) labs: Vec<LabGrade>,
    /// Set when the bundle was rejected or the sandbox failed as a whole.
    pub(crate) error: Option<String>,
    pub(crate) protections: Vec<String>,
    pub(crate) self_reported: BTreeMap<String, LabState>,
    pub(crate) late_days: u64,
    pub(crate) penalty_percent: f64,
    pub(crate) score: f64,
    pub(crate) max_score: f64,
    pub(crate) grading_seconds: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LabGrade {
    pub(crate) lab: String,
    pub(crate) report: Option<LabReport>,
    pub(crate) error: Option<String>,
    pub(crate) points: u32,
    pub(crate) max_points: u32,
}

/// Summary returned to the command.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub graded: usize,
    pub(crate) resumed: usize,
    pub(crate) rejected: usize,
    pub(crate) seconds: f64,
    pub(crate) per_submission_seconds: f64,
    pub(crate) out: PathBuf,
}

/// A student's id from a bundle's file name: safe for paths and cgroup names.
pub(crate) fn student_key(bundle: &Path) -> String {
    let name = bundle.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.trim_end_matches(".tar.gz").trim_end_matches(".vlab").trim_end_matches(".tgz");
    stem.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' { c } else { '_' }).collect()
}

/// Bundles named by `inputs`: files as given, directories scanned (sorted).
pub(crate) fn discover(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for input in inputs {
        if input.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(input)
                .with_context(|| format!("cannot read {}", input.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file() && [".tar.gz", ".tgz", ".vlab"].iter().any(|x| p.to_string_lossy().ends_with(x))
                })
                .collect();
            files.sort();
            found.extend(files);
        } else if input.is_file() {
            found.push(input.clone());
        } else {
            bail!(
                "{} does not exist; name submission bundles (made by `vlab submit`) or a directory of them",
                input.display()
            );
        }
    }
    let mut seen = BTreeMap::new();
    for b in &found {
        if let Some(other) = seen.insert(student_key(b), b.clone()) {
            bail!(
                "{} and {} would both be graded as student `{}`; rename one",
                other.display(),
                b.display(),
                student_key(b)
            );
        }
    }
    if found.is_empty() {
        bail!("no submissions found (looked for *.tar.gz, *.tgz, *.vlab)");
    }
    Ok(found)
}

fn results_dir(out: &Path) -> PathBuf {
    out.join("results")
}

/// A previous result for this bundle, if it is complete and for the same bytes.
fn finished(out: &Path, student: &str, bundle: &Path) -> Option<SubmissionResult> {
    let prev: SubmissionResult =
        serde_json::from_slice(&std::fs::read(results_dir(out).join(format!("{student}.json"))).ok()?).ok()?;
    let hash = sha256_hex(&std::fs::read(bundle).ok()?);
    (prev.bundle_hash == hash).then_some(prev)
}

fn mtime(p: &Path) -> u64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Grades every bundle; returns a summary. Results and exports land in `opts.out`.
pub fn grade(catalog: &Catalog, opts: &Options) -> anyhow::Result<Summary> {
    for id in &opts.labs {
        catalog.find(id)?;
    }
    let bundles = discover(&opts.inputs)?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("cannot create {}", opts.out.display()))?;
    let _lock = lock_out(&opts.out)?;
    limits::remove_stale_jails();
    remove_partial_results(&opts.out);
    let started = Instant::now();
    let mut pending = VecDeque::new();
    let mut resumed = 0;
    for b in &bundles {
        if finished(&opts.out, &student_key(b), b).is_some() {
            resumed += 1;
        } else {
            pending.push_back(b.clone());
        }
    }
    let todo = pending.len();
    let bar = progress_bar(todo as u64, opts.progress);
    let queue = Mutex::new(pending);
    let warmed = Mutex::new(BTreeMap::new());
    let failures: Mutex<Vec<anyhow::Error>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..opts.jobs.max(1) {
            s.spawn(|| {
                while let Some(b) = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front() {
                    bar.set_message(student_key(&b));
                    let result = grade_one(catalog, opts, &b, &warmed);
                    let saved = serde_json::to_vec_pretty(&result).map_err(anyhow::Error::from).and_then(|json| {
                        Ok(write_atomic(&results_dir(&opts.out).join(format!("{}.json", result.student)), &json)?)
                    });
                    if let Err(e) = saved {
                        failures.lock().unwrap_or_else(|p| p.into_inner()).push(e);
                    }
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(opts.out.join(".work"));
    if let Some(e) = failures.into_inner().unwrap_or_default().into_iter().next() {
        return Err(e.context("cannot save a result; nothing was lost, run the same command again to resume"));
    }
    let results: Vec<SubmissionResult> =
        bundles.iter().filter_map(|b| finished(&opts.out, &student_key(b), b)).collect();
    export::write_all(catalog, &results, &opts.policy, &opts.out)?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(Summary {
        graded: todo,
        resumed,
        rejected: results.iter().filter(|r| r.error.is_some()).count(),
        seconds,
        per_submission_seconds: if todo > 0 { seconds / todo as f64 } else { 0.0 },
        out: opts.out.clone(),
    })
}

/// Holds OUT/.lock for as long as it lives: one grader per output directory,
/// so no submission is graded twice and no result is overwritten mid-write.
/// The kernel drops the lock when the grader dies, even by SIGKILL.
fn lock_out(out: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Seek, Write};
    use std::os::fd::AsRawFd;
    let path = out.join(".lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    // SAFETY: flock takes the descriptor of `file`, which is open for the call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            bail!(
                "another `vlab grade` (pid {}) is grading into {}; wait for it to finish and run this again (it grades only what is missing), or pass another --out",
                holder.trim(),
                out.display()
            );
        }
        return Err(anyhow::Error::from(err).context(format!("cannot lock {}", path.display())));
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

/// Half-written results (write_atomic's temporary files) left by a grader
/// killed mid-write. Safe only under the lock: no other grader is writing.
fn remove_partial_results(out: &Path) {
    let Ok(rd) = std::fs::read_dir(results_dir(out)) else { return };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

fn progress_bar(len: u64, show: bool) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !show || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(len);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("grading {bar:30} {pos}/{len} ({per_sec}, ETA {eta}) {msg}")
    {
        bar.set_style(style);
    }
    bar
}

/// Labs whose guest assets were put in the cache (or why they could not be).
type Warmed = Mutex<BTreeMap<String, Result<(), String>>>;

/// Grades one bundle in its own sandbox. Never fails: problems become the result's error.
fn grade_one(catalog: &Catalog, opts: &Options, bundle_path: &Path, warmed: &Warmed) -> SubmissionResult {
    let started = Instant::now();
    let student = student_key(bundle_path);
    let submitted_at = mtime(bundle_path);
    let (late_days, penalty_percent) = opts.policy.lateness(submitted_at);
    let mut result = SubmissionResult {
        student: student.clone(),
        bundle: bundle_path.to_path_buf(),
        bundle_hash: std::fs::read(bundle_path).map(|b| sha256_hex(&b)).unwrap_or_default(),
        claimed_student: None,
        submitted_at,
        labs: Vec::new(),
        error: None,
        protections: Vec::new(),
        self_reported: BTreeMap::new(),
        late_days,
        penalty_percent,
        score: 0.0,
        max_score: 0.0,
        grading_seconds: 0.0,
    };
    let lab_ids: Vec<String> = if opts.labs.is_empty() {
        catalog.labs.iter().map(|l| l.id.clone()).collect()
    } else {
        opts.labs.iter().filter_map(|n| catalog.find(n).ok().map(|l| l.id.clone())).collect()
    };
    let sub = match bundle::unpack(bundle_path, catalog) {
        Ok(s) => s,
        Err(rejected) => {
            result.error = Some(format!("submission rejected: {}", rejected.reason));
            result.labs = lab_ids.iter().map(|id| empty_grade(catalog, id, "submission rejected")).collect();
            finish(&mut result, started);
            return result;
        }
    };
    result.claimed_student = Some(sub.manifest.student.clone());
    result.self_reported = sub.manifest.self_reported.clone();
    // Grade the requested labs this submission contains; the rest score 0.
    let to_grade: Vec<String> = lab_ids.iter().filter(|id| sub.files.contains_key(*id)).cloned().collect();
    let work = opts.out.join(".work").join(&student);
    let _ = std::fs::remove_dir_all(&work);
    let graded = write_files(&work.join("files"), &sub).map_err(|e| e.to_string()).and_then(|_| {
        if to_grade.is_empty() {
            return Ok(sandbox::Graded { reports: Vec::new(), protections: Vec::new() });
        }
        for id in &to_grade {
            let lab = catalog.find(id).map_err(|e| e.to_string())?;
            // Held while warming: the other workers wait for the cache, not build it twice.
            let mut done = warmed.lock().unwrap_or_else(|p| p.into_inner());
            done.entry(id.clone()).or_insert_with(|| sandbox::warm_cache(lab).map_err(|e| format!("{e:#}"))).clone()?;
        }
        let timeout = submission_timeout(catalog, &to_grade);
        let name = format!("{}-{}", std::process::id(), student);
        sandbox::grade_sandboxed(
            &opts.vlab,
            &name,
            catalog,
            &to_grade,
            &work.join("files"),
            &work,
            &opts.limits,
            timeout,
        )
    });
    let _ = std::fs::remove_dir_all(&work);
    match graded {
        Ok(g) => {
            result.protections = g.protections;
            for id in &lab_ids {
                result.labs.push(match g.reports.iter().find(|r| &r.lab == id) {
                    Some(r) => LabGrade {
                        lab: id.clone(),
                        report: Some(r.clone()),
                        error: None,
                        points: r.points,
                        max_points: r.max_points,
                    },
                    None => empty_grade(catalog, id, "not in this submission"),
                });
            }
        }
        Err(e) => {
            result.error = Some(e.clone());
            result.labs = lab_ids.iter().map(|id| empty_grade(catalog, id, &e)).collect();
        }
    }
    finish(&mut result, started);
    result
}

fn empty_grade(catalog: &Catalog, id: &str, why: &str) -> LabGrade {
    let max = catalog.find(id).map(|l| l.steps.iter().map(|s| s.points).sum()).unwrap_or(0);
    LabGrade { lab: id.to_string(), report: None, error: Some(why.to_string()), points: 0, max_points: max }
}

fn finish(result: &mut SubmissionResult, started: Instant) {
    let raw: u32 = result.labs.iter().map(|l| l.points).sum();
    result.max_score = result.labs.iter().map(|l| l.max_points).sum::<u32>() as f64;
    result.score = (raw as f64 * (1.0 - result.penalty_percent / 100.0) * 100.0).round() / 100.0;
    result.grading_seconds = started.elapsed().as_secs_f64();
}

fn write_files(dir: &Path, sub: &bundle::Submission) -> anyhow::Result<()> {
    for (lab, files) in &sub.files {
        for (rel, data) in files {
            // Paths were checked on unpack and are declared by the canonical lab.
            let path = dir.join(lab).join(rel);
            std::fs::create_dir_all(path.parent().context("file without parent")?)?;
            std::fs::write(&path, data)?;
        }
    }
    Ok(())
}

/// Every check's own limit, plus a margin for setup.
fn submission_timeout(catalog: &Catalog, labs: &[String]) -> Duration {
    let secs: u64 = labs
        .iter()
        .filter_map(|id| catalog.find(id).ok())
        .flat_map(|l| l.steps.iter().flat_map(|s| s.checks.iter().map(|c| c.timeout_secs)))
        .sum();
    Duration::from_secs(secs + 60)
}
