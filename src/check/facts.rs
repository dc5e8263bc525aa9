//! Judging: the lab's rules held against the facts the runner gathered.

use crate::catalog::FactRule;
use crate::evidence::{Facts, Vars};

fn number(facts: &Facts, name: &str) -> Result<f64, String> {
    let raw = facts.get(name).ok_or_else(|| format!("no value for `{name}` was found"))?;
    raw.parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| format!("`{name}` is {raw:?}, not a number"))
}

/// Ok if the rule holds; Err with what was seen (the rule's own message is added by the caller).
pub(crate) fn judge(rule: &FactRule, facts: &Facts, vars: &Vars) -> Result<(), String> {
    let name = rule.fact.as_str();
    if let Some(want) = &rule.equals {
        let want = vars.expand(want);
        return match facts.get(name) {
            Some(v) if *v == want => Ok(()),
            Some(v) => Err(format!("`{name}` is {v:?}, expected {want:?}")),
            None => Err(format!("no value for `{name}` was found")),
        };
    }
    if let Some(re) = &rule.matches {
        let re = regex::Regex::new(re).map_err(|e| e.to_string())?;
        return match facts.get(name) {
            Some(v) if re.is_match(v) => Ok(()),
            Some(v) => Err(format!("`{name}` is {v:?}, which does not match /{re}/")),
            None => Err(format!("no value for `{name}` was found")),
        };
    }
    if let Some(other) = &rule.at_least {
        let factor = rule.factor.unwrap_or(1.0);
        let (a, b) = (number(facts, name)?, number(facts, other)?);
        return if a >= factor * b {
            Ok(())
        } else {
            Err(format!("`{name}` = {a} but `{other}` = {b}; expected at least {factor} × that"))
        };
    }
    let v = number(facts, name)?;
    if let Some(min) = rule.min.filter(|m| v < *m) {
        return Err(format!("`{name}` = {v} is below the plausible minimum {min}"));
    }
    if let Some(max) = rule.max.filter(|m| v > *m) {
        return Err(format!("`{name}` = {v} is above the plausible maximum {max}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(fact: &str) -> FactRule {
        FactRule {
            fact: fact.into(),
            equals: None,
            matches: None,
            min: None,
            max: None,
            at_least: None,
            factor: None,
            message: "m".into(),
        }
    }

    const VARS: Vars = Vars { nonce: "abc", workspace: "/ws" };

    #[test]
    fn equals_expands_vars() {
        let facts = Facts::from([("result.nonce".into(), "abc".into())]);
        let r = FactRule { equals: Some("{nonce}".into()), ..rule("result.nonce") };
        assert!(judge(&r, &facts, &VARS).is_ok());
        let r = FactRule { equals: Some("zzz".into()), ..rule("result.nonce") };
        assert!(judge(&r, &facts, &VARS).is_err());
    }

    #[test]
    fn bounds_and_relations() {
        let facts = Facts::from([("a".into(), "10".into()), ("b".into(), "30".into()), ("c".into(), "NaN".into())]);
        assert!(judge(&FactRule { min: Some(5.0), max: Some(20.0), ..rule("a") }, &facts, &VARS).is_ok());
        assert!(judge(&FactRule { min: Some(11.0), ..rule("a") }, &facts, &VARS).is_err());
        assert!(judge(&FactRule { max: Some(9.0), ..rule("a") }, &facts, &VARS).is_err());
        assert!(judge(&FactRule { at_least: Some("b".into()), factor: Some(0.3), ..rule("a") }, &facts, &VARS).is_ok());
        assert!(judge(&FactRule { at_least: Some("b".into()), ..rule("a") }, &facts, &VARS).is_err());
        assert!(judge(&FactRule { min: Some(0.0), ..rule("c") }, &facts, &VARS).is_err());
        assert!(judge(&FactRule { min: Some(0.0), ..rule("missing") }, &facts, &VARS).is_err());
    }
}
