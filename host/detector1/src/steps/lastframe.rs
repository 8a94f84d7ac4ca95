//! The lastframe step (jwst `LastFrameStep`, MIRI only), as jwst 3.0.0 does it.
//!
//! The last group of a MIRI integration is pulled down by the reset that follows it, so it is
//! excluded from jump detection and ramp fitting by adding DO_NOT_USE to its GROUPDQ in every
//! integration; SCI and PIXELDQ are not changed.
//!
//! - Only when an integration has **more than 2 groups**: otherwise the step records
//!   S_LASTFR = 'SKIPPED' and changes nothing (too few groups would be left).
//! - Only for MIRI detectors (DETECTOR starting with `MIR`); any other detector is recorded
//!   SKIPPED, as jwst does.
//!
//! Sets S_LASTFR to 'COMPLETE' or 'SKIPPED'. The step has no parameters and no reference file.

use mkrefs_support::dq;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::steps::firstframe::{FrameFlagging, is_miri_detector};

pub const STEP_KEYWORD: &str = "S_LASTFR";

/// Runs lastframe on `ramp`.
pub fn lastframe(ramp: &mut Ramp) -> Result<FrameFlagging, StepError> {
    let n = ramp.frame_len();
    if ramp.groupdq.len() != ramp.nints * ramp.ngroups * n {
        return Err(StepError::Unsupported {
            step: "lastframe",
            message: format!(
                "the ramp's GROUPDQ does not match its shape {}x{}x{}x{}",
                ramp.nints, ramp.ngroups, ramp.ny, ramp.nx
            ),
        });
    }
    if !is_miri_detector(ramp) || ramp.ngroups <= 2 {
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(FrameFlagging::Skipped);
    }
    let dnu = dq::DO_NOT_USE as u8;
    let last = ramp.ngroups - 1;
    for int in 0..ramp.nints {
        let s = ramp.frame_start(int, last);
        for d in &mut ramp.groupdq[s..s + n] {
            *d |= dnu;
        }
    }
    ramp.set_step_complete(STEP_KEYWORD);
    Ok(FrameFlagging::Complete)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::header::Header;

    fn ramp(det: &str, nints: usize, ngroups: usize) -> Ramp {
        let mut h = Header::new();
        h.set("DETECTOR", det);
        Ramp::zeros(nints, ngroups, 2, 2, h)
    }

    #[test]
    fn flags_the_last_group_of_every_integration() {
        let mut r = ramp("MIRIFULONG", 2, 3);
        let i = r.index(0, 2, 1, 1);
        r.groupdq[i] = dq::SATURATED as u8;
        assert_eq!(lastframe(&mut r).unwrap(), FrameFlagging::Complete);
        let dnu = dq::DO_NOT_USE as u8;
        for int in 0..2 {
            for g in 0..3 {
                for p in 0..4 {
                    let v = r.groupdq[r.frame_start(int, g) + p];
                    let mut want = if g == 2 { dnu } else { 0 };
                    if (int, g, p) == (0, 2, 3) {
                        want |= dq::SATURATED as u8;
                    }
                    assert_eq!(v, want, "int {int} group {g} pixel {p}");
                }
            }
        }
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
    }

    #[test]
    fn two_groups_or_fewer_and_non_miri_skip() {
        for (det, ng) in [("MIRIMAGE", 1), ("MIRIMAGE", 2), ("NRCB1", 6)] {
            let mut r = ramp(det, 1, ng);
            assert_eq!(lastframe(&mut r).unwrap(), FrameFlagging::Skipped);
            assert!(r.groupdq.iter().all(|&d| d == 0), "{det} {ng}");
            assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
        }
    }
}
