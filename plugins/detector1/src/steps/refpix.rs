//! The refpix step for the near-infrared detectors (jwst `RefPixStep` with its default
//! `refpix_algorithm = "median"`, `jwst.refpix.reference_pixels.NIRDataset`).
//!
//! Every group of every integration is corrected on its own (groups are independent, so they
//! are processed in parallel), in **detector orientation**: the frame is embedded in the
//! 2048×2048 full frame at its SUBSTRT1/2 position and transformed from DMS to detector
//! orientation with FASTAXIS/SLOWAXIS as jwst's `science_detector_frame_transform` does (flip
//! the axes whose keyword is negative; transpose when the fast axis is y, |FASTAXIS| = 2), and
//! transformed back afterwards. Pixels of the full frame outside the exposure's window count as
//! DO_NOT_USE reference pixels, so they are never used (jwst embeds PIXELDQ that way).
//!
//! **Full frame, and subarrays read with 4 outputs (NOUTPUTS = 4)** — `do_fullframe_corrections`:
//!
//! 1. Top/bottom: for each of the 4 amplifiers (detector columns `512·a .. 512·(a+1)`), the
//!    sigma-clipped mean (`scipy.stats.sigmaclip`, 3σ low and high, iterated to convergence, of
//!    the pixels whose PIXELDQ lacks DO_NOT_USE) of the bottom (detector rows 0..4) and of the
//!    top (rows 2044..2048) reference pixels, separately for the even and the odd detector
//!    columns (`odd_even_columns`; jwst's "odd" columns are the even array indices). Top and
//!    bottom are averaged (one alone when the other has no usable pixel); the result is
//!    subtracted from every pixel (reference pixels included) of that amplifier and column
//!    parity. An amplifier with no usable reference value (for either parity) is left as it is.
//! 2. Side (`use_side_ref_pixels`): after step 1, for every detector row, the median of the
//!    usable pixels of the left (columns 0..4) and, separately, of the right (2044..2048) side
//!    reference columns in a window of `side_smoothing_length` rows (made odd) centred on the
//!    row, the frame mirrored at rows 0 and 2047 without repeating the edge row (jwst's
//!    `create_reflected`); left and right are averaged (one alone when the other is empty; 0
//!    when both are), multiplied by `side_gain` and subtracted from the whole row.
//!
//! **Subarrays read with one output** — `do_subarray_corrections`: the reference pixels are the
//! window's pixels whose PIXELDQ has REFERENCE_PIXEL (set by dq_init from the MASK) and not
//! DO_NOT_USE. Their sigma-clipped mean, separately for even and odd detector columns (one
//! mean for all with `odd_even_columns = false`), is subtracted from every pixel of that column
//! parity. No side correction. A window with no such pixel (e.g. in the middle of the
//! detector) is left unchanged, and the step is still recorded COMPLETE, as jwst's
//! `correct_model` returns REFPIX_OK then (the jwst documentation's sentence that the step is
//! then SKIPPED describes an older version). For the NIRSpec "edgeless" subarrays SUB512,
//! SUB512S and SUB32 (matched by SUBARRAY name, as jwst does), the first and last 4 DMS columns
//! of the window are treated as reference pixels (REFERENCE_PIXEL added to the working copy of
//! PIXELDQ only, not to the output).
//!
//! A window that does not fit inside the 2048×2048 frame is not corrected and the step is
//! recorded SKIPPED (jwst: SUBARRAY_DOESNTFIT). Only PIXELDQ is consulted: GROUPDQ (e.g. a
//! SATURATED reference pixel in one group) does not exclude a pixel, and no group is skipped
//! (the first group is corrected too), as in jwst. Sets S_REFPIX; the NIR step has no
//! reference file, so no R_* keyword.
//!
//! Simplifications and differences, all outside the default NIR path or at the rounding level:
//!
//! - NIRSpec IRS2 readouts (interleaved reference pixels, a REFPIX reference file and a
//!   Fourier-space correction) and MIRI (reference columns per amplifier, first-group
//!   subtraction, odd/even rows; subarrays skipped) are different algorithms and are refused
//!   with [`StepError::Unsupported`]. The optional `refpix_algorithm = "sirs"` side-pixel
//!   convolution (needs a SIRSKERNEL file) and jwst's separate path for the multistripe and
//!   superstripe subarray readouts (recognised by stdatamodels' `multistripe_reads1` metadata)
//!   are not implemented: such exposures must not be given to this step.
//! - The NIRCam ZEROFRAME array, which jwst corrects the same way, is not part of
//!   [`crate::ramp::Ramp`] and so is not corrected.
//! - Means and medians are computed in f64 (numpy uses float32 for the clipped mean), so values
//!   can differ from jwst's in the last bits of f32.
//! - Non-finite (NaN/inf) reference values are left out of the means and medians; in jwst one
//!   NaN makes the whole amplifier's mean NaN.
//! - In the one-output subarray path, when the usable reference pixels all have one column
//!   parity, the other parity is left uncorrected (jwst fails there).

use mkrefs_support::dq;
use mkrefs_support::geometry::{Instrument, detector_info};
use rayon::prelude::*;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::Target;

pub const STEP_KEYWORD: &str = "S_REFPIX";

/// Side of the NIR full frame (pixels), in both orientations.
const FULL: usize = 2048;
/// Width of the reference-pixel border.
const REF_W: usize = 4;
/// Columns per amplifier, in detector orientation.
const AMP_W: usize = 512;

/// NIRSpec subarrays that reach no detector edge; jwst uses their first and last 4 columns as
/// reference pixels.
pub const NRS_EDGELESS_SUBARRAYS: [&str; 3] = ["SUB512", "SUB512S", "SUB32"];

/// The step's parameters, with the jwst defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefpixParams {
    /// Separate reference values for even and odd detector columns (default true).
    pub odd_even_columns: bool,
    /// Subtract the smoothed side reference signal row by row (default true).
    pub use_side_ref_pixels: bool,
    /// Height (rows) of the running median of the side reference pixels (default 11; an even
    /// value is increased by 1, as jwst does).
    pub side_smoothing_length: usize,
    /// Factor of the side reference signal before it is subtracted (default 1.0).
    pub side_gain: f64,
    /// Sigma-clipping limit, low and high, of the reference means (3.0, as documented).
    pub sigma_clip: f64,
}

impl Default for RefpixParams {
    fn default() -> Self {
        RefpixParams {
            odd_even_columns: true,
            use_side_ref_pixels: true,
            side_smoothing_length: 11,
            side_gain: 1.0,
            sigma_clip: 3.0,
        }
    }
}

/// The mean of `values` after iterative sigma clipping as `scipy.stats.sigmaclip(values, k, k)`
/// does it: repeat { keep `mean - k·std <= v <= mean + k·std` (population std) } until nothing
/// more is removed; when the values have zero spread, their plain mean. `None` for no values.
pub fn sigma_clipped_mean(values: &[f64], k: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let stats = |v: &[f64]| {
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|&x| (x - mean) * (x - mean)).sum::<f64>() / n;
        (mean, var.sqrt())
    };
    let (mean0, std0) = stats(values);
    if std0 == 0.0 {
        return Some(mean0);
    }
    let mut c = values.to_vec();
    loop {
        if c.is_empty() {
            // Only reachable through non-finite input; scipy's mean of nothing is NaN.
            return Some(f64::NAN);
        }
        let (mean, std) = stats(&c);
        let (lo, hi) = (mean - std * k, mean + std * k);
        let before = c.len();
        c.retain(|&x| x >= lo && x <= hi);
        if c.len() == before {
            return Some(mean);
        }
    }
}

/// `numpy.median` of `v` (sorted in place); NaN for no values.
fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// jwst's `average_with_none`: the mean of the values present.
fn average_with_none(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(0.5 * (a + b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// jwst's `combine_with_nans`: the mean of the finite values, 0 when neither is.
fn combine_with_nans(a: f64, b: f64) -> f64 {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => 0.0,
        (true, false) => b,
        (false, true) => a,
        (false, false) => 0.5 * (a + b),
    }
}

/// DMS ↔ detector orientation of the full frame, from FASTAXIS/SLOWAXIS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Orientation {
    fast: i32,
    slow: i32,
}

fn rev(neg: bool, i: usize) -> usize {
    if neg { FULL - 1 - i } else { i }
}

impl Orientation {
    /// Full-frame DMS `(y, x)` of detector `(row, col)`.
    fn to_dms(self, r: usize, c: usize) -> (usize, usize) {
        if self.fast.abs() == 1 {
            (rev(self.slow < 0, r), rev(self.fast < 0, c))
        } else {
            (rev(self.fast < 0, c), rev(self.slow < 0, r))
        }
    }

    /// Detector `(row, col)` of full-frame DMS `(y, x)`.
    fn to_detector(self, y: usize, x: usize) -> (usize, usize) {
        if self.fast.abs() == 1 {
            (rev(self.slow < 0, y), rev(self.fast < 0, x))
        } else {
            (rev(self.slow < 0, x), rev(self.fast < 0, y))
        }
    }
}

/// Which jwst path corrects the exposure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// `do_fullframe_corrections`: per amplifier, top/bottom then side.
    FourAmp,
    /// `do_subarray_corrections`: one (odd/even) mean of the flagged reference pixels.
    OneAmp,
}

/// The exposure's window in detector orientation: the rectangle `r0..r0+h` × `c0..c0+w` of the
/// full frame, and for each of its pixels (row-major) the index in the DMS frame.
struct Layout {
    r0: usize,
    c0: usize,
    h: usize,
    w: usize,
    map: Vec<usize>,
}

impl Layout {
    fn new(o: Orientation, ys: usize, xs: usize, ny: usize, nx: usize) -> Layout {
        let (ra, ca) = o.to_detector(ys, xs);
        let (rb, cb) = o.to_detector(ys + ny - 1, xs + nx - 1);
        let (r0, c0) = (ra.min(rb), ca.min(cb));
        let (h, w) = (ra.max(rb) - r0 + 1, ca.max(cb) - c0 + 1);
        let mut map = Vec::with_capacity(h * w);
        for rr in 0..h {
            for cc in 0..w {
                let (y, x) = o.to_dms(r0 + rr, c0 + cc);
                map.push((y - ys) * nx + (x - xs));
            }
        }
        Layout { r0, c0, h, w, map }
    }

    /// Window-relative rows and columns of the full-frame detector range `a..b` (rows or
    /// columns), clipped to the window.
    fn rows(&self, a: usize, b: usize) -> std::ops::Range<usize> {
        clip(a, b, self.r0, self.h)
    }
    fn cols(&self, a: usize, b: usize) -> std::ops::Range<usize> {
        clip(a, b, self.c0, self.w)
    }
}

fn clip(a: usize, b: usize, start: usize, len: usize) -> std::ops::Range<usize> {
    let lo = a.max(start).min(start + len) - start;
    let hi = b.min(start + len).max(start + lo) - start;
    lo..hi
}

/// Everything a frame's correction needs, shared by all frames.
struct Plan<'a> {
    layout: Layout,
    /// PIXELDQ in detector orientation over the window (row-major `h × w`).
    dq: Vec<u32>,
    mode: Mode,
    params: &'a RefpixParams,
    /// One-output path: window indices (detector orientation) of the usable reference pixels
    /// of even and of odd absolute detector columns.
    refs: [Vec<usize>; 2],
}

impl Plan<'_> {
    fn usable(&self, i: usize) -> bool {
        self.dq[i] & dq::DO_NOT_USE == 0
    }

    /// Absolute detector-column parity of window column `cc`.
    fn parity(&self, cc: usize) -> usize {
        (self.layout.c0 + cc) % 2
    }

    /// Corrects one frame, `buf` being it in detector orientation.
    fn correct(&self, buf: &mut [f32]) {
        match self.mode {
            Mode::FourAmp => {
                self.top_bottom(buf);
                if self.params.use_side_ref_pixels {
                    self.side(buf);
                }
            }
            Mode::OneAmp => self.one_amp(buf),
        }
    }

    /// Usable values of the reference section (full-frame detector rows `ra..rb`, columns
    /// `ca..cb`) with column parity `parity` (`None`: both).
    fn section(
        &self,
        buf: &[f32],
        (ra, rb): (usize, usize),
        (ca, cb): (usize, usize),
        parity: Option<usize>,
    ) -> Vec<f64> {
        let l = &self.layout;
        let mut v = Vec::new();
        for rr in l.rows(ra, rb) {
            for cc in l.cols(ca, cb) {
                let i = rr * l.w + cc;
                if parity.is_none_or(|p| self.parity(cc) == p)
                    && self.usable(i)
                    && buf[i].is_finite()
                {
                    v.push(f64::from(buf[i]));
                }
            }
        }
        v
    }

    fn top_bottom(&self, buf: &mut [f32]) {
        let l = &self.layout;
        let k = self.params.sigma_clip;
        let bottom = (0, REF_W);
        let top = (FULL - REF_W, FULL);
        for amp in 0..FULL / AMP_W {
            let cols = (amp * AMP_W, (amp + 1) * AMP_W);
            let wcols = l.cols(cols.0, cols.1);
            if wcols.is_empty() {
                continue;
            }
            let value = |parity| {
                let t = sigma_clipped_mean(&self.section(buf, top, cols, parity), k);
                let b = sigma_clipped_mean(&self.section(buf, bottom, cols, parity), k);
                average_with_none(t, b)
            };
            let signal: [f64; 2] = if self.params.odd_even_columns {
                match (value(Some(0)), value(Some(1))) {
                    (Some(e), Some(o)) => [e, o],
                    _ => continue,
                }
            } else {
                match value(None) {
                    Some(m) => [m, m],
                    None => continue,
                }
            };
            for row in buf.chunks_exact_mut(l.w) {
                for cc in wcols.clone() {
                    let s = signal[self.parity(cc)];
                    row[cc] = (f64::from(row[cc]) - s) as f32;
                }
            }
        }
    }

    /// The running median of the usable pixels of the side reference columns `ca..cb`, for
    /// every window row; NaN where the window holds none.
    fn side_signal(&self, buf: &[f32], ca: usize, cb: usize) -> Vec<f64> {
        let l = &self.layout;
        let cols = l.cols(ca, cb);
        let per_row: Vec<Vec<f64>> = (0..l.h)
            .map(|rr| {
                cols.clone()
                    .map(|cc| rr * l.w + cc)
                    .filter(|&i| self.usable(i) && buf[i].is_finite())
                    .map(|i| f64::from(buf[i]))
                    .collect()
            })
            .collect();
        let mut len = self.params.side_smoothing_length;
        if len % 2 == 0 {
            len += 1;
        }
        let half = (len / 2) as isize;
        let mirror = |i: isize| -> usize {
            let n = FULL as isize;
            let m = if i < 0 {
                -i
            } else if i >= n {
                2 * (n - 1) - i
            } else {
                i
            };
            m.clamp(0, n - 1) as usize
        };
        let mut window = Vec::new();
        (0..l.h)
            .map(|rr| {
                window.clear();
                let r = (l.r0 + rr) as isize;
                for k in -half..=half {
                    let m = mirror(r + k);
                    if (l.r0..l.r0 + l.h).contains(&m) {
                        window.extend_from_slice(&per_row[m - l.r0]);
                    }
                }
                median(&mut window)
            })
            .collect()
    }

    fn side(&self, buf: &mut [f32]) {
        let l = &self.layout;
        let left = self.side_signal(buf, 0, REF_W);
        let right = self.side_signal(buf, FULL - REF_W, FULL);
        let g = self.params.side_gain;
        for (rr, row) in buf.chunks_exact_mut(l.w).enumerate() {
            let s = g * combine_with_nans(left[rr], right[rr]);
            for v in row.iter_mut() {
                *v = (f64::from(*v) - s) as f32;
            }
        }
    }

    fn one_amp(&self, buf: &mut [f32]) {
        let k = self.params.sigma_clip;
        let vals = |idx: &[usize]| -> Vec<f64> {
            idx.iter()
                .map(|&i| buf[i])
                .filter(|v| v.is_finite())
                .map(f64::from)
                .collect()
        };
        let signal: [Option<f64>; 2] = if self.params.odd_even_columns {
            [
                sigma_clipped_mean(&vals(&self.refs[0]), k),
                sigma_clipped_mean(&vals(&self.refs[1]), k),
            ]
        } else {
            let mut all = vals(&self.refs[0]);
            all.extend(vals(&self.refs[1]));
            let m = sigma_clipped_mean(&all, k);
            [m, m]
        };
        let w = self.layout.w;
        for row in buf.chunks_exact_mut(w) {
            for (cc, v) in row.iter_mut().enumerate() {
                if let Some(s) = signal[self.parity(cc)] {
                    *v = (f64::from(*v) - s) as f32;
                }
            }
        }
    }
}

fn unsupported(message: impl Into<String>) -> StepError {
    StepError::Unsupported {
        step: "refpix",
        message: message.into(),
    }
}

/// Runs refpix on `ramp` (a NIR ramp after dq_init, normally after saturation and superbias).
pub fn refpix(ramp: &mut Ramp, params: &RefpixParams) -> Result<(), StepError> {
    let h = &ramp.header;
    let is_irs2 = h
        .get_str("READPATT")
        .is_some_and(|r| r.to_ascii_uppercase().contains("IRS2"))
        || ramp.nx == 3200
        || ramp.ny == 3200;
    if is_irs2 {
        return Err(unsupported(
            "NIRSpec IRS2 readouts (interleaved reference pixels, corrected with a REFPIX \
             reference file in Fourier space) are not supported",
        ));
    }
    let det = h.get_str("DETECTOR").and_then(detector_info);
    let miri = det
        .as_ref()
        .is_some_and(|d| d.instrument == Instrument::Miri)
        || h.get_str("INSTRUME")
            .is_some_and(|i| Instrument::from_header(i) == Some(Instrument::Miri));
    if miri {
        return Err(unsupported(
            "MIRI's reference-pixel correction (reference columns per amplifier, first-group \
             subtraction, odd/even rows) is a different algorithm and is not supported",
        ));
    }
    let axis = |key: &str, table: Option<i32>| -> Result<i32, StepError> {
        match h.get_i64(key) {
            Some(v) => Ok(v as i32),
            None => table.ok_or_else(|| {
                unsupported(format!(
                    "the header has no {key} and DETECTOR does not name a known NIR detector"
                ))
            }),
        }
    };
    let o = Orientation {
        fast: axis("FASTAXIS", det.as_ref().map(|d| d.fastaxis))?,
        slow: axis("SLOWAXIS", det.as_ref().map(|d| d.slowaxis))?,
    };
    let valid = matches!((o.fast.abs(), o.slow.abs()), (1, 2) | (2, 1));
    if !valid {
        return Err(unsupported(format!(
            "FASTAXIS = {} and SLOWAXIS = {} do not describe a detector orientation",
            o.fast, o.slow
        )));
    }
    let n = ramp.frame_len();
    if ramp.pixeldq.len() != n || ramp.sci.len() != ramp.nints * ramp.ngroups * n {
        return Err(unsupported(format!(
            "the ramp's arrays do not match its shape {}x{}x{}x{}",
            ramp.nints, ramp.ngroups, ramp.ny, ramp.nx
        )));
    }
    let win = Target::of(ramp)?.window;
    let fits = win.xstart - 1 + win.nx <= FULL && win.ystart - 1 + win.ny <= FULL;
    if !fits || n == 0 {
        // jwst: SUBARRAY_DOESNTFIT.
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(());
    }
    let (ny, nx) = (ramp.ny, ramp.nx);
    let is_subarray = (ny, nx) != (FULL, FULL);
    let mode = if !is_subarray || h.get_i64("NOUTPUTS") == Some(4) {
        Mode::FourAmp
    } else {
        Mode::OneAmp
    };
    // The working PIXELDQ (DMS), with jwst's reference columns of the edgeless subarrays.
    let mut pdq = ramp.pixeldq.clone();
    let edgeless = is_subarray
        && h.get_str("SUBARRAY").is_some_and(|s| {
            NRS_EDGELESS_SUBARRAYS.contains(&s.trim().to_ascii_uppercase().as_str())
        });
    if edgeless {
        for row in pdq.chunks_exact_mut(nx) {
            for x in (0..REF_W.min(nx)).chain(nx.saturating_sub(REF_W)..nx) {
                row[x] |= dq::REFERENCE_PIXEL;
            }
        }
    }
    let layout = Layout::new(o, win.ystart - 1, win.xstart - 1, ny, nx);
    let dq_det: Vec<u32> = layout.map.iter().map(|&i| pdq[i]).collect();
    let mut refs = [Vec::new(), Vec::new()];
    if mode == Mode::OneAmp {
        let both = dq::REFERENCE_PIXEL | dq::DO_NOT_USE;
        for (i, &d) in dq_det.iter().enumerate() {
            if d & both == dq::REFERENCE_PIXEL {
                refs[(layout.c0 + i % layout.w) % 2].push(i);
            }
        }
    }
    let no_refs = mode == Mode::OneAmp && refs.iter().all(Vec::is_empty);
    if !no_refs {
        let plan = Plan {
            layout,
            dq: dq_det,
            mode,
            params,
            refs,
        };
        ramp.sci.par_chunks_exact_mut(n).for_each(|frame| {
            let mut buf: Vec<f32> = plan.layout.map.iter().map(|&i| frame[i]).collect();
            plan.correct(&mut buf);
            for (&i, &v) in plan.layout.map.iter().zip(&buf) {
                frame[i] = v;
            }
        });
    }
    ramp.set_step_complete(STEP_KEYWORD);
    Ok(())
}
