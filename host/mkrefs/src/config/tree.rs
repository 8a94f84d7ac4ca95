//! The merged configuration as a tree of values that each remember where they came from.
//!
//! Merging happens on this tree rather than on typed structs so that extra files and
//! command-line overrides can follow upstream's key-by-key rules, and so that every error found
//! later (a bad regex, a mistyped parameter) can still name the file and line it came from.

use super::error::{ConfigError, ConfigErrorKind, Result};
use super::provenance::Provenance;

/// One value of the configuration with its origin.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: NodeValue,
    pub source: Provenance,
}

/// The YAML data model, restricted to what configs use. Mapping keys are strings and keep
/// their file order.
#[derive(Clone, Debug, PartialEq)]
pub enum NodeValue {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Node>),
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn new(value: NodeValue, source: Provenance) -> Self {
        Node { value, source }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            NodeValue::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, n)| n),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match &mut self.value {
            NodeValue::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, n)| n),
            _ => None,
        }
    }

    /// Looks up `section.key`-style paths.
    pub fn get_path(&self, path: &str) -> Option<&Node> {
        path.split('.').try_fold(self, |node, key| node.get(key))
    }

    pub fn entries(&self) -> &[(String, Node)] {
        match &self.value {
            NodeValue::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries().iter().map(|(k, _)| k.as_str())
    }

    pub fn is_map(&self) -> bool {
        matches!(self.value, NodeValue::Map(_))
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, NodeValue::Null)
    }

    /// Sets `key` in a mapping, replacing an existing entry in place or appending.
    pub(crate) fn insert(&mut self, key: &str, node: Node) {
        if let NodeValue::Map(entries) = &mut self.value {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, old)) => *old = node,
                None => entries.push((key.to_string(), node)),
            }
        }
    }

    /// A short description of the value's shape for error messages.
    pub fn shape(&self) -> String {
        match &self.value {
            NodeValue::Null => "null".into(),
            NodeValue::Bool(b) => format!("the bool {b}"),
            NodeValue::Int(i) => format!("the integer {i}"),
            NodeValue::Float(x) => format!("the number {x:?}"),
            NodeValue::Str(s) => format!("the string {s:?}"),
            NodeValue::List(_) => "a list".into(),
            NodeValue::Map(_) => "a mapping".into(),
        }
    }

    /// The tree as YAML with the origin of every scalar as a trailing comment, for
    /// `--verbose` dumps and for telling the user where a surprising value came from.
    pub fn to_annotated_yaml(&self) -> String {
        let mut out = String::new();
        write_annotated(self, 0, &mut out);
        out
    }
}

fn scalar_yaml(v: &NodeValue) -> String {
    match v {
        NodeValue::Null => "null".into(),
        NodeValue::Bool(b) => b.to_string(),
        NodeValue::Int(i) => i.to_string(),
        NodeValue::Float(x) => format!("{x:?}"),
        NodeValue::Str(s) => {
            let plain = serde_yaml::to_string(s).unwrap_or_else(|_| format!("{s:?}"));
            plain.trim_end().to_string()
        }
        NodeValue::List(items) => {
            let parts: Vec<String> = items.iter().map(|n| scalar_yaml(&n.value)).collect();
            format!("[{}]", parts.join(", "))
        }
        NodeValue::Map(_) => "{...}".into(),
    }
}

/// A value as one line of YAML in flow style (`[a, b]`, `{k: v}`), which reads back to the
/// same value: strings that YAML would read as something else, or that break a flow
/// collection or the line, are double-quoted.
pub(crate) fn flow_yaml(v: &NodeValue) -> String {
    flow(v, false)
}

fn flow(v: &NodeValue, in_collection: bool) -> String {
    match v {
        NodeValue::Float(x) if x.is_nan() => ".nan".into(),
        NodeValue::Float(x) if x.is_infinite() => if *x > 0.0 { ".inf" } else { "-.inf" }.into(),
        NodeValue::Str(s) => {
            let plain = serde_yaml::to_string(s).unwrap_or_default();
            let plain = plain.trim_end();
            let breaks = plain.contains('\n')
                || plain.is_empty()
                || (in_collection && s.contains([',', '[', ']', '{', '}', '#', ':']));
            match breaks {
                true => serde_json::to_string(s).unwrap_or_default(),
                false => plain.to_string(),
            }
        }
        NodeValue::List(items) => {
            let parts: Vec<String> = items.iter().map(|n| flow(&n.value, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        NodeValue::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, n)| {
                    format!(
                        "{}: {}",
                        flow(&NodeValue::Str(k.clone()), true),
                        flow(&n.value, true)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => scalar_yaml(other),
    }
}

fn write_annotated(node: &Node, indent: usize, out: &mut String) {
    for (key, child) in node.entries() {
        let pad = " ".repeat(indent);
        match &child.value {
            NodeValue::Map(entries) if !entries.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                write_annotated(child, indent + 2, out);
            }
            NodeValue::Map(_) => out.push_str(&format!("{pad}{key}: {{}}  # {}\n", child.source)),
            other => out.push_str(&format!(
                "{pad}{key}: {}  # {}\n",
                scalar_yaml(other),
                child.source
            )),
        }
    }
}

/// True for the spellings that mean "no value" besides YAML's own null: upstream users write
/// `None` (PyYAML made that the *string* "None", which every consumer then had to special-case).
pub(crate) fn is_none_word(s: &str) -> bool {
    matches!(s, "None" | "none" | "NONE")
}

/// Parses a whole config file into a tree. The top level must be a mapping (an empty file is
/// an empty mapping). Strings `None`/`none` become null.
pub fn parse_document(text: &str, origin: &Provenance) -> Result<Node> {
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        ConfigError::from(ConfigErrorKind::Yaml {
            origin: origin.at_line(e.location().map(|l| l.line())),
            message: e.to_string(),
        })
    })?;
    let lines: Vec<&str> = text.lines().collect();
    let mut path = Vec::new();
    let node = convert(value, origin, &lines, &mut path)?;
    match node.value {
        NodeValue::Map(_) => Ok(node),
        NodeValue::Null => Ok(Node::new(NodeValue::Map(Vec::new()), origin.clone())),
        _ => Err(ConfigError::from(ConfigErrorKind::NotAMapping {
            origin: origin.clone(),
            what: "the whole file".into(),
            found: node.shape(),
        })),
    }
}

fn convert(
    value: serde_yaml::Value,
    origin: &Provenance,
    lines: &[&str],
    path: &mut Vec<String>,
) -> Result<Node> {
    use serde_yaml::Value as Y;
    let source = origin.at_line(key_line(lines, path));
    let v = match value {
        Y::Null => NodeValue::Null,
        Y::Bool(b) => NodeValue::Bool(b),
        Y::Number(n) => match n.as_i64() {
            Some(i) => NodeValue::Int(i),
            None => NodeValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Y::String(s) if is_none_word(&s) => NodeValue::Null,
        Y::String(s) => NodeValue::Str(s),
        Y::Sequence(items) => NodeValue::List(
            items
                .into_iter()
                .map(|item| convert(item, origin, lines, path))
                .collect::<Result<_>>()?,
        ),
        Y::Mapping(map) => {
            let mut entries: Vec<(String, Node)> = Vec::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Bool(b) => b.to_string(),
                    Y::Number(n) => n.to_string(),
                    other => {
                        return Err(ConfigError::from(ConfigErrorKind::Yaml {
                            origin: source,
                            message: format!(
                                "mapping keys must be plain words, found {other:?} under '{}'",
                                path.join(".")
                            ),
                        }));
                    }
                };
                path.push(key.clone());
                let child = convert(v, origin, lines, path)?;
                path.pop();
                entries.push((key, child));
            }
            NodeValue::Map(entries)
        }
        Y::Tagged(tagged) => return convert(tagged.value, origin, lines, path),
    };
    Ok(Node::new(v, source))
}

/// The 1-based line of the block-style key at `path`, found by indentation. Best-effort: flow
/// mappings, anchors and multi-document files give `None`, which only costs the line number.
fn key_line(lines: &[&str], path: &[String]) -> Option<usize> {
    if path.is_empty() {
        return None;
    }
    let mut parent_indent: isize = -1;
    let mut start = 0;
    let mut found = None;
    for seg in path {
        let mut child_indent: Option<usize> = None;
        let mut hit = None;
        for (i, line) in lines.iter().enumerate().skip(start) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with("---") {
                continue;
            }
            let indent = line.len() - trimmed.len();
            if indent as isize <= parent_indent {
                break;
            }
            let ci = *child_indent.get_or_insert(indent);
            if indent == ci && key_matches(trimmed, seg) {
                hit = Some((i, indent));
                break;
            }
        }
        let (i, indent) = hit?;
        parent_indent = indent as isize;
        start = i + 1;
        found = Some(i + 1);
    }
    found
}

fn key_matches(trimmed: &str, key: &str) -> bool {
    let rest = if let Some(r) = trimmed.strip_prefix(key) {
        r
    } else if let Some(r) = trimmed
        .strip_prefix('"')
        .and_then(|r| r.strip_prefix(key))
        .and_then(|r| r.strip_prefix('"'))
    {
        r
    } else if let Some(r) = trimmed
        .strip_prefix('\'')
        .and_then(|r| r.strip_prefix(key))
        .and_then(|r| r.strip_prefix('\''))
    {
        r
    } else {
        return false;
    };
    let rest = rest.trim_start_matches([' ', '\t']);
    rest.starts_with(':') && (rest.len() == 1 || rest[1..].starts_with([' ', '\t']))
}

/// The option text of a command-line origin (`-p x`), for messages that already name the origin.
pub(crate) fn option_text(source: &Provenance) -> String {
    match source {
        Provenance::CommandLine(o) => o.clone(),
        other => other.to_string(),
    }
}

/// Parses a command-line value the way a YAML scalar would be read: `5` is an integer, `2.5`
/// a float, `true` a bool, `[a, b]` a list, `None`/`none`/`null`/`~`/empty are null, and
/// anything else (including text YAML would read as a mapping or a comment) is a string.
pub fn parse_cli_value(raw: &str, source: &Provenance) -> Result<Node> {
    let t = raw.trim();
    if t.is_empty() || is_none_word(t) || matches!(t, "null" | "Null" | "NULL" | "~") {
        return Ok(Node::new(NodeValue::Null, source.clone()));
    }
    if t.starts_with('[') {
        let value: serde_yaml::Value = serde_yaml::from_str(t).map_err(|e| {
            ConfigError::from(ConfigErrorKind::InvalidValue {
                origin: source.clone(),
                key_path: option_text(source),
                expected: "a YAML flow list such as [a, b]".into(),
                found: format!("{raw:?} ({e})"),
                hint: String::new(),
            })
        })?;
        let node = convert(value, source, &[], &mut Vec::new())?;
        if let NodeValue::List(items) = &node.value
            && items.iter().any(|i| matches!(i.value, NodeValue::Map(_)))
        {
            return Err(ConfigError::from(ConfigErrorKind::InvalidValue {
                origin: source.clone(),
                key_path: option_text(source),
                expected: "a list of plain values".into(),
                found: format!("{raw:?}"),
                hint: String::new(),
            }));
        }
        return Ok(node);
    }
    let value = match serde_yaml::from_str::<serde_yaml::Value>(t) {
        Ok(v @ (serde_yaml::Value::Bool(_) | serde_yaml::Value::Number(_))) => {
            convert(v, source, &[], &mut Vec::new())?.value
        }
        // Quoted text loses its quotes, as YAML would read it.
        Ok(serde_yaml::Value::String(s)) if t.starts_with(['"', '\'']) => NodeValue::Str(s),
        _ => NodeValue::Str(t.to_string()),
    };
    Ok(Node::new(value, source.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cli(raw: &str) -> NodeValue {
        parse_cli_value(raw, &Provenance::CommandLine("-p x".into()))
            .unwrap()
            .value
    }

    #[test]
    fn cli_values_are_typed_like_yaml_scalars() {
        assert_eq!(cli("5"), NodeValue::Int(5));
        assert_eq!(cli("2.5"), NodeValue::Float(2.5));
        assert_eq!(cli("true"), NodeValue::Bool(true));
        assert_eq!(cli("True"), NodeValue::Bool(true));
        for null in ["None", "none", "null", "~", "", "  "] {
            assert_eq!(cli(null), NodeValue::Null, "{null:?}");
        }
        assert_eq!(cli("hello"), NodeValue::Str("hello".into()));
        assert_eq!(cli("a: b"), NodeValue::Str("a: b".into()));
        assert_eq!(cli("#x"), NodeValue::Str("#x".into()));
        assert_eq!(cli("'5'"), NodeValue::Str("5".into()));
        assert_eq!(
            cli("2019-04-01 00:00:00"),
            NodeValue::Str("2019-04-01 00:00:00".into())
        );
        match cli("[a, 2]") {
            NodeValue::List(items) => {
                assert_eq!(items[0].value, NodeValue::Str("a".into()));
                assert_eq!(items[1].value, NodeValue::Int(2));
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_cli_value("[a, {b: 1}]", &Provenance::BuiltinDefault).is_err());
        assert!(parse_cli_value("[a, b", &Provenance::BuiltinDefault).is_err());
    }

    #[test]
    fn files_map_none_to_null_and_keep_lines() {
        let text = "a: None\nsec:\n  # comment\n  b: none\n  c: [x, None]\n  d: 'none'\n  a: 1\n";
        let origin = Provenance::file(Path::new("/cfg/x.yaml"));
        let doc = parse_document(text, &origin).unwrap();
        assert!(doc.get("a").unwrap().is_null());
        let sec = doc.get("sec").unwrap();
        assert!(sec.get("b").unwrap().is_null());
        match &sec.get("c").unwrap().value {
            NodeValue::List(items) => assert!(items[1].is_null()),
            other => panic!("{other:?}"),
        }
        assert!(sec.get("d").unwrap().is_null());
        assert_eq!(doc.get("a").unwrap().source.line(), Some(1));
        assert_eq!(sec.get("b").unwrap().source.line(), Some(4));
        // The nested 'a' is found under its own section, not at the top-level 'a'.
        assert_eq!(sec.get("a").unwrap().source.line(), Some(7));
        assert_eq!(
            sec.get("a").unwrap().source.to_string(),
            "/cfg/x.yaml:7".to_string()
        );
    }

    #[test]
    fn top_level_must_be_a_mapping() {
        let origin = Provenance::file(Path::new("x.yaml"));
        assert!(matches!(
            parse_document("- a\n- b\n", &origin).unwrap_err().kind(),
            ConfigErrorKind::NotAMapping { .. }
        ));
        assert!(parse_document("", &origin).unwrap().is_map());
        let err = parse_document("a: [1,\n", &origin).unwrap_err().to_string();
        assert!(err.starts_with("x.yaml"), "{err}");
    }

    #[test]
    fn annotated_dump_names_sources() {
        let origin = Provenance::file(Path::new("m.yaml"));
        let doc = parse_document("output:\n  outrootdir: /x\n", &origin).unwrap();
        let dump = doc.to_annotated_yaml();
        assert!(dump.contains("outrootdir: /x  # m.yaml:2"), "{dump}");
    }
}
