//! The ramp_fit step: ordinary least squares with optimal weighting between jumps, following
//! stcal's `ramp_fitting/ols_fit.py` and the jwst "ramp_fitting step" documentation.
//!
//! Per pixel and integration:
//!
//! - Groups flagged SATURATED or DO_NOT_USE are excluded; a group flagged JUMP_DET starts a new
//!   segment (the jump is between it and the group before). Segments of at least 2 groups are
//!   fitted. (stcal also fits one-group segments and one-group/first-difference ramps in special
//!   cases; this engine does not: an integration with no segment of 2 or more groups gets
//!   DO_NOT_USE and NaN, which is what jwst's default `suppress_one_group = True` gives for
//!   ramps with a single good group.)
//! - Optimal weighting (Fixsen et al. 2000, `calc_opt_sums`): the segment's signal
//!   `S = last - first` gives `SNR = S / (sqrt(RN² + S·gain) / gain)` (RN in electrons, negative
//!   SNR set to 0); the exponent P is 0, 0.4, 1, 3, 6, 10 for SNR above 0, 5, 10, 20, 50, 100
//!   (`calc_power`); group k of n gets weight `|(k - m)/m|^P / RN²` with `m = (n - 1)/2`.
//!   A weighted least-squares line through (time, DN) gives the segment slope and intercept.
//! - Variances of a segment of n groups: read noise `12 σ² / ((n³ - n) t²)` with σ the read noise
//!   of one group (CDS noise / √2 / √NFRAMES, DN) and t the group time; Poisson
//!   `rate / (gain · t · (n - 1))` with the pixel's median rate as stcal's OLS_C computes it:
//!   the mean over integrations of each integration's median usable first difference (jumps
//!   excluded; the first group's value when there is no usable difference), divided by t, 0
//!   when negative.
//! - Segments are combined into the integration's slope weighted by `1 / var_r` (stcal 1.20,
//!   JP-4318: the read-noise variance alone, so the Poisson estimate does not bias the
//!   weights); `VAR_POISSON = 1/Σ(1/var_p)`, `VAR_RNOISE = 1/Σ(1/var_r)`,
//!   `ERR = √(var_p + var_r)`.
//!   The exposure's slope combines every segment of every integration the same way.
//! - DQ (stcal `dq_compress_sect`/`dq_compress_final`): per integration PIXELDQ, plus JUMP_DET
//!   if any group has a jump, DO_NOT_USE if every group is SATURATED or DO_NOT_USE, SATURATED |
//!   DO_NOT_USE when the first group is saturated, and DO_NOT_USE when nothing could be fitted;
//!   for the exposure the OR of the integrations without DO_NOT_USE and SATURATED, DO_NOT_USE
//!   when every integration has DO_NOT_USE or SATURATED, SATURATED | DO_NOT_USE when every
//!   integration has SATURATED. Slopes and variances with
//!   DO_NOT_USE are NaN (as current jwst). Pixels whose PIXELDQ has DO_NOT_USE (reference
//!   pixels) are not fitted.
//! - Optional output (RampFitOutputModel): SLOPE, SIGSLOPE, VAR_POISSON, VAR_RNOISE, YINT,
//!   SIGYINT, WEIGHTS `(nints, nsegments, ny, nx)`; PEDESTAL `(nints, ny, nx)` = first group −
//!   slope × TFRAME × (NFRAMES + 1) / 2 (0 where the first group is saturated, `calc_pedestal`);
//!   CRMAG `(nints, max jumps, ny, nx)` = jump group difference minus the median-rate
//!   difference, in DN. Unused entries are 0. SIGSLOPE is `√(var_p + var_r)` of the segment,
//!   WEIGHTS `1/var_r` (the slope's weight, as stcal), SIGYINT the read-noise-only error of the
//!   weighted intercept.
//!
//! Memory and time: [`ramp_fit_parts`] makes the optional output only when asked for, and holds
//! it compactly ([`FitOptParts`]: full planes for each pixel's first segment and first jump, a
//! list for the few further ones) since its 4-D arrays are sized for the worst pixel (one pixel
//! with 5 segments makes them 5 planes deep); [`write_fitopt_parts`] writes it plane by plane,
//! and [`FitOptParts::expand`] gives the full arrays ([`FitOpt`]) to look at. Rows are gathered
//! into per-pixel group vectors and fitted in parallel without per-pixel allocations; the
//! weights `|(k - m)/m|^P` are tabulated once per exposure.

use std::path::{Path, PathBuf};

use mkrefs_support::dq;
use mkrefs_support::fits::{FitsError, FitsWriter, Pixel};
use mkrefs_support::header::{Header, HeaderValue};
use rayon::prelude::*;

use crate::form::Form;
use crate::jump::median;
use crate::ramp::Ramp;

/// Why ramp fitting could not run.
#[derive(Debug, thiserror::Error)]
pub enum RampFitError {
    #[error("ramp_fit: {0}")]
    Shape(String),
    #[error("ramp_fit: {0}")]
    Header(String),
    #[error(transparent)]
    Fits(#[from] FitsError),
}

/// Slopes and variances on one 2-D frame or a stack of them (`[plane][y][x]`).
#[derive(Clone, Debug, PartialEq)]
pub struct Slopes {
    /// Planes: 1 for rate, nints for rateints.
    pub nplanes: usize,
    pub ny: usize,
    pub nx: usize,
    /// DN/s.
    pub sci: Vec<f32>,
    pub err: Vec<f32>,
    pub dq: Vec<u32>,
    pub var_poisson: Vec<f32>,
    pub var_rnoise: Vec<f32>,
}

/// The optional output (RampFitOutputModel) as full arrays ([`FitOptParts::expand`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FitOpt {
    pub nints: usize,
    /// Largest number of fitted segments of any pixel and integration (at least 1).
    pub nseg: usize,
    /// Largest number of jumps in any pixel and integration (at least 1).
    pub ncr: usize,
    pub ny: usize,
    pub nx: usize,
    /// `(nints, nseg, ny, nx)`.
    pub slope: Vec<f32>,
    pub sigslope: Vec<f32>,
    pub var_poisson: Vec<f32>,
    pub var_rnoise: Vec<f32>,
    pub yint: Vec<f32>,
    pub sigyint: Vec<f32>,
    pub weights: Vec<f32>,
    /// `(nints, ny, nx)`.
    pub pedestal: Vec<f32>,
    /// `(nints, ncr, ny, nx)`.
    pub crmag: Vec<f32>,
}

/// One fitted segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Segment {
    pub slope: f64,
    pub yint: f64,
    pub sigyint: f64,
    pub var_poisson: f64,
    pub var_rnoise: f64,
}

/// The exposure timing ramp fitting needs, from the primary header.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub tgroup: f64,
    pub tframe: f64,
    pub nframes: usize,
}

impl Timing {
    /// TGROUP (else TFRAME × (NFRAMES + GROUPGAP)), TFRAME (else TGROUP / (NFRAMES + GROUPGAP)),
    /// NFRAMES (default 1), GROUPGAP (default 0).
    pub fn from_header(h: &Header) -> Result<Timing, RampFitError> {
        let nframes = h.get_i64("NFRAMES").unwrap_or(1);
        let groupgap = h.get_i64("GROUPGAP").unwrap_or(0);
        if nframes < 1 || groupgap < 0 {
            return Err(RampFitError::Header(format!(
                "NFRAMES = {nframes} and GROUPGAP = {groupgap} must be >= 1 and >= 0"
            )));
        }
        let per_group = (nframes + groupgap) as f64;
        let (tg, tf) = (h.get_f64("TGROUP"), h.get_f64("TFRAME"));
        let (tgroup, tframe) = match (tg, tf) {
            (Some(g), Some(f)) => (g, f),
            (Some(g), None) => (g, g / per_group),
            (None, Some(f)) => (f * per_group, f),
            (None, None) => {
                return Err(RampFitError::Header(
                    "neither TGROUP nor TFRAME is in the primary header; the group time is needed"
                        .into(),
                ));
            }
        };
        if !(tgroup > 0.0 && tgroup.is_finite() && tframe > 0.0 && tframe.is_finite()) {
            return Err(RampFitError::Header(format!(
                "TGROUP = {tgroup} and TFRAME = {tframe} must be positive"
            )));
        }
        Ok(Timing {
            tgroup,
            tframe,
            nframes: nframes as usize,
        })
    }
}

/// The weighting exponent of stcal's `calc_power` for a segment SNR.
pub fn calc_power(snr: f64) -> f64 {
    if snr > 100.0 {
        10.0
    } else if snr > 50.0 {
        6.0
    } else if snr > 20.0 {
        3.0
    } else if snr > 10.0 {
        1.0
    } else if snr > 5.0 {
        0.4
    } else {
        0.0
    }
}

/// `|(k - m)/m|^P` (with 0^0 = 1 as numpy) for every segment length `n` (2 to `ng`), every
/// exponent of [`calc_power`] and every group `k` of the segment, so that the weights are
/// computed once per exposure rather than per pixel (the same `powf` values).
struct WeightTable {
    ng: usize,
    /// `[power index][n][k]`, `n` and `k` below `ng + 1`.
    w: Vec<f64>,
}

const POWERS: [f64; 6] = [0.0, 0.4, 1.0, 3.0, 6.0, 10.0];

impl WeightTable {
    fn new(ng: usize) -> WeightTable {
        let m = ng + 1;
        let mut w = vec![0.0; POWERS.len() * m * m];
        for (ip, &power) in POWERS.iter().enumerate() {
            for n in 2..=ng {
                let mid = (n as f64 - 1.0) / 2.0;
                for k in 0..n {
                    w[(ip * m + n) * m + k] = (((k as f64 - mid) / mid).abs()).powf(power);
                }
            }
        }
        WeightTable { ng, w }
    }

    fn row(&self, power: f64, n: usize) -> &[f64] {
        let ip = POWERS.iter().position(|&p| p == power).unwrap_or(0);
        let m = self.ng + 1;
        let a = (ip * m + n) * m;
        &self.w[a..a + n]
    }
}

/// Weighted straight line through the groups `y` (DN) at times `k · tgroup`, `k = 0..n`, with the
/// optimal weights; `k0` is the index of the segment's first group, so the intercept is at the
/// time of group 0 of the integration. `sigma` is the read noise of one group (DN), `gain`
/// e-/DN. Returns slope (DN/s), intercept (DN) and the read-noise-only error of the intercept.
#[cfg(test)]
fn fit_segment(y: &[f64], k0: usize, tgroup: f64, sigma: f64, gain: f64) -> (f64, f64, f64) {
    fit_segment_with(&WeightTable::new(y.len()), y, k0, tgroup, sigma, gain)
}

/// [`fit_segment`] with the weights of `table` (made for at least `y.len()` groups).
fn fit_segment_with(
    table: &WeightTable,
    y: &[f64],
    k0: usize,
    tgroup: f64,
    sigma: f64,
    gain: f64,
) -> (f64, f64, f64) {
    let n = y.len();
    let rn_e = sigma * gain;
    let diff = y[n - 1] - y[0];
    let sqrt_arg = rn_e * rn_e + diff * gain;
    let snr = if sqrt_arg > 0.0 && gain > 0.0 {
        (diff / (sqrt_arg.sqrt() / gain)).max(0.0)
    } else {
        0.0
    };
    let power = calc_power(snr);
    let wrow = table.row(power, n);
    let inv_rn2 = 1.0 / (sigma * sigma);
    let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, (&v, &wk)) in y.iter().zip(wrow).enumerate() {
        let w = wk * inv_rn2;
        let x = (k0 + k) as f64 * tgroup;
        sw += w;
        swx += w * x;
        swy += w * v;
        swxx += w * x * x;
        swxy += w * x * v;
    }
    let d = sw * swxx - swx * swx;
    let slope = (sw * swxy - swx * swy) / d;
    let yint = (swxx * swy - swx * swxy) / d;
    let sigyint = (swxx / d).sqrt();
    (slope, yint, sigyint)
}

/// (slope, var_poisson, var_rnoise, dq) of an integration or of the exposure.
type IntFit = (f64, f64, f64, u32);

/// Per pixel results of [`fit_pixel`] (tests).
#[cfg(test)]
struct PixelFit {
    /// Per integration: (slope, var_p, var_r, dq) before NaN masking.
    ints: Vec<IntFit>,
    /// Per integration: its segments.
    segs: Vec<Vec<Segment>>,
    pedestal: Vec<f64>,
    crmag: Vec<Vec<f64>>,
    rate: IntFit,
}

/// Fits one pixel: `d[i][g]` DN and `q[i][g]` group flags.
#[cfg(test)]
fn fit_pixel(
    d: &[Vec<f64>],
    q: &[Vec<u8>],
    pixeldq: u32,
    readnoise_cds: f64,
    gain: f64,
    t: &Timing,
) -> PixelFit {
    let nints = d.len();
    let ng = d.first().map_or(0, Vec::len);
    let df: Vec<f64> = d.concat();
    let qf: Vec<u8> = q.concat();
    let mut s = PixelScratch::new(nints, ng);
    fit_pixel_into(
        &df,
        &qf,
        nints,
        ng,
        pixeldq,
        readnoise_cds,
        gain,
        t,
        &WeightTable::new(ng),
        &mut s,
    );
    let mut segs = vec![Vec::new(); nints];
    for &(i, seg) in &s.segs {
        segs[i].push(seg);
    }
    let mut crmag = vec![Vec::new(); nints];
    for &(i, c) in &s.crmag {
        crmag[i].push(c);
    }
    PixelFit {
        ints: s.ints.clone(),
        segs,
        pedestal: s.pedestal.clone(),
        crmag,
        rate: s.rate,
    }
}

/// One pixel's results, reused from pixel to pixel (no allocation per pixel).
struct PixelScratch {
    /// Per integration: (slope, var_p, var_r, dq) before NaN masking.
    ints: Vec<IntFit>,
    /// (integration, segment), in order.
    segs: Vec<(usize, Segment)>,
    /// Per integration.
    pedestal: Vec<f64>,
    /// (integration, CRMAG), in order.
    crmag: Vec<(usize, f64)>,
    rate: IntFit,
    /// First differences for the median rate.
    fd: Vec<f64>,
    /// Segment (start, end) runs of one integration.
    runs: Vec<(usize, usize)>,
}

impl PixelScratch {
    fn new(nints: usize, ng: usize) -> PixelScratch {
        PixelScratch {
            ints: Vec::with_capacity(nints),
            segs: Vec::with_capacity(nints * 2),
            pedestal: Vec::with_capacity(nints),
            crmag: Vec::new(),
            rate: (0.0, 0.0, 0.0, 0),
            fd: Vec::with_capacity(nints * ng),
            runs: Vec::with_capacity(ng),
        }
    }
}

/// Fits one pixel: `d[i * ng + g]` DN and `q[i * ng + g]` group flags; results in `s`.
#[allow(clippy::too_many_arguments)]
fn fit_pixel_into(
    d: &[f64],
    q: &[u8],
    nints: usize,
    ng: usize,
    pixeldq: u32,
    readnoise_cds: f64,
    gain: f64,
    t: &Timing,
    table: &WeightTable,
    s: &mut PixelScratch,
) {
    let sigma = readnoise_cds / std::f64::consts::SQRT_2 / (t.nframes as f64).sqrt();
    let usable_pixel = pixeldq & dq::DO_NOT_USE == 0
        && gain > 0.0
        && gain.is_finite()
        && sigma > 0.0
        && sigma.is_finite();
    s.ints.clear();
    s.segs.clear();
    s.pedestal.clear();
    s.crmag.clear();
    let med_diff = median_difference(d, q, nints, ng, &mut s.fd);
    let model = SegmentModel {
        table,
        t,
        sigma,
        gain,
        med_rate: (med_diff / t.tgroup).max(0.0),
    };
    let mut all = Accum::default();
    let mut rate_dq = ExposureDq::new(pixeldq);
    for i in 0..nints {
        let (di, qi) = (&d[i * ng..(i + 1) * ng], &q[i * ng..(i + 1) * ng]);
        let mut flags = pixeldq | jump_magnitudes(i, di, qi, med_diff, &mut s.crmag);
        flags |= unusable_integration_flags(qi);
        segment_runs(qi, &mut s.runs);
        let mut acc = Accum::default();
        if usable_pixel {
            for &(a, b) in s.runs.iter().filter(|(a, b)| b - a >= 2) {
                let seg = model.fit(di, a, b);
                acc.add(&seg);
                all.add(&seg);
                s.segs.push((i, seg));
            }
        }
        if acc.n == 0 {
            flags |= dq::DO_NOT_USE;
        }
        let (slope, vp, vr) = acc.result();
        s.pedestal.push(pedestal(di, qi, slope, t));
        rate_dq.add(flags);
        s.ints.push((slope, vp, vr, flags));
    }
    let (sl, vp, vr) = all.result();
    s.rate = (sl, vp, vr, rate_dq.finish(all.n));
}

const BAD: u8 = (dq::SATURATED | dq::DO_NOT_USE) as u8;
const JUMP: u8 = dq::JUMP_DET as u8;

/// The pixel's median difference per group (DN), as stcal's OLS_C computes the median rate
/// (`median_rate_default`): per integration, the median of the first differences that involve
/// no SATURATED or DO_NOT_USE group and do not end in a JUMP_DET group; an integration with no
/// such difference gives its first group's value when that group is usable, else 0; the
/// pixel's value is the mean over all integrations. (Pooling the differences of all
/// integrations into one median, as this engine did before, changes the Poisson variance and so
/// the weights of multi-segment ramps: the fidelity test found 5 % of the rates of a flat with
/// cosmic rays and saturation more than 1 % of their ERR away from jwst's.)
fn median_difference(d: &[f64], q: &[u8], nints: usize, ng: usize, fd: &mut Vec<f64>) -> f64 {
    let mut med_sum = 0.0;
    for i in 0..nints {
        let (di, qi) = (&d[i * ng..(i + 1) * ng], &q[i * ng..(i + 1) * ng]);
        fd.clear();
        for g in 1..ng {
            if (qi[g - 1] | qi[g]) & BAD == 0 && qi[g] & JUMP == 0 {
                fd.push(di[g] - di[g - 1]);
            }
        }
        let m = if !fd.is_empty() {
            median(fd)
        } else if ng > 0 && qi[0] & BAD == 0 {
            di[0]
        } else {
            0.0
        };
        if m.is_finite() {
            med_sum += m;
        }
    }
    if nints > 0 {
        med_sum / nints as f64
    } else {
        0.0
    }
}

/// CRMAG of every jump of integration `i` (the jump's group difference minus the median
/// difference; 0 where a group of the difference is unusable), pushed to `crmag`; returns
/// JUMP_DET if there is one.
fn jump_magnitudes(
    i: usize,
    di: &[f64],
    qi: &[u8],
    med_diff: f64,
    crmag: &mut Vec<(usize, f64)>,
) -> u32 {
    let mut flags = 0;
    for g in 0..qi.len() {
        if qi[g] & JUMP != 0 {
            flags |= dq::JUMP_DET;
            let c = if g > 0 && (qi[g - 1] | qi[g]) & BAD == 0 {
                di[g] - di[g - 1] - med_diff.max(0.0)
            } else {
                0.0
            };
            crmag.push((i, c));
        }
    }
    flags
}

/// stcal `dq_compress_sect`: DO_NOT_USE when every group is SATURATED or DO_NOT_USE;
/// SATURATED | DO_NOT_USE when group 0 is saturated.
fn unusable_integration_flags(qi: &[u8]) -> u32 {
    let mut flags = 0;
    if qi.iter().all(|&g| g & BAD != 0) {
        flags |= dq::DO_NOT_USE;
    }
    if !qi.is_empty() && qi[0] & dq::SATURATED as u8 != 0 {
        flags |= dq::SATURATED | dq::DO_NOT_USE;
    }
    flags
}

/// The segments of one integration into `runs` as (first, end) group: runs of usable groups,
/// a JUMP_DET group starting a new one.
fn segment_runs(qi: &[u8], runs: &mut Vec<(usize, usize)>) {
    runs.clear();
    let mut start: Option<usize> = None;
    for (g, &qg) in qi.iter().enumerate() {
        let good = qg & BAD == 0;
        if !good {
            if let Some(a) = start.take() {
                runs.push((a, g));
            }
            continue;
        }
        if qg & JUMP != 0
            && let Some(a) = start.take()
        {
            runs.push((a, g));
        }
        if start.is_none() {
            start = Some(g);
        }
    }
    if let Some(a) = start {
        runs.push((a, qi.len()));
    }
}

/// What a segment fit of one pixel needs besides its groups.
struct SegmentModel<'a> {
    table: &'a WeightTable,
    t: &'a Timing,
    /// Read noise of one group (DN).
    sigma: f64,
    gain: f64,
    /// The pixel's median rate (DN/s), for the Poisson variance.
    med_rate: f64,
}

impl SegmentModel<'_> {
    /// The segment of groups `a..b` of `di`, with its read-noise and Poisson variances.
    fn fit(&self, di: &[f64], a: usize, b: usize) -> Segment {
        let (sigma, tg) = (self.sigma, self.t.tgroup);
        let n = (b - a) as f64;
        let (slope, yint, sigyint) =
            fit_segment_with(self.table, &di[a..b], a, tg, sigma, self.gain);
        Segment {
            slope,
            yint,
            sigyint,
            var_poisson: self.med_rate / (self.gain * tg * (n - 1.0)),
            var_rnoise: 12.0 * sigma * sigma / ((n * n * n - n) * tg * tg),
        }
    }
}

/// PEDESTAL of one integration (`calc_pedestal`): the first group minus slope × TFRAME ×
/// (NFRAMES + 1) / 2, 0 where the first group is saturated.
fn pedestal(di: &[f64], qi: &[u8], slope: f64, t: &Timing) -> f64 {
    if qi.is_empty() || qi[0] & dq::SATURATED as u8 != 0 {
        0.0
    } else {
        let sl = if slope.is_finite() { slope } else { 0.0 };
        di[0] - sl * t.tframe * (t.nframes as f64 + 1.0) / 2.0
    }
}

/// stcal `dq_compress_final`: the exposure's DQ is the OR of the integrations' DQ without
/// DO_NOT_USE and SATURATED, which are set only when every integration has them.
struct ExposureDq {
    dq: u32,
    all_dnu_or_sat: bool,
    all_sat: bool,
}

impl ExposureDq {
    fn new(pixeldq: u32) -> ExposureDq {
        ExposureDq {
            dq: pixeldq & !(dq::DO_NOT_USE | dq::SATURATED),
            all_dnu_or_sat: true,
            all_sat: true,
        }
    }

    fn add(&mut self, flags: u32) {
        self.dq |= flags & !(dq::DO_NOT_USE | dq::SATURATED);
        self.all_dnu_or_sat &= flags & (dq::DO_NOT_USE | dq::SATURATED) != 0;
        self.all_sat &= flags & dq::SATURATED != 0;
    }

    /// The DQ, given how many segments of the exposure were fitted.
    fn finish(self, fitted: usize) -> u32 {
        let mut dq = self.dq;
        if self.all_dnu_or_sat || fitted == 0 {
            dq |= dq::DO_NOT_USE;
        }
        if self.all_sat {
            dq |= dq::DO_NOT_USE | dq::SATURATED;
        }
        dq
    }
}

/// Combination of segments (stcal OLS_C, `ramp_fit_pixel_integration`): slopes weighted by
/// the inverse read-noise variance; Poisson and read-noise variances combined by inverse sum.
#[derive(Default)]
struct Accum {
    n: usize,
    sw: f64,
    swb: f64,
    inv_p: f64,
    inv_r: f64,
    zero_p: bool,
}

impl Accum {
    fn add(&mut self, s: &Segment) {
        // stcal 1.20 (JP-4318) weights segment slopes by their read-noise variance alone;
        // with the total variance, as this engine did before, rates of ramps with jumps or
        // saturation differed from jwst's by up to 16 times their ERR (fidelity test).
        let w = 1.0 / s.var_rnoise;
        self.n += 1;
        self.sw += w;
        self.swb += w * s.slope;
        self.inv_r += 1.0 / s.var_rnoise;
        if s.var_poisson > 0.0 {
            self.inv_p += 1.0 / s.var_poisson;
        } else {
            self.zero_p = true;
        }
    }

    /// (slope, var_poisson, var_rnoise); NaN when empty. A segment with zero Poisson variance
    /// (zero or negative median rate) makes the combined Poisson variance zero.
    fn result(&self) -> (f64, f64, f64) {
        if self.n == 0 {
            return (f64::NAN, f64::NAN, f64::NAN);
        }
        let vp = if self.zero_p || self.inv_p == 0.0 {
            0.0
        } else {
            1.0 / self.inv_p
        };
        (self.swb / self.sw, vp, 1.0 / self.inv_r)
    }
}

/// The optional output held compactly while it is made: the first segment and first jump of
/// every pixel and integration in full planes, the rare further ones as a list. Written plane by
/// plane ([`write_fitopt_parts`]) or expanded to a [`FitOpt`].
#[derive(Clone, Debug, PartialEq)]
pub struct FitOptParts {
    /// `false`: only the pedestals were made ([`Fitopt::Pedestal`]).
    pub whole: bool,
    pub nints: usize,
    pub nseg: usize,
    pub ncr: usize,
    pub ny: usize,
    pub nx: usize,
    /// SLOPE, SIGSLOPE, VAR_POISSON, VAR_RNOISE, YINT, SIGYINT, WEIGHTS of segment 0,
    /// `(nints, ny, nx)` each.
    seg0: [Vec<f32>; 7],
    /// (integration × npix + pixel, segment index ≥ 1, the 7 values), sorted by (segment
    /// index, integration × npix + pixel).
    seg_more: Vec<(usize, usize, [f32; 7])>,
    /// CRMAG of jump 0, `(nints, ny, nx)`.
    cr0: Vec<f32>,
    /// (integration × npix + pixel, jump index ≥ 1, CRMAG), sorted like `seg_more`.
    cr_more: Vec<(usize, usize, f32)>,
    /// `(nints, ny, nx)`.
    pub pedestal: Vec<f32>,
}

/// The entries of plane (index `k`, integration `i`) in `entries` sorted by `key` = (index,
/// integration × npix + pixel).
fn plane_run<E>(
    entries: &[E],
    key: impl Fn(&E) -> (usize, usize),
    k: usize,
    i: usize,
    npix: usize,
) -> std::ops::Range<usize> {
    let start = entries.partition_point(|e| key(e) < (k, i * npix));
    let end = entries.partition_point(|e| key(e) < (k, (i + 1) * npix));
    start..end
}

/// Index of each segment quantity in [`FitOptParts`]'s arrays, in the order of the file.
const SEG_EXT: [(&str, usize, Option<&str>); 6] = [
    ("SLOPE", 0, Some("DN/s")),
    ("SIGSLOPE", 1, Some("DN/s")),
    ("VAR_POISSON", 2, Some("DN^2/s^2")),
    ("VAR_RNOISE", 3, Some("DN^2/s^2")),
    ("YINT", 4, Some("DN")),
    ("SIGYINT", 5, Some("DN")),
];

impl FitOptParts {
    fn npix(&self) -> usize {
        self.ny * self.nx
    }

    /// Plane (integration `i`, segment `k`) of segment quantity `q` (0..7, see `seg0`).
    fn seg_plane(&self, q: usize, i: usize, k: usize, out: &mut [f32]) {
        let npix = self.npix();
        if k == 0 {
            out.copy_from_slice(&self.seg0[q][i * npix..(i + 1) * npix]);
            return;
        }
        out.fill(0.0);
        let run = plane_run(&self.seg_more, |e| (e.1, e.0), k, i, npix);
        for &(ip, _, ref v) in &self.seg_more[run] {
            out[ip - i * npix] = v[q];
        }
    }

    /// Plane (integration `i`, jump `k`) of CRMAG.
    fn cr_plane(&self, i: usize, k: usize, out: &mut [f32]) {
        let npix = self.npix();
        if k == 0 {
            out.copy_from_slice(&self.cr0[i * npix..(i + 1) * npix]);
            return;
        }
        out.fill(0.0);
        let run = plane_run(&self.cr_more, |e| (e.1, e.0), k, i, npix);
        for &(ip, _, c) in &self.cr_more[run] {
            out[ip - i * npix] = c;
        }
    }

    /// The full arrays.
    pub fn expand(&self) -> FitOpt {
        let (nints, nseg, ncr, npix) = (self.nints, self.nseg, self.ncr, self.npix());
        let seg_len = nints * nseg * npix;
        let mut arrays: [Vec<f32>; 7] = std::array::from_fn(|_| vec![0.0; seg_len]);
        for (q, a) in arrays.iter_mut().enumerate() {
            for i in 0..nints {
                for k in 0..nseg {
                    let j = (i * nseg + k) * npix;
                    self.seg_plane(q, i, k, &mut a[j..j + npix]);
                }
            }
        }
        let mut crmag = vec![0.0; nints * ncr * npix];
        for i in 0..nints {
            for k in 0..ncr {
                let j = (i * ncr + k) * npix;
                self.cr_plane(i, k, &mut crmag[j..j + npix]);
            }
        }
        let [
            slope,
            sigslope,
            var_poisson,
            var_rnoise,
            yint,
            sigyint,
            weights,
        ] = arrays;
        FitOpt {
            nints,
            nseg,
            ncr,
            ny: self.ny,
            nx: self.nx,
            slope,
            sigslope,
            var_poisson,
            var_rnoise,
            yint,
            sigyint,
            weights,
            pedestal: self.pedestal.clone(),
            crmag,
        }
    }
}

/// Everything ramp fitting produces, the optional output compact (and only when asked for).
#[derive(Clone, Debug, PartialEq)]
pub struct RampFitParts {
    pub rate: Slopes,
    pub rateints: Slopes,
    pub fitopt: Option<FitOptParts>,
}

/// How much of the optional output (fitopt) ramp fitting makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fitopt {
    /// None: it is not saved.
    No,
    /// Only the pedestals: a run-internal product read for PEDESTAL alone (the per-segment
    /// planes would take seven times its memory).
    Pedestal,
    /// Everything the RampFitOutputModel holds.
    Whole,
}

/// Fits every pixel of `ramp` (see the module documentation), making as much of the optional
/// output as `fitopt` says. `readnoise` is the CDS read noise (DN) and `gain` e-/DN per pixel
/// `[y][x]`. Rows are fitted in parallel with rayon. Group and frame times come from the header
/// ([`Timing::from_header`]).
pub fn ramp_fit_parts(
    ramp: &Ramp,
    readnoise: &[f32],
    gain: &[f32],
    fitopt: Fitopt,
) -> Result<RampFitParts, RampFitError> {
    check_shapes(ramp, readnoise, gain)?;
    let fitter = RowFitter {
        ramp,
        readnoise,
        gain,
        t: Timing::from_header(&ramp.header)?,
        table: WeightTable::new(ramp.ngroups),
        fitopt,
    };
    let mut out = Collector::new(ramp, fitopt);
    // Bands of rows bound the memory of the per-row intermediate results; each band is merged
    // into the outputs while the next one is fitted.
    const BAND_ROWS: usize = 64;
    let mut pending: Option<(usize, Vec<RowFit>)> = None;
    for y0 in (0..ramp.ny).step_by(BAND_ROWS) {
        let y1 = (y0 + BAND_ROWS).min(ramp.ny);
        let (band, ()) = rayon::join(
            || fitter.band(y0, y1),
            || {
                if let Some((py, b)) = pending.take() {
                    out.merge(py, &b);
                }
            },
        );
        pending = Some((y0, band));
    }
    if let Some((py, b)) = pending.take() {
        out.merge(py, &b);
    }
    Ok(out.finish())
}

/// SCI and GROUPDQ must hold the (non-empty) ramp, the read noise, gain and PIXELDQ one frame.
fn check_shapes(ramp: &Ramp, readnoise: &[f32], gain: &[f32]) -> Result<(), RampFitError> {
    let (nints, ng, ny, nx) = (ramp.nints, ramp.ngroups, ramp.ny, ramp.nx);
    let npix = ny * nx;
    if readnoise.len() != npix || gain.len() != npix || ramp.pixeldq.len() != npix {
        return Err(RampFitError::Shape(format!(
            "readnoise ({}), gain ({}) and PIXELDQ ({}) must have {ny}x{nx} values",
            readnoise.len(),
            gain.len(),
            ramp.pixeldq.len()
        )));
    }
    let n = nints * ng * npix;
    if ramp.sci.len() != n || ramp.groupdq.len() != n || nints == 0 || ng == 0 || npix == 0 {
        return Err(RampFitError::Shape(format!(
            "SCI ({}) and GROUPDQ ({}) must have {nints}x{ng}x{ny}x{nx} = {n} > 0 values",
            ramp.sci.len(),
            ramp.groupdq.len()
        )));
    }
    Ok(())
}

/// One row's results.
struct RowFit {
    rate: Vec<IntFit>,
    /// `[i][x]`.
    ints: Vec<IntFit>,
    pedestal: Vec<f32>,
    /// (i, x, k, values).
    segs: Vec<(usize, usize, usize, [f32; 7])>,
    /// (i, x, k, CRMAG).
    crs: Vec<(usize, usize, usize, f32)>,
}

impl RowFit {
    /// The optional output of pixel `x` from its fit `s`: pedestals, and with `segments` each
    /// segment and jump numbered `k` within its integration.
    fn push_fitopt(&mut self, x: usize, nx: usize, s: &PixelScratch, segments: bool) {
        for (i, &p) in s.pedestal.iter().enumerate() {
            self.pedestal[i * nx + x] = p as f32;
        }
        if !segments {
            return;
        }
        let mut k = 0;
        for (j, &(i, sg)) in s.segs.iter().enumerate() {
            k = if j > 0 && s.segs[j - 1].0 == i {
                k + 1
            } else {
                0
            };
            let v = sg.var_poisson + sg.var_rnoise;
            let vals = [
                sg.slope,
                v.sqrt(),
                sg.var_poisson,
                sg.var_rnoise,
                sg.yint,
                sg.sigyint,
                // stcal's WEIGHTS: the weight the segment's slope got.
                1.0 / sg.var_rnoise,
            ]
            .map(|x| x as f32);
            self.segs.push((i, x, k, vals));
        }
        let mut k = 0;
        for (j, &(i, c)) in s.crmag.iter().enumerate() {
            k = if j > 0 && s.crmag[j - 1].0 == i {
                k + 1
            } else {
                0
            };
            self.crs.push((i, x, k, c as f32));
        }
    }
}

/// Fits rows of one exposure.
struct RowFitter<'a> {
    ramp: &'a Ramp,
    readnoise: &'a [f32],
    gain: &'a [f32],
    t: Timing,
    table: WeightTable,
    fitopt: Fitopt,
}

impl RowFitter<'_> {
    /// Rows `y0..y1`, in parallel.
    fn band(&self, y0: usize, y1: usize) -> Vec<RowFit> {
        (y0..y1).into_par_iter().map(|y| self.row(y)).collect()
    }

    /// The row's groups gathered per pixel: `[x][i][g]`, data (DN) and flags.
    fn gather(&self, y: usize) -> (Vec<f64>, Vec<u8>) {
        let r = self.ramp;
        let (nints, ng, nx) = (r.nints, r.ngroups, r.nx);
        let per = nints * ng;
        let mut d = vec![0f64; nx * per];
        let mut q = vec![0u8; nx * per];
        for i in 0..nints {
            for g in 0..ng {
                let k0 = r.index(i, g, y, 0);
                let (srow, qrow) = (&r.sci[k0..k0 + nx], &r.groupdq[k0..k0 + nx]);
                let o = i * ng + g;
                for x in 0..nx {
                    d[x * per + o] = f64::from(srow[x]);
                    q[x * per + o] = qrow[x];
                }
            }
        }
        (d, q)
    }

    fn row(&self, y: usize) -> RowFit {
        let r = self.ramp;
        let (nints, ng, nx) = (r.nints, r.ngroups, r.nx);
        let per = nints * ng;
        let (d, q) = self.gather(y);
        let mut s = PixelScratch::new(nints, ng);
        let mut row = RowFit {
            rate: Vec::with_capacity(nx),
            ints: vec![(0.0, 0.0, 0.0, 0); nints * nx],
            pedestal: vec![
                0.0;
                if self.fitopt != Fitopt::No {
                    nints * nx
                } else {
                    0
                }
            ],
            segs: Vec::new(),
            crs: Vec::new(),
        };
        for x in 0..nx {
            let p = y * nx + x;
            fit_pixel_into(
                &d[x * per..(x + 1) * per],
                &q[x * per..(x + 1) * per],
                nints,
                ng,
                r.pixeldq[p],
                f64::from(self.readnoise[p]),
                f64::from(self.gain[p]),
                &self.t,
                &self.table,
                &mut s,
            );
            row.rate.push(s.rate);
            for i in 0..nints {
                row.ints[i * nx + x] = s.ints[i];
            }
            if self.fitopt != Fitopt::No {
                row.push_fitopt(x, nx, &s, self.fitopt == Fitopt::Whole);
            }
        }
        row
    }
}

/// The products, filled band by band.
struct Collector {
    nints: usize,
    ny: usize,
    nx: usize,
    fitopt: Fitopt,
    rate: Slopes,
    rateints: Slopes,
    pedestal: Vec<f32>,
    seg0: [Vec<f32>; 7],
    cr0: Vec<f32>,
    seg_more: Vec<(usize, usize, [f32; 7])>,
    cr_more: Vec<(usize, usize, f32)>,
    nseg: usize,
    ncr: usize,
}

impl Slopes {
    fn zeros(nplanes: usize, ny: usize, nx: usize) -> Slopes {
        let n = nplanes * ny * nx;
        Slopes {
            nplanes,
            ny,
            nx,
            sci: vec![0.0; n],
            err: vec![0.0; n],
            dq: vec![0; n],
            var_poisson: vec![0.0; n],
            var_rnoise: vec![0.0; n],
        }
    }
}

impl Collector {
    fn new(ramp: &Ramp, fitopt: Fitopt) -> Collector {
        let (nints, ny, nx) = (ramp.nints, ramp.ny, ramp.nx);
        let len = |made: bool| if made { nints * ny * nx } else { 0 };
        let segments = len(fitopt == Fitopt::Whole);
        Collector {
            nints,
            ny,
            nx,
            fitopt,
            rate: Slopes::zeros(1, ny, nx),
            rateints: Slopes::zeros(nints, ny, nx),
            pedestal: vec![0f32; len(fitopt != Fitopt::No)],
            seg0: std::array::from_fn(|_| vec![0f32; segments]),
            cr0: vec![0f32; segments],
            seg_more: Vec::new(),
            cr_more: Vec::new(),
            nseg: 1,
            ncr: 1,
        }
    }

    /// The rows of `band`, the first being row `y0`.
    fn merge(&mut self, y0: usize, band: &[RowFit]) {
        let (nints, nx) = (self.nints, self.nx);
        let npix = self.ny * nx;
        for (y, row) in (y0..).zip(band) {
            let p0 = y * nx;
            for x in 0..nx {
                put(&mut self.rate, p0 + x, row.rate[x]);
                for i in 0..nints {
                    put(&mut self.rateints, i * npix + p0 + x, row.ints[i * nx + x]);
                }
            }
            if self.fitopt != Fitopt::No {
                self.merge_fitopt(p0, row);
            }
        }
    }

    /// The optional output of the row starting at pixel `p0`: segment and jump 0 into the
    /// planes, further ones into the lists.
    fn merge_fitopt(&mut self, p0: usize, row: &RowFit) {
        let (nints, nx) = (self.nints, self.nx);
        let npix = self.ny * nx;
        for i in 0..nints {
            self.pedestal[i * npix + p0..i * npix + p0 + nx]
                .copy_from_slice(&row.pedestal[i * nx..(i + 1) * nx]);
        }
        for &(i, x, k, ref vals) in &row.segs {
            let ip = i * npix + p0 + x;
            self.nseg = self.nseg.max(k + 1);
            if k == 0 {
                for (a, &v) in self.seg0.iter_mut().zip(vals) {
                    a[ip] = v;
                }
            } else {
                self.seg_more.push((ip, k, *vals));
            }
        }
        for &(i, x, k, c) in &row.crs {
            let ip = i * npix + p0 + x;
            self.ncr = self.ncr.max(k + 1);
            if k == 0 {
                self.cr0[ip] = c;
            } else {
                self.cr_more.push((ip, k, c));
            }
        }
    }

    fn finish(mut self) -> RampFitParts {
        // Sorted by (segment or jump index, integration × npix + pixel), so that each plane's
        // entries are one contiguous run (see `FitOptParts::seg_plane`).
        self.seg_more.sort_unstable_by_key(|&(ip, k, _)| (k, ip));
        self.cr_more.sort_unstable_by_key(|&(ip, k, _)| (k, ip));
        let fitopt = (self.fitopt != Fitopt::No).then_some(FitOptParts {
            whole: self.fitopt == Fitopt::Whole,
            nints: self.nints,
            nseg: self.nseg,
            ncr: self.ncr,
            ny: self.ny,
            nx: self.nx,
            seg0: self.seg0,
            seg_more: self.seg_more,
            cr0: self.cr0,
            cr_more: self.cr_more,
            pedestal: self.pedestal,
        });
        RampFitParts {
            rate: self.rate,
            rateints: self.rateints,
            fitopt,
        }
    }
}

/// Stores one slope at flat index `j`; slopes with DO_NOT_USE are NaN, as in current jwst.
fn put(s: &mut Slopes, j: usize, (b, vp, vr, q): IntFit) {
    s.dq[j] = q;
    if q & dq::DO_NOT_USE != 0 {
        s.sci[j] = f32::NAN;
        s.err[j] = f32::NAN;
        s.var_poisson[j] = f32::NAN;
        s.var_rnoise[j] = f32::NAN;
    } else {
        s.sci[j] = b as f32;
        s.err[j] = (vp + vr).sqrt() as f32;
        s.var_poisson[j] = vp as f32;
        s.var_rnoise[j] = vr as f32;
    }
}

/// Header keys that describe the file structure and are never copied from the input.
const STRUCTURAL: &[&str] = &[
    "SIMPLE", "BITPIX", "NAXIS", "EXTEND", "PCOUNT", "GCOUNT", "XTENSION", "EXTNAME", "BZERO",
    "BSCALE", "END", "CHECKSUM", "DATASUM",
];

fn structural(key: &str) -> bool {
    STRUCTURAL.contains(&key)
        || (key.starts_with("NAXIS") && key[5..].bytes().all(|b| b.is_ascii_digit()))
}

/// Starts a product: the input primary header's keys (structure keys left out), FILENAME of the
/// product, DATAMODL, and S_RAMP = 'COMPLETE' when `fitted` (rate and rateints; the optional
/// output carries the state before ramp fitting, as jwst writes it).
fn start(
    path: &Path,
    header: &Header,
    datamodel: &str,
    fitted: bool,
    form: &Form,
) -> Result<FitsWriter, RampFitError> {
    let mut w = FitsWriter::create(path)?;
    w.set_durable(form.durable());
    for (k, v) in header.iter() {
        if structural(k) || matches!(k, "S_RAMP" | "DATAMODL" | "FILENAME") {
            continue;
        }
        w.set_primary_key(k, v, "")?;
    }
    if let Some(name) = path.file_name() {
        let name = name.to_string_lossy().into_owned();
        w.set_primary_key("FILENAME", &HeaderValue::from(name), "name of the file")?;
    }
    w.set_primary_key(
        "DATAMODL",
        &HeaderValue::from(datamodel),
        "type of data model",
    )?;
    if fitted {
        w.set_primary_key("S_RAMP", &"COMPLETE".into(), "ramp fitting")?;
    }
    Ok(w)
}

/// Writes one extension, when `form` keeps it.
fn image<T: Pixel>(
    w: &mut FitsWriter,
    form: &Form,
    name: &str,
    shape: &[usize],
    data: &[T],
    bunit: Option<&str>,
) -> Result<(), RampFitError> {
    if !form.keeps(name) {
        return Ok(());
    }
    w.write_image(name, shape, data)?;
    if let Some(u) = bunit {
        w.set_key("BUNIT", &u.into(), "units of the data")?;
    }
    Ok(())
}

fn write_slopes(
    path: &Path,
    header: &Header,
    s: &Slopes,
    shape: &[usize],
    model: &str,
    form: &Form,
) -> Result<PathBuf, RampFitError> {
    let mut w = start(path, header, model, true, form)?;
    image(&mut w, form, "SCI", shape, &s.sci, Some("DN/s"))?;
    image(&mut w, form, "ERR", shape, &s.err, Some("DN/s"))?;
    image(&mut w, form, "DQ", shape, &s.dq, None)?;
    image(
        &mut w,
        form,
        "VAR_POISSON",
        shape,
        &s.var_poisson,
        Some("DN^2/s^2"),
    )?;
    image(
        &mut w,
        form,
        "VAR_RNOISE",
        shape,
        &s.var_rnoise,
        Some("DN^2/s^2"),
    )?;
    Ok(w.finish()?)
}

/// Writes the `rate` product (ImageModel: SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, 2-D) from
/// the `rate` of [`ramp_fit_parts`], in `form`.
pub fn write_rate(
    path: &Path,
    header: &Header,
    rate: &Slopes,
    form: &Form,
) -> Result<PathBuf, RampFitError> {
    write_slopes(path, header, rate, &[rate.ny, rate.nx], "ImageModel", form)
}

/// Writes the `rateints` product (CubeModel: the same extensions, `(nints, ny, nx)`).
pub fn write_rateints(
    path: &Path,
    header: &Header,
    rateints: &Slopes,
    form: &Form,
) -> Result<PathBuf, RampFitError> {
    let shape = [rateints.nplanes, rateints.ny, rateints.nx];
    write_slopes(path, header, rateints, &shape, "CubeModel", form)
}

/// Writes the optional output (RampFitOutputModel, `rampfitoutput.schema` of stdatamodels: float32
/// SLOPE, SIGSLOPE, VAR_POISSON, VAR_RNOISE, YINT, SIGYINT (4-D), PEDESTAL (3-D), WEIGHTS, CRMAG
/// (4-D), in the schema's order), plane by plane from the compact form (the full 4-D arrays are
/// never held in memory), in `form`.
pub fn write_fitopt_parts(
    path: &Path,
    header: &Header,
    o: &FitOptParts,
    form: &Form,
) -> Result<PathBuf, RampFitError> {
    let npix = o.npix();
    let seg = [o.nints, o.nseg, o.ny, o.nx];
    let wanted = |name: &str| form.keeps(name) && name != "PEDESTAL";
    if !o.whole && (SEG_EXT.iter().any(|e| wanted(e.0)) || wanted("WEIGHTS") || wanted("CRMAG")) {
        return Err(RampFitError::Shape(format!(
            "{}: only the pedestals of the optional output were made, but more is to be written",
            path.display()
        )));
    }
    let mut w = start(path, header, "RampFitOutputModel", false, form)?;
    let mut buf = vec![0f32; npix];
    let seg_image = |w: &mut FitsWriter,
                     buf: &mut [f32],
                     name: &str,
                     q: usize,
                     bunit: Option<&str>|
     -> Result<(), RampFitError> {
        if !form.keeps(name) {
            return Ok(());
        }
        w.create_image::<f32>(name, &seg)?;
        for i in 0..o.nints {
            for k in 0..o.nseg {
                o.seg_plane(q, i, k, buf);
                w.write_pixels((i * o.nseg + k) * npix, buf)?;
            }
        }
        if let Some(u) = bunit {
            w.set_key("BUNIT", &u.into(), "units of the data")?;
        }
        Ok(())
    };
    for (name, q, bunit) in SEG_EXT {
        seg_image(&mut w, &mut buf, name, q, bunit)?;
    }
    image(
        &mut w,
        form,
        "PEDESTAL",
        &[o.nints, o.ny, o.nx],
        &o.pedestal,
        Some("DN"),
    )?;
    seg_image(&mut w, &mut buf, "WEIGHTS", 6, None)?;
    if form.keeps("CRMAG") {
        w.create_image::<f32>("CRMAG", &[o.nints, o.ncr, o.ny, o.nx])?;
        for i in 0..o.nints {
            for k in 0..o.ncr {
                o.cr_plane(i, k, &mut buf);
                w.write_pixels((i * o.ncr + k) * npix, &buf)?;
            }
        }
        w.set_key("BUNIT", &"DN".into(), "units of the data")?;
    }
    Ok(w.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing() -> Timing {
        Timing {
            tgroup: 10.0,
            tframe: 10.0,
            nframes: 1,
        }
    }

    #[test]
    fn timing_from_header() {
        let mut h = Header::new();
        assert!(Timing::from_header(&h).is_err());
        h.set("TFRAME", 10.0);
        h.set("NFRAMES", 4i64);
        h.set("GROUPGAP", 1i64);
        let t = Timing::from_header(&h).unwrap();
        assert_eq!((t.tgroup, t.tframe, t.nframes), (50.0, 10.0, 4));
        h.set("TGROUP", 42.0);
        assert_eq!(Timing::from_header(&h).unwrap().tgroup, 42.0);
        h.set("TFRAME", -1.0);
        assert!(Timing::from_header(&h).is_err());
    }

    #[test]
    fn exposure_dq_follows_dq_compress_final() {
        let sat = (dq::SATURATED | dq::DO_NOT_USE) as u8;
        let d: Vec<f64> = (0..6).map(|g| 40.0 * g as f64).collect();
        let (good, all_sat) = (vec![0u8; 6], vec![sat; 6]);
        // Integration 0 saturated from group 0, integration 1 good.
        let f = fit_pixel(
            &[d.clone(), d.clone()],
            &[all_sat.clone(), good],
            0,
            10.0,
            2.0,
            &timing(),
        );
        assert_eq!(f.ints[0].3, dq::SATURATED | dq::DO_NOT_USE);
        assert_eq!(f.ints[1].3, 0);
        assert_eq!(f.rate.3, 0);
        assert!((f.rate.0 - 4.0).abs() < 1e-9);
        // Both saturated: SATURATED | DO_NOT_USE for the exposure too.
        let f = fit_pixel(
            &[d.clone(), d],
            &[all_sat.clone(), all_sat],
            0,
            10.0,
            2.0,
            &timing(),
        );
        assert_eq!(f.rate.3, dq::SATURATED | dq::DO_NOT_USE);
        assert!(f.rate.0.is_nan());
    }

    #[test]
    fn power_steps() {
        assert_eq!(calc_power(3.0), 0.0);
        assert_eq!(calc_power(7.0), 0.4);
        assert_eq!(calc_power(15.0), 1.0);
        assert_eq!(calc_power(30.0), 3.0);
        assert_eq!(calc_power(60.0), 6.0);
        assert_eq!(calc_power(1000.0), 10.0);
    }

    #[test]
    fn noiseless_line_is_exact_for_any_weighting() {
        for rate in [0.5, 50.0, 5000.0] {
            let y: Vec<f64> = (0..8).map(|k| 100.0 + rate * 10.0 * k as f64).collect();
            let (s, b, _) = fit_segment(&y, 0, 10.0, 5.0, 2.0);
            assert!((s - rate).abs() < 1e-9 * rate.max(1.0), "{s} vs {rate}");
            assert!((b - 100.0).abs() < 1e-6, "{b}");
        }
    }

    #[test]
    fn jump_splits_the_ramp_into_two_segments() {
        // 10 groups at 2 DN/s with a 500 DN jump at group 6, no noise.
        let d: Vec<f64> = (0..10)
            .map(|g| 20.0 * g as f64 + if g >= 6 { 500.0 } else { 0.0 })
            .collect();
        let mut q = vec![0u8; 10];
        q[6] = dq::JUMP_DET as u8;
        let f = fit_pixel(&[d], &[q], 0, 10.0, 2.0, &timing());
        assert_eq!(f.segs[0].len(), 2);
        assert!((f.ints[0].0 - 2.0).abs() < 1e-9);
        assert_eq!(f.ints[0].3 & dq::JUMP_DET, dq::JUMP_DET);
        assert!((f.crmag[0][0] - 500.0).abs() < 1e-9, "{:?}", f.crmag);
        // Read-noise variance of 6 and 4 groups combined.
        let s2 = 50.0; // (10/√2)²
        let vr = |n: f64| 12.0 * s2 / ((n * n * n - n) * 100.0);
        let want = 1.0 / (1.0 / vr(6.0) + 1.0 / vr(4.0));
        assert!((f.ints[0].2 - want).abs() < 1e-12 * want.max(1.0));
    }

    #[test]
    fn saturated_groups_are_left_out() {
        let d: Vec<f64> = (0..10)
            .map(|g| if g < 5 { 30.0 * g as f64 } else { 65535.0 })
            .collect();
        let mut q = vec![0u8; 10];
        for v in q.iter_mut().skip(5) {
            *v = (dq::SATURATED | dq::DO_NOT_USE) as u8;
        }
        let f = fit_pixel(std::slice::from_ref(&d), &[q], 0, 10.0, 2.0, &timing());
        assert!((f.ints[0].0 - 3.0).abs() < 1e-9);
        assert_eq!(f.ints[0].3 & dq::DO_NOT_USE, 0);
        // Saturated from the first group: nothing fitted, DO_NOT_USE | SATURATED, pedestal 0.
        let q = vec![(dq::SATURATED | dq::DO_NOT_USE) as u8; 10];
        let f = fit_pixel(&[d], &[q], 0, 10.0, 2.0, &timing());
        assert!(f.ints[0].0.is_nan());
        assert_eq!(
            f.ints[0].3 & (dq::SATURATED | dq::DO_NOT_USE),
            dq::SATURATED | dq::DO_NOT_USE
        );
        assert_eq!(f.pedestal[0], 0.0);
    }
}
