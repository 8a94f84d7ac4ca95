//! The parameters of the superbias generator: upstream's names and defaults, the
//! additions of mkrefs, and their checked values for one job.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::job::JobView;
use mkrefs_support::jobparams::{Budget, Ignored, Metadata, MetadataParams};
use mkrefs_support::params::{Declare, Kind, Param};

use crate::compute::{ErrorKind, Integrations};

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given. `plot`, `save_filled`
/// and `box_width` (side products) are not implemented and therefore not accepted.
pub const IGNORED: &[Ignored] = &[
    Ignored::new(
        "save_reffile",
        Kind::Bool,
        "Accepted for jwst_reffiles compatibility and ignored: an mkrefs job always writes its \
         reference file.",
    ),
    Ignored::new(
        "outfile",
        Kind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
];

/// Small on purpose, so the peak memory stays the same however many inputs a job has. The
/// bands themselves are capped at 4 MB each (they stay in the cache), so the budget only binds
/// when it is set lower than that.
pub const DEFAULT_BUDGET_MB: i64 = 64;

pub const CLIPPING_SIGMA: Param<f64> = Param::new(
    "clipping_sigma",
    3.0,
    "Sigma of the per-pixel clip of the group-0 stack (mean and ERR).",
)
.above(0.0);
pub const MAX_CLIPPING_ITERS: Param<i64> = Param::new(
    "max_clipping_iters",
    3,
    "Maximum iterations of the per-pixel clip.",
)
.at_least(1.0);
pub const BAD_CLIPPING_SIGMA: Param<f64> = Param::new(
    "bad_clipping_sigma",
    3.0,
    "Sigma of the clip of the single-frame scatter image that sets the UNRELIABLE_BIAS \
     threshold.",
)
.above(0.0);
pub const BAD_MAX_CLIPPING_ITERS: Param<i64> = Param::new(
    "bad_max_clipping_iters",
    3,
    "Maximum iterations of that clip.",
)
.at_least(1.0);
pub const BAD_SIGMA_THRESHOLD: Param<f64> = Param::new(
    "bad_sigma_threshold",
    5.0,
    "Flag DO_NOT_USE + UNRELIABLE_BIAS where the scatter exceeds the clipped mean plus \
     this many clipped stds.",
);
pub const INTEGRATIONS: Param<String> = Param::new(
    "integrations",
    "first",
    "'first': group 0 of integration 0 of each input, as jwst_reffiles. 'all': group 0 \
     of every integration (more samples; only if all integrations share the bias state).",
)
.one_of(&Integrations::CHOICES);
pub const ERR_TYPE: Param<String> = Param::new(
    "err_type",
    "mean",
    "'mean': ERR is the error of the clipped mean (scatter/sqrt(n)), the uncertainty of \
     SCI. 'scatter': the single-frame scatter, as jwst_reffiles.",
)
.one_of(&ErrorKind::CHOICES);
pub const METADATA: Metadata = Metadata::new("Super Bias Image", "2000-01-01T00:00:00");
pub const BUDGET: Budget = Budget::new(DEFAULT_BUDGET_MB, "the row band of group-0 frames");

/// Every parameter the generator accepts, in the order `mkrefs describe` lists them.
pub const PARAMS: &[&dyn Declare] = &[
    &CLIPPING_SIGMA,
    &MAX_CLIPPING_ITERS,
    &BAD_CLIPPING_SIGMA,
    &BAD_MAX_CLIPPING_ITERS,
    &BAD_SIGMA_THRESHOLD,
    &INTEGRATIONS,
    &ERR_TYPE,
    &METADATA,
    &BUDGET,
    &IGNORED,
];

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
    pub fn from_job(job: &JobView<'_>) -> Result<Settings, GeneratorError> {
        let ints = job.get(&INTEGRATIONS)?;
        let integrations = Integrations::parse(&ints).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "integrations must be {}, got '{ints}'",
                Integrations::CHOICES.listed()
            ))
        })?;
        let err_s = job.get(&ERR_TYPE)?;
        let err = ErrorKind::parse(&err_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "err_type must be {}, got '{err_s}'",
                ErrorKind::CHOICES.listed()
            ))
        })?;
        let bad_threshold = job.get(&BAD_SIGMA_THRESHOLD)?;
        if !bad_threshold.is_finite() {
            return Err(GeneratorError::invalid_parameter(format!(
                "bad_sigma_threshold must be a finite number, got {bad_threshold}"
            )));
        }
        Ok(Settings {
            sigma: job.get(&CLIPPING_SIGMA)?,
            maxiters: job.count(&MAX_CLIPPING_ITERS)?,
            bad_sigma: job.get(&BAD_CLIPPING_SIGMA)?,
            bad_maxiters: job.count(&BAD_MAX_CLIPPING_ITERS)?,
            bad_threshold,
            integrations,
            err,
            meta: METADATA.read(job)?,
            budget_bytes: BUDGET.bytes(job)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::params::{Value, specs};

    #[test]
    fn specs_have_upstream_defaults() {
        let v = specs(PARAMS);
        let get = |n: &str| v.iter().find(|p| p.name == n).unwrap().default.clone();
        let s = |t: &str| Value::Str(t.into());
        assert_eq!(get("bad_sigma_threshold"), Value::Float(5.0));
        assert_eq!(get("bad_max_clipping_iters"), Value::Int(3));
        assert_eq!(get("description"), s("Super Bias Image"));
        assert_eq!(get("useafter"), s("2000-01-01T00:00:00"));
        assert_eq!(get("integrations"), s("first"));
        assert_eq!(get("subarray"), Value::Null);
        let mut names: Vec<_> = v.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }
}
