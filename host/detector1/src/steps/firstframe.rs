//! The firstframe step (jwst `FirstFrameStep`, MIRI only), as jwst 3.0.0 does it.
//!
//! The first group of a MIRI integration carries the reset's transient, so it is excluded
//! from jump detection and ramp fitting by adding DO_NOT_USE to its GROUPDQ; SCI is not
//! changed.
//!
//! - Only when an integration has **more than 3 groups**: with 3 or fewer, dropping one would
//!   leave too few for the later steps, so the step records S_FRSTFR = 'SKIPPED' and changes
//!   nothing.
//! - Only for MIRI detectors (DETECTOR starting with `MIR`); any other detector is recorded
//!   SKIPPED, as jwst does.
//! - `bright_use_group1` (jwst 3.0.0 default **true**; earlier versions defaulted to false): a pixel
//!   whose third group (index 2) is SATURATED in an integration keeps its first group in that
//!   integration, because for such a bright pixel the first-frame effect is small against the
//!   signal and without group 1 no slope could be fitted; a pixel kept so in any integration
//!   gets FLUX_ESTIMATED in PIXELDQ.
//!
//! jwst 3.0.0 deprecates the step (its flagging moved into the rscd step) and its
//! `Detector1Pipeline` skips it unless asked; mkrefs runs it when `ssbsteps` names it, which is
//! how a reference-file generator asks for first groups to be left out without rscd.
//!
//! Sets S_FRSTFR to 'COMPLETE' or 'SKIPPED'. The step has no reference file.

use mkrefs_support::dq;

use crate::error::StepError;
use crate::ramp::Ramp;

pub const STEP_KEYWORD: &str = "S_FRSTFR";

/// The step's parameters, with the jwst 3.0.0 defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstFrameParams {
    /// Keep group 1 of pixels that saturate in group 3 (default true in jwst 3.0.0).
    pub bright_use_group1: bool,
}

impl Default for FirstFrameParams {
    fn default() -> Self {
        FirstFrameParams {
            bright_use_group1: true,
        }
    }
}

/// Whether the step ran or skipped itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameFlagging {
    Complete,
    /// Too few groups, or not a MIRI detector: nothing changed, S_* = 'SKIPPED'.
    Skipped,
}

/// Whether `ramp` comes from a MIRI detector, the test jwst's firstframe and lastframe steps
/// make (the first three letters of DETECTOR).
pub(crate) fn is_miri_detector(ramp: &Ramp) -> bool {
    ramp.header
        .get_str("DETECTOR")
        .is_some_and(|d| d.trim().to_ascii_uppercase().starts_with("MIR"))
}

/// Runs firstframe on `ramp`.
pub fn firstframe(ramp: &mut Ramp, params: &FirstFrameParams) -> Result<FrameFlagging, StepError> {
    let n = ramp.frame_len();
    if ramp.groupdq.len() != ramp.nints * ramp.ngroups * n || ramp.pixeldq.len() != n {
        return Err(StepError::Unsupported {
            step: "firstframe",
            message: format!(
                "the ramp's arrays do not match its shape {}x{}x{}x{}",
                ramp.nints, ramp.ngroups, ramp.ny, ramp.nx
            ),
        });
    }
    if !is_miri_detector(ramp) || ramp.ngroups <= 3 {
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(FrameFlagging::Skipped);
    }
    let dnu = dq::DO_NOT_USE as u8;
    let sat = dq::SATURATED as u8;
    let mut kept = vec![false; n];
    for int in 0..ramp.nints {
        let g0 = ramp.frame_start(int, 0);
        let g2 = ramp.frame_start(int, 2);
        // Group index 2 of this integration, read before group 0 is written.
        let third: Vec<bool> = ramp.groupdq[g2..g2 + n]
            .iter()
            .map(|&d| params.bright_use_group1 && d & sat != 0)
            .collect();
        for ((d, k), bright) in ramp.groupdq[g0..g0 + n]
            .iter_mut()
            .zip(kept.iter_mut())
            .zip(third)
        {
            if bright {
                *k = true;
            } else {
                *d |= dnu;
            }
        }
    }
    for (d, _) in ramp.pixeldq.iter_mut().zip(&kept).filter(|(_, k)| **k) {
        *d |= dq::FLUX_ESTIMATED;
    }
    ramp.set_step_complete(STEP_KEYWORD);
    Ok(FrameFlagging::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::header::Header;

    fn miri_ramp(nints: usize, ngroups: usize) -> Ramp {
        let mut h = Header::new();
        h.set("DETECTOR", "MIRIMAGE");
        Ramp::zeros(nints, ngroups, 2, 3, h)
    }

    #[test]
    fn flags_the_first_group_of_every_integration() {
        let mut r = miri_ramp(2, 4);
        let i = r.index(1, 0, 1, 2);
        r.groupdq[i] = dq::JUMP_DET as u8;
        r.sci
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = i as f32);
        let sci = r.sci.clone();
        let got = firstframe(&mut r, &FirstFrameParams::default()).unwrap();
        assert_eq!(got, FrameFlagging::Complete);
        for int in 0..2 {
            for g in 0..4 {
                for (y, x) in [(0, 0), (1, 2)] {
                    let v = r.groupdq[r.index(int, g, y, x)];
                    let mut want = if g == 0 { dq::DO_NOT_USE as u8 } else { 0 };
                    if (int, g, y, x) == (1, 0, 1, 2) {
                        want |= dq::JUMP_DET as u8;
                    }
                    assert_eq!(v, want, "int {int} group {g} ({y}, {x})");
                }
            }
        }
        assert_eq!(r.sci, sci);
        assert!(r.pixeldq.iter().all(|&d| d == 0));
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
    }

    #[test]
    fn three_groups_or_fewer_skip() {
        for ng in 1..=3 {
            let mut r = miri_ramp(1, ng);
            let got = firstframe(&mut r, &FirstFrameParams::default()).unwrap();
            assert_eq!(got, FrameFlagging::Skipped);
            assert!(r.groupdq.iter().all(|&d| d == 0), "{ng} groups");
            assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
        }
    }

    #[test]
    fn non_miri_detectors_skip() {
        let mut h = Header::new();
        h.set("DETECTOR", "NRCA1");
        let mut r = Ramp::zeros(1, 5, 2, 2, h);
        let got = firstframe(&mut r, &FirstFrameParams::default()).unwrap();
        assert_eq!(got, FrameFlagging::Skipped);
        assert!(r.groupdq.iter().all(|&d| d == 0));
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
    }

    #[test]
    fn bright_pixels_keep_group_1_by_default() {
        // Pixel 1 saturates from group 3 on in integration 0 only; pixel 4 from group 2 on
        // (so group 3 too) in integration 1.
        let mut r = miri_ramp(2, 5);
        let sat = dq::SATURATED as u8;
        for g in 2..5 {
            let i = r.index(0, g, 0, 1);
            r.groupdq[i] = sat;
        }
        for g in 1..5 {
            let i = r.index(1, g, 1, 1);
            r.groupdq[i] = sat;
        }
        let mut off = r.clone();
        firstframe(&mut r, &FirstFrameParams::default()).unwrap();
        let dnu = dq::DO_NOT_USE as u8;
        assert_eq!(r.groupdq[r.index(0, 0, 0, 1)], 0);
        assert_eq!(r.groupdq[r.index(1, 0, 0, 1)], dnu);
        assert_eq!(r.groupdq[r.index(0, 0, 1, 1)], dnu);
        assert_eq!(r.groupdq[r.index(1, 0, 1, 1)], 0);
        assert_eq!(r.groupdq[r.index(0, 0, 0, 0)], dnu);
        let flagged: Vec<usize> = (0..6)
            .filter(|&p| r.pixeldq[p] == dq::FLUX_ESTIMATED)
            .collect();
        assert_eq!(flagged, vec![1, 4]);
        assert_eq!(r.pixeldq.iter().filter(|&&d| d != 0).count(), 2);
        // With the option off every first group is flagged and PIXELDQ is untouched.
        let params = FirstFrameParams {
            bright_use_group1: false,
        };
        firstframe(&mut off, &params).unwrap();
        for int in 0..2 {
            let s = off.frame_start(int, 0);
            assert!(off.groupdq[s..s + 6].iter().all(|&d| d & dnu != 0));
        }
        assert!(off.pixeldq.iter().all(|&d| d == 0));
    }
}
