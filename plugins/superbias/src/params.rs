//! The parameters of the superbias generator: upstream's names and defaults (§2.1), the
//! additions of mkrefs, and their checked values for one job.

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};
use mkrefs_support::jobparams::{
    IgnoredParam, MetadataParams, at_least_one, budget_bytes, budget_spec, ignored_specs,
    metadata_specs, positive,
};

use crate::compute::Integrations;

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given. `plot`, `save_filled`
/// and `box_width` (side products) are not implemented and therefore not accepted.
pub const IGNORED: &[IgnoredParam] = &[
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
    ];
    v.extend(metadata_specs("Super Bias Image", "2000-01-01T00:00:00"));
    v.push(budget_spec(
        DEFAULT_BUDGET_MB,
        "the row band of group-0 frames",
    ));
    v.extend(ignored_specs(IGNORED));
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
    pub meta: MetadataParams,
    pub budget_bytes: usize,
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
        let bad_threshold = job.float_param("bad_sigma_threshold")?;
        if !bad_threshold.is_finite() {
            return Err(GeneratorError::invalid_parameter(format!(
                "bad_sigma_threshold must be a finite number, got {bad_threshold}"
            )));
        }
        Ok(Settings {
            sigma: positive(job, "clipping_sigma")?,
            maxiters: at_least_one(job, "max_clipping_iters")?,
            bad_sigma: positive(job, "bad_clipping_sigma")?,
            bad_maxiters: at_least_one(job, "bad_max_clipping_iters")?,
            bad_threshold,
            integrations,
            err,
            meta: MetadataParams::from_job(job)?,
            budget_bytes: budget_bytes(job)?,
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
    }
}
