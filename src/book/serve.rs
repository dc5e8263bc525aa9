//! `vlab serve`: build the book, serve it on 127.0.0.1, rebuild it when
//! anything under book/ or labs/ changes, and answer `/_vlab/status` with the
//! live lab status. The book's own script (book/vlab/live.js) polls that
//! endpoint: it marks labs and steps with their last check result and reloads
//! the page when the generation changes. `/_vlab/compare.svg` draws the
//! reader's comparison chart for the choosing chapter.
//!
//! Builds go to scratch directories that are removed on exit and on Ctrl-C or
//! SIGTERM, so a served book leaves nothing behind.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

use anyhow::Context;

use super::Book;
use super::status::LiveStatus;
use crate::catalog::Catalog;
use crate::cleanup::Scratch;
use crate::workspace::Workspace;

/// Where the status endpoint lives (under the site root; no book page can clash with it).
pub(crate) const STATUS_PATH: &str = "/_vlab/status";
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

struct Reply {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

fn handle(stream: TcpStream, site: &Mutex<Site>, opts: &Options) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are not needed; read them so the client sees an orderly close.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let reply = if method == "GET" || method == "HEAD" {
        route(target, site, opts)
    } else {
        Reply { status: 405, content_type: "text/plain", body: b"only GET and HEAD are served".to_vec() }
    };
    let reason = match reply.status {
        200 => "OK",
        204 => "No Content",
        404 => "Not Found",
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
    if method != "HEAD" {
        out.write_all(&reply.body)?;
    }
    out.flush()
}

fn route(target: &str, site: &Mutex<Site>, opts: &Options) -> Reply {
    let path = target.split(['?', '#']).next().unwrap_or("/");
    if path == STATUS_PATH {
        let (generation, build_error) = {
            let s = lock(site);
            (s.generation, s.error.clone())
        };
        let status = match Catalog::load(&opts.labs) {
            Ok(cat) => LiveStatus::gather(&cat, &opts.workspace, generation, build_error),
            Err(e) => {
                let empty = Catalog { root: opts.labs.clone(), labs: Vec::new() };
                let mut st = LiveStatus::gather(&empty, &opts.workspace, generation, build_error);
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
}
