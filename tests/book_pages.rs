//! The book's reference pages stay true to what they describe: the lab map
//! lists every lab with the tier, time and host capabilities its lab.toml
//! declares; every `glossary.md#slug` link in the book has its anchor; the
//! links of the glossary and the lab map name sections that exist; and the
//! diagrams are small, self-contained and accessible.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

fn src() -> PathBuf {
    common::repo().join("book/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every .md file under book/src, as (path relative to book/src, text).
fn pages() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![src()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "md") {
                let rel = p.strip_prefix(src()).unwrap().to_string_lossy().into_owned();
                out.push((rel, read(&p)));
            }
        }
    }
    out.sort();
    out
}

/// The tier names readers see (src/catalog/model.rs `Tier::name`). A new tier
/// must be named here too, so that the map cannot show a raw id by accident.
fn tier_name(id: &str) -> &'static str {
    match id {
        "bare-metal" => "bare metal",
        "partitioning" => "hardware partitioning",
        "containers" => "containers",
        "uml" => "User-Mode-Linux",
        "paravirtualization" => "paravirtualization",
        "emulation" => "software emulation",
        "hardware-assisted" => "hardware-assisted",
        other => panic!("tier {other:?} has no reader-facing name in tests/book_pages.rs"),
    }
}

struct LabFacts {
    title: String,
    tier: String,
    minutes: i64,
    /// The lab's and its steps' `requires`.
    needs: BTreeSet<String>,
}

fn labs() -> BTreeMap<String, LabFacts> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(common::labs()).unwrap().flatten() {
        let path = e.path().join("lab.toml");
        if !path.is_file() {
            continue;
        }
        let doc: toml::Table = read(&path).parse().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let s =
            |k: &str| doc[k].as_str().unwrap_or_else(|| panic!("{}: {k} is not a string", path.display())).to_string();
        let strings = |v: Option<&toml::Value>| -> Vec<String> {
            v.and_then(|v| v.as_array())
                .map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let mut needs: BTreeSet<String> = strings(doc.get("requires")).into_iter().collect();
        for step in doc.get("steps").and_then(|s| s.as_array()).into_iter().flatten() {
            needs.extend(strings(step.get("requires")));
        }
        out.insert(
            s("id"),
            LabFacts {
                title: s("title"),
                tier: s("tier"),
                minutes: doc["estimate_minutes"].as_integer().expect("estimate_minutes is an integer"),
                needs,
            },
        );
    }
    assert!(!out.is_empty(), "no labs found under {}", common::labs().display());
    out
}

/// The cells of a markdown table row, split on `|` outside backticks.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let (mut out, mut cur, mut code) = (Vec::new(), String::new(), false);
    for c in inner.chars() {
        match c {
            '`' => {
                code = !code;
                cur.push(c);
            }
            '|' if !code => out.push(std::mem::take(&mut cur).trim().to_string()),
            _ => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

#[test]
fn the_lab_map_shows_every_lab_as_its_lab_toml_declares() {
    let map = read(&src().join("lab-map.md"));
    let header = map.lines().find(|l| l.starts_with("| lab |")).expect("lab-map.md has a table starting `| lab |`");
    let columns = cells(header);
    let col = |name: &str| {
        columns.iter().position(|c| c == name).unwrap_or_else(|| panic!("lab-map.md's table has no {name:?} column"))
    };
    let (c_lab, c_tier, c_needs, c_time) =
        (col("lab"), col("tier<br>chapter"), col("host needs"), col("time<br>difficulty"));
    // A two-line cell: its first line.
    let first = |cell: &str| cell.split("<br>").next().unwrap_or("").trim().to_string();
    let link = Regex::new(r"^\[Lab (\d+): (.+)\]\(labs/([^)]+)\.md\)$").unwrap();
    let labs = labs();
    let mut seen = BTreeSet::new();
    let mut wrong = Vec::new();
    for row in map.lines().filter(|l| l.starts_with("| [Lab ")) {
        let cells = cells(row);
        let caps = link.captures(&cells[c_lab]).unwrap_or_else(|| panic!("lab-map.md: cannot read the lab in {row}"));
        let id = caps[3].to_string();
        let Some(lab) = labs.get(&id) else {
            wrong.push(format!("{id}: listed, but labs/{id}/lab.toml does not exist"));
            continue;
        };
        if !seen.insert(id.clone()) {
            wrong.push(format!("{id}: listed twice"));
        }
        if !id.starts_with(&caps[1]) || caps[2] != lab.title {
            wrong.push(format!(
                "{id}: shown as \"Lab {}: {}\", lab.toml's title is {:?}",
                &caps[1], &caps[2], lab.title
            ));
        }
        let (tier, time) = (first(&cells[c_tier]), first(&cells[c_time]));
        if tier != tier_name(&lab.tier) {
            wrong.push(format!("{id}: tier {tier:?}, lab.toml says {:?} ({:?})", lab.tier, tier_name(&lab.tier)));
        }
        if time != format!("{} min", lab.minutes) {
            wrong.push(format!("{id}: time {time:?}, lab.toml says estimate_minutes = {}", lab.minutes));
        }
        let named: BTreeSet<String> = cells[c_needs]
            .split([',', ';', '*', '(', ')', ' '])
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        for need in lab.needs.difference(&named) {
            wrong.push(format!("{id}: host needs do not name {need:?}, which lab.toml requires"));
        }
    }
    for id in labs.keys().filter(|id| !seen.contains(*id)) {
        wrong.push(format!("{id}: missing from lab-map.md"));
    }
    assert!(wrong.is_empty(), "book/src/lab-map.md is out of date with labs/*/lab.toml:\n  {}", wrong.join("\n  "));
}

/// Anchors a page defines: explicit `id="…"` / `{#…}`, and heading ids as
/// mdBook derives them (alphanumerics, `-` and `_` kept, lower-cased,
/// whitespace to `-`, from the heading's text without link targets or backticks).
fn anchors(text: &str) -> BTreeSet<String> {
    let explicit = Regex::new(r#"(?:\bid="([^"]+)"|\{#([^}\s]+)\})"#).unwrap();
    let link = Regex::new(r"\[([^\]]*)\]\([^)]*\)").unwrap();
    let mut out: BTreeSet<String> =
        explicit.captures_iter(text).filter_map(|c| c.get(1).or(c.get(2))).map(|m| m.as_str().to_string()).collect();
    let mut fenced = false;
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let heading = line.trim_start_matches('#').trim();
        if heading.contains("{#") {
            continue;
        }
        let heading = link.replace_all(heading, "$1");
        let id: String = heading
            .chars()
            .filter_map(|c| match c {
                c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c.to_ascii_lowercase()),
                c if c.is_whitespace() => Some('-'),
                _ => None,
            })
            .collect();
        out.insert(id);
    }
    out
}

#[test]
fn every_glossary_link_in_the_book_has_its_anchor() {
    let glossary = anchors(&read(&src().join("glossary.md")));
    let link = Regex::new(r"glossary\.md#([A-Za-z0-9_-]+)").unwrap();
    let mut missing = Vec::new();
    // Lab READMEs are included into the lab pages, so their links count too.
    let readmes = std::fs::read_dir(common::labs()).unwrap().flatten().filter_map(|e| {
        let path = e.path().join("README.md");
        path.is_file().then(|| (format!("labs/{}/README.md", e.file_name().to_string_lossy()), read(&path)))
    });
    for (page, text) in pages().into_iter().chain(readmes) {
        for c in link.captures_iter(&text) {
            if !glossary.contains(&c[1]) {
                missing.push(format!("{page}: glossary.md#{}", &c[1]));
            }
        }
    }
    assert!(missing.is_empty(), "book/src/glossary.md has no anchor for:\n  {}", missing.join("\n  "));
}

#[test]
fn the_glossary_and_the_lab_map_link_to_pages_and_sections_that_exist() {
    let link = Regex::new(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)").unwrap();
    let local = Regex::new(r"\]\(#([^)\s]+)\)").unwrap();
    let mut dead = Vec::new();
    for page in ["glossary.md", "lab-map.md"] {
        let text = read(&src().join(page));
        for c in link.captures_iter(&text) {
            let target = &c[1];
            if target.contains("://") {
                continue;
            }
            let path = src().join(target);
            if !path.is_file() {
                dead.push(format!("{page} → {target} (no such file)"));
            } else if let Some(frag) = c.get(2)
                && !anchors(&read(&path)).contains(frag.as_str())
            {
                dead.push(format!("{page} → {target}#{} (no such section)", frag.as_str()));
            }
        }
        let own = anchors(&text);
        for c in local.captures_iter(&text) {
            if !own.contains(&c[1]) {
                dead.push(format!("{page} → #{} (no such anchor)", &c[1]));
            }
        }
    }
    assert!(dead.is_empty(), "dead links:\n  {}", dead.join("\n  "));
}

#[test]
fn the_diagrams_are_small_self_contained_and_described() {
    for name in ["uml-ptrace-seccomp", "xen-grant-event", "tcg-tb-chaining", "shadow-nested-paging", "lab-graph"] {
        let path = src().join("images").join(format!("{name}.svg"));
        let text = read(&path);
        assert!(text.len() < 15 * 1024, "{name}.svg is {} bytes; keep diagrams under 15 KB", text.len());
        let doc =
            roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}.svg is not well-formed XML: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{name}.svg");
        assert!(root.attribute("viewBox").is_some(), "{name}.svg has no viewBox, so it cannot scale");
        for tag in ["title", "desc"] {
            let child = root.children().find(|n| n.tag_name().name() == tag);
            assert!(
                child.and_then(|n| n.text()).is_some_and(|t| !t.trim().is_empty()),
                "{name}.svg needs a non-empty <{tag}> as a direct child of <svg>, for screen readers"
            );
        }
        for n in doc.descendants() {
            assert!(n.tag_name().name() != "image", "{name}.svg embeds an image; draw it instead");
            for a in n.attributes() {
                let v = a.value();
                assert!(
                    a.name() == "xmlns" || !(v.contains("http:") || v.contains("https:") || v.contains("data:")),
                    "{name}.svg refers to something outside itself: {}={v:?}",
                    a.name()
                );
            }
        }
        assert!(!text.contains("@import") && !text.contains("@font-face"), "{name}.svg loads fonts or styles");
    }
}
