//! Executable generators: a program named `mkref_<reflabel>` on the plugin path, in any
//! language (`mkref_<reflabel>.py` runs with the Python of [`python_for_scripts`]). It tells
//! what it is when run as `PROGRAM describe` (one JSON document on stdout, format below) and
//! makes a reference file when run as `PROGRAM run JOB.json` (see `child::executable`). This
//! is how calibration teams' existing Python generators join a run without a Rust wrapper.
//!
//! The description, version 1:
//!
//! ```json
//! {"mkrefs_generator": 1, "reflabel": "gain", "reftype": "GAIN",
//!  "info": {"description": "...", "version": "1.0.0", "default_imtypes": "D+F+",
//!           "default_ssbsteps": "", "default_ssb_save_steps": ""},
//!  "combine": {"method": "median", "dq_min": 0},
//!  "parameters": [{"name": "box", "kind": "int", "default": 64, "help": "...",
//!                  "choices": [], "minimum": 8, "exclusive_maximum": 2048,
//!                  "not_null": true}]}
//! ```
//!
//! `info`'s keys other than `version`, `combine`, and every parameter key but `name`, `kind`
//! and `default` may be left out. `minimum`/`maximum` are inclusive bounds,
//! `exclusive_minimum`/`exclusive_maximum` exclusive ones, as in JSON Schema.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::Deserialize;
use serde_json::Value;

use super::entry::{CombineDecl, Entry, GeneratorInfo, Origin};
use crate::config::value::{Bound, Constraints, ParamKind, ParamScalar, ParamSpec, ParamValue};
use crate::exec::probe::wait_collecting;

/// The description format this host reads.
const FORMAT: u32 = 1;

/// The reflabel an executable generator's file name promises: `mkref_<label>` (executable)
/// or `mkref_<label>.py`.
pub fn executable_reflabel(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_prefix("mkref_")?;
    let label = stem.strip_suffix(".py").unwrap_or(stem);
    let plain = label
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let runnable = name.ends_with(".py") || is_executable(path);
    (plain && !label.is_empty() && runnable && path.is_file()).then(|| label.to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The Python that runs `.py` generators: `$MKREFS_PYTHON`, else `calibration.python` of
/// the main configuration (`configured`, read early: `config::early`), else `python3` on
/// PATH. Generators are discovered before the command line is fully read, so `-e`, `-p` and
/// `--pp` do not change it.
pub fn python_for_scripts(configured: Option<&str>) -> PathBuf {
    std::env::var_os("MKREFS_PYTHON")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| configured.map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// The command that runs the program: itself, or the interpreter with it.
pub fn command(path: &Path, interpreter: Option<&Path>) -> Command {
    match interpreter {
        Some(python) => {
            let mut c = Command::new(python);
            c.arg(path);
            c
        }
        None => Command::new(path),
    }
}

/// Runs `PROGRAM describe` and reads its description into an entry.
pub(super) fn describe(path: &Path, python: &Path) -> Result<Entry, (String, String)> {
    let interpreter = path
        .extension()
        .is_some_and(|e| e == "py")
        .then(|| python.to_path_buf());
    let fail = |reason: String| (reason, String::new());
    let mut child = command(path, interpreter.as_deref())
        .arg("describe")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            let what = match &interpreter {
                Some(p) => format!("its Python {}", p.display()),
                None => "it".to_string(),
            };
            fail(format!(
                "could not be started ({e}); check that {what} can be run (set $MKREFS_PYTHON \
                 or calibration.python for a .py generator)"
            ))
        })?;
    let (status, stdout, stderr) = wait_collecting(&mut child)
        .map_err(|e| fail(format!("lost the process describing it: {e}")))?;
    let Some(status) = status else {
        return Err(fail(
            "did not answer `describe` within 30 s; it must print its description and exit"
                .to_string(),
        ));
    };
    if !status.success() {
        return Err((
            format!("`describe` failed ({status}); its error output is in the detail (-v)"),
            stderr.trim().to_string(),
        ));
    }
    let description: Description = serde_json::from_str(stdout.trim()).map_err(|e| {
        (
            format!("`describe` did not print a valid description: {e}"),
            stdout.chars().take(2000).collect(),
        )
    })?;
    description.entry(path, interpreter).map_err(fail)
}

#[derive(Deserialize)]
struct Description {
    mkrefs_generator: u32,
    reflabel: String,
    reftype: String,
    info: Info,
    #[serde(default)]
    combine: Option<Combine>,
    #[serde(default)]
    parameters: Vec<Parameter>,
}

#[derive(Deserialize)]
struct Info {
    version: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    default_imtypes: String,
    #[serde(default)]
    default_ssbsteps: String,
    #[serde(default)]
    default_ssb_save_steps: String,
}

#[derive(Deserialize)]
struct Combine {
    method: String,
    #[serde(default)]
    dq_min: u32,
}

#[derive(Deserialize)]
struct Parameter {
    name: String,
    kind: String,
    default: Value,
    #[serde(default)]
    help: String,
    #[serde(default)]
    choices: Vec<String>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    exclusive_maximum: Option<f64>,
    #[serde(default)]
    not_null: bool,
}

impl Description {
    fn entry(self, path: &Path, interpreter: Option<PathBuf>) -> Result<Entry, String> {
        if self.mkrefs_generator != FORMAT {
            return Err(format!(
                "describes itself in format {} (key mkrefs_generator); this mkrefs reads format \
                 {FORMAT}",
                self.mkrefs_generator
            ));
        }
        let params = self
            .parameters
            .into_iter()
            .map(Parameter::spec)
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Entry {
            origin: Origin::Executable {
                // Absolute: job children, here or on a cluster node, may start elsewhere.
                path: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
                interpreter,
            },
            reflabel: self.reflabel,
            reftype: self.reftype,
            info: GeneratorInfo {
                description: self.info.description,
                version: self.info.version,
                default_imtypes: self.info.default_imtypes,
                default_ssbsteps: self.info.default_ssbsteps,
                default_ssb_save_steps: self.info.default_ssb_save_steps,
            },
            params,
            combine: self.combine.map(|c| CombineDecl {
                method: c.method,
                dq_min: c.dq_min,
            }),
        })
    }
}

impl Parameter {
    fn spec(self) -> Result<ParamSpec, String> {
        let kind = match self.kind.as_str() {
            "bool" => ParamKind::Bool,
            "int" => ParamKind::Int,
            "float" => ParamKind::Float,
            "string" => ParamKind::String,
            "list" => ParamKind::List,
            other => {
                return Err(format!(
                    "parameter '{}' has kind '{other}'; use bool, int, float, string or list",
                    self.name
                ));
            }
        };
        let default = json_value(&self.default, kind).ok_or_else(|| {
            format!(
                "the default of parameter '{}' ({}) is not of kind {kind}",
                self.name, self.default
            )
        })?;
        let bound = |inclusive: Option<f64>, exclusive: Option<f64>| match (inclusive, exclusive) {
            (Some(value), _) => Some(Bound {
                value,
                inclusive: true,
            }),
            (None, Some(value)) => Some(Bound {
                value,
                inclusive: false,
            }),
            (None, None) => None,
        };
        Ok(ParamSpec {
            name: self.name,
            kind,
            default,
            help: self.help,
            constraints: Constraints {
                choices: self.choices,
                minimum: bound(self.minimum, self.exclusive_minimum),
                maximum: bound(self.maximum, self.exclusive_maximum),
                not_null: self.not_null,
            },
        })
    }
}

/// A JSON default as a value of `kind` (null for any kind), `None` if it is not one.
fn json_value(v: &Value, kind: ParamKind) -> Option<ParamValue> {
    let scalar = |v: &Value| match v {
        Value::Bool(b) => Some(ParamScalar::Bool(*b)),
        Value::Number(n) if n.is_i64() => n.as_i64().map(ParamScalar::Int),
        Value::Number(n) => n.as_f64().map(ParamScalar::Float),
        Value::String(s) => Some(ParamScalar::Str(s.clone())),
        _ => None,
    };
    Some(match (kind, v) {
        (_, Value::Null) => ParamValue::Null,
        (ParamKind::Bool, Value::Bool(b)) => ParamValue::Bool(*b),
        (ParamKind::Int, Value::Number(n)) => ParamValue::Int(n.as_i64()?),
        (ParamKind::Float, Value::Number(n)) => ParamValue::Float(n.as_f64()?),
        (ParamKind::String, Value::String(s)) => ParamValue::Str(s.clone()),
        (ParamKind::List, Value::Array(items)) => {
            ParamValue::List(items.iter().map(scalar).collect::<Option<Vec<_>>>()?)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_becomes_an_entry_with_constraints() {
        let text = r#"{"mkrefs_generator": 1, "reflabel": "gain", "reftype": "GAIN",
            "info": {"version": "0.1", "default_imtypes": "D+F+"},
            "parameters": [
              {"name": "box", "kind": "int", "default": 64, "help": "h",
               "minimum": 8, "exclusive_maximum": 4096},
              {"name": "stat", "kind": "string", "default": "median",
               "choices": ["mean", "median"]},
              {"name": "flags", "kind": "list", "default": ["HOT", 2]}]}"#;
        let d: Description = serde_json::from_str(text).unwrap();
        let e = d.entry(Path::new("/p/mkref_gain"), None).unwrap();
        assert_eq!(e.reflabel, "gain");
        assert_eq!(e.info.default_imtypes, "D+F+");
        assert_eq!(e.params[0].default, ParamValue::Int(64));
        let c = &e.params[0].constraints;
        assert_eq!(c.minimum.unwrap().value, 8.0);
        assert!(!c.maximum.unwrap().inclusive);
        assert_eq!(e.params[1].constraints.choices, ["mean", "median"]);
        assert_eq!(
            e.params[2].default,
            ParamValue::List(vec![ParamScalar::Str("HOT".into()), ParamScalar::Int(2)])
        );
    }

    #[test]
    fn a_default_of_the_wrong_kind_is_named() {
        let p = Parameter {
            name: "box".into(),
            kind: "int".into(),
            default: Value::String("x".into()),
            help: String::new(),
            choices: Vec::new(),
            minimum: None,
            maximum: None,
            exclusive_minimum: None,
            exclusive_maximum: None,
            not_null: false,
        };
        assert_eq!(
            p.spec().unwrap_err(),
            "the default of parameter 'box' (\"x\") is not of kind int"
        );
    }
}
