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
//!   `rate / (gain · t · (n - 1))` with the pixel's median rate over all integrations (the median
//!   of its usable first differences, jumps excluded, divided by t; 0 when negative), as stcal's
//!   median-rate Poisson variance.
//! - Segments are combined by inverse variance (`1 / (var_p + var_r)`) into the integration's
//!   slope; `VAR_POISSON = 1/Σ(1/var_p)`, `VAR_RNOISE = 1/Σ(1/var_r)`, `ERR = √(var_p + var_r)`.
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
//!   WEIGHTS `1/(var_p + var_r)`, SIGYINT the read-noise-only error of the weighted intercept.

use std::path::{Path, PathBuf};

use mkrefs_support::dq;
use mkrefs_support::fits::{FitsError, FitsWriter, Pixel};
use mkrefs_support::header::{Header, HeaderValue};
use rayon::prelude::*;

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

/// The optional output (RampFitOutputModel).
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

/// Everything ramp fitting produces.
#[derive(Clone, Debug, PartialEq)]
pub struct RampFitOutput {
    /// All integrations combined (ImageModel, the `rate` product).
    pub rate: Slopes,
    /// Per integration (CubeModel, `rateints`).
    pub rateints: Slopes,
    pub fitopt: FitOpt,
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

/// Weighted straight line through the groups `y` (DN) at times `k · tgroup`, `k = 0..n`, with the
/// optimal weights; `k0` is the index of the segment's first group, so the intercept is at the
/// time of group 0 of the integration. `sigma` is the read noise of one group (DN), `gain`
/// e-/DN. Returns slope (DN/s), intercept (DN) and the read-noise-only error of the intercept.
fn fit_segment(y: &[f64], k0: usize, tgroup: f64, sigma: f64, gain: f64) -> (f64, f64, f64) {
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
    let mid = (n as f64 - 1.0) / 2.0;
    let inv_rn2 = 1.0 / (sigma * sigma);
    let (mut sw, mut swx, mut swy, mut swxx, mut swxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for (k, &v) in y.iter().enumerate() {
        // |(k - m)/m|^P, with 0^0 = 1 as numpy.
        let w = (((k as f64 - mid) / mid).abs()).powf(power) * inv_rn2;
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

/// Per pixel results of [`fit_pixel`].
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
    let bad = (dq::SATURATED | dq::DO_NOT_USE) as u8;
    let jump = dq::JUMP_DET as u8;
    let sigma = readnoise_cds / std::f64::consts::SQRT_2 / (t.nframes as f64).sqrt();
    let usable_pixel = pixeldq & dq::DO_NOT_USE == 0
        && gain > 0.0
        && gain.is_finite()
        && sigma > 0.0
        && sigma.is_finite();

    // The pixel's median rate over all integrations (first differences between good groups
    // that do not end in a jump).
    let mut fd: Vec<f64> = Vec::new();
    for i in 0..nints {
        for g in 1..ng {
            if (q[i][g - 1] | q[i][g]) & bad == 0 && q[i][g] & jump == 0 {
                fd.push(d[i][g] - d[i][g - 1]);
            }
        }
    }
    let med_diff = if fd.is_empty() { 0.0 } else { median(&mut fd) };
    let med_rate = (med_diff / t.tgroup).max(0.0);

    let mut ints = Vec::with_capacity(nints);
    let mut segs = Vec::with_capacity(nints);
    let mut pedestal = Vec::with_capacity(nints);
    let mut crmag = Vec::with_capacity(nints);
    let mut all = Accum::default();
    // stcal `dq_compress_final`: the OR of the integrations' DQ without DO_NOT_USE and
    // SATURATED, which are set only when every integration has them.
    let mut rate_dq = pixeldq & !(dq::DO_NOT_USE | dq::SATURATED);
    let (mut all_dnu_or_sat, mut all_sat) = (true, true);
    for i in 0..nints {
        let mut flags = pixeldq;
        let mut cr = Vec::new();
        for g in 0..ng {
            if q[i][g] & jump != 0 {
                flags |= dq::JUMP_DET;
                if g > 0 && (q[i][g - 1] | q[i][g]) & bad == 0 {
                    cr.push(d[i][g] - d[i][g - 1] - med_diff.max(0.0));
                } else {
                    cr.push(0.0);
                }
            }
        }
        // stcal `dq_compress_sect`: DO_NOT_USE when every group is SATURATED or DO_NOT_USE;
        // SATURATED | DO_NOT_USE when group 0 is saturated.
        if q[i].iter().all(|&g| g & bad != 0) {
            flags |= dq::DO_NOT_USE;
        }
        if ng > 0 && q[i][0] & dq::SATURATED as u8 != 0 {
            flags |= dq::SATURATED | dq::DO_NOT_USE;
        }
        // Segments: runs of good groups, a JUMP_DET group starting a new one.
        let mut runs: Vec<(usize, usize)> = Vec::new();
        let mut start: Option<usize> = None;
        for (g, &qg) in q[i].iter().enumerate() {
            let good = qg & bad == 0;
            if !good {
                if let Some(s) = start.take() {
                    runs.push((s, g));
                }
                continue;
            }
            if qg & jump != 0
                && let Some(s) = start.take()
            {
                runs.push((s, g));
            }
            if start.is_none() {
                start = Some(g);
            }
        }
        if let Some(s) = start {
            runs.push((s, ng));
        }
        let mut iseg = Vec::new();
        let mut acc = Accum::default();
        if usable_pixel {
            for (a, b) in runs.into_iter().filter(|(a, b)| b - a >= 2) {
                let n = (b - a) as f64;
                let (slope, yint, sigyint) = fit_segment(&d[i][a..b], a, t.tgroup, sigma, gain);
                let var_r = 12.0 * sigma * sigma / ((n * n * n - n) * t.tgroup * t.tgroup);
                let var_p = med_rate / (gain * t.tgroup * (n - 1.0));
                let s = Segment {
                    slope,
                    yint,
                    sigyint,
                    var_poisson: var_p,
                    var_rnoise: var_r,
                };
                acc.add(&s);
                all.add(&s);
                iseg.push(s);
            }
        }
        if acc.n == 0 {
            flags |= dq::DO_NOT_USE;
        }
        let (slope, vp, vr) = acc.result();
        let p = if ng == 0 || q[i][0] & dq::SATURATED as u8 != 0 {
            0.0
        } else {
            let s = if slope.is_finite() { slope } else { 0.0 };
            d[i][0] - s * t.tframe * (t.nframes as f64 + 1.0) / 2.0
        };
        pedestal.push(p);
        rate_dq |= flags & !(dq::DO_NOT_USE | dq::SATURATED);
        all_dnu_or_sat &= flags & (dq::DO_NOT_USE | dq::SATURATED) != 0;
        all_sat &= flags & dq::SATURATED != 0;
        ints.push((slope, vp, vr, flags));
        segs.push(iseg);
        crmag.push(cr);
    }
    if all_dnu_or_sat || all.n == 0 {
        rate_dq |= dq::DO_NOT_USE;
    }
    if all_sat {
        rate_dq |= dq::DO_NOT_USE | dq::SATURATED;
    }
    let (s, vp, vr) = all.result();
    PixelFit {
        ints,
        segs,
        pedestal,
        crmag,
        rate: (s, vp, vr, rate_dq),
    }
}

/// Inverse-variance combination of segments.
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
        let w = 1.0 / (s.var_poisson + s.var_rnoise);
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

/// Fits every pixel of `ramp` (see the module documentation). `readnoise` is the CDS read noise
/// (DN) and `gain` e-/DN per pixel `[y][x]`. Rows are fitted in parallel with rayon. Group and
/// frame times come from the header ([`Timing::from_header`]).
pub fn ramp_fit(
    ramp: &Ramp,
    readnoise: &[f32],
    gain: &[f32],
) -> Result<RampFitOutput, RampFitError> {
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
    let t = Timing::from_header(&ramp.header)?;
    let alloc = |nplanes: usize| Slopes {
        nplanes,
        ny,
        nx,
        sci: vec![0.0; nplanes * npix],
        err: vec![0.0; nplanes * npix],
        dq: vec![0; nplanes * npix],
        var_poisson: vec![0.0; nplanes * npix],
        var_rnoise: vec![0.0; nplanes * npix],
    };
    let mut rate = alloc(1);
    let mut rateints = alloc(nints);
    let mut pedestal = vec![0f32; nints * npix];
    // Sparse optional-output entries, placed once the largest segment and jump counts are known:
    // (integration × npix + pixel, index within the integration, values).
    let mut seg_entries: Vec<(usize, usize, [f32; 7])> = Vec::new();
    let mut cr_entries: Vec<(usize, usize, f32)> = Vec::new();
    // Bands of rows bound the memory of the per-pixel intermediate results.
    const BAND_ROWS: usize = 64;
    for y0 in (0..ny).step_by(BAND_ROWS) {
        let y1 = (y0 + BAND_ROWS).min(ny);
        let band: Vec<Vec<PixelFit>> = (y0..y1)
            .into_par_iter()
            .map(|y| {
                let mut d = vec![vec![0f64; ng]; nints];
                let mut q = vec![vec![0u8; ng]; nints];
                (0..nx)
                    .map(|x| {
                        let p = y * nx + x;
                        for i in 0..nints {
                            for g in 0..ng {
                                let k = ramp.index(i, g, y, x);
                                d[i][g] = f64::from(ramp.sci[k]);
                                q[i][g] = ramp.groupdq[k];
                            }
                        }
                        fit_pixel(
                            &d,
                            &q,
                            ramp.pixeldq[p],
                            f64::from(readnoise[p]),
                            f64::from(gain[p]),
                            &t,
                        )
                    })
                    .collect()
            })
            .collect();
        for (p, f) in (y0 * nx..).zip(band.iter().flatten()) {
            put(&mut rate, p, f.rate);
            for i in 0..nints {
                put(&mut rateints, i * npix + p, f.ints[i]);
                pedestal[i * npix + p] = f.pedestal[i] as f32;
                for (k, s) in f.segs[i].iter().enumerate() {
                    let v = s.var_poisson + s.var_rnoise;
                    let vals = [
                        s.slope,
                        v.sqrt(),
                        s.var_poisson,
                        s.var_rnoise,
                        s.yint,
                        s.sigyint,
                        1.0 / v,
                    ]
                    .map(|x| x as f32);
                    seg_entries.push((i * npix + p, k, vals));
                }
                for (k, &c) in f.crmag[i].iter().enumerate() {
                    cr_entries.push((i * npix + p, k, c as f32));
                }
            }
        }
    }
    let nseg = seg_entries
        .iter()
        .map(|e| e.1 + 1)
        .max()
        .unwrap_or(0)
        .max(1);
    let ncr = cr_entries.iter().map(|e| e.1 + 1).max().unwrap_or(0).max(1);
    let seg_len = nints * nseg * npix;
    let mut o = FitOpt {
        nints,
        nseg,
        ncr,
        ny,
        nx,
        slope: vec![0.0; seg_len],
        sigslope: vec![0.0; seg_len],
        var_poisson: vec![0.0; seg_len],
        var_rnoise: vec![0.0; seg_len],
        yint: vec![0.0; seg_len],
        sigyint: vec![0.0; seg_len],
        weights: vec![0.0; seg_len],
        pedestal,
        crmag: vec![0.0; nints * ncr * npix],
    };
    for (ip, k, v) in seg_entries {
        // (i * nseg + k) * npix + p, with ip = i * npix + p.
        let j = (ip / npix * nseg + k) * npix + ip % npix;
        o.slope[j] = v[0];
        o.sigslope[j] = v[1];
        o.var_poisson[j] = v[2];
        o.var_rnoise[j] = v[3];
        o.yint[j] = v[4];
        o.sigyint[j] = v[5];
        o.weights[j] = v[6];
    }
    for (ip, k, c) in cr_entries {
        o.crmag[(ip / npix * ncr + k) * npix + ip % npix] = c;
    }
    Ok(RampFitOutput {
        rate,
        rateints,
        fitopt: o,
    })
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
/// product, DATAMODL and S_RAMP = 'COMPLETE'.
fn start(path: &Path, header: &Header, datamodel: &str) -> Result<FitsWriter, RampFitError> {
    let mut w = FitsWriter::create(path)?;
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
    w.set_primary_key("S_RAMP", &"COMPLETE".into(), "ramp fitting")?;
    Ok(w)
}

fn image<T: Pixel>(
    w: &mut FitsWriter,
    name: &str,
    shape: &[usize],
    data: &[T],
    bunit: Option<&str>,
) -> Result<(), RampFitError> {
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
) -> Result<PathBuf, RampFitError> {
    let mut w = start(path, header, model)?;
    image(&mut w, "SCI", shape, &s.sci, Some("DN/s"))?;
    image(&mut w, "ERR", shape, &s.err, Some("DN/s"))?;
    image(&mut w, "DQ", shape, &s.dq, None)?;
    image(
        &mut w,
        "VAR_POISSON",
        shape,
        &s.var_poisson,
        Some("DN^2/s^2"),
    )?;
    image(&mut w, "VAR_RNOISE", shape, &s.var_rnoise, Some("DN^2/s^2"))?;
    Ok(w.finish()?)
}

/// Writes the `rate` product (ImageModel: SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, 2-D).
pub fn write_rate(
    path: &Path,
    header: &Header,
    out: &RampFitOutput,
) -> Result<PathBuf, RampFitError> {
    let s = &out.rate;
    write_slopes(path, header, s, &[s.ny, s.nx], "ImageModel")
}

/// Writes the `rateints` product (CubeModel: the same extensions, `(nints, ny, nx)`).
pub fn write_rateints(
    path: &Path,
    header: &Header,
    out: &RampFitOutput,
) -> Result<PathBuf, RampFitError> {
    let s = &out.rateints;
    write_slopes(path, header, s, &[s.nplanes, s.ny, s.nx], "CubeModel")
}

/// Writes the optional output (RampFitOutputModel, `rampfitoutput.schema` of stdatamodels: float32
/// SLOPE, SIGSLOPE, VAR_POISSON, VAR_RNOISE, YINT, SIGYINT (4-D), PEDESTAL (3-D), WEIGHTS, CRMAG
/// (4-D), in the schema's order).
pub fn write_fitopt(
    path: &Path,
    header: &Header,
    out: &RampFitOutput,
) -> Result<PathBuf, RampFitError> {
    let o = &out.fitopt;
    let seg = [o.nints, o.nseg, o.ny, o.nx];
    let mut w = start(path, header, "RampFitOutputModel")?;
    image(&mut w, "SLOPE", &seg, &o.slope, Some("DN/s"))?;
    image(&mut w, "SIGSLOPE", &seg, &o.sigslope, Some("DN/s"))?;
    image(
        &mut w,
        "VAR_POISSON",
        &seg,
        &o.var_poisson,
        Some("DN^2/s^2"),
    )?;
    image(&mut w, "VAR_RNOISE", &seg, &o.var_rnoise, Some("DN^2/s^2"))?;
    image(&mut w, "YINT", &seg, &o.yint, Some("DN"))?;
    image(&mut w, "SIGYINT", &seg, &o.sigyint, Some("DN"))?;
    image(
        &mut w,
        "PEDESTAL",
        &[o.nints, o.ny, o.nx],
        &o.pedestal,
        Some("DN"),
    )?;
    image(&mut w, "WEIGHTS", &seg, &o.weights, None)?;
    image(
        &mut w,
        "CRMAG",
        &[o.nints, o.ncr, o.ny, o.nx],
        &o.crmag,
        Some("DN"),
    )?;
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
