//! The job handed to `call_algorithm`, and the host callbacks it carries.

use abi_stable::{
    StableAbi, sabi_trait,
    sabi_types::RRef,
    std_types::{RStr, RString, RVec},
};

use crate::types::{
    GeneratorError, ImageKind, InputImage, LogLevel, Param, ParamScalar, ParamValue,
};

/// Services the host offers a running generator. Both methods may be called from any thread.
#[sabi_trait]
pub trait HostCallbacks: Sync {
    /// A log line; it reaches the host's log and the job's log file.
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// Progress of the current stage: `done` of `total` units (rows, files...).
    #[sabi(last_prefix_field)]
    fn progress(&self, stage: RStr<'_>, done: u64, total: u64);
}

/// Extensions named `product.<label>.<product>` carry intermediate products (see
/// [`Job::product`]).
pub const PRODUCT_PREFIX: &str = "product.";

/// A borrowed host-callbacks trait object.
pub type HostRef<'a> = HostCallbacks_TO<'a, RRef<'a, ()>>;

/// Everything a generator needs for one reference file, and nothing it must guess.
#[repr(C)]
#[derive(StableAbi)]
pub struct Job<'a> {
    pub reflabel: RString,
    pub reftype: RString,
    /// The run-wide command number of this job (the `cmd<N>` of the output name).
    pub cmd_id: u32,
    /// Where to write the reference file. Generators write under a temporary name in the same
    /// directory and rename when complete.
    pub output: RString,
    /// The group's images, in label order.
    pub inputs: RVec<InputImage>,
    /// Every declared parameter, merged: generator default < config section < command line.
    pub params: RVec<Param>,
    /// A private directory for temporary files, removed by the host after the job.
    pub scratch_dir: RString,
    /// How many threads the generator may use.
    pub threads: u32,
    /// Named values added by later 1.x hosts; generators ignore keys they do not know.
    pub extensions: RVec<Param>,
    pub host: HostRef<'a>,
}

impl Job<'_> {
    /// The merged value of a parameter (declared parameters are always present).
    pub fn param(&self, name: &str) -> Option<&ParamValue> {
        self.params
            .iter()
            .find(|p| p.name.as_str() == name)
            .map(|p| &p.value)
    }

    fn typed<T>(
        &self,
        name: &str,
        kind: &str,
        get: impl Fn(&ParamValue) -> Option<T>,
    ) -> Result<T, GeneratorError> {
        let value = self.param(name).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "parameter '{name}' was not passed to generator '{}'",
                self.reflabel
            ))
        })?;
        get(value).ok_or_else(|| {
            GeneratorError::invalid_parameter(format!(
                "parameter '{name}' of '{}' must be a {kind}, got '{value}'",
                self.reflabel
            ))
        })
    }

    pub fn bool_param(&self, name: &str) -> Result<bool, GeneratorError> {
        self.typed(name, "bool", ParamValue::as_bool)
    }

    pub fn int_param(&self, name: &str) -> Result<i64, GeneratorError> {
        self.typed(name, "integer", ParamValue::as_i64)
    }

    pub fn float_param(&self, name: &str) -> Result<f64, GeneratorError> {
        self.typed(name, "number", ParamValue::as_f64)
    }

    pub fn string_param(&self, name: &str) -> Result<String, GeneratorError> {
        self.typed(name, "string", |v| v.as_str().map(str::to_owned))
    }

    /// A string parameter that may be null.
    pub fn opt_string_param(&self, name: &str) -> Result<Option<String>, GeneratorError> {
        self.typed(name, "string or null", |v| match v {
            ParamValue::Null => Some(None),
            ParamValue::Str(s) => Some(Some(s.to_string())),
            _ => None,
        })
    }

    /// A list parameter; null gives an empty list.
    pub fn list_param(&self, name: &str) -> Result<Vec<ParamScalar>, GeneratorError> {
        self.typed(name, "list", |v| match v {
            ParamValue::Null => Some(Vec::new()),
            ParamValue::List(l) => Some(l.to_vec()),
            _ => None,
        })
    }

    /// The file of an intermediate product of input `label` (`D1`, `F2`, ...): `jump`,
    /// `fitopt`, `rateints` or a step name, as the configuration's `ssb_save_steps` asked for.
    /// The host passes them as extensions named `product.<label>.<product>`.
    pub fn product(&self, label: &str, product: &str) -> Option<&str> {
        let key = format!("{PRODUCT_PREFIX}{label}.{product}");
        self.extensions
            .iter()
            .find(|p| p.name.as_str() == key)
            .and_then(|p| p.value.as_str())
    }

    /// The inputs of one kind, in label order.
    pub fn inputs_of(&self, kind: ImageKind) -> impl Iterator<Item = &InputImage> {
        self.inputs.iter().filter(move |i| i.kind == kind)
    }

    pub fn log(&self, level: LogLevel, message: &str) {
        self.host.log(level, message.into());
    }

    pub fn info(&self, message: &str) {
        self.log(LogLevel::Info, message);
    }

    pub fn warn(&self, message: &str) {
        self.log(LogLevel::Warn, message);
    }

    pub fn debug(&self, message: &str) {
        self.log(LogLevel::Debug, message);
    }

    pub fn progress(&self, stage: &str, done: u64, total: u64) {
        self.host.progress(stage.into(), done, total);
    }
}
