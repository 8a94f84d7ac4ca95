//! The group_scale step (jwst `GroupScaleStep`, `group_scale.do_correction`).
//!
//! On board, the sum of NFRAMES frames is divided by FRMDIVSR (a power of 2, by bit shifting);
//! when NFRAMES is not a power of 2 the downlinked groups are too large or small by
//! NFRAMES/FRMDIVSR. The step multiplies every group of every integration by
//! FRMDIVSR/NFRAMES. As in jwst, it is skipped (S_GRPSCL = 'SKIPPED') when NFRAMES is absent,
//! when FRMDIVSR is absent, or when FRMDIVSR equals NFRAMES. It has no reference file.

use crate::error::StepError;
use crate::ramp::Ramp;

/// S_* keyword of the step.
pub const STEP_KEYWORD: &str = "S_GRPSCL";

/// Whether the step rescaled the data or was skipped.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum GroupScale {
    /// Every group was multiplied by this factor (FRMDIVSR/NFRAMES).
    Scaled(f64),
    Skipped,
}

/// Runs group_scale on `ramp`; see the module documentation.
pub fn group_scale(ramp: &mut Ramp) -> Result<GroupScale, StepError> {
    let nframes = ramp.header.get_i64("NFRAMES");
    let divisor = ramp.header.get_i64("FRMDIVSR");
    let (Some(nframes), Some(divisor)) = (nframes, divisor) else {
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(GroupScale::Skipped);
    };
    if nframes == divisor {
        ramp.set_step_skipped(STEP_KEYWORD);
        return Ok(GroupScale::Skipped);
    }
    if nframes <= 0 || divisor <= 0 {
        return Err(StepError::Unsupported {
            step: "group_scale",
            message: format!("NFRAMES = {nframes} and FRMDIVSR = {divisor} must be positive"),
        });
    }
    let scale = divisor as f64 / nframes as f64;
    let s = scale as f32;
    for v in &mut ramp.sci {
        *v *= s;
    }
    ramp.set_step_complete(STEP_KEYWORD);
    Ok(GroupScale::Scaled(scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::header::Header;

    fn ramp(keys: &[(&str, i64)]) -> Ramp {
        let mut h = Header::new();
        for (k, v) in keys {
            h.set(k, *v);
        }
        let mut r = Ramp::zeros(1, 2, 1, 2, h);
        r.sci = vec![10.0, 20.0, 30.0, 40.0];
        r
    }

    #[test]
    fn rescales_by_frmdivsr_over_nframes() {
        let mut r = ramp(&[("NFRAMES", 5), ("FRMDIVSR", 4)]);
        assert_eq!(group_scale(&mut r).unwrap(), GroupScale::Scaled(0.8));
        assert_eq!(r.sci, vec![8.0, 16.0, 24.0, 32.0]);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
    }

    #[test]
    fn skipped_when_equal_or_unknown() {
        for keys in [
            vec![("NFRAMES", 4), ("FRMDIVSR", 4)],
            vec![("NFRAMES", 5)],
            vec![("FRMDIVSR", 4)],
        ] {
            let mut r = ramp(&keys);
            assert_eq!(group_scale(&mut r).unwrap(), GroupScale::Skipped);
            assert_eq!(r.sci, vec![10.0, 20.0, 30.0, 40.0]);
            assert_eq!(r.header.get_str(STEP_KEYWORD), Some("SKIPPED"));
        }
    }
}
