//! The parameters of the bpm generator: every parameter of upstream's `bad_pixels()` with its
//! name and default, the few mkrefs additions, and their checked values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::dq;
use mkrefs_support::job::JobView;
use mkrefs_support::jobparams::{Budget, Ignored, Metadata, MetadataParams, finite};
use mkrefs_support::params::{Declare, Kind, Param, null_like};

use crate::darks::{DarkParams, FlagValues};
use crate::flats::{AdjOpen, DeadSearchType, FlatParams, Normalization, SmoothingType};
use crate::manual::ManualSource;

/// Upstream parameters whose job the host does now.
pub const IGNORED: &[Ignored] = &[Ignored::new(
    "output_file",
    Kind::String,
    "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
)];

/// Upstream's default `flag_values`, as the JSON text the parameter holds.
pub const DEFAULT_FLAG_VALUES: &str = r#"{"hot": ["HOT"], "rc": ["RC"], "low_pedestal": ["OTHER_BAD_PIXEL"], "high_cr": ["TELEGRAPH"]}"#;

/// The classes of the dark search that `flag_values` must map.
pub const DARK_CLASSES: [&str; 4] = ["hot", "rc", "low_pedestal", "high_cr"];

/// A band of 4 full-frame rate planes and their outputs is a few MiB; 256 MiB keeps the whole
/// frame of up to ~20 flats in one band and bounds memory beyond that.
pub const DEFAULT_BUDGET_MB: i64 = 256;

// Flats (upstream's flat-search parameters, prefixed as its wrapper names them).
pub const DEAD_SEARCH: Param<bool> =
    Param::new("dead_search", true, "Search the flats for DEAD pixels.");
pub const LOW_QE_AND_OPEN_SEARCH: Param<bool> = Param::new(
    "low_qe_and_open_search",
    true,
    "Search the flats for LOW_QE, OPEN and ADJ_OPEN pixels.",
);
pub const DEAD_SEARCH_TYPE: Param<String> = Param::new(
    "dead_search_type",
    "sigma_rate",
    "'sigma_rate': DEAD below the clipped mean minus dead_sigma_threshold clipped stds \
     of the normalised flat; 'absolute_rate': DEAD below max_dead_norm_signal.",
)
.one_of(&DeadSearchType::CHOICES);
pub const FLAT_MEAN_SIGMA_THRESHOLD: Param<f64> = Param::new(
    "flat_mean_sigma_threshold",
    3.0,
    "Sigma of the per-pixel clip of the flat slopes and of the clip of the normalised \
     image's statistics.",
)
.above(0.0);
pub const FLAT_MEAN_NORMALIZATION_METHOD: Param<String> = Param::new(
    "flat_mean_normalization_method",
    "smoothed",
    "How the mean flat is normalised: 'smoothed' (divided by a smoothed copy), 'mean' \
     (by its clipped mean) or 'none'.",
)
.one_of(&Normalization::CHOICES);
pub const SMOOTHING_BOX_WIDTH: Param<f64> = Param::new(
    "smoothing_box_width",
    15.0,
    "Width in pixels of the smoothing kernel ('smoothed' normalisation).",
)
.at_least(1.0);
pub const SMOOTHING_TYPE: Param<String> = Param::new(
    "smoothing_type",
    "Box2D",
    "'Box2D' (mean over the box, astropy convolve) or 'Median' (median filter); \
     case-insensitive.",
)
.one_of(&SmoothingType::CHOICES);
pub const DEAD_SIGMA_THRESHOLD: Param<f64> = Param::new(
    "dead_sigma_threshold",
    5.0,
    "sigma_rate: stds below the clipped mean of the normalised flat for DEAD.",
);
pub const MAX_DEAD_NORM_SIGNAL: Param<Option<f64>> = Param::new(
    "max_dead_norm_signal",
    None,
    "absolute_rate: normalised signal below which a pixel is DEAD; also the lower bound \
     of LOW_QE. null: 0.05, or for NIRCam with normalisation 'none' the detector's DN/s \
     value (25; 30 for NRCA3/NRCA4; 40 NRCALONG; 50 NRCBLONG).",
);
pub const RUN_DEAD_FLUX_CHECK: Param<bool> = Param::new(
    "run_dead_flux_check",
    false,
    "Un-flag DEAD candidates whose raw signal in the last 4 groups reaches flux_check \
     (saturated or hot, not dead).",
);
pub const DEAD_FLUX_CHECK_FILES: Param<Vec<String>> = Param::new(
    "dead_flux_check_files",
    None,
    "Raw ramps (uncal) for the flux check; null or empty uses the flats' uncal files.",
);
pub const FLUX_CHECK: Param<f64> = Param::new(
    "flux_check",
    45000.0,
    "Raw signal (DN) at or above which a DEAD candidate is not dead.",
);
pub const MAX_LOW_QE_NORM_SIGNAL: Param<f64> = Param::new(
    "max_low_qe_norm_signal",
    0.5,
    "Normalised signal below which a pixel is LOW_QE (or OPEN).",
);
pub const MAX_OPEN_ADJ_NORM_SIGNAL: Param<f64> = Param::new(
    "max_open_adj_norm_signal",
    1.05,
    "A LOW_QE candidate whose 4 neighbours all exceed this normalised signal is OPEN and \
     its neighbours ADJ_OPEN.",
);
pub const MANUAL_FLAG_FILE: Param<Option<String>> = Param::new(
    "manual_flag_file",
    Some("default"),
    "Manual flags: a file in jwst_reffiles' 'x y flag' format, 'default' for \
     <instrument>_<detector>_manual_flags.txt in $MKREFS_DATA_DIR/manual_flags (else \
     $XDG_DATA_HOME/mkrefs/manual_flags, ~/.local/share/mkrefs/manual_flags; none \
     there is fine), or '' for none.",
);
pub const FLAT_DO_NOT_USE: Param<Vec<String>> = Param::list(
    "flat_do_not_use",
    &[],
    "Flags from the flats (and manual file, REFERENCE_PIXEL) that also get DO_NOT_USE, \
     e.g. [DEAD, OPEN, ADJ_OPEN].",
)
.one_of(&dq::PIXEL_FLAG_CHOICES);

// Darks (upstream's dark-search parameters, as its wrapper names them).
pub const DARK_STDEV_CLIPPING_SIGMA: Param<f64> = Param::new(
    "dark_stdev_clipping_sigma",
    5.0,
    "Sigma of the clip that finds the detector's typical clean-slope noise (noisy pixels).",
)
.above(0.0);
pub const DARK_MAX_CLIPPING_ITERS: Param<i64> = Param::new(
    "dark_max_clipping_iters",
    5,
    "Maximum iterations of that clip.",
)
.at_least(1.0);
pub const DARK_NOISY_THRESHOLD: Param<f64> = Param::new(
    "dark_noisy_threshold",
    5.0,
    "Significance (as a normal sigma) of the TELEGRAPH tests: a pixel is noisy when the \
     scatter of its clean slopes is this improbable for the detector's typical pixel plus \
     its own shot noise, or for its own ERR (a chi-square test with its number of clean \
     slopes); it jumps too often when its own jumps (not its neighbours') are this \
     improbable for the detector's rate.",
);
pub const MAX_SATURATED_FRACTION: Param<f64> = Param::new(
    "max_saturated_fraction",
    0.5,
    "Fraction of integrations saturated in every group at which a pixel is HOT.",
)
.fraction();
pub const MAX_JUMP_LIMIT: Param<i64> = Param::new(
    "max_jump_limit",
    10,
    "Jumps in one integration at which a pixel is a high-jump pixel.",
)
.at_least(1.0);
pub const JUMP_RATIO_THRESHOLD: Param<f64> = Param::new(
    "jump_ratio_threshold",
    5.0,
    "Early/late jump-rate ratio at which a high-jump pixel is RC.",
);
pub const EARLY_CUTOFF_FRACTION: Param<f64> = Param::new(
    "early_cutoff_fraction",
    0.25,
    "Fraction of the groups counted as early (and as late) in the jump-rate ratio.",
)
.above(0.0)
.at_most(0.5);
pub const PEDESTAL_SIGMA_THRESHOLD: Param<f64> = Param::new(
    "pedestal_sigma_threshold",
    5.0,
    "Pedestal stds above/below the clipped mean for RC / low-pedestal candidates.",
);
pub const RC_FRACTION_THRESHOLD: Param<f64> = Param::new(
    "rc_fraction_threshold",
    0.8,
    "Fraction of integrations in which a pixel must look RC to be flagged.",
)
.fraction();
pub const LOW_PEDESTAL_FRACTION: Param<f64> = Param::new(
    "low_pedestal_fraction",
    0.8,
    "Fraction of integrations with a low pedestal to be flagged.",
)
.fraction();
pub const HIGH_CR_FRACTION: Param<f64> = Param::new(
    "high_cr_fraction",
    0.8,
    "Fraction of integrations with many jumps to be flagged high_cr.",
)
.fraction();
pub const DARK_HOT_SIGMA_THRESHOLD: Param<f64> = Param::new(
    "dark_hot_sigma_threshold",
    5.0,
    "HOT from slopes: an integration's slope is hot at its image's clipped median plus \
     this many clipped stds (jwst_reffiles' later code hard-codes 5).",
);
pub const HOT_PIX_FRAC_THRESHOLD: Param<f64> = Param::new(
    "hot_pix_frac_threshold",
    0.75,
    "HOT from slopes: fraction of integrations (with a finite slope) in which the slope \
     must be hot.",
)
.fraction();
pub const FLAG_VALUES: Param<String> = Param::new(
    "flag_values",
    DEFAULT_FLAG_VALUES,
    "JSON object mapping the dark classes hot, rc, low_pedestal, high_cr to lists of \
     JWST DQ mnemonics (a YAML mapping in a config file becomes this text). Optional keys: \
     saturated (pixels saturated in every group; default: hot's flags) and noisy (noisy \
     pixels; default: high_cr's flags, TELEGRAPH, as upstream).",
);
pub const DARK_DO_NOT_USE: Param<Vec<String>> = Param::list(
    "dark_do_not_use",
    &DARK_CLASSES,
    "Dark classes (keys of flag_values) whose pixels also get DO_NOT_USE.",
);

// Wrapper.
pub const PLOT: Param<bool> = Param::new(
    "plot",
    false,
    "Write PNG figures of the intermediate maps and histograms beside the output.",
);
pub const QUALITY_CHECK: Param<bool> = Param::new(
    "quality_check",
    false,
    "Run the jwst pipeline's DQInitStep with the new mask on the first input's uncal \
     file (needs the jwst Python package; $MKREFS_PYTHON or python3).",
);

// mkrefs additions.
pub const ADJ_OPEN_NEIGHBOURS: Param<i64> = Param::new(
    "adj_open_neighbours",
    8,
    "Neighbours of an OPEN pixel that get ADJ_OPEN: 8 (jwst_reffiles' 3x3 box, the default) \
     or 4 (only the ones the OPEN test looks at).",
);
pub const METADATA: Metadata = Metadata::new("A bad pix mask", "2019-04-01 00:00:00");
pub const BUDGET: Budget = Budget::new(DEFAULT_BUDGET_MB, "row bands of the slope products");

/// Every parameter the generator accepts, in the order `mkrefs describe` lists them.
pub const PARAMS: &[&dyn Declare] = &[
    &DEAD_SEARCH,
    &LOW_QE_AND_OPEN_SEARCH,
    &DEAD_SEARCH_TYPE,
    &FLAT_MEAN_SIGMA_THRESHOLD,
    &FLAT_MEAN_NORMALIZATION_METHOD,
    &SMOOTHING_BOX_WIDTH,
    &SMOOTHING_TYPE,
    &DEAD_SIGMA_THRESHOLD,
    &MAX_DEAD_NORM_SIGNAL,
    &RUN_DEAD_FLUX_CHECK,
    &DEAD_FLUX_CHECK_FILES,
    &FLUX_CHECK,
    &MAX_LOW_QE_NORM_SIGNAL,
    &MAX_OPEN_ADJ_NORM_SIGNAL,
    &MANUAL_FLAG_FILE,
    &FLAT_DO_NOT_USE,
    &DARK_STDEV_CLIPPING_SIGMA,
    &DARK_MAX_CLIPPING_ITERS,
    &DARK_NOISY_THRESHOLD,
    &MAX_SATURATED_FRACTION,
    &MAX_JUMP_LIMIT,
    &JUMP_RATIO_THRESHOLD,
    &EARLY_CUTOFF_FRACTION,
    &PEDESTAL_SIGMA_THRESHOLD,
    &RC_FRACTION_THRESHOLD,
    &LOW_PEDESTAL_FRACTION,
    &HIGH_CR_FRACTION,
    &DARK_HOT_SIGMA_THRESHOLD,
    &HOT_PIX_FRAC_THRESHOLD,
    &FLAG_VALUES,
    &DARK_DO_NOT_USE,
    &PLOT,
    &QUALITY_CHECK,
    &ADJ_OPEN_NEIGHBOURS,
    &METADATA,
    &BUDGET,
    &IGNORED,
];

/// The checked parameters of one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    pub flat: FlatParams,
    pub run_dead_flux_check: bool,
    pub dead_flux_check_files: Vec<PathBuf>,
    pub flux_check: f64,
    pub manual: ManualSource,
    /// The `manual_flag_file` text as given (BPFMANFL).
    pub manual_param: String,
    /// Upper-case mnemonics.
    pub flat_do_not_use: Vec<String>,
    pub dark: DarkParams,
    pub plot: bool,
    pub quality_check: bool,
    pub meta: MetadataParams,
    pub budget_bytes: usize,
}

/// Parses `flag_values` (a JSON object of class → list of mnemonics, or a single mnemonic).
/// Every class the dark search uses must be present; errors name the key or mnemonic.
pub fn parse_flag_values(text: &str) -> Result<FlagValues, GeneratorError> {
    let bad = |m: String| GeneratorError::invalid_parameter(format!("flag_values: {m}"));
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "not a JSON object ({e}); expected e.g. {DEFAULT_FLAG_VALUES}"
        ))
    })?;
    let obj = value
        .as_object()
        .ok_or_else(|| bad(format!("expected a mapping such as {DEFAULT_FLAG_VALUES}")))?;
    let mut map = BTreeMap::new();
    for (key, v) in obj {
        let items: Vec<&serde_json::Value> = match v {
            serde_json::Value::Array(a) => a.iter().collect(),
            other => vec![other],
        };
        let mut names = Vec::new();
        for item in items {
            let name = item.as_str().ok_or_else(|| {
                bad(format!(
                    "the value of '{key}' must be a list of DQ mnemonics, got {item}"
                ))
            })?;
            let upper = name.trim().to_ascii_uppercase();
            if dq::flag_value(&upper).is_none() || upper == "GOOD" {
                return Err(bad(format!(
                    "'{key}' maps to the unknown DQ flag mnemonic '{name}'"
                )));
            }
            names.push(upper);
        }
        if names.is_empty() {
            return Err(bad(format!("'{key}' maps to no DQ flag")));
        }
        map.insert(key.trim().to_ascii_lowercase(), names);
    }
    for class in DARK_CLASSES {
        if !map.contains_key(class) {
            return Err(bad(format!(
                "no entry for the class '{class}'; give all of {}",
                DARK_CLASSES.join(", ")
            )));
        }
    }
    Ok(FlagValues(map))
}

impl Settings {
    pub fn from_job(job: &JobView<'_>) -> Result<Settings, GeneratorError> {
        let flat = flat_params(job)?;
        let flat_do_not_use =
            crate::flats::flag_type_check(&job.get(&FLAT_DO_NOT_USE)?, "flat_do_not_use")?;
        let dark = dark_params(job)?;
        let manual_param = job.get(&MANUAL_FLAG_FILE)?.unwrap_or_default();
        let dead_flux_check_files = job
            .get(&DEAD_FLUX_CHECK_FILES)?
            .into_iter()
            .filter_map(|s| null_like(Some(s)))
            .map(PathBuf::from)
            .collect();
        Ok(Settings {
            flat,
            run_dead_flux_check: job.get(&RUN_DEAD_FLUX_CHECK)?,
            dead_flux_check_files,
            flux_check: finite(job, &FLUX_CHECK)?,
            manual: ManualSource::parse(Some(&manual_param)),
            manual_param,
            flat_do_not_use,
            dark,
            plot: job.get(&PLOT)?,
            quality_check: job.get(&QUALITY_CHECK)?,
            meta: METADATA.read(job)?,
            budget_bytes: BUDGET.bytes(job)?,
        })
    }
}

/// The flat search's parameters, checked.
fn flat_params(job: &JobView<'_>) -> Result<FlatParams, GeneratorError> {
    let inv = GeneratorError::invalid_parameter;
    let normalization =
        Normalization::parse(&job.get(&FLAT_MEAN_NORMALIZATION_METHOD)?).map_err(inv)?;
    let smoothing_type = SmoothingType::parse(&job.get(&SMOOTHING_TYPE)?).map_err(inv)?;
    let dead_search_type = DeadSearchType::parse(&job.get(&DEAD_SEARCH_TYPE)?).map_err(inv)?;
    let smoothing_box_width = job.get(&SMOOTHING_BOX_WIDTH)?;
    if smoothing_type == SmoothingType::Median && smoothing_box_width.fract() != 0.0 {
        return Err(inv(format!(
            "smoothing_box_width must be a whole number for the Median filter, got \
             {smoothing_box_width}"
        )));
    }
    let max_dead_norm_signal = match job.get(&MAX_DEAD_NORM_SIGNAL)? {
        Some(v) if !v.is_finite() => {
            return Err(inv(format!(
                "max_dead_norm_signal must be a finite number, got {v}"
            )));
        }
        v => v,
    };
    let adj_open = match job.get(&ADJ_OPEN_NEIGHBOURS)? {
        4 => AdjOpen::Four,
        8 => AdjOpen::Eight,
        n => return Err(inv(format!("adj_open_neighbours must be 4 or 8, got {n}"))),
    };
    Ok(FlatParams {
        dead_search: job.get(&DEAD_SEARCH)?,
        low_qe_and_open_search: job.get(&LOW_QE_AND_OPEN_SEARCH)?,
        dead_search_type,
        sigma_threshold: job.get(&FLAT_MEAN_SIGMA_THRESHOLD)?,
        normalization,
        smoothing_box_width,
        smoothing_type,
        dead_sigma_threshold: finite(job, &DEAD_SIGMA_THRESHOLD)?,
        max_dead_norm_signal,
        max_low_qe_norm_signal: finite(job, &MAX_LOW_QE_NORM_SIGNAL)?,
        max_open_adj_norm_signal: finite(job, &MAX_OPEN_ADJ_NORM_SIGNAL)?,
        adj_open,
    })
}

/// The dark search's parameters, checked: `flag_values` parsed, `dark_do_not_use` naming its
/// classes.
fn dark_params(job: &JobView<'_>) -> Result<DarkParams, GeneratorError> {
    let inv = GeneratorError::invalid_parameter;
    let flag_values = parse_flag_values(&job.get(&FLAG_VALUES)?)?;
    let mut dark_do_not_use = Vec::new();
    for c in job.get(&DARK_DO_NOT_USE)? {
        let c = c.trim().to_ascii_lowercase();
        if c != "saturated" && c != "noisy" && !flag_values.0.contains_key(&c) {
            return Err(inv(format!(
                "dark_do_not_use: '{c}' is not a class of flag_values (classes: {})",
                flag_values.0.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        dark_do_not_use.push(c);
    }
    Ok(DarkParams {
        clipping_sigma: job.get(&DARK_STDEV_CLIPPING_SIGMA)?,
        max_clipping_iters: job.count(&DARK_MAX_CLIPPING_ITERS)?,
        noisy_threshold: finite(job, &DARK_NOISY_THRESHOLD)?,
        max_saturated_fraction: job.get(&MAX_SATURATED_FRACTION)?,
        max_jump_limit: job.count(&MAX_JUMP_LIMIT)?,
        jump_ratio_threshold: finite(job, &JUMP_RATIO_THRESHOLD)?,
        early_cutoff_fraction: job.get(&EARLY_CUTOFF_FRACTION)?,
        pedestal_sigma_threshold: finite(job, &PEDESTAL_SIGMA_THRESHOLD)?,
        rc_fraction_threshold: job.get(&RC_FRACTION_THRESHOLD)?,
        low_pedestal_fraction: job.get(&LOW_PEDESTAL_FRACTION)?,
        high_cr_fraction: job.get(&HIGH_CR_FRACTION)?,
        hot_sigma_threshold: finite(job, &DARK_HOT_SIGMA_THRESHOLD)?,
        hot_fraction_threshold: job.get(&HOT_PIX_FRAC_THRESHOLD)?,
        flag_values,
        do_not_use: dark_do_not_use,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::params::{Scalar, Value, specs};

    #[test]
    fn specs_have_upstream_names_and_defaults() {
        let v = specs(PARAMS);
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name == n)
                .unwrap_or_else(|| panic!("no parameter {n}"))
                .default
                .clone()
        };
        let s = |t: &str| Value::Str(t.into());
        assert_eq!(get("flat_mean_sigma_threshold"), Value::Float(3.0));
        assert_eq!(get("smoothing_box_width"), Value::Float(15.0));
        assert_eq!(get("smoothing_type"), s("Box2D"));
        assert_eq!(get("dead_search_type"), s("sigma_rate"));
        assert_eq!(get("max_dead_norm_signal"), Value::Null);
        assert_eq!(get("flux_check"), Value::Float(45000.0));
        assert_eq!(get("manual_flag_file"), s("default"));
        assert_eq!(get("dark_max_clipping_iters"), Value::Int(5));
        assert_eq!(get("max_jump_limit"), Value::Int(10));
        assert_eq!(get("quality_check"), Value::Bool(false));
        assert_eq!(get("description"), s("A bad pix mask"));
        assert_eq!(get("useafter"), s("2019-04-01 00:00:00"));
        assert_eq!(get("output_file"), Value::Null);
        assert_eq!(get("flag_values"), s(DEFAULT_FLAG_VALUES));
        let classes = ["hot", "rc", "low_pedestal", "high_cr"];
        assert_eq!(
            get("dark_do_not_use"),
            Value::List(classes.iter().map(|c| Scalar::Str(c.to_string())).collect())
        );
        let mut names: Vec<_> = v.iter().map(|p| p.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), v.len());
    }

    #[test]
    fn flag_values_json() {
        let fv = parse_flag_values(DEFAULT_FLAG_VALUES).unwrap();
        assert_eq!(fv, FlagValues::upstream_default());
        let fv = parse_flag_values(
            r#"{"hot": "hot", "rc": ["RC", "do_not_use"], "low_pedestal": ["OTHER_BAD_PIXEL"], "high_cr": ["TELEGRAPH"]}"#,
        )
        .unwrap();
        assert_eq!(fv.value("hot").unwrap(), dq::HOT);
        assert_eq!(fv.value("rc").unwrap(), dq::RC | dq::DO_NOT_USE);
        let e = parse_flag_values(
            r#"{"hot": ["HOTT"], "rc": ["RC"], "low_pedestal": ["OTHER_BAD_PIXEL"], "high_cr": ["TELEGRAPH"]}"#,
        )
        .unwrap_err();
        assert!(
            e.message.contains("'hot'") && e.message.contains("HOTT"),
            "{e}"
        );
        let e = parse_flag_values(r#"{"hot": ["HOT"]}"#).unwrap_err();
        assert!(e.message.contains("'rc'"), "{e}");
        let e = parse_flag_values("hot: HOT").unwrap_err();
        assert!(e.message.contains("JSON"), "{e}");
        let e = parse_flag_values(r#"{"hot": [3], "rc": ["RC"]}"#).unwrap_err();
        assert!(e.message.contains("'hot'"), "{e}");
    }
}
