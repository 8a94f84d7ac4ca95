//! The superbias step (jwst `SuperBiasStep`, `bias_sub.do_correction`).
//!
//! The SUPERBIAS reference image (cut to the exposure's subarray when the reference is larger,
//! see [`crate::reffiles`]) is subtracted from every group of every integration, with NaN
//! values of the superbias replaced by 0 first, as jwst does; its DQ (standard flags) is ORed
//! into PIXELDQ. Sets S_SUPERB = 'COMPLETE' and R_SUPERB. (MIRI has no superbias step.)

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::SuperbiasRef;

pub const STEP_KEYWORD: &str = "S_SUPERB";
pub const REF_KEYWORD: &str = "R_SUPERB";

/// Runs superbias on `ramp` with a SUPERBIAS read for it by
/// [`crate::reffiles::read_superbias`].
pub fn superbias(ramp: &mut Ramp, bias: &SuperbiasRef) -> Result<(), StepError> {
    let n = ramp.frame_len();
    if bias.sci.len() != n || bias.dq.len() != n {
        return Err(StepError::Reference {
            path: bias.path.clone(),
            message: format!(
                "the superbias has {} pixels but the exposure's frames have {}x{}",
                bias.sci.len(),
                ramp.ny,
                ramp.nx
            ),
        });
    }
    let b: Vec<f32> = bias
        .sci
        .iter()
        .map(|&v| if v.is_nan() { 0.0 } else { v })
        .collect();
    for frame in ramp.sci.chunks_exact_mut(n) {
        for (v, &bv) in frame.iter_mut().zip(&b) {
            *v -= bv;
        }
    }
    for (p, &d) in ramp.pixeldq.iter_mut().zip(&bias.dq) {
        *p |= d;
    }
    ramp.set_step_complete(STEP_KEYWORD);
    ramp.set_reference(REF_KEYWORD, &bias.path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{Target, read_superbias};
    use crate::steps::testdata::{median, small_dark};
    use mkrefs_support::dq;

    #[test]
    fn truth_bias_leaves_the_first_frame_dark_signal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ramp, truth, cfg) = small_dark(dir.path());
        let p = dir.path().join("bias.fits");
        let spec = RefSpec {
            reftype: "SUPERBIAS",
            detector: "NRCA1",
            start: (1, 1),
            ny: truth.ny,
            nx: truth.nx,
        };
        let mut bdq = vec![0u32; truth.ny * truth.nx];
        bdq[40] = dq::UNRELIABLE_BIAS;
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![truth.ny, truth.nx], truth.bias.clone())],
            Some((&bdq, &[])),
            &[],
        );
        let bias = read_superbias(&p, &Target::of(&ramp).unwrap()).unwrap();
        let n = ramp.frame_len();
        let before = median(&mut ramp.sci[..n].to_vec());
        assert!((before - cfg.bias_level as f32).abs() < 500.0, "{before}");
        superbias(&mut ramp, &bias).unwrap();
        // Group 0 after bias subtraction: the first frame's dark signal (dark current x frame
        // time, far below 1 DN here) plus read noise, whose median is near 0.
        let tframe = cfg.frame_time().unwrap();
        let dark_first = (cfg.dark_current * tframe) as f32;
        let g0 = median(&mut ramp.sci[..n].to_vec());
        assert!((g0 - dark_first).abs() < 1.0, "{g0} vs {dark_first}");
        // Every group got the same image subtracted: differences between groups are unchanged.
        let last = ramp.frame_start(0, ramp.ngroups - 1);
        let diff = median(
            &mut (0..n)
                .map(|p| ramp.sci[last + p] - ramp.sci[p])
                .collect::<Vec<_>>(),
        );
        assert!(diff.abs() < 3.0, "{diff}");
        assert_eq!(ramp.pixeldq[40], dq::UNRELIABLE_BIAS);
        assert_eq!(ramp.pixeldq.iter().filter(|&&v| v != 0).count(), 1);
        assert_eq!(ramp.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
    }

    #[test]
    fn nan_bias_is_treated_as_zero() {
        let mut r = Ramp::zeros(1, 2, 1, 2, Default::default());
        r.sci = vec![10.0, 10.0, 20.0, 20.0];
        let b = SuperbiasRef {
            path: "b.fits".into(),
            sci: vec![f32::NAN, 4.0],
            dq: vec![0, 0],
        };
        superbias(&mut r, &b).unwrap();
        assert_eq!(r.sci, vec![10.0, 6.0, 20.0, 16.0]);
    }
}
