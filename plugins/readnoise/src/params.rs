//! The parameters of the readnoise generator: declarations (names and defaults of upstream's
//! `make_readnoise`, §1.1) and their typed, checked values for one job.

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};

use crate::cds::GroupDiff;
use crate::compute::Method;

/// Upstream parameters whose job the host does now; accepted so that jwst_reffiles
/// configurations keep working, and ignored with a log line when given.
pub const IGNORED: &[(&str, ParamKind, &str)] = &[
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
        ParamSpec::new("author", ParamKind::String, s("mkrefs"), "AUTHOR keyword."),
        ParamSpec::new(
            "description",
            ParamKind::String,
            s("CDS Noise Image"),
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
            s("2015-10-01T00:00:00"),
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
            "READPATT keyword; null writes 'ANY' (CDS noise applies to every pattern).",
        ),
        ParamSpec::new(
            "memory_budget_mb",
            ParamKind::Int,
            ParamValue::Int(DEFAULT_BUDGET_MB),
            "Memory for the row band of CDS frames, MiB. Rows per block shrink as inputs grow, \
             so memory does not grow with the number of inputs. The result does not depend on it.",
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
    pub method: Method,
    pub diff: GroupDiff,
    pub sigma: f64,
    pub maxiters: usize,
    pub single_value: bool,
    pub author: String,
    pub description: String,
    pub pedigree: String,
    pub useafter: String,
    pub history: String,
    pub subarray: Option<String>,
    pub readpatt: Option<String>,
    pub budget_bytes: usize,
    /// Upstream parameters that were given and are ignored.
    pub ignored: Vec<String>,
}

/// `None` for a null, empty, "none" or "null" value. Upstream nulls any string *containing*
/// "none"; only whole values are taken as null here, so a name containing "none" survives.
pub fn null_like(v: Option<String>) -> Option<String> {
    v.filter(|s| {
        let t = s.trim();
        !(t.is_empty() || t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("null"))
    })
    .map(|s| s.trim().to_string())
}

/// Clipping sigma and iteration count, checked.
pub fn clip_params(
    job: &Job<'_>,
    sigma: &str,
    iters: &str,
) -> Result<(f64, usize), GeneratorError> {
    let s = job.float_param(sigma)?;
    if !(s.is_finite() && s > 0.0) {
        return Err(GeneratorError::invalid_parameter(format!(
            "{sigma} must be a positive number, got {s}"
        )));
    }
    let n = job.int_param(iters)?;
    if n < 1 {
        return Err(GeneratorError::invalid_parameter(format!(
            "{iters} must be at least 1, got {n}"
        )));
    }
    Ok((s, n as usize))
}

/// The memory budget in bytes, checked.
pub fn budget_bytes(job: &Job<'_>) -> Result<usize, GeneratorError> {
    let mb = job.int_param("memory_budget_mb")?;
    if mb < 1 {
        return Err(GeneratorError::invalid_parameter(format!(
            "memory_budget_mb must be at least 1, got {mb}"
        )));
    }
    Ok((mb as usize).saturating_mul(1024 * 1024))
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
        let description = job.string_param("description")?;
        if description.chars().count() > 65 {
            return Err(GeneratorError::invalid_parameter(format!(
                "description must be at most 65 characters (DESCRIP), got {}: '{description}'",
                description.chars().count()
            )));
        }
        let ignored = IGNORED
            .iter()
            .filter(|(name, ..)| job.param(name).is_some_and(|v| !v.is_null()))
            .map(|(name, ..)| name.to_string())
            .collect();
        Ok(Settings {
            method,
            diff,
            sigma,
            maxiters,
            single_value: job.bool_param("single_value")?,
            author: job.string_param("author")?,
            description,
            pedigree: job.string_param("pedigree")?,
            useafter: job.string_param("useafter")?,
            history: job.string_param("history")?,
            subarray: null_like(job.opt_string_param("subarray")?),
            readpatt: null_like(job.opt_string_param("readpatt")?),
            budget_bytes: budget_bytes(job)?,
            ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_like_values() {
        assert_eq!(null_like(None), None);
        assert_eq!(null_like(Some(" None ".into())), None);
        assert_eq!(null_like(Some("".into())), None);
        assert_eq!(null_like(Some("null".into())), None);
        assert_eq!(null_like(Some("SUBNONE".into())), Some("SUBNONE".into()));
        assert_eq!(null_like(Some(" RAPID".into())), Some("RAPID".into()));
    }

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
