//! The dq_init step (jwst `DQInitStep`, `dq_initialization.do_dqinit`).
//!
//! The MASK reference file's DQ (mapped to standard flags through its DQ_DEF, and cut to the
//! exposure's subarray when the reference is larger, see [`crate::reffiles`]) is ORed into
//! PIXELDQ; its DO_NOT_USE bit is also ORed into every group of GROUPDQ, as jwst does "to
//! ensure no ramps are fit to bad pixels". Sets S_DQINIT = 'COMPLETE' and R_MASK.
//!
//! Guider exposures (FGS_ID-*, FGS_ACQ*, FGS_TRACK, FGS_FINEGUIDE), whose datamodel has a
//! single DQ array instead of PIXELDQ/GROUPDQ, are refused.

use mkrefs_support::dq;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::MaskRef;

pub const STEP_KEYWORD: &str = "S_DQINIT";
pub const REF_KEYWORD: &str = "R_MASK";

const GUIDER_EXP_TYPES: &[&str] = &[
    "FGS_ID-IMAGE",
    "FGS_ID-STACK",
    "FGS_ACQ1",
    "FGS_ACQ2",
    "FGS_TRACK",
    "FGS_FINEGUIDE",
];

/// Runs dq_init on `ramp` with a MASK read for it by [`crate::reffiles::read_mask`].
pub fn dq_init(ramp: &mut Ramp, mask: &MaskRef) -> Result<(), StepError> {
    if let Some(exp) = ramp.header.get_str("EXP_TYPE")
        && GUIDER_EXP_TYPES
            .iter()
            .any(|g| g.eq_ignore_ascii_case(exp.trim()))
    {
        return Err(StepError::Unsupported {
            step: "dq_init",
            message: format!(
                "EXP_TYPE {exp} is a guider mode, whose datamodel has one DQ array instead of \
                 PIXELDQ and GROUPDQ; not supported"
            ),
        });
    }
    if mask.dq.len() != ramp.frame_len() {
        return Err(StepError::Reference {
            path: mask.path.clone(),
            message: format!(
                "the mask has {} pixels but the exposure's frames have {}x{}",
                mask.dq.len(),
                ramp.ny,
                ramp.nx
            ),
        });
    }
    for (p, &m) in ramp.pixeldq.iter_mut().zip(&mask.dq) {
        *p |= m;
    }
    let n = ramp.frame_len();
    let dnu = dq::DO_NOT_USE as u8;
    for frame in ramp.groupdq.chunks_exact_mut(n) {
        for (g, &m) in frame.iter_mut().zip(&mask.dq) {
            if m & dq::DO_NOT_USE != 0 {
                *g |= dnu;
            }
        }
    }
    ramp.set_step_complete(STEP_KEYWORD);
    ramp.set_reference(REF_KEYWORD, &mask.path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{Target, read_mask};
    use crate::steps::testdata::small_dark;

    #[test]
    fn mask_from_a_full_frame_reference_is_cut_and_ored() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ramp, _, _) = small_dark(dir.path());
        ramp.header.set("SUBSTRT1", 9i64);
        ramp.header.set("SUBSTRT2", 5i64);
        // A 48x48 "full frame" mask with flags at full-frame (y, x) = (6, 10) and (40, 40).
        let (ny, nx) = (48, 48);
        let mut m = vec![0u32; ny * nx];
        m[6 * nx + 10] = dq::DO_NOT_USE | dq::DEAD;
        m[7 * nx + 12] = dq::HOT;
        m[40 * nx + 40] = dq::DO_NOT_USE;
        let p = dir.path().join("mask.fits");
        let spec = RefSpec {
            reftype: "MASK",
            detector: "NRCA1",
            start: (1, 1),
            ny,
            nx,
        };
        write_ref::<f32>(&p, &spec, &[], Some((&m, &[])), &[]);
        let mask = read_mask(&p, &Target::of(&ramp).unwrap()).unwrap();
        ramp.pixeldq[0] = dq::REFERENCE_PIXEL;
        dq_init(&mut ramp, &mask).unwrap();
        // Window starts at full-frame (y, x) = (4, 8): (6, 10) -> (2, 2), (7, 12) -> (3, 4).
        let nxs = ramp.nx;
        assert_eq!(ramp.pixeldq[2 * nxs + 2], dq::DO_NOT_USE | dq::DEAD);
        assert_eq!(ramp.pixeldq[3 * nxs + 4], dq::HOT);
        assert_eq!(ramp.pixeldq[0], dq::REFERENCE_PIXEL);
        assert_eq!(ramp.pixeldq.iter().filter(|&&v| v != 0).count(), 3);
        // DO_NOT_USE reaches every group; HOT does not.
        for g in 0..ramp.ngroups {
            assert_eq!(ramp.groupdq[ramp.index(0, g, 2, 2)], 1);
            assert_eq!(ramp.groupdq[ramp.index(0, g, 3, 4)], 0);
        }
        assert_eq!(ramp.groupdq.iter().filter(|&&v| v != 0).count(), 4);
        assert_eq!(ramp.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        assert_eq!(
            ramp.header.get_str(REF_KEYWORD),
            Some(p.to_string_lossy().as_ref())
        );
    }

    #[test]
    fn guider_modes_are_refused() {
        let mut h = mkrefs_support::header::Header::new();
        h.set("EXP_TYPE", "FGS_TRACK");
        let mut r = Ramp::zeros(1, 2, 2, 2, h);
        let mask = MaskRef {
            path: "m.fits".into(),
            dq: vec![0; 4],
        };
        let e = dq_init(&mut r, &mask).unwrap_err().to_string();
        assert!(e.contains("FGS_TRACK"), "{e}");
        assert!(!r.header.contains(STEP_KEYWORD));
    }
}
