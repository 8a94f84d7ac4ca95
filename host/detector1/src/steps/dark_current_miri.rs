//! The dark_current step for MIRI (jwst `DarkCurrentStep` with a DarkMIRIModel, stcal
//! `dark_current.dark_sub`): the dark of a MIRI detector depends on the integration (the
//! detector's reset history changes its first integrations), so the DARK reference file holds
//! one dark ramp per integration, SCI of (integrations, groups, rows, columns).
//!
//! - Integration `i` of the exposure is corrected with dark integration `i` while the dark has
//!   one, and with the dark's **last** integration after that
//!   ([`crate::reffiles::dark_integration`]). A segmented exposure (INTSTART ≠ 1) uses the
//!   last dark integration throughout, as stcal does: its first integration is not the one
//!   after the detector's idle resets.
//! - Groups are matched as for the near-infrared darks ([`crate::steps::dark_current()`]): group
//!   `g` of the dark integration is subtracted from group `g` when the dark has the exposure's
//!   NFRAMES and GROUPGAP; a frame-resolved dark (NFRAMES = 1, GROUPGAP = 0) is averaged to the
//!   exposure's readout; anything else, and a dark with fewer frames than the exposure spans,
//!   is an error (jwst would skip the step with a warning).
//! - NaN dark values count as 0; the dark's DQ (the OR over its integrations, see
//!   [`MiriDarkRef::dq`]) is ORed into PIXELDQ.
//!
//! Sets S_DARK = 'COMPLETE' and R_DARK.

use rayon::prelude::*;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::{MiriDarkRef, dark_integration};
use crate::steps::dark_current::{REF_KEYWORD, STEP_KEYWORD};

/// The exposure's INTSTART, 1 when the header has none (stcal's default).
pub fn intstart(ramp: &Ramp) -> i64 {
    ramp.header.get_i64("INTSTART").unwrap_or(1)
}

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

/// One dark integration brought to the exposure's readout: `ng` planes of `n` pixels.
fn to_readout(
    planes: &[f32],
    dark: &MiriDarkRef,
    n: usize,
    ng: usize,
    nframes: usize,
    groupgap: usize,
) -> Vec<f32> {
    let clean = |v: f32| if v.is_nan() { 0.0 } else { v };
    if dark.nframes == nframes && dark.groupgap == groupgap {
        return planes[..ng * n].iter().map(|&v| clean(v)).collect();
    }
    // Frame-resolved (checked by the caller): group g is the mean of frames
    // g·(nframes+groupgap) .. + nframes - 1, summed in f64.
    let mut out = vec![0f32; ng * n];
    for g in 0..ng {
        let start = g * (nframes + groupgap);
        for (p, d) in out[g * n..(g + 1) * n].iter_mut().enumerate() {
            let s: f64 = (start..start + nframes)
                .map(|f| f64::from(clean(planes[f * n + p])))
                .sum();
            *d = (s / nframes as f64) as f32;
        }
    }
    out
}

/// Runs dark_current on a MIRI `ramp` with a dark read for it by
/// [`crate::reffiles::read_dark_miri`].
pub fn dark_current_miri(ramp: &mut Ramp, dark: &MiriDarkRef) -> Result<(), StepError> {
    let n = ramp.frame_len();
    let unsupported = |message: String| StepError::Unsupported {
        step: "dark_current",
        message: format!("{}: {message}", dark.path.display()),
    };
    if dark.dq.len() != n
        || dark
            .ints
            .iter()
            .any(|(_, planes)| planes.len() != dark.ngroups * n)
    {
        return Err(StepError::Reference {
            path: dark.path.clone(),
            message: format!(
                "the dark's planes do not have the exposure's {}x{} pixels",
                ramp.ny, ramp.nx
            ),
        });
    }
    let nframes = header_usize(ramp, "NFRAMES")?.max(1);
    let groupgap = header_usize(ramp, "GROUPGAP")?;
    let ng = ramp.ngroups;
    let sci_frames = ng * nframes + ng.saturating_sub(1) * groupgap;
    let drk_frames = dark.ngroups * dark.nframes + dark.ngroups.saturating_sub(1) * dark.groupgap;
    if sci_frames > drk_frames {
        return Err(unsupported(format!(
            "the dark spans {drk_frames} frames per integration but the exposure spans \
             {sci_frames} ({ng} groups of NFRAMES={nframes}, GROUPGAP={groupgap}); jwst would \
             skip the step; use a dark with at least as many frames"
        )));
    }
    let matching = dark.nframes == nframes && dark.groupgap == groupgap;
    let frame_resolved = dark.nframes == 1 && dark.groupgap == 0;
    if !(matching || frame_resolved) {
        return Err(unsupported(format!(
            "the dark has NFRAMES={}, GROUPGAP={} and the exposure NFRAMES={nframes}, \
             GROUPGAP={groupgap}; only a dark with the exposure's values or a frame-resolved \
             dark (NFRAMES=1, GROUPGAP=0) can be matched to it",
            dark.nframes, dark.groupgap
        )));
    }
    let start = intstart(ramp);
    let mut per_int: Vec<(usize, Vec<f32>)> = Vec::new();
    for int in 0..ramp.nints {
        let d = dark_integration(int, dark.file_nints, start);
        if per_int.iter().any(|(i, _)| *i == d) {
            continue;
        }
        let planes = dark.integration(d).ok_or_else(|| {
            unsupported(format!(
                "dark integration {d} is needed for exposure integration {int} but was not read"
            ))
        })?;
        per_int.push((d, to_readout(planes, dark, n, ng, nframes, groupgap)));
    }
    let file_nints = dark.file_nints;
    let frame_len = n.max(1);
    ramp.sci
        .par_chunks_exact_mut(frame_len)
        .enumerate()
        .for_each(|(f, frame)| {
            let (int, g) = (f / ng, f % ng);
            let d = dark_integration(int, file_nints, start);
            // Every needed integration was prepared above.
            if let Some((_, planes)) = per_int.iter().find(|(i, _)| *i == d) {
                for (v, &dv) in frame.iter_mut().zip(&planes[g * n..(g + 1) * n]) {
                    *v -= dv;
                }
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
    use crate::reffiles::testutil::{RefSpec, write_ref_miri_dark};
    use crate::reffiles::{Target, read_dark_miri};
    use mkrefs_support::dq;
    use mkrefs_support::header::Header;

    fn miri_ramp(nints: usize, ng: usize, intstart: Option<i64>) -> Ramp {
        let mut h = Header::new();
        h.set("INSTRUME", "MIRI");
        h.set("DETECTOR", "MIRIMAGE");
        h.set("NFRAMES", 1i64);
        h.set("GROUPGAP", 0i64);
        if let Some(s) = intstart {
            h.set("INTSTART", s);
        }
        let mut r = Ramp::zeros(nints, ng, 2, 2, h);
        r.sci.fill(1000.0);
        r
    }

    /// A dark of `dint` integrations × `dg` groups of 2x2 pixels whose value is
    /// 100·(integration + 1) + group, with DQ flags per integration.
    fn write_dark(dir: &std::path::Path, dint: usize, dg: usize) -> std::path::PathBuf {
        let p = dir.join("miri_dark.fits");
        let sci: Vec<f32> = (0..dint * dg * 4)
            .map(|i| (100 * (i / (dg * 4) + 1) + (i / 4) % dg) as f32)
            .collect();
        let mut dqv = vec![0u32; dint * 4];
        dqv[1] = dq::HOT;
        dqv[(dint - 1) * 4 + 2] = dq::UNRELIABLE_DARK;
        let spec = RefSpec {
            reftype: "DARK",
            detector: "MIRIMAGE",
            start: (1, 1),
            ny: 2,
            nx: 2,
        };
        write_ref_miri_dark(&p, &spec, (dint, dg), &sci, &dqv);
        p
    }

    #[test]
    fn integrations_beyond_the_dark_use_its_last() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_dark(dir.path(), 2, 5);
        let mut r = miri_ramp(4, 3, None);
        let t = Target::of(&r).unwrap();
        let d = read_dark_miri(&p, &t, r.nints, 1, 3).unwrap();
        assert_eq!((d.file_nints, d.file_ngroups, d.ngroups), (2, 5, 3));
        dark_current_miri(&mut r, &d).unwrap();
        for int in 0..4 {
            let di = int.min(1);
            for g in 0..3 {
                let want = 1000.0 - (100 * (di + 1) + g) as f32;
                let s = r.frame_start(int, g);
                assert!(
                    r.sci[s..s + 4].iter().all(|&v| v == want),
                    "int {int} group {g}: {:?}",
                    &r.sci[s..s + 4]
                );
            }
        }
        assert_eq!(r.pixeldq, vec![0, dq::HOT, dq::UNRELIABLE_DARK, 0]);
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        assert!(
            r.header
                .get_str(REF_KEYWORD)
                .unwrap()
                .ends_with("miri_dark.fits")
        );
    }

    #[test]
    fn segmented_exposures_use_the_last_dark_integration() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_dark(dir.path(), 3, 4);
        let mut r = miri_ramp(2, 4, Some(5));
        let t = Target::of(&r).unwrap();
        let d = read_dark_miri(&p, &t, r.nints, 5, 4).unwrap();
        // Only the last integration is read.
        assert_eq!(d.ints.len(), 1);
        assert_eq!(d.ints[0].0, 2);
        dark_current_miri(&mut r, &d).unwrap();
        assert_eq!(r.sci[r.frame_start(0, 1)], 1000.0 - 301.0);
        assert_eq!(r.sci[r.frame_start(1, 3)], 1000.0 - 303.0);
    }

    #[test]
    fn short_darks_and_wrong_dimensions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_dark(dir.path(), 1, 3);
        let mut r = miri_ramp(1, 4, None);
        let t = Target::of(&r).unwrap();
        let d = read_dark_miri(&p, &t, 1, 1, 4).unwrap();
        let e = dark_current_miri(&mut r, &d).unwrap_err().to_string();
        assert!(
            e.contains("miri_dark.fits") && e.contains("3 frames"),
            "{e}"
        );
        assert!(r.sci.iter().all(|&v| v == 1000.0));
        assert!(!r.header.contains(STEP_KEYWORD));
        // A 3-D (near-infrared) dark for a MIRI exposure.
        let p3 = dir.path().join("nir_dark.fits");
        let spec = RefSpec {
            reftype: "DARK",
            detector: "MIRIMAGE",
            start: (1, 1),
            ny: 2,
            nx: 2,
        };
        crate::reffiles::testutil::write_ref(
            &p3,
            &spec,
            &[("SCI", vec![4, 2, 2], vec![1f32; 16])],
            None,
            &[("NFRAMES", 1i64.into()), ("GROUPGAP", 0i64.into())],
        );
        let e = read_dark_miri(&p3, &t, 1, 1, 4).unwrap_err().to_string();
        assert!(e.contains("nir_dark.fits") && e.contains("4-D"), "{e}");
        let e = crate::reffiles::check_reference(&p3, "DARK", &t)
            .unwrap_err()
            .to_string();
        assert!(e.contains("DarkMIRIModel"), "{e}");
        crate::reffiles::check_reference(&p, "DARK", &t).unwrap();
    }

    #[test]
    fn dark_integration_rule() {
        assert_eq!(dark_integration(0, 2, 1), 0);
        assert_eq!(dark_integration(1, 2, 1), 1);
        assert_eq!(dark_integration(2, 2, 1), 1);
        assert_eq!(dark_integration(0, 2, 3), 1);
    }
}
