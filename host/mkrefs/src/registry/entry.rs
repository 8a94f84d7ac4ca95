//! A generator as the host knows it, whatever it comes from: plain types read once from the
//! ABI (bundled generators and drop-in libraries) or from a program's description.

use std::path::{Path, PathBuf};

use crate::config::value::ParamSpec;

/// Where a generator comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Bundled,
    Library(PathBuf),
    /// A generator program; `interpreter` is the Python that runs a `.py` one.
    Executable {
        path: PathBuf,
        interpreter: Option<PathBuf>,
    },
}

impl Origin {
    pub fn describe(&self) -> String {
        match self {
            Origin::Bundled => "bundled".to_string(),
            Origin::Library(p) => p.display().to_string(),
            Origin::Executable {
                path,
                interpreter: Some(python),
            } => format!("{} (run with {})", path.display(), python.display()),
            Origin::Executable { path, .. } => path.display().to_string(),
        }
    }

    /// The drop-in file the generator comes from: a library or a program.
    pub fn library(&self) -> Option<&Path> {
        match self {
            Origin::Bundled => None,
            Origin::Library(p) | Origin::Executable { path: p, .. } => Some(p),
        }
    }
}

/// What a generator says about itself (`info` of the ABI).
#[derive(Debug, Clone)]
pub struct GeneratorInfo {
    pub description: String,
    pub version: String,
    pub default_imtypes: String,
    pub default_ssbsteps: String,
    pub default_ssb_save_steps: String,
}

/// A usable generator, its metadata read once.
pub struct Entry {
    pub origin: Origin,
    pub reflabel: String,
    pub reftype: String,
    pub info: GeneratorInfo,
    pub params: Vec<ParamSpec>,
    /// How its files combine in the final stage (plugin-api 1.2); `None`: the host's rule for
    /// the reftype.
    pub combine: Option<CombineDecl>,
}

/// A generator's declared combination rule (the ABI's `CombineRule` in host types).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CombineDecl {
    /// `mean`, `median` or `flags`.
    pub method: String,
    /// In how many inputs a DQ flag must be set to be kept; 0: the host's default.
    pub dq_min: u32,
}
