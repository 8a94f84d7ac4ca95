//! Reference files for the calibration steps (`reffile4ssb`, which upstream documented and never
//! built): per reftype, a file path or glob pattern, `SELF` (the reference file this run makes
//! for that reftype) or `CRDS` (the crds client's best reference where it is installed and
//! configured, see [`crate::prep::crds`]; otherwise the best file of a local CRDS cache).
//!
//! ```yaml
//! reffile4ssb:              # top level: for every reflabel
//!   mask: /refs/jwst_nircam_mask_*.fits
//!   superbias: SELF         # the superbias this run makes feeds the darks' superbias step
//!   linearity: CRDS
//! dark:
//!   reffile4ssb:            # in a reflabel section: for that reflabel's inputs, over the top level
//!     superbias: /refs/my_superbias.fits
//! ```
//!
//! A pattern may match reference files of several detectors and subarrays: the file used for an
//! exposure is the one whose REFTYPE matches, whose DETECTOR is the exposure's, whose SUBARRAY is
//! the exposure's (else a FULL frame, which the steps cut down), and, among those, whose USEAFTER
//! is the latest not after the exposure. CRDS selection from a local cache (`$CRDS_PATH`,
//! `references/jwst/<instrument>/`), the fallback when the crds client cannot be used, uses the
//! same rules, plus READPATT for the reftypes whose CRDS rules select on it, and asks no server.
//! Every choice is logged with its reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrefs_support::fits::read_primary_header;
use mkrefs_support::header::Header;

use crate::config::Provenance;
use crate::config::aliases::canonical_reftype;
use crate::config::tree::{Node, NodeValue};

/// Where a step's reference file comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum RefSource {
    /// A file path or glob pattern.
    Files(String),
    /// The reference file of that reftype made in this run.
    SelfMade,
    /// The crds client's best reference, else the best match in the local CRDS cache
    /// (`crds::resolve`).
    Crds,
}

/// The `reffile4ssb` settings that apply to one reflabel: reftype (lower case) -> source, with
/// where each was set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RefConfig {
    pub sources: BTreeMap<String, (RefSource, Provenance)>,
}

fn parse_source(text: &str) -> RefSource {
    match text.trim() {
        t if t.eq_ignore_ascii_case("self") => RefSource::SelfMade,
        t if t.eq_ignore_ascii_case("crds") => RefSource::Crds,
        t => RefSource::Files(t.to_string()),
    }
}

impl RefConfig {
    /// Reads `reffile4ssb` from the top level of the merged configuration and from the
    /// reflabel's section (which wins), e.g. `tree.get("reffile4ssb")`.
    pub fn from_config(top: Option<&Node>, section: Option<&Node>) -> Result<RefConfig, String> {
        let mut cfg = RefConfig::default();
        for node in [top, section].into_iter().flatten() {
            if matches!(node.value, NodeValue::Null) {
                continue;
            }
            if !matches!(node.value, NodeValue::Map(_)) {
                return Err(format!(
                    "{}: reffile4ssb must be a mapping of reftype to a file, a glob pattern, SELF \
                     or CRDS, e.g. `superbias: SELF`",
                    node.source
                ));
            }
            for (key, value) in node.entries() {
                let reftype = canonical_reftype(key);
                if matches!(value.value, NodeValue::Null) {
                    // Not set here; a section's null also clears the top level's value.
                    cfg.sources.remove(&reftype);
                    continue;
                }
                let NodeValue::Str(text) = &value.value else {
                    return Err(format!(
                        "{}: reffile4ssb key {key} must be a file, a glob pattern, SELF or CRDS",
                        value.source
                    ));
                };
                cfg.sources
                    .insert(reftype, (parse_source(text), value.source.clone()));
            }
        }
        Ok(cfg)
    }

    /// The source of a reftype, or an error naming the step, the reftype and the key to set.
    pub fn source(&self, step: &str, reftype: &str) -> Result<&RefSource, String> {
        self.sources
            .get(&reftype.to_ascii_lowercase())
            .map(|(s, _)| s)
            .ok_or_else(|| {
                format!(
                    "the {step} step needs a {} reference file and none is configured: set \
                     reffile4ssb.{} (a file or glob pattern, SELF or CRDS) in the configuration",
                    reftype.to_ascii_uppercase(),
                    reftype.to_ascii_lowercase()
                )
            })
    }
}

/// What an exposure needs a reference file to match.
#[derive(Clone, Debug, PartialEq)]
pub struct ExposureKeys {
    pub instrument: String,
    pub detector: String,
    pub subarray: String,
    pub readpatt: Option<String>,
    /// `YYYY-MM-DDThh:mm:ss` of the exposure start.
    pub date: String,
}

impl ExposureKeys {
    /// From an exposure's primary header (INSTRUME, DETECTOR, SUBARRAY, READPATT, DATE-OBS
    /// and TIME-OBS).
    pub fn from_header(path: &Path, h: &Header) -> Result<ExposureKeys, String> {
        let get = |k: &str| {
            h.get_str(k)
                .map(|s| s.trim().to_ascii_uppercase())
                .ok_or_else(|| format!("{}: primary header key {k} is missing", path.display()))
        };
        let date = get("DATE-OBS")?;
        let time = h
            .get_str("TIME-OBS")
            .unwrap_or("00:00:00")
            .trim()
            .to_string();
        Ok(ExposureKeys {
            instrument: get("INSTRUME")?,
            detector: get("DETECTOR")?,
            subarray: get("SUBARRAY")?,
            readpatt: h.get_str("READPATT").map(|s| s.trim().to_ascii_uppercase()),
            date: if date.contains('T') {
                date
            } else {
                format!("{date}T{time}")
            },
        })
    }
}

/// Reftypes whose CRDS rules also select on READPATT (NIR instruments).
const SELECTS_ON_READPATT: &[&str] = &["dark", "readnoise", "superbias"];

/// A candidate and why it was or was not taken.
struct Candidate {
    path: PathBuf,
    /// 0: exact subarray, 1: FULL frame to cut down.
    rank: u8,
    useafter: String,
}

/// Chooses the reference file of `reftype` for an exposure among `files`; `readpatt` also
/// selects when asked. Errors list every candidate and why it was refused.
fn choose(
    reftype: &str,
    files: &[PathBuf],
    exposure: &ExposureKeys,
    readpatt: bool,
) -> Result<(PathBuf, String), String> {
    let mut refused = Vec::new();
    let mut ok = Vec::new();
    for path in files {
        let h = match read_primary_header(path) {
            Ok(h) => h,
            Err(e) => {
                refused.push(format!("{}: {}", path.display(), e.message));
                continue;
            }
        };
        let key = |k: &str| h.get_str(k).map(|s| s.trim().to_ascii_uppercase());
        let why = if !key("REFTYPE").is_some_and(|r| r.eq_ignore_ascii_case(reftype)) {
            Some(format!("REFTYPE is {}", key("REFTYPE").unwrap_or_default()))
        } else if key("INSTRUME").is_none_or(|i| i != exposure.instrument) {
            Some(format!(
                "INSTRUME is {}",
                key("INSTRUME").unwrap_or_default()
            ))
        } else if !key("DETECTOR").is_some_and(|d| d == exposure.detector || d == "ANY") {
            Some(format!(
                "DETECTOR is {}",
                key("DETECTOR").unwrap_or_default()
            ))
        } else if readpatt
            && !key("READPATT")
                .is_some_and(|r| r == "ANY" || exposure.readpatt.as_deref().is_some_and(|e| e == r))
        {
            Some(format!(
                "READPATT is {}",
                key("READPATT").unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(why) = why {
            refused.push(format!("{}: {why}", path.display()));
            continue;
        }
        let sub = key("SUBARRAY").unwrap_or_default();
        let rank = if sub == exposure.subarray {
            0
        } else if sub == "FULL" || sub == "GENERIC" {
            1
        } else {
            refused.push(format!("{}: SUBARRAY is {sub}", path.display()));
            continue;
        };
        let useafter = key("USEAFTER").unwrap_or_default().replace(' ', "T");
        if useafter.as_str() > exposure.date.as_str() {
            refused.push(format!(
                "{}: USEAFTER {useafter} is after the exposure ({})",
                path.display(),
                exposure.date
            ));
            continue;
        }
        ok.push(Candidate {
            path: path.clone(),
            rank,
            useafter,
        });
    }
    // Exact subarray first, then the latest USEAFTER, then the path for a stable choice.
    ok.sort_by(|a, b| {
        a.rank
            .cmp(&b.rank)
            .then(b.useafter.cmp(&a.useafter))
            .then(a.path.cmp(&b.path))
    });
    match ok.first() {
        Some(c) => Ok((
            c.path.clone(),
            format!(
                "{} for {} {} {}: {}, USEAFTER {}",
                reftype.to_ascii_uppercase(),
                exposure.detector,
                exposure.subarray,
                exposure.date,
                if c.rank == 0 {
                    "same subarray"
                } else {
                    "full frame, cut to the subarray"
                },
                c.useafter
            ),
        )),
        None => Err(format!(
            "no {} reference file fits {} {} {} ({} candidate(s){})",
            reftype.to_ascii_uppercase(),
            exposure.detector,
            exposure.subarray,
            exposure.date,
            files.len(),
            if refused.is_empty() {
                String::new()
            } else {
                format!(": {}", refused.join("; "))
            }
        )),
    }
}

/// The file a path or glob pattern gives for an exposure, and why.
pub fn select_from_pattern(
    pattern: &str,
    reftype: &str,
    exposure: &ExposureKeys,
) -> Result<(PathBuf, String), String> {
    let files: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| format!("reffile4ssb.{reftype} '{pattern}' is not a valid pattern: {e}"))?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    if files.is_empty() {
        return Err(format!(
            "reffile4ssb.{reftype} '{pattern}' matches no file; give a path or a glob pattern \
             of existing reference files"
        ));
    }
    choose(reftype, &files, exposure, false)
        .map_err(|e| format!("reffile4ssb.{reftype} '{pattern}': {e}"))
}

/// The CRDS observatory of an instrument (its profile's `crds_observatory`; `jwst` for one
/// without a profile).
pub fn observatory(instrument: &str) -> String {
    mkrefs_support::geometry::Instrument::from_header(instrument).map_or_else(
        || "jwst".to_string(),
        |i| i.profile().crds_observatory.clone(),
    )
}

/// The best file of a local CRDS cache (`<crds_path>/references/<observatory>/<instrument>/`,
/// the observatory from the instrument's profile: `jwst`, `tmt` for IRIS).
pub fn select_from_crds_cache(
    crds_path: &Path,
    reftype: &str,
    exposure: &ExposureKeys,
) -> Result<(PathBuf, String), String> {
    let dir = crds_path
        .join("references")
        .join(observatory(&exposure.instrument))
        .join(exposure.instrument.to_ascii_lowercase());
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|e| {
            format!(
                "reffile4ssb.{reftype} is CRDS, but the CRDS cache {} cannot be read ({e}); set \
                 CRDS_PATH to a cache that holds the {} references, or give files instead",
                dir.display(),
                exposure.instrument
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "fits"))
        .collect();
    let readpatt = SELECTS_ON_READPATT.contains(&reftype.to_ascii_lowercase().as_str());
    choose(reftype, &files, exposure, readpatt)
        .map_err(|e| format!("CRDS cache {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::fits::FitsWriter;
    use mkrefs_support::header::HeaderValue;

    fn reference(dir: &Path, name: &str, keys: &[(&str, &str)]) -> PathBuf {
        let path = dir.join(name);
        let mut w = FitsWriter::create(&path).unwrap();
        for (k, v) in keys {
            w.set_primary_key(k, &HeaderValue::Str(v.to_string()), "")
                .unwrap();
        }
        w.write_image::<f32>("SCI", &[2, 2], &[0.0; 4]).unwrap();
        w.finish().unwrap()
    }

    fn exposure(subarray: &str) -> ExposureKeys {
        ExposureKeys {
            instrument: "NIRCAM".into(),
            detector: "NRCA1".into(),
            subarray: subarray.into(),
            readpatt: Some("RAPID".into()),
            date: "2025-06-01T00:00:00".into(),
        }
    }

    fn superbias(dir: &Path, name: &str, det: &str, sub: &str, useafter: &str) -> PathBuf {
        reference(
            dir,
            name,
            &[
                ("REFTYPE", "SUPERBIAS"),
                ("INSTRUME", "NIRCAM"),
                ("DETECTOR", det),
                ("SUBARRAY", sub),
                ("READPATT", "ANY"),
                ("USEAFTER", useafter),
            ],
        )
    }

    #[test]
    fn the_file_of_the_exposures_detector_subarray_and_date_is_chosen() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        superbias(
            d,
            "a1_full_old.fits",
            "NRCA1",
            "FULL",
            "2015-01-01T00:00:00",
        );
        let full_new = superbias(
            d,
            "a1_full_new.fits",
            "NRCA1",
            "FULL",
            "2022-01-01T00:00:00",
        );
        superbias(
            d,
            "a1_full_future.fits",
            "NRCA1",
            "FULL",
            "2030-01-01T00:00:00",
        );
        superbias(d, "a2_full.fits", "NRCA2", "FULL", "2022-01-01T00:00:00");
        let sub = superbias(
            d,
            "a1_sub160.fits",
            "NRCA1",
            "SUB160",
            "2016-01-01T00:00:00",
        );
        let pattern = format!("{}/*.fits", d.display());
        let (chosen, why) = select_from_pattern(&pattern, "superbias", &exposure("FULL")).unwrap();
        assert_eq!(chosen, full_new, "{why}");
        assert!(why.contains("USEAFTER 2022-01-01T00:00:00"), "{why}");
        // An exact subarray wins over a full frame to cut.
        let (chosen, why) =
            select_from_pattern(&pattern, "superbias", &exposure("SUB160")).unwrap();
        assert_eq!(chosen, sub, "{why}");
        // Nothing for another detector: every candidate is listed with its reason.
        let mut other = exposure("FULL");
        other.detector = "NRCB1".into();
        let err = select_from_pattern(&pattern, "superbias", &other).unwrap_err();
        assert!(err.contains("a2_full.fits: DETECTOR is NRCA2"), "{err}");
        // A file of another reftype is refused.
        let err = select_from_pattern(&pattern, "dark", &exposure("FULL")).unwrap_err();
        assert!(err.contains("REFTYPE is SUPERBIAS"), "{err}");
        let err = select_from_pattern("/no/such/*.fits", "mask", &exposure("FULL")).unwrap_err();
        assert!(err.contains("matches no file"), "{err}");
    }

    #[test]
    fn the_crds_cache_selects_on_readpatt_where_crds_does() {
        let dir = tempfile::tempdir().unwrap();
        let nircam = dir.path().join("references/jwst/nircam");
        std::fs::create_dir_all(&nircam).unwrap();
        let keys = |readpatt: &'static str| {
            vec![
                ("REFTYPE", "DARK"),
                ("INSTRUME", "NIRCAM"),
                ("DETECTOR", "NRCA1"),
                ("SUBARRAY", "FULL"),
                ("READPATT", readpatt),
                ("USEAFTER", "2022-01-01T00:00:00"),
            ]
        };
        reference(&nircam, "jwst_nircam_dark_0001.fits", &keys("SHALLOW4"));
        let rapid = reference(&nircam, "jwst_nircam_dark_0002.fits", &keys("RAPID"));
        let (chosen, _) = select_from_crds_cache(dir.path(), "dark", &exposure("FULL")).unwrap();
        assert_eq!(chosen, rapid);
        let err =
            select_from_crds_cache(Path::new("/no/cache"), "dark", &exposure("FULL")).unwrap_err();
        assert!(err.contains("CRDS_PATH"), "{err}");
    }

    #[test]
    fn reffile4ssb_merges_top_level_and_section_and_names_missing_keys() {
        let src = |p: &str| Provenance::File {
            path: PathBuf::from(p),
            line: None,
        };
        let map = |entries: Vec<(&str, &str)>, file: &str| Node {
            value: NodeValue::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            Node {
                                value: NodeValue::Str(v.to_string()),
                                source: src(file),
                            },
                        )
                    })
                    .collect(),
            ),
            source: src(file),
        };
        let top = map(
            vec![("mask", "/refs/*.fits"), ("superbias", "CRDS")],
            "main.yaml",
        );
        let section = map(vec![("Superbias", "self")], "main.yaml");
        let cfg = RefConfig::from_config(Some(&top), Some(&section)).unwrap();
        assert_eq!(
            cfg.source("dq_init", "MASK").unwrap(),
            &RefSource::Files("/refs/*.fits".into())
        );
        assert_eq!(
            cfg.source("superbias", "superbias").unwrap(),
            &RefSource::SelfMade
        );
        let err = cfg.source("linearity", "linearity").unwrap_err();
        assert!(
            err.contains("linearity step needs a LINEARITY reference file"),
            "{err}"
        );
        assert!(err.contains("reffile4ssb.linearity"), "{err}");
    }
}
