//! The parameters of the superbias generator: upstream's names and defaults (§2.1), the
//! additions of mkrefs, and their checked values for one job.

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};

use crate::compute::Integrations;

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given. `plot`, `save_filled`
/// and `box_width` (side products) are not implemented and therefore not accepted.
pub const IGNORED: &[(&str, ParamKind, &str)] = &[
    (
        "save_reffile",
        ParamKind::Bool,
        "Accepted for jwst_reffiles compatibility and ignored: an mkrefs job always writes its \
         reference file.",
    ),
    (
        "outfile",
        ParamKind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
];

/// Small on purpose: a few full-frame group-0 frames (16 MiB each as f32) already fill it, so
/// the band, and with it the peak memory, stays the same however many inputs a job has; reading
/// in a few more row blocks costs nothing measurable.
pub const DEFAULT_BUDGET_MB: i64 = 64;

/// What ERR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The error of the clipped mean, scatter/√n: the uncertainty of SCI.
    Mean,
    /// The scatter of single frames, as upstream.
    Scatter,
}

impl ErrorKind {
    pub fn parse(s: &str) -> Option<ErrorKind> {
        match s.trim().to_ascii_lowercase().as_str() {
            "mean" => Some(ErrorKind::Mean),
            "scatter" => Some(ErrorKind::Scatter),
            _ => None,
        }
    }
}

pub fn specs() -> Vec<ParamSpec> {
    let s = |v: &str| ParamValue::str(v);
    let mut v = vec![
        ParamSpec::new(
            "clipping_sigma",
            ParamKind::Float,
            ParamValue::Float(3.0),
            "Sigma of the per-pixel clip of the group-0 stack (mean and ERR).",
        ),
        ParamSpec::new(
            "max_clipping_iters",
            ParamKind::Int,
            ParamValue::Int(3),
            "Maximum iterations of the per-pixel clip.",
        ),
        ParamSpec::new(
            "bad_clipping_sigma",
            ParamKind::Float,
            ParamValue::Float(3.0),
            "Sigma of the clip of the single-frame scatter image that sets the UNRELIABLE_BIAS \
             threshold.",
        ),
        ParamSpec::new(
            "bad_max_clipping_iters",
            ParamKind::Int,
            ParamValue::Int(3),
            "Maximum iterations of that clip.",
        ),
        ParamSpec::new(
            "bad_sigma_threshold",
            ParamKind::Float,
            ParamValue::Float(5.0),
            "Flag DO_NOT_USE + UNRELIABLE_BIAS where the scatter exceeds the clipped mean plus \
             this many clipped stds.",
        ),
        ParamSpec::new(
            "integrations",
            ParamKind::String,
            s("first"),
            "'first': group 0 of integration 0 of each input, as jwst_reffiles. 'all': group 0 \
             of every integration (more samples; only if all integrations share the bias state).",
        ),
        ParamSpec::new(
            "err_type",
            ParamKind::String,
            s("mean"),
            "'mean': ERR is the error of the clipped mean (scatter/sqrt(n)), the uncertainty of \
             SCI. 'scatter': the single-frame scatter, as jwst_reffiles.",
        ),
        ParamSpec::new("author", ParamKind::String, s("mkrefs"), "AUTHOR keyword."),
        ParamSpec::new(
            "description",
            ParamKind::String,
            s("Super Bias Image"),
            "DESCRIP keyword, at most 65 characters.",
        ),
        ParamSpec::new(
            "pedigree",
            ParamKind::String,
            s("GROUND"),
            "PEDIGREE: SIMULATION, GROUND, DUMMY or 'INFLIGHT YYYY-MM-DD YYYY-MM-DD'.",
        ),
        ParamSpec::new(
            "useafter",
            ParamKind::String,
            s("2000-01-01T00:00:00"),
            "USEAFTER, YYYY-MM-DDThh:mm:ss (a date alone gets T00:00:00).",
        ),
        ParamSpec::new(
            "history",
            ParamKind::String,
            s(""),
            "Text added as the last HISTORY entry.",
        ),
        ParamSpec::new(
            "subarray",
            ParamKind::String,
            ParamValue::Null,
            "SUBARRAY keyword; null takes it from the first input.",
        ),
        ParamSpec::new(
            "readpatt",
            ParamKind::String,
            ParamValue::Null,
            "READPATT keyword; null writes 'ANY'.",
        ),
        ParamSpec::new(
            "memory_budget_mb",
            ParamKind::Int,
            ParamValue::Int(DEFAULT_BUDGET_MB),
            "Memory for the row band of group-0 frames, MiB. The result does not depend on it.",
        ),
    ];
    v.extend(
        IGNORED
            .iter()
            .map(|&(name, kind, help)| ParamSpec::new(name, kind, ParamValue::Null, help)),
    );
    v
}

/// The checked parameters of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub sigma: f64,
    pub maxiters: usize,
    pub bad_sigma: f64,
    pub bad_maxiters: usize,
    pub bad_threshold: f64,
    pub integrations: Integrations,
    pub err: ErrorKind,
    pub author: String,
    pub description: String,
    pub pedigree: String,
    pub useafter: String,
    pub history: String,
    pub subarray: Option<String>,
    pub readpatt: Option<String>,
    pub budget_bytes: usize,
    pub ignored: Vec<String>,
}

/// `None` for a null, empty, "none" or "null" value (upstream nulls any value *containing*
/// "none"; whole values only here).
pub fn null_like(v: Option<String>) -> Option<String> {
    v.filter(|s| {
        let t = s.trim();
        !(t.is_empty() || t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("null"))
    })
    .map(|s| s.trim().to_string())
}

fn positive(job: &Job<'_>, name: &str) -> Result<f64, GeneratorError> {
    let v = job.float_param(name)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be a positive number, got {v}"
        )))
    }
}

fn at_least_one(job: &Job<'_>, name: &str) -> Result<usize, GeneratorError> {
    let v = job.int_param(name)?;
    if v >= 1 {
        Ok(v as usize)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be at least 1, got {v}"
        )))
    }
}

impl Settings {
    pub fn from_job(job: &Job<'_>) -> Result<Settings, GeneratorError> {
        let ints = job.string_param("integrations")?;
        let integrations = Integrations::parse(&ints).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "integrations must be 'first' or 'all', got '{ints}'"
            ))
        })?;
        let err_s = job.string_param("err_type")?;
        let err = ErrorKind::parse(&err_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "err_type must be 'mean' or 'scatter', got '{err_s}'"
            ))
        })?;
        let description = job.string_param("description")?;
        if description.chars().count() > 65 {
            return Err(GeneratorError::invalid_parameter(format!(
                "description must be at most 65 characters (DESCRIP), got {}: '{description}'",
                description.chars().count()
            )));
        }
        let bad_threshold = job.float_param("bad_sigma_threshold")?;
        if !bad_threshold.is_finite() {
            return Err(GeneratorError::invalid_parameter(format!(
                "bad_sigma_threshold must be a finite number, got {bad_threshold}"
            )));
        }
        let budget_mb = at_least_one(job, "memory_budget_mb")?;
        Ok(Settings {
            sigma: positive(job, "clipping_sigma")?,
            maxiters: at_least_one(job, "max_clipping_iters")?,
            bad_sigma: positive(job, "bad_clipping_sigma")?,
            bad_maxiters: at_least_one(job, "bad_max_clipping_iters")?,
            bad_threshold,
            integrations,
            err,
            author: job.string_param("author")?,
            description,
            pedigree: job.string_param("pedigree")?,
            useafter: job.string_param("useafter")?,
            history: job.string_param("history")?,
            subarray: null_like(job.opt_string_param("subarray")?),
            readpatt: null_like(job.opt_string_param("readpatt")?),
            budget_bytes: budget_mb.saturating_mul(1024 * 1024),
            ignored: IGNORED
                .iter()
                .filter(|(name, ..)| job.param(name).is_some_and(|v| !v.is_null()))
                .map(|(name, ..)| name.to_string())
                .collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_have_upstream_defaults() {
        let v = specs();
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name.as_str() == n)
                .unwrap()
                .default
                .clone()
        };
        assert_eq!(get("bad_sigma_threshold"), ParamValue::Float(5.0));
        assert_eq!(get("bad_max_clipping_iters"), ParamValue::Int(3));
        assert_eq!(get("description"), ParamValue::str("Super Bias Image"));
        assert_eq!(get("useafter"), ParamValue::str("2000-01-01T00:00:00"));
        assert_eq!(get("integrations"), ParamValue::str("first"));
        assert_eq!(get("subarray"), ParamValue::Null);
        let mut names: Vec<_> = v.iter().map(|p| p.name.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
        assert_eq!(null_like(Some("NONE".into())), None);
        assert_eq!(null_like(Some("SUB640".into())), Some("SUB640".into()));
    }
}
