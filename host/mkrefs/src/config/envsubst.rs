//! `$NAME` / `${NAME}` expansion over every string of the merged tree.
//!
//! Differences from upstream (`subenvvarplaceholder`, UPSTREAM.md "Configuration"), all deliberate:
//! strings inside lists are expanded too; `${NAME}` works; `$$` is a literal `$`; the value is
//! inserted literally (upstream used it as a regex replacement, so backslashes were mangled);
//! a name is matched whole, so `$FOO` never rewrites the start of `$FOOBAR`; and an unset
//! variable names the config key and its origin. A `$` not followed by a name, `{` or `$` stays
//! as it is, so regexes such as `\.fits$` need no escaping. Names start with a letter or `_`
//! (upstream's `\w+` also took `$1`, which now stays literal).

use super::error::{ConfigError, ConfigErrorKind, Result};
use super::tree::{Node, NodeValue};

/// Why one string could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub enum ExpandError {
    Unset(String),
    Syntax(String),
}

/// Expands every string in `node` and below. `path` is the key path of `node` (empty for the
/// root); it is only used in error messages.
pub fn expand_tree(
    node: &mut Node,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<()> {
    match &mut node.value {
        NodeValue::Str(s) => match expand_str(s, env) {
            Ok(new) => *s = new,
            Err(ExpandError::Unset(var)) => {
                return Err(ConfigError::from(ConfigErrorKind::UnsetEnvVar {
                    origin: node.source.clone(),
                    key_path: path.to_string(),
                    var,
                }));
            }
            Err(ExpandError::Syntax(message)) => {
                return Err(ConfigError::from(ConfigErrorKind::EnvSyntax {
                    origin: node.source.clone(),
                    key_path: path.to_string(),
                    message,
                }));
            }
        },
        NodeValue::List(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_tree(item, &format!("{path}[{i}]"), env)?;
            }
        }
        NodeValue::Map(entries) => {
            for (key, child) in entries.iter_mut() {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                expand_tree(child, &p, env)?;
            }
        }
        NodeValue::Null | NodeValue::Bool(_) | NodeValue::Int(_) | NodeValue::Float(_) => {}
    }
    Ok(())
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands `$NAME`, `${NAME}` and `$$` in one string.
pub fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some((_, '$')) => {
                chars.next();
                out.push('$');
            }
            Some((start, '{')) => {
                chars.next();
                let rest = &s[start + 1..];
                let Some(end) = rest.find('}') else {
                    return Err(ExpandError::Syntax(format!(
                        "'${{' without a closing '}}' in {s:?}; write $$ for a literal '$'"
                    )));
                };
                let name = &rest[..end];
                let valid = name.chars().next().is_some_and(is_name_start)
                    && name.chars().all(is_name_char);
                if !valid {
                    return Err(ExpandError::Syntax(format!(
                        "'${{{name}}}' is not a variable name (only ${{NAME}} is supported) in {s:?}"
                    )));
                }
                out.push_str(&env(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?);
                // Skip the name and the closing brace.
                for _ in 0..name.chars().count() + 1 {
                    chars.next();
                }
            }
            Some((start, c)) if is_name_start(c) => {
                let len = s[start..]
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(s.len() - start);
                let name = &s[start..start + len];
                out.push_str(&env(name).ok_or_else(|| ExpandError::Unset(name.to_string()))?);
                for _ in 0..name.chars().count() {
                    chars.next();
                }
            }
            _ => out.push('$'),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provenance::Provenance;
    use crate::config::tree::parse_document;
    use std::path::Path;

    fn env(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("foo".into()),
            "FOOBAR" => Some("foobar".into()),
            "BACK" => Some(r"C:\data\$1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_both_forms_and_whole_names() {
        assert_eq!(expand_str("$FOO/x", &env).unwrap(), "foo/x");
        assert_eq!(expand_str("${FOO}bar", &env).unwrap(), "foobar");
        assert_eq!(expand_str("$FOOBAR", &env).unwrap(), "foobar");
        assert_eq!(expand_str("$FOO-$FOOBAR", &env).unwrap(), "foo-foobar");
        assert_eq!(expand_str("a${EMPTY}b", &env).unwrap(), "ab");
    }

    #[test]
    fn dollar_escapes_and_literals() {
        assert_eq!(expand_str("cost $$5", &env).unwrap(), "cost $5");
        assert_eq!(expand_str("$$FOO", &env).unwrap(), "$FOO");
        assert_eq!(
            expand_str(r"(.*)_uncal\.fits$", &env).unwrap(),
            r"(.*)_uncal\.fits$"
        );
        assert_eq!(expand_str("a$ b $1", &env).unwrap(), "a$ b $1");
    }

    #[test]
    fn replacement_is_literal() {
        assert_eq!(expand_str("$BACK", &env).unwrap(), r"C:\data\$1");
    }

    #[test]
    fn unset_and_malformed() {
        assert_eq!(
            expand_str("$NOPE/x", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert_eq!(
            expand_str("${NOPE}", &env),
            Err(ExpandError::Unset("NOPE".into()))
        );
        assert!(matches!(
            expand_str("${FOO", &env),
            Err(ExpandError::Syntax(_))
        ));
        assert!(matches!(
            expand_str("${A:-b}", &env),
            Err(ExpandError::Syntax(_))
        ));
    }

    #[test]
    fn tree_expansion_reaches_lists_and_nested_maps() {
        let origin = Provenance::file(Path::new("c.yaml"));
        let mut doc = parse_document(
            "output:\n  dirs: [$FOO/a, '${FOOBAR}/b']\n  deep:\n    x: $FOO\n  n: 3\n",
            &origin,
        )
        .unwrap();
        expand_tree(&mut doc, "", &env).unwrap();
        let out = doc.get("output").unwrap();
        match &out.get("dirs").unwrap().value {
            NodeValue::List(items) => {
                assert_eq!(items[0].value, NodeValue::Str("foo/a".into()));
                assert_eq!(items[1].value, NodeValue::Str("foobar/b".into()));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            out.get("deep").unwrap().get("x").unwrap().value,
            NodeValue::Str("foo".into())
        );
    }

    #[test]
    fn unset_error_names_key_path_and_origin() {
        let origin = Provenance::file(Path::new("c.yaml"));
        let mut doc = parse_document("output:\n  dirs: [a, $NOPE]\n", &origin).unwrap();
        let err = expand_tree(&mut doc, "", &env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("c.yaml:2"), "{msg}");
        assert!(msg.contains("output.dirs[1]"), "{msg}");
        assert!(msg.contains("$NOPE"), "{msg}");
    }
}
