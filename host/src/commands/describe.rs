//! `mkrefs describe <reflabel>`: what a generator does and every parameter it accepts.

use std::process::ExitCode;

use mkrefs_plugin_api::ParamValue;

use crate::cli::GlobalOptions;
use crate::registry::Registry;

fn show_default(v: &ParamValue) -> String {
    match v {
        ParamValue::Str(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

pub fn run(registry: &Registry, global: &GlobalOptions, label: &str) -> Result<ExitCode, String> {
    let _ = global;
    let reflabel = label.to_string();
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
