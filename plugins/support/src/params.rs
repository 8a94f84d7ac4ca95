//! Generator parameters, each declared once: one constant holds the name, kind, default and help
//! that `mkrefs describe` lists, and the job's value is read back through the same constant
//! (`job.get(&CLIPPING_SIGMA)`), so a name cannot be spelled two ways.
//!
//! A generator lists its declarations in order ([`Declare`] items: single [`Param`]s and
//! groups such as the shared metadata parameters of [`crate::jobparams`]); the support crate's
//! generator glue turns them into the host's declarations.

use std::fmt;

/// The kind of a parameter, which the host checks before a job runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Int,
    Float,
    String,
    /// A list of scalars.
    List,
}

/// One element of a list value.
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A parameter value (a default, or what a job was given). `Null` is YAML's null.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Scalar>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

// Both as the host prints values, so that messages read the same wherever they are made.
impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Bool(b) => write!(f, "{b}"),
            Scalar::Int(i) => write!(f, "{i}"),
            Scalar::Float(x) => write!(f, "{x:?}"),
            Scalar::Str(s) => write!(f, "{s}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s}"),
            Value::List(items) => {
                let items: Vec<String> = items.iter().map(Scalar::to_string).collect();
                write!(f, "[{}]", items.join(", "))
            }
        }
    }
}

/// One parameter as the host lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    /// `Null`: no value unless the user gives one.
    pub default: Value,
    pub help: String,
}

/// Why a job's value does not read as the declared type.
#[derive(Clone, Debug, PartialEq)]
pub enum Mismatch {
    /// Not of the declared kind; the caller says which kind was expected.
    Kind,
    /// A complete message (e.g. a list element of the wrong kind).
    Other(String),
}

/// A Rust type a parameter's value is read as.
pub trait ParamType: Sized {
    /// How a declaration writes the default.
    type Default: Copy + fmt::Debug;
    const KIND: Kind;
    /// What a value of another kind is told it should be ("number", "string or null", ...).
    const EXPECTED: &'static str;
    fn default_value(default: Self::Default) -> Value;
    fn read(name: &str, value: &Value) -> Result<Self, Mismatch>;
}

impl ParamType for bool {
    type Default = bool;
    const KIND: Kind = Kind::Bool;
    const EXPECTED: &'static str = "bool";
    fn default_value(default: bool) -> Value {
        Value::Bool(default)
    }
    fn read(_: &str, value: &Value) -> Result<bool, Mismatch> {
        match value {
            Value::Bool(b) => Ok(*b),
            _ => Err(Mismatch::Kind),
        }
    }
}

impl ParamType for i64 {
    type Default = i64;
    const KIND: Kind = Kind::Int;
    const EXPECTED: &'static str = "integer";
    fn default_value(default: i64) -> Value {
        Value::Int(default)
    }
    fn read(_: &str, value: &Value) -> Result<i64, Mismatch> {
        match value {
            Value::Int(i) => Ok(*i),
            _ => Err(Mismatch::Kind),
        }
    }
}

/// Integers are accepted where a float is wanted.
impl ParamType for f64 {
    type Default = f64;
    const KIND: Kind = Kind::Float;
    const EXPECTED: &'static str = "number";
    fn default_value(default: f64) -> Value {
        Value::Float(default)
    }
    fn read(_: &str, value: &Value) -> Result<f64, Mismatch> {
        match value {
            Value::Float(x) => Ok(*x),
            Value::Int(i) => Ok(*i as f64),
            _ => Err(Mismatch::Kind),
        }
    }
}

impl ParamType for String {
    type Default = &'static str;
    const KIND: Kind = Kind::String;
    const EXPECTED: &'static str = "string";
    fn default_value(default: &'static str) -> Value {
        Value::Str(default.to_string())
    }
    fn read(_: &str, value: &Value) -> Result<String, Mismatch> {
        match value {
            Value::Str(s) => Ok(s.clone()),
            _ => Err(Mismatch::Kind),
        }
    }
}

/// A string that may be null.
impl ParamType for Option<String> {
    type Default = Option<&'static str>;
    const KIND: Kind = Kind::String;
    const EXPECTED: &'static str = "string or null";
    fn default_value(default: Option<&'static str>) -> Value {
        default.map_or(Value::Null, String::default_value)
    }
    fn read(_: &str, value: &Value) -> Result<Option<String>, Mismatch> {
        match value {
            Value::Null => Ok(None),
            Value::Str(s) => Ok(Some(s.clone())),
            _ => Err(Mismatch::Kind),
        }
    }
}

/// A number that may be null; a string that [`null_like`] calls null counts as null too.
impl ParamType for Option<f64> {
    type Default = Option<f64>;
    const KIND: Kind = Kind::Float;
    const EXPECTED: &'static str = "number";
    fn default_value(default: Option<f64>) -> Value {
        default.map_or(Value::Null, Value::Float)
    }
    fn read(name: &str, value: &Value) -> Result<Option<f64>, Mismatch> {
        match value {
            Value::Null => Ok(None),
            Value::Str(s) if null_like(Some(s.clone())).is_none() => Ok(None),
            other => f64::read(name, other).map(Some),
        }
    }
}

/// A list of strings; null reads as an empty list.
impl ParamType for Vec<String> {
    /// `None` declares a null default.
    type Default = Option<&'static [&'static str]>;
    const KIND: Kind = Kind::List;
    const EXPECTED: &'static str = "list";
    fn default_value(default: Option<&'static [&'static str]>) -> Value {
        default.map_or(Value::Null, |items| {
            Value::List(items.iter().map(|s| Scalar::Str(s.to_string())).collect())
        })
    }
    fn read(name: &str, value: &Value) -> Result<Vec<String>, Mismatch> {
        let items = match value {
            Value::Null => return Ok(Vec::new()),
            Value::List(items) => items,
            _ => return Err(Mismatch::Kind),
        };
        items
            .iter()
            .map(|item| match item {
                Scalar::Str(s) => Ok(s.clone()),
                other => Err(Mismatch::Other(format!(
                    "{name} must be a list of strings, got the element '{other}'"
                ))),
            })
            .collect()
    }
}

/// The declaration of one parameter whose value is read as `T`.
#[derive(Debug)]
pub struct Param<T: ParamType> {
    pub name: &'static str,
    pub default: T::Default,
    pub help: &'static str,
}

impl<T: ParamType> Clone for Param<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ParamType> Copy for Param<T> {}

impl<T: ParamType> Param<T> {
    pub const fn new(name: &'static str, default: T::Default, help: &'static str) -> Self {
        Param {
            name,
            default,
            help,
        }
    }

    pub fn spec(&self) -> Spec {
        Spec {
            name: self.name,
            kind: T::KIND,
            default: T::default_value(self.default),
            help: self.help.to_string(),
        }
    }
}

impl Param<Vec<String>> {
    /// A list parameter whose default is `items` (`Param::new` with `None` declares null).
    pub const fn list(
        name: &'static str,
        items: &'static [&'static str],
        help: &'static str,
    ) -> Self {
        Param::new(name, Some(items), help)
    }
}

/// Declares parameters: one ([`Param`]) or a group of them, appended in order.
pub trait Declare {
    fn declare(&self, out: &mut Vec<Spec>);
}

impl<T: ParamType> Declare for Param<T> {
    fn declare(&self, out: &mut Vec<Spec>) {
        out.push(self.spec());
    }
}

/// The declarations of a list, in order.
pub fn specs(declarations: &[&dyn Declare]) -> Vec<Spec> {
    let mut out = Vec::new();
    for d in declarations {
        d.declare(&mut out);
    }
    out
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
    fn values_read_as_their_declared_types() {
        assert_eq!(f64::read("x", &Value::Int(2)), Ok(2.0));
        assert_eq!(i64::read("x", &Value::Float(2.0)), Err(Mismatch::Kind));
        assert_eq!(<Option<String>>::read("x", &Value::Null), Ok(None));
        assert_eq!(
            <Option<f64>>::read("x", &Value::Str("none".into())),
            Ok(None)
        );
        assert_eq!(
            <Option<f64>>::read("x", &Value::Str("a".into())),
            Err(Mismatch::Kind)
        );
        assert_eq!(<Vec<String>>::read("x", &Value::Null), Ok(Vec::new()));
        assert_eq!(
            <Vec<String>>::read("x", &Value::List(vec![Scalar::Float(1.0)])),
            Err(Mismatch::Other(
                "x must be a list of strings, got the element '1.0'".into()
            ))
        );
    }

    #[test]
    fn a_declaration_gives_its_spec() {
        const P: Param<Vec<String>> = Param::list("l", &["a"], "h");
        let s = specs(&[&P, &Param::<Option<String>>::new("s", None, "t")]);
        assert_eq!(s[0].default, Value::List(vec![Scalar::Str("a".into())]));
        assert_eq!((s[1].kind, &s[1].default), (Kind::String, &Value::Null));
    }
}
