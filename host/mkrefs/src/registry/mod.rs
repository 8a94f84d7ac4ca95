//! Discovery of generators: the bundled ones (linked in, registered through inventory),
//! drop-in libraries named `libmkref_<label>.so` and generator programs named
//! `mkref_<label>` or `mkref_<label>.py` ([`executable`]) on the plugin search path. All are
//! read once into plain host types ([`Entry`]), so the rest of the host has one code path and
//! never sees the ABI (the job child calls the generator). A drop-in library is loaded here
//! only after it loaded in a child process (`exec::probe`): one that aborts or crashes while
//! loading is reported and skipped instead of ending mkrefs.

mod entry;
pub(crate) mod executable;

pub use entry::{CombineDecl, Entry, GeneratorInfo, Origin};

use std::path::{Path, PathBuf};

use mkrefs_plugin_api as abi;
use mkrefs_plugin_api::{
    GeneratorBox, LoadError, bundled_combine_rules, bundled_generators_with_constraints,
    library_combine_rule, library_constraints, load_library,
};

use crate::config::value::{Bound, Constraints, ParamKind, ParamScalar, ParamSpec, ParamValue};
use crate::exec::probe::probe_libraries;

// Referencing the bundled generator crates links them, which runs their inventory submission.
use mkref_bpm as _;
use mkref_dark as _;
use mkref_readnoise as _;
use mkref_superbias as _;

/// A bundled or drop-in library's generator, read through the ABI once.
fn library_entry(
    generator: &GeneratorBox,
    constraints: &[abi::ParamConstraints],
    origin: Origin,
) -> Entry {
    let info = generator.info();
    Entry {
        reflabel: generator.reflabel().into(),
        reftype: generator.reftype().into(),
        info: GeneratorInfo {
            description: info.description.into(),
            version: info.version.into(),
            default_imtypes: info.default_imtypes.into(),
            default_ssbsteps: info.default_ssbsteps.into(),
            default_ssb_save_steps: info.default_ssb_save_steps.into(),
        },
        params: param_specs(generator, constraints),
        origin,
        combine: None,
    }
}

fn combine_decl(rule: &abi::CombineRule) -> CombineDecl {
    CombineDecl {
        method: rule.method.to_string(),
        dq_min: rule.dq_min,
    }
}

/// The declarations with their constraints (1.1; a 1.0 library reports none). Constraints
/// naming no declared parameter are ignored: there is nothing they could apply to.
fn param_specs(generator: &GeneratorBox, constraints: &[abi::ParamConstraints]) -> Vec<ParamSpec> {
    generator
        .extra_optional_arguments()
        .iter()
        .map(|spec| ParamSpec {
            constraints: constraints
                .iter()
                .find(|c| c.name == spec.name)
                .map(param_constraints)
                .unwrap_or_default(),
            ..param_spec(spec)
        })
        .collect()
}

fn param_constraints(c: &abi::ParamConstraints) -> Constraints {
    let bound = |b: Option<&abi::ParamBound>| {
        b.map(|b| Bound {
            value: b.value,
            inclusive: b.inclusive,
        })
    };
    Constraints {
        choices: c.choices.iter().map(|s| s.to_string()).collect(),
        minimum: bound(c.minimum.as_ref().into_option()),
        maximum: bound(c.maximum.as_ref().into_option()),
        not_null: c.not_null,
    }
}

fn param_spec(spec: &abi::ParamSpec) -> ParamSpec {
    ParamSpec {
        name: spec.name.to_string(),
        kind: match spec.kind {
            abi::ParamKind::Bool => ParamKind::Bool,
            abi::ParamKind::Int => ParamKind::Int,
            abi::ParamKind::Float => ParamKind::Float,
            abi::ParamKind::String => ParamKind::String,
            abi::ParamKind::List => ParamKind::List,
        },
        default: param_value(&spec.default),
        help: spec.help.to_string(),
        constraints: Constraints::default(),
    }
}

fn param_value(v: &abi::ParamValue) -> ParamValue {
    let scalar = |s: &abi::ParamScalar| match s {
        abi::ParamScalar::Bool(b) => ParamScalar::Bool(*b),
        abi::ParamScalar::Int(i) => ParamScalar::Int(*i),
        abi::ParamScalar::Float(x) => ParamScalar::Float(*x),
        abi::ParamScalar::Str(s) => ParamScalar::Str(s.to_string()),
    };
    match v {
        abi::ParamValue::Null => ParamValue::Null,
        abi::ParamValue::Bool(b) => ParamValue::Bool(*b),
        abi::ParamValue::Int(i) => ParamValue::Int(*i),
        abi::ParamValue::Float(x) => ParamValue::Float(*x),
        abi::ParamValue::Str(s) => ParamValue::Str(s.to_string()),
        abi::ParamValue::List(items) => ParamValue::List(items.iter().map(scalar).collect()),
    }
}

/// What stands in for a drop-in library that could not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Nothing: a run that selects its reflabel fails, saying why.
    None,
    /// The bundled generator of the same reflabel runs (the library came from
    /// `$MKREFS_PLUGIN_PATH` or the per-user directory).
    Bundled,
    /// Nothing, although a bundled generator has the reflabel: the library is in a
    /// `--plugin-dir` directory, so the user asked for it to replace the bundled one, and
    /// running the bundled one instead would quietly give other results.
    Refused,
}

/// A library on the search path that could not be used. Reported in one line; an error only
/// if a run selects its reflabel (or, for [`Fallback::Refused`], always at error level).
#[derive(Debug, Clone)]
pub struct BrokenLibrary {
    pub path: PathBuf,
    /// "plugin library" or "generator program", for messages.
    pub what: &'static str,
    /// The reflabel its file name promises (`libmkref_<label>.so`).
    pub reflabel: String,
    pub reason: String,
    /// The full loader report (abi_stable's layout reports run to hundreds of lines).
    pub detail: String,
    pub fallback: Fallback,
}

impl BrokenLibrary {
    /// The one log line about it.
    pub fn message(&self) -> String {
        let (path, label, what) = (self.path.display(), &self.reflabel, self.what);
        match self.fallback {
            Fallback::None => format!("skipping {what} {path}: {}", self.reason),
            Fallback::Bundled => format!(
                "{what} {path} failed to load ({}); the bundled {label} runs instead",
                self.reason
            ),
            Fallback::Refused => format!(
                "{what} {path} failed to load ({}); it is in a --plugin-dir directory, so it \
                 replaces the bundled {label}, and runs of {label} fail until it is fixed or \
                 removed (or the directory is left out)",
                self.reason
            ),
        }
    }
}

/// A drop-in found on the search path, not yet loaded.
struct Candidate {
    path: PathBuf,
    label: String,
    /// In a directory given with `--plugin-dir`.
    explicit: bool,
    /// A generator program rather than a library.
    program: bool,
}

/// All generators known to this process.
pub struct Registry {
    entries: Vec<Entry>,
    broken: Vec<BrokenLibrary>,
    warnings: Vec<String>,
}

/// The drop-in search path: `--plugin-dir` directories, then `$MKREFS_PLUGIN_PATH`
/// (colon-separated), then the per-user directory `$XDG_DATA_HOME/mkrefs/plugins`
/// (default `~/.local/share/mkrefs/plugins`).
pub fn plugin_search_path(cli_dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cli_dirs.to_vec();
    if let Some(path) = std::env::var_os("MKREFS_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    if let Some(user) = user_plugin_dir() {
        dirs.push(user);
    }
    dirs
}

/// The per-user plugin directory.
pub fn user_plugin_dir() -> Option<PathBuf> {
    let data = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))?;
    Some(data.join("mkrefs").join("plugins"))
}

/// The reflabel a drop-in library's file name promises, if it follows the naming rule.
pub fn library_reflabel(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    let label = stem.strip_prefix("mkref_")?;
    (!label.is_empty()).then(|| label.to_string())
}

impl Registry {
    /// No generator at all: for the commands that do not use them.
    pub fn empty() -> Registry {
        Registry {
            entries: Vec::new(),
            broken: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Bundled generators, then drop-ins from `dirs` in order. The first drop-in for a
    /// reflabel wins over later ones; a drop-in replaces a bundled generator, with a warning.
    /// Drop-ins in `explicit` directories (`--plugin-dir`) that fail to load are refused
    /// rather than replaced by the bundled generator of their name. `python` runs `.py`
    /// generator programs.
    pub fn discover(dirs: &[PathBuf], explicit: &[PathBuf], python: &Path) -> Registry {
        let mut registry = Registry::empty();
        let rules = bundled_combine_rules();
        for made in bundled_generators_with_constraints() {
            match made {
                Ok((g, c)) => {
                    let mut entry = library_entry(&g, &c, Origin::Bundled);
                    entry.combine = rules
                        .iter()
                        .find(|(reflabel, _)| *reflabel == entry.reflabel)
                        .map(|(_, rule)| combine_decl(rule));
                    registry.entries.push(entry);
                }
                Err(e) => registry
                    .warnings
                    .push(format!("a bundled generator could not be created: {e}")),
            }
        }
        let (programs, libraries): (Vec<Candidate>, Vec<Candidate>) = registry
            .candidates(dirs, explicit)
            .into_iter()
            .partition(|c| c.program);
        let paths: Vec<PathBuf> = libraries.iter().map(|c| c.path.clone()).collect();
        for (candidate, probed) in libraries.into_iter().zip(probe_libraries(&paths)) {
            match probed {
                Ok(()) => registry.add_library(candidate),
                Err(failure) => registry.add_broken(candidate, failure.reason, failure.detail),
            }
        }
        for candidate in programs {
            match executable::describe(&candidate.path, python) {
                Ok(entry) => registry.add_entry(candidate, entry),
                Err((reason, detail)) => registry.add_broken(candidate, reason, detail),
            }
        }
        registry.entries.sort_by(|a, b| a.reflabel.cmp(&b.reflabel));
        registry
    }

    /// The libraries of `dirs` in search order, the first of each reflabel (later ones are
    /// noted as shadowed).
    fn candidates(&mut self, dirs: &[PathBuf], explicit: &[PathBuf]) -> Vec<Candidate> {
        let mut out: Vec<Candidate> = Vec::new();
        for dir in dirs {
            let Ok(read) = std::fs::read_dir(dir) else {
                continue; // a missing search directory is normal (e.g. the per-user one)
            };
            let mut files: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for path in files {
                let (label, program) = match library_reflabel(&path) {
                    Some(label) => (label, false),
                    None => match executable::executable_reflabel(&path) {
                        Some(label) => (label, true),
                        None => continue,
                    },
                };
                if let Some(first) = out.iter().find(|c| c.label == label) {
                    self.warnings.push(format!(
                        "drop-in {} is shadowed by {} (earlier on the plugin path)",
                        path.display(),
                        first.path.display()
                    ));
                    continue;
                }
                out.push(Candidate {
                    path,
                    label,
                    explicit: explicit.contains(dir),
                    program,
                });
            }
        }
        out
    }

    /// Notes a library that cannot be used, and what runs in its place.
    fn add_broken(&mut self, candidate: Candidate, reason: String, detail: String) {
        let bundled = self
            .entries
            .iter()
            .any(|e| e.reflabel == candidate.label && e.origin == Origin::Bundled);
        let fallback = match (bundled, candidate.explicit) {
            (false, _) => Fallback::None,
            (true, false) => Fallback::Bundled,
            (true, true) => Fallback::Refused,
        };
        self.broken.push(BrokenLibrary {
            what: match candidate.program {
                true => "generator program",
                false => "plugin library",
            },
            path: candidate.path,
            reflabel: candidate.label,
            reason,
            detail,
            fallback,
        });
    }

    fn add_library(&mut self, candidate: Candidate) {
        let loaded = load_library(&candidate.path).and_then(|g| {
            Ok((
                (
                    library_constraints(&candidate.path)?,
                    library_combine_rule(&candidate.path)?,
                ),
                g,
            ))
        });
        let ((constraints, combine), generator) = match loaded {
            Ok(g) => g,
            Err(e) => {
                let detail = match &e {
                    LoadError::Library { detail, .. } => detail.clone(),
                    LoadError::Constructor(c) => c.to_string(),
                };
                return self.add_broken(candidate, e.to_string(), detail);
            }
        };
        let mut entry = library_entry(
            &generator,
            &constraints,
            Origin::Library(candidate.path.clone()),
        );
        entry.combine = combine.as_ref().map(combine_decl);
        self.add_entry(candidate, entry);
    }

    /// Adds a loaded drop-in whose generator calls itself as its file name says.
    fn add_entry(&mut self, candidate: Candidate, entry: Entry) {
        if entry.reflabel != candidate.label {
            let name = match candidate.program {
                true => format!("mkref_{}", entry.reflabel),
                false => format!(
                    "{}mkref_{}{}",
                    std::env::consts::DLL_PREFIX,
                    entry.reflabel,
                    std::env::consts::DLL_SUFFIX
                ),
            };
            let reason = format!(
                "its generator calls itself '{}'; rename the file to {name}",
                entry.reflabel
            );
            return self.add_broken(candidate, reason, String::new());
        }
        let (path, label) = (candidate.path, candidate.label);
        if let Some(pos) = self.entries.iter().position(|e| e.reflabel == label) {
            self.warnings.push(format!(
                "drop-in {} replaces the {} '{}' generator",
                path.display(),
                self.entries[pos].origin.describe(),
                label
            ));
            self.entries.remove(pos);
        }
        self.entries.push(entry);
    }

    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub fn broken(&self) -> &[BrokenLibrary] {
        &self.broken
    }

    /// Problems found while discovering (shadowed or replaced generators, failed bundled
    /// constructors), for the log.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    pub fn find(&self, reflabel: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.reflabel == reflabel)
    }

    /// The library that failed to replace the bundled generator of `reflabel`, if any.
    pub fn refused(&self, reflabel: &str) -> Option<&BrokenLibrary> {
        self.broken
            .iter()
            .find(|b| b.reflabel == reflabel && b.fallback == Fallback::Refused)
    }

    /// The generator for a selected reflabel, or an error that says why it is unavailable.
    pub fn get(&self, reflabel: &str) -> Result<&Entry, String> {
        if let Some(b) = self.refused(reflabel) {
            return Err(format!("generator '{reflabel}': {}", b.message()));
        }
        if let Some(e) = self.find(reflabel) {
            return Ok(e);
        }
        if let Some(b) = self.broken.iter().find(|b| b.reflabel == reflabel) {
            return Err(format!(
                "generator '{reflabel}': {} {} {}",
                b.what,
                b.path.display(),
                b.reason
            ));
        }
        let known: Vec<&str> = self.entries.iter().map(|e| e.reflabel.as_str()).collect();
        let suggestion = known
            .iter()
            .map(|k| (strsim::jaro_winkler(k, reflabel), *k))
            .filter(|(score, _)| *score > 0.8)
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, k)| format!(" (did you mean '{k}'?)"))
            .unwrap_or_default();
        Err(format!(
            "no generator '{reflabel}'{suggestion}; available: {}. Drop-ins are looked for as \
             libraries {}mkref_<reflabel>{} and programs mkref_<reflabel>[.py] on the plugin \
             path (see `mkrefs plugins`)",
            known.join(", "),
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_library_named_like_a_bundled_generator_is_replaced_unless_asked_for() {
        let candidate = |label: &str, explicit| Candidate {
            path: PathBuf::from(format!("/p/libmkref_{label}.so")),
            label: label.to_string(),
            explicit,
            program: false,
        };
        let mut from_path = Registry::discover(&[], &[], Path::new("python3"));
        from_path.add_broken(
            candidate("readnoise", false),
            "broken".into(),
            String::new(),
        );
        assert_eq!(from_path.get("readnoise").unwrap().origin, Origin::Bundled);
        assert_eq!(from_path.broken()[0].fallback, Fallback::Bundled);
        assert!(
            from_path.broken()[0]
                .message()
                .ends_with("failed to load (broken); the bundled readnoise runs instead")
        );

        let mut asked = Registry::discover(&[], &[], Path::new("python3"));
        asked.add_broken(candidate("readnoise", true), "broken".into(), String::new());
        let refused = asked.get("readnoise").err().unwrap();
        assert!(refused.contains("/p/libmkref_readnoise.so"), "{refused}");
        assert!(refused.contains("--plugin-dir"), "{refused}");
        // Its parameters stay options of the command line, so the run gets to say why.
        assert!(asked.find("readnoise").is_some());

        asked.add_broken(candidate("gain", true), "broken".into(), String::new());
        assert_eq!(asked.broken()[1].fallback, Fallback::None);
        assert!(asked.get("gain").err().unwrap().contains("libmkref_gain"));
    }

    #[test]
    fn library_names_follow_the_platform_convention() {
        let name = format!(
            "{}mkref_gain{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        );
        assert_eq!(library_reflabel(Path::new(&name)).as_deref(), Some("gain"));
        assert_eq!(library_reflabel(Path::new("libother.so")), None);
        assert_eq!(library_reflabel(Path::new("mkref_gain.txt")), None);
    }

    #[test]
    fn bundled_generators_declare_their_choices_and_ranges() {
        let registry = Registry::discover(&[], &[], Path::new("python3"));
        let readnoise = registry.get("readnoise").unwrap();
        let find = |name: &str| readnoise.params.iter().find(|p| p.name == name).unwrap();
        assert_eq!(find("method").constraints.choices, ["stack", "ramp"]);
        let sigma = &find("clipping_sigma").constraints;
        assert_eq!(
            sigma.minimum,
            Some(Bound {
                value: 0.0,
                inclusive: false
            })
        );
        assert_eq!(sigma.maximum, None);
        // Ignored upstream parameters accept anything of their kind, null included.
        assert_eq!(find("nproc").constraints, Constraints::default());
    }
}
