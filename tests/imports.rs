//! The runner's import graph (ARCHITECTURE.md): read from the `crate::` and
//! `super::` paths in src/, unit tests left out, it has no cycle (beyond the
//! allow-list below) and no arrow from a lower layer to a higher one.
//!
//! `cargo test --test imports -- --nocapture` prints every edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The modules a cycle may still run through. Issue 16 broke the last one
/// (process supervision) with one supervisor and one cgroup type; a cycle
/// through any module now fails.
const ALLOWED_CYCLE: &[&str] = &[];

/// Layers, bottom to top (ARCHITECTURE.md). A module belongs to the first
/// entry that is itself or an ancestor; an import may only point to the same
/// layer or a lower one.
const LAYERS: &[(&str, u8)] = &[
    ("evidence", 1),
    ("files", 1),
    ("catalog", 1),
    ("procfs", 1),
    ("cgroup", 1),
    ("supervisor", 1),
    ("proc", 1),
    ("cleanup", 1),
    ("host::tools", 1),
    ("host::cgroup", 1),
    ("testing", 1),
    ("check", 2),
    ("container", 3),
    ("guest", 3),
    ("kvm", 3),
    ("host", 3),
    ("tiers", 4),
    ("app", 6),
    ("cli", 6),
    ("report", 4),
    ("compare", 4),
    ("state", 4),
    ("workspace", 4),
    ("prepare", 4),
    ("setup", 4),
    ("watch", 4),
    ("grade", 5),
    ("book", 5),
];

/// Arrows from a lower layer to a higher one that are still allowed: none.
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/a/b.rs` → `a::b`, `src/a/mod.rs` → `a`; None for lib.rs and main.rs.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap().with_extension("");
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.last().is_some_and(|l| l == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        return None;
    }
    Some(parts.join("::"))
}

/// The file's text without comments and `#[cfg(test)]` items.
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut skip_depth: Option<i32> = None;
    let mut depth = 0i32;
    let mut pending_test = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//") {
            continue;
        }
        let line = match line.find("//") {
            Some(i) if !line[..i].contains('"') => &line[..i],
            _ => line,
        };
        if trimmed.starts_with("#[cfg(test)]") {
            pending_test = true;
            continue;
        }
        let opens = line.matches('{').count() as i32;
        let closes = line.matches('}').count() as i32;
        if pending_test && skip_depth.is_none() {
            pending_test = false;
            if opens > closes {
                skip_depth = Some(depth);
            }
            depth += opens - closes;
            continue;
        }
        depth += opens - closes;
        if let Some(d) = skip_depth {
            if depth <= d {
                skip_depth = None;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Expands a use tree (`crate::{a::{b, c}, d}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else { return vec![tree] };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut level, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => level += 1,
            '}' => level -= 1,
            ',' if level == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts.into_iter().filter(|p| !p.is_empty()).flat_map(|p| expand(&format!("{prefix}{p}"))).collect()
}

/// Every `crate::…`/`super::…` path the code names.
fn paths(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for stmt in code.split(';') {
        if let Some(i) = stmt.find("use ") {
            let tree = stmt[i + 4..].trim();
            if tree.starts_with("crate::") || tree.starts_with("super::") || tree.starts_with("self::") {
                found.extend(expand(tree));
                continue;
            }
        }
        let bytes = stmt.as_bytes();
        for start in ["crate::", "super::"] {
            let mut from = 0;
            while let Some(at) = stmt[from..].find(start) {
                let at = from + at;
                from = at + start.len();
                if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
                    continue;
                }
                let end = stmt[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(stmt.len(), |e| at + e);
                found.push(stmt[at..end].trim_end_matches(':').to_string());
            }
        }
    }
    found
}

/// The module `path` (seen from `from`, a file's module) names.
fn resolve(path: &str, from: &str, is_dir_module: bool, modules: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<&str> = if from.is_empty() { vec![] } else { from.split("::").collect() };
    let mut segs: Vec<&str> = path.split("::").map(|s| s.split(" as ").next().unwrap_or(s)).collect();
    match segs.first() {
        Some(&"crate") => {
            base.clear();
            segs.remove(0);
        }
        Some(&"super") | Some(&"self") => {
            // A file module's `self` is itself; a mod.rs's `super` is its parent.
            if !is_dir_module || segs[0] == "super" {
                base.pop();
            }
            if is_dir_module && segs[0] == "self" {
                // `self` of a/mod.rs is `a`, already the base.
            }
            segs.remove(0);
            while segs.first() == Some(&"super") {
                base.pop();
                segs.remove(0);
            }
        }
        _ => return None,
    }
    let full: Vec<&str> = base.into_iter().chain(segs).collect();
    (1..=full.len()).rev().map(|n| full[..n].join("::")).find(|m| modules.contains(m))
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mods: Vec<(String, PathBuf)> = files.iter().filter_map(|f| module_of(f).map(|m| (m, f.clone()))).collect();
    let modules: BTreeSet<String> = mods.iter().map(|(m, _)| m.clone()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (m, file) in &mods {
        let dir_module = file.file_name().is_some_and(|n| n == "mod.rs");
        let text = std::fs::read_to_string(file).unwrap();
        let to = edges.entry(m.clone()).or_default();
        for p in paths(&code(&text)) {
            if let Some(t) = resolve(&p, m, dir_module, &modules).filter(|t| t != m) {
                to.insert(t);
            }
        }
    }
    edges
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let i = t.index.len();
        t.index.insert(v, i);
        t.low.insert(v, i);
        t.stack.push(v);
        t.on.insert(v);
        if let Some(next) = t.edges.get(v) {
            for w in next {
                if !t.index.contains_key(w.as_str()) {
                    visit(t, w);
                    let lw = t.low[w.as_str()];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(lw);
                } else if t.on.contains(w.as_str()) {
                    let iw = t.index[w.as_str()];
                    let lv = t.low.get_mut(v).unwrap();
                    *lv = (*lv).min(iw);
                }
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn layer(module: &str) -> u8 {
    LAYERS
        .iter()
        .filter(|(m, _)| module == *m || module.starts_with(&format!("{m}::")))
        .max_by_key(|(m, _)| m.len())
        .map(|(_, l)| *l)
        .unwrap_or_else(|| panic!("module {module} has no layer in tests/imports.rs LAYERS (ARCHITECTURE.md)"))
}

#[test]
fn the_import_graph_has_no_cycle_but_the_allowed_ones() {
    let edges = graph();
    for (from, to) in &edges {
        for t in to {
            println!("{from} -> {t}");
        }
    }
    let found = cycles(&edges);
    let unexpected: Vec<_> = found.iter().filter(|c| !c.iter().all(|m| ALLOWED_CYCLE.contains(&m.as_str()))).collect();
    assert!(unexpected.is_empty(), "import cycles among src/ modules: {unexpected:#?}");
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let edges = graph();
    let mut upward = Vec::new();
    for (from, to) in &edges {
        for t in to {
            if layer(t) > layer(from) && !ALLOWED_UPWARD.contains(&(from.as_str(), t.as_str())) {
                upward.push(format!("{from} (layer {}) -> {t} (layer {})", layer(from), layer(t)));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a lower layer to a higher one:\n{}", upward.join("\n"));
}

#[test]
fn the_check_engine_names_no_tier() {
    let edges = graph();
    let tiers = ["container", "guest", "kvm", "host"];
    let named: Vec<String> = edges
        .iter()
        .filter(|(m, _)| *m == "check" || m.starts_with("check::"))
        .flat_map(|(m, to)| {
            to.iter()
                .filter(|t| tiers.iter().any(|tier| *t == tier || t.starts_with(&format!("{tier}::"))))
                .map(move |t| format!("{m} -> {t}"))
        })
        .collect();
    assert!(named.is_empty(), "the engine names tiers:\n{}", named.join("\n"));
}

#[test]
fn the_bottom_layer_imports_nothing_of_vlab() {
    let edges = graph();
    let from_evidence = &edges["evidence"];
    assert!(from_evidence.is_empty(), "evidence imports {from_evidence:?}");
}
