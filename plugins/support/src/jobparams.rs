//! Job parameters every generator shares: the reference-file metadata (AUTHOR, DESCRIP,
//! PEDIGREE, USEAFTER, HISTORY, SUBARRAY, READPATT), upstream parameters that are accepted and
//! ignored, and checked readers for clipping and memory parameters.

use std::path::Path;

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamSpec, ParamValue};

use crate::reffile::{MAX_DESCRIPTION_LEN, RefMeta, history_entries};

/// An upstream parameter whose work the host now does: name, kind and help.
pub type IgnoredParam = (&'static str, ParamKind, &'static str);

/// The metadata parameters, with upstream's names; `description` and `useafter` defaults
/// differ per reference type.
pub fn metadata_specs(description: &str, useafter: &str) -> Vec<ParamSpec> {
    let s = ParamValue::str;
    vec![
        ParamSpec::new("author", ParamKind::String, s("mkrefs"), "AUTHOR keyword."),
        ParamSpec::new(
            "description",
            ParamKind::String,
            s(description),
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
            s(useafter),
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
            "READPATT keyword; null writes 'ANY' (the file then applies to every pattern).",
        ),
    ]
}

/// Declarations of ignored upstream parameters (default null, so giving one is noticed).
pub fn ignored_specs(ignored: &[IgnoredParam]) -> Vec<ParamSpec> {
    ignored
        .iter()
        .map(|&(name, kind, help)| ParamSpec::new(name, kind, ParamValue::Null, help))
        .collect()
}

/// Logs each ignored upstream parameter the job was given.
pub fn report_ignored(job: &Job<'_>, ignored: &[IgnoredParam]) {
    for (name, ..) in ignored {
        if job.param(name).is_some_and(|v| !v.is_null()) {
            job.info(&format!(
                "parameter '{name}' is accepted for jwst_reffiles compatibility and ignored"
            ));
        }
    }
}

/// The memory-budget parameter of streaming generators.
pub fn budget_spec(default_mb: i64, what: &str) -> ParamSpec {
    ParamSpec::new(
        "memory_budget_mb",
        ParamKind::Int,
        ParamValue::Int(default_mb),
        &format!("Memory for {what}, MiB. The result does not depend on it."),
    )
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

/// A finite positive float parameter.
pub fn positive(job: &Job<'_>, name: &str) -> Result<f64, GeneratorError> {
    let v = job.float_param(name)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be a positive number, got {v}"
        )))
    }
}

/// An integer parameter of at least 1.
pub fn at_least_one(job: &Job<'_>, name: &str) -> Result<usize, GeneratorError> {
    let v = job.int_param(name)?;
    if v >= 1 {
        Ok(v as usize)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be at least 1, got {v}"
        )))
    }
}

/// `memory_budget_mb` in bytes.
pub fn budget_bytes(job: &Job<'_>) -> Result<usize, GeneratorError> {
    Ok(at_least_one(job, "memory_budget_mb")?.saturating_mul(1024 * 1024))
}

/// The metadata parameters of one job, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct MetadataParams {
    pub author: String,
    pub description: String,
    pub pedigree: String,
    pub useafter: String,
    pub history: String,
    pub subarray: Option<String>,
    pub readpatt: Option<String>,
}

impl MetadataParams {
    pub fn from_job(job: &Job<'_>) -> Result<MetadataParams, GeneratorError> {
        let description = job.string_param("description")?;
        let len = description.chars().count();
        if len > MAX_DESCRIPTION_LEN {
            return Err(GeneratorError::invalid_parameter(format!(
                "description must be at most {MAX_DESCRIPTION_LEN} characters (DESCRIP), got \
                 {len}: '{description}'"
            )));
        }
        Ok(MetadataParams {
            author: job.string_param("author")?,
            description,
            pedigree: job.string_param("pedigree")?,
            useafter: job.string_param("useafter")?,
            history: job.string_param("history")?,
            subarray: null_like(job.opt_string_param("subarray")?),
            readpatt: null_like(job.opt_string_param("readpatt")?),
        })
    }

    /// Sets SUBARRAY (if given), DESCRIP, AUTHOR, PEDIGREE, USEAFTER, READPATT ('ANY' unless
    /// given) and the HISTORY naming `creator` and the inputs, then validates the result.
    pub fn apply(
        &self,
        meta: &mut RefMeta,
        creator: &str,
        inputs: &[&Path],
    ) -> Result<(), GeneratorError> {
        if let Some(sub) = &self.subarray {
            meta.subarray = sub.to_ascii_uppercase();
        }
        meta.description = self.description.clone();
        meta.author = self.author.clone();
        meta.pedigree = self.pedigree.clone();
        meta.useafter = self.useafter.clone();
        meta.normalize_useafter();
        meta.readpatt = Some(
            self.readpatt
                .as_deref()
                .map_or_else(|| "ANY".to_string(), str::to_ascii_uppercase),
        );
        meta.history = history_entries(creator, inputs, &self.history);
        meta.validate().map_err(GeneratorError::invalid_parameter)
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
    fn metadata_specs_have_unique_names_and_the_given_defaults() {
        let v = metadata_specs("Super Bias Image", "2000-01-01T00:00:00");
        let mut names: Vec<_> = v.iter().map(|p| p.name.to_string()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
        let d = v.iter().find(|p| p.name.as_str() == "description").unwrap();
        assert_eq!(d.default, ParamValue::str("Super Bias Image"));
    }
}
