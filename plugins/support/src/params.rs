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
    pub constraints: Constraints,
}

/// One end of a numeric range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bound {
    pub value: f64,
    /// Whether `value` itself is accepted.
    pub inclusive: bool,
}

/// What values a parameter accepts beyond its kind. The host refuses others when it plans a
/// run, and [`crate::job::JobView::get`] checks them again, so a job never sees them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Constraints {
    /// Accepted texts (of a string, or of each list element), ignoring ASCII case and
    /// surrounding spaces; empty: any.
    pub choices: Vec<&'static str>,
    /// Bounds of a number; a bound also refuses NaN and infinities.
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
    /// Null is refused: the parameter's type has no "no value".
    pub not_null: bool,
}

impl Constraints {
    /// Whether the declaration adds nothing to the kind.
    pub fn is_empty(&self) -> bool {
        *self == Constraints::default()
    }

    /// Why `value` is not accepted, as a message naming `name`; `None` if it is.
    pub fn violation(&self, name: &str, value: &Value) -> Option<String> {
        match value {
            Value::Null if self.not_null => Some(format!("{name} needs a value, got null")),
            Value::Str(s) => self.text_violation(name, s),
            Value::Int(i) => self.number_violation(name, *i as f64, &value.to_string()),
            Value::Float(x) => self.number_violation(name, *x, &value.to_string()),
            Value::List(items) => items.iter().find_map(|item| match item {
                Scalar::Str(s) => self.text_violation(name, s),
                Scalar::Int(i) => self.number_violation(name, *i as f64, &item.to_string()),
                Scalar::Float(x) => self.number_violation(name, *x, &item.to_string()),
                Scalar::Bool(_) => None,
            }),
            Value::Null | Value::Bool(_) => None,
        }
    }

    fn text_violation(&self, name: &str, text: &str) -> Option<String> {
        let t = text.trim();
        let ok = self.choices.is_empty() || self.choices.iter().any(|c| c.eq_ignore_ascii_case(t));
        (!ok).then(|| {
            format!(
                "{name} must be one of {}, got '{text}'",
                self.choices.join("|")
            )
        })
    }

    fn number_violation(&self, name: &str, x: f64, shown: &str) -> Option<String> {
        let above = |b: &Bound| x > b.value || (b.inclusive && x == b.value);
        let below = |b: &Bound| x < b.value || (b.inclusive && x == b.value);
        let bounded = self.minimum.is_some() || self.maximum.is_some();
        let ok = (!bounded || x.is_finite())
            && self.minimum.as_ref().is_none_or(above)
            && self.maximum.as_ref().is_none_or(below);
        (!ok).then(|| format!("{name} must be {}, got {shown}", self.range_text()))
    }

    /// The range in words: "> 0", ">= 1", "in [0, 1]", "in (0, 0.5]".
    pub fn range_text(&self) -> String {
        match (self.minimum, self.maximum) {
            (Some(lo), Some(hi)) => format!(
                "in {}{}, {}{}",
                if lo.inclusive { '[' } else { '(' },
                lo.value,
                hi.value,
                if hi.inclusive { ']' } else { ')' }
            ),
            (Some(lo), None) => format!("{} {}", if lo.inclusive { ">=" } else { ">" }, lo.value),
            (None, Some(hi)) => format!("{} {}", if hi.inclusive { "<=" } else { "<" }, hi.value),
            (None, None) => "any number".to_string(),
        }
    }
}

/// The names of an enum-like string parameter and the value each stands for. The declaration
/// takes its choices from the same table its parser reads ([`Param::one_of`]), so the two
/// cannot disagree.
#[derive(Debug)]
pub struct Choices<E: 'static>(&'static [(&'static str, E)]);

impl<E: Copy + PartialEq + fmt::Debug + Sync + 'static> Choices<E> {
    pub const fn new(table: &'static [(&'static str, E)]) -> Self {
        Choices(table)
    }

    /// The value `text` names, ignoring ASCII case and surrounding spaces (as the host does).
    pub fn parse(&self, text: &str) -> Option<E> {
        let t = text.trim();
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t))
            .map(|&(_, v)| v)
    }

    /// The name of `value`: its first entry in the table.
    pub fn name(&self, value: E) -> &'static str {
        self.0
            .iter()
            .find(|(_, v)| *v == value)
            .map(|&(n, _)| n)
            .unwrap_or_else(|| panic!("{value:?} is missing from its choices table"))
    }

    /// "'a', 'b' or 'c'", for messages.
    pub fn listed(&self) -> String {
        let names: Vec<String> = self.0.iter().map(|(n, _)| format!("'{n}'")).collect();
        match names.split_last() {
            Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
            _ => names.concat(),
        }
    }
}

/// The names of a [`Choices`] table whatever its value type, as a declaration keeps them.
pub trait ChoiceNames: fmt::Debug + Sync {
    fn names(&self) -> Vec<&'static str>;
}

impl<E: fmt::Debug + Sync + 'static> ChoiceNames for Choices<E> {
    fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|&(n, _)| n).collect()
    }
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
    /// Whether null is a value of the type (otherwise the host refuses it).
    const NULLABLE: bool = false;
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
    const NULLABLE: bool = true;
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
    const NULLABLE: bool = true;
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
    const NULLABLE: bool = true;
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

/// The declaration of one parameter whose value is read as `T`, with the choices or range
/// it accepts (const builders: `Param::new(..).one_of(&TABLE)`, `.above(0.0)`, ...).
#[derive(Debug)]
pub struct Param<T: ParamType> {
    pub name: &'static str,
    pub default: T::Default,
    pub help: &'static str,
    pub choices: Option<&'static dyn ChoiceNames>,
    pub minimum: Option<Bound>,
    pub maximum: Option<Bound>,
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
            choices: None,
            minimum: None,
            maximum: None,
        }
    }

    pub fn spec(&self) -> Spec {
        Spec {
            name: self.name,
            kind: T::KIND,
            default: T::default_value(self.default),
            help: self.help.to_string(),
            constraints: self.constraints(),
        }
    }

    pub fn constraints(&self) -> Constraints {
        Constraints {
            choices: self.choices.map(ChoiceNames::names).unwrap_or_default(),
            minimum: self.minimum,
            maximum: self.maximum,
            not_null: !T::NULLABLE,
        }
    }

    const fn bounded(mut self, minimum: Option<Bound>, maximum: Option<Bound>) -> Self {
        if minimum.is_some() {
            self.minimum = minimum;
        }
        if maximum.is_some() {
            self.maximum = maximum;
        }
        self
    }
}

/// Parameters whose values are texts (or lists of texts) can name their choices.
pub trait TextType: ParamType {}
impl TextType for String {}
impl TextType for Option<String> {}
impl TextType for Vec<String> {}

impl<T: TextType> Param<T> {
    /// Accepts only the names of `choices` (ignoring case), which its parser reads too.
    pub const fn one_of<E: fmt::Debug + Sync + 'static>(
        mut self,
        choices: &'static Choices<E>,
    ) -> Self {
        self.choices = Some(choices);
        self
    }
}

const fn incl(value: f64) -> Option<Bound> {
    Some(Bound {
        value,
        inclusive: true,
    })
}

const fn excl(value: f64) -> Option<Bound> {
    Some(Bound {
        value,
        inclusive: false,
    })
}

/// Parameters whose values are numbers can state a range. The bounds are `f64` for every
/// number type, so that one generic builder serves all (same-named methods on `Param<i64>` and
/// `Param<f64>` could not be told apart before the constant's type is known).
pub trait NumberType: ParamType {}
impl NumberType for i64 {}
impl NumberType for f64 {}
impl NumberType for Option<f64> {}

impl<T: NumberType> Param<T> {
    pub const fn at_least(self, minimum: f64) -> Self {
        self.bounded(incl(minimum), None)
    }

    /// Strictly above `minimum` (sigmas, widths).
    pub const fn above(self, minimum: f64) -> Self {
        self.bounded(excl(minimum), None)
    }

    pub const fn at_most(self, maximum: f64) -> Self {
        self.bounded(None, incl(maximum))
    }

    /// A fraction: in [0, 1].
    pub const fn fraction(self) -> Self {
        self.bounded(incl(0.0), incl(1.0))
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

    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Mode {
        Fast,
        Slow,
    }

    const MODES: Choices<Mode> = Choices::new(&[("fast", Mode::Fast), ("Slow", Mode::Slow)]);

    #[test]
    fn choices_parse_and_name_from_one_table() {
        assert_eq!(MODES.parse(" SLOW "), Some(Mode::Slow));
        assert_eq!(MODES.parse("medium"), None);
        assert_eq!(MODES.name(Mode::Fast), "fast");
        assert_eq!(MODES.listed(), "'fast' or 'Slow'");
        const P: Param<String> = Param::new("mode", "fast", "h").one_of(&MODES);
        let c = P.spec().constraints;
        assert_eq!(c.choices, vec!["fast", "Slow"]);
        assert!(c.not_null);
        assert_eq!(c.violation("mode", &Value::Str("slow".into())), None);
        assert_eq!(
            c.violation("mode", &Value::Str("medium".into())).as_deref(),
            Some("mode must be one of fast|Slow, got 'medium'")
        );
    }

    #[test]
    fn ranges_are_declared_with_const_builders() {
        const SIGMA: Param<f64> = Param::new("sigma", 3.0, "h").above(0.0);
        const ITERS: Param<i64> = Param::new("iters", 3, "h").at_least(1.0);
        const HALF: Param<Option<f64>> = Param::new("half", None, "h").above(0.0).at_most(0.5);
        let sigma = SIGMA.constraints();
        assert_eq!(sigma.range_text(), "> 0");
        assert_eq!(sigma.violation("sigma", &Value::Float(0.5)), None);
        assert_eq!(
            sigma.violation("sigma", &Value::Float(0.0)).as_deref(),
            Some("sigma must be > 0, got 0.0")
        );
        assert!(sigma.violation("sigma", &Value::Float(f64::NAN)).is_some());
        let iters = ITERS.constraints();
        assert!(iters.violation("iters", &Value::Int(0)).is_some());
        assert_eq!(iters.violation("iters", &Value::Int(1)), None);
        let half = HALF.constraints();
        assert_eq!(half.range_text(), "in (0, 0.5]");
        assert!(!half.not_null, "an Option accepts null");
        assert_eq!(half.violation("half", &Value::Null), None);
        assert!(half.violation("half", &Value::Float(0.6)).is_some());
        assert!(Param::<bool>::new("b", true, "h").constraints().not_null);
        let plain = Param::<Vec<String>>::new("l", None, "h").constraints();
        assert!(plain.is_empty());
    }

    #[test]
    fn a_declaration_gives_its_spec() {
        const P: Param<Vec<String>> = Param::list("l", &["a"], "h");
        let s = specs(&[&P, &Param::<Option<String>>::new("s", None, "t")]);
        assert_eq!(s[0].default, Value::List(vec![Scalar::Str("a".into())]));
        assert_eq!((s[1].kind, &s[1].default), (Kind::String, &Value::Null));
    }
}
