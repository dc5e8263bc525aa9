//! What each command does: glue between the CLI, the library and the reporters.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::catalog::{Catalog, Lab, find_labs_root};
use crate::check::{self, Outcome};
use crate::cli::{BookAction, Cli, Command};
use crate::host;
use crate::report::{self, Style};
use crate::setup;
use crate::state::State;
use crate::watch;
use crate::workspace::Workspace;

struct Ctx {
    cli_json: bool,
    style: Style,
    labs: Option<PathBuf>,
    ws: Workspace,
}

impl Ctx {
    fn catalog(&self) -> anyhow::Result<Catalog> {
        let root = find_labs_root(self.labs.as_deref())?;
        Ok(Catalog::load_with(&root, &crate::tiers::registry())?)
    }

    fn emit<T: Serialize>(&self, value: &T, text: impl FnOnce() -> String) -> anyhow::Result<()> {
        let text = if self.cli_json { serde_json::to_string_pretty(value)? + "\n" } else { text() };
        let mut out = std::io::stdout().lock();
        match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
            // A reader that went away (`vlab list | head`) is not an error.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            other => Ok(other?),
        }
    }
}

/// Runs a command; returns the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    let ctx = Ctx {
        cli_json: cli.json,
        style: Style::detect(cli.no_color),
        labs: cli.labs,
        ws: Workspace::locate(cli.workspace.as_deref())?,
    };
    match cli.command {
        Command::List => list(&ctx),
        Command::Start { lab } => start(&ctx, &lab),
        Command::Check { lab, step } => check(&ctx, lab.as_deref(), step.as_deref()),
        Command::Watch { lab, step, max_runs } => watch_lab(&ctx, &lab, step.as_deref(), max_runs),
        Command::Hint { lab, step } => hint(&ctx, &lab, step.as_deref()),
        Command::Status => status(&ctx),
        Command::Reset { lab } => reset(&ctx, &lab),
        Command::Doctor => doctor(&ctx),
        Command::Setup { dry_run } => setup_host(&ctx, dry_run),
        Command::Submit { names, output, student } => submit(&ctx, &names, &output, student),
        Command::Grade { inputs, out, jobs, only, policy, gradescope, autograder_root } => {
            let args = GradeArgs { inputs, out, jobs, only, policy, gradescope, autograder_root };
            grade(&ctx, args)
        }
        Command::GradeOne { spec } => grade_one(&spec),
        Command::Compare { svg } => compare(&ctx, svg),
        Command::Advise {
            other_os,
            other_arch,
            strong_isolation,
            live_migration,
            dedicated_resources,
            hardware_virt,
        } => {
            let flag = |f: Option<crate::cli::YesNo>| f.map(crate::cli::YesNo::get);
            let needs = crate::compare::Needs {
                other_os: flag(other_os),
                other_arch: flag(other_arch),
                strong_isolation: flag(strong_isolation),
                live_migration: flag(live_migration),
                dedicated_resources: flag(dedicated_resources),
                hardware_virt: flag(hardware_virt),
            };
            advise(&ctx, needs)
        }
        Command::Guest { action } => guest_command(&ctx, action),
        Command::Kvm { action: crate::cli::KvmAction::Run { file, nonce } } => kvm_run(&ctx, &file, nonce),
        Command::Kvm { action: crate::cli::KvmAction::Verdict { command } } => crate::kvm::command::verdict(&command),
        Command::Kvm { action: crate::cli::KvmAction::Watch { mode, command } } => {
            crate::kvm::watch::watch(mode, &command)
        }
        Command::Emu { action } => emu_command(action),
        Command::Partition { command } => crate::container::partition::watch(&command),
        Command::Uml { action: crate::cli::UmlAction::Count { mode, command } } => {
            crate::container::uml_count::count(&mode, &command)
        }
        Command::Xen { action: crate::cli::XenAction::Domu { config, dom0_script, timeout } } => {
            crate::guest::xen::domu::run(&config, dom0_script.as_deref(), Duration::from_secs(timeout))
        }
        Command::Serve { port } => serve_book(&ctx, port),
        Command::Book { action } => book(&ctx, action),
    }
}

#[derive(Serialize)]
struct ListedLab<'a> {
    #[serde(flatten)]
    lab: &'a Lab,
    started: bool,
    workspace: PathBuf,
}

fn list(ctx: &Ctx) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let listed: Vec<ListedLab> = cat
        .labs
        .iter()
        .map(|l| ListedLab { lab: l, started: ctx.ws.is_started(l), workspace: ctx.ws.lab_dir(l) })
        .collect();
    ctx.emit(&listed, || report::lab_list(&cat, &ctx.ws, &ctx.style))?;
    Ok(0)
}

#[derive(Serialize)]
struct Started {
    lab: String,
    dir: PathBuf,
    backup: Option<PathBuf>,
}

fn start(ctx: &Ctx, name: &str) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let lab = cat.find(name)?;
    let dir = ctx.ws.start(lab, |dir| crate::prepare::prepare(lab, dir))?;
    let mut files: Vec<&str> = lab.steps.iter().flat_map(|s| s.files.iter().map(String::as_str)).collect();
    files.sort();
    files.dedup();
    ctx.emit(&Started { lab: lab.id.clone(), dir: dir.clone(), backup: None }, || {
        format!(
            "Started {} in {}\nEdit: {}\nThen: vlab check {}   (instructions: {}/README.md, or `vlab serve` for the book)\n",
            lab.id,
            dir.display(),
            files.join(", "),
            lab.id,
            lab.dir.display()
        )
    })?;
    Ok(0)
}

fn reset(ctx: &Ctx, name: &str) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let lab = cat.find(name)?;
    let backup = ctx.ws.reset(lab, |dir| crate::prepare::prepare(lab, dir))?;
    let mut state = State::load(&ctx.ws.meta_dir())?;
    state.labs.remove(&lab.id);
    state.save(&ctx.ws.meta_dir())?;
    let dir = ctx.ws.lab_dir(lab);
    ctx.emit(&Started { lab: lab.id.clone(), dir: dir.clone(), backup: backup.clone() }, || {
        let kept = backup.map(|b| format!("your previous files were moved to {}\n", b.display())).unwrap_or_default();
        format!("Reset {} in {}\n{kept}", lab.id, dir.display())
    })?;
    Ok(0)
}

/// The lab named, or the one whose workspace directory we are in, or the only started one.
fn pick_lab<'a>(ctx: &Ctx, cat: &'a Catalog, name: Option<&str>) -> anyhow::Result<&'a Lab> {
    if let Some(n) = name {
        return Ok(cat.find(n)?);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    if let Some(lab) = cat.labs.iter().find(|l| cwd.starts_with(ctx.ws.lab_dir(l))) {
        return Ok(lab);
    }
    let started: Vec<&Lab> = cat.labs.iter().filter(|l| ctx.ws.is_started(l)).collect();
    match started.as_slice() {
        [one] => Ok(one),
        [] => bail!("no lab is started yet; `vlab list` shows them and `vlab start <lab>` starts one"),
        many => bail!(
            "several labs are started ({}); name one: `vlab check <lab>`",
            many.iter().map(|l| l.id.as_str()).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn run_checks(ctx: &Ctx, lab: &Lab, step: Option<&str>, caps: &host::Capabilities) -> anyhow::Result<check::LabReport> {
    let dir = ctx.ws.require_started(lab)?;
    crate::prepare::prepare(lab, &dir)?;
    let report = crate::tiers::check_lab(lab, &dir, caps, step)?;
    if crate::supervisor::interrupted() {
        bail!("interrupted");
    }
    let mut state = State::load(&ctx.ws.meta_dir())?;
    state.record(&report);
    state.save(&ctx.ws.meta_dir())?;
    Ok(report)
}

fn check(ctx: &Ctx, name: Option<&str>, step: Option<&str>) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let lab = pick_lab(ctx, &cat, name)?;
    ctx.ws.require_started(lab)?;
    let caps = host::detect();
    let report = run_checks(ctx, lab, step, &caps)?;
    ctx.emit(&report, || report::lab_report(&report, &ctx.style))?;
    Ok(if report.passed() { 0 } else { 1 })
}

fn watch_lab(ctx: &Ctx, name: &str, step: Option<&str>, max_runs: Option<u32>) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let lab = cat.find(name)?;
    let dir = ctx.ws.require_started(lab)?;
    let caps = host::detect();
    let mut failure = None;
    let mut last_passed = false;
    watch::watch(&dir, Duration::from_millis(300), max_runs, || match run_checks(ctx, lab, step, &caps) {
        Ok(report) => {
            last_passed = report.passed();
            let _ = ctx.emit(&report, || {
                format!(
                    "{}{}\n",
                    report::lab_report(&report, &ctx.style),
                    ctx.style.dim("watching for changes; Ctrl-C to stop")
                )
            });
        }
        Err(e) => failure = Some(e),
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(if last_passed { 0 } else { 1 })
}

#[derive(Serialize)]
struct Hint<'a> {
    lab: &'a str,
    step: &'a str,
    shown: &'a [String],
    remaining: usize,
}

fn hint(ctx: &Ctx, name: &str, step: Option<&str>) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let lab = cat.find(name)?;
    let mut state = State::load(&ctx.ws.meta_dir())?;
    let step = match step {
        Some(id) => lab.step(id)?,
        None => {
            let done = |id: &str| {
                state.labs.get(&lab.id).and_then(|l| l.steps.get(id)).is_some_and(|s| s.outcome == Outcome::Pass)
            };
            lab.steps.iter().find(|s| !done(&s.id)).unwrap_or(&lab.steps[lab.steps.len() - 1])
        }
    };
    let shown = state.reveal_hint(&lab.id, &step.id, step.hints.len());
    state.save(&ctx.ws.meta_dir())?;
    let hints = &step.hints[..shown];
    ctx.emit(&Hint { lab: &lab.id, step: &step.id, shown: hints, remaining: step.hints.len() - shown }, || {
        report::hint(lab, &step.id, &step.hints, shown, &ctx.style)
    })?;
    Ok(0)
}

fn status(ctx: &Ctx) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let state = State::load(&ctx.ws.meta_dir())?;
    let quizzes = crate::book::quiz::Quizzes::beside(&cat)?;
    let scores = quizzes.ordered_scores(&state);
    ctx.emit(&report::StatusModel::new(&state, &scores), || report::status(&cat, &state, &scores, &ctx.style))?;
    Ok(0)
}

fn doctor(ctx: &Ctx) -> anyhow::Result<i32> {
    let caps = host::detect();
    ctx.emit(&caps, || report::doctor(&caps, &ctx.style))?;
    Ok(0)
}

#[derive(Serialize)]
struct SetupResult {
    installed: Vec<String>,
    command: Option<String>,
    dry_run: bool,
}

fn setup_host(ctx: &Ctx, dry_run: bool) -> anyhow::Result<i32> {
    let caps = host::detect();
    let pkgs = match setup::plan(&caps) {
        setup::Plan::Nothing => Vec::new(),
        setup::Plan::Install(p) => p,
    };
    let command = (!pkgs.is_empty()).then(|| setup::apt_command(&pkgs));
    if dry_run || pkgs.is_empty() {
        if !dry_run {
            setup::guest_assets(caps.root)?;
        }
        ctx.emit(&SetupResult { installed: Vec::new(), command: command.clone(), dry_run }, || match &command {
            Some(c) => format!("would run: {c}\n"),
            None => "every host tool the labs need is installed\n".into(),
        })?;
        return Ok(0);
    }
    setup::install(&pkgs, caps.root)?;
    setup::guest_assets(caps.root)?;
    ctx.emit(&SetupResult { installed: pkgs.clone(), command, dry_run }, || {
        format!("installed: {}\n", pkgs.join(" "))
    })?;
    Ok(0)
}

#[derive(Serialize)]
struct Submitted {
    bundle: PathBuf,
    student: String,
    labs: Vec<String>,
    files: usize,
}

fn submit(ctx: &Ctx, names: &[String], output: &std::path::Path, student: Option<String>) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let labs: Vec<&Lab> = if names.is_empty() {
        cat.labs.iter().filter(|l| ctx.ws.is_started(l)).collect()
    } else {
        names.iter().map(|n| cat.find(n)).collect::<Result<_, _>>()?
    };
    if labs.is_empty() {
        bail!("no lab is started, so there is nothing to submit; `vlab start <lab>` first");
    }
    for lab in &labs {
        ctx.ws.require_started(lab)?;
    }
    let student = student.or_else(|| std::env::var("USER").ok()).context("who is submitting? pass --student NAME")?;
    let state = State::load(&ctx.ws.meta_dir())?;
    let reported = labs.iter().filter_map(|l| state.labs.get(&l.id).map(|s| (l.id.clone(), s.clone()))).collect();
    let manifest = crate::grade::bundle::pack(&labs, |l| ctx.ws.lab_dir(l), &student, reported, output)?;
    let files = manifest.labs.values().map(Vec::len).sum();
    let done =
        Submitted { bundle: output.to_path_buf(), student, labs: manifest.labs.keys().cloned().collect(), files };
    ctx.emit(&done, || {
        format!(
            "Wrote {} ({} files from {}); hand this file in.\n",
            done.bundle.display(),
            done.files,
            done.labs.join(", ")
        )
    })?;
    Ok(0)
}

struct GradeArgs {
    inputs: Vec<PathBuf>,
    out: Option<PathBuf>,
    jobs: Option<usize>,
    only: Vec<String>,
    policy: Option<PathBuf>,
    gradescope: bool,
    autograder_root: PathBuf,
}

fn grade(ctx: &Ctx, args: GradeArgs) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let policy = args.policy.as_deref().map(crate::grade::policy::Policy::load).transpose()?.unwrap_or_default();
    let jobs = args.jobs.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1));
    let (inputs, out) = if args.gradescope {
        let scratch = tempfile::tempdir()?;
        (vec![args.autograder_root.join("submission")], scratch.keep())
    } else {
        (args.inputs, args.out.context("--out DIR is required")?)
    };
    // Absolute, so paths handed to each sandboxed check survive its `cd`.
    let out = std::path::absolute(&out).with_context(|| format!("cannot make {} absolute", out.display()))?;
    let opts = crate::grade::Options {
        vlab: std::env::current_exe().context("cannot find the vlab executable")?,
        inputs,
        out: out.clone(),
        jobs,
        labs: args.only,
        policy,
        limits: crate::grade::limits::Limits::default(),
        progress: !ctx.cli_json,
    };
    let summary = crate::grade::grade(&cat, &opts)?;
    if args.gradescope {
        let results = out.join("gradescope");
        let one = std::fs::read_dir(&results)?.filter_map(|e| e.ok()).next().context("no submission was graded")?;
        let target = args.autograder_root.join("results");
        std::fs::create_dir_all(&target)?;
        std::fs::copy(one.path().join("results.json"), target.join("results.json"))?;
        let _ = std::fs::remove_dir_all(&out);
    }
    ctx.emit(&summary, || {
        format!(
            "graded {} submission(s) in {:.1}s ({:.2}s each), {} resumed from earlier runs, {} rejected\nresults in {}: gradebook.csv, junit.xml, gradescope/, feedback/\n",
            summary.graded,
            summary.seconds,
            summary.per_submission_seconds,
            summary.resumed,
            summary.rejected,
            summary.out.display()
        )
    })?;
    Ok(0)
}

fn grade_one(spec: &std::path::Path) -> anyhow::Result<i32> {
    let graded = crate::grade::sandbox::grade_inside(spec)?;
    println!("{}", serde_json::to_string(&graded)?);
    Ok(0)
}

#[derive(Serialize)]
struct BookResult {
    changed: Vec<PathBuf>,
    out: Option<PathBuf>,
}

fn book(ctx: &Ctx, action: BookAction) -> anyhow::Result<i32> {
    let cat = ctx.catalog()?;
    let book = crate::book::Book::beside(&cat.root)?;
    let list = |paths: &[PathBuf]| paths.iter().map(|p| format!("  {}\n", p.display())).collect::<String>();
    match action {
        BookAction::Sync { check: true } => {
            let stale = book.stale(&cat)?;
            ctx.emit(&BookResult { changed: stale.clone(), out: None }, || {
                if stale.is_empty() {
                    "the book's generated pages are up to date\n".into()
                } else {
                    format!("out of date (run `vlab book sync`):\n{}", list(&stale))
                }
            })?;
            Ok(if stale.is_empty() { 0 } else { 1 })
        }
        BookAction::Sync { check: false } => {
            let changed = book.sync(&cat)?;
            ctx.emit(&BookResult { changed: changed.clone(), out: None }, || {
                if changed.is_empty() { "nothing to update\n".into() } else { format!("updated:\n{}", list(&changed)) }
            })?;
            Ok(0)
        }
        BookAction::Build { out } => {
            let changed = book.sync(&cat)?;
            let out = out.unwrap_or_else(|| book.default_out());
            book.build(&out)?;
            ctx.emit(&BookResult { changed: changed.clone(), out: Some(out.clone()) }, || {
                format!("{}built the book into {}\n", list(&changed), out.display())
            })?;
            Ok(0)
        }
    }
}

fn serve_book(ctx: &Ctx, port: u16) -> anyhow::Result<i32> {
    let labs = find_labs_root(ctx.labs.as_deref())?;
    let book = crate::book::Book::beside(&labs)?;
    let opts = crate::book::serve::Options { book, labs, workspace: ctx.ws.clone(), port };
    let ws = ctx.ws.root.clone();
    crate::book::serve::serve(opts, |ready| {
        println!(
            "Serving the book at {}\n  live status of the labs in {}\n  (built in {}; rebuilt when book/ or labs/ change; Ctrl-C to stop)",
            ready.url,
            ws.display(),
            ready.build_dir.display()
        );
    })?;
    Ok(0)
}

fn guest_command(ctx: &Ctx, action: crate::cli::GuestAction) -> anyhow::Result<i32> {
    use crate::guest;
    match action {
        crate::cli::GuestAction::Assets { arm64 } => {
            let assets = guest::assets::refresh()?;
            let busybox = if arm64 { Some(guest::assets::arm64_busybox()?) } else { None };
            let value = serde_json::json!({ "guest": assets, "arm64_busybox": busybox });
            ctx.emit(&value, || guest::describe_assets(&assets, busybox.as_deref()))?;
            Ok(0)
        }
        crate::cli::GuestAction::Boot { accel, measure, timeout, log } => {
            let assets = guest::assets::ensure()?;
            let mut launch = guest::Launch::new(&assets);
            launch.accel = if accel == "kvm" { guest::Accel::Kvm } else { guest::Accel::Tcg };
            launch.timeout = Duration::from_secs(timeout);
            launch.log = log;
            if !measure.is_empty() {
                launch.cmdline.push(format!("vlab.measure={}", measure.join(",")));
            }
            let booted = launch.boot()?;
            ctx.emit(&booted.obs.facts, || guest::describe_boot(&booted))?;
            Ok(if booted.verified() { 0 } else { 1 })
        }
    }
}

fn kvm_run(ctx: &Ctx, file: &std::path::Path, nonce: Option<String>) -> anyhow::Result<i32> {
    let run = crate::kvm::command::run_file(file, nonce)?;
    ctx.emit(&run, || run.describe())?;
    Ok(if run.copied { 0 } else { 1 })
}

fn emu_command(action: crate::cli::EmuAction) -> anyhow::Result<i32> {
    match action {
        crate::cli::EmuAction::Translate { command } => crate::guest::emu::translate(&command),
        crate::cli::EmuAction::Cross { command } => crate::guest::emu::cross(&command),
    }
}

#[derive(Serialize)]
struct Compared {
    #[serde(flatten)]
    comparison: crate::compare::Comparison,
    svg: PathBuf,
}

fn compare(ctx: &Ctx, svg: Option<PathBuf>) -> anyhow::Result<i32> {
    let state = State::load(&ctx.ws.meta_dir())?;
    let comparison = crate::compare::compare(&state);
    let path = svg.unwrap_or_else(|| ctx.ws.root.join("compare.svg"));
    crate::files::write_atomic(&path, crate::report::chart::svg(&comparison).as_bytes())?;
    let done = Compared { comparison, svg: path };
    ctx.emit(&done, || crate::report::comparison(&done.comparison, Some(&done.svg), &ctx.style))?;
    Ok(0)
}

/// Asks a yes/no question on the terminal; None when not interactive or skipped.
fn ask(question: &str) -> Option<bool> {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return None;
    }
    eprint!("{question} [y/n/Enter to skip] ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).ok()?;
    match line.trim().to_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

fn advise(ctx: &Ctx, mut needs: crate::compare::Needs) -> anyhow::Result<i32> {
    let questions: [(&mut Option<bool>, &str); 5] = [
        (&mut needs.other_os, "Must it run a different kernel or OS than the host?"),
        (&mut needs.other_arch, "Must it run code for another CPU architecture?"),
        (&mut needs.strong_isolation, "Must tenants be isolated by separate kernels?"),
        (&mut needs.live_migration, "Must running instances move between hosts?"),
        (&mut needs.dedicated_resources, "Must each workload own fixed CPUs and memory?"),
    ];
    if !ctx.cli_json {
        for (answer, q) in questions {
            if answer.is_none() {
                *answer = ask(q);
            }
        }
    }
    if needs.hardware_virt.is_none() {
        needs.hardware_virt = Some(host::detect().kvm.fast);
    }
    let state = State::load(&ctx.ws.meta_dir())?;
    let advice = crate::compare::advise(&needs, &crate::compare::compare(&state));
    ctx.emit(&advice, || crate::report::advice(&advice, &ctx.style))?;
    Ok(0)
}
