//! Instrument profiles: what mkrefs knows about an instrument and its detectors, as data.
//!
//! A profile is a YAML file (the bundled ones are in `plugins/support/profiles/`, one per JWST
//! instrument and TMT IRIS). Its keys:
//!
//! - `telescope`, `instrument`: the TELESCOP and INSTRUME values of its files (upper case);
//!   `names`: other spellings a configuration may use (`NIRCam`);
//! - `family`: `near-infrared` (a reference-pixel border on all four sides) or `mid-infrared`
//!   (MIRI: reference columns only, its own frame handling);
//! - `exp_type_prefix`, `dark_exp_types`, `flat_exp_types`: its EXP_TYPE values, those of
//!   darks and flats classify inputs (with `inputfiles.dark_exp_types`/`flat_exp_types`);
//! - `steps`: its calwebb_detector1 steps in pipeline order (the names of `ssbsteps`);
//! - `frame: {ny, nx}`: the full frame in DMS orientation, reference pixels included;
//!   `reference_pixels: {rows, columns}`: the width of the reference strips at the bottom and
//!   top, and at the left and right; `amplifiers`: the readout outputs;
//! - `detectors`: each DETECTOR value with its `fastaxis`, `slowaxis` and the `flip` (`x`,
//!   `y` or `none`) from DMS to detector orientation; `detector_aliases`: other names of them;
//! - `reference_files`: `crds_observatory` (the CRDS cache layout
//!   `references/<observatory>/<instrument>/`), `dq_flags` (the DQ flag table: `jwst`, the one
//!   table so far), `datamodels` (the DATAMODL of each reftype, and the model that validates
//!   it) and, for another observatory than JWST (whose files follow stdatamodels'
//!   enumerations), the `subarrays` its files may name.
//!
//! More profiles are read from `$MKREFS_PROFILE_PATH` (colon-separated files, or directories
//! whose `*.profile.yaml` files are read); mkrefs adds the plugin search path, so a profile
//! can sit beside the drop-ins that need it. A profile of an instrument that already has one
//! replaces it; one that does not load is skipped with a warning ([`profile_warnings`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::pipeline_steps::Step;

/// The bundled profiles, in the order of the `Instrument` constants.
const BUNDLED: [(&str, &str); 6] = [
    ("nircam.yaml", include_str!("../profiles/nircam.yaml")),
    ("niriss.yaml", include_str!("../profiles/niriss.yaml")),
    ("nirspec.yaml", include_str!("../profiles/nirspec.yaml")),
    ("miri.yaml", include_str!("../profiles/miri.yaml")),
    ("fgs.yaml", include_str!("../profiles/fgs.yaml")),
    ("iris.yaml", include_str!("../profiles/iris.yaml")),
];

/// The environment variable naming more profiles.
pub const PROFILE_PATH_VAR: &str = "MKREFS_PROFILE_PATH";

/// How an instrument's detectors are built, where the code must differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    NearInfrared,
    MidInfrared,
}

/// The flip that takes a DMS-oriented image to detector (readout) orientation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Flip {
    None,
    /// Reverse the columns (`V[:, ::-1]`).
    X,
    /// Reverse the rows (`V[::-1, :]`).
    Y,
}

/// One detector of a profile.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorDecl {
    #[serde(skip)]
    pub name: String,
    pub fastaxis: i32,
    pub slowaxis: i32,
    pub flip: Flip,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Frame {
    ny: usize,
    nx: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferencePixels {
    rows: usize,
    columns: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceFiles {
    crds_observatory: String,
    #[serde(default)]
    subarrays: Vec<String>,
    dq_flags: String,
    datamodels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    telescope: String,
    instrument: String,
    #[serde(default)]
    names: Vec<String>,
    family: Family,
    exp_type_prefix: String,
    dark_exp_types: Vec<String>,
    flat_exp_types: Vec<String>,
    steps: Vec<String>,
    frame: Frame,
    reference_pixels: ReferencePixels,
    amplifiers: usize,
    detectors: BTreeMap<String, DetectorDecl>,
    #[serde(default)]
    detector_aliases: BTreeMap<String, String>,
    reference_files: ReferenceFiles,
}

/// One instrument's profile, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Profile {
    pub telescope: String,
    pub instrument: String,
    pub names: Vec<String>,
    pub family: Family,
    pub exp_type_prefix: String,
    pub dark_exp_types: Vec<String>,
    pub flat_exp_types: Vec<String>,
    pub steps: Vec<Step>,
    pub frame_ny: usize,
    pub frame_nx: usize,
    pub refpix_rows: usize,
    pub refpix_columns: usize,
    pub amplifiers: usize,
    pub detectors: Vec<DetectorDecl>,
    /// (alias, detector), upper case.
    pub detector_aliases: Vec<(String, String)>,
    pub crds_observatory: String,
    /// SUBARRAY values its reference files may carry (JWST: stdatamodels' list applies).
    pub subarrays: Vec<String>,
    /// Reftype (upper case) → DATAMODL.
    pub datamodels: BTreeMap<String, String>,
    /// Where it was read from: `bundled <file>` or a path.
    pub source: String,
}

impl Profile {
    /// Parses and checks one profile; errors name the source and the key.
    pub fn parse(text: &str, source: &str) -> Result<Profile, String> {
        let f: ProfileFile =
            serde_yaml::from_str(text).map_err(|e| format!("instrument profile {source}: {e}"))?;
        let bad = |what: String| Err(format!("instrument profile {source}: {what}"));
        let steps = f
            .steps
            .iter()
            .map(|s| Step::from_name(s).ok_or(s))
            .collect::<Result<Vec<_>, _>>();
        let steps = match steps {
            Ok(s) => s,
            Err(s) => {
                return bad(format!(
                    "steps: '{s}' is not a calwebb_detector1 step mkrefs knows ({})",
                    Step::ALL.map(|s| s.name()).join(", ")
                ));
            }
        };
        if f.reference_files.dq_flags != "jwst" {
            return bad(format!(
                "reference_files.dq_flags: '{}' is not a DQ flag table mkrefs has; use jwst",
                f.reference_files.dq_flags
            ));
        }
        if f.frame.ny < 8 || f.frame.nx < 8 {
            return bad("frame: ny and nx must be at least 8".into());
        }
        if 2 * f.reference_pixels.rows >= f.frame.ny || 2 * f.reference_pixels.columns >= f.frame.nx
        {
            return bad("reference_pixels: the strips leave no science pixels".into());
        }
        if f.detectors.is_empty() {
            return bad("detectors: a profile needs at least one detector".into());
        }
        let upper = |s: &str| s.trim().to_ascii_uppercase();
        let detectors: Vec<DetectorDecl> = f
            .detectors
            .into_iter()
            .map(|(name, d)| DetectorDecl {
                name: upper(&name),
                ..d
            })
            .collect();
        let aliases: Vec<(String, String)> = f
            .detector_aliases
            .iter()
            .map(|(a, d)| (upper(a), upper(d)))
            .collect();
        if let Some((a, d)) = aliases
            .iter()
            .find(|(_, d)| !detectors.iter().any(|x| &x.name == d))
        {
            return bad(format!(
                "detector_aliases: {a} names {d}, which is not one of its detectors"
            ));
        }
        Ok(Profile {
            telescope: upper(&f.telescope),
            instrument: upper(&f.instrument),
            names: f.names,
            family: f.family,
            exp_type_prefix: upper(&f.exp_type_prefix),
            dark_exp_types: f.dark_exp_types.iter().map(|s| upper(s)).collect(),
            flat_exp_types: f.flat_exp_types.iter().map(|s| upper(s)).collect(),
            steps,
            frame_ny: f.frame.ny,
            frame_nx: f.frame.nx,
            refpix_rows: f.reference_pixels.rows,
            refpix_columns: f.reference_pixels.columns,
            amplifiers: f.amplifiers,
            detectors,
            detector_aliases: aliases,
            crds_observatory: f.reference_files.crds_observatory.to_ascii_lowercase(),
            subarrays: f
                .reference_files
                .subarrays
                .iter()
                .map(|s| upper(s))
                .collect(),
            datamodels: f
                .reference_files
                .datamodels
                .into_iter()
                .map(|(k, v)| (upper(&k), v))
                .collect(),
            source: source.to_string(),
        })
    }

    /// Whether `value` (an INSTRUME value or a configured name) names this instrument.
    pub fn is_named(&self, value: &str) -> bool {
        let v = value.trim();
        v.eq_ignore_ascii_case(&self.instrument)
            || self.names.iter().any(|n| n.eq_ignore_ascii_case(v))
    }

    /// The DATAMODL of a reftype's files, if the profile names one.
    pub fn datamodel(&self, reftype: &str) -> Option<&str> {
        self.datamodels
            .get(&reftype.to_ascii_uppercase())
            .map(String::as_str)
    }
}

struct Loaded {
    profiles: Vec<Profile>,
    warnings: Vec<String>,
}

static LOADED: OnceLock<Loaded> = OnceLock::new();

fn loaded() -> &'static Loaded {
    LOADED.get_or_init(|| {
        let extra = std::env::var_os(PROFILE_PATH_VAR)
            .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
            .unwrap_or_default();
        load(&extra)
    })
}

/// Every profile of this process: the bundled ones (in the `Instrument` constants' order, a
/// user's profile of the same instrument in its place), then new instruments.
pub fn profiles() -> &'static [Profile] {
    &loaded().profiles
}

/// What went wrong reading the profiles of `$MKREFS_PROFILE_PATH`, for the log.
pub fn profile_warnings() -> &'static [String] {
    &loaded().warnings
}

fn load(extra: &[PathBuf]) -> Loaded {
    let mut profiles: Vec<Profile> = BUNDLED
        .iter()
        .map(|(name, text)| {
            Profile::parse(text, &format!("bundled {name}"))
                .unwrap_or_else(|e| panic!("a bundled profile does not load: {e}"))
        })
        .collect();
    let mut warnings = Vec::new();
    for path in extra_files(extra, &mut warnings) {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                warnings.push(format!(
                    "instrument profile {} cannot be read: {e}",
                    path.display()
                ));
                continue;
            }
        };
        match Profile::parse(&text, &path.display().to_string()) {
            Ok(p) => match profiles.iter().position(|q| q.instrument == p.instrument) {
                Some(i) => profiles[i] = p,
                None => profiles.push(p),
            },
            Err(e) => warnings.push(format!("{e}; the profile is skipped")),
        }
    }
    Loaded { profiles, warnings }
}

/// The files named by the path entries: files as they are, `*.profile.yaml` of directories.
fn extra_files(entries: &[PathBuf], warnings: &mut Vec<String>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| !e.as_os_str().is_empty()) {
        if entry.is_file() {
            out.push(entry.clone());
            continue;
        }
        let Ok(read) = std::fs::read_dir(entry) else {
            if entry.exists() {
                warnings.push(format!(
                    "{PROFILE_PATH_VAR} entry {} cannot be read",
                    entry.display()
                ));
            }
            continue;
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| is_profile_file(p))
            .collect();
        files.sort();
        out.extend(files);
    }
    out
}

fn is_profile_file(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".profile.yaml") || n.ends_with(".profile.yml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_profiles_load_in_order() {
        let names: Vec<&str> = profiles().iter().map(|p| p.instrument.as_str()).collect();
        assert_eq!(
            &names[..6],
            ["NIRCAM", "NIRISS", "NIRSPEC", "MIRI", "FGS", "IRIS"]
        );
        let iris = &profiles()[5];
        assert_eq!((iris.telescope.as_str(), iris.frame_ny), ("TMT", 4096));
        assert_eq!(iris.datamodel("mask"), Some("TMTMaskModel"));
        assert_eq!(iris.crds_observatory, "tmt");
    }

    #[test]
    fn a_user_profile_replaces_or_adds_and_a_bad_one_is_named() {
        let dir = std::env::temp_dir().join(format!("mkrefs-profiles-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let nircam = BUNDLED[0].1.replace(
            "flat_exp_types: [NRC_FLAT, NRC_LED]",
            "flat_exp_types: [NRC_TACQ]",
        );
        std::fs::write(dir.join("a.profile.yaml"), nircam).unwrap();
        let roman = BUNDLED[5]
            .1
            .replace("instrument: IRIS", "instrument: WFI")
            .replace("names: [IRIS]", "names: []");
        std::fs::write(dir.join("b.profile.yaml"), roman).unwrap();
        std::fs::write(
            dir.join("c.profile.yaml"),
            BUNDLED[0].1.replace("rate]", "ratte]"),
        )
        .unwrap();
        std::fs::write(dir.join("ignored.yaml"), "not: a profile").unwrap();
        let l = load(std::slice::from_ref(&dir));
        assert_eq!(l.profiles[0].flat_exp_types, ["NRC_TACQ"]);
        assert_eq!(l.profiles[6].instrument, "WFI");
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(
            l.warnings[0].contains("c.profile.yaml: steps: 'ratte'"),
            "{:?}",
            l.warnings
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
