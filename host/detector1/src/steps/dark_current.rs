//! The dark_current step for near-infrared detectors (jwst `DarkCurrentStep`, stcal
//! `dark_current.dark_sub`), with 3-D (per-group) DARK reference files.
//!
//! - When the dark was taken with the exposure's NFRAMES and GROUPGAP, group g of the dark is
//!   subtracted from group g of every integration.
//! - Otherwise the dark must be frame-resolved (NFRAMES = 1, GROUPGAP = 0, as the CRDS NIR
//!   darks are) and is averaged to the exposure's readout pattern as stcal's
//!   `average_dark_frames_3d` does: group g is the mean of dark frames
//!   `g·(NFRAMES+GROUPGAP) .. g·(NFRAMES+GROUPGAP) + NFRAMES - 1` (a copy for NFRAMES = 1).
//!   stcal averages any dark whose NFRAMES/GROUPGAP are not larger than the exposure's, which
//!   is only right for a frame-resolved dark; this engine refuses the other cases.
//! - When the dark has fewer frames than the exposure spans
//!   (`ngroups·NFRAMES + (ngroups-1)·GROUPGAP`), or NFRAMES/GROUPGAP larger than the
//!   exposure's, jwst skips the step with a warning; this engine returns an error instead, so
//!   a reference generator never works on data it believes dark-subtracted.
//!
//! NaN values of the dark are replaced by 0 and its DQ (standard flags) is ORed into PIXELDQ,
//! as stcal does. Sets S_DARK = 'COMPLETE' and R_DARK.

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::DarkRef;
use rayon::prelude::*;

pub const STEP_KEYWORD: &str = "S_DARK";
pub const REF_KEYWORD: &str = "R_DARK";

fn header_usize(ramp: &Ramp, key: &str) -> Result<usize, StepError> {
    ramp.header
        .get_i64(key)
        .filter(|&v| v >= 0)
        .map(|v| v as usize)
        .ok_or_else(|| StepError::Unsupported {
            step: "dark_current",
            message: format!(
                "the exposure's primary header has no valid {key}, which is needed to match \
                 the dark's groups to the exposure's"
            ),
        })
}

/// The number of dark planes the step can use for `ramp`: the frames its groups span, which
/// is all a frame-resolved dark needs (and more than a dark with the exposure's readout needs);
/// pass it to [`crate::reffiles::read_dark_groups`] to read no more than that.
pub fn dark_frames_needed(ramp: &Ramp) -> Result<usize, StepError> {
    let nframes = header_usize(ramp, "NFRAMES")?.max(1);
    let groupgap = header_usize(ramp, "GROUPGAP")?;
    let ng = ramp.ngroups;
    Ok(ng * nframes + ng.saturating_sub(1) * groupgap)
}

/// Runs dark_current on `ramp` with a DARK read for it by [`crate::reffiles::read_dark`] or
/// [`crate::reffiles::read_dark_groups`].
pub fn dark_current(ramp: &mut Ramp, dark: &DarkRef) -> Result<(), StepError> {
    let n = ramp.frame_len();
    if dark.sci.len() != dark.ngroups * n || dark.dq.len() != n {
        return Err(StepError::Reference {
            path: dark.path.clone(),
            message: format!(
                "the dark has {} values in {} groups but the exposure's frames have {}x{} pixels",
                dark.sci.len(),
                dark.ngroups,
                ramp.ny,
                ramp.nx
            ),
        });
    }
    let nframes = header_usize(ramp, "NFRAMES")?.max(1);
    let groupgap = header_usize(ramp, "GROUPGAP")?;
    let ng = ramp.ngroups;
    let sci_frames = ng * nframes + (ng - 1) * groupgap;
    let drk_frames = dark.ngroups * dark.nframes + (dark.ngroups.max(1) - 1) * dark.groupgap;
    let unsupported = |message: String| StepError::Unsupported {
        step: "dark_current",
        message: format!("{}: {message}", dark.path.display()),
    };
    if sci_frames > drk_frames {
        return Err(unsupported(format!(
            "the dark spans {drk_frames} frames but the exposure spans {sci_frames} \
             ({ng} groups of NFRAMES={nframes}, GROUPGAP={groupgap}); jwst would skip the step; \
             use a dark with at least as many frames"
        )));
    }
    let clean = |v: f32| if v.is_nan() { 0.0 } else { v };
    let averaged: Vec<f32> = if dark.nframes == nframes && dark.groupgap == groupgap {
        dark.sci[..ng * n].iter().map(|&v| clean(v)).collect()
    } else if dark.nframes == 1 && dark.groupgap == 0 {
        let mut out = vec![0f32; ng * n];
        for g in 0..ng {
            let start = g * (nframes + groupgap);
            let dst = &mut out[g * n..(g + 1) * n];
            if nframes == 1 {
                for (d, &v) in dst.iter_mut().zip(&dark.sci[start * n..(start + 1) * n]) {
                    *d = clean(v);
                }
            } else {
                // numpy's mean of float32 data accumulates in float32 (pairwise); a float64
                // sum rounded once is at least as accurate.
                for (p, d) in dst.iter_mut().enumerate() {
                    let s: f64 = (start..start + nframes)
                        .map(|f| f64::from(clean(dark.sci[f * n + p])))
                        .sum();
                    *d = (s / nframes as f64) as f32;
                }
            }
        }
        out
    } else {
        return Err(unsupported(format!(
            "the dark has NFRAMES={}, GROUPGAP={} and the exposure NFRAMES={nframes}, \
             GROUPGAP={groupgap}; only a dark with the exposure's values or a frame-resolved \
             dark (NFRAMES=1, GROUPGAP=0) can be matched to it",
            dark.nframes, dark.groupgap
        )));
    };
    // Frames in parallel; frame f is group f % ngroups of its integration.
    ramp.sci
        .par_chunks_exact_mut(n.max(1))
        .enumerate()
        .for_each(|(f, frame)| {
            let g = f % ng;
            for (v, &d) in frame.iter_mut().zip(&averaged[g * n..(g + 1) * n]) {
                *v -= d;
            }
        });
    for (p, &d) in ramp.pixeldq.iter_mut().zip(&dark.dq) {
        *p |= d;
    }
    ramp.set_step_complete(STEP_KEYWORD);
    ramp.set_reference(REF_KEYWORD, &dark.path);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{Target, read_dark_groups};
    use crate::steps::testdata::small_dark;
    use mkrefs_support::dq;
    use mkrefs_support::header::Header;

    fn ramp(nints: usize, ng: usize, nframes: i64, groupgap: i64) -> Ramp {
        let mut h = Header::new();
        h.set("NFRAMES", nframes);
        h.set("GROUPGAP", groupgap);
        let mut r = Ramp::zeros(nints, ng, 1, 1, h);
        r.sci.fill(100.0);
        r
    }

    fn dark(frames: Vec<f32>, nframes: usize, groupgap: usize) -> DarkRef {
        DarkRef {
            path: "dark.fits".into(),
            ngroups: frames.len(),
            nframes,
            groupgap,
            sci: frames,
            dq: vec![dq::UNRELIABLE_DARK],
        }
    }

    #[test]
    fn matching_readout_subtracts_group_by_group() {
        let mut r = ramp(2, 3, 1, 0);
        dark_current(&mut r, &dark(vec![1.0, 2.0, f32::NAN, 4.0], 1, 0)).unwrap();
        assert_eq!(r.sci, vec![99.0, 98.0, 100.0, 99.0, 98.0, 100.0]);
        assert_eq!(r.pixeldq, vec![dq::UNRELIABLE_DARK]);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        assert!(
            r.header
                .get_str(REF_KEYWORD)
                .unwrap()
                .ends_with("/dark.fits")
        );
    }

    #[test]
    fn frame_resolved_dark_is_averaged_to_the_readout() {
        // NFRAMES = 2, GROUPGAP = 1: group 0 = frames 0,1; group 1 = frames 3,4.
        let mut r = ramp(1, 2, 2, 1);
        let frames: Vec<f32> = (0..6).map(|f| f as f32 * 10.0).collect();
        dark_current(&mut r, &dark(frames, 1, 0)).unwrap();
        assert_eq!(r.sci, vec![100.0 - 5.0, 100.0 - 35.0]);
    }

    #[test]
    fn too_short_or_unmatchable_darks_are_errors() {
        let mut r = ramp(1, 3, 2, 1); // spans 3*2 + 2*1 = 8 frames
        let e = dark_current(&mut r, &dark(vec![0.0; 7], 1, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("dark.fits") && e.contains("8"), "{e}");
        assert_eq!(r.sci, vec![100.0; 3]);
        assert!(!r.header.contains(STEP_KEYWORD));
        let mut r = ramp(1, 2, 4, 0);
        let e = dark_current(&mut r, &dark(vec![0.0; 8], 2, 0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("frame-resolved"), "{e}");
    }

    #[test]
    fn simulated_exposure_with_a_dark_file() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ramp, truth, cfg) = small_dark(dir.path());
        // A dark of 6 frames whose frame f is (f + 1) x 10 DN plus 0.001 x the pixel index.
        let n = truth.ny * truth.nx;
        let frames: Vec<f32> = (0..6 * n)
            .map(|i| ((i / n + 1) * 10) as f32 + (i % n) as f32 * 1e-3)
            .collect();
        let p = dir.path().join("dark.fits");
        let spec = RefSpec {
            reftype: "DARK",
            detector: "NRCA1",
            start: (1, 1),
            ny: truth.ny,
            nx: truth.nx,
        };
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![6, truth.ny, truth.nx], frames.clone())],
            Some((&vec![0; n], &[])),
            &[("NFRAMES", 1i64.into()), ("GROUPGAP", 0i64.into())],
        );
        let need = dark_frames_needed(&ramp).unwrap();
        assert_eq!(need, ramp.ngroups);
        let d = read_dark_groups(&p, &Target::of(&ramp).unwrap(), need).unwrap();
        assert_eq!(d.ngroups, ramp.ngroups);
        let before = ramp.clone();
        dark_current(&mut ramp, &d).unwrap();
        assert_eq!(cfg.nframes, 1);
        for g in 0..ramp.ngroups {
            for px in [0, 77, n - 1] {
                let i = ramp.frame_start(0, g) + px;
                assert_eq!(ramp.sci[i], before.sci[i] - frames[g * n + px]);
            }
        }
    }
}
