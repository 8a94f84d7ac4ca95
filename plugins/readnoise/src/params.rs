//! The parameters of the readnoise generator: declarations (names and defaults of upstream's
//! `make_readnoise`, §1.1) and their typed, checked values for one job.

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};
use mkrefs_support::jobparams::{
    IgnoredParam, MetadataParams, at_least_one, budget_bytes, budget_spec, ignored_specs,
    metadata_specs, positive,
};

use crate::cds::GroupDiff;
use crate::compute::Method;

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given.
pub const IGNORED: &[IgnoredParam] = &[
    (
        "nproc",
        ParamKind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: the job's thread budget \
         (mkrefs --threads) sets the parallelism.",
    ),
    (
        "slice_width",
        ParamKind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs streams row blocks \
         sized by memory_budget_mb instead of column slices; the result does not depend on it.",
    ),
    (
        "save_tmp",
        ParamKind::Bool,
        "Accepted for jwst_reffiles compatibility and ignored: the bare f64 copy of the map is \
         not written (the reference file holds the same numbers in float32).",
    ),
    (
        "outfile",
        ParamKind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
];

/// Default memory budget of the row band, MiB.
pub const DEFAULT_BUDGET_MB: i64 = 512;

/// Every parameter the generator accepts, with upstream's names and defaults.
pub fn specs() -> Vec<ParamSpec> {
    let s = |v: &str| ParamValue::str(v);
    let mut v = vec![
        ParamSpec::new(
            "method",
            ParamKind::String,
            s("stack"),
            "'stack': the sigma-clipped std of the CDS frames of all inputs together. 'ramp': \
             the clipped std per input, then the clipped mean of those (slightly lower).",
        ),
        ParamSpec::new(
            "group_diff_type",
            ParamKind::String,
            s("independent"),
            "'independent': CDS pairs (1-0), (3-2), ... (an odd last group is left out). \
             'consecutive': (1-0), (2-1), ... (correlated neighbours).",
        ),
        ParamSpec::new(
            "clipping_sigma",
            ParamKind::Float,
            ParamValue::Float(3.0),
            "Sigma of every sigma clip (astropy semantics: median centre, std spread).",
        ),
        ParamSpec::new(
            "max_clipping_iters",
            ParamKind::Int,
            ParamValue::Int(3),
            "Maximum number of clipping iterations.",
        ),
        ParamSpec::new(
            "single_value",
            ParamKind::Bool,
            ParamValue::Bool(false),
            "Write one clipped-mean value everywhere (NIRCam full frame: measured on the first \
             amplifier in detector orientation; reference pixels left out).",
        ),
    ];
    v.extend(metadata_specs("CDS Noise Image", "2015-10-01T00:00:00"));
    v.push(budget_spec(
        DEFAULT_BUDGET_MB,
        "the row band of CDS frames (rows per block shrink as inputs grow, so memory does not \
         grow with the number of inputs)",
    ));
    v.extend(ignored_specs(IGNORED));
    v
}

/// The checked parameters of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub method: Method,
    pub diff: GroupDiff,
    pub sigma: f64,
    pub maxiters: usize,
    pub single_value: bool,
    pub meta: MetadataParams,
    pub budget_bytes: usize,
}

/// Clipping sigma and iteration count, checked.
pub fn clip_params(
    job: &Job<'_>,
    sigma: &str,
    iters: &str,
) -> Result<(f64, usize), GeneratorError> {
    Ok((positive(job, sigma)?, at_least_one(job, iters)?))
}

impl Settings {
    pub fn from_job(job: &Job<'_>) -> Result<Settings, GeneratorError> {
        let method_s = job.string_param("method")?;
        let method = Method::parse(&method_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "method must be 'stack' or 'ramp', got '{method_s}'"
            ))
        })?;
        let diff_s = job.string_param("group_diff_type")?;
        let diff = GroupDiff::parse(&diff_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "group_diff_type must be 'independent' or 'consecutive', got '{diff_s}'"
            ))
        })?;
        let (sigma, maxiters) = clip_params(job, "clipping_sigma", "max_clipping_iters")?;
        Ok(Settings {
            method,
            diff,
            sigma,
            maxiters,
            single_value: job.bool_param("single_value")?,
            meta: MetadataParams::from_job(job)?,
            budget_bytes: budget_bytes(job)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_have_upstream_defaults_and_unique_names() {
        let v = specs();
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name.as_str() == n)
                .unwrap()
                .default
                .clone()
        };
        assert_eq!(get("method"), ParamValue::str("stack"));
        assert_eq!(get("group_diff_type"), ParamValue::str("independent"));
        assert_eq!(get("clipping_sigma"), ParamValue::Float(3.0));
        assert_eq!(get("max_clipping_iters"), ParamValue::Int(3));
        assert_eq!(get("description"), ParamValue::str("CDS Noise Image"));
        assert_eq!(get("useafter"), ParamValue::str("2015-10-01T00:00:00"));
        assert_eq!(get("readpatt"), ParamValue::Null);
        let mut names: Vec<_> = v.iter().map(|p| p.name.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }
}
