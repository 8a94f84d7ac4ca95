//! Generator parameters: routing command-line options to generators, and resolving each
//! parameter's value as generator default < config section (including `--pall`/`--pp`) <
//! command line, checked against the declared kind, choices and range.
//!
//! Upstream merged same-named plugin options into one argparse option whose value went to every
//! plugin, and passed all values as untyped strings (UPSTREAM.md, "Reflabels and generator parameters"). Here a bare
//! `--name` must belong to exactly one selected generator, `--<reflabel>.<name>` is always
//! unambiguous, and values are converted to the declared kind:
//!
//! * null (`null`, `~`, `None`, `none`, or an empty command-line value) is allowed for every
//!   kind and means "no value";
//! * bool: YAML booleans, 0/1, and the words true/false/yes/no/on/off in any case;
//! * int: integers, and floats with no fractional part (`3.0` is 3; `2.5` is an error), since
//!   scripts often print whole numbers as floats;
//! * float: any number;
//! * string: text, and numbers or booleans as their text (`5` is "5");
//! * list: a YAML list of plain values; a single value is a one-element list; on the command
//!   line a flow list `[a, b]` or a comma-separated `a,b`.
//!
//! A config string for a non-string kind is read like a command-line value (`"5"` is fine for
//! an int), because upstream configs and plugins passed everything as text.

use super::constraints;
use super::error::{ConfigError, ConfigErrorKind, Result, suggest};
use super::provenance::Provenance;
use super::settings::{ReflabelSection, Settings, parse_bool_text};
use super::tree::{Node, NodeValue, is_none_word, parse_cli_value};
use super::value::{Param, ParamKind, ParamScalar, ParamSpec, ParamValue};

/// One generator parameter given on the command line: `--name value` (`reflabel: None`) or
/// `--reflabel.name value`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliParam {
    pub reflabel: Option<String>,
    pub name: String,
    pub raw: String,
}

impl CliParam {
    /// The option as the user wrote it, for messages.
    pub fn option(&self) -> String {
        match &self.reflabel {
            Some(r) => format!("--{r}.{}", self.name),
            None => format!("--{}", self.name),
        }
    }

    /// Splits an option name (without the leading `--`) at its first dot.
    pub fn from_option(option: &str, raw: &str) -> CliParam {
        let option = option.trim_start_matches('-');
        match option.split_once('.') {
            Some((r, n)) => CliParam {
                reflabel: Some(r.to_string()),
                name: n.to_string(),
                raw: raw.to_string(),
            },
            None => CliParam {
                reflabel: None,
                name: option.to_string(),
                raw: raw.to_string(),
            },
        }
    }
}

/// A parameter's final value and where it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedParam {
    pub param: Param,
    pub source: Provenance,
}

fn spec_names(specs: &[ParamSpec]) -> Vec<String> {
    specs.iter().map(|s| s.name.to_string()).collect()
}

/// Assigns each command-line parameter to the selected generator it belongs to.
///
/// `selected` holds `(reflabel, declared parameters)` of every reflabel of the run.
pub fn route_cli_params(
    cli: &[CliParam],
    selected: &[(&str, &[ParamSpec])],
) -> Result<Vec<(String, CliParam)>> {
    let mut out = Vec::with_capacity(cli.len());
    let selected_names: Vec<String> = selected.iter().map(|(r, _)| r.to_string()).collect();
    for c in cli {
        match &c.reflabel {
            Some(r) => {
                let Some((_, specs)) = selected.iter().find(|(s, _)| s == r) else {
                    return Err(ConfigError::from(ConfigErrorKind::ReflabelNotSelected {
                        option: c.option(),
                        reflabel: r.clone(),
                        suggestion: suggest(r, selected_names.iter().map(String::as_str)),
                        selected: selected_names,
                    }));
                };
                if !specs.iter().any(|s| s.name.as_str() == c.name) {
                    let names = spec_names(specs);
                    return Err(ConfigError::from(ConfigErrorKind::UnknownParam {
                        origin: Provenance::CommandLine(c.option()),
                        location: String::new(),
                        reflabels: vec![r.clone()],
                        name: c.name.clone(),
                        suggestion: suggest(&c.name, names.iter().map(String::as_str)),
                        known: names,
                    }));
                }
                out.push((r.clone(), c.clone()));
            }
            None => {
                let holders: Vec<&str> = selected
                    .iter()
                    .filter(|(_, specs)| specs.iter().any(|s| s.name.as_str() == c.name))
                    .map(|(r, _)| *r)
                    .collect();
                match holders.as_slice() {
                    [one] => out.push((one.to_string(), c.clone())),
                    [] => {
                        let all: Vec<String> = selected
                            .iter()
                            .flat_map(|(_, specs)| spec_names(specs))
                            .collect();
                        let suggestion = suggest(&c.name, all.iter().map(String::as_str));
                        return Err(ConfigError::from(ConfigErrorKind::UnknownParam {
                            origin: Provenance::CommandLine(c.option()),
                            location: String::new(),
                            reflabels: selected_names,
                            name: c.name.clone(),
                            suggestion,
                            known: Vec::new(),
                        }));
                    }
                    many => {
                        return Err(ConfigError::from(ConfigErrorKind::AmbiguousParam {
                            name: c.name.clone(),
                            reflabels: many.iter().map(|s| s.to_string()).collect(),
                        }));
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Reports `--pall` keys that reached nothing: no config key had them and no selected
/// generator declares them (most likely a misspelling).
pub fn check_pall(settings: &Settings, selected: &[(&str, &[ParamSpec])]) -> Result<()> {
    for p in &settings.pall {
        if p.found_in_config {
            continue;
        }
        let declared = selected
            .iter()
            .any(|(_, specs)| specs.iter().any(|s| s.name.as_str() == p.key));
        if !declared {
            let all: Vec<String> = selected
                .iter()
                .flat_map(|(_, specs)| spec_names(specs))
                .collect();
            return Err(ConfigError::from(ConfigErrorKind::PallUnused {
                key: p.key.clone(),
                selected: selected.iter().map(|(r, _)| r.to_string()).collect(),
                suggestion: suggest(&p.key, all.iter().map(String::as_str)),
            }));
        }
    }
    Ok(())
}

/// Resolves every declared parameter of `reflabel`: its default, then the config section's
/// value (including `--pp`, and `--pall` for keys the section does not list), then the
/// command line. `cli` should be the parameters [`route_cli_params`] gave this reflabel;
/// entries addressed to another reflabel (`--other.name`) are skipped.
///
/// Returns one entry per spec, in the generator's order.
pub fn resolve_params(
    reflabel: &str,
    specs: &[ParamSpec],
    section: Option<&ReflabelSection>,
    cli: &[CliParam],
) -> Result<Vec<ResolvedParam>> {
    let names = spec_names(specs);
    let mut out = defaults(reflabel, specs)?;
    let index = |name: &str| specs.iter().position(|s| s.name.as_str() == name);

    if let Some(section) = section {
        for (key, node) in &section.params {
            let Some(i) = index(key) else {
                return Err(ConfigError::from(ConfigErrorKind::UnknownParam {
                    origin: node.source.clone(),
                    location: format!(", section '{}', key '{key}'", section.name),
                    reflabels: vec![reflabel.to_string()],
                    name: key.clone(),
                    suggestion: suggest(key, names.iter().map(String::as_str)),
                    known: names.clone(),
                }));
            };
            let path = format!("{}.{key}", section.name);
            let value = from_node(&specs[i], reflabel, node, &path)?;
            out[i] = ResolvedParam {
                param: Param::new(
                    key,
                    admitted(&specs[i], reflabel, value, &node.source, &path)?,
                ),
                source: node.source.clone(),
            };
        }
        for (key, node) in &section.pall {
            if let Some(i) = index(key) {
                let path = format!("--pall {key}");
                let value = from_node(&specs[i], reflabel, node, &path)?;
                let value = admitted(&specs[i], reflabel, value, &node.source, &path)?;
                out[i] = ResolvedParam {
                    param: Param::new(key, value),
                    source: node.source.clone(),
                };
            }
        }
    }

    for c in cli {
        if c.reflabel.as_deref().is_some_and(|r| r != reflabel) {
            continue;
        }
        let origin = Provenance::CommandLine(c.option());
        let Some(i) = index(&c.name) else {
            return Err(ConfigError::from(ConfigErrorKind::UnknownParam {
                origin,
                location: String::new(),
                reflabels: vec![reflabel.to_string()],
                name: c.name.clone(),
                suggestion: suggest(&c.name, names.iter().map(String::as_str)),
                known: names.clone(),
            }));
        };
        let value = from_text(&specs[i], reflabel, &c.raw, &origin)?;
        let value = admitted(&specs[i], reflabel, value, &origin, &c.option())?;
        out[i] = ResolvedParam {
            param: Param::new(&c.name, value),
            source: origin,
        };
    }
    Ok(out)
}

/// Every parameter at its generator's default, which must fit the generator's own declaration.
fn defaults(reflabel: &str, specs: &[ParamSpec]) -> Result<Vec<ResolvedParam>> {
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let bad = |kind: String| {
            ConfigError::from(ConfigErrorKind::BadGeneratorDefault {
                reflabel: reflabel.to_string(),
                name: spec.name.to_string(),
                kind,
                default: spec.default.to_string(),
            })
        };
        if !default_fits(spec) {
            return Err(bad(spec.kind.to_string()));
        }
        let value = constraints::admit(spec, spec.default.clone())
            .map_err(|r| bad(format!("{} ({})", spec.kind, r.expected)))?;
        out.push(ResolvedParam {
            param: Param::new(spec.name.as_str(), value),
            source: Provenance::GeneratorDefault(reflabel.to_string()),
        });
    }
    Ok(out)
}

/// A value of the declared kind, checked against the declared choices and range; the error
/// names where it came from and, for a misspelt choice, the closest one.
fn admitted(
    spec: &ParamSpec,
    reflabel: &str,
    value: ParamValue,
    origin: &Provenance,
    path: &str,
) -> Result<ParamValue> {
    constraints::admit(spec, value).map_err(|r| {
        ConfigError::from(ConfigErrorKind::InvalidValue {
            origin: origin.clone(),
            key_path: path.to_string(),
            expected: format!(
                "{} (parameter '{}' of generator '{reflabel}')",
                r.expected, spec.name
            ),
            found: r.found,
            hint: match r.suggestion {
                Some(s) => format!("did you mean '{s}'?"),
                None if spec.help.is_empty() => String::new(),
                None => format!("{}: {}", spec.name, spec.help),
            },
        })
    })
}

fn default_fits(spec: &ParamSpec) -> bool {
    match (&spec.default, spec.kind) {
        (ParamValue::Null, _) => true,
        (ParamValue::Int(_), ParamKind::Float) => true,
        (v, k) => v.kind() == Some(k),
    }
}

fn kind_error(
    spec: &ParamSpec,
    reflabel: &str,
    origin: &Provenance,
    path: &str,
    found: String,
) -> ConfigError {
    let expected = match spec.kind {
        ParamKind::Bool => "a bool (true/false)",
        ParamKind::Int => "an integer",
        ParamKind::Float => "a number",
        ParamKind::String => "a text value",
        ParamKind::List => "a list such as [a, b]",
    };
    ConfigError::from(ConfigErrorKind::InvalidValue {
        origin: origin.clone(),
        key_path: path.to_string(),
        expected: format!(
            "{expected} (parameter '{}' of generator '{reflabel}')",
            spec.name
        ),
        found,
        hint: if spec.help.is_empty() {
            String::new()
        } else {
            format!("{}: {}", spec.name, spec.help)
        },
    })
}

/// A config value as JSON (object keys sorted, so job files stay deterministic).
fn node_json(node: &Node) -> serde_json::Value {
    use serde_json::Value;
    match &node.value {
        NodeValue::Null => Value::Null,
        NodeValue::Bool(b) => Value::Bool(*b),
        NodeValue::Int(i) => Value::from(*i),
        NodeValue::Float(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        NodeValue::Str(s) => Value::String(s.clone()),
        NodeValue::List(items) => Value::Array(items.iter().map(node_json).collect()),
        NodeValue::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| (k.clone(), node_json(v)))
                .collect(),
        ),
    }
}

fn int_from_f64(x: f64) -> Option<i64> {
    (x.is_finite() && x.fract() == 0.0 && x.abs() < 9.0e15).then_some(x as i64)
}

fn int_from_text(s: &str) -> Option<i64> {
    let t = s.trim();
    t.parse::<i64>()
        .ok()
        .or_else(|| t.parse::<f64>().ok().and_then(int_from_f64))
}

fn scalar_of(node: &Node) -> Option<ParamScalar> {
    match &node.value {
        NodeValue::Bool(b) => Some(ParamScalar::Bool(*b)),
        NodeValue::Int(i) => Some(ParamScalar::Int(*i)),
        NodeValue::Float(x) => Some(ParamScalar::Float(*x)),
        NodeValue::Str(s) => Some(ParamScalar::Str(s.as_str().into())),
        _ => None,
    }
}

/// Converts a config value (YAML-typed) to the declared kind.
fn from_node(spec: &ParamSpec, reflabel: &str, node: &Node, path: &str) -> Result<ParamValue> {
    let err = || kind_error(spec, reflabel, &node.source, path, node.shape());
    let v = match (&node.value, spec.kind) {
        (NodeValue::Null, _) => ParamValue::Null,
        // Structured values (upstream's `flag_values` mapping) reach a text parameter as JSON,
        // which the generator parses.
        (NodeValue::Map(_) | NodeValue::List(_), ParamKind::String) => {
            ParamValue::str(node_json(node).to_string())
        }
        (NodeValue::Map(_), _) => return Err(err()),
        // Text for a typed parameter: read as the command line would.
        (NodeValue::Str(s), k) if k != ParamKind::String && k != ParamKind::List => {
            return from_text(spec, reflabel, s, &node.source).map_err(|_| err());
        }
        (NodeValue::Bool(b), ParamKind::Bool) => ParamValue::Bool(*b),
        (NodeValue::Int(i @ (0 | 1)), ParamKind::Bool) => ParamValue::Bool(*i == 1),
        (NodeValue::Int(i), ParamKind::Int) => ParamValue::Int(*i),
        (NodeValue::Float(x), ParamKind::Int) => ParamValue::Int(int_from_f64(*x).ok_or_else(err)?),
        (NodeValue::Int(i), ParamKind::Float) => ParamValue::Float(*i as f64),
        (NodeValue::Float(x), ParamKind::Float) => ParamValue::Float(*x),
        (NodeValue::Str(s), ParamKind::String) => ParamValue::str(s.as_str()),
        (NodeValue::Int(i), ParamKind::String) => ParamValue::str(i.to_string()),
        (NodeValue::Float(x), ParamKind::String) => ParamValue::str(format!("{x:?}")),
        (NodeValue::Bool(b), ParamKind::String) => ParamValue::str(b.to_string()),
        (NodeValue::List(items), ParamKind::List) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let Some(s) = scalar_of(item) else {
                    return Err(kind_error(
                        spec,
                        reflabel,
                        &item.source,
                        &format!("{path}[{i}]"),
                        format!("{} as a list item", item.shape()),
                    ));
                };
                out.push(s);
            }
            ParamValue::List(out)
        }
        (_, ParamKind::List) => ParamValue::List(vec![scalar_of(node).ok_or_else(err)?]),
        _ => return Err(err()),
    };
    Ok(v)
}

/// Converts a command-line value (text) to the declared kind.
fn from_text(
    spec: &ParamSpec,
    reflabel: &str,
    raw: &str,
    origin: &Provenance,
) -> Result<ParamValue> {
    let path = match origin {
        Provenance::CommandLine(o) => o.clone(),
        _ => spec.name.to_string(),
    };
    let t = raw.trim();
    if t.is_empty() || is_none_word(t) || matches!(t, "null" | "Null" | "NULL" | "~") {
        return Ok(ParamValue::Null);
    }
    let err = || kind_error(spec, reflabel, origin, &path, format!("{raw:?}"));
    Ok(match spec.kind {
        ParamKind::Bool => ParamValue::Bool(parse_bool_text(t).ok_or_else(err)?),
        ParamKind::Int => ParamValue::Int(int_from_text(t).ok_or_else(err)?),
        ParamKind::Float => ParamValue::Float(t.parse::<f64>().map_err(|_| err())?),
        ParamKind::String => ParamValue::str(raw),
        ParamKind::List if t.starts_with('[') => {
            let node = parse_cli_value(t, origin)?;
            return from_node(spec, reflabel, &node, &path);
        }
        ParamKind::List => {
            let mut out = Vec::new();
            for item in t.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                let node = parse_cli_value(item, origin)?;
                out.push(scalar_of(&node).ok_or_else(err)?);
            }
            ParamValue::List(out)
        }
    })
}
