//! SUMMARY.md, read line by line: the book's chapters in order.

/// A chapter line of SUMMARY.md: `  - [Title](file.md)`.
pub(super) struct Entry {
    pub(super) indent: String,
    pub(super) title: String,
    pub(super) link: String,
}

pub(super) fn parse_entry(line: &str) -> Option<Entry> {
    let trimmed = line.trim_start();
    let indent = line[..line.len() - trimmed.len()].to_string();
    let rest = trimmed.strip_prefix("- ").or_else(|| trimmed.strip_prefix("* ")).unwrap_or(trimmed);
    let rest = rest.strip_prefix('[')?;
    let (title, rest) = rest.split_once("](")?;
    let (link, _) = rest.split_once(')')?;
    Some(Entry { indent, title: title.to_string(), link: link.to_string() })
}
