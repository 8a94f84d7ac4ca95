//! The parameters of the dark generator: upstream's names and defaults, the additions of
//! mkrefs, and their checked values for one job.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::job::JobView;
use mkrefs_support::jobparams::{Budget, Ignored, Metadata, MetadataParams};
use mkrefs_support::params::{Declare, Kind, Param, null_like};

use crate::compute::{ErrType, Statistic};

/// Upstream parameters whose job is done otherwise here; accepted so that jwst_reffiles
/// configurations keep working, and logged when given.
pub const IGNORED: &[Ignored] = &[
    Ignored::new(
        "max_equivalent_groups",
        Kind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: memory_budget_mb sizes the \
         blocks.",
    ),
    Ignored::new(
        "output_file",
        Kind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
    Ignored::new(
        "contribution_file",
        Kind::String,
        "Accepted for jwst_reffiles compatibility and ignored: set counts_file: true for the \
         good-value counts (<output stem>_counts.fits beside the output).",
    ),
];

/// A few hundred MiB: a full-frame band of 5 files × 2 integrations × 10 groups then spans
/// about 250 rows (8 blocks), so per-block overhead is negligible, while the peak stays well
/// below 1 GiB whatever the number of inputs (more inputs give fewer rows per block).
pub const DEFAULT_BUDGET_MB: i64 = 256;

/// Upstream's default description is never written (its DESCRIP bug); this is what mkrefs
/// writes unless told otherwise.
pub const DEFAULT_DESCRIPTION: &str = "Dark current per group (mkrefs)";

pub const SIGMA_THRESHOLD: Param<f64> = Param::new(
    "sigma_threshold",
    3.0,
    "Sigma of the per-pixel, per-group clip across integrations.",
)
.above(0.0);
pub const MAXITERS: Param<i64> = Param::new(
    "maxiters",
    5,
    "Maximum iterations of that clip (upstream silently uses astropy's default, 5).",
)
.at_least(1.0);
pub const SIGMA_CLIP_INPUTS: Param<bool> = Param::new(
    "sigma_clip_inputs",
    true,
    "Sigma-clip the values of each pixel and group before the statistic.",
);
pub const STATISTIC: Param<String> = Param::new(
    "statistic",
    "mean",
    "'mean' (default, as jwst_reffiles 1.0.1) or 'median' (as its master branch) of \
     the clipped values.",
)
.one_of(&Statistic::CHOICES);
pub const ERR_TYPE: Param<String> = Param::new(
    "err_type",
    "error",
    "'error': ERR is the uncertainty of SCI (scatter/sqrt(n), times sqrt(pi/2) for the \
     median). 'scatter': the scatter of single integrations, as jwst_reffiles.",
)
.one_of(&ErrType::CHOICES);
pub const MIN_GOOD_VALUES: Param<i64> = Param::new(
    "min_good_values",
    2,
    "A pixel with a group of fewer values used is flagged UNRELIABLE_DARK (with none: \
     also DO_NOT_USE, and SCI = ERR = 0 there).",
)
.at_least(1.0);
pub const COUNTS_FILE: Param<bool> = Param::new(
    "counts_file",
    false,
    "Also write the number of values used per pixel and group to <output \
     stem>_counts.fits beside the output.",
);
pub const DESCRIP: Param<Option<String>> = Param::new(
    "descrip",
    None,
    "jwst_reffiles' name for description; when given it is used instead.",
);
pub const USE_AFTER: Param<Option<String>> = Param::new(
    "use_after",
    None,
    "jwst_reffiles' name for useafter; when given it is used instead.",
);
pub const METADATA: Metadata = Metadata::new(DEFAULT_DESCRIPTION, "2000-01-01T00:00:00")
    .with_readpatt_help(
        "READPATT keyword; null takes it from the first input (a dark applies to \
         its readout pattern).",
    );
pub const BUDGET: Budget = Budget::new(
    DEFAULT_BUDGET_MB,
    "the row band of SCI values of every integration",
);

/// Every parameter the generator accepts, in the order `mkrefs describe` lists them.
pub const PARAMS: &[&dyn Declare] = &[
    &SIGMA_THRESHOLD,
    &MAXITERS,
    &SIGMA_CLIP_INPUTS,
    &STATISTIC,
    &ERR_TYPE,
    &MIN_GOOD_VALUES,
    &COUNTS_FILE,
    &DESCRIP,
    &USE_AFTER,
    &METADATA,
    &BUDGET,
    &IGNORED,
];

/// The checked parameters of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub sigma: f64,
    pub maxiters: usize,
    pub clip: bool,
    pub statistic: Statistic,
    pub err: ErrType,
    pub min_good: usize,
    pub counts_file: bool,
    pub meta: MetadataParams,
    /// The `readpatt` parameter as given (None: from the input).
    pub readpatt: Option<String>,
    pub budget_bytes: usize,
}

impl Settings {
    pub fn from_job(job: &JobView<'_>) -> Result<Settings, GeneratorError> {
        let st = job.get(&STATISTIC)?;
        let statistic = Statistic::parse(&st).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "statistic must be {}, got '{st}'",
                Statistic::CHOICES.listed()
            ))
        })?;
        let e = job.get(&ERR_TYPE)?;
        let err = ErrType::parse(&e).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "err_type must be {}, got '{e}'",
                ErrType::CHOICES.listed()
            ))
        })?;
        let mut meta = METADATA.read(job)?;
        if let Some(d) = null_like(job.get(&DESCRIP)?) {
            meta.description = d;
        }
        if let Some(u) = null_like(job.get(&USE_AFTER)?) {
            meta.useafter = u;
        }
        // MetadataParams writes 'ANY' for a null readpatt; the dark takes the input's instead.
        let readpatt = meta.readpatt.clone();
        Ok(Settings {
            sigma: job.get(&SIGMA_THRESHOLD)?,
            maxiters: job.count(&MAXITERS)?,
            clip: job.get(&SIGMA_CLIP_INPUTS)?,
            statistic,
            err,
            min_good: job.count(&MIN_GOOD_VALUES)?,
            counts_file: job.get(&COUNTS_FILE)?,
            meta,
            readpatt,
            budget_bytes: BUDGET.bytes(job)?,
        })
    }

    /// `(sigma, maxiters)` of the clip, if clipping.
    pub fn clip(&self) -> Option<(f64, usize)> {
        self.clip.then_some((self.sigma, self.maxiters))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::params::{Value, specs};

    #[test]
    fn specs_have_upstream_names_and_defaults() {
        let v = specs(PARAMS);
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name == n)
                .unwrap_or_else(|| panic!("no {n}"))
                .default
                .clone()
        };
        assert_eq!(get("sigma_threshold"), Value::Float(3.0));
        assert_eq!(get("maxiters"), Value::Int(5));
        assert_eq!(get("statistic"), Value::Str("mean".into()));
        assert_eq!(get("sigma_clip_inputs"), Value::Bool(true));
        assert_eq!(get("max_equivalent_groups"), Value::Null);
        assert_eq!(get("memory_budget_mb"), Value::Int(DEFAULT_BUDGET_MB));
        assert_eq!(get("readpatt"), Value::Null);
        for name in [
            "pedigree",
            "author",
            "history",
            "descrip",
            "use_after",
            "counts_file",
        ] {
            get(name);
        }
        let mut names: Vec<_> = v.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }
}
