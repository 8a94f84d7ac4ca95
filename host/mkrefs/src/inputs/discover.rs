//! Finding the input exposures: the positional words that are not reflabels become files.
//!
//! Differences from upstream, on purpose:
//! - Tokens may be files, directories (searched recursively for `*.fits`) or glob patterns;
//!   upstream relied on the shell and took existing files only.
//! - Duplicates (also through symlinks or `..`) are removed, keeping the first occurrence;
//!   upstream made two rows for a file given twice.
//! - `basenamepattern` is searched in the **basename**, as its name says; upstream searched the
//!   whole absolute path, so a directory name could select or drop files.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use regex::Regex;

use crate::inputs::error::InputError;

/// A directory a search could not read. It names that directory, not the one the search
/// started from, since a locked subdirectory deep in a tree is what the user has to fix.
#[derive(Debug)]
pub(crate) struct UnreadableDir {
    pub dir: PathBuf,
    pub error: io::Error,
}

impl std::fmt::Display for UnreadableDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot read directory {}: {}",
            self.dir.display(),
            self.error
        )?;
        if self.error.kind() == io::ErrorKind::PermissionDenied {
            write!(
                f,
                "; make it readable for this user (chmod u+rx {}), or move it out of the tree \
                 searched and give the files you want by name",
                self.dir.display()
            )?;
        }
        Ok(())
    }
}

/// The error of a search of `top`: the unreadable directory, and the search it stopped when
/// that was a directory below `top`.
pub(crate) fn search_failure(top: &Path, e: &UnreadableDir) -> String {
    if e.dir == top {
        e.to_string()
    } else {
        format!("searching directory {}: {e}", top.display())
    }
}

/// Every `*.fits` file below `dir` (extension compared ignoring case), following symlinks but
/// visiting each directory once, and not entering the directories of `exclude` below `dir`
/// (canonical paths: the output tree, so a rerun never reads its own outputs as inputs; a
/// directory given itself is searched wherever it is). Unsorted.
pub(crate) fn fits_files_below(
    dir: &Path,
    exclude: &[PathBuf],
) -> Result<Vec<PathBuf>, UnreadableDir> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let unreadable = |error: io::Error| UnreadableDir {
            dir: d.clone(),
            error,
        };
        let canonical = fs::canonicalize(&d).map_err(unreadable)?;
        if d != dir && exclude.iter().any(|x| canonical.starts_with(x)) {
            tracing::debug!("not searching {}: it is in the output tree", d.display());
            continue;
        }
        if !visited.insert(canonical) {
            continue;
        }
        for entry in fs::read_dir(&d).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            // metadata follows symlinks: a link that leads nowhere (or in a loop) is passed over.
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                Err(e) => {
                    tracing::debug!("passing over {}: {e}", path.display());
                    continue;
                }
            };
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file()
                && path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("fits"))
            {
                out.push(path);
            }
        }
    }
    Ok(out)
}

fn has_glob_meta(token: &str) -> bool {
    token.contains(['*', '?', '['])
}

/// The files of one token, or a message naming it.
fn expand_token(token: &str, exclude: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(token);
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.is_dir() {
        let mut files = fits_files_below(path, exclude).map_err(|e| search_failure(path, &e))?;
        if files.is_empty() {
            return Err(format!("directory {token} contains no .fits files"));
        }
        files.sort();
        return Ok(files);
    }
    if !has_glob_meta(token) {
        return Err(format!("no such file, directory or pattern: {token}"));
    }
    let entries =
        glob::glob(token).map_err(|e| format!("{token} is not a valid glob pattern: {e}"))?;
    let mut files = Vec::new();
    for entry in entries {
        let p = entry.map_err(|e| format!("pattern {token}: {e}"))?;
        if p.is_dir() {
            files.extend(fits_files_below(&p, exclude).map_err(|e| search_failure(&p, &e))?);
        } else if p.is_file() && !in_output_tree(&p, exclude) {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(format!("pattern {token} matches no files"));
    }
    files.sort();
    Ok(files)
}

fn in_output_tree(file: &Path, exclude: &[PathBuf]) -> bool {
    fs::canonicalize(file).is_ok_and(|c| exclude.iter().any(|x| c.starts_with(x)))
}

/// Turns input tokens into files, in token order: an existing file; a directory, searched
/// recursively for `*.fits` (sorted; `.fits.gz` is not searched for, give such files by name);
/// or a glob pattern (sorted matches; directories it matches are searched like directories).
/// Paths are made absolute with symlinks resolved, and duplicates are dropped keeping the first
/// occurrence. Every unusable token is listed in one error.
/// Directory and pattern searches leave out the output tree `exclude` (files given by name are
/// taken wherever they are).
pub fn expand_inputs(tokens: &[String], exclude: &[PathBuf]) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for token in tokens {
        match expand_token(token, exclude) {
            Ok(found) => {
                for f in found {
                    match fs::canonicalize(&f) {
                        Ok(abs) => {
                            if seen.insert(abs.clone()) {
                                files.push(abs);
                            }
                        }
                        Err(e) => problems.push(format!("{}: {e}", f.display())),
                    }
                }
            }
            Err(msg) => problems.push(msg),
        }
    }
    if problems.is_empty() {
        Ok(files)
    } else {
        Err(InputError::Tokens(problems))
    }
}

/// The tokens that name a file (not a directory or a pattern), made absolute: the inputs the
/// user gave by name.
pub fn named_files(tokens: &[String]) -> HashSet<PathBuf> {
    tokens
        .iter()
        .map(Path::new)
        .filter(|p| p.is_file())
        .filter_map(|p| fs::canonicalize(p).ok())
        .collect()
}

/// The files `basenamepattern` keeps and those it skips (for the summary).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Filtered {
    pub kept: Vec<PathBuf>,
    pub skipped: Vec<PathBuf>,
}

/// Keeps the files whose **basename** contains a match of `inputfiles.basenamepattern` (a
/// regex search; capture groups are ignored). Upstream searched the full path. `None` or an
/// empty pattern keeps everything.
pub fn filter_basenames(
    paths: Vec<PathBuf>,
    pattern: Option<&str>,
) -> Result<Filtered, InputError> {
    let re = match pattern {
        None | Some("") => {
            return Ok(Filtered {
                kept: paths,
                skipped: Vec::new(),
            });
        }
        Some(p) => Regex::new(p).map_err(|e| {
            InputError::Pattern(format!(
                "inputfiles.basenamepattern: '{p}' is not a valid regular expression: {e}"
            ))
        })?,
    };
    let (kept, skipped) = paths.into_iter().partition(|p| {
        p.file_name()
            .is_some_and(|n| re.is_match(&n.to_string_lossy()))
    });
    Ok(Filtered { kept, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, b"").unwrap();
    }

    fn s(p: &Path) -> String {
        p.to_str().unwrap().to_string()
    }

    #[test]
    fn expand_files_dirs_globs_and_dedup() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let a = root.join("a_uncal.fits");
        let b = root.join("sub/b_uncal.fits");
        let c = root.join("sub/deeper/c_uncal.FITS");
        let txt = root.join("sub/notes.txt");
        for p in [&a, &b, &c, &txt] {
            touch(p);
        }
        let canon = |p: &Path| fs::canonicalize(p).unwrap();
        let tokens = vec![
            s(&root.join("sub")),
            s(&a),
            s(&root.join("*.fits")),
            // The same file again through `..`: dropped.
            s(&root.join("sub/../a_uncal.fits")),
        ];
        let got = expand_inputs(&tokens, &[]).unwrap();
        assert_eq!(got, vec![canon(&b), canon(&c), canon(&a)]);
        assert!(got.iter().all(|p| p.is_absolute()));
    }

    #[test]
    fn an_unreadable_subdirectory_is_named_not_the_directory_searched() {
        let tmp = tempfile::tempdir().unwrap();
        let e = UnreadableDir {
            dir: tmp.path().join("data/locked"),
            error: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        let text = search_failure(&tmp.path().join("data"), &e);
        assert!(text.starts_with("searching directory "), "{text}");
        assert!(text.contains("cannot read directory "), "{text}");
        assert!(text.contains("data/locked: "), "{text}");
        assert!(text.contains("chmod u+rx"), "{text}");
        // Searched for real, where mode 000 is a barrier (not for root, who reads anything:
        // the e2e test runs mkrefs as another user then).
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return;
        }
        use std::os::unix::fs::PermissionsExt;
        let locked = tmp.path().join("data/locked");
        fs::create_dir_all(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
        let found = fits_files_below(&tmp.path().join("data"), &[]);
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(found.unwrap_err().dir, locked);
    }

    #[test]
    fn expand_reports_every_bad_token() {
        let tmp = tempfile::tempdir().unwrap();
        let empty = tmp.path().join("empty");
        fs::create_dir(&empty).unwrap();
        let tokens = vec![
            s(&tmp.path().join("missing.fits")),
            s(&tmp.path().join("*.nothing")),
            s(&empty),
        ];
        let InputError::Tokens(list) = expand_inputs(&tokens, &[]).unwrap_err() else {
            panic!("wrong error kind");
        };
        assert_eq!(list.len(), 3, "{list:?}");
        assert!(
            list[0].starts_with("no such file, directory or pattern: "),
            "{list:?}"
        );
        assert!(list[0].ends_with("missing.fits"));
        assert!(list[1].contains("matches no files"), "{list:?}");
        assert!(list[2].contains("contains no .fits files"), "{list:?}");
    }

    #[test]
    fn basename_filter_ignores_directories() {
        let paths = vec![
            PathBuf::from("/data/x_uncal.fits/a_rate.fits"),
            PathBuf::from("/data/b_uncal.fits"),
        ];
        let f = filter_basenames(paths.clone(), Some(r"(.*)_uncal\.fits$")).unwrap();
        assert_eq!(f.kept, vec![paths[1].clone()]);
        assert_eq!(f.skipped, vec![paths[0].clone()]);
        let f = filter_basenames(paths.clone(), None).unwrap();
        assert_eq!(f.kept, paths);
        let err = filter_basenames(paths, Some("(")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("inputfiles.basenamepattern: '('"),
            "{err}"
        );
    }
}
