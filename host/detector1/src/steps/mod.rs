//! The calwebb_detector1 steps, one module each, in pipeline order for the near-infrared
//! detectors (the crate's `UPSTREAM.md`, "Step order"): group_scale, dq_init, saturation,
//! superbias, refpix, linearity, dark_current; and the MIRI-only steps and variants:
//! firstframe, lastframe, the MIRI dark (one dark per integration) and the MIRI refpix
//! algorithm. Each updates a [`crate::ramp::Ramp`] in place and records itself in the S_*
//! keyword and its reference file (if it has one) in the R_* keyword, as the jwst steps do.

pub mod dark_current;
pub mod dark_current_miri;
pub mod dq_init;
pub mod firstframe;
pub mod group_scale;
pub mod lastframe;
pub mod linearity;
pub mod refpix;
pub mod refpix_miri;
pub mod saturation;
pub mod superbias;

pub use dark_current::dark_current;
pub use dark_current_miri::dark_current_miri;
pub use dq_init::dq_init;
pub use firstframe::{FirstFrameParams, FrameFlagging, firstframe};
pub use group_scale::group_scale;
pub use lastframe::lastframe;
pub use linearity::linearity;
pub use refpix::{RefpixParams, refpix};
pub use refpix_miri::{MiriRefpix, MiriRefpixParams, refpix_miri};
pub use saturation::saturation;
pub use superbias::superbias;

#[cfg(test)]
pub(crate) mod testdata {
    //! Small simulated exposures for the step tests.

    use std::path::Path;

    use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};

    use crate::ramp::Ramp;

    /// A 32x32 NRCA1 subarray at the full-frame corner (reference rows 0..4 and columns
    /// 0..4), 1 integration of 4 groups, no defects or cosmic rays: the uncal ramp and its
    /// truth.
    pub fn small_dark(dir: &Path) -> (Ramp, Truth, SimConfig) {
        let cfg = SimConfig::default()
            .with_square_subarray(32)
            .with_ramp(1, 4)
            .without_defects()
            .without_cosmic_rays();
        let truth = Truth::generate(&cfg).unwrap();
        let p = dir.join("x_uncal.fits");
        write_uncal(&p, &cfg, &truth, Kind::Dark, 0).unwrap();
        (Ramp::read(&p).unwrap(), truth, cfg)
    }

    pub fn median(v: &mut [f32]) -> f32 {
        v.sort_by(f32::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            0.5 * (v[n / 2 - 1] + v[n / 2])
        }
    }
}

#[cfg(test)]
mod chain_tests {
    use super::testdata::{median, small_dark};
    use super::*;
    use crate::ramp::Ramp;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{
        Target, read_dark, read_linearity, read_mask, read_saturation, read_superbias,
    };
    use mkrefs_support::dq;
    use mkrefs_support::header::HeaderValue;

    /// uncal → group_scale → dq_init → saturation → superbias → linearity → dark_current →
    /// RampModel file → read back, with reference files made from the simulator's truth.
    #[test]
    fn uncal_through_the_steps_to_a_ramp_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let (mut ramp, truth, cfg) = small_dark(d);
        let (ny, nx) = (truth.ny, truth.nx);
        let n = ny * nx;
        let spec = |reftype| RefSpec {
            reftype,
            detector: "NRCA1",
            start: (1, 1),
            ny,
            nx,
        };
        let mut mask = vec![0u32; n];
        mask[100] = dq::DO_NOT_USE | dq::DEAD;
        write_ref::<f32>(
            &d.join("mask.fits"),
            &spec("MASK"),
            &[],
            Some((&mask, &[])),
            &[],
        );
        write_ref(
            &d.join("sat.fits"),
            &spec("SATURATION"),
            &[("SCI", vec![ny, nx], vec![60_000f32; n])],
            Some((&vec![0; n], &[])),
            &[],
        );
        write_ref(
            &d.join("bias.fits"),
            &spec("SUPERBIAS"),
            &[("SCI", vec![ny, nx], truth.bias.clone())],
            Some((&vec![0; n], &[])),
            &[],
        );
        let mut coeffs = vec![0f32; 2 * n];
        coeffs[n..].fill(1.0);
        write_ref(
            &d.join("lin.fits"),
            &spec("LINEARITY"),
            &[("COEFFS", vec![2, ny, nx], coeffs)],
            Some((&vec![0; n], &[])),
            &[],
        );
        let tframe = cfg.frame_time().unwrap() as f32;
        let dark: Vec<f32> = (0..ramp.ngroups * n)
            .map(|i| truth.dark[i % n] * tframe * (i / n + 1) as f32)
            .collect();
        write_ref(
            &d.join("dark.fits"),
            &spec("DARK"),
            &[("SCI", vec![ramp.ngroups, ny, nx], dark)],
            Some((&vec![0; n], &[])),
            &[
                ("NFRAMES", HeaderValue::Int(1)),
                ("GROUPGAP", HeaderValue::Int(0)),
            ],
        );
        let t = Target::of(&ramp).unwrap();
        group_scale(&mut ramp).unwrap();
        dq_init(&mut ramp, &read_mask(&d.join("mask.fits"), &t).unwrap()).unwrap();
        let sat = read_saturation(&d.join("sat.fits"), &t).unwrap();
        saturation(&mut ramp, &sat, &Default::default()).unwrap();
        superbias(
            &mut ramp,
            &read_superbias(&d.join("bias.fits"), &t).unwrap(),
        )
        .unwrap();
        linearity(&mut ramp, &read_linearity(&d.join("lin.fits"), &t).unwrap()).unwrap();
        dark_current(&mut ramp, &read_dark(&d.join("dark.fits"), &t).unwrap()).unwrap();
        let out = d.join("x_dark_current.fits");
        ramp.write(&out).unwrap();
        let back = Ramp::read(&out).unwrap();
        assert_eq!(back, {
            let mut r = ramp.clone();
            r.header.set("FILENAME", "x_dark_current.fits");
            r.header.set("DATAMODL", "RampModel");
            r
        });
        assert_eq!(back.header.get_str("S_GRPSCL"), Some("SKIPPED"));
        for k in ["S_DQINIT", "S_SATURA", "S_SUPERB", "S_LINEAR", "S_DARK"] {
            assert_eq!(back.header.get_str(k), Some("COMPLETE"), "{k}");
        }
        for (k, f) in [
            ("R_MASK", "mask.fits"),
            ("R_SATURA", "sat.fits"),
            ("R_SUPERB", "bias.fits"),
            ("R_LINEAR", "lin.fits"),
            ("R_DARK", "dark.fits"),
        ] {
            assert!(back.header.get_str(k).unwrap().ends_with(f), "{k}");
        }
        // Nothing saturates at 60000 DN; the mask's DO_NOT_USE pixel is flagged in every group.
        assert_eq!(
            back.groupdq.iter().filter(|&&v| v != 0).count(),
            back.ngroups
        );
        assert_eq!(back.pixeldq[100], dq::DO_NOT_USE | dq::DEAD);
        // Bias and dark removed: every group is read noise around 0.
        for g in 0..back.ngroups {
            let s0 = back.frame_start(0, g);
            let m = median(&mut back.sci[s0..s0 + n].to_vec());
            assert!(m.abs() < 1.0, "group {g}: median {m}");
        }
    }
}
