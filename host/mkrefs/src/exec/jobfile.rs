//! The job file: one JSON document per job in the run directory. It holds everything that
//! determines the job's output (and nothing that does not, such as the thread count), so an
//! unchanged job file means the existing output is still the right one.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::{ImageKind, InputImage, PRODUCT_PREFIX, Param, ParamScalar, ParamValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Version of the job-file layout.
pub const JOB_FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobSpec {
    pub format: u32,
    pub cmd_id: u32,
    pub reflabel: String,
    pub reftype: String,
    pub detector: String,
    /// The drop-in library the generator comes from; `None` for a bundled generator.
    pub library: Option<PathBuf>,
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
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct StepReference {
    pub step: String,
    /// Upper case, as the REFTYPE keyword.
    pub reftype: String,
    pub path: PathBuf,
}

impl CalibrationSpec {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("job specs always serialize");
        text.push('\n');
        text
    }

    pub fn read(path: &Path) -> Result<CalibrationSpec, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read job file {}: {e}", path.display()))?;
        let spec: CalibrationSpec = serde_json::from_str(&text)
            .map_err(|e| format!("calibration job file {} is not valid: {e}", path.display()))?;
        if spec.format != JOB_FORMAT {
            return Err(format!(
                "job file {} has format {}, this mkrefs reads format {JOB_FORMAT}; rerun \
                 `mkrefs run` to rewrite it",
                path.display(),
                spec.format
            ));
        }
        Ok(spec)
    }
}

/// What a job child writes when it ends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobReportFile {
    pub cmd_id: u32,
    pub reflabel: String,
    pub ok: bool,
    pub error: Option<String>,
    pub seconds: f64,
    pub output: PathBuf,
    pub extra_outputs: Vec<PathBuf>,
    pub summary: String,
}

impl JobSpec {
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("job specs always serialize");
        text.push('\n');
        text
    }

    pub fn read(path: &Path) -> Result<JobSpec, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read job file {}: {e}", path.display()))?;
        let spec: JobSpec = serde_json::from_str(&text)
            .map_err(|e| format!("job file {} is not valid: {e}", path.display()))?;
        if spec.format != JOB_FORMAT {
            return Err(format!(
                "job file {} has format {}, this mkrefs reads format {JOB_FORMAT}; rerun \
                 `mkrefs run` to rewrite it",
                path.display(),
                spec.format
            ));
        }
        Ok(spec)
    }

    /// The inputs as the plugin ABI carries them.
    pub fn ffi_inputs(&self) -> Result<Vec<InputImage>, String> {
        self.inputs
            .iter()
            .map(|i| {
                let kind = match i.kind.as_str() {
                    "dark" => ImageKind::Dark,
                    "flat" => ImageKind::Flat,
                    other => return Err(format!("input {} has unknown kind '{other}'", i.label)),
                };
                Ok(InputImage {
                    label: i.label.as_str().into(),
                    kind,
                    path: i.path.to_string_lossy().as_ref().into(),
                    raw_path: i.raw_path.to_string_lossy().as_ref().into(),
                    mjd: i.mjd,
                    detector: i.detector.as_str().into(),
                    header: i.header.iter().map(JobParam::to_param).collect(),
                })
            })
            .collect()
    }

    /// The products as job extensions (see `Job::product`).
    pub fn ffi_extensions(&self) -> Vec<Param> {
        self.products
            .iter()
            .map(|p| {
                Param::new(
                    &format!("{PRODUCT_PREFIX}{}.{}", p.label, p.product),
                    ParamValue::str(p.path.to_string_lossy().into_owned()),
                )
            })
            .collect()
    }

    pub fn ffi_params(&self) -> Vec<Param> {
        self.params.iter().map(JobParam::to_param).collect()
    }
}

impl JobParam {
    pub fn new(name: &str, value: &ParamValue) -> JobParam {
        JobParam {
            name: name.to_string(),
            value: param_to_json(value),
        }
    }

    pub fn to_param(&self) -> Param {
        Param::new(&self.name, json_to_param(&self.value))
    }
}

fn scalar_to_json(s: &ParamScalar) -> Value {
    match s {
        ParamScalar::Bool(b) => Value::Bool(*b),
        ParamScalar::Int(i) => Value::from(*i),
        ParamScalar::Float(x) => float_json(*x),
        ParamScalar::Str(s) => Value::String(s.to_string()),
    }
}

/// Non-finite floats have no JSON form; they travel as strings and come back as floats.
fn float_json(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(format!("{x}")))
}

pub fn param_to_json(v: &ParamValue) -> Value {
    match v {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(b) => Value::Bool(*b),
        ParamValue::Int(i) => Value::from(*i),
        ParamValue::Float(x) => float_json(*x),
        ParamValue::Str(s) => Value::String(s.to_string()),
        ParamValue::List(items) => Value::Array(items.iter().map(scalar_to_json).collect()),
    }
}

fn json_to_scalar(v: &Value) -> ParamScalar {
    match v {
        Value::Bool(b) => ParamScalar::Bool(*b),
        Value::Number(n) if n.is_i64() => ParamScalar::Int(n.as_i64().unwrap_or_default()),
        Value::Number(n) => ParamScalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => ParamScalar::Str(s.as_str().into()),
        other => ParamScalar::Str(other.to_string().into()),
    }
}

pub fn json_to_param(v: &Value) -> ParamValue {
    match v {
        Value::Null => ParamValue::Null,
        Value::Bool(b) => ParamValue::Bool(*b),
        Value::Number(n) if n.is_i64() => ParamValue::Int(n.as_i64().unwrap_or_default()),
        Value::Number(n) => ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => ParamValue::str(s.clone()),
        Value::Array(items) => ParamValue::List(items.iter().map(json_to_scalar).collect()),
        Value::Object(_) => ParamValue::str(v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_values_survive_the_json_round_trip() {
        let values = [
            ParamValue::Null,
            ParamValue::Bool(true),
            ParamValue::Int(-3),
            ParamValue::Float(3.0),
            ParamValue::Float(2.5),
            ParamValue::str("stack"),
            ParamValue::List(
                vec![
                    ParamScalar::Str("HOT".into()),
                    ParamScalar::Int(2),
                    ParamScalar::Float(0.5),
                ]
                .into(),
            ),
        ];
        for v in values {
            let json = serde_json::to_string(&param_to_json(&v)).unwrap();
            let back = json_to_param(&serde_json::from_str(&json).unwrap());
            assert_eq!(back, v, "through {json}");
        }
    }
}
