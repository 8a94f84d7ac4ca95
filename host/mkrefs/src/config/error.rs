//! The one error type of configuration loading, reflabel selection and parameter resolution.
//!
//! Every variant says where the offending value came from (a config file with its line when
//! known, or the command-line option), which section and key, and what to do about it.

use std::path::PathBuf;

use super::provenance::Provenance;

/// A configuration problem, phrased for the user who has to fix it. Boxed so that `Result`s
/// stay small on the success path; [`ConfigError::kind`] tells the cases apart.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ConfigError(Box<ConfigErrorKind>);

impl ConfigError {
    #[cfg(test)]
    pub fn kind(&self) -> &ConfigErrorKind {
        &self.0
    }
}

impl From<ConfigErrorKind> for ConfigError {
    fn from(kind: ConfigErrorKind) -> Self {
        ConfigError(Box::new(kind))
    }
}

/// The cases of [`ConfigError`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigErrorKind {
    #[error("cannot read config file {path}{via}: {source}")]
    Io {
        path: PathBuf,
        /// Why this file was read, e.g. " (named by $MKREFS_CONFIG)"; empty for `-c`/`-e`.
        via: String,
        source: std::io::Error,
    },

    #[error("{origin}: invalid YAML: {message}")]
    Yaml { origin: Provenance, message: String },

    #[error("{origin}: {what} must be a YAML mapping of key: value lines, found {found}")]
    NotAMapping {
        origin: Provenance,
        what: String,
        found: String,
    },

    #[error("{origin}: unknown {}{}{}; {hint}", where_(.section, .key), did_you_mean(.suggestion), known_list(.known))]
    UnknownKey {
        origin: Provenance,
        section: Option<String>,
        key: String,
        suggestion: Option<String>,
        /// A short list of what is accepted there; empty to leave it out.
        known: Vec<String>,
        hint: String,
    },

    #[error("{origin}: {} is {found} here but {expected} in {existing}; give a value of the same shape", where_(.section, .key))]
    ShapeClash {
        origin: Provenance,
        section: Option<String>,
        key: String,
        found: String,
        expected: String,
        existing: Provenance,
    },

    #[error("{origin}: {path}.{key} and {path}.{first} both name {meaning}; keep one of them")]
    DuplicateKey {
        origin: Provenance,
        /// The mapping, e.g. `reffile4ssb` or `dark.reffile4ssb`.
        path: String,
        key: String,
        /// The key seen first.
        first: String,
        meaning: String,
    },

    #[error(
        "{origin}: top-level key '{key}' is a section; set one of its keys with --pp {key} <key> <value>"
    )]
    IsSection { origin: Provenance, key: String },

    #[error("--pall {key}: no top-level key and no section has '{key}'{}; check the spelling, or use --pp <section> {key} <value>", did_you_mean(.suggestion))]
    PallNotFound {
        key: String,
        suggestion: Option<String>,
    },

    #[error("--pall {key}: no selected generator ({}) declares a parameter '{key}' and no config key has it{}", .selected.join(", "), did_you_mean(.suggestion))]
    PallUnused {
        key: String,
        selected: Vec<String>,
        suggestion: Option<String>,
    },

    #[error(
        "{origin}: key {key_path} uses the environment variable ${var}, which is not set; set it, or write $$ for a literal '$'"
    )]
    UnsetEnvVar {
        origin: Provenance,
        key_path: String,
        var: String,
    },

    #[error("{origin}: key {key_path}: {message}")]
    EnvSyntax {
        origin: Provenance,
        key_path: String,
        message: String,
    },

    #[error("{origin}: {} is {found}, expected {expected}{}", where_path(.key_path), hint_(.hint))]
    InvalidValue {
        origin: Provenance,
        /// `section.key` (or just `key` at top level, or the option text for the command line).
        key_path: String,
        expected: String,
        found: String,
        hint: String,
    },

    #[error("'{token}' is neither a reflabel nor a reftype named in default_reflabels{}; available reflabels: {}", did_you_mean(.suggestion), .available.join(", "))]
    UnknownReflabel {
        token: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },

    #[error("reflabel '{reflabel}'{via} has no generator{}; installed generators: {}; add one, or pick another reflabel", did_you_mean(.suggestion), .available.join(", "))]
    NoGenerator {
        reflabel: String,
        /// e.g. " (reftype 'bpm' in default_reflabels of <file>)"
        via: String,
        suggestion: Option<String>,
        available: Vec<String>,
    },

    #[error(
        "{origin}: section '{section}' is not the reflabel of any generator (did you mean '{suggestion}'?), so its keys would go unused; rename it, or list '{section}' in reflabels if it is for a generator not installed here"
    )]
    UnknownSection {
        origin: Provenance,
        section: String,
        suggestion: String,
    },

    #[error("ambiguous: --{name} is a parameter of {}; use {}", .reflabels.join(" and "), .reflabels.iter().map(|r| format!("--{r}.{name}")).collect::<Vec<_>>().join(" or "))]
    AmbiguousParam {
        name: String,
        reflabels: Vec<String>,
    },

    #[error("{origin}{location}: {}{}{}", no_such_param(.reflabels, .name), did_you_mean(.suggestion), known_list(.known))]
    UnknownParam {
        origin: Provenance,
        /// ", section 'S', key 'K'" for a config key; empty for a command-line option.
        location: String,
        reflabels: Vec<String>,
        name: String,
        suggestion: Option<String>,
        known: Vec<String>,
    },

    #[error("{option}: reflabel '{reflabel}' is not selected for this run (selected: {}){}", .selected.join(", "), did_you_mean(.suggestion))]
    ReflabelNotSelected {
        option: String,
        reflabel: String,
        selected: Vec<String>,
        suggestion: Option<String>,
    },

    #[error(
        "generator '{reflabel}' declares parameter '{name}' as {kind} but its default is {default}; this is a bug in the generator"
    )]
    BadGeneratorDefault {
        reflabel: String,
        name: String,
        kind: String,
        default: String,
    },
}

/// `Result` with [`ConfigError`].
pub type Result<T, E = ConfigError> = std::result::Result<T, E>;

fn where_(section: &Option<String>, key: &str) -> String {
    match section {
        Some(s) => format!("key '{key}' in section '{s}'"),
        None => format!("top-level key '{key}'"),
    }
}

fn where_path(path: &str) -> String {
    match path.split_once('.') {
        Some((s, k)) if !path.starts_with('-') => format!("key '{k}' in section '{s}'"),
        _ if path.starts_with('-') => "the value".to_string(),
        _ => format!("top-level key '{path}'"),
    }
}

fn hint_(hint: &str) -> String {
    if hint.is_empty() {
        String::new()
    } else {
        format!("; {hint}")
    }
}

fn no_such_param(reflabels: &[String], name: &str) -> String {
    match reflabels {
        [one] => format!("generator '{one}' declares no parameter '{name}'"),
        many => format!(
            "no selected generator ({}) declares a parameter '{name}'",
            many.join(", ")
        ),
    }
}

pub(crate) fn did_you_mean(s: &Option<String>) -> String {
    match s {
        Some(s) => format!(" (did you mean '{s}'?)"),
        None => String::new(),
    }
}

fn known_list(known: &[String]) -> String {
    if known.is_empty() {
        String::new()
    } else {
        format!("; known: {}", known.join(", "))
    }
}

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
///
/// Jaro-Winkler weighs shared prefixes, which suits snake_case keys; case is ignored because
/// `dd` for `DD` or `RUNID` for `runID` are the common slips.
pub fn suggest<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let lw = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::jaro_winkler(&lw, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["outrootdir", "outsubdir", "runID", "ssbdir"];
        assert_eq!(
            suggest("outrotdir", keys.iter().copied()),
            Some("outrootdir".into())
        );
        assert_eq!(suggest("RUNID", keys.iter().copied()), Some("runID".into()));
        assert_eq!(suggest("zzzz", keys.iter().copied()), None);
    }
}
