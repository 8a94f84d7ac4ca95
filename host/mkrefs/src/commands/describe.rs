//! `mkrefs describe <reflabel>`: what a generator does and every parameter it accepts.

use std::process::ExitCode;

use crate::config::value::ParamValue;

use crate::cli::GlobalOptions;
use crate::registry::Registry;

fn show_default(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

pub fn run(registry: &Registry, global: &GlobalOptions, label: &str) -> Result<ExitCode, String> {
    let reflabel = resolve_label(registry, global, label);
    let e = registry.get(&reflabel)?;
    println!(
        "{} (reftype {}), version {}, {}",
        e.reflabel,
        e.reftype,
        e.info.version,
        e.origin.describe()
    );
    println!();
    for para in e.info.description.as_str().trim().split("\n\n") {
        println!("{}\n", textwrap(para.trim(), 92, ""));
    }
    let or_none = |s: &str| {
        if s.is_empty() {
            "none".to_string()
        } else {
            s.to_string()
        }
    };
    println!(
        "Defaults: imtypes {}; ssbsteps {}; ssb_save_steps {}",
        or_none(&e.info.default_imtypes),
        or_none(&e.info.default_ssbsteps),
        or_none(&e.info.default_ssb_save_steps)
    );
    println!();
    println!(
        "Parameters (config section '{}', or on the command line as --<name> or --{}.<name>):",
        e.reflabel, e.reflabel
    );
    let width = e.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for p in &e.params {
        println!(
            "  {:width$}  {:6}  default {}",
            p.name.as_str(),
            p.kind.name(),
            show_default(&p.default)
        );
        println!("{}", textwrap(p.help.as_str(), 88, "      "));
    }
    Ok(ExitCode::SUCCESS)
}

/// A reftype alias (`default_reflabels`) names its reflabel; without a loadable
/// configuration the word is taken as it is.
fn resolve_label(registry: &Registry, global: &GlobalOptions, label: &str) -> String {
    if registry.find(label).is_some() {
        return label.to_string();
    }
    let Ok(settings) = crate::commands::run::load_settings(global) else {
        return label.to_string();
    };
    let known: Vec<(&str, &str)> = registry
        .entries()
        .iter()
        .map(|e| (e.reflabel.as_str(), e.reftype.as_str()))
        .collect();
    crate::config::resolve_reflabels(&[label.to_string()], &settings, &known)
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or_else(|| label.to_string())
}

/// Wraps text at word boundaries, indenting every line.
fn textwrap(text: &str, width: usize, indent: &str) -> String {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(format!("{indent}{line}"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(format!("{indent}{line}"));
    }
    lines.join("\n")
}
