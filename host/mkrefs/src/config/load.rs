//! Choosing and reading the main config, filling built-in defaults, merging extra files.
//!
//! The merge follows upstream's `addnewparams(requireParamExists=True)` (UPSTREAM.md,
//! "Configuration"): a top-level key must already exist; a section is merged key by key; a value one
//! level further down is replaced whole; a section where a single value is expected (or the
//! reverse) is an error. One deliberate difference: reflabel sections and `default_reflabels`
//! accept new keys, because generator parameters are not listed in the default config (the
//! generator declares them) and `resolve_params` rejects any that the generator does not
//! declare, with a suggestion.

use std::path::{Path, PathBuf};

use super::aliases::normalize_document;
use super::error::{ConfigError, ConfigErrorKind, Result, suggest};
use super::provenance::Provenance;
use super::settings::{builtin_defaults, is_framework_section};
use super::tree::{Node, parse_document};

/// The default configuration, compiled in so `mkrefs` works without any file.
pub const EMBEDDED_CONFIG: &str = include_str!("../../../../configs/mkrefs.yaml");

/// Which main configuration is used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MainConfig {
    /// A file; `via` is empty for `-c`, else names the variable that chose it.
    File { path: PathBuf, via: String },
    /// The embedded `configs/mkrefs.yaml`.
    Embedded,
}

/// `-c` path, else `$MKREFS_CONFIG`, else upstream's `$JWST_MKREFS_CONFIGFILE` (both only when
/// non-empty), else the embedded default.
pub fn choose_main_config(
    cfgfile: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
) -> MainConfig {
    if let Some(p) = cfgfile {
        return MainConfig::File {
            path: p.to_path_buf(),
            via: String::new(),
        };
    }
    for var in ["MKREFS_CONFIG", "JWST_MKREFS_CONFIGFILE"] {
        if let Some(v) = env(var).filter(|v| !v.trim().is_empty()) {
            return MainConfig::File {
                path: PathBuf::from(v),
                via: format!(" (named by ${var})"),
            };
        }
    }
    MainConfig::Embedded
}

fn read_file(path: &Path, via: &str) -> Result<Node> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        ConfigError::from(ConfigErrorKind::Io {
            path: path.to_path_buf(),
            via: via.to_string(),
            source,
        })
    })?;
    let mut doc = parse_document(&text, &Provenance::file(path))?;
    normalize_document(&mut doc)?;
    Ok(doc)
}

/// Reads the main config and fills framework keys it lacks from the built-in defaults.
pub fn read_main(main: &MainConfig) -> Result<Node> {
    let mut tree = match main {
        MainConfig::File { path, via } => read_file(path, via)?,
        MainConfig::Embedded => {
            let mut doc = parse_document(EMBEDDED_CONFIG, &Provenance::Embedded { line: None })?;
            normalize_document(&mut doc)?;
            doc
        }
    };
    fill_defaults(&mut tree, builtin_defaults());
    Ok(tree)
}

/// Adds missing top-level keys and missing keys of framework sections; an empty (null)
/// framework section takes all its defaults. A key present with another shape is left for `Settings::from_tree` to report with its origin.
fn fill_defaults(tree: &mut Node, defaults: Node) {
    let super::tree::NodeValue::Map(entries) = defaults.value else {
        return;
    };
    for (key, default) in entries {
        match tree.get_mut(&key) {
            None => tree.insert(&key, default),
            // `output:` with nothing under it means "all defaults", not "no section".
            Some(existing) if existing.is_null() && default.is_map() => *existing = default,
            Some(existing) if existing.is_map() && default.is_map() => {
                for (k, v) in default.entries() {
                    if existing.get(k).is_none() {
                        existing.insert(k, v.clone());
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// True where an extra file or `--pp` may add a key the main config lacks.
pub(crate) fn accepts_new_keys(section: &str) -> bool {
    section == "default_reflabels" || !is_framework_section(section)
}

/// A section where a single value is expected, or the reverse. Null is compatible with both,
/// so `ssbdir:` (empty) can become a path and a nested `reffile4ssb:` can be cleared.
fn shapes_clash(old: &Node, new: &Node) -> bool {
    old.is_map() != new.is_map() && !old.is_null() && !new.is_null()
}

fn shape_name(n: &Node) -> String {
    if n.is_map() {
        "a section (mapping)".into()
    } else {
        "a single value or list".into()
    }
}

/// Merges one extra config file into the tree.
pub fn merge_extra(tree: &mut Node, extra: Node) -> Result<()> {
    let super::tree::NodeValue::Map(entries) = extra.value else {
        return Ok(());
    };
    for (key, new) in entries {
        let top_keys: Vec<String> = tree.keys().map(String::from).collect();
        let Some(old) = tree.get_mut(&key) else {
            return Err(ConfigError::from(ConfigErrorKind::UnknownKey {
                origin: new.source.clone(),
                section: None,
                suggestion: suggest(&key, top_keys.iter().map(String::as_str)),
                key,
                known: Vec::new(),
                hint: "an extra config may only change keys that the main config (or the built-in defaults) has; add new sections to the main config".into(),
            }));
        };
        if shapes_clash(old, &new) || (old.is_map() && new.is_null()) {
            return Err(ConfigError::from(ConfigErrorKind::ShapeClash {
                origin: new.source.clone(),
                section: None,
                key,
                found: new.shape(),
                expected: shape_name(old),
                existing: old.source.clone(),
            }));
        }
        if !new.is_map() {
            *old = new;
            continue;
        }
        if old.is_null() {
            // A section the main config left empty.
            *old = Node::new(super::tree::NodeValue::Map(Vec::new()), new.source.clone());
        }
        let open = accepts_new_keys(&key);
        let super::tree::NodeValue::Map(sub_entries) = new.value else {
            unreachable!("checked is_map above");
        };
        for (k2, v2) in sub_entries {
            let section_keys: Vec<String> = old.keys().map(String::from).collect();
            match old.get_mut(&k2) {
                Some(o2) => {
                    if shapes_clash(o2, &v2) {
                        return Err(ConfigError::from(ConfigErrorKind::ShapeClash {
                            origin: v2.source.clone(),
                            section: Some(key),
                            key: k2,
                            found: v2.shape(),
                            expected: shape_name(o2),
                            existing: o2.source.clone(),
                        }));
                    }
                    *o2 = v2;
                }
                None if open => old.insert(&k2, v2),
                None => {
                    return Err(ConfigError::from(ConfigErrorKind::UnknownKey {
                        origin: v2.source.clone(),
                        section: Some(key),
                        suggestion: suggest(&k2, section_keys.iter().map(String::as_str)),
                        key: k2,
                        known: section_keys,
                        hint: "an extra config may only change existing keys".into(),
                    }));
                }
            }
        }
    }
    Ok(())
}

/// Reads and merges the `-e` files in order.
pub fn merge_extra_files(tree: &mut Node, files: &[PathBuf]) -> Result<()> {
    for path in files {
        let extra = read_file(path, "")?;
        merge_extra(tree, extra)?;
    }
    Ok(())
}
