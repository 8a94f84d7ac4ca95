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
        if len.is_multiple_of(2) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::rng::stream;
    use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};
    use mkrefs_support::geometry::{
        Flip, Subarray, detector_info, flip_image, reference_pixel_mask,
    };
    use mkrefs_support::header::{Header, HeaderValue};

    const N: usize = FULL;

    /// A NIR ramp header: detector, window (1-based SUBSTRT1/2, SUBSIZE1/2, SUBARRAY name),
    /// NOUTPUTS.
    fn header(det: &str, sub: (&str, usize, usize, usize, usize), noutputs: i64) -> Header {
        let d = detector_info(det).unwrap();
        let mut h = Header::new();
        h.set("INSTRUME", d.instrument.name());
        h.set("DETECTOR", det);
        h.set("READPATT", "RAPID");
        h.set("SUBARRAY", sub.0);
        h.set("SUBSTRT1", sub.1 as i64);
        h.set("SUBSTRT2", sub.2 as i64);
        h.set("SUBSIZE1", sub.3 as i64);
        h.set("SUBSIZE2", sub.4 as i64);
        h.set("FASTAXIS", HeaderValue::Int(d.fastaxis.into()));
        h.set("SLOWAXIS", HeaderValue::Int(d.slowaxis.into()));
        h.set("NOUTPUTS", noutputs);
        h
    }

    /// DMS → detector (and back: each is its own inverse) for the detectors the tests use,
    /// written independently of the step: NIRCam flips (support crate), and NIS/NRS2, whose
    /// detector frame is the DMS frame transposed and rotated by 180° (jwst's NRS2 transform
    /// `swapaxes(d)[::-1, ::-1]`).
    fn to_other_frame(det: &str, img: &[f32]) -> Vec<f32> {
        match det {
            "NIS" | "NRS2" => {
                let mut out = vec![0.0; N * N];
                for y in 0..N {
                    for x in 0..N {
                        out[(N - 1 - x) * N + (N - 1 - y)] = img[y * N + x];
                    }
                }
                out
            }
            _ => flip_image(dms_flip(det), img, N, N),
        }
    }

    fn dms_flip(det: &str) -> Flip {
        mkrefs_support::geometry::dms_to_detector_flip(det)
    }

    fn is_ref(r: usize, c: usize) -> bool {
        !(REF_W..N - REF_W).contains(&r) || !(REF_W..N - REF_W).contains(&c)
    }

    /// A full-frame group in detector orientation: science signal `truth` (0 on reference
    /// pixels), per-amplifier odd/even offsets, a smooth row drift common to all amplifiers
    /// (1/f-like: a random walk plus a slow wave) and white noise of 1 DN on every pixel.
    fn full_frame_group(seed: u64, g: usize) -> (Vec<f32>, Vec<f32>) {
        let mut rng = stream(seed, &[g as u64]);
        let mut drift = Vec::with_capacity(N);
        let mut walk = 0.0;
        for r in 0..N {
            walk += 0.05 * rng.normal();
            drift.push(walk + 4.0 * (r as f64 / 300.0 + g as f64).sin());
        }
        let mut truth = vec![0f32; N * N];
        let mut data = vec![0f32; N * N];
        for (r, &dr) in drift.iter().enumerate() {
            for c in 0..N {
                let i = r * N + c;
                if !is_ref(r, c) {
                    truth[i] = 30.0 + 0.01 * c as f32 + 0.02 * r as f32;
                }
                let amp = c / AMP_W;
                let off = 100.0 * (amp + 1) as f64 + 9.0 * (c % 2) as f64 + 17.0 * g as f64;
                data[i] = (f64::from(truth[i]) + off + dr + rng.normal()) as f32;
            }
        }
        (data, truth)
    }

    struct FullFrameResult {
        /// Per detector row, the mean residual (corrected − truth) over science columns.
        row_rms: f64,
        /// Largest |mean residual| of one amplifier and column parity (science pixels).
        worst_amp: f64,
        /// |mean| of all reference pixels after correction.
        ref_mean: f64,
    }

    fn run_full_frame(det: &str, ngroups: usize, params: &RefpixParams) -> FullFrameResult {
        let h = header(det, ("FULL", 1, 1, N, N), 4);
        let mut ramp = Ramp::zeros(1, ngroups, N, N, h);
        let mut truths = Vec::new();
        for g in 0..ngroups {
            let (data, truth) = full_frame_group(7, g);
            let s0 = ramp.frame_start(0, g);
            ramp.sci[s0..s0 + N * N].copy_from_slice(&to_other_frame(det, &data));
            truths.push(truth);
        }
        refpix(&mut ramp, params).unwrap();
        assert_eq!(ramp.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        let mut res = FullFrameResult {
            row_rms: 0.0,
            worst_amp: 0.0,
            ref_mean: 0.0,
        };
        let (mut ref_sum, mut ref_n, mut rows_sq, mut rows_n) = (0.0, 0usize, 0.0, 0usize);
        for (g, truth) in truths.iter().enumerate() {
            let s0 = ramp.frame_start(0, g);
            let out = to_other_frame(det, &ramp.sci[s0..s0 + N * N]);
            let mut amp_sum = [[0.0f64; 2]; 4];
            let mut amp_n = [[0usize; 2]; 4];
            for r in 0..N {
                let (mut rs, mut rn) = (0.0, 0usize);
                for c in 0..N {
                    let i = r * N + c;
                    let d = f64::from(out[i] - truth[i]);
                    if is_ref(r, c) {
                        ref_sum += d;
                        ref_n += 1;
                    } else {
                        rs += d;
                        rn += 1;
                        amp_sum[c / AMP_W][c % 2] += d;
                        amp_n[c / AMP_W][c % 2] += 1;
                    }
                }
                if rn > 0 {
                    rows_sq += (rs / rn as f64).powi(2);
                    rows_n += 1;
                }
            }
            for a in 0..4 {
                for p in 0..2 {
                    let m = (amp_sum[a][p] / amp_n[a][p] as f64).abs();
                    res.worst_amp = res.worst_amp.max(m);
                }
            }
        }
        res.row_rms = (rows_sq / rows_n as f64).sqrt();
        res.ref_mean = (ref_sum / ref_n as f64).abs();
        res
    }

    #[test]
    fn full_frame_amplifier_offsets_and_row_drift_are_removed() {
        // NRCA1: detector = DMS flipped in x, so amplifier A is the DMS right-hand side.
        let r = run_full_frame("NRCA1", 2, &RefpixParams::default());
        // Offsets of 100-450 DN and a drift of ±4 DN are gone: what is left per amplifier and
        // parity is the error of the reference means (2048 values of 1 DN noise per edge,
        // parity and amplifier: ~0.02 DN), per row that of a median of 88 side values (~0.13).
        assert!(r.worst_amp < 0.1, "amplifier residual {}", r.worst_amp);
        assert!(r.row_rms < 0.25, "row residual rms {}", r.row_rms);
        assert!(r.ref_mean < 0.05, "reference pixels mean {}", r.ref_mean);
    }

    #[test]
    fn full_frame_transposed_detector() {
        // NIS (FASTAXIS = -2, SLOWAXIS = -1): amplifiers are DMS rows; a wrong transform
        // would mix amplifiers and leave offsets of hundreds of DN.
        let r = run_full_frame("NIS", 1, &RefpixParams::default());
        assert!(r.worst_amp < 0.1, "amplifier residual {}", r.worst_amp);
        assert!(r.row_rms < 0.25, "row residual rms {}", r.row_rms);
        assert!(r.ref_mean < 0.05, "reference pixels mean {}", r.ref_mean);
    }

    #[test]
    fn full_frame_without_side_pixels_keeps_the_row_drift() {
        let params = RefpixParams {
            use_side_ref_pixels: false,
            ..Default::default()
        };
        let r = run_full_frame("NRCB1", 1, &params);
        // The amplifier offsets are still removed on average (the drift's mean over the
        // rows stays, minus its mean over the top and bottom rows), but the row drift is not.
        assert!(r.row_rms > 1.0, "row residual rms {}", r.row_rms);
    }

    /// A simulated uncal ramp of a 64×64 NRCA1 window at the full-frame corner, with PIXELDQ
    /// REFERENCE_PIXEL on its reference pixels as dq_init sets it from a MASK, and the
    /// simulator's true bias subtracted (refpix runs after superbias).
    fn corner_ramp(ngroups: usize) -> Ramp {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SimConfig::default()
            .with_square_subarray(64)
            .with_ramp(1, ngroups)
            .without_defects()
            .without_cosmic_rays();
        let truth = Truth::generate(&cfg).unwrap();
        let p = dir.path().join("c_uncal.fits");
        write_uncal(&p, &cfg, &truth, Kind::Dark, 0).unwrap();
        let mut ramp = Ramp::read(&p).unwrap();
        let n = ramp.frame_len();
        for frame in ramp.sci.chunks_exact_mut(n) {
            for (v, b) in frame.iter_mut().zip(&truth.bias) {
                *v -= b;
            }
        }
        let det = detector_info("NRCA1").unwrap();
        let sub = Subarray {
            name: "SUB64".into(),
            xstart: 1,
            ystart: 1,
            nx: 64,
            ny: 64,
        };
        for (p, &r) in ramp
            .pixeldq
            .iter_mut()
            .zip(&reference_pixel_mask(&det, &sub))
        {
            if r {
                *p |= dq::REFERENCE_PIXEL;
            }
        }
        ramp
    }

    #[test]
    fn one_output_corner_subarray_removes_per_group_odd_even_offsets() {
        let clean = corner_ramp(3);
        assert_eq!(clean.header.get_i64("NOUTPUTS"), Some(1));
        let (ny, nx) = (clean.ny, clean.nx);
        let off =
            |g: usize, x: usize| 40.0 * g as f32 + if x.is_multiple_of(2) { 3.0 } else { -5.0 };
        let mut inj = clean.clone();
        for g in 0..inj.ngroups {
            for y in 0..ny {
                for x in 0..nx {
                    let i = inj.index(0, g, y, x);
                    inj.sci[i] += off(g, x);
                }
            }
        }
        let mut a = clean.clone();
        let mut b = inj.clone();
        refpix(&mut a, &RefpixParams::default()).unwrap();
        refpix(&mut b, &RefpixParams::default()).unwrap();
        assert_eq!(b.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        // The injected offsets are removed exactly (clipping does not depend on a shift).
        let worst = a
            .sci
            .iter()
            .zip(&b.sci)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 0.02, "{worst}");
        // What was subtracted from each column parity is the mean of that parity's reference
        // pixels, to within their noise; reference pixels end near zero.
        for g in 0..b.ngroups {
            for parity in 0..2 {
                let (mut refs, mut sub) = (Vec::new(), None);
                for y in 0..ny {
                    for x in (parity..nx).step_by(2) {
                        let i = inj.index(0, g, y, x);
                        if inj.pixeldq[y * nx + x] & dq::REFERENCE_PIXEL != 0 {
                            refs.push(f64::from(inj.sci[i]));
                        } else {
                            sub.get_or_insert(f64::from(inj.sci[i] - b.sci[i]));
                        }
                    }
                }
                let n = refs.len() as f64;
                let mean = refs.iter().sum::<f64>() / n;
                let sd = (refs.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
                let sub = sub.unwrap();
                assert!(
                    (sub - mean).abs() < 4.0 * sd / n.sqrt(),
                    "group {g} parity {parity}: {sub} vs {mean} ± {sd}"
                );
                let after: f64 = (0..ny)
                    .flat_map(|y| (parity..nx).step_by(2).map(move |x| (y, x)))
                    .filter(|&(y, x)| b.pixeldq[y * nx + x] & dq::REFERENCE_PIXEL != 0)
                    .map(|(y, x)| f64::from(b.sci[b.index(0, g, y, x)]))
                    .sum::<f64>()
                    / n;
                assert!(after.abs() < 4.0 * sd / n.sqrt(), "{after}");
            }
        }
    }

    #[test]
    fn four_output_corner_subarray_uses_bottom_and_side_reference_pixels() {
        let mut clean = corner_ramp(2);
        clean.header.set("NOUTPUTS", 4i64);
        let (ny, nx) = (clean.ny, clean.nx);
        // NRCA1: detector row = DMS y, detector column = 2047 - x (amplifier D). A per-group,
        // per-parity offset plus a row drift along detector rows.
        let drift = |g: usize, y: usize| 3.0 * ((y as f32) / 25.0 + g as f32).sin();
        let mut inj = clean.clone();
        for g in 0..inj.ngroups {
            for y in 0..ny {
                for x in 0..nx {
                    let c = N - 1 - x;
                    let off = 25.0 + 10.0 * g as f32 + 4.0 * (c % 2) as f32;
                    let i = inj.index(0, g, y, x);
                    inj.sci[i] += off + drift(g, y);
                }
            }
        }
        let run = |r: &Ramp, p: &RefpixParams| {
            let mut r = r.clone();
            refpix(&mut r, p).unwrap();
            r
        };
        let p = RefpixParams::default();
        let (a, b) = (run(&clean, &p), run(&inj, &p));
        // Row by row, the drift is removed to within the noise of the 11-row running median of
        // the 4 side columns; in the last 5 rows of the window the median's window is cut
        // short (rows outside the subarray hold nothing), which biases it by up to the drift's
        // change over ~3 rows (0.12 DN/row here).
        let row_resid = |a: &Ramp, b: &Ramp| -> Vec<f64> {
            (0..a.ngroups)
                .flat_map(|g| (0..ny).map(move |y| (g, y)))
                .map(|(g, y)| {
                    (0..nx)
                        .map(|x| f64::from(b.sci[b.index(0, g, y, x)] - a.sci[a.index(0, g, y, x)]))
                        .sum::<f64>()
                        / nx as f64
                })
                .collect()
        };
        let res = row_resid(&a, &b);
        let worst = res.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let mean = res.iter().sum::<f64>() / res.len() as f64;
        assert!(worst < 0.6, "worst row {worst}");
        assert!(mean.abs() < 0.15, "mean {mean}");
        // Without the side pixels the drift stays.
        let p2 = RefpixParams {
            use_side_ref_pixels: false,
            ..p
        };
        let res2 = row_resid(&run(&clean, &p2), &run(&inj, &p2));
        let rms2 = (res2.iter().map(|v| v * v).sum::<f64>() / res2.len() as f64).sqrt();
        assert!(rms2 > 1.0, "{rms2}");
        // Reference pixels of the corrected exposure (before: 35-40 DN plus the drift) end
        // near zero: within the error of the side signal, a median of 44 pixels of ~5 DN
        // noise per row (~1 DN), averaged over ~6 independent 11-row windows (~0.4 DN).
        let refs: Vec<f64> = (0..ny * nx)
            .filter(|&i| b.pixeldq[i] & dq::REFERENCE_PIXEL != 0)
            .map(|i| f64::from(b.sci[b.frame_start(0, 1) + i]))
            .collect();
        let m = refs.iter().sum::<f64>() / refs.len() as f64;
        assert!(m.abs() < 1.5, "{m}");
    }

    fn noisy_ramp(h: Header, ny: usize, nx: usize, seed: u64) -> Ramp {
        let mut r = Ramp::zeros(1, 2, ny, nx, h);
        let mut rng = stream(seed, &[1]);
        for v in r.sci.iter_mut() {
            *v = (1000.0 + 5.0 * rng.normal()) as f32;
        }
        r
    }

    #[test]
    fn subarray_in_the_middle_is_left_unchanged() {
        let h = header("NRCA1", ("SUB32X", 1000, 1000, 32, 32), 1);
        let before = noisy_ramp(h, 32, 32, 3);
        let mut r = before.clone();
        refpix(&mut r, &RefpixParams::default()).unwrap();
        assert_eq!(r.sci, before.sci);
        // jwst's correct_model returns REFPIX_OK: the step is recorded as run.
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
    }

    #[test]
    fn nirspec_edgeless_subarray_uses_its_edge_columns_in_detector_parity() {
        // NRS1: detector = DMS transposed, so detector column parity is DMS *row* parity.
        let (ny, nx) = (32, 32);
        let h = header("NRS1", ("SUB32", 1000, 1000, nx, ny), 1);
        let mut r = Ramp::zeros(1, 2, ny, nx, h);
        for g in 0..2 {
            for y in 0..ny {
                for x in 0..nx {
                    let i = r.index(0, g, y, x);
                    r.sci[i] = 100.0 * (g + 1) as f32 + if y % 2 == 0 { 7.0 } else { -7.0 };
                }
            }
        }
        refpix(&mut r, &RefpixParams::default()).unwrap();
        assert!(r.sci.iter().all(|v| v.abs() < 1e-4), "{:?}", &r.sci[..8]);
        // The working flags are not written back.
        assert!(r.pixeldq.iter().all(|&d| d == 0));
    }

    #[test]
    fn do_not_use_reference_pixels_are_left_out() {
        // A full-width stripe at the bottom of NRCA1 read with 4 outputs: bottom and side
        // reference pixels, no top ones. Every pixel holds its amplifier's odd/even offset.
        let (ny, nx) = (64, N);
        let h = header("NRCA1", ("SUBGRISM64", 1, 1, nx, ny), 4);
        let mut r = Ramp::zeros(1, 1, ny, nx, h);
        let off = |c: usize| 50.0 * (c / AMP_W + 1) as f32 + 3.0 * (c % 2) as f32;
        for y in 0..ny {
            for x in 0..nx {
                r.sci[y * nx + x] = off(N - 1 - x);
            }
        }
        // Amplifier B (detector columns 512..1024): rows 0 and 1 of its bottom reference
        // pixels are bad (+50 DN) and flagged DO_NOT_USE. Amplifier C: all its bottom
        // reference pixels are flagged, so it has no reference value at all.
        for y in 0..REF_W {
            for c in AMP_W..3 * AMP_W {
                let x = N - 1 - c;
                let amp_b = c < 2 * AMP_W;
                if amp_b && y < 2 {
                    r.sci[y * nx + x] += 50.0;
                }
                if !amp_b || y < 2 {
                    r.pixeldq[y * nx + x] |= dq::DO_NOT_USE;
                }
            }
        }
        let unflagged = {
            let mut u = r.clone();
            u.pixeldq.fill(0);
            refpix(&mut u, &RefpixParams::default()).unwrap();
            u
        };
        refpix(&mut r, &RefpixParams::default()).unwrap();
        for y in REF_W..ny {
            for c in 0..N {
                let v = r.sci[y * nx + (N - 1 - c)];
                let amp = c / AMP_W;
                let expect = if amp == 2 { off(c) } else { 0.0 };
                assert!((v - expect).abs() < 1e-3, "y {y} c {c}: {v} vs {expect}");
            }
        }
        // Counted, the bad pixels would have pulled amplifier B's mean up by 25 DN (half of
        // the pixels +50: not clipped at 3σ).
        let v = unflagged.sci[10 * nx + (N - 1 - 600)];
        assert!((v + 25.0).abs() < 1e-3, "{v}");
    }

    #[test]
    fn miri_irs2_and_windows_outside_the_frame() {
        let mut h = header("MIRIMAGE", ("FULL", 1, 1, 8, 8), 4);
        let mut r = Ramp::zeros(1, 1, 8, 8, h.clone());
        let e = refpix(&mut r, &RefpixParams::default()).unwrap_err();
        assert!(matches!(e, StepError::Unsupported { .. }) && e.to_string().contains("MIRI"));
        h = header("NRS1", ("FULL", 1, 1, 8, 8), 4);
        h.set("READPATT", "NRSIRS2RAPID");
        let mut r = Ramp::zeros(1, 1, 8, 8, h);
        let e = refpix(&mut r, &RefpixParams::default()).unwrap_err();
        assert!(e.to_string().contains("IRS2"), "{e}");
        let h = header("NRCA1", ("X", 2045, 1, 8, 8), 1);
        let mut r = noisy_ramp(h, 8, 8, 4);
        let before = r.sci.clone();
        refpix(&mut r, &RefpixParams::default()).unwrap();
        assert_eq!(r.sci, before);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
    }

    #[test]
    fn sigma_clipping_follows_scipy() {
        // 20 zeros and one 100: mean 4.76, std 21.3, so 100 is beyond 3σ and is dropped;
        // then the spread is 0 and nothing more goes.
        let mut v = vec![0.0; 20];
        v.push(100.0);
        assert_eq!(sigma_clipped_mean(&v, 3.0), Some(0.0));
        // At 5σ (limit 111) nothing is clipped.
        let m = sigma_clipped_mean(&v, 5.0).unwrap();
        assert!((m - 100.0 / 21.0).abs() < 1e-12);
        assert_eq!(sigma_clipped_mean(&[], 3.0), None);
        assert_eq!(sigma_clipped_mean(&[2.5, 2.5], 3.0), Some(2.5));
        assert_eq!(average_with_none(Some(1.0), None), Some(1.0));
        assert_eq!(average_with_none(Some(1.0), Some(3.0)), Some(2.0));
        assert_eq!(combine_with_nans(f64::NAN, f64::NAN), 0.0);
        assert_eq!(combine_with_nans(f64::NAN, 4.0), 4.0);
    }

    #[test]
    fn orientation_round_trips_and_matches_the_documented_flips() {
        for det in ["NRCA1", "NRCB1", "NRS1", "NRS2", "NIS", "GUIDER2"] {
            let d = detector_info(det).unwrap();
            let o = Orientation {
                fast: d.fastaxis,
                slow: d.slowaxis,
            };
            for &(y, x) in &[(0, 0), (3, 2040), (1000, 7), (2047, 2047)] {
                let (r, c) = o.to_detector(y, x);
                assert_eq!(o.to_dms(r, c), (y, x), "{det}");
            }
        }
        let o = |det: &str| {
            let d = detector_info(det).unwrap();
            Orientation {
                fast: d.fastaxis,
                slow: d.slowaxis,
            }
        };
        assert_eq!(o("NRCA1").to_detector(5, 10), (5, N - 1 - 10));
        assert_eq!(o("NRCB1").to_detector(5, 10), (N - 1 - 5, 10));
        assert_eq!(o("NRS1").to_detector(5, 10), (10, 5));
        assert_eq!(o("NRS2").to_detector(5, 10), (N - 1 - 10, N - 1 - 5));
    }
}
