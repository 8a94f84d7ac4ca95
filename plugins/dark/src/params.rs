//! The parameters of the dark generator: upstream's names and defaults (algos.md §3.1), the
//! additions of mkrefs, and their checked values for one job.

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};
use mkrefs_support::jobparams::{
    IgnoredParam, MetadataParams, at_least_one, budget_bytes, budget_spec, ignored_specs,
    metadata_specs, null_like, positive,
};

use crate::compute::{ErrType, Statistic};

/// Upstream parameters whose job is done otherwise here; accepted so that jwst_reffiles
/// configurations keep working, and logged when given.
pub const IGNORED: &[IgnoredParam] = &[
    (
        "max_equivalent_groups",
        ParamKind::Int,
        "Accepted for jwst_reffiles compatibility and ignored: memory_budget_mb sizes the \
         blocks.",
    ),
    (
        "output_file",
        ParamKind::String,
        "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
    ),
    (
        "contribution_file",
        ParamKind::String,
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

pub fn specs() -> Vec<ParamSpec> {
    let s = ParamValue::str;
    let mut v = vec![
        ParamSpec::new(
            "sigma_threshold",
            ParamKind::Float,
            ParamValue::Float(3.0),
            "Sigma of the per-pixel, per-group clip across integrations.",
        ),
        ParamSpec::new(
            "maxiters",
            ParamKind::Int,
            ParamValue::Int(5),
            "Maximum iterations of that clip (upstream silently uses astropy's default, 5).",
        ),
        ParamSpec::new(
            "sigma_clip_inputs",
            ParamKind::Bool,
            ParamValue::Bool(true),
            "Sigma-clip the values of each pixel and group before the statistic.",
        ),
        ParamSpec::new(
            "statistic",
            ParamKind::String,
            s("mean"),
            "'mean' (default, as jwst_reffiles 1.0.1) or 'median' (as its master branch) of \
             the clipped values.",
        ),
        ParamSpec::new(
            "err_type",
            ParamKind::String,
            s("error"),
            "'error': ERR is the uncertainty of SCI (scatter/sqrt(n), times sqrt(pi/2) for the \
             median). 'scatter': the scatter of single integrations, as jwst_reffiles.",
        ),
        ParamSpec::new(
            "min_good_values",
            ParamKind::Int,
            ParamValue::Int(2),
            "A pixel with a group of fewer values used is flagged UNRELIABLE_DARK (with none: \
             also DO_NOT_USE, and SCI = ERR = 0 there).",
        ),
        ParamSpec::new(
            "counts_file",
            ParamKind::Bool,
            ParamValue::Bool(false),
            "Also write the number of values used per pixel and group to <output \
             stem>_counts.fits beside the output.",
        ),
        ParamSpec::new(
            "descrip",
            ParamKind::String,
            ParamValue::Null,
            "jwst_reffiles' name for description; when given it is used instead.",
        ),
        ParamSpec::new(
            "use_after",
            ParamKind::String,
            ParamValue::Null,
            "jwst_reffiles' name for useafter; when given it is used instead.",
        ),
    ];
    for mut p in metadata_specs(DEFAULT_DESCRIPTION, "2000-01-01T00:00:00") {
        if p.name.as_str() == "readpatt" {
            p.help = "READPATT keyword; null takes it from the first input (a dark applies to \
                      its readout pattern)."
                .into();
        }
        v.push(p);
    }
    v.push(budget_spec(
        DEFAULT_BUDGET_MB,
        "the row band of SCI values of every integration",
    ));
    v.extend(ignored_specs(IGNORED));
    v
}

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
    pub fn from_job(job: &Job<'_>) -> Result<Settings, GeneratorError> {
        let st = job.string_param("statistic")?;
        let statistic = Statistic::parse(&st).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "statistic must be 'mean' or 'median', got '{st}'"
            ))
        })?;
        let e = job.string_param("err_type")?;
        let err = ErrType::parse(&e).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "err_type must be 'error' or 'scatter', got '{e}'"
            ))
        })?;
        let mut meta = MetadataParams::from_job(job)?;
        if let Some(d) = null_like(job.opt_string_param("descrip")?) {
            meta.description = d;
        }
        if let Some(u) = null_like(job.opt_string_param("use_after")?) {
            meta.useafter = u;
        }
        // MetadataParams writes 'ANY' for a null readpatt; the dark takes the input's instead.
        let readpatt = meta.readpatt.clone();
        Ok(Settings {
            sigma: positive(job, "sigma_threshold")?,
            maxiters: at_least_one(job, "maxiters")?,
            clip: job.bool_param("sigma_clip_inputs")?,
            statistic,
            err,
            min_good: at_least_one(job, "min_good_values")?,
            counts_file: job.bool_param("counts_file")?,
            meta,
            readpatt,
            budget_bytes: budget_bytes(job)?,
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

    #[test]
    fn specs_have_upstream_names_and_defaults() {
        let v = specs();
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name.as_str() == n)
                .unwrap_or_else(|| panic!("no {n}"))
                .default
                .clone()
        };
        assert_eq!(get("sigma_threshold"), ParamValue::Float(3.0));
        assert_eq!(get("maxiters"), ParamValue::Int(5));
        assert_eq!(get("statistic"), ParamValue::str("mean"));
        assert_eq!(get("sigma_clip_inputs"), ParamValue::Bool(true));
        assert_eq!(get("max_equivalent_groups"), ParamValue::Null);
        assert_eq!(get("memory_budget_mb"), ParamValue::Int(DEFAULT_BUDGET_MB));
        assert_eq!(get("readpatt"), ParamValue::Null);
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
        let mut names: Vec<_> = v.iter().map(|p| p.name.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }
}
