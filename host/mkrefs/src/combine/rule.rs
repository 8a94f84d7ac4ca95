//! How the individual reference files of one reftype combine. A generator may declare it
//! (plugin-api 1.2); otherwise the host's default for the reftype applies: a MASK combines its
//! flags only, every other reftype by the sigma-clipped mean. `combine.method` and
//! `combine.dq_min` override the method and the flag count for every reftype combined pixel by
//! pixel. The rule travels in the combine job's parameters, so a changed rule remakes the file.

use serde_json::Value;

use crate::config::settings::CombineSettings;
use crate::exec::jobfile::JobParam;

/// How the values of the science arrays (SCI, and ERR with them) combine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    /// The mean of the values left after clipping.
    Mean,
    /// Their median.
    Median,
    /// Only DQ combines; other arrays are those of the input with the earliest USEAFTER (a
    /// MASK, or a reftype whose values must not be averaged).
    Flags,
}

impl Method {
    pub(crate) fn parse(text: &str) -> Option<Method> {
        match text.trim().to_ascii_lowercase().as_str() {
            "mean" => Some(Method::Mean),
            "median" => Some(Method::Median),
            "flags" => Some(Method::Flags),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Method::Mean => "mean",
            Method::Median => "median",
            Method::Flags => "flags",
        }
    }
}

/// In how many inputs a DQ flag must be set to be kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DqMin {
    /// More than half of the inputs.
    Majority,
    /// At least this many (at most all of them).
    AtLeast(u32),
    /// One input where the pixel is also DO_NOT_USE, else more than half: a pixel a MASK
    /// says not to use stays unused.
    AnyDoNotUse,
}

/// The rule of one combine job.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Rule {
    pub method: Method,
    pub clip_sigma: f64,
    pub dq_min: DqMin,
}

impl Rule {
    /// The rule for `reftype`: `declared` is the generator's method and flag count (0: none),
    /// if it declares a rule.
    pub(crate) fn for_reftype(
        reftype: &str,
        declared: Option<(Method, u32)>,
        settings: &CombineSettings,
    ) -> Rule {
        let mask = reftype.eq_ignore_ascii_case("MASK");
        let own = declared
            .map(|d| d.0)
            .unwrap_or(if mask { Method::Flags } else { Method::Mean });
        let declared_dq = declared.map(|d| d.1).filter(|&n| n > 0);
        let method = match (own, settings.method.as_deref().and_then(Method::parse)) {
            (Method::Flags, _) | (_, None) => own,
            (_, Some(configured)) => configured,
        };
        let dq_min = match settings.dq_min.or(declared_dq) {
            Some(n) => DqMin::AtLeast(n),
            None if mask || own == Method::Flags => DqMin::AnyDoNotUse,
            None => DqMin::Majority,
        };
        Rule {
            method,
            clip_sigma: settings.clip_sigma,
            dq_min,
        }
    }

    /// The job parameters that carry the rule.
    pub(crate) fn to_params(self) -> Vec<JobParam> {
        let dq_min = match self.dq_min {
            DqMin::Majority => Value::from("majority"),
            DqMin::AtLeast(n) => Value::from(n),
            DqMin::AnyDoNotUse => Value::from("any_do_not_use"),
        };
        [
            ("method", Value::from(self.method.name())),
            ("clip_sigma", Value::from(self.clip_sigma)),
            ("dq_min", dq_min),
        ]
        .into_iter()
        .map(|(name, value)| JobParam {
            name: name.to_string(),
            value,
        })
        .collect()
    }

    /// The rule a job file carries.
    pub(crate) fn from_params(params: &[JobParam]) -> Result<Rule, String> {
        let get = |name: &str| {
            params
                .iter()
                .find(|p| p.name == name)
                .map(|p| &p.value)
                .ok_or_else(|| format!("the combine job has no parameter {name}"))
        };
        let method = get("method")?
            .as_str()
            .and_then(Method::parse)
            .ok_or("the combine job's method is not mean, median or flags")?;
        let clip_sigma = get("clip_sigma")?
            .as_f64()
            .filter(|s| s.is_finite() && *s > 0.0)
            .ok_or("the combine job's clip_sigma is not a number > 0")?;
        let dq_min = match get("dq_min")? {
            Value::String(s) if s == "majority" => DqMin::Majority,
            Value::String(s) if s == "any_do_not_use" => DqMin::AnyDoNotUse,
            v => DqMin::AtLeast(
                v.as_u64()
                    .filter(|&n| n >= 1)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or("the combine job's dq_min is not a count >= 1")?,
            ),
        };
        Ok(Rule {
            method,
            clip_sigma,
            dq_min,
        })
    }

    /// The inputs (of `n`) a flag must be set in, given how many set it on a DO_NOT_USE pixel.
    pub(crate) fn needed(self, n: usize, with_do_not_use: u32) -> u32 {
        let majority = (n / 2 + 1) as u32;
        match self.dq_min {
            DqMin::Majority => majority,
            DqMin::AtLeast(k) => k.min(n as u32),
            DqMin::AnyDoNotUse if with_do_not_use > 0 => 1,
            DqMin::AnyDoNotUse => majority,
        }
    }

    /// One line for logs and HISTORY.
    pub(crate) fn describe(self, n: usize) -> String {
        let values = match self.method {
            Method::Flags => "values of the input with the earliest USEAFTER".to_string(),
            m => format!(
                "{} per pixel after leaving out values more than {} sd from the pixel's median",
                m.name(),
                self.clip_sigma
            ),
        };
        let flags = match self.dq_min {
            DqMin::AnyDoNotUse => format!(
                "a DQ flag kept when set in {} of {n} inputs, or in one where the pixel is \
                 DO_NOT_USE",
                self.needed(n, 0)
            ),
            _ => format!(
                "a DQ flag kept when set in {} of {n} inputs",
                self.needed(n, 0)
            ),
        };
        format!("{values}; {flags}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(method: Option<&str>, dq_min: Option<u32>) -> CombineSettings {
        CombineSettings {
            enabled: true,
            method: method.map(str::to_string),
            clip_sigma: 3.0,
            dq_min,
        }
    }

    #[test]
    fn reftypes_get_their_own_rule_unless_configured_otherwise() {
        let plain = settings(None, None);
        let r = Rule::for_reftype("READNOISE", None, &plain);
        assert_eq!((r.method, r.dq_min), (Method::Mean, DqMin::Majority));
        let m = Rule::for_reftype("mask", None, &plain);
        assert_eq!((m.method, m.dq_min), (Method::Flags, DqMin::AnyDoNotUse));
        // A generator's word, then the configuration (which does not average flags-only files).
        let g = Rule::for_reftype("GAIN", Some((Method::Median, 2)), &plain);
        assert_eq!((g.method, g.dq_min), (Method::Median, DqMin::AtLeast(2)));
        let configured = settings(Some("median"), Some(2));
        let r = Rule::for_reftype("READNOISE", None, &configured);
        assert_eq!((r.method, r.dq_min), (Method::Median, DqMin::AtLeast(2)));
        assert_eq!(
            Rule::for_reftype("MASK", None, &configured).method,
            Method::Flags
        );
        // The job parameters carry it exactly.
        for rule in [r, m, g] {
            assert_eq!(Rule::from_params(&rule.to_params()).unwrap(), rule);
        }
    }

    #[test]
    fn flag_counts_follow_the_rule() {
        let rule = |dq_min| Rule {
            method: Method::Mean,
            clip_sigma: 3.0,
            dq_min,
        };
        assert_eq!(rule(DqMin::Majority).needed(4, 0), 3);
        assert_eq!(rule(DqMin::Majority).needed(3, 0), 2);
        assert_eq!(rule(DqMin::AtLeast(9)).needed(3, 0), 3);
        assert_eq!(rule(DqMin::AnyDoNotUse).needed(5, 1), 1);
        assert_eq!(rule(DqMin::AnyDoNotUse).needed(5, 0), 3);
    }
}
