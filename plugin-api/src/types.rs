//! Plain data types that cross the plugin boundary.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};
use std::fmt;

/// The kind of a generator parameter, checked by the host before a job runs.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamKind {
    Bool,
    Int,
    Float,
    String,
    /// A list of scalars (strings, numbers or booleans).
    List,
}

impl ParamKind {
    pub fn name(self) -> &'static str {
        match self {
            ParamKind::Bool => "bool",
            ParamKind::Int => "int",
            ParamKind::Float => "float",
            ParamKind::String => "string",
            ParamKind::List => "list",
        }
    }
}

impl fmt::Display for ParamKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One element of a list parameter.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum ParamScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(RString),
}

impl fmt::Display for ParamScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamScalar::Bool(b) => write!(f, "{b}"),
            ParamScalar::Int(i) => write!(f, "{i}"),
            ParamScalar::Float(x) => write!(f, "{x:?}"),
            ParamScalar::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A typed parameter or header value. `Null` is YAML's `null`/`~`/`None`.
#[repr(u8)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(RString),
    List(RVec<ParamScalar>),
}

impl ParamValue {
    pub fn str(s: impl Into<String>) -> Self {
        ParamValue::Str(RString::from(s.into()))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, ParamValue::Null)
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            ParamValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ParamValue::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// Integers are accepted where a float is wanted.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            ParamValue::Float(x) => Some(*x),
            ParamValue::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            ParamValue::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[ParamScalar]> {
        match self {
            ParamValue::List(l) => Some(l.as_slice()),
            _ => None,
        }
    }

    /// The kind this value has, `None` for null.
    pub fn kind(&self) -> Option<ParamKind> {
        match self {
            ParamValue::Null => None,
            ParamValue::Bool(_) => Some(ParamKind::Bool),
            ParamValue::Int(_) => Some(ParamKind::Int),
            ParamValue::Float(_) => Some(ParamKind::Float),
            ParamValue::Str(_) => Some(ParamKind::String),
            ParamValue::List(_) => Some(ParamKind::List),
        }
    }
}

impl fmt::Display for ParamValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamValue::Null => f.write_str("null"),
            ParamValue::Bool(b) => write!(f, "{b}"),
            ParamValue::Int(i) => write!(f, "{i}"),
            ParamValue::Float(x) => write!(f, "{x:?}"),
            ParamValue::Str(s) => write!(f, "{s}"),
            ParamValue::List(items) => {
                f.write_str("[")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// The declaration of one generator parameter (`extra_optional_arguments`).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: RString,
    pub kind: ParamKind,
    /// The default value; `Null` means "no value unless the user gives one".
    pub default: ParamValue,
    pub help: RString,
}

impl ParamSpec {
    pub fn new(name: &str, kind: ParamKind, default: ParamValue, help: &str) -> Self {
        ParamSpec {
            name: name.into(),
            kind,
            default,
            help: help.into(),
        }
    }
}

/// One end of a numeric parameter's range (plugin-api 1.1).
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq)]
pub struct ParamBound {
    pub value: f64,
    /// Whether `value` itself is accepted (`>=`/`<=` rather than `>`/`<`).
    pub inclusive: bool,
}

/// What values a parameter accepts beyond its kind (plugin-api 1.1). The host checks every
/// value against them when it plans a run, so a bad value stops the run before any job starts.
/// A separate type rather than new `ParamSpec` fields, so that 1.0 layouts stay valid.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct ParamConstraints {
    /// The parameter (a name of `extra_optional_arguments`).
    pub name: RString,
    /// The accepted texts of a string parameter, or of each element of a list; empty: any.
    /// Compared ignoring ASCII case and surrounding spaces, as generators parse them.
    pub choices: RVec<RString>,
    /// Bounds of a number, or of each number in a list. A bound also refuses NaN and
    /// infinities.
    pub minimum: ROption<ParamBound>,
    pub maximum: ROption<ParamBound>,
    /// The generator needs a value: null is refused (without constraints it is allowed).
    pub not_null: bool,
    /// Named values added by later 1.x versions; hosts ignore keys they do not know.
    pub extensions: RVec<Param>,
}

impl ParamConstraints {
    pub fn new(name: &str) -> Self {
        ParamConstraints {
            name: name.into(),
            ..ParamConstraints::default()
        }
    }
}

/// A named value: a job parameter, a collected header keyword or an extension entry.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct Param {
    pub name: RString,
    pub value: ParamValue,
}

impl Param {
    pub fn new(name: &str, value: ParamValue) -> Self {
        Param {
            name: name.into(),
            value,
        }
    }
}

/// Whether an input exposure is a dark or a flat.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImageKind {
    Dark,
    Flat,
}

impl ImageKind {
    pub fn name(self) -> &'static str {
        match self {
            ImageKind::Dark => "dark",
            ImageKind::Flat => "flat",
        }
    }
}

impl fmt::Display for ImageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One input image of a job's group, in group order (D1, D2, ..., F1, ...).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct InputImage {
    /// The group label: `D1`, `D2`, ..., `F1`, ...
    pub label: RString,
    pub kind: ImageKind,
    /// The file to read: the input brought to the calibration state the generator asked for.
    pub path: RString,
    /// The raw exposure the user gave.
    pub raw_path: RString,
    pub mjd: f64,
    pub detector: RString,
    /// The primary-header keywords the configuration asked for (required and optional).
    pub header: RVec<Param>,
}

impl InputImage {
    pub fn header_value(&self, key: &str) -> Option<&ParamValue> {
        self.header
            .iter()
            .find(|p| p.name.as_str().eq_ignore_ascii_case(key))
            .map(|p| &p.value)
    }
}

/// What a successful job reports back.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct JobReport {
    /// Files written besides the reference file (plots, diagnostics).
    pub extra_outputs: RVec<RString>,
    /// One line for the run summary, e.g. "median readnoise 10.2 DN".
    pub summary: RString,
}

/// Error categories. A newtype rather than an enum so that later 1.x versions can add codes
/// without breaking the layout; unknown codes display as "error".
#[repr(transparent)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorKind(pub u32);

impl ErrorKind {
    /// The input files are unusable (wrong shape, missing extension, NaN-filled, ...).
    pub const INVALID_INPUT: ErrorKind = ErrorKind(1);
    /// A parameter value is out of range or inconsistent.
    pub const INVALID_PARAMETER: ErrorKind = ErrorKind(2);
    /// Reading or writing a file failed.
    pub const IO: ErrorKind = ErrorKind(3);
    /// A bug in the generator.
    pub const INTERNAL: ErrorKind = ErrorKind(4);
    /// The generator panicked; the message is the panic payload.
    pub const PANIC: ErrorKind = ErrorKind(5);

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::INVALID_INPUT => "invalid input",
            ErrorKind::INVALID_PARAMETER => "invalid parameter",
            ErrorKind::IO => "I/O error",
            ErrorKind::INTERNAL => "internal error",
            ErrorKind::PANIC => "generator panicked",
            _ => "error",
        }
    }
}

/// The stable error type of every generator operation.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct GeneratorError {
    pub kind: ErrorKind,
    pub message: RString,
}

impl GeneratorError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        GeneratorError {
            kind,
            message: RString::from(message.into()),
        }
    }
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_INPUT, message)
    }
    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INVALID_PARAMETER, message)
    }
    pub fn io(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::IO, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::INTERNAL, message)
    }
}

impl fmt::Display for GeneratorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for GeneratorError {}

/// Descriptive metadata for `mkrefs describe` and for configuration defaults.
#[repr(C)]
#[derive(StableAbi, Clone, Debug, Default, PartialEq)]
pub struct GeneratorInfo {
    /// What the generator does, including its documented differences from upstream. May span
    /// several paragraphs.
    pub description: RString,
    /// The generator's own version (its crate version).
    pub version: RString,
    /// Default grouping when the configuration section gives none (`D`, `DD`, `D+`, ...).
    pub default_imtypes: RString,
    /// Default calibration state of the inputs (`ssbsteps` syntax, e.g. `dq_init` or `jump-`).
    pub default_ssbsteps: RString,
    /// Default intermediate products to keep (`ssb_save_steps` syntax), empty for none.
    pub default_ssb_save_steps: RString,
}

/// How a generator's reference files of one detector combine into the run's final one
/// (plugin-api 1.2; README, "The final combination"). Without one, the host's default for the
/// reftype applies (a MASK combines its flags; others the sigma-clipped mean).
#[repr(C)]
#[derive(StableAbi, Clone, Debug, PartialEq)]
pub struct CombineRule {
    /// `mean` or `median` (per pixel, after sigma clipping), or `flags` (only DQ combines; the
    /// other arrays are those of the input with the earliest USEAFTER): for reftypes whose
    /// values must not be averaged.
    pub method: RString,
    /// In how many inputs a DQ flag must be set to be kept; 0: the host's default (more than
    /// half, or one where the pixel is DO_NOT_USE for `flags`).
    pub dq_min: u32,
}

/// Severity of a log line a generator sends to the host.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}
