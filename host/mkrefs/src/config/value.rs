//! Generator parameters as the host works with them: declarations read from a generator once
//! (see `registry`), values resolved from defaults, config and command line, and their JSON
//! form in job files. These mirror the plugin ABI's types with plain Rust ones; the ABI types
//! appear only where a generator is loaded or called (`registry`, `child::ffi`).

use std::fmt;

use mkrefs_support::header::HeaderValue;
use serde_json::Value;

/// The kind of a parameter, checked before a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ParamKind {
    Bool,
    Int,
    Float,
    String,
    /// A list of scalars.
    List,
}

impl ParamKind {
    pub(crate) fn name(self) -> &'static str {
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
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParamScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl fmt::Display for ParamScalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamScalar::Bool(b) => write!(f, "{b}"),
            ParamScalar::Int(i) => write!(f, "{i}"),
            ParamScalar::Float(x) => write!(f, "{x:?}"),
            ParamScalar::Str(s) => f.write_str(s),
        }
    }
}

/// A typed parameter value; `Null` is YAML's `null`/`~`/`None`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum ParamValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<ParamScalar>),
}

impl ParamValue {
    pub(crate) fn str(s: impl Into<String>) -> Self {
        ParamValue::Str(s.into())
    }

    /// The kind this value has, `None` for null.
    pub(crate) fn kind(&self) -> Option<ParamKind> {
        match self {
            ParamValue::Null => None,
            ParamValue::Bool(_) => Some(ParamKind::Bool),
            ParamValue::Int(_) => Some(ParamKind::Int),
            ParamValue::Float(_) => Some(ParamKind::Float),
            ParamValue::Str(_) => Some(ParamKind::String),
            ParamValue::List(_) => Some(ParamKind::List),
        }
    }

    /// The value as job files hold it. Non-finite floats have no JSON number; they are
    /// written as their text.
    pub(crate) fn to_json(&self) -> Value {
        match self {
            ParamValue::Null => Value::Null,
            ParamValue::Bool(b) => Value::Bool(*b),
            ParamValue::Int(i) => Value::from(*i),
            ParamValue::Float(x) => float_json(*x),
            ParamValue::Str(s) => Value::String(s.clone()),
            ParamValue::List(items) => Value::Array(items.iter().map(scalar_json).collect()),
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
            ParamValue::Str(s) => f.write_str(s),
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

/// The declaration of one generator parameter, as the generator gave it.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ParamSpec {
    pub name: String,
    pub kind: ParamKind,
    /// `Null` means "no value unless the user gives one".
    pub default: ParamValue,
    pub help: String,
    /// Choices and range (plugin-api 1.1); empty for a 1.0 plugin.
    pub constraints: Constraints,
}

/// One end of a numeric range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bound {
    pub value: f64,
    pub inclusive: bool,
}

/// What a parameter accepts beyond its kind; checked by `config::constraints` when a run is
/// planned, so a bad value stops the run before any job starts.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Constraints {
    /// Accepted texts of a string or of each list element, ignoring ASCII case and
    /// surrounding spaces; empty: any.
    pub choices: Vec<String>,
    /// Bounds of a number or of each number of a list; a bound also refuses NaN and infinities.
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    /// Null is refused.
    pub not_null: bool,
}

/// A named value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Param {
    pub name: String,
    pub value: ParamValue,
}

impl Param {
    pub(crate) fn new(name: &str, value: ParamValue) -> Self {
        Param {
            name: name.to_string(),
            value,
        }
    }
}

fn float_json(x: f64) -> Value {
    serde_json::Number::from_f64(x)
        .map(Value::Number)
        .unwrap_or_else(|| Value::String(format!("{x}")))
}

fn scalar_json(s: &ParamScalar) -> Value {
    match s {
        ParamScalar::Bool(b) => Value::Bool(*b),
        ParamScalar::Int(i) => Value::from(*i),
        ParamScalar::Float(x) => float_json(*x),
        ParamScalar::Str(s) => Value::String(s.clone()),
    }
}

/// A header value as job files hold it.
pub(crate) fn header_json(v: &HeaderValue) -> Value {
    match v {
        HeaderValue::Bool(b) => Value::Bool(*b),
        HeaderValue::Int(i) => Value::from(*i),
        HeaderValue::Float(x) => float_json(*x),
        HeaderValue::Str(s) => Value::String(s.clone()),
    }
}
