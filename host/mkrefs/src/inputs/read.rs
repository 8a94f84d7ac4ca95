//! Finding the input exposures and reading what the run needs from their primary headers
//! (framework.md §1.5, §3).
//!
//! Differences from upstream, on purpose:
//! - Tokens may be files, directories (searched recursively for `*.fits`) or glob patterns;
//!   upstream relied on the shell and took existing files only.
//! - Duplicates (also through symlinks or `..`) are removed, keeping the first occurrence;
//!   upstream made two rows for a file given twice.
//! - `basenamepattern` is searched in the **basename**, as its name says; upstream searched the
//!   whole absolute path, so a directory name could select or drop files.
//! - Every problem of every file (unreadable header, missing required key, no MJD, unknown
//!   dark/flat) is reported in one error, instead of stopping at the first.
//! - The MJD comes from `mjdobs_fitskey` when it is set and present (upstream's documented but
//!   unimplemented fallback), else from the date and time keys.
//! - Header reading is injected ([`ReadHeader`]) so that this module is tested without FITS files.

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use mkrefs_plugin_api::ImageKind;
use mkrefs_support::header::{Header, HeaderValue};
use regex::Regex;

use crate::inputs::classify::{ClassifyRules, classify};
use crate::inputs::group::sort_inputs;
use crate::prep::state::completed_steps;
use crate::prep::steps::Step;
use mkrefs_support::timeutil::iso_to_mjd;

/// Reads the primary header of a file; the error says why it could not.
pub type ReadHeader<'a> = dyn Fn(&Path) -> Result<Header, String> + 'a;

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

/// Every `*.fits` file below `dir` (extension compared ignoring case), following symlinks but
/// visiting each directory once. Unsorted.
pub(crate) fn fits_files_below(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut visited = HashSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if !visited.insert(fs::canonicalize(&d)?) {
            continue;
        }
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            // metadata follows symlinks; a dangling link is skipped.
            let Ok(meta) = fs::metadata(&path) else {
                continue;
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
fn expand_token(token: &str) -> Result<Vec<PathBuf>, String> {
    let path = Path::new(token);
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if path.is_dir() {
        let mut files =
            fits_files_below(path).map_err(|e| format!("cannot search directory {token}: {e}"))?;
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
            files.extend(
                fits_files_below(&p)
                    .map_err(|e| format!("cannot search directory {}: {e}", p.display()))?,
            );
        } else if p.is_file() {
            files.push(p);
        }
    }
    if files.is_empty() {
        return Err(format!("pattern {token} matches no files"));
    }
    files.sort();
    Ok(files)
}

/// Turns input tokens into files, in token order: an existing file; a directory, searched
/// recursively for `*.fits` (sorted; `.fits.gz` is not searched for, give such files by name);
/// or a glob pattern (sorted matches; directories it matches are searched like directories).
/// Paths are made absolute with symlinks resolved, and duplicates are dropped keeping the first
/// occurrence. Every unusable token is listed in one error.
pub fn expand_inputs(tokens: &[String]) -> Result<Vec<PathBuf>, InputError> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    let mut problems = Vec::new();
    for token in tokens {
        match expand_token(token) {
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

/// The header keys the configuration asks for (`inputfiles` section) and how to classify.
#[derive(Clone, Debug)]
pub struct InputKeys {
    /// `requiredfitskeys`; DETECTOR is required whether listed or not.
    pub required: Vec<String>,
    /// `optionalfitskeys`: kept when present.
    pub optional: Vec<String>,
    /// `dateobs_fitskey`: the date, or a full ISO date-time.
    pub dateobs: String,
    /// `timeobs_fitskey`: the time of day, appended to a date that has none.
    pub timeobs: Option<String>,
    /// `mjdobs_fitskey`: a numeric MJD, used in preference to the date when present.
    pub mjdobs: Option<String>,
    pub classify: ClassifyRules,
}

/// One input exposure, as the rest of the run sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct InputRow {
    /// Absolute, symlinks resolved.
    pub path: PathBuf,
    /// Only the collected keys: required, optional (when present), and the date/time/MJD keys.
    pub header: Header,
    pub mjd: f64,
    pub kind: ImageKind,
    pub detector: String,
    pub exp_type: Option<String>,
    /// Steps already done (its S_* keywords), kept so headers are read once.
    pub completed: BTreeSet<Step>,
}

fn value_str(v: &HeaderValue) -> String {
    match v {
        HeaderValue::Str(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

/// Reads every file's primary header and builds the rows, sorted by MJD then path (see
/// [`sort_inputs`]). All problems of all files are collected into one [`InputError::Files`].
pub fn read_inputs(
    paths: &[PathBuf],
    keys: &InputKeys,
    reader: &ReadHeader<'_>,
) -> Result<Vec<InputRow>, InputError> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    let mut required: Vec<&str> = vec!["DETECTOR"];
    for k in &keys.required {
        if !required.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            required.push(k);
        }
    }
    for path in paths {
        let problem = |key: Option<&str>, message: String| FileProblem {
            path: path.clone(),
            key: key.map(str::to_string),
            message,
        };
        let header = match reader(path) {
            Ok(h) => h,
            Err(e) => {
                problems.push(problem(
                    None,
                    format!("cannot read the primary header: {e}"),
                ));
                continue;
            }
        };
        let mut collected = Header::new();
        let mut ok = true;
        for key in &required {
            match header.get(key) {
                Some(v) => collected.set(key, v.clone()),
                None => {
                    ok = false;
                    let why = if key.eq_ignore_ascii_case("DETECTOR") {
                        "mkrefs groups inputs by detector".to_string()
                    } else {
                        "it is listed in inputfiles.requiredfitskeys; remove it from that list or leave this file out".to_string()
                    };
                    problems.push(problem(
                        Some(key),
                        format!("required header key {key} is missing ({why})"),
                    ));
                }
            }
        }
        let date_keys = [
            Some(&keys.dateobs),
            keys.timeobs.as_ref(),
            keys.mjdobs.as_ref(),
        ];
        for key in keys.optional.iter().chain(date_keys.into_iter().flatten()) {
            if let Some(v) = header.get(key) {
                collected.set(key, v.clone());
            }
        }
        let mjd = match header_mjd(&header, keys) {
            Ok(m) => Some(m),
            Err(e) => {
                problems.push(problem(Some(&keys.dateobs), e));
                None
            }
        };
        let exp_type = header.get("EXP_TYPE").map(value_str);
        let kind = match classify(path, exp_type.as_deref(), &keys.classify) {
            Ok(k) => Some(k),
            Err(e) => {
                let prefix = format!("{}: ", path.display());
                let msg = e.strip_prefix(&prefix).unwrap_or(&e).to_string();
                problems.push(problem(Some("EXP_TYPE"), msg));
                None
            }
        };
        let detector = header.get("DETECTOR").map(value_str).unwrap_or_default();
        if ok && detector.is_empty() {
            ok = false;
            problems.push(problem(
                Some("DETECTOR"),
                "header key DETECTOR is empty (mkrefs groups inputs by detector)".to_string(),
            ));
        }
        if let (true, Some(mjd), Some(kind)) = (ok, mjd, kind) {
            rows.push(InputRow {
                path: path.clone(),
                header: collected,
                mjd,
                kind,
                detector,
                exp_type,
                completed: completed_steps(&header),
            });
        }
    }
    if !problems.is_empty() {
        return Err(InputError::Files(problems));
    }
    sort_inputs(&mut rows);
    Ok(rows)
}

/// The MJD of one header: `mjdobs` when set, present and numeric; otherwise the date key (a
/// date, or a full ISO date-time) plus the time key when the date has no time of its own.
fn header_mjd(header: &Header, keys: &InputKeys) -> Result<f64, String> {
    let mut why_not_mjd = String::new();
    if let Some(k) = &keys.mjdobs {
        match header.get(k) {
            Some(v) => {
                let x = v
                    .as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()));
                match x {
                    Some(x) if x.is_finite() => return Ok(x),
                    _ => why_not_mjd = format!("{k} is not a number ('{v}'), and "),
                }
            }
            None => why_not_mjd = format!("{k} is missing, and "),
        }
    }
    let key_list = match &keys.timeobs {
        Some(t) => format!("{} and {t}", keys.dateobs),
        None => keys.dateobs.clone(),
    };
    let fail = |what: String| {
        Err(format!(
            "cannot work out the MJD: {why_not_mjd}{what}; check inputfiles.dateobs_fitskey, timeobs_fitskey and mjdobs_fitskey"
        ))
    };
    let date = match header.get(&keys.dateobs) {
        None => return fail(format!("{} is missing", keys.dateobs)),
        Some(HeaderValue::Str(s)) => s.trim().to_string(),
        Some(v) => return fail(format!("{} is not a date string ('{v}')", keys.dateobs)),
    };
    let (date, time) = if date.contains(['T', ' ']) {
        (date.replacen(' ', "T", 1), None)
    } else if let Some(t) = &keys.timeobs {
        match header.get(t) {
            None => return fail(format!("{t} is missing")),
            Some(HeaderValue::Str(s)) => (date, Some(s.trim().to_string())),
            Some(v) => return fail(format!("{t} is not a time string ('{v}')")),
        }
    } else {
        (date, None)
    };
    iso_to_mjd(&date, time.as_deref()).or_else(|e| fail(format!("{key_list}: {e}")))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A row for tests of later stages.
    pub(crate) fn row(path: &str, mjd: f64, kind: ImageKind, detector: &str) -> InputRow {
        InputRow {
            path: PathBuf::from(path),
            header: Header::new(),
            mjd,
            kind,
            detector: detector.to_string(),
            exp_type: None,
            completed: BTreeSet::new(),
        }
    }

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
        let got = expand_inputs(&tokens).unwrap();
        assert_eq!(got, vec![canon(&b), canon(&c), canon(&a)]);
        assert!(got.iter().all(|p| p.is_absolute()));
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
        let InputError::Tokens(list) = expand_inputs(&tokens).unwrap_err() else {
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

    fn keys() -> InputKeys {
        InputKeys {
            required: ["INSTRUME", "DETECTOR", "NGROUPS"]
                .map(String::from)
                .to_vec(),
            optional: ["FILTER", "PUPIL"].map(String::from).to_vec(),
            dateobs: "DATE-END".into(),
            timeobs: Some("TIME-END".into()),
            mjdobs: Some("MJD-END".into()),
            classify: ClassifyRules::with_defaults(),
        }
    }

    fn good(det: &str, date: &str, exp: &str) -> Header {
        let mut h = Header::new();
        h.set("INSTRUME", "NIRCAM");
        h.set("DETECTOR", det);
        h.set("NGROUPS", 10i64);
        h.set("FILTER", "F200W");
        h.set("DATE-END", date);
        h.set("TIME-END", "12:00:00");
        h.set("EXP_TYPE", exp);
        h.set("S_DQINIT", "COMPLETE");
        h.set("BUNIT", "DN");
        h
    }

    fn reader_of(map: HashMap<PathBuf, Header>) -> impl Fn(&Path) -> Result<Header, String> {
        move |p: &Path| {
            map.get(p)
                .cloned()
                .ok_or_else(|| "no such file".to_string())
        }
    }

    #[test]
    fn rows_collect_keys_mjd_kind_and_sort() {
        let mut map = HashMap::new();
        map.insert(
            PathBuf::from("/d/late.fits"),
            good("NRCA1", "2019-01-02", "NRC_DARK"),
        );
        let mut early = good("NRCA1", "2019-01-01", "NRC_FLAT");
        early.set("MJD-END", 58000.25);
        map.insert(PathBuf::from("/d/early.fits"), early);
        let paths = vec![
            PathBuf::from("/d/late.fits"),
            PathBuf::from("/d/early.fits"),
        ];
        let rows = read_inputs(&paths, &keys(), &reader_of(map)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].path, PathBuf::from("/d/early.fits"));
        assert_eq!(rows[0].mjd, 58000.25);
        assert_eq!(rows[0].kind, ImageKind::Flat);
        assert_eq!(
            rows[1].mjd,
            iso_to_mjd("2019-01-02T12:00:00", None).unwrap()
        );
        assert_eq!(rows[1].kind, ImageKind::Dark);
        assert_eq!(rows[1].detector, "NRCA1");
        assert_eq!(rows[1].exp_type.as_deref(), Some("NRC_DARK"));
        assert_eq!(rows[1].completed, [Step::DqInit].into_iter().collect());
        let h = &rows[1].header;
        assert_eq!(h.get_str("FILTER"), Some("F200W"));
        assert_eq!(h.get_i64("NGROUPS"), Some(10));
        assert_eq!(h.get_str("DATE-END"), Some("2019-01-02"));
        assert!(!h.contains("PUPIL"), "missing optional key is absent");
        assert!(!h.contains("BUNIT"), "keys not asked for are not collected");
        assert!(!h.contains("S_DQINIT"));
    }

    #[test]
    fn full_iso_date_needs_no_time_key() {
        let mut h = good("NRCA1", "2019-01-01T06:00:00", "NRC_DARK");
        h.set("TIME-END", "garbage");
        let mut k = keys();
        k.mjdobs = None;
        assert_eq!(
            header_mjd(&h, &k),
            Ok(iso_to_mjd("2019-01-01T06:00:00", None).unwrap())
        );
    }

    #[test]
    fn every_problem_of_every_file_is_listed() {
        let mut map = HashMap::new();
        // No DETECTOR, no NGROUPS, an EXP_TYPE that is neither dark nor flat.
        let mut h1 = Header::new();
        for (k, v) in good("NRCA1", "2019-01-01", "NRC_IMAGE").iter() {
            if k != "NGROUPS" && k != "DETECTOR" {
                h1.set(k, v.clone());
            }
        }
        map.insert(PathBuf::from("/d/one.fits"), h1);
        let mut h2 = good("NRCA1", "not a date", "NRC_DARK");
        h2.set("MJD-END", "soon");
        map.insert(PathBuf::from("/d/two.fits"), h2);
        map.insert(
            PathBuf::from("/d/ok.fits"),
            good("NRCA1", "2019-01-01", "NRC_DARK"),
        );
        let paths = ["/d/one.fits", "/d/two.fits", "/d/three.fits", "/d/ok.fits"]
            .map(PathBuf::from)
            .to_vec();
        let InputError::Files(list) = read_inputs(&paths, &keys(), &reader_of(map)).unwrap_err()
        else {
            panic!("wrong error kind");
        };
        let summary: Vec<(String, Option<String>)> = list
            .iter()
            .map(|p| (p.path.display().to_string(), p.key.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("/d/one.fits".into(), Some("DETECTOR".into())),
                ("/d/one.fits".into(), Some("NGROUPS".into())),
                ("/d/one.fits".into(), Some("EXP_TYPE".into())),
                ("/d/two.fits".into(), Some("DATE-END".into())),
                ("/d/three.fits".into(), None),
            ]
        );
        let msg = InputError::Files(list).to_string();
        assert!(
            msg.contains("/d/one.fits: required header key NGROUPS is missing"),
            "{msg}"
        );
        assert!(msg.contains("inputfiles.requiredfitskeys"), "{msg}");
        assert!(
            msg.contains(
                "/d/one.fits: cannot tell whether this is a dark or a flat: EXP_TYPE is 'NRC_IMAGE'"
            ),
            "{msg}"
        );
        assert!(msg.contains("MJD-END is not a number ('soon')"), "{msg}");
        assert!(msg.contains("DATE-END and TIME-END: date \"not\""), "{msg}");
        assert!(
            msg.contains("/d/three.fits: cannot read the primary header: no such file"),
            "{msg}"
        );
    }

    #[test]
    fn missing_date_keys_are_named() {
        let mut h = good("NRCA1", "2019-01-01", "NRC_DARK");
        let mut k = keys();
        k.timeobs = Some("TIME-OBS".into());
        let err = header_mjd(&h, &k).unwrap_err();
        assert!(
            err.contains("MJD-END is missing, and TIME-OBS is missing"),
            "{err}"
        );
        h.set("DATE-END", 5i64);
        let err = header_mjd(&h, &k).unwrap_err();
        assert!(err.contains("DATE-END is not a date string ('5')"), "{err}");
    }
}
