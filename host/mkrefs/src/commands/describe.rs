//! `mkrefs describe <reflabel>`: what a generator does and every parameter it accepts, with
//! the value the configuration (`-c`, `-e`, `-p`, `--pall`, `--pp`) gives it and where that
//! value came from, as esorex's `--man-page` with a config file does.

use std::process::ExitCode;

use crate::config::constraints::allowed;
use crate::config::params::ResolvedParam;
use crate::config::value::{ParamSpec, ParamValue};

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
    // The effective values: a configuration that does not load, or sets a parameter wrongly,
    // is an error here as it would be for a run.
    let settings = crate::commands::run::load_settings(global)?;
    let effective =
        crate::config::resolve_params(&e.reflabel, &e.params, settings.section(&e.reflabel), &[])
            .map_err(|err| err.to_string())?;
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
    match &e.combine {
        Some(rule) if rule.dq_min > 0 => println!(
            "Final combination: {} (a DQ flag kept where {} files set it)",
            rule.method, rule.dq_min
        ),
        Some(rule) => println!("Final combination: {}", rule.method),
        None => println!("Final combination: the host's rule for {}", e.reftype),
    }
    println!();
    println!(
        "Parameters (config section '{}', or on the command line as --<name> or --{}.<name>):",
        e.reflabel, e.reflabel
    );
    let width = e.params.iter().map(|p| p.name.len()).max().unwrap_or(0);
    for (p, value) in e.params.iter().zip(&effective) {
        println!("{}", param_line(p, width));
        println!("      {}", effective_line(value));
        println!("{}", textwrap(p.help.as_str(), 88, "      "));
        if let Some(long) = allowed(p).filter(|a| a.len() > LONG_ALLOWED) {
            // Spaced so that the list wraps.
            let spaced = long.replace('|', " | ");
            println!("{}", textwrap(&format!("accepts: {spaced}"), 88, "      "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Choice lists longer than this (DQ mnemonics) go below the help, not in the header line.
const LONG_ALLOWED: usize = 40;

/// `  method  string  stack|ramp  default "stack"`: name, kind, what it accepts, default.
fn param_line(p: &ParamSpec, width: usize) -> String {
    let accepts = allowed(p)
        .filter(|a| a.len() <= LONG_ALLOWED)
        .map(|a| format!("{a}  "))
        .unwrap_or_default();
    format!(
        "  {:width$}  {:6}  {accepts}default {}",
        p.name.as_str(),
        p.kind.name(),
        show_default(&p.default)
    )
}

/// `= 5.0  (from my.yaml:12)`: the value a run would use and where it came from.
pub(crate) fn effective_line(r: &ResolvedParam) -> String {
    let from = match &r.source {
        crate::config::Provenance::GeneratorDefault(_) => "the generator's default".to_string(),
        other => format!("from {other}"),
    };
    format!("= {}  ({from})", show_default(&r.param.value))
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
pub(crate) fn textwrap(text: &str, width: usize, indent: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{Bound, Constraints, ParamKind};

    #[test]
    fn a_parameter_line_shows_what_it_accepts() {
        let method = ParamSpec {
            name: "method".into(),
            kind: ParamKind::String,
            default: ParamValue::str("stack"),
            help: String::new(),
            constraints: Constraints {
                choices: vec!["stack".into(), "ramp".into()],
                ..Constraints::default()
            },
        };
        assert_eq!(
            param_line(&method, 8),
            "  method    string  stack|ramp  default \"stack\""
        );
        let iters = ParamSpec {
            name: "iters".into(),
            kind: ParamKind::Int,
            default: ParamValue::Int(3),
            help: String::new(),
            constraints: Constraints {
                minimum: Some(Bound {
                    value: 1.0,
                    inclusive: true,
                }),
                ..Constraints::default()
            },
        };
        assert_eq!(param_line(&iters, 5), "  iters  int     >= 1  default 3");
        let free = ParamSpec {
            constraints: Constraints::default(),
            ..iters
        };
        assert_eq!(param_line(&free, 5), "  iters  int     default 3");
    }
}
