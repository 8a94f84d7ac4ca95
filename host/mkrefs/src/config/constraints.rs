//! A parameter's choices and range (plugin-api 1.1), checked for every value when a run is
//! planned: a misspelt `--readnoise.method` stops the plan, dry run included, instead of
//! failing a job after the calibrations ran.

use super::value::{Bound, Constraints, ParamKind, ParamScalar, ParamSpec, ParamValue};

/// Why a value is refused: what is allowed, and the closest choice to a misspelt text.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Refusal {
    /// The offending value, or list element.
    pub found: String,
    /// "one of stack|ramp", "a number > 0", "a value (not null)".
    pub expected: String,
    pub suggestion: Option<String>,
}

/// The value the job gets, or why it is refused. Null for a parameter that needs a value is
/// its `none` choice when it has one: `none` in YAML or on the command line reads as null.
pub(crate) fn admit(spec: &ParamSpec, value: ParamValue) -> Result<ParamValue, Refusal> {
    let c = &spec.constraints;
    match &value {
        ParamValue::Null if c.not_null => {
            let none = c.choices.iter().find(|n| n.eq_ignore_ascii_case("none"));
            return none.map(|n| ParamValue::Str(n.clone())).ok_or(Refusal {
                found: "null".into(),
                expected: format!("a value{}", allowed_suffix(spec)),
                suggestion: None,
            });
        }
        ParamValue::Str(s) => check_text(c, s)?,
        ParamValue::Int(i) => check_number(spec, *i as f64, &value.to_string())?,
        ParamValue::Float(x) => check_number(spec, *x, &value.to_string())?,
        ParamValue::List(items) => {
            for item in items {
                match item {
                    ParamScalar::Str(s) => check_text(c, s)?,
                    ParamScalar::Int(i) => check_number(spec, *i as f64, &item.to_string())?,
                    ParamScalar::Float(x) => check_number(spec, *x, &item.to_string())?,
                    ParamScalar::Bool(_) => {}
                }
            }
        }
        ParamValue::Null | ParamValue::Bool(_) => {}
    }
    Ok(value)
}

fn check_text(c: &Constraints, text: &str) -> Result<(), Refusal> {
    let t = text.trim();
    if c.choices.is_empty() || c.choices.iter().any(|n| n.eq_ignore_ascii_case(t)) {
        return Ok(());
    }
    Err(Refusal {
        found: format!("'{text}'"),
        expected: format!("one of {}", c.choices.join("|")),
        suggestion: closest(t, &c.choices),
    })
}

fn check_number(spec: &ParamSpec, x: f64, shown: &str) -> Result<(), Refusal> {
    let c = &spec.constraints;
    if c.minimum.is_none() && c.maximum.is_none() {
        return Ok(());
    }
    let above = |b: &Bound| x > b.value || (b.inclusive && x == b.value);
    let below = |b: &Bound| x < b.value || (b.inclusive && x == b.value);
    if x.is_finite() && c.minimum.as_ref().is_none_or(above) && c.maximum.as_ref().is_none_or(below)
    {
        return Ok(());
    }
    Err(Refusal {
        found: shown.to_string(),
        expected: format!("a number {}", range_text(spec.kind, c)),
        suggestion: None,
    })
}

/// The choice within a small edit distance of `word` (case ignored): one edit for short
/// names, up to a third of the name for longer ones.
fn closest(word: &str, choices: &[String]) -> Option<String> {
    let lw = word.to_ascii_lowercase();
    choices
        .iter()
        .map(|c| (strsim::levenshtein(&lw, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.clone())
}

fn show_bound(kind: ParamKind, b: &Bound) -> String {
    if kind == ParamKind::Int && b.value.fract() == 0.0 {
        format!("{}", b.value as i64)
    } else {
        format!("{}", b.value)
    }
}

/// The range in symbols: "> 0", ">= 1", "in [0, 1]", "in (0, 0.5]"; empty without bounds.
fn range_text(kind: ParamKind, c: &Constraints) -> String {
    match (&c.minimum, &c.maximum) {
        (Some(lo), Some(hi)) => format!(
            "in {}{}, {}{}",
            if lo.inclusive { '[' } else { '(' },
            show_bound(kind, lo),
            show_bound(kind, hi),
            if hi.inclusive { ']' } else { ')' }
        ),
        (Some(lo), None) => {
            let op = if lo.inclusive { ">=" } else { ">" };
            format!("{op} {}", show_bound(kind, lo))
        }
        (None, Some(hi)) => {
            let op = if hi.inclusive { "<=" } else { "<" };
            format!("{op} {}", show_bound(kind, hi))
        }
        (None, None) => String::new(),
    }
}

/// What a parameter accepts beyond its kind, for `mkrefs describe`: "stack|ramp", ">= 1",
/// "in [0, 1]"; `None` when anything of the kind goes.
pub(crate) fn allowed(spec: &ParamSpec) -> Option<String> {
    let c = &spec.constraints;
    let mut parts = Vec::new();
    if !c.choices.is_empty() {
        parts.push(c.choices.join("|"));
    }
    let range = range_text(spec.kind, c);
    if !range.is_empty() {
        parts.push(range);
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn allowed_suffix(spec: &ParamSpec) -> String {
    allowed(spec).map(|a| format!(": {a}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: ParamKind, constraints: Constraints) -> ParamSpec {
        ParamSpec {
            name: "p".into(),
            kind,
            default: ParamValue::Null,
            help: String::new(),
            constraints,
        }
    }

    fn choices(names: &[&str]) -> Constraints {
        Constraints {
            choices: names.iter().map(|n| n.to_string()).collect(),
            not_null: true,
            ..Constraints::default()
        }
    }

    fn bounds(lo: Option<(f64, bool)>, hi: Option<(f64, bool)>) -> Constraints {
        let b = |(value, inclusive)| Bound { value, inclusive };
        Constraints {
            minimum: lo.map(b),
            maximum: hi.map(b),
            ..Constraints::default()
        }
    }

    #[test]
    fn choices_ignore_case_and_suggest_close_names() {
        let s = spec(ParamKind::String, choices(&["stack", "ramp"]));
        assert!(admit(&s, ParamValue::str(" Ramp ")).is_ok());
        let r = admit(&s, ParamValue::str("rampp")).unwrap_err();
        assert_eq!(r.expected, "one of stack|ramp");
        assert_eq!(r.suggestion.as_deref(), Some("ramp"));
        let r = admit(&s, ParamValue::str("bogus")).unwrap_err();
        assert_eq!((r.found.as_str(), r.suggestion), ("'bogus'", None));
        let l = spec(ParamKind::List, choices(&["DEAD", "OPEN"]));
        let bad = ParamValue::List(vec![
            ParamScalar::Str("dead".into()),
            ParamScalar::Str("OPN".into()),
        ]);
        let r = admit(&l, bad).unwrap_err();
        assert_eq!(
            (r.found.as_str(), r.suggestion.as_deref()),
            ("'OPN'", Some("OPEN"))
        );
    }

    #[test]
    fn null_is_refused_unless_a_choice_is_none() {
        let s = spec(ParamKind::String, choices(&["stack", "ramp"]));
        let r = admit(&s, ParamValue::Null).unwrap_err();
        assert_eq!(r.expected, "a value: stack|ramp");
        let n = spec(ParamKind::String, choices(&["smoothed", "none"]));
        assert_eq!(admit(&n, ParamValue::Null), Ok(ParamValue::str("none")));
        let free = spec(ParamKind::String, Constraints::default());
        assert_eq!(admit(&free, ParamValue::Null), Ok(ParamValue::Null));
    }

    #[test]
    fn ranges_are_checked_with_their_ends_and_refuse_non_finite_numbers() {
        let positive = spec(ParamKind::Float, bounds(Some((0.0, false)), None));
        assert!(admit(&positive, ParamValue::Float(0.1)).is_ok());
        let r = admit(&positive, ParamValue::Float(0.0)).unwrap_err();
        assert_eq!(r.expected, "a number > 0");
        assert!(admit(&positive, ParamValue::Float(f64::INFINITY)).is_err());
        assert!(admit(&positive, ParamValue::Float(f64::NAN)).is_err());
        let half = spec(
            ParamKind::Float,
            bounds(Some((0.0, false)), Some((0.5, true))),
        );
        assert!(admit(&half, ParamValue::Float(0.5)).is_ok());
        let r = admit(&half, ParamValue::Float(0.75)).unwrap_err();
        assert_eq!(
            (r.found.as_str(), r.expected.as_str()),
            ("0.75", "a number in (0, 0.5]")
        );
        let count = spec(ParamKind::Int, bounds(Some((1.0, true)), None));
        assert_eq!(
            admit(&count, ParamValue::Int(0)).unwrap_err().expected,
            "a number >= 1"
        );
        let free = spec(ParamKind::Float, Constraints::default());
        assert!(admit(&free, ParamValue::Float(f64::NAN)).is_ok());
    }

    #[test]
    fn allowed_values_in_words() {
        let s = spec(ParamKind::String, choices(&["stack", "ramp"]));
        assert_eq!(allowed(&s).as_deref(), Some("stack|ramp"));
        let f = spec(
            ParamKind::Float,
            bounds(Some((0.0, true)), Some((1.0, true))),
        );
        assert_eq!(allowed(&f).as_deref(), Some("in [0, 1]"));
        assert_eq!(
            allowed(&spec(ParamKind::Bool, Constraints::default())),
            None
        );
    }
}
