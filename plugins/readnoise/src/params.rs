//! The parameters of the readnoise generator: declarations (names and defaults of upstream's
//! `make_readnoise`) and their typed, checked values for one job.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::job::JobView;
use mkrefs_support::jobparams::{Budget, Ignored, Metadata, MetadataParams};
use mkrefs_support::params::{Declare, Kind, Param};

use crate::cds::GroupDiff;
use crate::compute::Method;

pub const METHOD: Param<String> = Param::new(
    "method",
    "stack",
    "'stack': the sigma-clipped std of the CDS frames of all inputs together. 'ramp': \
     the clipped std per input, then the clipped mean of those (lower with \
     upstream_estimator: true).",
)
.one_of(&Method::CHOICES);
pub const GROUP_DIFF_TYPE: Param<String> = Param::new(
    "group_diff_type",
    "independent",
    "'independent': CDS pairs (1-0), (3-2), ... (an odd last group is left out). \
     'consecutive': (1-0), (2-1), ... (correlated neighbours).",
)
.one_of(&GroupDiff::CHOICES);
pub const CLIPPING_SIGMA: Param<f64> = Param::new(
    "clipping_sigma",
    3.0,
    "Sigma of every sigma clip (astropy semantics: median centre, std spread).",
)
.above(0.0);
pub const MAX_CLIPPING_ITERS: Param<i64> = Param::new(
    "max_clipping_iters",
    3,
    "Maximum number of clipping iterations.",
)
.at_least(1.0);
pub const UPSTREAM_ESTIMATOR: Param<bool> = Param::new(
    "upstream_estimator",
    false,
    "true: each pixel's noise is the clipped std (ddof 0) as jwst_reffiles 1.0.1 computes it, \
     2-4 % below the CDS noise for normal data (less with more samples); false: that std \
     corrected for ddof, the square root and the clip, an unbiased estimate of the CDS noise.",
);
pub const SINGLE_VALUE: Param<bool> = Param::new(
    "single_value",
    false,
    "Write one clipped-mean value everywhere (NIRCam full frame: measured on the first \
     amplifier in detector orientation; reference pixels left out).",
);
pub const METADATA: Metadata = Metadata::new("CDS Noise Image", "2015-10-01T00:00:00");

/// Default memory budget of the row band, MiB.
pub const DEFAULT_BUDGET_MB: i64 = 512;

pub const BUDGET: Budget = Budget::new(
    DEFAULT_BUDGET_MB,
    "the row band of CDS frames (rows per block shrink as inputs grow, so memory does not \
     grow with the number of inputs)",
);

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given.
pub const IGNORED: &[Ignored] = &[
    Ignored::new(
        "nproc",
        Kind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: the job's thread budget \
         (mkrefs --threads) sets the parallelism.",
    ),
    Ignored::new(
        "slice_width",
        Kind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs streams row blocks \
         sized by memory_budget_mb instead of column slices; the result does not depend on it.",
    ),
    Ignored::new(
        "save_tmp",
        Kind::Bool,
        "Accepted for jwst_reffiles compatibility and ignored: the bare f64 copy of the map is \
         not written (the reference file holds the same numbers in float32).",
    ),
    Ignored::new(
        "outfile",
        Kind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
];

/// Every parameter the generator accepts, with upstream's names and defaults.
pub const PARAMS: &[&dyn Declare] = &[
    &METHOD,
    &GROUP_DIFF_TYPE,
    &CLIPPING_SIGMA,
    &MAX_CLIPPING_ITERS,
    &UPSTREAM_ESTIMATOR,
    &SINGLE_VALUE,
    &METADATA,
    &BUDGET,
    &IGNORED,
];

/// The checked parameters of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub method: Method,
    pub diff: GroupDiff,
    pub sigma: f64,
    pub maxiters: usize,
    pub upstream_estimator: bool,
    pub single_value: bool,
    pub meta: MetadataParams,
    pub budget_bytes: usize,
}

impl Settings {
    pub fn from_job(job: &JobView<'_>) -> Result<Settings, GeneratorError> {
        let method_s = job.get(&METHOD)?;
        let method = Method::parse(&method_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "method must be {}, got '{method_s}'",
                Method::CHOICES.listed()
            ))
        })?;
        let diff_s = job.get(&GROUP_DIFF_TYPE)?;
        let diff = GroupDiff::parse(&diff_s).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "group_diff_type must be {}, got '{diff_s}'",
                GroupDiff::CHOICES.listed()
            ))
        })?;
        Ok(Settings {
            method,
            diff,
            sigma: job.get(&CLIPPING_SIGMA)?,
            maxiters: job.count(&MAX_CLIPPING_ITERS)?,
            upstream_estimator: job.get(&UPSTREAM_ESTIMATOR)?,
            single_value: job.get(&SINGLE_VALUE)?,
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
    fn specs_have_upstream_defaults_and_unique_names() {
        let v = specs(PARAMS);
        let get = |n: &str| v.iter().find(|p| p.name == n).unwrap().default.clone();
        let s = |t: &str| Value::Str(t.into());
        assert_eq!(get("method"), s("stack"));
        assert_eq!(get("group_diff_type"), s("independent"));
        assert_eq!(get("clipping_sigma"), Value::Float(3.0));
        assert_eq!(get("max_clipping_iters"), Value::Int(3));
        assert_eq!(get("description"), s("CDS Noise Image"));
        assert_eq!(get("useafter"), s("2015-10-01T00:00:00"));
        assert_eq!(get("readpatt"), Value::Null);
        let mut names: Vec<_> = v.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }
}
