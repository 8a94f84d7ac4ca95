//! The dark search's parameters, class names and per-class DQ values, shared by its steps.

use std::collections::BTreeMap;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::dq;

/// Thresholds of upstream's badpix_from_darks ("dark_" prefixes dropped).
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
    /// HOT from slopes: an integration's slope is hot at `median + hot_sigma_threshold·sd` of
    /// its image (the later master hard-codes 5).
    pub hot_sigma_threshold: f64,
    /// HOT from slopes: the fraction of integrations (with a finite slope) that must be hot
    /// (the later master's `hot_pix_frac_threshold`, 0.75).
    pub hot_fraction_threshold: f64,
    pub flag_values: FlagValues,
    /// Lower-case class names: hot, rc, low_pedestal, high_cr.
    pub do_not_use: Vec<String>,
}

impl Default for DarkParams {
    /// Upstream's defaults.
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
            hot_sigma_threshold: 5.0,
            hot_fraction_threshold: 0.75,
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

/// Clean slopes a pixel needs for the noise test (upstream's `num_good < 5` rule).
pub const MIN_CLEAN_SLOPES: usize = 5;

/// Class names of [`DarkResult::classes`]. The flagged classes: `hot` (unsaturated hot pixels
/// from the slopes), `saturated` (saturated in all groups), `rc`, `low_pedestal`, `high_cr`
/// (the TELEGRAPH class: `many_jumps` or `frequent_jumps`) and `noisy` (`flag_values['noisy']`,
/// by default high_cr's flags). Their parts, for reports: `rc_from_pedestal`, `rc_from_jumps`,
/// `rc_from_transient`, `noisy_against_population`, `noisy_against_err`,
/// `noisy_from_differences`, `many_jumps`, `frequent_jumps`; and `reference_pixel`.
pub const CLASS_NAMES: [&str; 15] = [
    "hot",
    "saturated",
    "rc",
    "rc_from_pedestal",
    "rc_from_jumps",
    "rc_from_transient",
    "low_pedestal",
    "high_cr",
    "noisy",
    "noisy_against_population",
    "noisy_against_err",
    "noisy_from_differences",
    "many_jumps",
    "frequent_jumps",
    "reference_pixel",
];

/// Per-integration thresholds from the whole-image statistics (step 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IntStats {
    pub(crate) ped_lo: f64,
    pub(crate) ped_hi: f64,
    pub(crate) hot: f64,
    /// Raw first-group level above which a first-group-saturated pixel is saturated of its
    /// own (the clipped mean plus `pedestal_sigma_threshold` clipped sd of the raw levels);
    /// None without the raw ramp.
    pub(crate) raw_hi: Option<f64>,
}

/// The DQ value of each flagged class, DO_NOT_USE included where asked.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ClassValues {
    pub(crate) hot: u32,
    pub(crate) saturated: u32,
    pub(crate) rc: u32,
    pub(crate) low_pedestal: u32,
    pub(crate) high_cr: u32,
    /// Noisy pixels: `flag_values['noisy']` when given, else `high_cr` (upstream).
    pub(crate) noisy: u32,
}

impl ClassValues {
    pub(crate) fn new(p: &DarkParams) -> Result<Self, GeneratorError> {
        let fv = &p.flag_values;
        let known = |c: &str| {
            c == "saturated" || c == "noisy" || fv.0.keys().any(|k| k.eq_ignore_ascii_case(c))
        };
        let mut dnu = Vec::new();
        for c in &p.do_not_use {
            let c = c.trim().to_ascii_lowercase();
            if !known(&c) {
                return Err(GeneratorError::invalid_parameter(format!(
                    "dark_do_not_use: unknown class {c:?}; use class names of flag_values \
                     (hot, rc, low_pedestal, high_cr)"
                )));
            }
            dnu.push(c);
        }
        let value = |class: &str| -> Result<u32, GeneratorError> {
            let v = fv.value(class).map_err(GeneratorError::invalid_parameter)?;
            Ok(if dnu.iter().any(|d| d == class) {
                v | dq::DO_NOT_USE
            } else {
                v
            })
        };
        let has = |class: &str| fv.0.keys().any(|k| k.eq_ignore_ascii_case(class));
        let has_sat = has("saturated");
        let hot = value("hot")?;
        let saturated = if has_sat {
            value("saturated")?
        } else if dnu.iter().any(|d| d == "saturated") {
            hot | dq::DO_NOT_USE
        } else {
            hot
        };
        let high_cr = value("high_cr")?;
        let noisy = if has("noisy") {
            value("noisy")?
        } else if dnu.iter().any(|d| d == "noisy") {
            high_cr | dq::DO_NOT_USE
        } else {
            high_cr
        };
        Ok(ClassValues {
            hot,
            saturated,
            rc: value("rc")?,
            low_pedestal: value("low_pedestal")?,
            high_cr,
            noisy,
        })
    }
}
