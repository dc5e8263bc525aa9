//! The book: generated lab pages match the catalog, the book builds with
//! vlab (and with stock mdbook when installed), and in a real headless
//! chromium every page loads cleanly, every internal link resolves, search
//! finds each chapter, and a lab page's live status follows `vlab check`.

mod browser;
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use vlab::book::Book;
use vlab::catalog::Catalog;
use vlab::proc::Cmd;

/// A term from each chapter that search must find on that chapter's page.
const SEARCH_TERMS: &[(&str, &str)] = &[
    ("introduction.md", "Creasy"),
    ("bare-metal.md", "KPTI"),
    ("partitioning.md", "LDoms"),
    ("containers.md", "BrandZ"),
    ("uml.md", "hostfs"),
    ("paravirtualization.md", "XenStore"),
    ("full-virtualization.md", "Popek"),
    ("pv-drivers.md", "RTL8139"),
    ("choosing.md", "Firecracker"),
    ("lab-map.md", "difficulties"),
    ("unusual-hosts.md", "unusual"),
    ("glossary.md", "VMCB"),
];

/// A copy of book/ (without build output) and labs/, side by side, so tests
/// may sync, build and edit without touching the checkout.
fn copy_of_book() -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&base).unwrap();
    let tree = tempfile::Builder::new().prefix("book-").tempdir_in(base).unwrap();
    vlab::workspace::copy_tree(&common::labs(), &tree.path().join("labs")).unwrap();
    let book = common::repo().join("book");
    for e in std::fs::read_dir(&book).unwrap().flatten() {
        let to = tree.path().join("book").join(e.file_name());
        if e.file_name() == "book" {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            vlab::workspace::copy_tree(&e.path(), &to).unwrap();
        } else {
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(e.path(), &to).unwrap();
        }
    }
    tree
}

fn html_pages(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "html") {
                out.insert(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out
}

#[test]
fn generated_pages_match_the_labs() {
    let cat = Catalog::load(&common::labs()).unwrap();
    let book = Book::beside(&common::labs()).unwrap();
    let stale = book.stale(&cat).unwrap();
    assert!(
        stale.is_empty(),
        "the book's generated pages disagree with labs/ (a lab was added, changed or removed): run \
         `cargo run -- book sync` and commit the result. Stale: {stale:#?}"
    );
    let summary = std::fs::read_to_string(book.src().join("SUMMARY.md")).unwrap();
    for lab in &cat.labs {
        assert!(summary.contains(&format!("(labs/{}.md)", lab.id)), "{} is missing from SUMMARY.md", lab.id);
        assert!(book.src().join("labs").join(format!("{}.md", lab.id)).is_file());
    }
    // Every chapter has a search term in the browser test, and the term is in it.
    for line in summary.lines().filter(|l| l.contains("](") && !l.contains("](labs/")) {
        let link = line.split("](").nth(1).unwrap().trim_end_matches(')');
        let term = SEARCH_TERMS.iter().find(|(c, _)| *c == link).map(|(_, t)| *t);
        let term = term.unwrap_or_else(|| panic!("add a search term for the chapter {link} to SEARCH_TERMS"));
        let text = std::fs::read_to_string(book.src().join(link)).unwrap();
        assert!(text.contains(term), "{link} no longer mentions {term}; pick another search term");
    }
}

/// The chapters that teach a tier, each with a quiz (pages such as a glossary
/// or an appendix need none).
const QUIZ_CHAPTERS: &[&str] = &[
    "introduction.md",
    "bare-metal.md",
    "partitioning.md",
    "containers.md",
    "uml.md",
    "paravirtualization.md",
    "full-virtualization.md",
    "pv-drivers.md",
    "choosing.md",
];

/// Every chapter has a quiz of 3 to 6 questions (book/quizzes/<chapter>.toml,
/// validated when `book sync` compiles them into book/vlab/quizzes.js).
#[test]
fn every_chapter_has_a_quiz() {
    let book = Book::beside(&common::labs()).unwrap();
    let js = std::fs::read_to_string(common::repo().join("book/vlab/quizzes.js")).unwrap();
    let json = js.split_once("window.vlabQuizzes = ").unwrap().1.trim_end().trim_end_matches(';');
    let quizzes: Value = serde_json::from_str(json).unwrap();
    let summary = std::fs::read_to_string(book.src().join("SUMMARY.md")).unwrap();
    for chapter in QUIZ_CHAPTERS {
        assert!(summary.contains(&format!("({chapter})")), "{chapter} is not in SUMMARY.md");
        let stem = chapter.trim_end_matches(".md");
        let n = quizzes["chapters"][stem]["questions"].as_array().map(Vec::len).unwrap_or(0);
        assert!((3..=6).contains(&n), "{chapter} has {n} quiz questions; book/quizzes/{stem}.toml should have 3 to 6");
    }
}

#[test]
fn sync_follows_the_catalog_and_names_bad_chapters() {
    let tree = copy_of_book();
    let labs = tree.path().join("labs");
    let ws = common::workspace();
    let stale_page = tree.path().join("book/src/labs/99-gone.md");
    std::fs::write(&stale_page, "# a lab that no longer exists\n").unwrap();
    common::vlab_with_labs(ws.path(), &labs).args(["book", "sync", "--check"]).assert().code(1);
    common::vlab_with_labs(ws.path(), &labs).args(["book", "sync"]).assert().success();
    assert!(!stale_page.exists(), "sync removes pages of labs that do not exist");
    common::vlab_with_labs(ws.path(), &labs).args(["book", "sync", "--check"]).assert().success();

    let toml = labs.join("01-bare-metal/lab.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("chapter = \"bare-metal.md\"", "chapter = \"nowhere.md\"")).unwrap();
    let out = common::vlab_with_labs(ws.path(), &labs).args(["book", "sync"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("lab.toml") && err.contains("nowhere.md") && err.contains("bare-metal.md"), "{err}");
    std::fs::write(&toml, text).unwrap();

    // A quiz is data like lab.toml: a mistake names the file and line, and an edit makes the book stale.
    let quiz = tree.path().join("book/quizzes/uml.toml");
    let text = std::fs::read_to_string(&quiz).unwrap();
    std::fs::write(&quiz, text.replacen("kind = \"choice\"", "kind = \"choice\"\npoints = 3", 1)).unwrap();
    let out = common::vlab_with_labs(ws.path(), &labs).args(["book", "sync", "--check"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("quizzes/uml.toml:") && err.contains("unknown field `points`"), "{err}");
    std::fs::write(&quiz, text.replacen("prompt = \"", "prompt = \"Edited. ", 1)).unwrap();
    common::vlab_with_labs(ws.path(), &labs).args(["book", "sync", "--check"]).assert().code(1);
    common::vlab_with_labs(ws.path(), &labs).args(["book", "sync"]).assert().success();
    let js = std::fs::read_to_string(tree.path().join("book/vlab/quizzes.js")).unwrap();
    assert!(js.contains("Edited. "), "sync compiles the quizzes");
}

#[test]
fn book_builds_with_vlab_and_loads_nothing_from_the_internet() {
    let tree = copy_of_book();
    let ws = common::workspace();
    let out = tree.path().join("out");
    common::vlab_with_labs(ws.path(), &tree.path().join("labs"))
        .args(["book", "build", "--out"])
        .arg(&out)
        .assert()
        .success();
    let pages = html_pages(&out);
    let cat = Catalog::load(&tree.path().join("labs")).unwrap();
    for lab in &cat.labs {
        assert!(pages.contains(&format!("labs/{}.html", lab.id)), "no page for {}: {pages:?}", lab.id);
    }
    for (chapter, _) in SEARCH_TERMS {
        assert!(pages.contains(&chapter.replace(".md", ".html")), "no page for {chapter}");
    }
    let has = |prefix: &str| {
        std::fs::read_dir(&out).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with(prefix))
    };
    assert!(has("searchindex"), "the search index is part of the build");
    // Resources (scripts, styles, fonts, images) all come from the book itself.
    let external = regex::Regex::new(
        r#"(?i)(<script[^>]+src|<link[^>]+href|<img[^>]+src)\s*=\s*"(https?:)?//|url\((["']?)(https?:)?//"#,
    )
    .unwrap();
    for page in &pages {
        let html = std::fs::read_to_string(out.join(page)).unwrap();
        assert!(!external.is_match(&html), "{page} loads something from another host");
    }
}

/// The same book under stock mdbook: the lab pages are real files, so it builds the same pages.
#[test]
fn book_builds_with_stock_mdbook() {
    common::supervise();
    let mdbook = std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join("mdbook")).find(|p| p.is_file()))
        .or_else(|| {
            let p = PathBuf::from(std::env::var_os("HOME")?).join(".cargo/bin/mdbook");
            p.is_file().then_some(p)
        });
    let Some(mdbook) = mdbook else {
        common::skip("mdbook not installed (`cargo install mdbook`; .ci/run installs it)");
        return;
    };
    // vlab first: it syncs the generated pages, so both build the same sources.
    let tree = copy_of_book();
    let ws = common::workspace();
    let ours = tree.path().join("ours");
    common::vlab_with_labs(ws.path(), &tree.path().join("labs"))
        .args(["book", "build", "--out"])
        .arg(&ours)
        .assert()
        .success();
    let out = tree.path().join("stock");
    let run = Cmd::new(&mdbook)
        .args(["build", "-d"])
        .arg(&out)
        .arg(tree.path().join("book"))
        .timeout(Duration::from_secs(300))
        .run()
        .unwrap();
    assert!(run.success(), "stock mdbook failed: {}\n{}", run.stdout, run.stderr);
    assert_eq!(html_pages(&out), html_pages(&ours), "stock mdbook and vlab build different pages");
}

/// `vlab serve` in the background, stopped with SIGTERM (its Ctrl-C path) when dropped.
struct Server {
    child: vlab::proc::Child,
    url: String,
    build_dir: PathBuf,
}

impl Server {
    fn start(labs: &Path, ws: &Path) -> Server {
        common::supervise();
        let child = Cmd::new(assert_cmd::cargo::cargo_bin("vlab"))
            .args(["serve", "--port", "0"])
            .env("VLAB_LABS", labs)
            .env("VLAB_WORKSPACE", ws)
            .env("NO_COLOR", "1")
            .timeout(Duration::from_secs(900))
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (out, _) = child.read_stdout(1 << 16);
            let url = out.lines().find_map(|l| l.strip_prefix("Serving the book at "));
            let dir = out.lines().find_map(|l| l.trim().strip_prefix("(built in ")).and_then(|l| l.split(';').next());
            if let (Some(url), Some(dir)) = (url, dir) {
                return Server { url: url.trim().to_string(), build_dir: PathBuf::from(dir), child };
            }
            let (err, _) = child.read_stderr(1 << 16);
            assert!(child.is_running(), "vlab serve exited: {out}{err}");
            assert!(Instant::now() < deadline, "vlab serve did not start in 120 s: {out}{err}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// SIGTERM, as Ctrl-C would: the server removes its build directories.
impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: a plain signal send to the server this test started; if it is gone already, nothing is left to stop.
        unsafe { libc::kill(self.child.pid(), libc::SIGTERM) };
        let _ = self.child.wait_until(Instant::now() + Duration::from_secs(20));
    }
}

fn check(ws: &Path, labs: &Path, lab: &str, step: &str) -> i32 {
    let out = common::vlab_with_labs(ws, labs).args(["check", lab, "--step", step]).output().unwrap();
    out.status.code().unwrap_or(-1)
}

/// A lab whose one step passes exactly when `ok.sh` exits 0: the status test
/// needs a pass that no machine load can turn into a failure.
fn add_fixture_lab(labs: &Path) {
    let dir = labs.join("99-status");
    for (sub, code) in [("starter", 1), ("solution", 0)] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::write(dir.join(sub).join("ok.sh"), format!("exit {code}\n")).unwrap();
    }
    std::fs::write(dir.join("README.md"), "# Status fixture\n\n## Step 1: exit zero\n\nMake `ok.sh` exit 0.\n")
        .unwrap();
    std::fs::write(
        dir.join("lab.toml"),
        r#"id = "99-status"
title = "Status fixture"
tier = "bare-metal"
chapter = "bare-metal.md"
summary = "A step that passes when ok.sh exits 0."
estimate_minutes = 1

[[steps]]
id = "ok"
title = "Exit zero"
points = 1
readme_section = "Step 1: exit zero"
files = ["ok.sh"]
hints = ["exit 0"]

[[steps.checks]]
kind = "run"
command = ["sh", "ok.sh"]
[steps.checks.expect]
exit = 0
"#,
    )
    .unwrap();
}

#[test]
fn book_in_a_browser() {
    let Some(chromium) = browser::chromium_path() else {
        common::skip("chromium not installed (.ci/run installs it)");
        return;
    };
    let tree = copy_of_book();
    let labs = tree.path().join("labs");
    add_fixture_lab(&labs);
    let ws = common::workspace();
    for lab in ["01-bare-metal", "99-status"] {
        common::vlab_with_labs(ws.path(), &labs).args(["start", lab]).assert().success();
    }
    let server = Server::start(&labs, ws.path());
    let mut b = browser::Browser::launch(&chromium);
    let chromium_pid = b.pid();
    let base = server.url.clone();

    // Every page loads without errors; collect its links, ids and broken images.
    let pages = html_pages(&server.build_dir);
    let mut ids: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut links: Vec<(String, String)> = Vec::new();
    for page in &pages {
        b.goto(&format!("{base}{page}"));
        let v = b.eval(
            "JSON.stringify({links: [...document.querySelectorAll('a[href]')].map(a => a.href), \
             ids: [...document.querySelectorAll('[id]')].map(e => e.id), \
             broken: [...document.images].filter(i => !('vlabLive' in i.dataset) && !(i.complete && i.naturalWidth > 0)).map(i => i.src)})",
        );
        let v: Value = serde_json::from_str(v.as_str().unwrap()).unwrap();
        let broken: Vec<&Value> = v["broken"].as_array().unwrap().iter().collect();
        assert!(broken.is_empty(), "{page}: images that did not render: {broken:?}");
        ids.insert(
            page.clone(),
            v["ids"].as_array().unwrap().iter().map(|i| i.as_str().unwrap().to_string()).collect(),
        );
        links.extend(v["links"].as_array().unwrap().iter().map(|l| (page.clone(), l.as_str().unwrap().to_string())));
        let problems = b.take_problems();
        assert!(problems.is_empty(), "{page}:\n{}", browser::describe(&problems));
    }
    assert!(pages.len() >= SEARCH_TERMS.len() + 2, "too few pages: {pages:?}");

    // Every internal link names a page (or file) of the book, and its #fragment an element there.
    let mut dead = Vec::new();
    for (page, link) in &links {
        let Some(rest) = link.strip_prefix(&base) else { continue };
        let (path, fragment) = rest.split_once('#').unwrap_or((rest, ""));
        let path = path.split('?').next().unwrap();
        let path = if path.is_empty() || path.ends_with('/') { format!("{path}index.html") } else { path.to_string() };
        if !server.build_dir.join(&path).is_file() {
            dead.push(format!("{page} → {link} (no such file)"));
        } else if !fragment.is_empty()
            && path.ends_with(".html")
            && page != "404.html"
            && !ids[&path].contains(fragment)
        {
            // 404.html carries <base href="/"> so that it works at any URL: its own
            // heading anchors point at the site root, by mdBook's design.
            dead.push(format!("{page} → {link} (no element #{fragment})"));
        }
    }
    assert!(dead.is_empty(), "dead internal links:\n{}", dead.join("\n"));
    assert!(links.iter().any(|(_, l)| l.contains("/labs/01-bare-metal.html")), "no page links to the first lab");

    // Search finds a term of each chapter on that chapter's page, offline.
    for (chapter, term) in SEARCH_TERMS {
        b.goto(&format!("{base}index.html?search={term}"));
        let html = chapter.replace(".md", ".html");
        let hits = b.wait_for(
            "[...document.querySelectorAll('#mdbook-searchresults a')].map(a => a.getAttribute('href')).join(' ')",
            20,
            &format!("search results for {term}"),
        );
        assert!(hits.as_str().unwrap().contains(&html), "searching {term} does not find {html}: {hits}");
    }

    // A lab page shows the workspace's status, and follows `vlab check`.
    b.goto(&format!("{base}labs/99-status.html"));
    b.wait_for("document.querySelector('.vlab-status').dataset.state === 'started'", 15, "status: started");
    let badge = |step: &str| format!("(document.querySelector('#check-{step} .vlab-badge') || {{}}).dataset?.outcome");
    assert_eq!(b.eval(&badge("ok")), "unchecked");
    assert_eq!(check(ws.path(), &labs, "99-status", "ok"), 1, "the fixture's starter fails");
    b.wait_for(&format!("{} === 'fail'", badge("ok")), 15, "the step marked failed");
    b.wait_for("document.querySelector('#step-1-exit-zero .vlab-badge')", 5, "a badge on the README's step heading");
    common::overlay(&labs.join("99-status/solution"), &ws.path().join("99-status"));
    assert_eq!(check(ws.path(), &labs, "99-status", "ok"), 0, "the fixture's solution passes");
    b.wait_for(&format!("{} === 'pass'", badge("ok")), 15, "the step marked passed");
    b.wait_for("document.querySelector('.vlab-status').dataset.state === 'checked'", 5, "status: checked");
    b.wait_for(
        "document.querySelector('a[href$=\"labs/99-status.html\"] .vlab-badge[data-outcome=pass]')",
        5,
        "a passed lab's sidebar badge",
    );

    // The first lab's page after a failed check: the picture for review.
    assert_eq!(check(ws.path(), &labs, "01-bare-metal", "cpu"), 1, "the starter fails the cpu step");
    b.goto(&format!("{base}labs/01-bare-metal.html"));
    b.wait_for(&format!("{} === 'fail'", badge("cpu")), 15, "the cpu step marked failed");
    let shots = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    b.screenshot(&shots.join("lab.png"));
    b.eval("document.querySelector('#check-cpu ~ details').open = true; document.getElementById('check-cpu').scrollIntoView()");
    b.screenshot(&shots.join("lab-steps.png"));
    b.goto(&base);
    b.wait_for("document.querySelector('a[href$=\"labs/01-bare-metal.html\"] .vlab-badge')", 15, "a sidebar badge");
    b.screenshot(&shots.join("home.png"));

    // The choosing chapter draws the reader's comparison, and redraws it after a check.
    b.goto(&format!("{base}choosing.html"));
    let chart = "(document.querySelector('.vlab-compare img') || {})";
    b.wait_for(&format!("{chart}.complete && {chart}.naturalWidth > 0"), 15, "the comparison chart");
    let before = b.eval(&format!("{chart}.src"));
    common::overlay(&labs.join("01-bare-metal/solution"), &ws.path().join("01-bare-metal"));
    assert_eq!(check(ws.path(), &labs, "01-bare-metal", "cpu"), 0, "the solution passes the cpu step");
    b.wait_for(
        &format!("{chart}.src !== {before} && {chart}.complete && {chart}.naturalWidth > 0"),
        15,
        "a redrawn chart",
    );
    let svg = b.eval("fetch('_vlab/compare.svg').then(r => r.text())");
    assert!(svg.as_str().unwrap().contains("Shell loop (CPU): bare metal"), "the chart lacks the new number: {svg}");
    b.eval("document.querySelector('.vlab-compare').scrollIntoView()");
    b.screenshot(&shots.join("choosing.png"));

    // Live reload: an edit under book/ reaches the open page by itself.
    b.goto(&format!("{base}introduction.html"));
    b.eval("window.vlabBeforeReload = true");
    let intro = tree.path().join("book/src/introduction.md");
    let text = std::fs::read_to_string(&intro).unwrap();
    std::fs::write(&intro, format!("{text}\nLive reload marker 4711.\n")).unwrap();
    b.wait_for(
        "!window.vlabBeforeReload && !!document.body && document.body.innerText.includes('Live reload marker 4711')",
        60,
        "the page to reload with the edit",
    );
    // ... and so does an edit of a lab's README under labs/, on its lab page.
    b.goto(&format!("{base}labs/99-status.html"));
    b.eval("window.vlabBeforeReload = true");
    let readme = labs.join("99-status/README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    std::fs::write(&readme, format!("{text}\nLab text marker 4712.\n")).unwrap();
    b.wait_for(
        "!window.vlabBeforeReload && !!document.body && document.body.innerText.includes('Lab text marker 4712')",
        60,
        "the lab page to reload with the README's edit",
    );
    let problems = b.take_problems();
    assert!(problems.is_empty(), "{}", browser::describe(&problems));

    // Nothing was fetched from anywhere but the local server.
    let foreign: Vec<&String> = b
        .requests
        .iter()
        .filter(|u| !u.starts_with(&base) && !u.starts_with("data:") && !u.starts_with("about:"))
        .collect();
    assert!(foreign.is_empty(), "requests that left the machine: {foreign:?}");

    drop(b);
    assert!(!common::alive(chromium_pid), "chromium outlived the test");
    let build_dir = server.build_dir.clone();
    drop(server);
    assert!(!build_dir.exists(), "vlab serve left its build in {}", build_dir.display());
}

/// One raw HTTP request to the server; returns the status code.
fn raw_request(url: &str, request: &str) -> u16 {
    use std::io::{Read, Write};
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.replace("{host}", addr).as_bytes()).unwrap();
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0)
}

/// `vlab status --json` for the workspace, and its text form.
fn status(ws: &Path, labs: &Path) -> (Value, String) {
    let out = common::vlab_with_labs(ws, labs).args(["--json", "status"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = common::vlab_with_labs(ws, labs).arg("status").env("NO_COLOR", "1").output().unwrap();
    (serde_json::from_slice(&out.stdout).unwrap(), String::from_utf8_lossy(&text.stdout).into_owned())
}

/// A chapter's quiz in a real browser: answered by clicks, explained on the
/// page, graded again and recorded by `vlab serve`, shown by `vlab status`
/// and in the sidebar; the same page from file:// keeps answers locally.
#[test]
fn quiz_in_a_browser() {
    let Some(chromium) = browser::chromium_path() else {
        common::skip("chromium not installed (.ci/run installs it)");
        return;
    };
    let tree = copy_of_book();
    let labs = tree.path().join("labs");
    let ws = common::workspace();
    let server = Server::start(&labs, ws.path());
    let mut b = browser::Browser::launch(&chromium);
    let base = server.url.clone();

    b.goto(&format!("{base}bare-metal.html"));
    b.wait_for("document.querySelectorAll('.vlab-quiz .vlab-question').length", 10, "the chapter's quiz");
    let questions = b.eval("window.vlabQuizzes.chapters['bare-metal'].questions.length").as_u64().unwrap();
    // The first two choice questions: one answered right, one wrong.
    let plan = b.eval(
        "JSON.stringify(window.vlabQuizzes.chapters['bare-metal'].questions.filter(q => q.kind === 'choice').slice(0, 2)\
         .map(q => ({id: q.id, right: q.options.map((o, i) => o.correct ? i : -1).filter(i => i >= 0), \
                     wrong: q.options.findIndex(o => !o.correct)})))",
    );
    let plan: Value = serde_json::from_str(plan.as_str().unwrap()).unwrap();
    let (right, wrong) = (&plan[0], &plan[1]);
    let box_of = |id: &Value| format!("document.querySelector('.vlab-question[data-question={id}]')");

    // Right: every option's explanation appears, the server records it.
    let q = box_of(&right["id"]);
    for i in right["right"].as_array().unwrap() {
        b.eval(&format!("{q}.querySelector('.vlab-options input[value=\"{i}\"]').click()"));
    }
    b.eval(&format!("{q}.querySelector('.vlab-check').click()"));
    b.wait_for(&format!("{q}.querySelector('.vlab-feedback').dataset.result === 'correct'"), 5, "'correct'");
    let whys =
        b.eval(&format!("[...{q}.querySelectorAll('.vlab-why')].every(w => !w.hidden && w.innerText.length > 10)"));
    assert_eq!(whys, true, "every option's explanation shows after answering");
    b.wait_for(&format!("{q}.dataset.recorded === 'server'"), 10, "the answer recorded by vlab serve");
    let (st, _) = status(ws.path(), &labs);
    let id = right["id"].as_str().unwrap();
    assert_eq!(st["quizzes"]["bare-metal"][id]["correct"], true, "{st}");
    assert_eq!(
        st["quiz_scores"]["bare-metal"],
        serde_json::json!({"questions": questions, "answered": 1, "correct": 1})
    );

    // Wrong: shown as wrong, the picked option marked, recorded as wrong.
    let q = box_of(&wrong["id"]);
    b.eval(&format!("{q}.querySelector('.vlab-options input[value=\"{}\"]').click()", wrong["wrong"]));
    b.eval(&format!("{q}.querySelector('.vlab-check').click()"));
    b.wait_for(&format!("{q}.querySelector('.vlab-feedback').dataset.result === 'wrong'"), 5, "'wrong'");
    let picked = b.eval(&format!("{q}.querySelector('li[data-picked=true]').dataset.correct"));
    assert_eq!(picked, "false");
    b.wait_for(&format!("{q}.dataset.recorded === 'server'"), 10, "the wrong answer recorded");
    let (st, text) = status(ws.path(), &labs);
    assert_eq!(st["quizzes"]["bare-metal"][wrong["id"].as_str().unwrap()]["correct"], false, "{st}");
    assert_eq!(st["quiz_scores"]["bare-metal"]["correct"], 1);
    let line = text.lines().find(|l| l.starts_with("bare-metal ")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains(&format!("quiz: 1/{questions} correct")), "{text}");

    // The sidebar shows the chapter's score; a reload shows the answers given.
    b.wait_for(
        &format!("(document.querySelector('#mdbook-sidebar .vlab-quiz-badge[data-chapter=bare-metal]') || {{}}).textContent === 'quiz 1/{questions}'"),
        10,
        "the chapter's quiz score in the sidebar",
    );
    b.eval(&format!("{}.scrollIntoView()", box_of(&wrong["id"])));
    b.screenshot(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/quiz.png"));
    b.goto(&format!("{base}bare-metal.html"));
    b.wait_for(&format!("{}.dataset.answered === 'true'", box_of(&right["id"])), 5, "the earlier answer restored");
    let problems = b.take_problems();
    assert!(problems.is_empty(), "{}", browser::describe(&problems));

    // A lab's "explain" question: the text is kept with the lab for the instructor.
    b.goto(&format!("{base}paravirtualization.html"));
    let q = "document.querySelector('.vlab-question[data-kind=explain]')";
    b.wait_for(q, 10, "an explain question");
    let qid = b.eval(&format!("{q}.dataset.question"));
    let qid = qid.as_str().unwrap();
    let text = "xen-pirq: those channels carry physical interrupts, and a domU drives no hardware";
    b.eval(&format!("{q}.querySelector('textarea').value = {text:?}; {q}.querySelector('.vlab-check').click()"));
    b.wait_for(&format!("{q}.querySelector('.vlab-feedback').dataset.result === 'correct'"), 5, "keywords found");
    b.wait_for(&format!("{q}.dataset.recorded === 'server'"), 10, "the explanation recorded");
    b.eval(&format!("{q}.scrollIntoView()"));
    b.screenshot(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots/quiz-explain.png"));
    let (st, _) = status(ws.path(), &labs);
    let lab =
        b.eval(&format!("window.vlabQuizzes.chapters.paravirtualization.questions.find(q => q.id === '{qid}').lab"));
    let kept = &st["labs"][lab.as_str().unwrap()]["explain"][qid];
    assert_eq!((kept["answer"].as_str(), &kept["keywords_found"]), (Some(text), &Value::Bool(true)), "{st}");
    // The lab's own page asks the same question, showing the answer given.
    b.goto(&format!("{base}labs/{}.html", lab.as_str().unwrap()));
    let q = format!("document.querySelector('.vlab-question[data-question={qid}]')");
    b.wait_for(&format!("{q} && {q}.dataset.answered === 'true'"), 10, "the lab page's explain question, answered");
    assert_eq!(b.eval(&format!("{q}.querySelector('textarea').value")), text);

    // Hostile posts: a cross-site form, another origin, oversize, unknown ids.
    let post = |headers: &str, body: &str| {
        raw_request(
            &base,
            &format!(
                "POST /_vlab/quiz HTTP/1.1\r\nHost: {{host}}\r\n{headers}Content-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
    };
    let json = "Content-Type: application/json\r\n";
    let good = format!(r#"{{"chapter":"bare-metal","question":"{id}","answer":{}}}"#, right["right"]);
    assert_eq!(post(json, &good), 200);
    assert_eq!(post("Content-Type: text/plain\r\n", &good), 415);
    assert_eq!(post(&format!("{json}Origin: http://example.com\r\n"), &good), 403);
    assert_eq!(post(json, &good.replace("bare-metal", "../../etc")), 400);
    assert_eq!(
        post(json, &format!(r#"{{"chapter":"bare-metal","question":"{id}","answer":"{}"}}"#, "x".repeat(9000))),
        413
    );
    assert_eq!(raw_request(&base, "DELETE /_vlab/quiz HTTP/1.1\r\n\r\n"), 405);
    let (st, _) = status(ws.path(), &labs);
    let chapters: Vec<&String> = st["quizzes"].as_object().unwrap().keys().collect();
    assert_eq!(chapters, ["bare-metal", "paravirtualization"], "nothing but the answers given recorded: {st}");
    assert_eq!(st["quizzes"]["bare-metal"][id]["attempts"], 2);

    // From file:// (the stock build): the quiz works, answers stay in the browser.
    b.goto(&format!("file://{}/bare-metal.html", server.build_dir.display()));
    let q = box_of(&right["id"]);
    b.wait_for(&q, 5, "the quiz from file://");
    for i in right["right"].as_array().unwrap() {
        b.eval(&format!("{q}.querySelector('.vlab-options input[value=\"{i}\"]').click()"));
    }
    b.eval(&format!("{q}.querySelector('.vlab-check').click()"));
    b.wait_for(&format!("{q}.dataset.recorded === 'local'"), 5, "a local-only answer");
    b.wait_for(
        &format!("(document.querySelector('#mdbook-sidebar .vlab-quiz-badge[data-chapter=bare-metal]') || {{}}).textContent === 'quiz 1/{questions}'"),
        5,
        "the browser's own score in the sidebar",
    );
    let problems = b.take_problems();
    assert!(problems.is_empty(), "{}", browser::describe(&problems));
}
