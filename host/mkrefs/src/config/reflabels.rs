//! Which reflabels a run's positional tokens select.
//!
//! Upstream only took exact members of the config's `reflabels` list (UPSTREAM.md, "Reflabels and generator parameters"); the
//! documented comma lists and reftype aliases (`default_reflabels`) were never implemented.
//! Here a token is a reflabel, or a reftype named in `default_reflabels` (case-insensitive;
//! failing that, the reftype of exactly one installed generator), or a comma list of those.
//! A reflabel counts if the config lists it or a generator provides it. Duplicates are
//! dropped, keeping the first occurrence, so no job runs twice.

use super::error::{ConfigError, ConfigErrorKind, Result, suggest};
use super::provenance::Provenance;
use super::settings::Settings;

/// `(reflabel, reftype)` of each installed generator.
pub type KnownGenerators<'a> = [(&'a str, &'a str)];

fn is_candidate(item: &str, settings: &Settings, known: &KnownGenerators) -> bool {
    settings.reflabels.iter().any(|r| r == item) || known.iter().any(|(r, _)| *r == item)
}

/// What one comma item names: the reflabel, and how it was reached (for messages).
fn lookup(item: &str, settings: &Settings, known: &KnownGenerators) -> Option<(String, String)> {
    if is_candidate(item, settings, known) {
        return Some((item.to_string(), String::new()));
    }
    let Some(target) = settings.default_reflabels.get(&item.to_ascii_lowercase()) else {
        // Last resort: the reftype of exactly one installed generator.
        let mut by_type = known.iter().filter(|(_, t)| t.eq_ignore_ascii_case(item));
        return match (by_type.next(), by_type.next()) {
            (Some((r, t)), None) => Some((r.to_string(), format!(" (reftype '{t}')"))),
            _ => None,
        };
    };
    let via = format!(
        " (reftype '{item}' in default_reflabels{})",
        settings
            .source_of(&format!("default_reflabels.{}", item.to_ascii_lowercase()))
            .map(|s| format!(" of {s}"))
            .unwrap_or_default()
    );
    Some((target.clone(), via))
}

fn items(token: &str) -> impl Iterator<Item = &str> {
    token.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// True if the positional `token` selects reflabels rather than naming an input file: it or
/// any item of its comma list is a reflabel or a configured reftype alias. A comma list with a
/// misspelt item still counts, so that [`resolve_reflabels`] reports the misspelling instead
/// of the caller reporting a missing file.
pub fn is_reflabel_token(token: &str, settings: &Settings, known: &KnownGenerators) -> bool {
    items(token).any(|item| lookup(item, settings, known).is_some())
}

/// The closest reflabel or reftype alias to a token that selects nothing, for "no such file
/// (did you mean ...?)" messages.
pub fn suggest_reflabel(
    token: &str,
    settings: &Settings,
    known: &KnownGenerators,
) -> Option<String> {
    let names = available(settings, known);
    let aliases = settings.default_reflabels.keys().cloned();
    let all: Vec<String> = names.into_iter().chain(aliases).collect();
    suggest(token, all.iter().map(String::as_str))
}

/// Reflabels in the config's order, then installed generators not listed there.
fn available(settings: &Settings, known: &KnownGenerators) -> Vec<String> {
    let mut out: Vec<String> = settings.reflabels.clone();
    for (r, _) in known {
        if !out.iter().any(|o| o == r) {
            out.push(r.to_string());
        }
    }
    out
}

/// Resolves reflabel tokens (each a reflabel, a reftype alias or a comma list of those) to the
/// reflabels to run, in first-seen order without duplicates. Every result has a generator.
pub fn resolve_reflabels(
    tokens: &[String],
    settings: &Settings,
    known: &KnownGenerators,
) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for token in tokens {
        for item in items(token) {
            let Some((reflabel, via)) = lookup(item, settings, known) else {
                let avail = available(settings, known);
                return Err(ConfigError::from(ConfigErrorKind::UnknownReflabel {
                    token: item.to_string(),
                    suggestion: suggest_reflabel(item, settings, known),
                    available: avail,
                }));
            };
            if !known.iter().any(|(r, _)| *r == reflabel) {
                return Err(ConfigError::from(ConfigErrorKind::NoGenerator {
                    suggestion: close_generator(&reflabel, known),
                    reflabel,
                    via,
                    available: known.iter().map(|(r, _)| r.to_string()).collect(),
                }));
            }
            if !out.contains(&reflabel) {
                out.push(reflabel);
            }
        }
    }
    Ok(out)
}

/// The installed generator a name that no generator has is probably a misspelling of.
fn close_generator(name: &str, known: &KnownGenerators) -> Option<String> {
    if known.iter().any(|(r, _)| *r == name) {
        return None;
    }
    suggest(name, known.iter().map(|(r, _)| *r))
}

/// Reflabels the configuration names that no generator has, when one is close (a typo). A
/// section is an error: the generator would run with its defaults while the keys meant for
/// it go unused. Entries of `reflabels` and targets of `default_reflabels` are warnings, since
/// they matter only when selected, and selecting one is an error that names it. Sections for
/// generators not installed here are fine when `reflabels` lists them (upstream's configs
/// have such sections).
pub fn check_config_reflabels(settings: &Settings, known: &KnownGenerators) -> Result<Vec<String>> {
    for section in settings.sections.values() {
        if section.source == Provenance::BuiltinDefault
            || settings.reflabels.contains(&section.name)
        {
            continue;
        }
        if let Some(suggestion) = close_generator(&section.name, known) {
            return Err(ConfigError::from(ConfigErrorKind::UnknownSection {
                origin: section.source.clone(),
                section: section.name.clone(),
                suggestion,
            }));
        }
    }
    // The key as written may differ in case from the one stored (reftypes are lowercased):
    // then the section's origin is named.
    let origin = |path: &str| {
        let section = path.split('.').next().unwrap_or(path);
        settings
            .source_of(path)
            .or_else(|| settings.source_of(section))
            .map(|p| format!("{p}: "))
            .unwrap_or_default()
    };
    let mut warnings = Vec::new();
    for name in &settings.reflabels {
        if let Some(s) = close_generator(name, known) {
            warnings.push(format!(
                "{}reflabels lists '{name}', which no installed generator has (did you mean \
                 '{s}'?)",
                origin("reflabels")
            ));
        }
    }
    for (reftype, target) in &settings.default_reflabels {
        if let Some(s) = close_generator(target, known) {
            warnings.push(format!(
                "{}default_reflabels.{reftype} names '{target}', which no installed generator \
                 has (did you mean '{s}'?)",
                origin(&format!("default_reflabels.{reftype}"))
            ));
        }
    }
    Ok(warnings)
}
