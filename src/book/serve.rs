//! `vlab serve`: build the book, serve it on 127.0.0.1, rebuild it when
//! anything under book/ or labs/ changes, and answer `/_vlab/status` with the
//! live lab status. The book's own script (book/vlab/live.js) polls that
//! endpoint: it marks labs and steps with their last check result and reloads
//! the page when the generation changes. `/_vlab/compare.svg` draws the
//! reader's comparison chart for the choosing chapter. The book's quiz.js
//! posts each quiz answer to `/_vlab/quiz`; the server grades it against
//! book/quizzes/ itself and records it in the workspace state. That POST is
//! the only request with a body: same-origin JSON only, bounded in size, and
//! naming a question the book has.
//!
//! Builds go to scratch directories that are removed on exit and on Ctrl-C or
//! SIGTERM, so a served book leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::Context;

use super::Book;
use super::quiz::{Answer, MAX_ANSWER, Question, Quizzes};
use super::status::LiveStatus;
use crate::catalog::Catalog;
use crate::cleanup::Scratch;
use crate::workspace::Workspace;

/// Where the status endpoint lives (under the site root; no book page can clash with it).
pub(crate) const STATUS_PATH: &str = "/_vlab/status";
/// Where the book's pages post quiz answers.
pub(crate) const QUIZ_PATH: &str = "/_vlab/quiz";
/// The reader's comparison chart (`vlab compare`), drawn from the workspace state on each request.
pub(crate) const COMPARE_PATH: &str = "/_vlab/compare.svg";
const POLL: Duration = Duration::from_millis(400);

pub(crate) struct Options {
    pub(crate) book: Book,
    pub(crate) labs: PathBuf,
    pub(crate) workspace: Workspace,
    pub(crate) port: u16,
}

/// What `serve` tells its caller once the book is built and the port is open.
pub(crate) struct Ready {
    pub(crate) url: String,
    pub(crate) build_dir: PathBuf,
}

struct Site {
    current: Scratch,
    /// The build before, kept one generation so requests in flight finish.
    _previous: Option<Scratch>,
    generation: u64,
    error: Option<String>,
}

impl Site {
    fn dir(&self) -> PathBuf {
        self.current.path().to_path_buf()
    }
}

/// Builds, binds, calls `ready`, then serves until the process is stopped.
pub(crate) fn serve(opts: Options, ready: impl FnOnce(&Ready)) -> anyhow::Result<()> {
    let first = build_once(&opts)?;
    let listener = TcpListener::bind(("127.0.0.1", opts.port)).map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on 127.0.0.1:{}: {e}; another program may be using the port: pass --port P (0 picks a free one)",
            opts.port
        )
    })?;
    let port = listener.local_addr()?.port();
    ready(&Ready { url: format!("http://127.0.0.1:{port}/"), build_dir: first.path().to_path_buf() });
    let site = Arc::new(Mutex::new(Site { current: first, _previous: None, generation: 1, error: None }));
    let opts = Arc::new(opts);
    {
        let (site, opts) = (site.clone(), opts.clone());
        std::thread::spawn(move || watch_and_rebuild(&opts, &site));
    }
    // One short-lived thread per connection, one request per connection: a
    // book on localhost needs nothing more, and nothing can stall a queue.
    for stream in listener.incoming().flatten() {
        let (site, opts) = (site.clone(), opts.clone());
        std::thread::spawn(move || {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let _ = handle(stream, &site, &opts);
        });
    }
    Ok(())
}

/// Regenerates the lab pages and renders the book into a fresh scratch directory.
fn build_once(opts: &Options) -> anyhow::Result<Scratch> {
    let cat = Catalog::load(&opts.labs)?;
    opts.book.sync(&cat)?;
    let out = Scratch::new_in(&std::env::temp_dir(), "vlab-book-").context("cannot create a build directory")?;
    opts.book.build(out.path())?;
    Ok(out)
}

fn lock(site: &Mutex<Site>) -> std::sync::MutexGuard<'_, Site> {
    site.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every file's modification time under book/ (not its build output) and labs/.
fn snapshot(book: &Book, labs: &Path) -> BTreeMap<PathBuf, SystemTime> {
    let mut all = crate::watch::snapshot(labs);
    if let Ok(rd) = std::fs::read_dir(&book.root) {
        for e in rd.flatten() {
            let path = e.path();
            if path == book.default_out() {
                continue;
            }
            if path.is_dir() {
                all.extend(crate::watch::snapshot(&path));
            } else if let Ok(m) = e.metadata().and_then(|m| m.modified()) {
                all.insert(path, m);
            }
        }
    }
    all
}

fn watch_and_rebuild(opts: &Options, site: &Mutex<Site>) {
    let mut last = snapshot(&opts.book, &opts.labs);
    loop {
        std::thread::sleep(POLL);
        if snapshot(&opts.book, &opts.labs) == last {
            continue;
        }
        let started = Instant::now();
        let result = build_once(opts);
        // Syncing may rewrite generated pages: take the snapshot after it.
        last = snapshot(&opts.book, &opts.labs);
        let mut s = lock(site);
        match result {
            Ok(dir) => {
                let old = std::mem::replace(&mut s.current, dir);
                s._previous = Some(old);
                s.generation += 1;
                s.error = None;
                println!("rebuilt the book in {} ms", started.elapsed().as_millis());
            }
            Err(e) => {
                eprintln!("vlab: the book did not rebuild (still serving the last good build): {e:#}");
                s.error = Some(format!("{e:#}"));
            }
        }
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

/// Longest request head (request line and headers) read.
const MAX_HEAD: u64 = 16 * 1024;
/// Longest request body accepted: a quiz answer is one question's answer.
const MAX_BODY: usize = 8 * 1024;

/// The parts of a request the server looks at.
#[derive(Debug, Default)]
struct Request {
    method: String,
    target: String,
    /// Header names in lower case.
    headers: BTreeMap<String, String>,
}

fn read_request(reader: &mut impl BufRead) -> std::io::Result<Request> {
    let mut head = reader.by_ref().take(MAX_HEAD);
    let mut request_line = String::new();
    head.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let mut req = Request {
        method: parts.next().unwrap_or("").to_string(),
        target: parts.next().unwrap_or("/").to_string(),
        headers: BTreeMap::new(),
    };
    let mut line = String::new();
    while head.read_line(&mut line)? > 2 {
        if let Some((name, value)) = line.split_once(':') {
            req.headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
        line.clear();
    }
    Ok(req)
}

fn handle(stream: TcpStream, site: &Mutex<Site>, opts: &Options) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let req = read_request(&mut reader)?;
    let reply = match req.method.as_str() {
        "GET" | "HEAD" => route(&req.target, site, opts),
        "POST" if req.target.split('?').next() == Some(QUIZ_PATH) => match read_body(&req, &mut reader) {
            Ok(body) => post_quiz(&body, opts),
            Err(reply) => reply,
        },
        _ => Reply {
            status: 405,
            content_type: "text/plain",
            body: format!("only GET and HEAD are served, and POST to {QUIZ_PATH}").into_bytes(),
        },
    };
    let reason = match reply.status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Method Not Allowed",
    };
    let mut out = stream;
    write!(
        out,
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.content_type,
        reply.body.len()
    )?;
    if req.method != "HEAD" {
        out.write_all(&reply.body)?;
    }
    out.flush()
}

fn json_error(status: u16, message: impl Into<String>) -> Reply {
    let body = serde_json::json!({ "error": message.into() });
    Reply { status, content_type: "application/json", body: body.to_string().into_bytes() }
}

/// The body of a POST, bounded. Only a same-origin JSON request is taken: a
/// page on another site cannot send `application/json` here without a CORS
/// preflight, which this server refuses, so it cannot record answers.
fn read_body(req: &Request, reader: &mut impl std::io::Read) -> Result<Vec<u8>, Reply> {
    let json = req
        .headers
        .get("content-type")
        .is_some_and(|t| t.split(';').next().is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json")));
    if !json {
        return Err(json_error(415, "send the answer as Content-Type: application/json"));
    }
    if let Some(origin) = req.headers.get("origin")
        && req.headers.get("host").is_none_or(|h| origin != &format!("http://{h}"))
    {
        return Err(json_error(403, "answers are taken from the book's own pages only"));
    }
    let Some(len) = req.headers.get("content-length").and_then(|l| l.parse::<usize>().ok()) else {
        return Err(json_error(411, "a Content-Length is required"));
    };
    if len > MAX_BODY {
        return Err(json_error(413, format!("an answer is at most {MAX_BODY} bytes")));
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).map_err(|_| json_error(400, "the body is shorter than its Content-Length"))?;
    Ok(body)
}

/// What the page posts for one answered question.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Posted {
    chapter: String,
    question: String,
    answer: Answer,
}

/// Checks a posted answer against the book's quizzes: known chapter and
/// question, an answer of the question's form and size. Returns it graded.
fn grade_posted<'q>(body: &[u8], quizzes: &'q Quizzes) -> Result<(String, &'q Question, String, bool), String> {
    let posted: Posted = serde_json::from_slice(body).map_err(|e| format!("not a quiz answer: {e}"))?;
    let q = quizzes.question(&posted.chapter, &posted.question).ok_or_else(|| {
        let chapter: String = posted.chapter.chars().take(64).collect();
        let question: String = posted.question.chars().take(64).collect();
        format!("no question `{question}` in the quiz of chapter `{chapter}`")
    })?;
    if let Answer::Text(t) = &posted.answer
        && t.chars().count() > MAX_ANSWER
    {
        return Err(format!("an answer is at most {MAX_ANSWER} characters"));
    }
    let correct = q.grade(&posted.answer)?;
    Ok((posted.chapter, q, posted.answer.display(q), correct))
}

/// Serialises the server's own writes of the state file (answers arrive on parallel connections).
static STATE_WRITE: Mutex<()> = Mutex::new(());

fn post_quiz(body: &[u8], opts: &Options) -> Reply {
    let quizzes = match Catalog::load(&opts.labs)
        .map_err(anyhow::Error::from)
        .and_then(|cat| Ok(Quizzes::load(&opts.book, &cat)?))
    {
        Ok(q) => q,
        Err(e) => return json_error(500, format!("{e:#}")),
    };
    let (chapter, q, answer, correct) = match grade_posted(body, &quizzes) {
        Ok(x) => x,
        Err(e) => return json_error(400, e),
    };
    let _guard = STATE_WRITE.lock().unwrap_or_else(|p| p.into_inner());
    let meta = opts.workspace.meta_dir();
    let result = crate::state::State::load(&meta).and_then(|mut state| {
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        state.record_quiz(&chapter, q.asked(), answer, correct, now);
        std::fs::create_dir_all(&meta)?;
        state.save(&meta)?;
        Ok(quizzes.scores(&state).remove(&chapter))
    });
    match result {
        Ok(score) => {
            let body = serde_json::json!({ "correct": correct, "score": score });
            Reply { status: 200, content_type: "application/json", body: body.to_string().into_bytes() }
        }
        Err(e) => json_error(500, format!("{e:#}")),
    }
}

fn route(target: &str, site: &Mutex<Site>, opts: &Options) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    if path == STATUS_PATH {
        let (generation, build_error) = {
            let s = lock(site);
            (s.generation, s.error.clone())
        };
        let status = match Catalog::load(&opts.labs) {
            Ok(cat) => match Quizzes::load(&opts.book, &cat) {
                Ok(quizzes) => LiveStatus::gather(&cat, &quizzes, &opts.workspace, generation, build_error),
                Err(e) => {
                    let mut st =
                        LiveStatus::gather(&cat, &Quizzes::default(), &opts.workspace, generation, build_error);
                    st.error = Some(e.to_string());
                    st
                }
            },
            Err(e) => {
                let empty = Catalog { root: opts.labs.clone(), labs: Vec::new() };
                let mut st = LiveStatus::gather(&empty, &Quizzes::default(), &opts.workspace, generation, build_error);
                st.error = Some(e.to_string());
                st
            }
        };
        return Reply {
            status: 200,
            content_type: "application/json",
            body: serde_json::to_vec(&status).unwrap_or_default(),
        };
    }
    if path == COMPARE_PATH {
        let state = crate::state::State::load(&opts.workspace.meta_dir()).unwrap_or_default();
        let svg = crate::report::chart::svg(&crate::compare::compare(&state));
        return Reply { status: 200, content_type: "image/svg+xml", body: svg.into_bytes() };
    }
    let root = lock(site).dir();
    if let Some(file) = resolve(&root, path)
        && let Ok(body) = std::fs::read(&file)
    {
        return Reply { status: 200, content_type: content_type(&file), body };
    }
    if path == "/favicon.ico" {
        // Browsers ask for it on their own; the book declares its icons in each page.
        return Reply { status: 204, content_type: "image/x-icon", body: Vec::new() };
    }
    let body = std::fs::read(root.join("404.html")).unwrap_or_else(|_| b"not found".to_vec());
    Reply { status: 404, content_type: "text/html; charset=utf-8", body }
}

/// The file under `root` a URL path names, if it exists; never outside `root`.
fn resolve(root: &Path, url_path: &str) -> Option<PathBuf> {
    let decoded = percent_decode(url_path)?;
    let mut path = root.to_path_buf();
    for seg in decoded.split('/').filter(|s| !s.is_empty() && *s != ".") {
        if seg == ".." || seg.contains('\\') || seg.contains('\0') {
            return None;
        }
        path.push(seg);
    }
    if path.is_dir() {
        path.push("index.html");
    }
    path.is_file().then_some(path)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_inside_the_root_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("labs")).unwrap();
        std::fs::write(dir.path().join("index.html"), "i").unwrap();
        std::fs::write(dir.path().join("labs/a b.html"), "a").unwrap();
        assert_eq!(resolve(dir.path(), "/"), Some(dir.path().join("index.html")));
        assert_eq!(resolve(dir.path(), "/labs/a%20b.html"), Some(dir.path().join("labs/a b.html")));
        assert_eq!(resolve(dir.path(), "/../etc/passwd"), None);
        assert_eq!(resolve(dir.path(), "/labs/%2e%2e/%2e%2e/x"), None);
        assert_eq!(resolve(dir.path(), "/missing.html"), None);
        assert_eq!(percent_decode("%zz"), None);
    }

    fn request(raw: &str) -> (Request, std::io::Cursor<Vec<u8>>) {
        let mut cur = std::io::Cursor::new(raw.as_bytes().to_vec());
        let req = read_request(&mut cur).unwrap();
        (req, cur)
    }

    #[test]
    fn posts_are_same_origin_json_and_bounded() {
        let ok = "POST /_vlab/quiz HTTP/1.1\r\nHost: 127.0.0.1:9\r\nOrigin: http://127.0.0.1:9\r\n\
                  Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        let (req, mut rest) = request(ok);
        assert_eq!((req.method.as_str(), req.target.as_str()), ("POST", QUIZ_PATH));
        assert_eq!(read_body(&req, &mut rest).unwrap(), b"{}");

        let status = |raw: &str| {
            let (req, mut rest) = request(raw);
            read_body(&req, &mut rest).err().map(|r| r.status)
        };
        assert_eq!(status(&ok.replace("application/json", "text/plain")), Some(415));
        assert_eq!(status(&ok.replace("Origin: http://127.0.0.1:9", "Origin: http://evil.example")), Some(403));
        assert_eq!(status(&ok.replace("Content-Length: 2", "Content-Length: 999999")), Some(413));
        assert_eq!(status(&ok.replace("Content-Length: 2\r\n", "")), Some(411));
        assert_eq!(status(&ok.replace("Content-Length: 2", "Content-Length: 5")), Some(400));
        // A head without end is cut at MAX_HEAD instead of read forever.
        let endless = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(100_000));
        let (req, _) = request(&endless);
        assert!(req.headers["x"].len() < MAX_HEAD as usize);
    }

    #[test]
    fn posted_answers_name_known_questions_and_are_graded_here() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::create_dir_all(dir.path().join("quizzes")).unwrap();
        std::fs::write(dir.path().join("src/uml.md"), "# UML\n").unwrap();
        std::fs::write(
            dir.path().join("quizzes/uml.toml"),
            "[[questions]]\nid = \"q\"\nkind = \"choice\"\nprompt = \"p\"\n\
             [[questions.options]]\ntext = \"a\"\ncorrect = true\nwhy = \"w\"\n\
             [[questions.options]]\ntext = \"b\"\nwhy = \"w\"\n\
             [[questions]]\nid = \"e\"\nkind = \"explain\"\nprompt = \"p\"\nall_of = [\"x\"]\nwhy = \"w\"\n",
        )
        .unwrap();
        let book = Book { root: dir.path().to_path_buf() };
        let cat = Catalog { root: dir.path().join("labs"), labs: Vec::new() };
        let quizzes = Quizzes::load(&book, &cat).unwrap();
        let grade = |body: &str| grade_posted(body.as_bytes(), &quizzes).map(|(c, q, a, ok)| (c, q.id.clone(), a, ok));
        assert_eq!(
            grade(r#"{"chapter":"uml","question":"q","answer":[0]}"#),
            Ok(("uml".into(), "q".into(), "a".into(), true))
        );
        assert!(!grade(r#"{"chapter":"uml","question":"q","answer":[1]}"#).unwrap().3);
        // The page's own verdict is not a field the server takes.
        assert!(
            grade(r#"{"chapter":"uml","question":"q","answer":[1],"correct":true}"#)
                .unwrap_err()
                .contains("unknown field")
        );
        assert!(grade(r#"{"chapter":"uml","question":"zz","answer":[0]}"#).unwrap_err().contains("no question `zz`"));
        assert!(grade(r#"{"chapter":"../x","question":"q","answer":[0]}"#).is_err());
        assert!(grade(r#"{"chapter":"uml","question":"q","answer":[0,0]}"#).is_err());
        assert!(grade(r#"{"chapter":"uml","question":"q","answer":[5]}"#).is_err());
        assert!(grade(r#"{"chapter":"uml","question":"q","answer":"a"}"#).is_err());
        assert!(grade("[]").is_err());
        let long = format!(r#"{{"chapter":"uml","question":"e","answer":"{}"}}"#, "x".repeat(MAX_ANSWER + 1));
        assert!(grade(&long).unwrap_err().contains("at most"));
        assert!(grade(r#"{"chapter":"uml","question":"e","answer":"  an X  "}"#).unwrap().3);
    }
}
