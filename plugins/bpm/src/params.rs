//! The parameters of the bpm generator: every parameter of upstream's `bad_pixels()` with its
//! name and default (bpm.md §4.1), the few mkrefs additions, and their checked values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use mkrefs_plugin_api::{GeneratorError, Job, ParamKind, ParamScalar, ParamSpec, ParamValue};
use mkrefs_support::dq;
use mkrefs_support::jobparams::{
    IgnoredParam, MetadataParams, at_least_one, budget_bytes, budget_spec, ignored_specs,
    metadata_specs, null_like, positive,
};

use crate::darks::{DarkParams, FlagValues};
use crate::flats::{AdjOpen, DeadSearchType, FlatParams, Normalization, SmoothingType};
use crate::manual::ManualSource;

/// Upstream parameters whose job the host does now.
pub const IGNORED: &[IgnoredParam] = &[(
    "output_file",
    ParamKind::String,
    "Accepted for jwst_reffiles compatibility and ignored: mkrefs names the output.",
)];

/// Upstream's default `flag_values`, as the JSON text the parameter holds.
pub const DEFAULT_FLAG_VALUES: &str = r#"{"hot": ["HOT"], "rc": ["RC"], "low_pedestal": ["OTHER_BAD_PIXEL"], "high_cr": ["TELEGRAPH"]}"#;

/// The classes of the dark search that `flag_values` must map.
pub const DARK_CLASSES: [&str; 4] = ["hot", "rc", "low_pedestal", "high_cr"];

/// A band of 4 full-frame rate planes and their outputs is a few MiB; 256 MiB keeps the whole
/// frame of up to ~20 flats in one band and bounds memory beyond that.
pub const DEFAULT_BUDGET_MB: i64 = 256;

fn spec(name: &str, kind: ParamKind, default: ParamValue, help: &str) -> ParamSpec {
    ParamSpec::new(name, kind, default, help)
}

fn str_list(items: &[&str]) -> ParamValue {
    ParamValue::List(
        items
            .iter()
            .map(|s| ParamScalar::Str((*s).into()))
            .collect::<Vec<_>>()
            .into(),
    )
}

pub fn specs() -> Vec<ParamSpec> {
    use ParamKind::{Bool, Float, Int, List, String as Str};
    let (f, i, b, s) = (
        ParamValue::Float,
        ParamValue::Int,
        ParamValue::Bool,
        ParamValue::str,
    );
    let mut v = vec![
        // Flats (bpm.md §2.1, prefixed as in the wrapper §4.1).
        spec(
            "dead_search",
            Bool,
            b(true),
            "Search the flats for DEAD pixels.",
        ),
        spec(
            "low_qe_and_open_search",
            Bool,
            b(true),
            "Search the flats for LOW_QE, OPEN and ADJ_OPEN pixels.",
        ),
        spec(
            "dead_search_type",
            Str,
            s("sigma_rate"),
            "'sigma_rate': DEAD below the clipped mean minus dead_sigma_threshold clipped stds \
             of the normalised flat; 'absolute_rate': DEAD below max_dead_norm_signal.",
        ),
        spec(
            "flat_mean_sigma_threshold",
            Float,
            f(3.0),
            "Sigma of the per-pixel clip of the flat slopes and of the clip of the normalised \
             image's statistics.",
        ),
        spec(
            "flat_mean_normalization_method",
            Str,
            s("smoothed"),
            "How the mean flat is normalised: 'smoothed' (divided by a smoothed copy), 'mean' \
             (by its clipped mean) or 'none'.",
        ),
        spec(
            "smoothing_box_width",
            Float,
            f(15.0),
            "Width in pixels of the smoothing kernel ('smoothed' normalisation).",
        ),
        spec(
            "smoothing_type",
            Str,
            s("Box2D"),
            "'Box2D' (mean over the box, astropy convolve) or 'Median' (median filter); \
             case-insensitive.",
        ),
        spec(
            "dead_sigma_threshold",
            Float,
            f(5.0),
            "sigma_rate: stds below the clipped mean of the normalised flat for DEAD.",
        ),
        spec(
            "max_dead_norm_signal",
            Float,
            ParamValue::Null,
            "absolute_rate: normalised signal below which a pixel is DEAD; also the lower bound \
             of LOW_QE. null: 0.05, or for NIRCam with normalisation 'none' the detector's DN/s \
             value (25; 30 for NRCA3/NRCA4; 40 NRCALONG; 50 NRCBLONG).",
        ),
        spec(
            "run_dead_flux_check",
            Bool,
            b(false),
            "Un-flag DEAD candidates whose raw signal in the last 4 groups reaches flux_check \
             (saturated or hot, not dead).",
        ),
        spec(
            "dead_flux_check_files",
            List,
            ParamValue::Null,
            "Raw ramps (uncal) for the flux check; null or empty uses the flats' uncal files.",
        ),
        spec(
            "flux_check",
            Float,
            f(45000.0),
            "Raw signal (DN) at or above which a DEAD candidate is not dead.",
        ),
        spec(
            "max_low_qe_norm_signal",
            Float,
            f(0.5),
            "Normalised signal below which a pixel is LOW_QE (or OPEN).",
        ),
        spec(
            "max_open_adj_norm_signal",
            Float,
            f(1.05),
            "A LOW_QE candidate whose 4 neighbours all exceed this normalised signal is OPEN and \
             its neighbours ADJ_OPEN.",
        ),
        spec(
            "manual_flag_file",
            Str,
            s("default"),
            "Manual flags: a file in jwst_reffiles' 'x y flag' format, 'default' for \
             <instrument>_<detector>_manual_flags.txt in $MKREFS_DATA_DIR/manual_flags (else \
             $XDG_DATA_HOME/mkrefs/manual_flags, ~/.local/share/mkrefs/manual_flags; none \
             there is fine), or '' for none.",
        ),
        spec(
            "flat_do_not_use",
            List,
            str_list(&[]),
            "Flags from the flats (and manual file, REFERENCE_PIXEL) that also get DO_NOT_USE, \
             e.g. [DEAD, OPEN, ADJ_OPEN].",
        ),
        // Darks (bpm.md §3.1, §4.1).
        spec(
            "dark_stdev_clipping_sigma",
            Float,
            f(5.0),
            "Sigma of the clip of the clean-slope std image (noisy pixels).",
        ),
        spec(
            "dark_max_clipping_iters",
            Int,
            i(5),
            "Maximum iterations of that clip.",
        ),
        spec(
            "dark_noisy_threshold",
            Float,
            f(5.0),
            "Noisy pixel: clean-slope std above the clipped mean plus this many clipped stds.",
        ),
        spec(
            "max_saturated_fraction",
            Float,
            f(0.5),
            "Fraction of integrations saturated in every group at which a pixel is HOT.",
        ),
        spec(
            "max_jump_limit",
            Int,
            i(10),
            "Jumps in one integration at which a pixel is a high-jump pixel.",
        ),
        spec(
            "jump_ratio_threshold",
            Float,
            f(5.0),
            "Early/late jump-rate ratio at which a high-jump pixel is RC.",
        ),
        spec(
            "early_cutoff_fraction",
            Float,
            f(0.25),
            "Fraction of the groups counted as early (and as late) in the jump-rate ratio.",
        ),
        spec(
            "pedestal_sigma_threshold",
            Float,
            f(5.0),
            "Pedestal stds above/below the clipped mean for RC / low-pedestal candidates.",
        ),
        spec(
            "rc_fraction_threshold",
            Float,
            f(0.8),
            "Fraction of integrations in which a pixel must look RC to be flagged.",
        ),
        spec(
            "low_pedestal_fraction",
            Float,
            f(0.8),
            "Fraction of integrations with a low pedestal to be flagged.",
        ),
        spec(
            "high_cr_fraction",
            Float,
            f(0.8),
            "Fraction of integrations with many jumps to be flagged high_cr.",
        ),
        spec(
            "dark_hot_sigma_threshold",
            Float,
            f(5.0),
            "HOT from slopes: an integration's slope is hot at its image's clipped median plus \
             this many clipped stds (jwst_reffiles' later code hard-codes 5).",
        ),
        spec(
            "hot_pix_frac_threshold",
            Float,
            f(0.75),
            "HOT from slopes: fraction of integrations (with a finite slope) in which the slope \
             must be hot.",
        ),
        spec(
            "flag_values",
            Str,
            s(DEFAULT_FLAG_VALUES),
            "JSON object mapping the dark classes hot, rc, low_pedestal, high_cr to lists of \
             JWST DQ mnemonics (a YAML mapping in a config file becomes this text).",
        ),
        spec(
            "dark_do_not_use",
            List,
            str_list(&DARK_CLASSES),
            "Dark classes (keys of flag_values) whose pixels also get DO_NOT_USE.",
        ),
        // Wrapper.
        spec(
            "plot",
            Bool,
            b(false),
            "Write PNG figures of the intermediate maps and histograms beside the output.",
        ),
        spec(
            "quality_check",
            Bool,
            b(false),
            "Run the jwst pipeline's DQInitStep with the new mask on the first input's uncal \
             file (needs the jwst Python package; $MKREFS_PYTHON or python3).",
        ),
        // mkrefs additions.
        spec(
            "adj_open_neighbours",
            Int,
            i(4),
            "Neighbours of an OPEN pixel that get ADJ_OPEN: 4 (the ones the OPEN test uses) or \
             8 (jwst_reffiles' 3x3 box).",
        ),
    ];
    v.extend(metadata_specs("A bad pix mask", "2019-04-01 00:00:00"));
    v.push(budget_spec(
        DEFAULT_BUDGET_MB,
        "row bands of the slope products",
    ));
    v.extend(ignored_specs(IGNORED));
    v
}

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

fn strings(job: &Job<'_>, name: &str) -> Result<Vec<String>, GeneratorError> {
    job.list_param(name)?
        .into_iter()
        .map(|v| match v {
            ParamScalar::Str(s) => Ok(s.to_string()),
            other => Err(GeneratorError::invalid_parameter(format!(
                "{name} must be a list of strings, got the element '{other}'"
            ))),
        })
        .collect()
}

fn fraction(job: &Job<'_>, name: &str) -> Result<f64, GeneratorError> {
    let v = job.float_param(name)?;
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be a fraction between 0 and 1, got {v}"
        )))
    }
}

fn finite(job: &Job<'_>, name: &str) -> Result<f64, GeneratorError> {
    let v = job.float_param(name)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(GeneratorError::invalid_parameter(format!(
            "{name} must be a finite number, got {v}"
        )))
    }
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
    pub fn from_job(job: &Job<'_>) -> Result<Settings, GeneratorError> {
        let inv = GeneratorError::invalid_parameter;
        let normalization =
            Normalization::parse(&job.string_param("flat_mean_normalization_method")?)
                .map_err(inv)?;
        let smoothing_type =
            SmoothingType::parse(&job.string_param("smoothing_type")?).map_err(inv)?;
        let dead_search_type =
            DeadSearchType::parse(&job.string_param("dead_search_type")?).map_err(inv)?;
        let smoothing_box_width = positive(job, "smoothing_box_width")?;
        if smoothing_type == SmoothingType::Median && smoothing_box_width.fract() != 0.0 {
            return Err(inv(format!(
                "smoothing_box_width must be a whole number for the Median filter, got \
                 {smoothing_box_width}"
            )));
        }
        let max_dead_norm_signal = match job.param("max_dead_norm_signal") {
            None | Some(ParamValue::Null) => None,
            Some(ParamValue::Str(s)) if null_like(Some(s.to_string())).is_none() => None,
            Some(_) => Some(finite(job, "max_dead_norm_signal")?),
        };
        let adj_open = match job.int_param("adj_open_neighbours")? {
            4 => AdjOpen::Four,
            8 => AdjOpen::Eight,
            n => return Err(inv(format!("adj_open_neighbours must be 4 or 8, got {n}"))),
        };
        let flat = FlatParams {
            dead_search: job.bool_param("dead_search")?,
            low_qe_and_open_search: job.bool_param("low_qe_and_open_search")?,
            dead_search_type,
            sigma_threshold: positive(job, "flat_mean_sigma_threshold")?,
            normalization,
            smoothing_box_width,
            smoothing_type,
            dead_sigma_threshold: finite(job, "dead_sigma_threshold")?,
            max_dead_norm_signal,
            max_low_qe_norm_signal: finite(job, "max_low_qe_norm_signal")?,
            max_open_adj_norm_signal: finite(job, "max_open_adj_norm_signal")?,
            adj_open,
        };
        let flat_do_not_use =
            crate::flats::flag_type_check(&strings(job, "flat_do_not_use")?, "flat_do_not_use")?;
        let flag_values = parse_flag_values(&job.string_param("flag_values")?)?;
        let mut dark_do_not_use = Vec::new();
        for c in strings(job, "dark_do_not_use")? {
            let c = c.trim().to_ascii_lowercase();
            if c != "saturated" && !flag_values.0.contains_key(&c) {
                return Err(inv(format!(
                    "dark_do_not_use: '{c}' is not a class of flag_values (classes: {})",
                    flag_values.0.keys().cloned().collect::<Vec<_>>().join(", ")
                )));
            }
            dark_do_not_use.push(c);
        }
        let early = job.float_param("early_cutoff_fraction")?;
        if !(early > 0.0 && early <= 0.5) {
            return Err(inv(format!(
                "early_cutoff_fraction must be above 0 and at most 0.5, got {early}"
            )));
        }
        let max_jump_limit = at_least_one(job, "max_jump_limit")?;
        let dark = DarkParams {
            clipping_sigma: positive(job, "dark_stdev_clipping_sigma")?,
            max_clipping_iters: at_least_one(job, "dark_max_clipping_iters")?,
            noisy_threshold: finite(job, "dark_noisy_threshold")?,
            max_saturated_fraction: fraction(job, "max_saturated_fraction")?,
            max_jump_limit,
            jump_ratio_threshold: finite(job, "jump_ratio_threshold")?,
            early_cutoff_fraction: early,
            pedestal_sigma_threshold: finite(job, "pedestal_sigma_threshold")?,
            rc_fraction_threshold: fraction(job, "rc_fraction_threshold")?,
            low_pedestal_fraction: fraction(job, "low_pedestal_fraction")?,
            high_cr_fraction: fraction(job, "high_cr_fraction")?,
            hot_sigma_threshold: finite(job, "dark_hot_sigma_threshold")?,
            hot_fraction_threshold: fraction(job, "hot_pix_frac_threshold")?,
            flag_values,
            do_not_use: dark_do_not_use,
        };
        let manual_param = job
            .opt_string_param("manual_flag_file")?
            .unwrap_or_default();
        let dead_flux_check_files = strings(job, "dead_flux_check_files")?
            .into_iter()
            .filter_map(|s| null_like(Some(s)))
            .map(PathBuf::from)
            .collect();
        Ok(Settings {
            flat,
            run_dead_flux_check: job.bool_param("run_dead_flux_check")?,
            dead_flux_check_files,
            flux_check: finite(job, "flux_check")?,
            manual: ManualSource::parse(Some(&manual_param)),
            manual_param,
            flat_do_not_use,
            dark,
            plot: job.bool_param("plot")?,
            quality_check: job.bool_param("quality_check")?,
            meta: MetadataParams::from_job(job)?,
            budget_bytes: budget_bytes(job)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_have_upstream_names_and_defaults() {
        let v = specs();
        let get = |n: &str| {
            v.iter()
                .find(|p| p.name.as_str() == n)
                .unwrap_or_else(|| panic!("no parameter {n}"))
                .default
                .clone()
        };
        assert_eq!(get("flat_mean_sigma_threshold"), ParamValue::Float(3.0));
        assert_eq!(get("smoothing_box_width"), ParamValue::Float(15.0));
        assert_eq!(get("smoothing_type"), ParamValue::str("Box2D"));
        assert_eq!(get("dead_search_type"), ParamValue::str("sigma_rate"));
        assert_eq!(get("max_dead_norm_signal"), ParamValue::Null);
        assert_eq!(get("flux_check"), ParamValue::Float(45000.0));
        assert_eq!(get("manual_flag_file"), ParamValue::str("default"));
        assert_eq!(get("dark_max_clipping_iters"), ParamValue::Int(5));
        assert_eq!(get("max_jump_limit"), ParamValue::Int(10));
        assert_eq!(get("quality_check"), ParamValue::Bool(false));
        assert_eq!(get("description"), ParamValue::str("A bad pix mask"));
        assert_eq!(get("useafter"), ParamValue::str("2019-04-01 00:00:00"));
        assert_eq!(get("output_file"), ParamValue::Null);
        assert_eq!(get("flag_values"), ParamValue::str(DEFAULT_FLAG_VALUES));
        assert_eq!(
            get("dark_do_not_use"),
            str_list(&["hot", "rc", "low_pedestal", "high_cr"])
        );
        let mut names: Vec<_> = v.iter().map(|p| p.name.to_string()).collect();
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
