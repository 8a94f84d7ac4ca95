//! Bad pixels from darks (see the 'Darks' sections of UPSTREAM.md): HOT (saturated in all groups,
//! and unsaturated hot pixels found from the slopes), RC, TELEGRAPH (noisy pixels and pixels that
//! jump too often), and low pedestal (OTHER_BAD_PIXEL by default), mapped through `flag_values`
//! with DO_NOT_USE added for the classes in `do_not_use`.
//!
//! The algorithm is upstream's 1.0.1 search (the one its tests agree with) with the later
//! master's hot-pixel search (UPSTREAM.md, 'Darks: two variants'), streamed over bands of rows:
//!
//! 1. Per integration, whole-image statistics: the clipped mean/sd of PEDESTAL (scipy
//!    `sigmaclip`, 3σ, mean centre) and the clipped median/sd of the slopes (astropy, 3σ, 5
//!    iterations), giving the RC / low-pedestal bounds `mean ± pedestal_sigma_threshold·sd`
//!    and the hot threshold `median + hot_sigma_threshold·sd`. One plane is read at a time.
//! 2. Per band of rows, every integration of every exposure: GROUPDQ (u8, all groups),
//!    PEDESTAL, the slopes and their ERR are read for those rows only, and each pixel counts
//!    the integrations that are saturated in all groups, have a high or a low pedestal, many
//!    jumps, RC-like jumps, any jump, or a slope above the hot threshold; the slopes of
//!    integrations without jumps ("clean") are accumulated without being stored.
//! 3. Over the detector: the noise ratio of the clean slopes is clipped to find the noisy cut,
//!    and the detector's rate of jump-hit integrations gives the frequent-jump limit.
//!
//! Memory is the per-pixel counters (about 10 bytes a pixel) plus one band per thread, whatever
//! the number of exposures; only science pixels (from the header geometry) are searched.
//!
//! Deliberate differences from upstream, and why:
//!
//! - Unsaturated hot pixels are found (the later master's test, which 1.0.1 lacks): a pixel is HOT
//!   when its slope is at least `median + hot_sigma_threshold·sd` in at least
//!   `hot_fraction_threshold` of the integrations with a finite slope. The threshold is computed
//!   per integration (the master pools the whole stack, which needs every integration in memory and
//!   mixes exposure times).
//! - The user's `max_jump_limit`, `jump_ratio_threshold` and `early_cutoff_fraction` are used
//!   (upstream hard-codes 10, 5, 0.25); an early window shorter than one group is one group long
//!   (upstream divides by zero).
//! - NaN in a PEDESTAL image is ignored by its statistics (upstream: one NaN disables RC and
//!   low-pedestal detection for the whole integration); first-group-saturated pixels and
//!   reference pixels are left out of them.
//! - A pixel with fewer than 5 clean slopes is *not* automatically noisy (upstream sets its sd to
//!   NaN, then flags it: every pixel hit by cosmic rays in most integrations became TELEGRAPH).
//!   Instead the jump flags themselves are tested: a pixel whose number of jump-hit
//!   integrations is improbable (one-sided probability below that of a `noisy_threshold`-σ
//!   normal event) for the detector's own rate of jump-hit integrations is TELEGRAPH (class
//!   `frequent_jumps`). Upstream's many-jumps test (`>= max_jump_limit` jumps in more than
//!   `high_cr_fraction` of the integrations) is kept, and cannot fire for ramps shorter than
//!   `max_jump_limit` groups.
//! - The noisy test compares each pixel's clean-slope scatter with what its ramp fit's ERR
//!   predicts (sqrt(unbiased variance / mean ERR²)) instead of the raw sd, so that hot pixels are
//!   not called noisy (TELEGRAPH) for their shot noise; the cut is still the clipped mean plus
//!   `noisy_threshold` clipped sd over the detector.
//! - Saturated in all groups is read from the first group's SATURATED flag (the saturation step
//!   flags every later group); upstream also requires PEDESTAL == 0.
//! - `flag_values` and `do_not_use` are never modified (upstream appends DO_NOT_USE to the
//!   caller's lists, so a second call adds it twice: HOT became HOT|SATURATED); mnemonics are
//!   case-insensitive; an unknown mnemonic or `do_not_use` class is an error naming it.
//!   Fully saturated pixels use `flag_values['saturated']` when given, else `'hot'` (as 1.0.1).
//! - Fractions count integrations over all exposures (as upstream's code, not its docs). At least
//!   5 integrations in total are required (the noise test needs 5 clean slopes); upstream 1.0.1
//!   requires 5 slope *files*.
//! - Reference pixels come from the header geometry (a subarray has them only where it touches
//!   the detector edge; MIRI has only reference columns), not from integration 0's DQ of the last
//!   file; they are never searched and get REFERENCE_PIXEL in [`DarkResult::dq`] (upstream's
//!   dark map leaves them 0).
//! - No diagnostic files are written to the working directory; [`DarkResult::classes`] and
//!   [`DarkResult::notes`] carry the per-class maps and the thresholds used.

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

pub mod pixel;

mod inputs;

pub use inputs::DarkInputs;
use inputs::{Exposure, Geometry, fits_err};
use mkrefs_support::budget::{row_blocks, rows_per_block};
use mkrefs_support::fits::ImageReader;
use mkrefs_support::stats::clip_bounds_flat;
use pixel::{CleanSlopes, JumpLimits, saturated_in_all_groups, sigmaclip_mean_std};
use rayon::prelude::*;

/// Clean slopes a pixel needs for the noise test (upstream's `num_good < 5` rule).
pub const MIN_CLEAN_SLOPES: usize = 5;

/// Clipping of the per-integration slope image for the hot threshold (the `sigma_clipped_stats`
/// defaults of the later master).
const HOT_CLIP_SIGMA: f64 = 3.0;
const HOT_CLIP_ITERS: usize = 5;

/// Clipping of a PEDESTAL image (upstream's scipy `sigmaclip(low=3, high=3)`).
const PEDESTAL_CLIP_SIGMA: f64 = 3.0;

/// Class names of [`DarkResult::classes`]. The flagged classes: `hot` (unsaturated hot pixels
/// from the slopes), `saturated` (saturated in all groups), `rc`, `low_pedestal` and `high_cr`
/// (the TELEGRAPH class: `noisy` or `many_jumps` or `frequent_jumps`). Their parts, for reports:
/// `rc_from_pedestal`, `rc_from_jumps`, `noisy`, `many_jumps`, `frequent_jumps`; and
/// `reference_pixel`.
pub const CLASS_NAMES: [&str; 11] = [
    "hot",
    "saturated",
    "rc",
    "rc_from_pedestal",
    "rc_from_jumps",
    "low_pedestal",
    "high_cr",
    "noisy",
    "many_jumps",
    "frequent_jumps",
    "reference_pixel",
];

/// Per-integration thresholds from the whole-image statistics (step 1).
#[derive(Clone, Copy, Debug)]
struct IntStats {
    ped_lo: f64,
    ped_hi: f64,
    hot: f64,
}

// Bits of the per-pixel class word of step 2.
const B_SAT: u8 = 1;
const B_RCPED: u8 = 2;
const B_RCJUMP: u8 = 4;
const B_LOWPED: u8 = 8;
const B_MANY: u8 = 16;
const B_HOT: u8 = 32;

/// What step 2 leaves per pixel.
struct BandOut {
    bits: Vec<u8>,
    jumpy: Vec<u16>,
    ratio: Vec<f32>,
    /// Σ jump-hit integrations and Σ integrations over the band's unsaturated science pixels.
    jump_hits: u64,
    jump_trials: u64,
}

/// The DQ value of each flagged class, DO_NOT_USE included where asked.
#[derive(Clone, Copy, Debug)]
struct ClassValues {
    hot: u32,
    saturated: u32,
    rc: u32,
    low_pedestal: u32,
    high_cr: u32,
}

impl ClassValues {
    fn new(p: &DarkParams) -> Result<Self, GeneratorError> {
        let fv = &p.flag_values;
        let known = |c: &str| c == "saturated" || fv.0.keys().any(|k| k.eq_ignore_ascii_case(c));
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
        let has_sat = fv.0.keys().any(|k| k.eq_ignore_ascii_case("saturated"));
        let hot = value("hot")?;
        let saturated = if has_sat {
            value("saturated")?
        } else if dnu.iter().any(|d| d == "saturated") {
            hot | dq::DO_NOT_USE
        } else {
            hot
        };
        Ok(ClassValues {
            hot,
            saturated,
            rc: value("rc")?,
            low_pedestal: value("low_pedestal")?,
            high_cr: value("high_cr")?,
        })
    }
}

fn check_params(p: &DarkParams) -> Result<(), GeneratorError> {
    let bad = |m: String| Err(GeneratorError::invalid_parameter(m));
    let positive = [
        ("dark_clipping_sigma", p.clipping_sigma),
        ("dark_noisy_threshold", p.noisy_threshold),
        ("dark_pedestal_sigma_threshold", p.pedestal_sigma_threshold),
        ("dark_jump_ratio_threshold", p.jump_ratio_threshold),
        ("dark_hot_sigma_threshold", p.hot_sigma_threshold),
    ];
    for (name, v) in positive {
        if !(v.is_finite() && v > 0.0) {
            return bad(format!("{name} must be a finite number > 0 (got {v})"));
        }
    }
    let fractions = [
        ("dark_max_saturated_fraction", p.max_saturated_fraction),
        ("dark_rc_fraction_threshold", p.rc_fraction_threshold),
        ("dark_low_pedestal_fraction", p.low_pedestal_fraction),
        ("dark_high_cr_fraction", p.high_cr_fraction),
        ("dark_hot_fraction_threshold", p.hot_fraction_threshold),
    ];
    for (name, v) in fractions {
        if !(0.0..=1.0).contains(&v) {
            return bad(format!("{name} must be between 0 and 1 (got {v})"));
        }
    }
    if !(p.early_cutoff_fraction > 0.0 && p.early_cutoff_fraction <= 0.5) {
        return bad(format!(
            "dark_early_cutoff_fraction must be in (0, 0.5] (got {}); the early and late jump \
             windows would overlap",
            p.early_cutoff_fraction
        ));
    }
    if p.max_clipping_iters == 0 {
        return bad("dark_max_clipping_iters must be at least 1".to_string());
    }
    if p.max_jump_limit == 0 {
        return bad("dark_max_jump_limit must be at least 1".to_string());
    }
    Ok(())
}

/// Finds the bad pixels of a set of dark exposures (see the module documentation).
///
/// Errors (each naming the file): missing jump or fitopt product, a ramp given as slopes or a
/// slope file given as the jump product, files of different detectors or windows, fewer than
/// [`MIN_CLEAN_SLOPES`] integrations in total, an integration whose slopes or pedestal are NaN
/// on every science pixel, an unknown flag mnemonic or class.
pub fn bad_pixels_from_darks(
    inputs: &[DarkInputs],
    params: &DarkParams,
    log: &dyn Fn(&str),
) -> Result<DarkResult, GeneratorError> {
    check_params(params)?;
    let values = ClassValues::new(params)?;
    let (geo, exps) = open_exposures(inputs, log)?;
    let total_ints: usize = exps.iter().map(|e| e.nints).sum();

    // Step 1: per-integration thresholds, one plane at a time.
    let stats = integration_thresholds(&exps, &geo, params)?;
    // Step 2: per-pixel counts, band by band.
    let counts = scan_bands(&exps, &stats, &geo, params)?;
    // Step 3: detector-wide cuts and the classes.
    let mut notes = Vec::new();
    let noisy_cut = noisy_cut(&counts.ratio, &geo, params, &mut notes);
    let k_frequent = frequent_jump_limit(&counts, total_ints, params, &mut notes);
    let hot_t: Vec<String> = stats.iter().map(|s| format!("{:.4}", s.hot)).collect();
    notes.push(format!(
        "hot slope thresholds per integration (DN/s): {}",
        hot_t.join(", ")
    ));
    let (classes, dq) = classify(&counts, &geo, &values, noisy_cut, k_frequent);
    for c in CLASS_NAMES {
        let count = classes[c].iter().filter(|&&b| b).count();
        notes.push(format!("{c}: {count} pixels"));
    }
    for note in &notes {
        log(&format!("darks: {note}"));
    }
    Ok(DarkResult {
        ny: geo.ny,
        nx: geo.nx,
        dq,
        classes,
        notes,
    })
}

/// Opens and checks the exposures; at least [`MIN_CLEAN_SLOPES`] integrations are needed.
fn open_exposures(
    inputs: &[DarkInputs],
    log: &dyn Fn(&str),
) -> Result<(Geometry, Vec<Exposure>), GeneratorError> {
    if inputs.is_empty() {
        return Err(GeneratorError::invalid_input(format!(
            "no dark exposures given; the dark bad-pixel search needs at least \
             {MIN_CLEAN_SLOPES} integrations in total"
        )));
    }
    let (geo, exps) = inputs::open(inputs)?;
    let total_ints: usize = exps.iter().map(|e| e.nints).sum();
    if total_ints < MIN_CLEAN_SLOPES {
        return Err(GeneratorError::invalid_input(format!(
            "too few dark integrations: {} ({}) hold {total_ints} integration(s), but the \
             noise search needs at least {MIN_CLEAN_SLOPES} (upstream requires 5 slope files); \
             add darks",
            exps.len(),
            exps.iter()
                .map(|e| format!("{}: {}", e.label, e.slopes.display()))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    log(&format!(
        "darks: {} exposure(s), {total_ints} integration(s), {}",
        exps.len(),
        geo.describe
    ));
    if geo.miri {
        log("darks: MIRI: the RC and low-pedestal tests use |group 2 - PEDESTAL| (uncal ramps)");
    }
    Ok((geo, exps))
}

/// Step 1 for every integration of every exposure, in parallel.
fn integration_thresholds(
    exps: &[Exposure],
    geo: &Geometry,
    params: &DarkParams,
) -> Result<Vec<IntStats>, GeneratorError> {
    let jobs: Vec<(usize, usize)> = exps
        .iter()
        .enumerate()
        .flat_map(|(k, e)| (0..e.nints).map(move |j| (k, j)))
        .collect();
    jobs.par_iter()
        .map(|&(k, j)| integration_stats(&exps[k], j, geo, params))
        .collect()
}

/// What step 2 found over the whole window.
struct Counts {
    bits: Vec<u8>,
    jumpy: Vec<u16>,
    ratio: Vec<f32>,
    /// Σ jump-hit integrations and Σ integrations over the unsaturated science pixels.
    jump_hits: u64,
    jump_trials: u64,
}

/// Step 2 over bands of rows, in parallel; the bands joined in row order.
fn scan_bands(
    exps: &[Exposure],
    stats: &[IntStats],
    geo: &Geometry,
    params: &DarkParams,
) -> Result<Counts, GeneratorError> {
    let limits = JumpLimits {
        max_jump_limit: params.max_jump_limit,
        jump_ratio_threshold: params.jump_ratio_threshold,
        early_cutoff_fraction: params.early_cutoff_fraction,
    };
    let (ny, nx) = (geo.ny, geo.nx);
    let max_ng = exps.iter().map(|e| e.ngroups).max().unwrap_or(1);
    let bytes_per_row = nx * (max_ng + 4 * 4 + 48);
    let threads = rayon::current_num_threads().max(1);
    let rows = rows_per_block(bytes_per_row, 16 << 20, ny).min(ny.div_ceil(2 * threads).max(8));
    let blocks: Vec<(usize, usize)> = row_blocks(ny, rows).collect();
    let first_stat: Vec<usize> = exps
        .iter()
        .scan(0, |acc, e| {
            let s = *acc;
            *acc += e.nints;
            Some(s)
        })
        .collect();
    let bands: Vec<BandOut> = blocks
        .par_iter()
        .map(|&(y0, y1)| process_band(exps, stats, &first_stat, geo, limits, params, (y0, y1)))
        .collect::<Result<_, _>>()?;
    let n = ny * nx;
    let mut counts = Counts {
        bits: Vec::with_capacity(n),
        jumpy: Vec::with_capacity(n),
        ratio: Vec::with_capacity(n),
        jump_hits: 0,
        jump_trials: 0,
    };
    for b in bands {
        counts.bits.extend(b.bits);
        counts.jumpy.extend(b.jumpy);
        counts.ratio.extend(b.ratio);
        counts.jump_hits += b.jump_hits;
        counts.jump_trials += b.jump_trials;
    }
    Ok(counts)
}

/// The noisy cut: the clipped mean plus `noisy_threshold` clipped sd of the clean-slope noise
/// ratios of the science pixels; infinite (nothing noisy) when no pixel has a ratio.
fn noisy_cut(ratio: &[f32], geo: &Geometry, params: &DarkParams, notes: &mut Vec<String>) -> f64 {
    let sci_ratio: Vec<f32> = ratio
        .iter()
        .zip(&geo.reference)
        .filter(|&(r, &is_ref)| !is_ref && r.is_finite())
        .map(|(&r, _)| r)
        .collect();
    let Some(b) = clip_bounds_flat(&sci_ratio, params.clipping_sigma, params.max_clipping_iters)
    else {
        notes.push(format!(
            "noisy: no pixel has {MIN_CLEAN_SLOPES} clean slopes; noise search skipped"
        ));
        return f64::INFINITY;
    };
    let kept: Vec<f64> = sci_ratio
        .iter()
        .map(|&r| f64::from(r))
        .filter(|&r| b.keeps(r))
        .collect();
    let m = kept.iter().sum::<f64>() / kept.len().max(1) as f64;
    let sd = (kept.iter().map(|r| (r - m).powi(2)).sum::<f64>() / kept.len().max(1) as f64).sqrt();
    let cut = m + sd * params.noisy_threshold;
    notes.push(format!(
        "noisy: clean-slope scatter / ramp-fit ERR of {} pixels with >= {MIN_CLEAN_SLOPES} \
         clean slopes: clipped mean {m:.4}, sd {sd:.4}, cut {cut:.4}",
        sci_ratio.len()
    ));
    cut
}

/// The number of jump-hit integrations (of `total_ints`) from which a pixel is TELEGRAPH: as
/// improbable, for the detector's rate of jump-hit integrations, as a `noisy_threshold`-sigma
/// normal event.
fn frequent_jump_limit(
    counts: &Counts,
    total_ints: usize,
    params: &DarkParams,
    notes: &mut Vec<String>,
) -> usize {
    let p_hit = if counts.jump_trials > 0 {
        counts.jump_hits as f64 / counts.jump_trials as f64
    } else {
        0.0
    };
    let alpha = pixel::normal_upper_tail(params.noisy_threshold);
    let k_frequent = pixel::frequent_jump_limit(total_ints, p_hit, alpha);
    notes.push(format!(
        "frequent jumps: {:.3e} of the integrations of a pixel are hit by jumps; {k_frequent} \
         or more of {total_ints} (probability <= {alpha:.2e}) make a pixel TELEGRAPH",
        p_hit
    ));
    k_frequent
}

/// The class maps and the DQ map: each flagged class's value ORed in, reference pixels
/// REFERENCE_PIXEL only.
fn classify(
    counts: &Counts,
    geo: &Geometry,
    values: &ClassValues,
    noisy_cut: f64,
    k_frequent: usize,
) -> (BTreeMap<String, Vec<bool>>, Vec<u32>) {
    let n = geo.ny * geo.nx;
    let mut classes: BTreeMap<String, Vec<bool>> = CLASS_NAMES
        .iter()
        .map(|c| (c.to_string(), vec![false; n]))
        .collect();
    let mut dqmap = vec![0u32; n];
    let mut m: BTreeMap<&str, &mut Vec<bool>> =
        classes.iter_mut().map(|(k, v)| (k.as_str(), v)).collect();
    for (i, v) in dqmap.iter_mut().enumerate() {
        if geo.reference[i] {
            m.get_mut("reference_pixel").unwrap()[i] = true;
            *v = dq::REFERENCE_PIXEL;
            continue;
        }
        let mut set = |name: &str| m.get_mut(name).unwrap()[i] = true;
        let tests = PixelTests {
            bits: counts.bits[i],
            noisy: f64::from(counts.ratio[i]) > noisy_cut,
            frequent: usize::from(counts.jumpy[i]) >= k_frequent,
        };
        *v = tests.classify(values, &mut set);
    }
    drop(m);
    (classes, dqmap)
}

/// What the tests say of one science pixel.
struct PixelTests {
    /// The class word of step 2.
    bits: u8,
    noisy: bool,
    frequent: bool,
}

impl PixelTests {
    /// Marks the pixel's classes (`set`) and returns its DQ value.
    fn classify(&self, values: &ClassValues, set: &mut dyn FnMut(&str)) -> u32 {
        let b = self.bits;
        let mut v = 0u32;
        if b & B_SAT != 0 {
            set("saturated");
            v |= values.saturated;
        }
        if b & B_HOT != 0 {
            set("hot");
            v |= values.hot;
        }
        let (rp, rj) = (b & B_RCPED != 0, b & B_RCJUMP != 0);
        if rp {
            set("rc_from_pedestal");
        }
        if rj {
            set("rc_from_jumps");
        }
        if rp || rj {
            set("rc");
            v |= values.rc;
        }
        if b & B_LOWPED != 0 {
            set("low_pedestal");
            v |= values.low_pedestal;
        }
        let many = b & B_MANY != 0;
        if self.noisy {
            set("noisy");
        }
        if many {
            set("many_jumps");
        }
        if self.frequent {
            set("frequent_jumps");
        }
        if self.noisy || many || self.frequent {
            set("high_cr");
            v |= values.high_cr;
        }
        v
    }
}

/// Reads rows `y0..y1` of `plane` of an image as `T`.
fn read_band<T: mkrefs_support::fits::Pixel>(
    r: &mut ImageReader,
    plane: usize,
    y0: usize,
    y1: usize,
    buf: &mut Vec<T>,
) -> Result<(), GeneratorError> {
    buf.resize((y1 - y0) * r.nx(), T::default());
    r.read_rows(plane, y0, y1, buf).map_err(fits_err)
}

/// The pedestal as the RC and low-pedestal tests see it: PEDESTAL, or for MIRI |group 2 − it|.
fn tested_pedestal(ped: &mut [f32], g2: Option<&[f32]>) {
    if let Some(g2) = g2 {
        for (p, &g) in ped.iter_mut().zip(g2) {
            *p = (g - *p).abs();
        }
    }
}

/// Step 1 for integration `j` of `e`: pedestal bounds and the hot threshold.
fn integration_stats(
    e: &Exposure,
    j: usize,
    geo: &Geometry,
    p: &DarkParams,
) -> Result<IntStats, GeneratorError> {
    let (ny, nx) = (geo.ny, geo.nx);
    let mut slope_r = ImageReader::open(&e.slopes, "SCI").map_err(fits_err)?;
    let mut ped_r = ImageReader::open(&e.fitopt, "PEDESTAL").map_err(fits_err)?;
    let mut gdq_r = ImageReader::open(&e.jump, "GROUPDQ").map_err(fits_err)?;
    let mut g2_r = match &e.uncal {
        Some(u) => Some(ImageReader::open(u, "SCI").map_err(fits_err)?),
        None => None,
    };
    let ped_plane = if ped_r.shape().len() == 3 { j } else { 0 };
    let slope_plane = if slope_r.shape().len() == 3 { j } else { 0 };
    let mut peds: Vec<f32> = Vec::with_capacity(ny * nx);
    let mut slopes: Vec<f32> = Vec::with_capacity(ny * nx);
    let (mut s_buf, mut p_buf, mut g_buf, mut g2_buf) = (
        Vec::<f32>::new(),
        Vec::<f32>::new(),
        Vec::<u8>::new(),
        Vec::<f32>::new(),
    );
    let (mut any_slope, mut any_ped) = (false, false);
    for (y0, y1) in row_blocks(ny, 256) {
        read_band(&mut slope_r, slope_plane, y0, y1, &mut s_buf)?;
        read_band(&mut ped_r, ped_plane, y0, y1, &mut p_buf)?;
        read_band(&mut gdq_r, j * e.ngroups, y0, y1, &mut g_buf)?;
        if let Some(r) = g2_r.as_mut() {
            read_band(r, j * e.uncal_ngroups + 1, y0, y1, &mut g2_buf)?;
        }
        tested_pedestal(&mut p_buf, g2_r.as_ref().map(|_| g2_buf.as_slice()));
        for k in 0..(y1 - y0) * nx {
            if geo.reference[y0 * nx + k] {
                continue;
            }
            any_slope |= s_buf[k].is_finite();
            any_ped |= p_buf[k].is_finite();
            if !saturated_in_all_groups(g_buf[k]) {
                peds.push(p_buf[k]);
            }
            slopes.push(s_buf[k]);
        }
    }
    let nan_error = |path: &std::path::Path, hdu: &str| {
        GeneratorError::invalid_input(format!(
            "{} [{hdu}]: integration {} of dark {} is NaN on every science pixel; the file \
             holds no usable data (was the step that made it run on a dark exposure?)",
            path.display(),
            j + 1,
            e.label
        ))
    };
    if !any_slope {
        return Err(nan_error(&e.slopes, "SCI"));
    }
    if !any_ped {
        return Err(nan_error(&e.fitopt, "PEDESTAL"));
    }
    let (pm, psd) = sigmaclip_mean_std(&mut peds, PEDESTAL_CLIP_SIGMA, PEDESTAL_CLIP_SIGMA)
        .unwrap_or((0.0, f64::INFINITY));
    drop(peds);
    let b = clip_bounds_flat(&slopes, HOT_CLIP_SIGMA, HOT_CLIP_ITERS)
        .ok_or_else(|| nan_error(&e.slopes, "SCI"))?;
    slopes.retain(|&s| b.keeps(f64::from(s)));
    let med = mkrefs_support::stats::nanmedian(&slopes).map_or(f64::NAN, f64::from);
    let n = slopes.len().max(1) as f64;
    let mean = slopes.iter().map(|&s| f64::from(s)).sum::<f64>() / n;
    let sd = (slopes
        .iter()
        .map(|&s| (f64::from(s) - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    Ok(IntStats {
        ped_lo: pm - psd * p.pedestal_sigma_threshold,
        ped_hi: pm + psd * p.pedestal_sigma_threshold,
        hot: med + p.hot_sigma_threshold * sd,
    })
}

/// Step 2 for rows `y0..y1`.
fn process_band(
    exps: &[Exposure],
    stats: &[IntStats],
    first_stat: &[usize],
    geo: &Geometry,
    limits: JumpLimits,
    p: &DarkParams,
    (y0, y1): (usize, usize),
) -> Result<BandOut, GeneratorError> {
    let nx = geo.nx;
    let m = (y1 - y0) * nx;
    let mut sat = vec![0u16; m];
    let mut rcped = vec![0u16; m];
    let mut lowped = vec![0u16; m];
    let mut many = vec![0u16; m];
    let mut rcjump = vec![0u16; m];
    let mut jumpy = vec![0u16; m];
    let mut hot = vec![0u16; m];
    let mut finite = vec![0u16; m];
    let mut clean = vec![CleanSlopes::default(); m];
    let (mut s_buf, mut e_buf, mut p_buf, mut g2_buf) = (
        Vec::<f32>::new(),
        Vec::<f32>::new(),
        Vec::<f32>::new(),
        Vec::<f32>::new(),
    );
    let mut g_buf: Vec<u8> = Vec::new();
    let mut jumps: Vec<bool> = Vec::new();
    let total: usize = exps.iter().map(|e| e.nints).sum();
    for (k, e) in exps.iter().enumerate() {
        let ng = e.ngroups;
        let mut slope_r = ImageReader::open(&e.slopes, "SCI").map_err(fits_err)?;
        let mut err_r = ImageReader::open(&e.slopes, "ERR").map_err(fits_err)?;
        let mut ped_r = ImageReader::open(&e.fitopt, "PEDESTAL").map_err(fits_err)?;
        let mut gdq_r = ImageReader::open(&e.jump, "GROUPDQ").map_err(fits_err)?;
        let mut g2_r = match &e.uncal {
            Some(u) => Some(ImageReader::open(u, "SCI").map_err(fits_err)?),
            None => None,
        };
        let cube = |r: &ImageReader| r.shape().len() == 3;
        let (s3, e3, p3) = (cube(&slope_r), cube(&err_r), cube(&ped_r));
        let plane = |is3: bool, j: usize| if is3 { j } else { 0 };
        for j in 0..e.nints {
            let st = stats[first_stat[k] + j];
            read_band(&mut slope_r, plane(s3, j), y0, y1, &mut s_buf)?;
            read_band(&mut err_r, plane(e3, j), y0, y1, &mut e_buf)?;
            read_band(&mut ped_r, plane(p3, j), y0, y1, &mut p_buf)?;
            if let Some(r) = g2_r.as_mut() {
                read_band(r, j * e.uncal_ngroups + 1, y0, y1, &mut g2_buf)?;
            }
            tested_pedestal(&mut p_buf, g2_r.as_ref().map(|_| g2_buf.as_slice()));
            g_buf.resize(ng * m, 0);
            for g in 0..ng {
                gdq_r
                    .read_rows(j * ng + g, y0, y1, &mut g_buf[g * m..(g + 1) * m])
                    .map_err(fits_err)?;
            }
            for i in 0..m {
                if geo.reference[y0 * nx + i] {
                    continue;
                }
                let fg = g_buf[i];
                let all_sat = saturated_in_all_groups(fg);
                if all_sat {
                    sat[i] += 1;
                }
                let ped = f64::from(p_buf[i]);
                if !all_sat && ped.is_finite() {
                    if ped > st.ped_hi {
                        rcped[i] += 1;
                    }
                    if ped < st.ped_lo {
                        lowped[i] += 1;
                    }
                }
                jumps.clear();
                jumps.extend((0..ng).map(|g| u32::from(g_buf[g * m + i]) & dq::JUMP_DET != 0));
                let js = limits.summarise(&jumps);
                if js.n > 0 {
                    jumpy[i] += 1;
                }
                if js.many {
                    many[i] += 1;
                }
                if js.rc {
                    rcjump[i] += 1;
                }
                let s = f64::from(s_buf[i]);
                if s.is_finite() {
                    finite[i] += 1;
                    if s >= st.hot {
                        hot[i] += 1;
                    }
                    if js.n == 0 {
                        clean[i].push(s, f64::from(e_buf[i]));
                    }
                }
            }
        }
    }
    let nf = total as f64;
    let frac = |c: u16| f64::from(c) / nf;
    let mut out = BandOut {
        bits: vec![0; m],
        jumpy,
        ratio: vec![f32::NAN; m],
        jump_hits: 0,
        jump_trials: 0,
    };
    for i in 0..m {
        if geo.reference[y0 * nx + i] {
            continue;
        }
        let flag = |on: bool, b: u8| if on { b } else { 0 };
        out.bits[i] = flag(frac(sat[i]) >= p.max_saturated_fraction, B_SAT)
            | flag(frac(rcped[i]) > p.rc_fraction_threshold, B_RCPED)
            | flag(frac(rcjump[i]) > p.rc_fraction_threshold, B_RCJUMP)
            | flag(frac(lowped[i]) > p.low_pedestal_fraction, B_LOWPED)
            | flag(frac(many[i]) > p.high_cr_fraction, B_MANY)
            | flag(
                finite[i] > 0
                    && f64::from(hot[i]) / f64::from(finite[i]) >= p.hot_fraction_threshold,
                B_HOT,
            );
        out.ratio[i] = clean[i].noise_ratio(MIN_CLEAN_SLOPES as u32) as f32;
        if sat[i] == 0 {
            out.jump_hits += u64::from(out.jumpy[i]);
            out.jump_trials += total as u64;
        }
    }
    Ok(out)
}
