//! A small Chrome DevTools protocol client for the browser tests: headless
//! Debian chromium started through vlab's process runner (so it dies with its
//! whole process tree when dropped), one page, driven over a websocket.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};
use vlab::proc::{Child, Cmd};

/// The chromium binary, if installed.
pub fn chromium_path() -> Option<PathBuf> {
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    })
}

/// Something the page reported: a console error, an uncaught exception, a
/// failed load.
#[derive(Debug, Clone)]
pub struct Problem {
    pub url: String,
    pub text: String,
}

/// One problem a line, for assertion messages.
pub fn describe(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("{}: {}\n", p.url, p.text)).collect()
}

pub struct Browser {
    // Field order: the socket closes before chromium is killed, the profile goes last.
    ws: WebSocket<TcpStream>,
    child: Child,
    _profile: tempfile::TempDir,
    session: String,
    next_id: u64,
    events: Vec<Value>,
    /// Every URL the page requested.
    pub requests: Vec<String>,
    pub problems: Vec<Problem>,
    current_url: String,
}

impl Browser {
    pub fn launch(chromium: &Path) -> Browser {
        let profile = tempfile::Builder::new().prefix("vlab-chromium-").tempdir().unwrap();
        let child = Cmd::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                "--window-size=1280,900",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .timeout(Duration::from_secs(900))
            .spawn()
            .expect("chromium starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            let (err, _) = child.read_stderr(1 << 20);
            if let Some(line) = err.lines().find(|l| l.contains("DevTools listening on ")) {
                break line.split("DevTools listening on ").nth(1).unwrap().trim().to_string();
            }
            assert!(child.is_running(), "chromium exited before it listened: {err}");
            assert!(Instant::now() < deadline, "chromium did not open its DevTools port in 60 s: {err}");
            std::thread::sleep(Duration::from_millis(100));
        };
        let host = url.trim_start_matches("ws://").split('/').next().unwrap().to_string();
        let stream = TcpStream::connect(&host).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let (ws, _) = tungstenite::client(url.as_str(), stream).expect("websocket handshake with chromium");
        let mut b = Browser {
            ws,
            child,
            _profile: profile,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            requests: Vec::new(),
            problems: Vec::new(),
            current_url: String::new(),
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().unwrap().to_string();
        let attached = b.call("Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in ["Page.enable", "Runtime.enable", "Log.enable", "Network.enable"] {
            b.call(domain, json!({}));
        }
        b
    }

    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Sends a command (to the page once attached) and waits for its answer.
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let v = self.read();
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method} failed: {}", v["error"]);
                return v["result"].clone();
            }
            self.note(v);
        }
    }

    fn read(&mut self) -> Value {
        loop {
            match self.ws.read().expect("chromium answers within 60 s") {
                Message::Text(t) => {
                    eprintln!("CDP {}", &t.as_str()[..t.len().min(300)]);
                    return serde_json::from_str(t.as_str()).unwrap();
                }
                Message::Close(_) => panic!("chromium closed the DevTools connection"),
                _ => {}
            }
        }
    }

    /// Keeps what the tests look at from an event.
    fn note(&mut self, v: Value) {
        let p = &v["params"];
        match v["method"].as_str().unwrap_or("") {
            "Network.requestWillBeSent" => self.requests.push(p["request"]["url"].as_str().unwrap_or("").into()),
            "Runtime.consoleAPICalled" if matches!(p["type"].as_str(), Some("error" | "assert")) => {
                let text: Vec<String> = p["args"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|a| a["value"].as_str().map(String::from).unwrap_or_else(|| a["description"].to_string()))
                    .collect();
                self.problem(format!("console.error: {}", text.join(" ")));
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                self.problem(format!("exception: {} {}", d["text"], d["exception"]["description"]));
            }
            "Log.entryAdded" if p["entry"]["level"].as_str() == Some("error") => {
                let e = &p["entry"];
                self.problem(format!("log: {} {}", e["text"], e["url"]));
            }
            "Network.loadingFailed" if p["canceled"].as_bool() != Some(true) => {
                self.problem(format!("load failed: {}", p["errorText"]));
            }
            _ => self.events.push(v),
        }
    }

    fn problem(&mut self, text: String) {
        self.problems.push(Problem { url: self.current_url.clone(), text });
    }

    /// Opens `url` and waits for its load event.
    pub fn goto(&mut self, url: &str) {
        self.current_url = url.to_string();
        self.events.clear();
        let nav = self.call("Page.navigate", json!({"url": url}));
        assert!(nav.get("errorText").is_none(), "cannot open {url}: {}", nav["errorText"]);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.events.iter().any(|e| e["method"] == "Page.loadEventFired") {
            assert!(Instant::now() < deadline, "{url} did not finish loading in 30 s");
            let v = self.read();
            self.note(v);
        }
    }

    /// Evaluates an expression in the page (promises awaited) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr} threw: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` until it is truthy; returns its value, or panics after `secs`.
    pub fn wait_for(&mut self, expr: &str, secs: u64, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(expr);
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::Array(a) => !a.is_empty(),
                Value::Object(_) => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "waited {secs} s for {what} ({expr})");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Writes a PNG of the viewport.
    pub fn screenshot(&mut self, path: &Path) {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = data_encoding::BASE64.decode(shot["data"].as_str().unwrap().as_bytes()).unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Takes the problems reported so far.
    pub fn take_problems(&mut self) -> Vec<Problem> {
        // Events that arrived after the last command are still in the socket.
        let _ = self.call("Runtime.evaluate", json!({"expression": "0"}));
        std::mem::take(&mut self.problems)
    }
}
