//! The linearity step (jwst `LinearityStep`, stcal `linearity.linearity_correction`, the
//! classic per-group polynomial; not the read-level correction Roman uses).
//!
//! Following stcal's `prepare_coefficients`: the LINEARITY reference DQ (standard flags, cut to
//! the exposure, see [`crate::reffiles`]) is ORed into PIXELDQ; pixels flagged NO_LIN_CORR in
//! it, pixels with any NaN coefficient, and pixels whose linear coefficient (c1) is 0 get the
//! benign coefficients (0, 1, 0, ...), which leave them unchanged, and the last two kinds also
//! get NO_LIN_CORR in PIXELDQ. Then every group is replaced by
//! `c0 + c1·F + c2·F² + ... + cn·Fⁿ`, evaluated in f32 by Horner's rule in stcal's order,
//! except groups flagged SATURATED, which keep their value. Sets S_LINEAR = 'COMPLETE' and
//! R_LINEAR.

use mkrefs_support::dq;

use rayon::prelude::*;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::LinearityRef;

pub const STEP_KEYWORD: &str = "S_LINEAR";
pub const REF_KEYWORD: &str = "R_LINEAR";

/// Runs linearity on `ramp` with a LINEARITY read for it by
/// [`crate::reffiles::read_linearity`].
pub fn linearity(ramp: &mut Ramp, lin: &LinearityRef) -> Result<(), StepError> {
    let n = ramp.frame_len();
    let nc = lin.ncoeffs;
    if nc < 2 || lin.coeffs.len() != nc * n || lin.dq.len() != n {
        return Err(StepError::Reference {
            path: lin.path.clone(),
            message: format!(
                "the linearity file has {} coefficient values in {nc} planes and {} DQ values, \
                 but the exposure's frames have {}x{} pixels",
                lin.coeffs.len(),
                lin.dq.len(),
                ramp.ny,
                ramp.nx
            ),
        });
    }
    // Per-pixel coefficients, pixel-major for the evaluation: c[p * nc + k].
    let mut c = vec![0f32; n * nc];
    for p in 0..n {
        let pc = &mut c[p * nc..(p + 1) * nc];
        for (k, v) in pc.iter_mut().enumerate() {
            *v = lin.coeffs[k * n + p];
        }
        ramp.pixeldq[p] |= lin.dq[p];
        let flagged = lin.dq[p] & dq::NO_LIN_CORR != 0;
        let nan = pc.iter().any(|v| v.is_nan());
        let zero = !nan && !flagged && pc[1] == 0.0;
        if flagged || nan || zero {
            pc.fill(0.0);
            pc[1] = 1.0;
        }
        if nan || zero {
            ramp.pixeldq[p] |= dq::NO_LIN_CORR;
        }
    }
    let sat = dq::SATURATED as u8;
    // Frames in parallel, each pixel on its own.
    ramp.sci
        .par_chunks_exact_mut(n)
        .zip(ramp.groupdq.par_chunks_exact(n))
        .for_each(|(frame, gdq)| {
            for p in 0..n {
                if gdq[p] & sat != 0 {
                    continue;
                }
                let pc = &c[p * nc..(p + 1) * nc];
                let f = frame[p];
                let mut r = pc[nc - 1] * f;
                for &ck in pc[1..nc - 1].iter().rev() {
                    r += ck;
                    r *= f;
                }
                frame[p] = r + pc[0];
            }
        });
    ramp.set_step_complete(STEP_KEYWORD);
    ramp.set_reference(REF_KEYWORD, &lin.path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{Target, read_linearity};
    use crate::steps::testdata::small_dark;
    use mkrefs_support::header::Header;

    #[test]
    fn polynomial_skips_saturated_groups_and_bad_coefficients() {
        // 5 pixels, 2 groups, cubic coefficients.
        let mut r = Ramp::zeros(1, 2, 1, 5, Header::new());
        r.sci = vec![100.0; 10];
        r.groupdq[5] = dq::SATURATED as u8; // pixel 0, group 1
        let n = 5;
        let mut coeffs = vec![0f32; 4 * n];
        for p in 0..n {
            coeffs[p] = 1.0; // c0
            coeffs[n + p] = 2.0; // c1
            coeffs[2 * n + p] = 1e-3; // c2
            coeffs[3 * n + p] = 1e-6; // c3
        }
        coeffs[2 * n + 1] = f32::NAN; // pixel 1: NaN
        coeffs[n + 2] = 0.0; // pixel 2: zero linear term
        let mut ldq = vec![0u32; n];
        ldq[3] = dq::NO_LIN_CORR; // pixel 3: flagged in the reference
        ldq[4] = dq::HOT;
        let lin = LinearityRef {
            path: "lin.fits".into(),
            ncoeffs: 4,
            coeffs,
            dq: ldq,
        };
        linearity(&mut r, &lin).unwrap();
        let corrected = 1.0 + 2.0 * 100.0 + 1e-3 * 100.0 * 100.0 + 1e-6 * 100.0f32.powi(3);
        assert!((r.sci[0] - corrected).abs() < 1e-3, "{}", r.sci[0]);
        assert_eq!(r.sci[5], 100.0, "saturated group kept");
        assert_eq!(r.sci[1..4], [100.0, 100.0, 100.0]);
        assert_eq!(r.sci[6..9], [100.0, 100.0, 100.0]);
        assert!((r.sci[4] - corrected).abs() < 1e-3);
        assert!((r.sci[9] - corrected).abs() < 1e-3);
        let nl = dq::NO_LIN_CORR;
        assert_eq!(r.pixeldq, vec![0, nl, nl, nl, dq::HOT]);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        assert!(
            r.header
                .get_str(REF_KEYWORD)
                .unwrap()
                .ends_with("/lin.fits")
        );
    }

    #[test]
    fn coefficients_from_a_full_frame_file_for_a_subarray() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ramp, _, _) = small_dark(dir.path());
        ramp.header.set("SUBSTRT1", 3i64);
        ramp.header.set("SUBSTRT2", 2i64);
        // A 40x40 file: c0 = 0, c1 = 1 + x/1000 (full-frame column x), c2 = 0.
        let (fy, fx) = (40, 40);
        let mut coeffs = vec![0f32; 3 * fy * fx];
        for y in 0..fy {
            for x in 0..fx {
                coeffs[fy * fx + y * fx + x] = 1.0 + x as f32 / 1000.0;
            }
        }
        let p = dir.path().join("lin.fits");
        let spec = RefSpec {
            reftype: "LINEARITY",
            detector: "NRCA1",
            start: (1, 1),
            ny: fy,
            nx: fx,
        };
        write_ref(&p, &spec, &[("COEFFS", vec![3, fy, fx], coeffs)], None, &[]);
        let lin = read_linearity(&p, &Target::of(&ramp).unwrap()).unwrap();
        let before = ramp.clone();
        linearity(&mut ramp, &lin).unwrap();
        for &(g, y, x) in &[(0, 0, 0), (3, 31, 31), (2, 10, 20)] {
            let i = ramp.index(0, g, y, x);
            let scale = 1.0 + (x + 2) as f32 / 1000.0;
            assert_eq!(ramp.sci[i], before.sci[i] * scale, "g{g} y{y} x{x}");
        }
    }
}
