//! Job parameters every generator shares: the reference-file metadata (AUTHOR, DESCRIP,
//! PEDIGREE, USEAFTER, HISTORY, SUBARRAY, READPATT), the memory budget, upstream parameters
//! that are accepted and ignored, and a reader for finite numbers.

use std::path::Path;

use mkrefs_plugin_api::GeneratorError;

use crate::job::JobView;
use crate::params::{Constraints, Declare, Kind, Param, Spec, Value, null_like};
use crate::reffile::{MAX_DESCRIPTION_LEN, RefMeta, history_entries};

/// An upstream parameter whose work the host now does: declared (default null, so that giving
/// one is noticed) and reported, never read.
#[derive(Clone, Copy, Debug)]
pub struct Ignored {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

impl Ignored {
    pub const fn new(name: &'static str, kind: Kind, help: &'static str) -> Ignored {
        Ignored { name, kind, help }
    }
}

impl Declare for &[Ignored] {
    fn declare(&self, out: &mut Vec<Spec>) {
        out.extend(self.iter().map(|p| Spec {
            name: p.name,
            kind: p.kind,
            default: Value::Null,
            help: p.help.to_string(),
            constraints: Constraints::default(),
        }));
    }
}

/// Logs each ignored upstream parameter the job was given.
pub fn report_ignored(job: &JobView<'_>, ignored: &[Ignored]) {
    for p in ignored {
        if job.value(p.name).is_some_and(|v| !v.is_null()) {
            job.info(&format!(
                "parameter '{}' is accepted for jwst_reffiles compatibility and ignored",
                p.name
            ));
        }
    }
}

/// The memory-budget parameter of streaming generators (`memory_budget_mb`).
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    param: Param<i64>,
    /// What the budget holds, for the help text.
    what: &'static str,
}

impl Budget {
    pub const fn new(default_mb: i64, what: &'static str) -> Budget {
        Budget {
            param: Param::new("memory_budget_mb", default_mb, "").at_least(1.0),
            what,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self, job: &JobView<'_>) -> Result<usize, GeneratorError> {
        Ok(job.count(&self.param)?.saturating_mul(1024 * 1024))
    }
}

impl Declare for Budget {
    fn declare(&self, out: &mut Vec<Spec>) {
        out.push(Spec {
            help: format!(
                "Memory for {}, MiB. The result does not depend on it.",
                self.what
            ),
            ..self.param.spec()
        });
    }
}

/// A finite float parameter.
pub fn finite(job: &JobView<'_>, param: &Param<f64>) -> Result<f64, GeneratorError> {
    let v = job.get(param)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{} must be a finite number, got {v}",
            param.name
        )))
    }
}

/// The metadata parameters, with upstream's names; the `description` and `useafter` defaults
/// differ per reference type.
#[derive(Clone, Copy, Debug)]
pub struct Metadata {
    pub author: Param<String>,
    pub description: Param<String>,
    pub pedigree: Param<String>,
    pub useafter: Param<String>,
    /// Nullable: upstream configurations write `history: None` for "no entry".
    pub history: Param<Option<String>>,
    pub subarray: Param<Option<String>>,
    pub readpatt: Param<Option<String>>,
}

impl Metadata {
    pub const fn new(description: &'static str, useafter: &'static str) -> Metadata {
        Metadata {
            author: Param::new("author", "mkrefs", "AUTHOR keyword."),
            description: Param::new(
                "description",
                description,
                "DESCRIP keyword, at most 65 characters.",
            ),
            pedigree: Param::new(
                "pedigree",
                "GROUND",
                "PEDIGREE: SIMULATION, GROUND, DUMMY or 'INFLIGHT YYYY-MM-DD YYYY-MM-DD'.",
            ),
            useafter: Param::new(
                "useafter",
                useafter,
                "USEAFTER, YYYY-MM-DDThh:mm:ss (a date alone gets T00:00:00).",
            ),
            history: Param::new(
                "history",
                None,
                "Text added as the last HISTORY entry; null or empty adds none.",
            ),
            subarray: Param::new(
                "subarray",
                None,
                "SUBARRAY keyword; null takes it from the first input.",
            ),
            readpatt: Param::new(
                "readpatt",
                None,
                "READPATT keyword; null writes 'ANY' (the file then applies to every pattern).",
            ),
        }
    }

    /// The same with another help text for `readpatt` (for a generator that does not write 'ANY').
    pub const fn with_readpatt_help(mut self, help: &'static str) -> Metadata {
        self.readpatt.help = help;
        self
    }

    /// The metadata parameters of one job, checked.
    pub fn read(&self, job: &JobView<'_>) -> Result<MetadataParams, GeneratorError> {
        let description = job.get(&self.description)?;
        let len = description.chars().count();
        if len > MAX_DESCRIPTION_LEN {
            return Err(GeneratorError::invalid_parameter(format!(
                "description must be at most {MAX_DESCRIPTION_LEN} characters (DESCRIP), got \
                 {len}: '{description}'"
            )));
        }
        Ok(MetadataParams {
            author: job.get(&self.author)?,
            description,
            pedigree: job.get(&self.pedigree)?,
            useafter: job.get(&self.useafter)?,
            history: null_like(job.get(&self.history)?).unwrap_or_default(),
            subarray: null_like(job.get(&self.subarray)?),
            readpatt: null_like(job.get(&self.readpatt)?),
        })
    }
}

impl Declare for Metadata {
    fn declare(&self, out: &mut Vec<Spec>) {
        let all: [&dyn Declare; 7] = [
            &self.author,
            &self.description,
            &self.pedigree,
            &self.useafter,
            &self.history,
            &self.subarray,
            &self.readpatt,
        ];
        for p in all {
            p.declare(out);
        }
    }
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
    use crate::params::specs;

    #[test]
    fn metadata_specs_have_unique_names_and_the_given_defaults() {
        let v = specs(&[&Metadata::new("Super Bias Image", "2000-01-01T00:00:00")]);
        let mut names: Vec<_> = v.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
        let d = v.iter().find(|p| p.name == "description").unwrap();
        assert_eq!(d.default, Value::Str("Super Bias Image".into()));
    }
}
