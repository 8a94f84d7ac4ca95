//! `-p key val`, `--pall key val` and `--pp section key val` (UPSTREAM.md, "Configuration").
//!
//! Values are read as YAML scalars ([`parse_cli_value`]), except that `None` means null here
//! (upstream made it the string "None"). `--pall` works (upstream always crashed), and also
//! reaches generator parameters that no section lists: see [`apply_pall`].

use super::aliases::{REFFILE4SSB, canonical_reftype};
use super::error::{ConfigError, ConfigErrorKind, Result, suggest};
use super::load::accepts_new_keys;
use super::provenance::Provenance;
use super::settings::{PallParam, is_framework_section};
use super::tree::{Node, NodeValue, parse_cli_value};

/// `-p key value`: sets an existing top-level key that is not a section.
pub fn apply_param(tree: &mut Node, key: &str, raw: &str) -> Result<()> {
    let source = Provenance::CommandLine(format!("-p {key}"));
    let value = parse_cli_value(raw, &source)?;
    let scalar_keys: Vec<String> = tree
        .entries()
        .iter()
        .filter(|(_, n)| !n.is_map())
        .map(|(k, _)| k.clone())
        .collect();
    let in_section = tree
        .entries()
        .iter()
        .find(|(_, n)| n.get(key).is_some())
        .map(|(s, _)| s.clone());
    match tree.get_mut(key) {
        None => Err(ConfigError::from(ConfigErrorKind::UnknownKey {
            origin: source,
            section: None,
            key: key.to_string(),
            suggestion: suggest(key, scalar_keys.iter().map(String::as_str)),
            known: Vec::new(),
            hint: match in_section {
                Some(s) => format!("'{key}' is a key of section '{s}': use --pp {s} {key} {raw}"),
                None => {
                    "-p sets top-level keys; use --pp <section> <key> <value> for others".into()
                }
            },
        })),
        Some(old) if old.is_map() => Err(ConfigError::from(ConfigErrorKind::IsSection {
            origin: source,
            key: key.to_string(),
        })),
        Some(old) => {
            *old = value;
            Ok(())
        }
    }
}

/// `--pall key value`: sets the key at top level (if a single value is there) and in every
/// section that has it. The value is also returned as a [`PallParam`] so that every selected
/// generator declaring the key gets it even when its section does not list it (the default
/// config lists no generator parameters). It is an error only if the key exists nowhere and
/// there is no reflabel section that a generator parameter could belong to; a key that no
/// selected generator declares either is reported later by [`super::check_pall`].
pub fn apply_pall(tree: &mut Node, key: &str, raw: &str) -> Result<PallParam> {
    let source = Provenance::CommandLine(format!("--pall {key}"));
    let value = parse_cli_value(raw, &source)?;
    let mut found = false;
    let mut has_reflabel_section = false;
    let mut all_keys: Vec<String> = Vec::new();
    let NodeValue::Map(entries) = &mut tree.value else {
        unreachable!("the config root is always a mapping");
    };
    for (name, node) in entries.iter_mut() {
        all_keys.push(name.clone());
        if name == key && !node.is_map() {
            *node = value.clone();
            found = true;
            continue;
        }
        if !node.is_map() {
            continue;
        }
        if !is_framework_section(name) {
            has_reflabel_section = true;
        }
        all_keys.extend(node.keys().map(String::from));
        if let Some(old) = node.get_mut(key)
            && !old.is_map()
        {
            *old = value.clone();
            found = true;
        }
    }
    if !found && !has_reflabel_section {
        return Err(ConfigError::from(ConfigErrorKind::PallNotFound {
            key: key.to_string(),
            suggestion: suggest(key, all_keys.iter().map(String::as_str)),
        }));
    }
    Ok(PallParam {
        key: key.to_string(),
        value,
        found_in_config: found,
    })
}

/// `--pp section key value`: sets one key of an existing section. Reflabel sections accept
/// new keys (they are checked against the generator later); framework sections do not.
pub fn apply_pp(tree: &mut Node, section: &str, key: &str, raw: &str) -> Result<()> {
    let source = Provenance::CommandLine(format!("--pp {section} {key}"));
    // `--pp reffile4ssb bpm FILE` sets what `reffile4ssb: {bpm: FILE}` in a file sets.
    let canonical = (section == REFFILE4SSB).then(|| canonical_reftype(key));
    let key = canonical.as_deref().unwrap_or(key);
    let value = parse_cli_value(raw, &source)?;
    let sections: Vec<String> = tree
        .entries()
        .iter()
        .filter(|(_, n)| n.is_map())
        .map(|(k, _)| k.clone())
        .collect();
    let Some(sec) = tree.get_mut(section) else {
        return Err(ConfigError::from(ConfigErrorKind::UnknownKey {
            origin: source,
            section: None,
            key: section.to_string(),
            suggestion: suggest(section, sections.iter().map(String::as_str)),
            known: sections,
            hint: "--pp needs a section that the config has".into(),
        }));
    };
    if sec.is_null() && !is_framework_section(section) {
        // An empty reflabel section (`dark:` with nothing under it).
        *sec = Node::new(NodeValue::Map(Vec::new()), sec.source.clone());
    }
    if !sec.is_map() {
        return Err(ConfigError::from(ConfigErrorKind::InvalidValue {
            origin: source,
            key_path: section.to_string(),
            expected: "a section".into(),
            found: sec.shape(),
            hint: format!("use -p {section} <value> for a top-level value"),
        }));
    }
    let keys: Vec<String> = sec.keys().map(String::from).collect();
    match sec.get_mut(key) {
        Some(old) if old.is_map() && !value.is_null() => {
            Err(ConfigError::from(ConfigErrorKind::ShapeClash {
                origin: source,
                section: Some(section.to_string()),
                key: key.to_string(),
                found: value.shape(),
                expected: "a section (mapping)".into(),
                existing: old.source.clone(),
            }))
        }
        Some(old) => {
            *old = value;
            Ok(())
        }
        None if accepts_new_keys(section) => {
            sec.insert(key, value);
            Ok(())
        }
        None => Err(ConfigError::from(ConfigErrorKind::UnknownKey {
            origin: source,
            section: Some(section.to_string()),
            key: key.to_string(),
            suggestion: suggest(key, keys.iter().map(String::as_str)),
            known: keys,
            hint: "--pp can only change existing keys of this section".into(),
        })),
    }
}
