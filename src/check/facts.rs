//! Judging: the lab's rules held against the facts the runner gathered.

use crate::catalog::{FactRule, FactTest};
use crate::evidence::{Facts, Vars};

/// How a fact broke its rule: what the runner saw (the rule's own message is added by the caller).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Mismatch {
    #[error("no value for `{0}` was found")]
    Missing(String),
    #[error("`{fact}` is {raw:?}, not a number")]
    NotANumber { fact: String, raw: String },
    #[error("`{fact}` is {seen:?}, expected {want:?}")]
    NotEqual { fact: String, seen: String, want: String },
    #[error("`{fact}` is {seen:?}, which does not match /{re}/")]
    NoMatch { fact: String, seen: String, re: String },
    #[error("`{fact}` = {value} is below the plausible minimum {min}")]
    BelowMin { fact: String, value: f64, min: f64 },
    #[error("`{fact}` = {value} is above the plausible maximum {max}")]
    AboveMax { fact: String, value: f64, max: f64 },
    #[error("`{fact}` = {value} but `{other}` = {base}; expected at least {factor} × that")]
    TooSmall { fact: String, value: f64, other: String, base: f64, factor: f64 },
    #[error(transparent)]
    Regex(#[from] regex::Error),
}

fn text<'a>(facts: &'a Facts, name: &str) -> Result<&'a String, Mismatch> {
    facts.get(name).ok_or_else(|| Mismatch::Missing(name.into()))
}

fn number(facts: &Facts, name: &str) -> Result<f64, Mismatch> {
    let raw = text(facts, name)?;
    raw.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| Mismatch::NotANumber { fact: name.into(), raw: raw.clone() })
}

/// Ok if the rule holds.
pub(crate) fn judge(rule: &FactRule, facts: &Facts, vars: &Vars) -> Result<(), Mismatch> {
    let fact = || rule.fact.clone();
    let name = rule.fact.as_str();
    let (min, max) = match &rule.test {
        FactTest::Equals(want) => {
            let want = vars.expand(want);
            let seen = text(facts, name)?;
            return match *seen == want {
                true => Ok(()),
                false => Err(Mismatch::NotEqual { fact: fact(), seen: seen.clone(), want }),
            };
        }
        FactTest::Matches(re) => {
            let re = regex::Regex::new(re)?;
            let seen = text(facts, name)?;
            return match re.is_match(seen) {
                true => Ok(()),
                false => Err(Mismatch::NoMatch { fact: fact(), seen: seen.clone(), re: re.to_string() }),
            };
        }
        FactTest::AtLeast { other, factor } => {
            let (value, base) = (number(facts, name)?, number(facts, other)?);
            return match value >= factor * base {
                true => Ok(()),
                false => Err(Mismatch::TooSmall { fact: fact(), value, other: other.clone(), base, factor: *factor }),
            };
        }
        FactTest::Min(min) => (Some(*min), None),
        FactTest::Max(max) => (None, Some(*max)),
        FactTest::Between { min, max } => (Some(*min), Some(*max)),
    };
    let value = number(facts, name)?;
    if let Some(min) = min.filter(|m| value < *m) {
        return Err(Mismatch::BelowMin { fact: fact(), value, min });
    }
    if let Some(max) = max.filter(|m| value > *m) {
        return Err(Mismatch::AboveMax { fact: fact(), value, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(fact: &str, test: FactTest) -> FactRule {
        FactRule { fact: fact.into(), test, message: "m".into() }
    }

    const VARS: Vars = Vars { nonce: "abc", workspace: "/ws" };

    #[test]
    fn equals_expands_vars() {
        let facts = Facts::from([("result.nonce".into(), "abc".into())]);
        assert!(judge(&rule("result.nonce", FactTest::Equals("{nonce}".into())), &facts, &VARS).is_ok());
        let err = judge(&rule("result.nonce", FactTest::Equals("zzz".into())), &facts, &VARS).unwrap_err();
        assert_eq!(err.to_string(), "`result.nonce` is \"abc\", expected \"zzz\"");
    }

    #[test]
    fn bounds_and_relations() {
        let facts = Facts::from([("a".into(), "10".into()), ("b".into(), "30".into()), ("c".into(), "NaN".into())]);
        let ok = |r: FactRule| judge(&r, &facts, &VARS).is_ok();
        assert!(ok(rule("a", FactTest::Between { min: 5.0, max: 20.0 })));
        assert!(!ok(rule("a", FactTest::Min(11.0))));
        assert!(!ok(rule("a", FactTest::Max(9.0))));
        assert!(ok(rule("a", FactTest::AtLeast { other: "b".into(), factor: 0.3 })));
        assert!(!ok(rule("a", FactTest::AtLeast { other: "b".into(), factor: 1.0 })));
        assert!(!ok(rule("c", FactTest::Min(0.0))));
        assert!(!ok(rule("missing", FactTest::Min(0.0))));
        let err = judge(&rule("a", FactTest::Min(11.0)), &facts, &VARS).unwrap_err();
        assert_eq!(err.to_string(), "`a` = 10 is below the plausible minimum 11");
    }
}
