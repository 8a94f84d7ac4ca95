//! `mkrefs config template [REFLABEL...]`: a complete, commented configuration, as esorex's
//! `--create-config` writes one: every framework key with the comments of the built-in
//! `configs/mkrefs.yaml`, then one section per generator (the named ones, else every installed
//! one) with its framework keys and every parameter, its help, kind, what it accepts and its
//! default.
//!
//! The values are those in effect: built-in defaults, changed by `-c`, `-e`, `-p`, `--pall`
//! and `--pp` (environment variables expanded). So the file loads back with `-c` to the same
//! settings and parameters, and writing the template again from it gives the same text: the
//! header says nothing about where it was written from, and the comments come only from this
//! binary and its generators. A `$` that would start a variable is written `$$`.

use std::path::Path;
use std::process::ExitCode;

use crate::atomic;
use crate::cli::GlobalOptions;
use crate::commands::describe::textwrap;
use crate::config::constraints::allowed;
use crate::config::load::EMBEDDED_CONFIG;
use crate::config::settings::{ReflabelSection, Settings};
use crate::config::tree::{Node, NodeValue, flow_yaml};
use crate::config::value::{ParamScalar, ParamSpec, ParamValue};
use crate::registry::{Entry, Registry};

const HEADER: &str = "\
# mkrefs configuration written by `mkrefs config template`: every framework key, then one
# section per generator with every parameter it declares, all with the values that were in
# effect. Use it with `mkrefs -c FILE ...`; delete what you do not change, or keep it as a
# record of a campaign's settings.
";

/// The comment line that starts the embedded config's description of reflabel sections: the
/// framework part of the template ends with that description; the sections follow.
const SECTIONS_MARK: &str = "# Reflabel sections:";

pub fn run(
    registry: &Registry,
    global: &GlobalOptions,
    labels: &[String],
    output: Option<&Path>,
) -> Result<ExitCode, String> {
    let settings = crate::commands::run::load_settings(global)?;
    let entries = chosen(registry, &settings, labels)?;
    let text = render(&settings, &entries)?;
    match output {
        Some(path) => {
            atomic::write(path, text.as_bytes())?;
            tracing::info!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The named generators (reflabels, reftypes or comma lists, as on `run`'s command line),
/// else all.
fn chosen<'r>(
    registry: &'r Registry,
    settings: &Settings,
    labels: &[String],
) -> Result<Vec<&'r Entry>, String> {
    if labels.is_empty() {
        return Ok(registry.entries().iter().collect());
    }
    let known: Vec<(&str, &str)> = registry
        .entries()
        .iter()
        .map(|e| (e.reflabel.as_str(), e.reftype.as_str()))
        .collect();
    let reflabels =
        crate::config::resolve_reflabels(labels, settings, &known).map_err(|e| e.to_string())?;
    reflabels.iter().map(|r| registry.get(r)).collect()
}

/// The whole template.
fn render(settings: &Settings, entries: &[&Entry]) -> Result<String, String> {
    let mut out = String::from(HEADER);
    out.push('\n');
    out.push_str(&framework(&settings.tree));
    for e in entries {
        out.push('\n');
        out.push_str(&generator_section(e, settings.section(&e.reflabel))?);
        out.push_str(&other_section_keys(e, settings.tree.get(&e.reflabel)));
    }
    // Sections of reflabels whose generator is not written above stay as configured, so the
    // file still describes the whole configuration.
    for (name, node) in settings.tree.entries() {
        let is_section = settings.sections.contains_key(name);
        if is_section && !entries.iter().any(|e| &e.reflabel == name) && node.is_map() {
            out.push_str(&format!("\n{name}:\n"));
            for (key, child) in node.entries() {
                out.push_str(&format!("  {key}: {}\n", value_text(&child.value)));
            }
        }
    }
    Ok(out)
}

/// The embedded configuration from its first key to the end of its description of reflabel
/// sections, each value replaced by the value in effect; keys a section gained (a
/// `default_reflabels` entry, say) follow that section's own.
fn framework(tree: &Node) -> String {
    let lines: Vec<&str> = EMBEDDED_CONFIG.lines().collect();
    let first = lines
        .iter()
        .position(|l| is_key_line(l).is_some())
        .unwrap_or(0);
    // The comment block just above the first key belongs to it; the file's own header
    // (above that block's blank line) describes the embedded file, not this one.
    let start = lines[..first]
        .iter()
        .rposition(|l| l.trim().is_empty())
        .map_or(0, |i| i + 1);
    let mut out = String::new();
    // (section name, keys written) of the open top-level section.
    let mut open: Option<(String, Vec<String>)> = None;
    let mut in_sections_note = false;
    for line in &lines[start..] {
        if line.starts_with(SECTIONS_MARK) {
            in_sections_note = true;
        }
        if in_sections_note {
            if !line.starts_with('#') && !line.trim().is_empty() {
                break;
            }
            close_section(tree, &mut open, &mut out);
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let Some((indent, key, rest)) = is_key_line(line) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        if indent == 0 {
            close_section(tree, &mut open, &mut out);
        }
        let path = match (&mut open, indent) {
            (Some((section, keys)), i) if i > 0 => {
                keys.push(key.to_string());
                format!("{section}.{key}")
            }
            _ => key.to_string(),
        };
        if rest.is_empty() {
            // A section of its own.
            open = Some((key.to_string(), Vec::new()));
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let value = tree
            .get_path(&path)
            .map_or_else(|| rest.to_string(), |n| value_text(&n.value));
        out.push_str(&format!("{}{key}: {value}\n", " ".repeat(indent)));
    }
    close_section(tree, &mut open, &mut out);
    out
}

/// Writes the keys of the open section that the embedded file does not have.
fn close_section(tree: &Node, open: &mut Option<(String, Vec<String>)>, out: &mut String) {
    let Some((section, written)) = open.take() else {
        return;
    };
    let Some(node) = tree.get(&section) else {
        return;
    };
    let extra: Vec<String> = node
        .entries()
        .iter()
        .filter(|(k, _)| !written.contains(k))
        .map(|(k, n)| format!("  {k}: {}\n", value_text(&n.value)))
        .collect();
    // Before the blank lines and comments that introduce what follows the section.
    let mut lines: Vec<&str> = out.lines().collect();
    let keep = lines
        .iter()
        .rposition(|l| !(l.trim().is_empty() || l.trim_start().starts_with('#')))
        .map_or(0, |i| i + 1);
    let tail: Vec<&str> = lines.split_off(keep);
    let mut text = lines.join("\n");
    text.push('\n');
    text.push_str(&extra.concat());
    for line in tail {
        text.push_str(line);
        text.push('\n');
    }
    *out = text;
}

/// `  key: rest` of a block-style YAML line (not a comment): indent, key, the rest trimmed.
fn is_key_line(line: &str) -> Option<(usize, &str, &str)> {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.is_empty() {
        return None;
    }
    let indent = line.len() - trimmed.len();
    let (key, rest) = trimmed.split_once(':')?;
    let valid = key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (valid && !key.is_empty()).then_some((indent, key, rest.trim()))
}

/// One generator's section: its framework keys and every parameter, with help.
fn generator_section(e: &Entry, section: Option<&ReflabelSection>) -> Result<String, String> {
    let mut out = String::new();
    let summary = e.info.description.as_str().trim();
    let first = summary.split("\n\n").next().unwrap_or_default();
    out.push_str(&format!(
        "# {} (reftype {}), version {}, {}.\n",
        e.reflabel,
        e.reftype,
        e.info.version,
        e.origin.describe()
    ));
    out.push_str(&textwrap(first, 92, "# "));
    out.push_str(&format!("\n{}:\n", e.reflabel));
    let key = |v: Option<&crate::config::settings::Sourced<String>>, default: &str| {
        v.map_or_else(|| default.to_string(), |s| s.value.clone())
    };
    let framework_keys = [
        (
            "reftype",
            key(section.and_then(|s| s.reftype.as_ref()), &e.reftype),
        ),
        (
            "imtypes",
            key(
                section.and_then(|s| s.imtypes.as_ref()),
                &e.info.default_imtypes,
            ),
        ),
        (
            "ssbsteps",
            key(
                section.and_then(|s| s.ssbsteps.as_ref()),
                &e.info.default_ssbsteps,
            ),
        ),
        (
            "ssb_save_steps",
            key(
                section.and_then(|s| s.ssb_save_steps.as_ref()),
                &e.info.default_ssb_save_steps,
            ),
        ),
    ];
    for (name, value) in framework_keys {
        let value = match value.is_empty() {
            true => NodeValue::Null,
            false => NodeValue::Str(value),
        };
        out.push_str(&format!("  {name}: {}\n", value_text(&value)));
    }
    let effective = crate::config::resolve_params(&e.reflabel, &e.params, section, &[])
        .map_err(|err| err.to_string())?;
    for (spec, value) in e.params.iter().zip(&effective) {
        out.push_str(&param_comment(spec));
        out.push_str(&format!(
            "  {}: {}\n",
            spec.name,
            value_text(&param_node(&value.param.value))
        ));
    }
    Ok(out)
}

/// The keys of a generator's section that are neither framework keys nor parameters (its
/// `reffile4ssb` mapping), as configured.
fn other_section_keys(e: &Entry, node: Option<&Node>) -> String {
    const FRAMEWORK: [&str; 4] = ["reftype", "imtypes", "ssbsteps", "ssb_save_steps"];
    node.map(Node::entries)
        .unwrap_or_default()
        .iter()
        .filter(|(k, _)| !FRAMEWORK.contains(&k.as_str()) && !e.params.iter().any(|p| &p.name == k))
        .map(|(k, n)| format!("  {k}: {}\n", value_text(&n.value)))
        .collect()
}

/// `  # help ... (float, >= 0, default 3.0)` above a parameter.
fn param_comment(spec: &ParamSpec) -> String {
    let accepts = allowed(spec)
        .map(|a| format!(", accepts {a}"))
        .unwrap_or_default();
    let default = value_text(&param_node(&spec.default));
    let text = format!(
        "{} ({}{accepts}; default {default})",
        spec.help.trim(),
        spec.kind
    );
    format!("{}\n", textwrap(&text, 90, "  # "))
}

fn param_node(v: &ParamValue) -> NodeValue {
    let scalar = |s: &ParamScalar| match s {
        ParamScalar::Bool(b) => NodeValue::Bool(*b),
        ParamScalar::Int(i) => NodeValue::Int(*i),
        ParamScalar::Float(x) => NodeValue::Float(*x),
        ParamScalar::Str(s) => NodeValue::Str(s.clone()),
    };
    let node = |v| Node::new(v, crate::config::Provenance::BuiltinDefault);
    match v {
        ParamValue::Null => NodeValue::Null,
        ParamValue::Bool(b) => NodeValue::Bool(*b),
        ParamValue::Int(i) => NodeValue::Int(*i),
        ParamValue::Float(x) => NodeValue::Float(*x),
        ParamValue::Str(s) => NodeValue::Str(s.clone()),
        ParamValue::List(items) => NodeValue::List(items.iter().map(|s| node(scalar(s))).collect()),
    }
}

/// A value as flow YAML, with every `$` that would start a variable (or `$$`) doubled, since
/// loading expands them.
fn value_text(v: &NodeValue) -> String {
    let text = flow_yaml(v);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        out.push(c);
        if c == '$'
            && chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || matches!(n, '_' | '{' | '$'))
        {
            out.push('$');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_that_would_expand_are_doubled() {
        let v = NodeValue::Str("$HOME/x$".into());
        assert_eq!(value_text(&v), "$$HOME/x$");
        // `$$` reads back as one `$`, so each is doubled.
        assert_eq!(value_text(&NodeValue::Str("a$$b".into())), "a$$$$b");
    }

    #[test]
    fn key_lines_are_recognised() {
        assert_eq!(is_key_line("  a_b: 3"), Some((2, "a_b", "3")));
        assert_eq!(is_key_line("output:"), Some((0, "output", "")));
        assert_eq!(is_key_line("  # x: 3"), None);
    }
}
