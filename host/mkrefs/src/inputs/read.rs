//! Reading what the run needs from each input's primary header: one [`InputRow`] per exposure.
//!
//! Differences from upstream, on purpose:
//! - Every problem of every file (unreadable header, missing required key, no MJD, unknown
//!   dark/flat) is reported in one error, instead of stopping at the first.
//! - The MJD comes from `mjdobs_fitskey` when it is set and present (upstream's documented but
//!   unimplemented fallback), else from the date and time keys.
//! - Header reading is injected ([`ReadHeader`]) so that this module is tested without FITS files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use mkrefs_support::header::{Header, HeaderValue};
use mkrefs_support::pipeline_steps::Step;
use mkrefs_support::timeutil::iso_to_mjd;

use crate::inputs::classify::{ClassifyRules, ImageKind, classify};
use crate::inputs::error::{FileProblem, InputError};

/// Reads the primary header of a file; the error says why it could not.
pub type ReadHeader<'a> = dyn Fn(&Path) -> Result<Header, String> + 'a;

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
    /// Other files of the same exposure given as inputs too (its pipeline products), which
    /// the product search tries first (see `inputs::exposure`).
    pub products: Vec<PathBuf>,
}

fn value_str(v: &HeaderValue) -> String {
    match v {
        HeaderValue::Str(s) => s.trim().to_string(),
        other => other.to_string(),
    }
}

/// The exposures read, and the files found by a directory or pattern search that are not
/// exposures (reference files, the simulator's truth...), left out.
#[derive(Debug, Default)]
pub struct Inventory {
    pub rows: Vec<InputRow>,
    pub not_exposures: Vec<(PathBuf, String)>,
}

/// Why a file is not an exposure mkrefs can use, if it is not: a reference file (REFTYPE), or a
/// file with neither EXP_TYPE nor the date key an exposure has.
fn not_an_exposure(header: &Header, keys: &InputKeys) -> Option<String> {
    if let Some(reftype) = header.get_str("REFTYPE") {
        return Some(format!("a {} reference file (REFTYPE)", reftype.trim()));
    }
    if header.get("EXP_TYPE").is_none() && header.get(&keys.dateobs).is_none() {
        return Some(format!(
            "neither EXP_TYPE nor {} in its primary header",
            keys.dateobs
        ));
    }
    None
}

/// Reads every file's primary header and builds the rows, sorted by MJD then path (see
/// [`sort_inputs`]). A file that is not an exposure is an error when `named` says the user
/// gave it by name, and is left out otherwise. All problems of all files are collected into
/// one [`InputError::Files`].
pub fn read_inputs(
    paths: &[PathBuf],
    keys: &InputKeys,
    reader: &ReadHeader<'_>,
    named: &dyn Fn(&Path) -> bool,
) -> Result<Inventory, InputError> {
    let mut rows = Vec::new();
    let mut not_exposures = Vec::new();
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
        if let Some(why) = not_an_exposure(&header, keys) {
            if named(path) {
                problems.push(problem(
                    None,
                    format!(
                        "not an exposure ({why}); give raw exposures or their pipeline products"
                    ),
                ));
            } else {
                not_exposures.push((path.clone(), why));
            }
            continue;
        }
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
                products: Vec::new(),
            });
        }
    }
    if !problems.is_empty() {
        return Err(InputError::Files(problems));
    }
    sort_inputs(&mut rows);
    Ok(Inventory {
        rows,
        not_exposures,
    })
}

/// Stable sort by MJD, then path: the order every later stage relies on.
pub fn sort_inputs(rows: &mut [InputRow]) {
    rows.sort_by(|a, b| a.mjd.total_cmp(&b.mjd).then_with(|| a.path.cmp(&b.path)));
}

/// The steps whose S_* keyword is exactly `COMPLETE` (trailing blanks ignored); `SKIPPED` and
/// other values count as not done. Every keyword of the map is read, whatever the instrument:
/// a step that was done is done, and reporting it lets the extra-steps check catch odd files.
pub fn completed_steps(header: &Header) -> BTreeSet<Step> {
    Step::ALL
        .into_iter()
        .filter(|s| header.get_str(s.keyword()).map(str::trim_end) == Some("COMPLETE"))
        .collect()
}

/// The MJD of one header: `mjdobs` when set, present and numeric; otherwise the date key (a
/// date, or a full ISO date-time) plus the time key when the date has no time of its own.
fn header_mjd(header: &Header, keys: &InputKeys) -> Result<f64, String> {
    configured_mjd(header, keys).or_else(|e| exposure_time_mjd(header, keys).ok_or(e))
}

/// The MJD every JWST product keeps when the date keys do not give one: jwst 3.0.0 writes its
/// rate, rateints and fitopt products without TIME-END, but with EXPEND (and EXPSTART), the
/// same instant as an MJD. Used for `DATE-END` (EXPEND) and `DATE-OBS`/`DATE-BEG` (EXPSTART)
/// only, so the fallback means what the configured keys mean.
fn exposure_time_mjd(header: &Header, keys: &InputKeys) -> Option<f64> {
    let key = match keys.dateobs.to_ascii_uppercase().as_str() {
        "DATE-END" => "EXPEND",
        "DATE-OBS" | "DATE-BEG" => "EXPSTART",
        _ => return None,
    };
    header.get(key)?.as_f64().filter(|x| x.is_finite())
}

/// The MJD the configured keys give: `mjdobs_fitskey`, else the date and time keys.
fn configured_mjd(header: &Header, keys: &InputKeys) -> Result<f64, String> {
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
            products: Vec::new(),
        }
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
            classify: ClassifyRules::builtin(),
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
        let rows = read_inputs(&paths, &keys(), &reader_of(map), &|_| true)
            .unwrap()
            .rows;
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
        let InputError::Files(list) =
            read_inputs(&paths, &keys(), &reader_of(map), &|_| true).unwrap_err()
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
    fn files_that_are_not_exposures_are_left_out_unless_named() {
        let mut truth = Header::new();
        truth.set("INSTRUME", "NIRCAM");
        truth.set("DETECTOR", "NRCA1");
        let mut reference = good("NRCA1", "2024-01-01", "NRC_DARK");
        reference.set("REFTYPE", "MASK");
        let map = HashMap::from([
            (PathBuf::from("/d/truth.fits"), truth),
            (PathBuf::from("/d/mask.fits"), reference),
            (
                PathBuf::from("/d/a_uncal.fits"),
                good("NRCA1", "2024-01-01", "NRC_DARK"),
            ),
        ]);
        let paths: Vec<PathBuf> = map.keys().cloned().collect();
        let found = read_inputs(&paths, &keys(), &reader_of(map.clone()), &|_| false).unwrap();
        assert_eq!(found.rows.len(), 1);
        let mut left: Vec<String> = found
            .not_exposures
            .iter()
            .map(|(p, why)| format!("{}: {why}", p.display()))
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "/d/mask.fits: a MASK reference file (REFTYPE)",
                "/d/truth.fits: neither EXP_TYPE nor DATE-END in its primary header"
            ]
        );
        let named = |p: &Path| p.ends_with("truth.fits");
        let InputError::Files(list) =
            read_inputs(&paths, &keys(), &reader_of(map), &named).unwrap_err()
        else {
            panic!("a named non-exposure is a file problem")
        };
        assert_eq!(list.len(), 1);
        assert!(
            list[0]
                .message
                .starts_with("not an exposure (neither EXP_TYPE"),
            "{list:?}"
        );
    }

    #[test]
    fn a_product_without_the_time_key_takes_the_exposure_time_in_mjd() {
        // jwst writes rate products without TIME-END but with EXPEND.
        let mut h = Header::new();
        for (k, v) in good("NRCA1", "2024-01-01", "NRC_DARK").iter() {
            if k != "TIME-END" {
                h.set(k, v.clone());
            }
        }
        let no_mjd = InputKeys {
            mjdobs: None,
            ..keys()
        };
        assert!(header_mjd(&h, &no_mjd).is_err());
        h.set("EXPEND", 60310.5);
        assert_eq!(header_mjd(&h, &no_mjd), Ok(60310.5));
        // EXPEND stands for DATE-END only.
        let start = InputKeys {
            dateobs: "DATE-OBS".into(),
            ..no_mjd
        };
        assert!(header_mjd(&h, &start).is_err());
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
