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
//! 2. Per band of rows, every integration of every exposure: GROUPDQ and SCI of the jump product
//!    (all groups), PEDESTAL, the slopes with their ERR and VAR_POISSON are read for those rows
//!    only; each pixel counts the integrations that are saturated in all groups, have a high or
//!    a low pedestal, many jumps, RC-like jumps, or a slope above the hot threshold; the slopes
//!    of integrations without jumps ("clean") are accumulated without being stored, and the
//!    pixel's group differences over all integrations are analysed ([`differences`]): its own
//!    jumps, told from the flags the jump step gives the neighbours of a hit, and a reset
//!    transient repeated in every integration.
//! 3. Over the detector (module `classify`): the typical noise of a clean slope and the rate of own
//!    jumps; then each pixel's classes, decided so that one defect does not carry another
//!    class's flag (the rules are in that module's documentation).
//!
//! Memory is the per-pixel counters and findings (about 40 bytes a pixel) plus one band per
//! thread (which holds the band's group differences of every integration); only science pixels
//! (from the header geometry) are searched.
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
//! - The whole-image clips of step 1 follow scipy's and astropy's rules but sum in f64
//!   (`mkrefs_support::clipped`, which sorts the image into buckets once, so that a round costs
//!   microseconds instead of passes over 4 million values); numpy sums float32 images in
//!   float32, so a bound can differ from upstream's in the last bits of an f32.
//! - RC is also found from the ramp itself: an early-minus-late difference of one sign in more
//!   than `rc_fraction_threshold` of the integrations (significant at
//!   `pedestal_sigma_threshold`), which survives a superbias made from the same darks (that
//!   superbias absorbs the high pedestal upstream looks for).
//! - A pixel with fewer than 5 clean slopes is *not* automatically noisy (upstream sets its sd to
//!   NaN, then flags it: every pixel hit by cosmic rays in most integrations became TELEGRAPH).
//!   Instead a pixel whose number of *own* jumps is improbable (Poisson, one-sided probability
//!   below that of a `noisy_threshold`-σ normal event) for the detector's rate of own jumps is
//!   TELEGRAPH (class `frequent_jumps`). Counting the jump step's flags instead would count the
//!   neighbours' cosmic rays (jwst flags the 4 neighbours of every large jump). Upstream's
//!   many-jumps test (`>= max_jump_limit` jumps in more than `high_cr_fraction` of the
//!   integrations) is kept, and cannot fire for ramps shorter than `max_jump_limit` groups.
//! - Noisy pixels ([`noise`]) are tested against the detector's population (the clean-slope
//!   variance against the typical pixel's plus the pixel's own shot noise, so a pixel the
//!   READNOISE reference knows to be noisy is still found and a hot pixel is not called noisy)
//!   and against the pixel's own ERR, each as a χ² test at the `noisy_threshold`-σ level with the
//!   pixel's number of clean slopes, instead of upstream's cut of the std image at its clipped
//!   mean plus `noisy_threshold` clipped sd. They get `flag_values['noisy']` when that key is
//!   given, else `flag_values['high_cr']` (TELEGRAPH by default, as upstream).
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

pub mod differences;
mod model;
pub mod noise;
pub mod pixel;

mod classify;
mod inputs;
mod scan;

pub use inputs::DarkInputs;
use inputs::{Exposure, Geometry, fits_err};
use mkrefs_support::budget::row_blocks;
use mkrefs_support::clipped::sigma_clipped_stats;
use mkrefs_support::fits::ImageReader;
pub use model::{CLASS_NAMES, DarkParams, FlagValues, MIN_CLEAN_SLOPES};
use model::{ClassValues, IntStats};
use pixel::{saturated_in_all_groups, sigmaclip_mean_std};
use rayon::prelude::*;
use scan::{read_band, tested_pedestal};

/// Clipping of the per-integration slope image for the hot threshold (the `sigma_clipped_stats`
/// defaults of the later master; its sums in f64, see `mkrefs_support::clipped`).
const HOT_CLIP_SIGMA: f64 = 3.0;
const HOT_CLIP_ITERS: usize = 5;

/// The raw first-group levels sampled for [`IntStats::raw_hi`]: one pixel in 7 (a stride
/// prime to the row length, so every column is sampled).
const RAW_LEVEL_STRIDE: usize = 7;

/// Clipping of a PEDESTAL image (upstream's scipy `sigmaclip(low=3, high=3)`).
const PEDESTAL_CLIP_SIGMA: f64 = 3.0;

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

    let clock = std::time::Instant::now();
    // Step 1: per-integration thresholds, one plane at a time.
    let stats = integration_thresholds(&exps, &geo, params)?;
    let t1 = clock.elapsed().as_secs_f64();
    // Step 2: per-pixel counts, band by band.
    let counts = scan::scan_bands(&exps, &stats, &geo, params)?;
    let t2 = clock.elapsed().as_secs_f64();
    // Step 3: detector-wide cuts and the classes.
    let mut notes = vec![format!("{total_ints} integration(s)")];
    let cuts = classify::Cuts::new(&counts, &geo, params, &mut notes);
    let hot_t: Vec<String> = stats.iter().map(|s| format!("{:.4}", s.hot)).collect();
    notes.push(format!(
        "hot slope thresholds per integration (DN/s): {}",
        hot_t.join(", ")
    ));
    let (classes, dq) = classify::classify(&counts, &geo, &values, &cuts);
    notes.push(format!(
        "time: thresholds {t1:.2} s, scan {:.2} s, classes {:.2} s",
        t2 - t1,
        clock.elapsed().as_secs_f64() - t2
    ));
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
    let (pm, psd) = sigmaclip_mean_std(&peds, PEDESTAL_CLIP_SIGMA, PEDESTAL_CLIP_SIGMA)
        .unwrap_or((0.0, f64::INFINITY));
    drop(peds);
    let clip = sigma_clipped_stats(&slopes, HOT_CLIP_SIGMA, HOT_CLIP_ITERS)
        .ok_or_else(|| nan_error(&e.slopes, "SCI"))?;
    Ok(IntStats {
        ped_lo: pm - psd * p.pedestal_sigma_threshold,
        ped_hi: pm + psd * p.pedestal_sigma_threshold,
        hot: clip.median + p.hot_sigma_threshold * clip.std,
        raw_hi: raw_level_bound(e, j, geo, p)?,
    })
}

/// The raw first-group bound of [`IntStats::raw_hi`] for integration `j` of `e`.
fn raw_level_bound(
    e: &Exposure,
    j: usize,
    geo: &Geometry,
    p: &DarkParams,
) -> Result<Option<f64>, GeneratorError> {
    let Some((path, ngroups)) = &e.raw else {
        return Ok(None);
    };
    let mut r = ImageReader::open(path, "SCI").map_err(fits_err)?;
    let plane: Vec<f32> = r.read_plane(j * ngroups).map_err(fits_err)?;
    // Every RAW_LEVEL_STRIDE-th science pixel: a bound 5 sd out needs the distribution's
    // centre and width, not every pixel (the clip iterates over what it is given).
    let levels: Vec<f32> = plane
        .iter()
        .zip(&geo.reference)
        .step_by(RAW_LEVEL_STRIDE)
        .filter(|&(_, &is_ref)| !is_ref)
        .map(|(&v, _)| v)
        .collect();
    Ok(
        sigmaclip_mean_std(&levels, PEDESTAL_CLIP_SIGMA, PEDESTAL_CLIP_SIGMA)
            .map(|(m, sd)| m + p.pedestal_sigma_threshold * sd),
    )
}
