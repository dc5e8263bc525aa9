//! What a check saw and how it ended: the shared types at the bottom of the
//! runner. Every tier produces `Facts`; the engine judges them into a
//! `CheckResult`. This module imports nothing of vlab.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Fact name → value. Numbers are kept as text and parsed when a rule needs them.
pub(crate) type Facts = BTreeMap<String, String>;

/// A fresh random value for one run: 16 hex digits. A check hands it to the
/// student's command and expects it back in what the command reports, so
/// that nothing measured before this run counts.
pub fn fresh_nonce() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Values substituted into `equals` rules: `{nonce}`, `{workspace}`.
pub(crate) struct Vars<'a> {
    pub(crate) nonce: &'a str,
    pub(crate) workspace: &'a str,
}

impl Vars<'_> {
    pub(crate) fn expand(&self, s: &str) -> String {
        s.replace("{nonce}", self.nonce).replace("{workspace}", self.workspace)
    }
}

/// Parses `key=value` lines from a results file into `result.<key>` facts; other lines are ignored.
pub(crate) fn parse_results(text: &str) -> Facts {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("result.{}", k.trim()), v.trim().to_string()))
        .filter(|(k, _)| k.len() > "result.".len())
        .collect()
}

/// Whether what a run reported carries this run's nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    Fresh,
    /// Another run's nonce: measured before, or copied.
    Stale,
    Missing,
}

impl Freshness {
    pub(crate) fn of(seen: Option<&str>, nonce: &str) -> Self {
        match seen {
            Some(n) if n == nonce => Freshness::Fresh,
            Some(_) => Freshness::Stale,
            None => Freshness::Missing,
        }
    }

    /// As a fact's value: "fresh", "stale" or "missing".
    pub(crate) fn name(self) -> &'static str {
        match self {
            Freshness::Fresh => "fresh",
            Freshness::Stale => "stale",
            Freshness::Missing => "missing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Pass,
    Fail,
    /// The runner could not run the check (a tool is missing, I/O failed).
    Error,
    /// Not runnable on this machine; the message says why. Never a pass.
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CheckResult {
    pub(crate) name: String,
    pub(crate) outcome: Outcome,
    pub(crate) message: String,
    /// The facts the runner gathered (what it saw, not what it was told).
    pub(crate) evidence: Facts,
    /// Facts recorded for the cross-tier comparison (only on a pass).
    pub(crate) recorded: Facts,
    pub(crate) duration_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_parse_into_prefixed_facts() {
        let f = parse_results("nonce=abc\ncpu_ms = 12.5\nnoise\n=x\n");
        assert_eq!(f["result.nonce"], "abc");
        assert_eq!(f["result.cpu_ms"], "12.5");
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn nonces_are_sixteen_hex_digits_and_differ() {
        let (a, b) = (fresh_nonce(), fresh_nonce());
        assert!(a.len() == 16 && a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }
}
