//! Typed FITS header values, as read from a primary header.

use std::fmt;

use mkrefs_plugin_api::ParamValue;

/// One header value. FITS logicals, integers, reals and strings.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl HeaderValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            HeaderValue::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            HeaderValue::Int(i) => Some(*i),
            HeaderValue::Float(x) if x.fract() == 0.0 => Some(*x as i64),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            HeaderValue::Int(i) => Some(*i as f64),
            HeaderValue::Float(x) => Some(*x),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            HeaderValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as it crosses the plugin ABI.
    pub fn to_param(&self) -> ParamValue {
        match self {
            HeaderValue::Bool(b) => ParamValue::Bool(*b),
            HeaderValue::Int(i) => ParamValue::Int(*i),
            HeaderValue::Float(x) => ParamValue::Float(*x),
            HeaderValue::Str(s) => ParamValue::str(s.clone()),
        }
    }
}

impl fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderValue::Bool(b) => f.write_str(if *b { "T" } else { "F" }),
            HeaderValue::Int(i) => write!(f, "{i}"),
            HeaderValue::Float(x) => write!(f, "{x:?}"),
            HeaderValue::Str(s) => f.write_str(s),
        }
    }
}

impl From<&str> for HeaderValue {
    fn from(s: &str) -> Self {
        HeaderValue::Str(s.to_string())
    }
}
impl From<String> for HeaderValue {
    fn from(s: String) -> Self {
        HeaderValue::Str(s)
    }
}
impl From<i64> for HeaderValue {
    fn from(i: i64) -> Self {
        HeaderValue::Int(i)
    }
}
impl From<f64> for HeaderValue {
    fn from(x: f64) -> Self {
        HeaderValue::Float(x)
    }
}
impl From<bool> for HeaderValue {
    fn from(b: bool) -> Self {
        HeaderValue::Bool(b)
    }
}

/// The keyword cards of one HDU, in file order. Keys are upper case; lookups ignore case.
/// COMMENT, HISTORY and blank cards are not kept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Header {
    cards: Vec<(String, HeaderValue)>,
}

impl Header {
    pub fn new() -> Self {
        Header::default()
    }

    /// Sets a key, replacing an existing value.
    pub fn set(&mut self, key: &str, value: impl Into<HeaderValue>) {
        let key = key.to_ascii_uppercase();
        let value = value.into();
        match self.cards.iter_mut().find(|(k, _)| *k == key) {
            Some(card) => card.1 = value,
            None => self.cards.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&HeaderValue> {
        self.cards
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(HeaderValue::as_str)
    }

    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(HeaderValue::as_i64)
    }

    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(HeaderValue::as_f64)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &HeaderValue)> {
        self.cards.iter().map(|(k, v)| (k.as_str(), v))
    }

    pub fn len(&self) -> usize {
        self.cards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }
}

/// Whether a key read from one file's header may be written into another's: not one cfitsio
/// writes itself (structure, checksums) and a standard FITS keyword name.
pub fn is_copyable_key(key: &str) -> bool {
    !is_structural(key) && is_fits_keyword(key)
}

/// Keys cfitsio writes itself for each HDU; copying them into the primary header would clash.
fn is_structural(key: &str) -> bool {
    let numbered = |prefix: &str| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(
        key,
        "SIMPLE"
            | "BITPIX"
            | "EXTEND"
            | "BZERO"
            | "BSCALE"
            | "PCOUNT"
            | "GCOUNT"
            | "XTENSION"
            | "EXTNAME"
            | "CHECKSUM"
            | "DATASUM"
            | "END"
    ) || numbered("NAXIS")
}

/// A standard FITS keyword name (1–8 of A-Z, 0-9, '-', '_'); HIERARCH-style names are not
/// written back.
fn is_fits_keyword(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 8
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}
