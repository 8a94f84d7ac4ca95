//! The jump step: cosmic-ray and other jump detection by the two-point difference method of
//! stcal (`stcal/jump/twopoint_difference.py: find_crs`, called from `jump.py: detect_jumps`),
//! as the jwst "jump step" documentation describes it.
//!
//! Per pixel and integration (the per-integration branch of `find_crs`, the one used for fewer
//! than `minimum_sigclip_groups` = 100 integrations):
//!
//! 1. The data and the read noise are converted to electrons with the gain.
//! 2. First differences of adjacent groups are formed; a difference involving a group flagged
//!    SATURATED or DO_NOT_USE is not usable (NaN in stcal).
//! 3. The median difference is taken as `calc_med_first_diffs` does: with 4 or more usable
//!    differences the largest in absolute value is left out first; with 3 the plain median;
//!    with 2 the one of smaller absolute value; fewer gives no median.
//! 4. `sigma = sqrt(|median| + read_noise² / nframes)` (Poisson plus CDS read noise, e-) and
//!    `ratio = |diff - median| / sigma`.
//! 5. If the largest ratio exceeds the threshold for the number of usable differences
//!    (`rejection_threshold` for 4 or more, `four_group_rejection_threshold` for 3,
//!    `three_group_rejection_threshold` for 2; no detection with 1), that difference is a jump;
//!    it is then masked, the median, sigma and ratios recomputed, and the next largest is tested,
//!    while more than 2 usable differences remain.
//! 6. The group at the end of each jumping difference gets JUMP_DET.
//! 7. With `flag_4_neighbors`, a jump whose ratio (computed against the pixel's median over all
//!    integrations, `ratio_all` in stcal) lies strictly between `min_jump_to_flag_neighbors` and
//!    `max_jump_to_flag_neighbors` also flags the 4 adjacent pixels in the same group, unless
//!    that group of the neighbour is SATURATED or DO_NOT_USE.
//!
//! As in `jump.py`, exposures with fewer than `minimum_groups` (3) groups are skipped
//! (S_JUMP = 'SKIPPED'). Not implemented: the after-jump flagging (`after_jump_flag_*`, off by
//! default), snowball/shower detection (`expand_large_events`, `find_showers`, off by default
//! for NIR in the step defaults used here), and the sigma-clipping branch for ≥ 100
//! integrations; exposures needing that branch are rejected with an error rather than run with
//! the wrong statistics.

use mkrefs_support::dq;
use rayon::prelude::*;

use crate::ramp::Ramp;

/// The parameters of the jump step, with the jwst `JumpStep` defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct JumpParams {
    /// Sigma threshold for ramps with 4 or more usable differences (`rejection_threshold`, 4.0).
    pub rejection_threshold: f64,
    /// Sigma threshold for ramps with 3 usable groups, i.e. 2 differences
    /// (`three_group_rejection_threshold`, 6.0).
    pub three_group_rejection_threshold: f64,
    /// Sigma threshold for ramps with 4 usable groups, i.e. 3 differences
    /// (`four_group_rejection_threshold`, 5.0).
    pub four_group_rejection_threshold: f64,
    /// Flag the 4 adjacent pixels of a jump (`flag_4_neighbors`, true).
    pub flag_4_neighbors: bool,
    /// Jumps above this many sigma do not get their neighbours flagged
    /// (`max_jump_to_flag_neighbors`, 1000).
    pub max_jump_to_flag_neighbors: f64,
    /// Jumps below this many sigma do not get their neighbours flagged
    /// (`min_jump_to_flag_neighbors`, 10).
    pub min_jump_to_flag_neighbors: f64,
    /// Exposures with fewer groups per integration are skipped (`minimum_groups`, 3).
    pub minimum_groups: usize,
    /// Integrations from which stcal switches to sigma clipping across integrations
    /// (`minimum_sigclip_groups`, 100); not implemented here, such exposures are refused.
    pub minimum_sigclip_groups: usize,
}

impl Default for JumpParams {
    fn default() -> Self {
        JumpParams {
            rejection_threshold: 4.0,
            three_group_rejection_threshold: 6.0,
            four_group_rejection_threshold: 5.0,
            flag_4_neighbors: true,
            max_jump_to_flag_neighbors: 1000.0,
            min_jump_to_flag_neighbors: 10.0,
            minimum_groups: 3,
            minimum_sigclip_groups: 100,
        }
    }
}

/// What the jump step did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JumpSummary {
    /// True when the exposure had too few groups and the step was skipped.
    pub skipped: bool,
    /// Groups newly flagged JUMP_DET by the two-point difference test.
    pub primary: usize,
    /// Groups newly flagged JUMP_DET as neighbours of a primary jump.
    pub neighbours: usize,
}

/// Why the jump step could not run.
#[derive(Debug, thiserror::Error)]
pub enum JumpError {
    /// Arrays whose sizes do not match the ramp.
    #[error("jump: {0}")]
    Shape(String),
    /// A header value the step needs is unusable.
    #[error("jump: {0}")]
    Header(String),
    /// The request needs a part of the stcal algorithm that is not implemented.
    #[error("jump: {0}")]
    Unsupported(String),
}

const BAD: u8 = (dq::SATURATED | dq::DO_NOT_USE) as u8;
const JUMP: u8 = dq::JUMP_DET as u8;

/// `calc_med_first_diffs` of stcal on the usable (non-NaN) values of one pixel.
#[cfg(test)]
pub(crate) fn median_first_diffs(diffs: &[f64]) -> f64 {
    median_first_diffs_with(diffs, &mut Vec::new())
}

/// [`median_first_diffs`] with `v` as working space.
fn median_first_diffs_with(diffs: &[f64], v: &mut Vec<f64>) -> f64 {
    v.clear();
    v.extend(diffs.iter().copied().filter(|d| !d.is_nan()));
    match v.len() {
        0 | 1 => f64::NAN,
        2 => {
            if v[0].abs() <= v[1].abs() {
                v[0]
            } else {
                v[1]
            }
        }
        n => {
            if n >= 4 {
                let imax = (0..n)
                    .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
                    .unwrap_or(0);
                v.swap_remove(imax);
            }
            median(v)
        }
    }
}

/// The median of a non-empty slice (mean of the two middle values for an even count, as numpy).
pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The two-point difference search of one pixel's integration (`find_crs`, steps 3 to 5).
/// `diffs` are first differences in electrons (NaN where unusable); returns the indices of the
/// differences found to be jumps.
#[cfg(test)]
pub(crate) fn find_crs_pixel(
    diffs: &[f64],
    rn2_e: f64,
    nframes: f64,
    p: &JumpParams,
) -> Vec<usize> {
    let mut crs = Vec::new();
    find_crs_into(
        diffs,
        rn2_e,
        nframes,
        p,
        &mut CrScratch::default(),
        &mut crs,
    );
    crs
}

/// Working space of [`find_crs_into`], reused from pixel to pixel.
#[derive(Default)]
struct CrScratch {
    d: Vec<f64>,
    med: Vec<f64>,
}

/// [`find_crs_pixel`] into `crs` (cleared first), without allocating once `s` has grown.
fn find_crs_into(
    diffs: &[f64],
    rn2_e: f64,
    nframes: f64,
    p: &JumpParams,
    s: &mut CrScratch,
    crs: &mut Vec<usize>,
) {
    crs.clear();
    let usable = |d: &[f64]| d.iter().filter(|x| !x.is_nan()).count();
    let thresh = |n: usize| match n {
        0 | 1 => f64::INFINITY,
        2 => p.three_group_rejection_threshold,
        3 => p.four_group_rejection_threshold,
        _ => p.rejection_threshold,
    };
    // Index and value of the largest non-NaN ratio |d - median| / sigma (the last of equal
    // ones, as `Iterator::max_by`); None when there is none.
    let argmax_ratio = |d: &[f64], med_buf: &mut Vec<f64>| -> Option<(usize, f64)> {
        let med = median_first_diffs_with(d, med_buf);
        let sigma = (med.abs() + rn2_e / nframes).sqrt();
        if sigma == 0.0 || sigma.is_nan() {
            return None;
        }
        let mut best: Option<(usize, f64)> = None;
        for (i, x) in d.iter().enumerate() {
            let r = (x - med).abs() / sigma;
            if r.is_nan() {
                continue;
            }
            match best {
                Some((_, b)) if r.total_cmp(&b) == std::cmp::Ordering::Less => {}
                _ => best = Some((i, r)),
            }
        }
        best
    };
    s.d.clear();
    s.d.extend_from_slice(diffs);
    let d = &mut s.d;
    let n0 = usable(d);
    let Some((imax, rmax)) = argmax_ratio(d, &mut s.med) else {
        return;
    };
    if rmax.partial_cmp(&thresh(n0)) != Some(std::cmp::Ordering::Greater) {
        return;
    }
    crs.push(imax);
    let mut found = true;
    while found && usable(d) > 2 {
        found = false;
        for &c in crs.iter() {
            d[c] = f64::NAN;
        }
        if let Some((i, ri)) = argmax_ratio(d, &mut s.med)
            && ri > thresh(usable(d))
        {
            found = true;
            crs.push(i);
        }
    }
    crs.sort_unstable();
}

/// Runs the jump step on `ramp` in place: JUMP_DET is added to GROUPDQ where jumps are found and
/// S_JUMP is set to 'COMPLETE' (or 'SKIPPED' with too few groups).
///
/// `readnoise` is the CDS read noise per pixel in DN and `gain` the gain in e-/DN, both `[y][x]`
/// like the READNOISE and GAIN reference files (already cut to the subarray). NFRAMES comes from
/// the primary header (1 when absent). Pixels with a non-finite or non-positive gain or a
/// non-finite read noise are not searched (their electrons would be meaningless).
/// Rows are processed in parallel with rayon.
pub fn jump(
    ramp: &mut Ramp,
    readnoise: &[f32],
    gain: &[f32],
    params: &JumpParams,
) -> Result<JumpSummary, JumpError> {
    let (nints, ng, ny, nx) = (ramp.nints, ramp.ngroups, ramp.ny, ramp.nx);
    let npix = ny * nx;
    if readnoise.len() != npix || gain.len() != npix {
        return Err(JumpError::Shape(format!(
            "readnoise ({}) and gain ({}) must have {ny}x{nx} = {npix} values like the ramp",
            readnoise.len(),
            gain.len()
        )));
    }
    let n = nints * ng * npix;
    if ramp.sci.len() != n || ramp.groupdq.len() != n {
        return Err(JumpError::Shape(format!(
            "SCI ({}) and GROUPDQ ({}) must have {nints}x{ng}x{ny}x{nx} = {n} values",
            ramp.sci.len(),
            ramp.groupdq.len()
        )));
    }
    let nframes = match ramp.header.get("NFRAMES") {
        None => 1.0,
        Some(v) => match v.as_i64() {
            Some(k) if k >= 1 => k as f64,
            _ => {
                return Err(JumpError::Header(format!(
                    "NFRAMES = {v} is not a positive integer"
                )));
            }
        },
    };
    if ng < params.minimum_groups.max(2) {
        ramp.header.set("S_JUMP", "SKIPPED");
        return Ok(JumpSummary {
            skipped: true,
            ..JumpSummary::default()
        });
    }
    if nints >= params.minimum_sigclip_groups {
        return Err(JumpError::Unsupported(format!(
            "{nints} integrations: stcal switches to sigma clipping across integrations from \
             minimum_sigclip_groups = {}, which this engine does not implement",
            params.minimum_sigclip_groups
        )));
    }

    let sci = &ramp.sci;
    let gdq = &ramp.groupdq;
    let idx = |i: usize, g: usize, p: usize| (i * ng + g) * npix + p;
    // Per row: (int, group, pixel, ratio_all) of every new jump.
    let found: Vec<Vec<(usize, usize, usize, f64)>> = (0..ny)
        .into_par_iter()
        .map(|y| {
            let mut out = Vec::new();
            // The row's first differences gathered per pixel, `[x][i][k]`, from contiguous rows
            // of the frames.
            let per = nints * (ng - 1);
            let mut row_diffs = vec![f64::NAN; nx * per];
            for i in 0..nints {
                for k in 0..ng - 1 {
                    let (a, b) = (idx(i, k, y * nx), idx(i, k + 1, y * nx));
                    let (sa, sb) = (&sci[a..a + nx], &sci[b..b + nx]);
                    let (qa, qb) = (&gdq[a..a + nx], &gdq[b..b + nx]);
                    let o = i * (ng - 1) + k;
                    for x in 0..nx {
                        let g_e = f64::from(gain[y * nx + x]);
                        row_diffs[x * per + o] = if (qa[x] | qb[x]) & BAD != 0 {
                            f64::NAN
                        } else {
                            (f64::from(sb[x]) - f64::from(sa[x])) * g_e
                        };
                    }
                }
            }
            let mut all: Vec<f64> = Vec::with_capacity(per);
            let mut scratch = CrScratch::default();
            let mut crs: Vec<usize> = Vec::new();
            for x in 0..nx {
                let p = y * nx + x;
                let g_e = f64::from(gain[p]);
                let rn_e = f64::from(readnoise[p]) * g_e;
                if !(g_e > 0.0 && g_e.is_finite() && rn_e.is_finite()) {
                    continue;
                }
                let diffs = &row_diffs[x * per..(x + 1) * per];
                // ratio_all: against the median over all integrations (np.ma.median), needed
                // only for the jumps found.
                let mut med_sig_all: Option<(f64, f64)> = None;
                for i in 0..nints {
                    let d = &diffs[i * (ng - 1)..(i + 1) * (ng - 1)];
                    find_crs_into(d, rn_e * rn_e, nframes, params, &mut scratch, &mut crs);
                    for &k in &crs {
                        let g = k + 1;
                        if gdq[idx(i, g, p)] & JUMP != 0 {
                            continue;
                        }
                        let (med_all, sig_all) = *med_sig_all.get_or_insert_with(|| {
                            all.clear();
                            all.extend(diffs.iter().copied().filter(|d| !d.is_nan()));
                            if all.is_empty() {
                                (f64::NAN, f64::NAN)
                            } else {
                                let m = median(&mut all);
                                (m, (m.abs() + rn_e * rn_e / nframes).sqrt())
                            }
                        });
                        let ratio_all = (d[k] - med_all).abs() / sig_all;
                        out.push((i, g, p, ratio_all));
                    }
                }
            }
            out
        })
        .collect();

    let mut summary = JumpSummary::default();
    let gdq = &mut ramp.groupdq;
    for &(i, g, p, _) in found.iter().flatten() {
        gdq[idx(i, g, p)] |= JUMP;
        summary.primary += 1;
    }
    if params.flag_4_neighbors {
        for &(i, g, p, ratio) in found.iter().flatten() {
            if !(ratio < params.max_jump_to_flag_neighbors
                && ratio > params.min_jump_to_flag_neighbors)
            {
                continue;
            }
            let (y, x) = (p / nx, p % nx);
            let mut neigh = [None; 4];
            if y > 0 {
                neigh[0] = Some(p - nx);
            }
            if y + 1 < ny {
                neigh[1] = Some(p + nx);
            }
            if x > 0 {
                neigh[2] = Some(p - 1);
            }
            if x + 1 < nx {
                neigh[3] = Some(p + 1);
            }
            for q in neigh.into_iter().flatten() {
                let k = idx(i, g, q);
                if gdq[k] & (BAD | JUMP) == 0 {
                    gdq[k] |= JUMP;
                    summary.neighbours += 1;
                }
            }
        }
    }
    ramp.header.set("S_JUMP", "COMPLETE");
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_first_diffs_follows_stcal() {
        assert!(median_first_diffs(&[1.0, f64::NAN]).is_nan());
        assert_eq!(median_first_diffs(&[5.0, -2.0]), -2.0);
        assert_eq!(median_first_diffs(&[5.0, 1.0, 3.0]), 3.0);
        // 4 usable: the largest |d| (100) is dropped, then the median of 1, 2, 3.
        assert_eq!(median_first_diffs(&[1.0, 100.0, 2.0, f64::NAN, 3.0]), 2.0);
    }

    #[test]
    fn finds_one_and_two_jumps() {
        let p = JumpParams::default();
        let mut d = vec![10.0, 12.0, 9.0, 11.0, 10.0, 10.5, 9.5, 10.0];
        assert!(find_crs_pixel(&d, 4.0, 1.0, &p).is_empty());
        d[3] += 200.0;
        assert_eq!(find_crs_pixel(&d, 4.0, 1.0, &p), vec![3]);
        d[6] += 150.0;
        assert_eq!(find_crs_pixel(&d, 4.0, 1.0, &p), vec![3, 6]);
    }

    #[test]
    fn thresholds_depend_on_usable_differences() {
        let p = JumpParams::default();
        // 2 differences, sigma = sqrt(|min| + 1) ≈ 1: a 5.5 sigma step is below 6.0.
        assert!(find_crs_pixel(&[0.0, 5.5], 1.0, 1.0, &p).is_empty());
        assert_eq!(find_crs_pixel(&[0.0, 6.5], 1.0, 1.0, &p), vec![1]);
        // One usable difference never gives a jump.
        assert!(find_crs_pixel(&[f64::NAN, 1000.0], 1.0, 1.0, &p).is_empty());
    }
}
