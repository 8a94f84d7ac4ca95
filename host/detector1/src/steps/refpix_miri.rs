//! The refpix step for MIRI (jwst `RefPixStep`, `reference_pixels.MIRIDataset`), following the
//! jwst documentation's "MIR Detector Data" algorithm.
//!
//! A MIRI full frame is 1024 rows × 1032 columns read by 4 amplifiers whose columns interleave:
//! column `c` belongs to amplifier `c mod 4`. The 4 leftmost and 4 rightmost columns are
//! reference pixels, one column per amplifier on each side (amplifier `a`: columns `a` and
//! `1028 + a`). MIRI data are in detector orientation already, so nothing is flipped.
//!
//! Per integration:
//!
//! 1. The first group is subtracted from every group (the reference pixels' bias level is
//!    removed, leaving the drifts).
//! 2. For every later group, for each amplifier and side, the sigma-clipped mean (3σ low and
//!    high, `scipy.stats.sigmaclip`, see [`sigma_clipped_mean`]) of the reference pixels whose
//!    PIXELDQ lacks DO_NOT_USE, separately for even and odd rows with `odd_even_rows` (jwst
//!    default true); left and right are averaged, and the result is subtracted from every
//!    pixel of that amplifier (and row parity), reference columns included.
//! 3. The first group is added back.
//!
//! The first group itself is therefore unchanged. S_REFPIX = 'COMPLETE'.
//!
//! - **Subarrays** (fewer than 1032 columns or 1024 rows) are not corrected and the step is
//!   recorded SKIPPED, as jwst does (the documentation: "The refpix correction is skipped for
//!   MIRI subarray data").
//! - When an amplifier, side or row parity has no reference pixel without DO_NOT_USE, jwst
//!   stops correcting (its flag is never reset, and PIXELDQ is the same in every group, so no
//!   group is corrected) yet records COMPLETE; this engine does the same: the data keep only
//!   the rounding of subtracting and adding the first group, which it reproduces.
//!
//! Differences, at the rounding level or outside valid data: the means are computed in f64
//! and rounded to f32 before they are subtracted (numpy sums the float32 values in float32);
//! non-finite reference values are left out of the means (in jwst one NaN makes the mean NaN),
//! and an amplifier/parity whose usable values are all non-finite in a group is left
//! uncorrected in that group. The step has no reference file, so no R_* keyword.

use mkrefs_support::dq;
use rayon::prelude::*;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::steps::refpix::{STEP_KEYWORD, sigma_clipped_mean};

/// Rows of the MIRI full frame.
pub const MIRI_ROWS: usize = 1024;
/// Columns of the MIRI full frame (1024 light-sensitive plus 4 reference columns each side).
pub const MIRI_COLS: usize = 1032;
/// Amplifiers; column `c` is read by amplifier `c % AMPS`.
const AMPS: usize = 4;
/// First right-side reference column.
const RIGHT_REF: usize = MIRI_COLS - AMPS;

/// The MIRI refpix parameters, with the jwst defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MiriRefpixParams {
    /// Separate reference values for even and odd rows (`odd_even_rows`, default true).
    pub odd_even_rows: bool,
    /// Sigma-clipping limit, low and high (`siglimit`, default 3.0).
    pub sigma_clip: f64,
}

impl Default for MiriRefpixParams {
    fn default() -> Self {
        MiriRefpixParams {
            odd_even_rows: true,
            sigma_clip: 3.0,
        }
    }
}

/// Whether the step corrected the data or skipped itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MiriRefpix {
    Complete,
    /// A subarray: unchanged, S_REFPIX = 'SKIPPED'.
    SkippedSubarray,
}

/// The row classes reference values are computed for: both parities, or all rows.
fn row_classes(odd_even_rows: bool) -> Vec<(usize, usize)> {
    if odd_even_rows {
        vec![(0, 2), (1, 2)]
    } else {
        vec![(0, 1)]
    }
}

/// The reference value of amplifier `amp` for rows `first, first + step, ...` of `work` (a
/// group minus the first group): the mean of the left and the right reference column's
/// clipped means; `None` when either side has no usable value.
fn reference_value(
    work: &[f32],
    usable: &[bool],
    amp: usize,
    (first, step): (usize, usize),
    k: f64,
) -> Option<f32> {
    let side = |col: usize| {
        let v: Vec<f64> = (first..MIRI_ROWS)
            .step_by(step)
            .map(|y| y * MIRI_COLS + col)
            .filter(|&i| usable[i] && work[i].is_finite())
            .map(|i| f64::from(work[i]))
            .collect();
        sigma_clipped_mean(&v, k).filter(|m| m.is_finite())
    };
    let (l, r) = (side(amp)?, side(RIGHT_REF + amp)?);
    // jwst averages the two float32 means in float32.
    Some(0.5 * (l as f32 + r as f32))
}

/// Runs the MIRI refpix step on `ramp` (a MIRI ramp after dq_init; in the MIRI pipeline it
/// runs after dark_current).
pub fn refpix_miri(ramp: &mut Ramp, params: &MiriRefpixParams) -> Result<MiriRefpix, StepError> {
    let (ny, nx, ng) = (ramp.ny, ramp.nx, ramp.ngroups);
    let n = ramp.frame_len();
    if ramp.pixeldq.len() != n || ramp.sci.len() != ramp.nints * ng * n {
        return Err(StepError::Unsupported {
            step: "refpix",
            message: format!(
                "the ramp's arrays do not match its shape {}x{ng}x{ny}x{nx}",
                ramp.nints
            ),
        });
    }
    if nx < MIRI_COLS || ny < MIRI_ROWS {
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(MiriRefpix::SkippedSubarray);
    }
    if (ny, nx) != (MIRI_ROWS, MIRI_COLS) {
        return Err(StepError::Unsupported {
            step: "refpix",
            message: format!(
                "a MIRI frame of {ny} rows x {nx} columns is larger than the detector's full \
                 frame ({MIRI_ROWS} x {MIRI_COLS})"
            ),
        });
    }
    let usable: Vec<bool> = ramp
        .pixeldq
        .iter()
        .map(|&d| d & dq::DO_NOT_USE == 0)
        .collect();
    let classes = row_classes(params.odd_even_rows);
    // jwst gives up on every group when any amplifier, side or row class has no usable
    // reference pixel; PIXELDQ alone decides that.
    let all_have_refs = (0..AMPS).all(|amp| {
        classes.iter().all(|&(first, step)| {
            [amp, RIGHT_REF + amp].iter().all(|&col| {
                (first..MIRI_ROWS)
                    .step_by(step)
                    .any(|y| usable[y * MIRI_COLS + col])
            })
        })
    });
    let k = params.sigma_clip;
    ramp.sci.par_chunks_exact_mut(ng * n).for_each(|int| {
        let (first, rest) = int.split_at_mut(n);
        let first: &[f32] = first;
        rest.par_chunks_exact_mut(n).for_each(|frame| {
            // Step 1, in f32 as jwst stores the difference.
            for (v, &f) in frame.iter_mut().zip(first) {
                *v -= f;
            }
            if all_have_refs {
                // signal[amp][class]
                let signal: Vec<Vec<Option<f32>>> = (0..AMPS)
                    .map(|amp| {
                        classes
                            .iter()
                            .map(|&c| reference_value(frame, &usable, amp, c, k))
                            .collect()
                    })
                    .collect();
                for (y, row) in frame.chunks_exact_mut(MIRI_COLS).enumerate() {
                    let class = if params.odd_even_rows { y % 2 } else { 0 };
                    for (x, v) in row.iter_mut().enumerate() {
                        if let Some(s) = signal[x % AMPS][class] {
                            *v -= s;
                        }
                    }
                }
            }
            for (v, &f) in frame.iter_mut().zip(first) {
                *v += f;
            }
        });
    });
    ramp.set_step_complete(STEP_KEYWORD);
    Ok(MiriRefpix::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::rng::stream;
    use mkrefs_support::header::Header;

    /// A MIRI full-frame ramp: 1 integration of 3 groups; every pixel has a bias of
    /// 10000 + x; group g adds, per amplifier a and row parity p, the drift
    /// g·(3a + 1) + 0.5·p·g DN, and pixels off the reference columns collect 2·g DN of signal;
    /// plus small noise.
    fn drifting_ramp() -> (Ramp, Vec<f32>) {
        let mut h = Header::new();
        h.set("INSTRUME", "MIRI");
        h.set("DETECTOR", "MIRIMAGE");
        let ng = 3;
        let mut r = Ramp::zeros(1, ng, MIRI_ROWS, MIRI_COLS, h);
        let mut rng = stream(5, &[1]);
        let mut clean = vec![0f32; ng * MIRI_ROWS * MIRI_COLS];
        for g in 0..ng {
            for y in 0..MIRI_ROWS {
                for x in 0..MIRI_COLS {
                    let is_ref = !(AMPS..RIGHT_REF).contains(&x);
                    let signal = if is_ref { 0.0 } else { 2.0 * g as f64 };
                    let drift = g as f64 * (3.0 * (x % AMPS) as f64 + 1.0)
                        + 0.5 * (y % 2) as f64 * g as f64;
                    let base = 10_000.0 + x as f64 + signal + 0.01 * rng.normal();
                    let i = r.index(0, g, y, x);
                    r.sci[i] = (base + drift) as f32;
                    clean[i] = base as f32;
                }
            }
        }
        (r, clean)
    }

    #[test]
    fn amplifier_and_row_parity_drifts_are_removed() {
        let (mut r, clean) = drifting_ramp();
        let before = r.clone();
        let got = refpix_miri(&mut r, &MiriRefpixParams::default()).unwrap();
        assert_eq!(got, MiriRefpix::Complete);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        let n = r.frame_len();
        // Group 0 is untouched; later groups lose the drift (to the noise of the means).
        assert_eq!(r.sci[..n], before.sci[..n]);
        let worst = r.sci[n..]
            .iter()
            .zip(&clean[n..])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst < 0.01, "largest residual {worst} DN");
        // Without odd/even rows the parity drift (0.5·g DN on odd rows) remains as ∓0.25·g DN.
        let (mut r2, clean) = drifting_ramp();
        let params = MiriRefpixParams {
            odd_even_rows: false,
            ..MiriRefpixParams::default()
        };
        refpix_miri(&mut r2, &params).unwrap();
        let i_even = r2.index(0, 2, 10, 100);
        let i_odd = r2.index(0, 2, 11, 100);
        assert!(((r2.sci[i_even] - clean[i_even]) + 0.5).abs() < 0.02);
        assert!(((r2.sci[i_odd] - clean[i_odd]) - 0.5).abs() < 0.02);
    }

    #[test]
    fn do_not_use_reference_pixels_are_left_out() {
        let (mut r, clean) = drifting_ramp();
        // Amplifier 1's left reference column is bad in every other even row and carries
        // +80 DN there from group 1 on: counted (half the even-row values, too many to be
        // clipped), it would shift that amplifier's even rows by 20 DN.
        for y in (0..MIRI_ROWS).step_by(4) {
            r.pixeldq[y * MIRI_COLS + 1] = dq::DO_NOT_USE | dq::BAD_REF_PIXEL;
            for g in 1..3 {
                let i = r.index(0, g, y, 1);
                r.sci[i] += 80.0;
            }
        }
        refpix_miri(&mut r, &MiriRefpixParams::default()).unwrap();
        let i = r.index(0, 2, 20, 101);
        assert!(
            (r.sci[i] - clean[i]).abs() < 0.02,
            "{}",
            r.sci[i] - clean[i]
        );
    }

    #[test]
    fn no_usable_reference_pixels_leave_the_data_as_jwst_does() {
        let (mut r, _) = drifting_ramp();
        for y in 0..MIRI_ROWS {
            r.pixeldq[y * MIRI_COLS + RIGHT_REF + 3] = dq::DO_NOT_USE;
        }
        let before = r.clone();
        refpix_miri(&mut r, &MiriRefpixParams::default()).unwrap();
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        let n = r.frame_len();
        for (i, (&a, &b)) in r.sci.iter().zip(&before.sci).enumerate() {
            let f = before.sci[i % n];
            assert_eq!(a, (b - f) + f, "pixel {i}");
        }
    }

    #[test]
    fn subarrays_are_skipped() {
        let mut h = Header::new();
        h.set("DETECTOR", "MIRIMAGE");
        let mut r = Ramp::zeros(1, 3, 64, 72, h);
        r.sci.fill(5.0);
        assert_eq!(
            refpix_miri(&mut r, &MiriRefpixParams::default()).unwrap(),
            MiriRefpix::SkippedSubarray
        );
        assert!(r.sci.iter().all(|&v| v == 5.0));
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
    }
}
