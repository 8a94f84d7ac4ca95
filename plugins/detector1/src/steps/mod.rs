//! The calwebb_detector1 steps, one module each, in pipeline order for the near-infrared
//! detectors (framework.md §5.1): group_scale, dq_init, saturation, superbias, linearity,
//! dark_current. Each updates a [`crate::ramp::Ramp`] in place and records itself in the S_*
//! keyword and its reference file in the R_* keyword, as the jwst steps do.

pub mod dark_current;
pub mod dq_init;
pub mod group_scale;
pub mod linearity;
pub mod saturation;
pub mod superbias;

pub use dark_current::dark_current;
pub use dq_init::dq_init;
pub use group_scale::group_scale;
pub use linearity::linearity;
pub use saturation::saturation;
pub use superbias::superbias;

#[cfg(test)]
pub(crate) mod testdata {
    //! Small simulated exposures for the step tests.

    use std::path::Path;

    use mkrefs_support::simulate::{Kind, SimConfig, Truth, write_uncal};

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
