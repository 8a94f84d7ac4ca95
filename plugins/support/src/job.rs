//! A generator's job in plain Rust: the one place where the ABI's job (`RString`s, `RVec`s,
//! typed parameter values, extension entries) is read. Generators see [`JobView`] only.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::{
    GeneratorError, ImageKind, Job, LogLevel, PRODUCT_PREFIX, ParamScalar, ParamValue,
};

use crate::header::{Header, HeaderValue};
use crate::params::{Mismatch, Param, ParamType, Scalar, Value};
use crate::ramps::{FitsRamp, check_compatible};

/// Whether an input exposure is a dark or a flat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InputKind {
    Dark,
    Flat,
}

/// One input image of the job's group, in group order (D1, D2, ..., F1, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Input {
    /// The group label: `D1`, `D2`, ..., `F1`, ...
    pub label: String,
    pub kind: InputKind,
    /// The file to read: the input at the calibration state the generator asked for.
    pub path: PathBuf,
    /// The raw exposure the user gave.
    pub raw_path: PathBuf,
    pub mjd: f64,
    pub detector: String,
    /// The primary-header keywords the configuration asked for.
    pub header: Header,
}

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Where log lines and progress go: the host, behind the ABI.
trait Host: Sync {
    fn log(&self, level: Level, message: &str);
    fn progress(&self, stage: &str, done: u64, total: u64);
}

impl Host for Job<'_> {
    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Error => LogLevel::Error,
            Level::Warn => LogLevel::Warn,
            Level::Info => LogLevel::Info,
            Level::Debug => LogLevel::Debug,
            Level::Trace => LogLevel::Trace,
        };
        Job::log(self, level, message);
    }

    fn progress(&self, stage: &str, done: u64, total: u64) {
        Job::progress(self, stage, done, total);
    }
}

/// Everything a generator needs for one reference file.
pub struct JobView<'j> {
    pub reflabel: String,
    pub reftype: String,
    /// The run-wide command number of this job (the `cmd<N>` of the output name).
    pub cmd_id: u32,
    /// Where to write the reference file (under a temporary name, renamed when complete).
    pub output: PathBuf,
    /// The group's images, in label order.
    pub inputs: Vec<Input>,
    /// A private directory for temporary files, removed by the host after the job.
    pub scratch_dir: PathBuf,
    /// How many threads the generator may use.
    pub threads: usize,
    /// Every declared parameter, merged: default < configuration < command line.
    params: Vec<(String, Value)>,
    /// `<label>.<product>` and file of the intermediate products the host passed.
    products: Vec<(String, Option<PathBuf>)>,
    host: &'j dyn Host,
}

impl<'j> JobView<'j> {
    /// Reads the ABI's job.
    pub fn new(job: &'j Job<'_>) -> JobView<'j> {
        let inputs = job
            .inputs
            .iter()
            .map(|i| Input {
                label: i.label.to_string(),
                kind: match i.kind {
                    ImageKind::Dark => InputKind::Dark,
                    ImageKind::Flat => InputKind::Flat,
                },
                path: PathBuf::from(i.path.as_str()),
                raw_path: PathBuf::from(i.raw_path.as_str()),
                mjd: i.mjd,
                detector: i.detector.to_string(),
                header: header(&i.header),
            })
            .collect();
        let products = job
            .extensions
            .iter()
            .filter_map(|p| {
                let key = p.name.as_str().strip_prefix(PRODUCT_PREFIX)?;
                Some((key.to_string(), p.value.as_str().map(PathBuf::from)))
            })
            .collect();
        JobView {
            reflabel: job.reflabel.to_string(),
            reftype: job.reftype.to_string(),
            cmd_id: job.cmd_id,
            output: PathBuf::from(job.output.as_str()),
            inputs,
            scratch_dir: PathBuf::from(job.scratch_dir.as_str()),
            threads: job.threads as usize,
            params: job
                .params
                .iter()
                .map(|p| (p.name.to_string(), value(&p.value)))
                .collect(),
            products,
            host: job,
        }
    }

    /// The value of a declared parameter, as its declared type.
    pub fn get<T: ParamType>(&self, param: &Param<T>) -> Result<T, GeneratorError> {
        let name = param.name;
        let value = self.value(name).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "parameter '{name}' was not passed to generator '{}'",
                self.reflabel
            ))
        })?;
        let read = T::read(name, value).map_err(|m| match m {
            Mismatch::Kind => GeneratorError::invalid_parameter(format!(
                "parameter '{name}' of '{}' must be a {}, got '{value}'",
                self.reflabel,
                T::EXPECTED
            )),
            Mismatch::Other(message) => GeneratorError::invalid_parameter(message),
        })?;
        // The host checked this already; a job file written by hand may not have been.
        match param.constraints().violation(name, value) {
            Some(message) => Err(GeneratorError::invalid_parameter(message)),
            None => Ok(read),
        }
    }

    /// A count parameter (declared `.at_least(0.0)` or more), as `usize`.
    pub fn count(&self, param: &Param<i64>) -> Result<usize, GeneratorError> {
        let v = self.get(param)?;
        usize::try_from(v).map_err(|_| {
            GeneratorError::invalid_parameter(format!("{} must be at least 0, got {v}", param.name))
        })
    }

    /// The merged value of a parameter by name, for parameters without a typed declaration
    /// (the ignored upstream ones).
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The inputs of one kind, in label order.
    pub fn inputs_of(&self, kind: InputKind) -> impl Iterator<Item = &Input> {
        self.inputs.iter().filter(move |i| i.kind == kind)
    }

    /// The file of an intermediate product of input `label` (`D1`, `F2`, ...): `jump`,
    /// `fitopt`, `rateints` or a step name, as the configuration's `ssb_save_steps` asked for.
    pub fn product(&self, label: &str, product: &str) -> Option<&Path> {
        let key = format!("{label}.{product}");
        self.products
            .iter()
            .find(|(k, _)| *k == key)
            .and_then(|(_, file)| file.as_deref())
    }

    pub fn log(&self, level: Level, message: &str) {
        self.host.log(level, message);
    }

    pub fn info(&self, message: &str) {
        self.log(Level::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(Level::Warn, message);
    }

    pub fn debug(&self, message: &str) {
        self.log(Level::Debug, message);
    }

    /// Progress of the current stage: `done` of `total` units (rows, files...).
    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        self.host.progress(stage, done, total);
    }
}

/// Opens every input of the job as a ramp, in group order, and checks they can be stacked.
pub fn open_ramps(job: &JobView<'_>) -> Result<Vec<FitsRamp>, GeneratorError> {
    if job.inputs.is_empty() {
        return Err(GeneratorError::invalid_input(format!(
            "job {} of '{}' has no input files",
            job.cmd_id, job.reflabel
        )));
    }
    let ramps = job
        .inputs
        .iter()
        .map(|i| FitsRamp::open(&i.path))
        .collect::<Result<Vec<_>, _>>()?;
    check_compatible(&ramps)?;
    Ok(ramps)
}

fn value(v: &ParamValue) -> Value {
    match v {
        ParamValue::Null => Value::Null,
        ParamValue::Bool(b) => Value::Bool(*b),
        ParamValue::Int(i) => Value::Int(*i),
        ParamValue::Float(x) => Value::Float(*x),
        ParamValue::Str(s) => Value::Str(s.to_string()),
        ParamValue::List(items) => Value::List(
            items
                .iter()
                .map(|s| match s {
                    ParamScalar::Bool(b) => Scalar::Bool(*b),
                    ParamScalar::Int(i) => Scalar::Int(*i),
                    ParamScalar::Float(x) => Scalar::Float(*x),
                    ParamScalar::Str(s) => Scalar::Str(s.to_string()),
                })
                .collect(),
        ),
    }
}

/// The collected keywords as a header; null and list values cannot be FITS keywords and are
/// left out.
fn header(cards: &[mkrefs_plugin_api::Param]) -> Header {
    let mut h = Header::new();
    for card in cards {
        let v = match &card.value {
            ParamValue::Bool(b) => HeaderValue::Bool(*b),
            ParamValue::Int(i) => HeaderValue::Int(*i),
            ParamValue::Float(x) => HeaderValue::Float(*x),
            ParamValue::Str(s) => HeaderValue::Str(s.to_string()),
            ParamValue::Null | ParamValue::List(_) => continue,
        };
        h.set(card.name.as_str(), v);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_the_host_prints_them() {
        let values = [
            ParamValue::Null,
            ParamValue::Bool(true),
            ParamValue::Int(-3),
            ParamValue::Float(3.0),
            ParamValue::Float(1e-7),
            ParamValue::str("a b"),
            ParamValue::List(
                vec![
                    ParamScalar::Str("x".into()),
                    ParamScalar::Float(0.5),
                    ParamScalar::Int(2),
                    ParamScalar::Bool(false),
                ]
                .into(),
            ),
        ];
        for v in &values {
            assert_eq!(value(v).to_string(), v.to_string());
        }
    }
}
