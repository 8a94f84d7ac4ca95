//! The jump step: cosmic-ray and other jump detection by the two-point difference method, as
//! jwst 3.0.0's `JumpStep` runs it through stcal 1.20 (`stcal/jump/jump.py: detect_jumps_data`,
//! `twopoint_difference.py: find_crs`), with the step's default parameters.
//!
//! Per pixel, over **all integrations together** (stcal takes medians along the integration and
//! group axes at once):
//!
//! 1. The data and the read noise are converted to electrons with the gain (in float32, as the
//!    arrays are); first differences of adjacent groups are formed, a difference touching a
//!    group flagged SATURATED or DO_NOT_USE being unusable (NaN).
//! 2. `sigma = sqrt(|median| + read_noise² / nframes)` (Poisson plus CDS read noise, e-).
//! 3. With at least `min_diffs_single_pass` (10) usable differences per integration (exposure
//!    wide: groups flagged DO_NOT_USE on every pixel do not count), a single pass: the median is
//!    the plain median of all differences, and every difference with `|d - median| / sigma >
//!    rejection_threshold` is a jump (`look_for_more_than_one_jump`).
//! 4. With fewer (the usual 10-group calibration ramp has 9), the iterative search
//!    (`iterative_jump`) on the *absolute* differences: the median is `calc_med_first_diffs`
//!    (4 or more usable: the largest values are left out, then the median; 3: the median; 2:
//!    the smaller; fewer: none), `ratio = ||d| - median| / sigma`; if the largest ratio exceeds
//!    the threshold for the number of usable differences (`rejection_threshold` for 4 or more,
//!    `four_group_rejection_threshold` for 3, `three_group_rejection_threshold` for 2), the
//!    difference(s) with that ratio are jumps, they are masked, and the search repeats until no
//!    ratio exceeds its threshold.
//! 5. The group at the end of each jumping difference gets JUMP_DET.
//! 6. With `flag_4_neighbors`: for every group flagged JUMP_DET (found now or before), the ratio
//!    of its difference against the plain median of all differences of the pixel; if it lies
//!    strictly between `min_jump_to_flag_neighbors` and `max_jump_to_flag_neighbors`, the 4
//!    adjacent pixels get JUMP_DET in the same group unless that group of theirs is SATURATED or
//!    DO_NOT_USE.
//! 7. JUMP_DET is removed from every group that is also SATURATED or DO_NOT_USE; pixels with a
//!    non-positive or missing gain get NO_GAIN_VALUE and DO_NOT_USE in PIXELDQ and no search.
//!
//! As in jwst, exposures with fewer than 3 groups are skipped (S_JUMP = 'SKIPPED'); with fewer
//! than `minimum_groups` usable groups nothing is searched but the step completes. Not
//! implemented: the after-jump flagging (`after_jump_flag_*`, off by default), snowball/shower
//! detection (`expand_large_events`, `find_showers`, off by default) and the sigma-clipping
//! branch for ≥ `minimum_sigclip_groups` (100) integrations; exposures needing that branch are
//! refused with an error rather than run with the wrong statistics. The arithmetic follows
//! stcal's array types (electrons in float32, medians and sigma in float64, the iterative
//! search's deviations rounded to float32), so that decisions at the threshold agree too.

use std::sync::OnceLock;

use mkrefs_support::dq;
use mkrefs_support::lanes::SortNetwork;
use rayon::prelude::*;

use crate::ramp::Ramp;

/// The parameters of the jump step, with the jwst `JumpStep` defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct JumpParams {
    /// Sigma threshold with 4 or more usable differences (`rejection_threshold`, 4.0).
    pub rejection_threshold: f64,
    /// Sigma threshold with 2 usable differences, i.e. 3 groups
    /// (`three_group_rejection_threshold`, 6.0).
    pub three_group_rejection_threshold: f64,
    /// Sigma threshold with 3 usable differences, i.e. 4 groups
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
    /// Usable groups per integration below which nothing is searched (`minimum_groups`, 3).
    pub minimum_groups: usize,
    /// Integrations from which stcal switches to sigma clipping across integrations
    /// (`minimum_sigclip_groups`, 100); not implemented here, such exposures are refused.
    pub minimum_sigclip_groups: usize,
    /// Usable differences per integration from which one pass replaces the iterative search
    /// (`min_diffs_single_pass`, 10).
    pub min_diffs_single_pass: usize,
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
            min_diffs_single_pass: 10,
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
    /// Groups newly flagged JUMP_DET as neighbours of a jump.
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

/// `calc_med_first_diffs` of stcal on one pixel's differences (NaN = unusable).
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
        2 => v[0].min(v[1]),
        n => {
            if n >= 4 {
                // Every value equal to the largest is left out (numpy's `== nanmax` mask).
                let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                v.retain(|&x| x != max);
                if v.is_empty() {
                    return f64::NAN;
                }
            }
            median(v)
        }
    }
}

/// Up to this many values, [`median`] sorts them with a comparator network.
const NETWORK_MEDIAN_MAX: usize = 32;

/// The median of a non-empty slice (mean of the two middle values for an even count, as numpy),
/// by selection rather than a full sort (the slice is reordered). The short slices of one
/// pixel's group differences, which jump detection and ramp fitting take millions of medians
/// of, are sorted by a comparator network instead ([`network_median`]): selection's
/// data-dependent branches mispredict on them.
pub(crate) fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n <= NETWORK_MEDIAN_MAX && !v.iter().any(|x| x.is_nan()) {
        return network_median(v);
    }
    let (below, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = below
            .iter()
            .copied()
            .max_by(f64::total_cmp)
            .unwrap_or(upper);
        0.5 * (lower + upper)
    }
}

/// The median of a slice of at most [`NETWORK_MEDIAN_MAX`] values without NaN, sorted in
/// place by the comparator network of its length (branch-free min/max pairs). Values that
/// compare equal but differ in sign (0 and -0) may end in either order; their sum does not
/// change.
fn network_median(v: &mut [f64]) -> f64 {
    static NETWORKS: OnceLock<Vec<SortNetwork>> = OnceLock::new();
    let networks =
        NETWORKS.get_or_init(|| (0..=NETWORK_MEDIAN_MAX).map(SortNetwork::new).collect());
    let n = v.len();
    for &(a, b) in networks[n].pairs() {
        let (x, y) = (v[a], v[b]);
        v[a] = x.min(y);
        v[b] = x.max(y);
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// The plain median of the usable values (numpy's `nanmedian`); NaN when there is none.
fn nan_median(diffs: &[f64], v: &mut Vec<f64>) -> f64 {
    v.clear();
    v.extend(diffs.iter().copied().filter(|d| !d.is_nan()));
    if v.is_empty() { f64::NAN } else { median(v) }
}

/// stcal's sigma of a difference in electrons; NaN where it is 0 (so nothing is flagged there).
fn sigma_of(median: f64, rn2_e: f64, nframes: f64) -> f64 {
    let s = (median.abs() + rn2_e / nframes).sqrt();
    if s == 0.0 { f64::NAN } else { s }
}

/// The two-point difference search of one pixel (steps 2 to 4): `diffs` are its first
/// differences in electrons over all integrations (NaN where unusable), `rn2_e` its squared
/// CDS read noise in electrons². Returns the indices of the differences that are jumps.
#[cfg(test)]
pub(crate) fn find_crs_pixel(
    diffs: &[f64],
    rn2_e: f64,
    nframes: f64,
    single_pass: bool,
    p: &JumpParams,
) -> Vec<usize> {
    let mut crs = Vec::new();
    find_crs_into(
        diffs,
        rn2_e,
        nframes,
        single_pass,
        p,
        &mut CrScratch::default(),
        &mut crs,
    );
    crs
}

/// Working space of [`find_crs_into`], reused from pixel to pixel.
#[derive(Default)]
struct CrScratch {
    abs: Vec<f64>,
    ratio: Vec<f64>,
    med: Vec<f64>,
}

/// [`find_crs_pixel`] into `crs` (cleared first), without allocating once `s` has grown.
fn find_crs_into(
    diffs: &[f64],
    rn2_e: f64,
    nframes: f64,
    single_pass: bool,
    p: &JumpParams,
    s: &mut CrScratch,
    crs: &mut Vec<usize>,
) {
    crs.clear();
    if single_pass {
        let med = nan_median(diffs, &mut s.med);
        let sigma = sigma_of(med, rn2_e, nframes);
        crs.extend(
            diffs
                .iter()
                .enumerate()
                .filter(|(_, d)| (**d - med).abs() / sigma > p.rejection_threshold)
                .map(|(k, _)| k),
        );
        return;
    }
    let thresh = |n: usize| match n {
        0 | 1 => f64::INFINITY,
        2 => p.three_group_rejection_threshold,
        3 => p.four_group_rejection_threshold,
        _ => p.rejection_threshold,
    };
    s.abs.clear();
    s.abs.extend(diffs.iter().map(|d| d.abs()));
    let mut first = true;
    // One iteration per jump at most (stcal loops at most once per difference).
    for _ in 0..diffs.len() {
        let mut med = median_first_diffs_with(&s.abs, &mut s.med);
        if !first {
            // After the first pass stcal stores the medians in a float32 array.
            med = f64::from(med as f32);
        }
        first = false;
        let sigma = sigma_of(med, rn2_e, nframes);
        s.ratio.clear();
        s.ratio.extend(
            s.abs
                .iter()
                .map(|a| f64::from(((a - med) as f32).abs()) / sigma),
        );
        let usable = s.abs.iter().filter(|a| !a.is_nan()).count();
        let max = s
            .ratio
            .iter()
            .copied()
            .filter(|r| !r.is_nan())
            .fold(f64::NAN, f64::max);
        // NaN (no usable ratio) compares as no jump.
        if max.partial_cmp(&thresh(usable)) != Some(std::cmp::Ordering::Greater) {
            break;
        }
        for (k, &r) in s.ratio.iter().enumerate() {
            if r == max {
                crs.push(k);
                s.abs[k] = f64::NAN;
            }
        }
    }
    crs.sort_unstable();
}

/// Runs the jump step on `ramp` in place: JUMP_DET is added to GROUPDQ where jumps are found and
/// S_JUMP is set to 'COMPLETE' (or 'SKIPPED' with too few groups).
///
/// `readnoise` is the CDS read noise per pixel in DN and `gain` the gain in e-/DN, both `[y][x]`
/// like the READNOISE and GAIN reference files (already cut to the subarray). NFRAMES comes from
/// the primary header (1 when absent). Rows are processed in parallel with rayon.
pub fn jump(
    ramp: &mut Ramp,
    readnoise: &[f32],
    gain: &[f32],
    params: &JumpParams,
) -> Result<JumpSummary, JumpError> {
    check_shapes(ramp, readnoise, gain)?;
    let nframes = header_nframes(ramp)?;
    if ramp.ngroups <= 2 {
        ramp.header.set("S_JUMP", "SKIPPED");
        return Ok(JumpSummary {
            skipped: true,
            ..JumpSummary::default()
        });
    }
    if ramp.nints >= params.minimum_sigclip_groups {
        return Err(JumpError::Unsupported(format!(
            "{} integrations: stcal switches to sigma clipping across integrations from \
             minimum_sigclip_groups = {}, which this engine does not implement",
            ramp.nints, params.minimum_sigclip_groups
        )));
    }
    let min_usable_groups = ramp.ngroups - most_groups_unused_everywhere(ramp);
    let search = Search {
        ramp,
        readnoise,
        gain,
        nframes,
        params,
        search: min_usable_groups >= params.minimum_groups,
        single_pass: min_usable_groups.saturating_sub(1) >= params.min_diffs_single_pass,
    };
    let found: Vec<RowFound> = (0..ramp.ny)
        .into_par_iter()
        .map(|y| search.row(y))
        .collect();
    let mut summary = JumpSummary::default();
    for &(i, g, p) in found.iter().flat_map(|f| &f.new) {
        let k = group_index(ramp, i, g, p);
        ramp.groupdq[k] |= JUMP;
        summary.primary += 1;
    }
    for &(i, g, p) in found.iter().flat_map(|f| &f.spread) {
        summary.neighbours += flag_neighbours(ramp, i, g, p);
    }
    drop_jumps_on_unused_groups(&mut ramp.groupdq);
    flag_bad_gain(&mut ramp.pixeldq, gain);
    ramp.header.set("S_JUMP", "COMPLETE");
    Ok(summary)
}

/// The read noise and gain must cover the frame, SCI and GROUPDQ the ramp.
fn check_shapes(ramp: &Ramp, readnoise: &[f32], gain: &[f32]) -> Result<(), JumpError> {
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
    Ok(())
}

/// NFRAMES of the primary header, 1 when absent.
fn header_nframes(ramp: &Ramp) -> Result<f64, JumpError> {
    match ramp.header.get("NFRAMES") {
        None => Ok(1.0),
        Some(v) => match v.as_i64() {
            Some(k) if k >= 1 => Ok(k as f64),
            _ => Err(JumpError::Header(format!(
                "NFRAMES = {v} is not a positive integer"
            ))),
        },
    }
}

/// Index of pixel `p` of group `g` of integration `i` in SCI and GROUPDQ.
fn group_index(ramp: &Ramp, i: usize, g: usize, p: usize) -> usize {
    (i * ramp.ngroups + g) * ramp.frame_len() + p
}

/// The most groups of any integration that are DO_NOT_USE on every pixel: they do not count
/// as usable (stcal's `groups_all_set_dnu`).
fn most_groups_unused_everywhere(ramp: &Ramp) -> usize {
    let npix = ramp.frame_len();
    let dnu = dq::DO_NOT_USE as u8;
    (0..ramp.nints)
        .map(|i| {
            (0..ramp.ngroups)
                .filter(|&g| {
                    let k = group_index(ramp, i, g, 0);
                    ramp.groupdq[k..k + npix].iter().all(|q| q & dnu != 0)
                })
                .count()
        })
        .max()
        .unwrap_or(0)
}

/// What the search found in one row, as (integration, group, pixel).
struct RowFound {
    /// Groups newly flagged JUMP_DET.
    new: Vec<(usize, usize, usize)>,
    /// Jumps (new or old) whose 4 neighbours get JUMP_DET.
    spread: Vec<(usize, usize, usize)>,
}

/// The search over the exposure (steps 1 to 6), row by row.
struct Search<'a> {
    ramp: &'a Ramp,
    readnoise: &'a [f32],
    gain: &'a [f32],
    nframes: f64,
    params: &'a JumpParams,
    /// Enough usable groups to search at all.
    search: bool,
    /// Enough usable differences for the single pass.
    single_pass: bool,
}

impl Search<'_> {
    /// Differences per pixel: `nints × (ngroups - 1)`.
    fn per(&self) -> usize {
        self.ramp.nints * (self.ramp.ngroups - 1)
    }

    /// (integration, group) of the group that ends difference `o` of a pixel.
    fn group_of(&self, o: usize) -> (usize, usize) {
        let nd = self.ramp.ngroups - 1;
        (o / nd, o % nd + 1)
    }

    /// The first differences of row `y` in electrons, `[x][i][k]`, from contiguous rows of the
    /// frames (electrons in float32, as stcal's `data * gain_2d`); NaN where a difference
    /// touches a SATURATED or DO_NOT_USE group.
    fn row_differences(&self, y: usize) -> Vec<f64> {
        let (r, nx, per) = (self.ramp, self.ramp.nx, self.per());
        let mut row_diffs = vec![f64::NAN; nx * per];
        for i in 0..r.nints {
            for k in 0..r.ngroups - 1 {
                let (a, b) = (
                    group_index(r, i, k, y * nx),
                    group_index(r, i, k + 1, y * nx),
                );
                let (sa, sb) = (&r.sci[a..a + nx], &r.sci[b..b + nx]);
                let (qa, qb) = (&r.groupdq[a..a + nx], &r.groupdq[b..b + nx]);
                let o = i * (r.ngroups - 1) + k;
                for x in 0..nx {
                    let g = self.gain[y * nx + x];
                    if (qa[x] | qb[x]) & BAD == 0 {
                        row_diffs[x * per + o] = f64::from(sb[x] * g - sa[x] * g);
                    }
                }
            }
        }
        row_diffs
    }

    /// Searches every pixel of row `y` with a usable gain.
    fn row(&self, y: usize) -> RowFound {
        let nx = self.ramp.nx;
        let per = self.per();
        let mut found = RowFound {
            new: Vec::new(),
            spread: Vec::new(),
        };
        let row_diffs = self.row_differences(y);
        let mut scratch = CrScratch::default();
        let mut crs: Vec<usize> = Vec::new();
        let mut jumped = vec![false; per];
        for x in 0..nx {
            let p = y * nx + x;
            let g = self.gain[p];
            if !(g > 0.0 && g.is_finite()) {
                continue;
            }
            let rn_e = self.readnoise[p] * g;
            let rn2_e = f64::from(rn_e * rn_e);
            let diffs = &row_diffs[x * per..(x + 1) * per];
            for (o, j) in jumped.iter_mut().enumerate() {
                let (i, g) = self.group_of(o);
                *j = self.ramp.groupdq[group_index(self.ramp, i, g, p)] & JUMP != 0;
            }
            if self.search {
                find_crs_into(
                    diffs,
                    rn2_e,
                    self.nframes,
                    self.single_pass,
                    self.params,
                    &mut scratch,
                    &mut crs,
                );
                for &o in &crs {
                    if !jumped[o] {
                        jumped[o] = true;
                        let (i, g) = self.group_of(o);
                        found.new.push((i, g, p));
                    }
                }
            }
            if self.params.flag_4_neighbors && jumped.iter().any(|&j| j) {
                self.jumps_to_spread(diffs, rn2_e, &jumped, p, &mut scratch, &mut found);
            }
        }
        found
    }

    /// Step 6 for one pixel: the jumps whose ratio against the plain median of all the pixel's
    /// differences (stcal's `median_diffs`) lies strictly between the two limits.
    fn jumps_to_spread(
        &self,
        diffs: &[f64],
        rn2_e: f64,
        jumped: &[bool],
        p: usize,
        scratch: &mut CrScratch,
        found: &mut RowFound,
    ) {
        let med = nan_median(diffs, &mut scratch.med);
        let sigma = sigma_of(med, rn2_e, self.nframes);
        for (o, _) in jumped.iter().enumerate().filter(|(_, j)| **j) {
            let ratio = (diffs[o] - med).abs() / sigma;
            if ratio < self.params.max_jump_to_flag_neighbors
                && ratio > self.params.min_jump_to_flag_neighbors
            {
                let (i, g) = self.group_of(o);
                found.spread.push((i, g, p));
            }
        }
    }
}

/// JUMP_DET on the 4 neighbours of pixel `p` in group `g` of integration `i`, where their group
/// is neither unusable nor already a jump; returns how many got it.
fn flag_neighbours(ramp: &mut Ramp, i: usize, g: usize, p: usize) -> usize {
    let (ny, nx) = (ramp.ny, ramp.nx);
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
    let mut flagged = 0;
    for q in neigh.into_iter().flatten() {
        let k = group_index(ramp, i, g, q);
        if ramp.groupdq[k] & (BAD | JUMP) == 0 {
            ramp.groupdq[k] |= JUMP;
            flagged += 1;
        }
    }
    flagged
}

/// A group that is not to be used carries no jump (stcal removes the redundant bit).
fn drop_jumps_on_unused_groups(gdq: &mut [u8]) {
    for q in gdq.iter_mut() {
        if *q & JUMP != 0 && *q & BAD != 0 {
            *q &= !JUMP;
        }
    }
}

/// NO_GAIN_VALUE | DO_NOT_USE in PIXELDQ where the gain is not positive (or NaN).
fn flag_bad_gain(pixeldq: &mut [u32], gain: &[f32]) {
    let bad_gain = dq::NO_GAIN_VALUE | dq::DO_NOT_USE;
    for (q, &g) in pixeldq.iter_mut().zip(gain) {
        if g <= 0.0 || g.is_nan() {
            *q |= bad_gain;
        }
    }
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
        assert!(find_crs_pixel(&d, 4.0, 1.0, false, &p).is_empty());
        d[3] += 200.0;
        assert_eq!(find_crs_pixel(&d, 4.0, 1.0, false, &p), vec![3]);
        d[6] += 150.0;
        assert_eq!(find_crs_pixel(&d, 4.0, 1.0, false, &p), vec![3, 6]);
    }

    #[test]
    fn thresholds_depend_on_usable_differences() {
        let p = JumpParams::default();
        // 2 differences, sigma = sqrt(|min| + 1) ≈ 1: a 5.5 sigma step is below 6.0.
        assert!(find_crs_pixel(&[0.0, 5.5], 1.0, 1.0, false, &p).is_empty());
        assert_eq!(find_crs_pixel(&[0.0, 6.5], 1.0, 1.0, false, &p), vec![1]);
        // One usable difference never gives a jump.
        assert!(find_crs_pixel(&[f64::NAN, 1000.0], 1.0, 1.0, false, &p).is_empty());
    }

    #[test]
    fn every_value_equal_to_the_largest_is_left_out_of_the_median() {
        assert_eq!(median_first_diffs(&[1.0, 5.0, 5.0, 2.0, 3.0]), 2.0);
    }

    #[test]
    fn the_iterative_search_works_on_absolute_differences() {
        let p = JumpParams::default();
        // A dark: differences scatter around 0; a downward jump is as much a jump.
        let mut d = vec![3.0, -2.0, 1.0, -4.0, 2.0, 0.5, -1.0, 2.5, -3.0];
        assert!(find_crs_pixel(&d, 16.0, 1.0, false, &p).is_empty());
        d[4] = -200.0;
        assert_eq!(find_crs_pixel(&d, 16.0, 1.0, false, &p), vec![4]);
    }

    #[test]
    fn the_single_pass_flags_every_outlier_against_the_plain_median() {
        let p = JumpParams::default();
        let mut d = vec![100.0; 12];
        d[2] = 190.0;
        d[9] = 10.0;
        // sigma = sqrt(100 + 0) = 10: 9 sigma both ways.
        assert_eq!(find_crs_pixel(&d, 0.0, 1.0, true, &p), vec![2, 9]);
        // The iterative search on |d| sees only the upward one as far from the median of |d|...
        // and, once it is masked, the downward one too.
        assert_eq!(find_crs_pixel(&d, 0.0, 1.0, false, &p), vec![2, 9]);
    }

    #[test]
    fn median_by_selection_equals_the_sorted_median() {
        let mut state = 12345u64;
        for n in 1..40 {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((state >> 33) % 50) as f64 - 25.0
                })
                .collect();
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            let want = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
            };
            assert_eq!(median(&mut v.clone()), want, "{v:?}");
            // Both paths: a network for short slices, selection for long ones and with NaN.
            if n <= NETWORK_MEDIAN_MAX {
                assert_eq!(network_median(&mut v.clone()), want, "{v:?}");
            }
        }
        let mut with_nan = vec![3.0, f64::NAN, 1.0, 2.0];
        assert_eq!(median(&mut with_nan), 2.5);
    }
}
