//! Bad pixels from darks: HOT, RC, TELEGRAPH/noisy, low pedestal, pixels saturated in all
//! groups (bpm.md §3). Public interface first; the algorithm follows in the next commits.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::dq;

/// One dark exposure's files (the host resolves them from the configuration's
/// ssbsteps/ssb_save_steps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DarkInputs {
    /// A short name for messages (usually the exposure's base name).
    pub label: String,
    /// rate (2-D) or rateints (3-D) product.
    pub slope: PathBuf,
    /// The rateints product when `slope` is a rate file (per-integration slopes).
    pub rateints: Option<PathBuf>,
    /// The jump product (GROUPDQ with JUMP_DET / SATURATED per group).
    pub jump: Option<PathBuf>,
    /// The fitopt product (PEDESTAL).
    pub fitopt: Option<PathBuf>,
    /// The raw ramp (MIRI's second group).
    pub uncal: PathBuf,
}

/// Thresholds of upstream's badpix_from_darks (bpm.md §3.1, "dark_" prefixes dropped).
#[derive(Clone, Debug, PartialEq)]
pub struct DarkParams {
    pub clipping_sigma: f64,
    pub max_clipping_iters: usize,
    pub noisy_threshold: f64,
    pub max_saturated_fraction: f64,
    pub max_jump_limit: usize,
    pub jump_ratio_threshold: f64,
    pub early_cutoff_fraction: f64,
    pub pedestal_sigma_threshold: f64,
    pub rc_fraction_threshold: f64,
    pub low_pedestal_fraction: f64,
    pub high_cr_fraction: f64,
    pub flag_values: FlagValues,
    /// Lower-case class names: hot, rc, low_pedestal, high_cr.
    pub do_not_use: Vec<String>,
}

impl Default for DarkParams {
    /// Upstream's defaults (bpm.md §3.1).
    fn default() -> Self {
        DarkParams {
            clipping_sigma: 5.0,
            max_clipping_iters: 5,
            noisy_threshold: 5.0,
            max_saturated_fraction: 0.5,
            max_jump_limit: 10,
            jump_ratio_threshold: 5.0,
            early_cutoff_fraction: 0.25,
            pedestal_sigma_threshold: 5.0,
            rc_fraction_threshold: 0.8,
            low_pedestal_fraction: 0.8,
            high_cr_fraction: 0.8,
            flag_values: FlagValues::upstream_default(),
            do_not_use: ["hot", "rc", "low_pedestal", "high_cr"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// Upstream's flag_values: class name -> JWST DQ mnemonics (hot, rc, low_pedestal, high_cr, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlagValues(pub BTreeMap<String, Vec<String>>);

impl FlagValues {
    /// `{'hot': ['HOT'], 'rc': ['RC'], 'low_pedestal': ['OTHER_BAD_PIXEL'], 'high_cr': ['TELEGRAPH']}`.
    pub fn upstream_default() -> Self {
        let mut m = BTreeMap::new();
        m.insert("hot".to_string(), vec!["HOT".to_string()]);
        m.insert("rc".to_string(), vec!["RC".to_string()]);
        m.insert(
            "low_pedestal".to_string(),
            vec!["OTHER_BAD_PIXEL".to_string()],
        );
        m.insert("high_cr".to_string(), vec!["TELEGRAPH".to_string()]);
        FlagValues(m)
    }

    /// The DQ value of a class: the bitwise OR of its mnemonics (case-insensitive). An unknown
    /// class or mnemonic is an error naming it.
    pub fn value(&self, class: &str) -> Result<u32, String> {
        let names = self
            .0
            .get(class)
            .or_else(|| {
                self.0
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(class))
                    .map(|(_, v)| v)
            })
            .ok_or_else(|| format!("flag_values has no entry for the class {class:?}"))?;
        let mut v = 0u32;
        for n in names {
            v |= dq::flag_value(n)
                .ok_or_else(|| format!("flag_values[{class:?}]: unknown DQ flag mnemonic {n:?}"))?;
        }
        Ok(v)
    }
}

/// The result: a DQ map (ny*nx, row-major) with the mapped flag values (DO_NOT_USE added per
/// do_not_use), per-class pixel maps/counts for reports and tests, and the geometry.
#[derive(Clone, Debug, Default)]
pub struct DarkResult {
    pub ny: usize,
    pub nx: usize,
    pub dq: Vec<u32>,
    pub classes: BTreeMap<String, Vec<bool>>,
    pub notes: Vec<String>,
}

/// Finds the bad pixels of a set of dark exposures (bpm.md §3).
pub fn bad_pixels_from_darks(
    inputs: &[DarkInputs],
    params: &DarkParams,
    log: &dyn Fn(&str),
) -> Result<DarkResult, GeneratorError> {
    let _ = (inputs, params, log);
    Err(GeneratorError::internal(
        "bad_pixels_from_darks: not implemented yet",
    ))
}
