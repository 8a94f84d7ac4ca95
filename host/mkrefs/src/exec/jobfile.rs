//! The job file: one JSON document per job in the run directory. It holds everything that
//! determines the job's output (and nothing that does not, such as the thread count): the
//! generator and its version, the parameters, and the fingerprint of every file the job reads,
//! taken when it starts. So an unchanged job file means the existing output is still the right
//! one, and a changed one says what changed ([`JobSpec::changes_from`]).

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::value::ParamValue;
use crate::inputs::fingerprint::Fingerprint;
use crate::prep::record::ProductRecord;

/// Version of the job-file layout.
pub const JOB_FORMAT: u32 = 2;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub format: u32,
    pub cmd_id: u32,
    pub reflabel: String,
    pub reftype: String,
    pub detector: String,
    /// The drop-in the generator comes from (a library, or a program when `program` is set);
    /// `None` for a bundled generator.
    pub library: Option<PathBuf>,
    /// Set when `library` is a generator program (`registry::executable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<ProgramRun>,
    pub output: PathBuf,
    pub log: PathBuf,
    pub report: PathBuf,
    pub scratch_dir: PathBuf,
    pub inputs: Vec<JobInput>,
    /// Intermediate products of the inputs (`ssb_save_steps`), passed to the generator as
    /// extensions `product.<label>.<product>`.
    #[serde(default)]
    pub products: Vec<JobProduct>,
    pub params: Vec<JobParam>,
    /// The generator (`<reflabel> <version>`) and what the job read.
    pub made_from: MadeFrom,
}

/// How a generator program is started.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProgramRun {
    /// The Python that runs a `.py` program; `None`: the program runs itself.
    pub interpreter: Option<PathBuf>,
}

/// What a job's output is made from, besides its parameters.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
pub struct MadeFrom {
    /// The program that makes it: the generator and its version.
    pub program: String,
    /// Every file the job reads (inputs, products, a drop-in library), with its fingerprint
    /// when the job started; filled in by the executor.
    pub files: Vec<(PathBuf, Fingerprint)>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobProduct {
    /// The input's group label (`D1`, ...).
    pub label: String,
    /// `jump`, `fitopt`, `rateints` or a step name.
    pub product: String,
    pub path: PathBuf,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobInput {
    pub label: String,
    /// `dark` or `flat`.
    pub kind: String,
    /// The file the generator reads (the input at its calibration state).
    pub path: PathBuf,
    /// The raw exposure the user gave.
    pub raw_path: PathBuf,
    pub mjd: f64,
    pub detector: String,
    pub header: Vec<JobParam>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobParam {
    pub name: String,
    pub value: Value,
}

/// A calibration job: bring one exposure to a state, saving the products generators read.
/// Written like a generator's job file and run by `mkrefs run-calibration JOBFILE`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct CalibrationSpec {
    pub format: u32,
    /// `cal<N>` in tables and logs.
    pub cal_id: u32,
    /// `native` or `jwst`.
    pub backend: String,
    pub instrument: String,
    pub detector: String,
    /// The exposure the user gave.
    pub raw: PathBuf,
    /// The file the steps start from (the raw exposure).
    pub input: PathBuf,
    /// The steps to run, in pipeline order.
    pub run: Vec<String>,
    /// The state of the final product: the input's steps and `run`, in pipeline order.
    pub state: Vec<String>,
    /// The product after the last step.
    pub final_product: PathBuf,
    /// `Some`: the final product is run-internal and holds only these extensions (see
    /// [`SavedProduct::hdus`]).
    #[serde(default)]
    pub final_hdus: Option<Vec<String>>,
    /// Intermediate and side products to keep on the way.
    pub saves: Vec<SavedProduct>,
    pub references: Vec<StepReference>,
    /// The jwst backend's `strun` program.
    pub strun: Option<String>,
    /// The CRDS the jwst pipeline may ask for reference files nobody gave, when one is
    /// configured; without it strun runs offline (`jwst::offline_environment`).
    #[serde(default)]
    pub crds: Option<StrunCrds>,
    pub log: PathBuf,
    pub report: PathBuf,
    pub scratch_dir: PathBuf,
    /// What the products are made from (the program and the fingerprints of the input and the
    /// reference files), filled in by the executor when the job starts and kept beside each
    /// product (see [`crate::prep::record`]).
    #[serde(default)]
    pub made_from: Option<Box<ProductRecord>>,
}

/// A configured CRDS for strun (see `crds::configuration`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StrunCrds {
    /// The cache, passed as `CRDS_PATH` (`calibration.crds_path` or `$CRDS_PATH`); none when
    /// only `CRDS_SERVER_URL` is set (crds then uses its default cache).
    pub cache: Option<PathBuf>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct SavedProduct {
    /// A step name, `rateints` or `fitopt`.
    pub product: String,
    pub path: PathBuf,
    /// `Some`: a run-internal product holding only these extensions, not synced to disk (its
    /// record carries its content hash); `None`: the whole product.
    #[serde(default)]
    pub hdus: Option<Vec<String>>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StepReference {
    pub step: String,
    /// Upper case, as the REFTYPE keyword.
    pub reftype: String,
    pub path: PathBuf,
}

/// A job file of either kind.
pub trait JobFile: Serialize + DeserializeOwned {
    /// The layout version the file says it has.
    fn format(&self) -> u32;

    fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("job specs always serialize");
        text.push('\n');
        text
    }

    /// Reads a job file written by this version of mkrefs.
    fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read job file {}: {e}", path.display()))?;
        Self::read_text(&text, path)
    }

    /// A job file's text (read from `path`).
    fn read_text(text: &str, path: &Path) -> Result<Self, String> {
        let spec: Self = serde_json::from_str(text)
            .map_err(|e| format!("job file {} is not valid: {e}", path.display()))?;
        if spec.format() != JOB_FORMAT {
            return Err(format!(
                "job file {} has format {}, this mkrefs reads format {JOB_FORMAT}; rerun \
                 `mkrefs run` to rewrite it",
                path.display(),
                spec.format()
            ));
        }
        Ok(spec)
    }
}

impl JobFile for JobSpec {
    fn format(&self) -> u32 {
        self.format
    }
}

impl JobFile for CalibrationSpec {
    fn format(&self) -> u32 {
        self.format
    }
}

impl JobSpec {
    /// Why an earlier job file no longer describes this job, in one line; `None` when the two
    /// agree on everything that decides the output.
    pub fn changes_from(&self, old: &JobSpec) -> Option<String> {
        if old.made_from.program != self.made_from.program {
            return Some(format!(
                "the generator changed ({} -> {})",
                old.made_from.program, self.made_from.program
            ));
        }
        for p in &self.params {
            match old.params.iter().find(|o| o.name == p.name) {
                Some(o) if o.value == p.value => {}
                Some(o) => {
                    return Some(format!(
                        "parameter {} changed ({} -> {})",
                        p.name, o.value, p.value
                    ));
                }
                None => return Some(format!("parameter {} is new", p.name)),
            }
        }
        let old_files: Vec<&PathBuf> = old.made_from.files.iter().map(|f| &f.0).collect();
        for (path, fp) in &self.made_from.files {
            match old.made_from.files.iter().find(|f| &f.0 == path) {
                Some((_, o)) if o.xxh3 == fp.xxh3 => {}
                Some(_) => return Some(format!("{} changed since", path.display())),
                None => return Some(format!("it now reads {}", path.display())),
            }
        }
        if let Some(gone) = old_files
            .iter()
            .find(|p| !self.made_from.files.iter().any(|f| &&f.0 == *p))
        {
            return Some(format!("it no longer reads {}", gone.display()));
        }
        (old != self).then(|| "its job file changed".to_string())
    }
}

impl JobParam {
    pub fn new(name: &str, value: &ParamValue) -> JobParam {
        JobParam {
            name: name.to_string(),
            value: value.to_json(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::ParamScalar;

    #[test]
    fn parameter_values_keep_their_json_form() {
        let cases = [
            (ParamValue::Null, "null"),
            (ParamValue::Bool(true), "true"),
            (ParamValue::Int(-3), "-3"),
            (ParamValue::Float(3.0), "3.0"),
            (ParamValue::Float(2.5), "2.5"),
            (ParamValue::str("stack"), "\"stack\""),
            (
                ParamValue::List(vec![
                    ParamScalar::Str("HOT".into()),
                    ParamScalar::Int(2),
                    ParamScalar::Float(0.5),
                ]),
                "[\"HOT\",2,0.5]",
            ),
        ];
        for (v, json) in cases {
            let text = serde_json::to_string(&JobParam::new("x", &v).value).unwrap();
            assert_eq!(text, json, "{v:?}");
        }
    }
}
