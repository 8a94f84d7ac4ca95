//! Why the inputs cannot be used; each error lists every problem found, not only the first.

use std::fmt;
use std::path::PathBuf;

/// Why the inputs cannot be used. Each variant lists every problem found, not only the first.
#[derive(Clone, Debug, PartialEq)]
pub enum InputError {
    /// Command-line tokens that name no file, directory or matching pattern.
    Tokens(Vec<String>),
    /// A configured regular expression does not compile.
    Pattern(String),
    /// Problems with the files themselves.
    Files(Vec<FileProblem>),
}

/// One problem with one input file; `key` is the header key concerned, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct FileProblem {
    pub path: PathBuf,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Tokens(list) => {
                write!(f, "{} input argument(s) unusable:", list.len())?;
                for t in list {
                    write!(f, "\n  {t}")?;
                }
                Ok(())
            }
            InputError::Pattern(msg) => f.write_str(msg),
            InputError::Files(list) => {
                write!(
                    f,
                    "{} problem(s) with the input files (nothing was run):",
                    list.len()
                )?;
                for p in list {
                    write!(f, "\n  {p}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for InputError {}
