//! Where a configuration value came from, so every message can name the file and line or the
//! command-line option.

use std::fmt;
use std::path::{Path, PathBuf};

/// Where a configuration value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Provenance {
    /// A config file given by the user (`-c`, `-e`, `$MKREFS_CONFIG`, ...). The line is
    /// best-effort: found for block-style `key: value` lines, `None` for flow style.
    File { path: PathBuf, line: Option<usize> },
    /// The `configs/mkrefs.yaml` compiled into the binary, used when no config is named.
    Embedded { line: Option<usize> },
    /// A default the code supplies for a key the main config does not have.
    BuiltinDefault,
    /// A command-line option, with its text, e.g. `-p instrument`, `--pp output outrootdir`,
    /// `--readnoise.method`.
    CommandLine(String),
    /// The default a generator declares for one of its parameters; holds the reflabel.
    GeneratorDefault(String),
}

impl Provenance {
    pub(crate) fn file(path: &Path) -> Self {
        Provenance::File {
            path: path.to_path_buf(),
            line: None,
        }
    }

    /// The same origin at another line (no-op for non-file origins).
    pub(crate) fn at_line(&self, line: Option<usize>) -> Self {
        match self {
            Provenance::File { path, .. } => Provenance::File {
                path: path.clone(),
                line,
            },
            Provenance::Embedded { .. } => Provenance::Embedded { line },
            other => other.clone(),
        }
    }

    /// The file this came from, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Provenance::File { path, .. } => Some(path),
            _ => None,
        }
    }

    pub fn line(&self) -> Option<usize> {
        match self {
            Provenance::File { line, .. } | Provenance::Embedded { line } => *line,
            _ => None,
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::File { path, line } => {
                write!(f, "{}", path.display())?;
                if let Some(l) = line {
                    write!(f, ":{l}")?;
                }
                Ok(())
            }
            Provenance::Embedded { line } => {
                f.write_str("built-in configs/mkrefs.yaml")?;
                if let Some(l) = line {
                    write!(f, ":{l}")?;
                }
                Ok(())
            }
            Provenance::BuiltinDefault => f.write_str("built-in default"),
            Provenance::CommandLine(opt) => write!(f, "command line {opt}"),
            Provenance::GeneratorDefault(r) => write!(f, "generator default ({r})"),
        }
    }
}
