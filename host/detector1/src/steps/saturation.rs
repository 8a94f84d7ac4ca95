//! The saturation step (jwst `SaturationStep` for non-IRS2 data, stcal
//! `saturation.flag_saturated_pixels`).
//!
//! Per integration, following stcal:
//!
//! 1. Thresholds: the SATURATION reference file's SCI (cut to the exposure, see
//!    [`crate::reffiles`]). Pixels flagged NO_SAT_CHECK in its DQ, and pixels whose threshold
//!    is NaN (which also get NO_SAT_CHECK), get the threshold 65535 + 1 (above the A-to-D
//!    limit), so they are never flagged.
//! 2. Forward pass over the groups: where SCI >= threshold, SATURATED is set in that group and
//!    every later group; where SCI <= 0, AD_FLOOR | DO_NOT_USE is set in that group only. Then
//!    every SATURATED pixel of the group is grown into the `(2n+1) × (2n+1)` box around it
//!    (`n_pix_grow_sat`, default 1: the 8 neighbours) in that group ("charge spilling").
//!    stcal sets SATURATED only, not DO_NOT_USE, on saturated groups; ramp fitting excludes
//!    SATURATED groups itself.
//! 3. With `use_readpatt` (the jwst default), the read pattern jwst builds (group g holds the
//!    1-based frames `g·NFRAMES + 1 ..= g·NFRAMES + NFRAMES`; jwst leaves GROUPGAP out) is used for
//!    two more checks of frame-averaged groups: a backward pass sets DO_NOT_USE (grown like
//!    SATURATED) on a group that is not flagged but whose next group is SATURATED and whose
//!    value reaches the threshold times the dilution factor `mean(frames)/last frame`; and a
//!    group-2 check sets DO_NOT_USE on group 2 when group 3 is SATURATED but group 2 is not,
//!    group 2 exceeds threshold/NFRAMES and group 1 extrapolated to the end of group 3 stays
//!    below the threshold. With NFRAMES = 1 both checks can never flag anything.
//! 4. The reference DQ (with the NO_SAT_CHECK added for NaN thresholds) is ORed into PIXELDQ.
//!
//! Sets S_SATURA = 'COMPLETE' and R_SATURA. NIRSpec IRS2 exposures (interleaved reference
//! pixels) are refused.

use mkrefs_support::dq;

use rayon::prelude::*;

use crate::error::StepError;
use crate::ramp::Ramp;
use crate::reffiles::SaturationRef;

pub const STEP_KEYWORD: &str = "S_SATURA";
pub const REF_KEYWORD: &str = "R_SATURA";

/// The hard limit of the 16-bit A-to-D converter (DN).
pub const ATOD_LIMIT: f32 = 65535.0;

/// The step's parameters, with the jwst defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SaturationParams {
    /// Box half-size of the growth of SATURATED flags into neighbours (jwst default 1).
    pub n_pix_grow_sat: usize,
    /// Use the read pattern for the checks of frame-averaged groups (jwst default true).
    pub use_readpatt: bool,
}

impl Default for SaturationParams {
    fn default() -> Self {
        SaturationParams {
            n_pix_grow_sat: 1,
            use_readpatt: true,
        }
    }
}

/// ORs `flag` into every pixel of `plane` (`ny × nx`) within `n` pixels (box) of a pixel of
/// `plane` that has `flag` — a binary dilation with a `(2n+1)²` box, as scipy's
/// `binary_dilation` with a box structure (outside the image counts as unflagged).
#[cfg(test)]
fn grow(plane: &mut [u8], ny: usize, nx: usize, flag: u8, n: usize) {
    grow_with(plane, ny, nx, flag, n, &mut Vec::new());
}

/// [`grow`] with `rows` as working space.
fn grow_with(plane: &mut [u8], ny: usize, nx: usize, flag: u8, n: usize, rows: &mut Vec<bool>) {
    if n == 0 || ny == 0 || nx == 0 {
        return;
    }
    // Along each row (from the flags as they were, by a running count), then across rows;
    // rows in parallel. Rows without a flag are passed over: flags are rare, and most rows
    // neither have one nor lie near one.
    rows.resize(ny * nx, false);
    let rows = &mut rows[..ny * nx];
    let flagged: Vec<bool> = rows
        .par_chunks_mut(nx)
        .zip(plane.par_chunks(nx))
        .map_init(
            || vec![0u32; nx + 1],
            |count, (out, src)| {
                if !src.iter().any(|&s| s & flag != 0) {
                    return false;
                }
                for (x, &s) in src.iter().enumerate() {
                    count[x + 1] = count[x] + u32::from(s & flag != 0);
                }
                for (x, o) in out.iter_mut().enumerate() {
                    let (a, b) = (x.saturating_sub(n), (x + n).min(nx - 1));
                    *o = count[b + 1] > count[a];
                }
                true
            },
        )
        .collect();
    let rows = &*rows;
    plane.par_chunks_mut(nx).enumerate().for_each_init(
        || vec![false; nx],
        |any, (y, out)| {
            let (a, b) = (y.saturating_sub(n), (y + n).min(ny - 1));
            if !flagged[a..=b].iter().any(|&f| f) {
                return;
            }
            any.fill(false);
            for yy in (a..=b).filter(|&yy| flagged[yy]) {
                for (v, &r) in any.iter_mut().zip(&rows[yy * nx..(yy + 1) * nx]) {
                    *v |= r;
                }
            }
            for (o, &v) in out.iter_mut().zip(any.iter()) {
                if v {
                    *o |= flag;
                }
            }
        },
    );
}

/// Runs saturation on `ramp` with a SATURATION reference read for it by
/// [`crate::reffiles::read_saturation`].
pub fn saturation(
    ramp: &mut Ramp,
    sat: &SaturationRef,
    params: &SaturationParams,
) -> Result<(), StepError> {
    check_inputs(ramp, sat)?;
    let limits = Thresholds::new(sat);
    let nframes = ramp.header.get_i64("NFRAMES").unwrap_or(1).max(1) as usize;
    let read_pattern = params
        .use_readpatt
        .then(|| ReadPattern::new(ramp.ngroups, nframes));
    let mut work = Planes::new(ramp.frame_len());
    for int in 0..ramp.nints {
        flag_saturated_groups(ramp, int, &limits, params.n_pix_grow_sat, &mut work);
        if let Some(rp) = &read_pattern {
            flag_diluted_groups(ramp, int, &limits, rp, params.n_pix_grow_sat, &mut work);
            flag_group_2(ramp, int, &limits, rp);
        }
    }
    for (p, &d) in ramp.pixeldq.iter_mut().zip(&limits.dq) {
        *p |= d;
    }
    ramp.set_step_complete(STEP_KEYWORD);
    ramp.set_reference(REF_KEYWORD, &sat.path);
    Ok(())
}

/// Refuses IRS2 readouts and a saturation map of another frame size.
fn check_inputs(ramp: &Ramp, sat: &SaturationRef) -> Result<(), StepError> {
    if ramp
        .header
        .get_str("READPATT")
        .is_some_and(|r| r.to_ascii_uppercase().contains("IRS2"))
    {
        return Err(StepError::Unsupported {
            step: "saturation",
            message: "NIRSpec IRS2 readouts (interleaved reference pixels) are not supported"
                .into(),
        });
    }
    let n = ramp.frame_len();
    if sat.sci.len() != n || sat.dq.len() != n {
        return Err(StepError::Reference {
            path: sat.path.clone(),
            message: format!(
                "the saturation map has {} pixels but the exposure's frames have {}x{}",
                sat.sci.len(),
                ramp.ny,
                ramp.nx
            ),
        });
    }
    Ok(())
}

const SATF: u8 = dq::SATURATED as u8;
const DNU: u8 = dq::DO_NOT_USE as u8;

/// The thresholds per pixel (step 1): the reference SCI, or above the A-to-D limit where the
/// pixel is not to be checked.
struct Thresholds {
    thresh: Vec<f32>,
    no_check: Vec<bool>,
    /// The reference DQ with NO_SAT_CHECK added for NaN thresholds (ORed into PIXELDQ).
    dq: Vec<u32>,
}

impl Thresholds {
    fn new(sat: &SaturationRef) -> Thresholds {
        let mut dq = sat.dq.clone();
        let mut no_check = vec![false; dq.len()];
        let mut thresh = sat.sci.clone();
        for p in 0..dq.len() {
            if thresh[p].is_nan() {
                dq[p] |= dq::NO_SAT_CHECK;
            }
            if dq[p] & dq::NO_SAT_CHECK != 0 {
                no_check[p] = true;
                thresh[p] = ATOD_LIMIT + 1.0;
            }
        }
        Thresholds {
            thresh,
            no_check,
            dq,
        }
    }
}

/// The 1-based frames of each group, as jwst builds the read pattern (GROUPGAP left out).
struct ReadPattern(Vec<Vec<usize>>);

impl ReadPattern {
    fn new(ng: usize, nframes: usize) -> ReadPattern {
        ReadPattern(
            (0..ng)
                .map(|g| (0..nframes).map(|k| k + 1 + g * nframes).collect())
                .collect(),
        )
    }

    /// The mean frame number of group `g`.
    fn mean(&self, g: usize) -> f64 {
        self.0[g].iter().sum::<usize>() as f64 / self.0[g].len() as f64
    }

    /// The last frame number of group `g`.
    fn last(&self, g: usize) -> f64 {
        *self.0[g].last().expect("nframes >= 1") as f64
    }

    /// The number of frames of group `g`.
    fn len(&self, g: usize) -> f64 {
        self.0[g].len() as f64
    }
}

/// Working planes of one frame, allocated once per exposure.
struct Planes {
    grow_rows: Vec<bool>,
    sticky: Vec<bool>,
    flags: Vec<u8>,
}

impl Planes {
    fn new(n: usize) -> Planes {
        Planes {
            grow_rows: Vec::new(),
            sticky: vec![false; n],
            flags: vec![0u8; n],
        }
    }
}

/// Step 2, the forward pass: SATURATED from the first group at or above the threshold on
/// (grown into the neighbours group by group), AD_FLOOR | DO_NOT_USE where SCI <= 0.
fn flag_saturated_groups(
    ramp: &mut Ramp,
    int: usize,
    limits: &Thresholds,
    grow_n: usize,
    work: &mut Planes,
) {
    let (n, ny, nx) = (ramp.frame_len(), ramp.ny, ramp.nx);
    let cw = nx.max(1);
    let floor = (dq::AD_FLOOR | dq::DO_NOT_USE) as u8;
    work.sticky.fill(false);
    for g in 0..ramp.ngroups {
        let s0 = ramp.frame_start(int, g);
        let (sci, gdq) = (&ramp.sci[s0..s0 + n], &mut ramp.groupdq[s0..s0 + n]);
        gdq.par_chunks_mut(cw)
            .zip(work.sticky.par_chunks_mut(cw))
            .zip(sci.par_chunks(cw).zip(limits.thresh.par_chunks(cw)))
            .for_each(|((gdq, sticky), (sci, thresh))| {
                for p in 0..gdq.len() {
                    if sci[p] >= thresh[p] {
                        sticky[p] = true;
                    }
                    if sticky[p] {
                        gdq[p] |= SATF;
                    }
                    if sci[p] <= 0.0 {
                        gdq[p] |= floor;
                    }
                }
            });
        grow_with(gdq, ny, nx, SATF, grow_n, &mut work.grow_rows);
    }
}

/// Step 3, the backward pass for groups that saturated mid-group: DO_NOT_USE (grown) on an
/// unflagged group whose next group is SATURATED and whose value reaches the threshold times
/// the dilution `mean(frames)/last frame`.
fn flag_diluted_groups(
    ramp: &mut Ramp,
    int: usize,
    limits: &Thresholds,
    rp: &ReadPattern,
    grow_n: usize,
    work: &mut Planes,
) {
    let (n, ny, nx) = (ramp.frame_len(), ramp.ny, ramp.nx);
    let cw = nx.max(1);
    for g in (0..ramp.ngroups.saturating_sub(1)).rev() {
        let dilution = rp.mean(g) / rp.last(g);
        let s0 = ramp.frame_start(int, g);
        let flags = &mut work.flags;
        flags.fill(0);
        let (sci, gdq) = (&ramp.sci[s0..s0 + n], &ramp.groupdq[s0..s0 + 2 * n]);
        let (this_dq, next_dq) = gdq.split_at(n);
        flags.par_chunks_mut(cw).enumerate().for_each(|(y, f)| {
            let r = y * nx;
            for (x, fx) in f.iter_mut().enumerate() {
                let p = r + x;
                let d = if limits.no_check[p] { 1.0 } else { dilution };
                let (this, next) = (this_dq[p], next_dq[p]);
                if f64::from(sci[p]) >= f64::from(limits.thresh[p]) * d
                    && this & SATF == 0
                    && this & DNU == 0
                    && next & SATF != 0
                {
                    *fx = DNU;
                }
            }
        });
        grow_with(flags, ny, nx, DNU, grow_n, &mut work.grow_rows);
        ramp.groupdq[s0..s0 + n]
            .par_chunks_mut(cw)
            .zip(flags.par_chunks(cw))
            .for_each(|(q, f)| {
                for (q, f) in q.iter_mut().zip(f) {
                    *q |= f;
                }
            });
    }
}

/// Step 3, the group-2 check (stcal's 1-based groups 1, 2, 3 are groups 0, 1, 2 here):
/// DO_NOT_USE on group 2 when group 3 is SATURATED but group 2 is not, group 2 exceeds
/// threshold/NFRAMES and group 1 extrapolated to the end of group 3 stays below the threshold.
fn flag_group_2(ramp: &mut Ramp, int: usize, limits: &Thresholds, rp: &ReadPattern) {
    if ramp.ngroups <= 2 {
        return;
    }
    let (n, cw) = (ramp.frame_len(), ramp.nx.max(1));
    let (s1, s2, s3) = (
        ramp.frame_start(int, 0),
        ramp.frame_start(int, 1),
        ramp.frame_start(int, 2),
    );
    let (last3, len2, m0) = (rp.last(2), rp.len(1), rp.mean(0));
    let (sci1, sci2) = (&ramp.sci[s1..s1 + n], &ramp.sci[s2..s2 + n]);
    let (dq2, dq3) = ramp.groupdq[s2..s3 + n].split_at_mut(n);
    dq2.par_chunks_mut(cw)
        .zip(dq3.par_chunks(cw))
        .zip(limits.thresh.par_chunks(cw))
        .enumerate()
        .for_each(|(y, ((dq2, dq3), th))| {
            for x in 0..dq2.len() {
                let p = y * cw + x;
                let t = f64::from(th[x]);
                let expect_ok = f64::from(sci1[p]) / m0 * last3 < t;
                let big2 = f64::from(sci2[p]) > t / len2;
                if expect_ok && big2 && dq3[x] & SATF != 0 && dq2[x] & SATF == 0 {
                    dq2[x] |= DNU;
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reffiles::testutil::{RefSpec, write_ref};
    use crate::reffiles::{Target, read_saturation};
    use crate::steps::testdata::small_dark;
    use mkrefs_support::header::Header;

    fn sat_ref(level: f32, n: usize) -> SaturationRef {
        SaturationRef {
            path: "sat.fits".into(),
            sci: vec![level; n],
            dq: vec![0; n],
        }
    }

    /// A 1-integration ramp of `ng` groups on a `ny × nx` frame, all values `v`.
    fn flat_ramp(ng: usize, ny: usize, nx: usize, v: f32) -> Ramp {
        let mut r = Ramp::zeros(1, ng, ny, nx, Header::new());
        r.sci.fill(v);
        r
    }

    #[test]
    fn flags_at_the_level_later_groups_and_the_8_neighbours() {
        let mut r = flat_ramp(4, 7, 7, 1000.0);
        // Pixel (3, 3) reaches the level (exactly) in group 2; pixel (0, 6) just below it.
        for g in 2..4 {
            let i = r.index(0, g, 3, 3);
            r.sci[i] = 5000.0;
            let j = r.index(0, g, 0, 6);
            r.sci[j] = 4999.9;
        }
        saturation(&mut r, &sat_ref(5000.0, 49), &SaturationParams::default()).unwrap();
        let s = dq::SATURATED as u8;
        for g in 0..4 {
            for y in 0..7usize {
                for x in 0..7usize {
                    let want = g >= 2 && y.abs_diff(3) <= 1 && x.abs_diff(3) <= 1;
                    let got = r.groupdq[r.index(0, g, y, x)];
                    assert_eq!(got, if want { s } else { 0 }, "g{g} y{y} x{x}");
                }
            }
        }
        assert_eq!(r.header.get_str(STEP_KEYWORD), Some("COMPLETE"));
        assert!(
            r.header
                .get_str(REF_KEYWORD)
                .unwrap()
                .ends_with("/sat.fits")
        );
        // Without growth only the pixel itself.
        let mut r2 = flat_ramp(4, 7, 7, 1000.0);
        let i = r2.index(0, 1, 3, 3);
        r2.sci[i] = 6000.0;
        let p = SaturationParams {
            n_pix_grow_sat: 0,
            ..Default::default()
        };
        saturation(&mut r2, &sat_ref(5000.0, 49), &p).unwrap();
        assert_eq!(r2.groupdq.iter().filter(|&&v| v != 0).count(), 3);
    }

    #[test]
    fn no_sat_check_nan_and_ad_floor() {
        let mut r = flat_ramp(2, 1, 4, 60_000.0);
        let i = r.index(0, 1, 0, 3);
        r.sci[i] = 0.0;
        let mut sat = sat_ref(50_000.0, 4);
        sat.dq[0] = dq::NO_SAT_CHECK;
        sat.sci[1] = f32::NAN;
        let p = SaturationParams {
            n_pix_grow_sat: 0,
            ..Default::default()
        };
        saturation(&mut r, &sat, &p).unwrap();
        let s = dq::SATURATED as u8;
        // Pixels 0 and 1 are never flagged (65535 is not reached); 2 and 3 are.
        assert_eq!(r.groupdq[..4], [0, 0, s, s]);
        let fl = (dq::AD_FLOOR | dq::DO_NOT_USE) as u8;
        assert_eq!(r.groupdq[4..], [0, 0, s, s | fl]);
        assert_eq!(r.pixeldq, vec![dq::NO_SAT_CHECK, dq::NO_SAT_CHECK, 0, 0]);
    }

    #[test]
    fn frame_averaged_group_before_saturation_gets_do_not_use() {
        // NFRAMES = 4: group 1 (frames 5..8) averages to 4500 although its last frame was near
        // 5000 (dilution 6.5/8 = 0.8125, threshold x dilution = 4062.5); group 2 saturates.
        let mut h = Header::new();
        h.set("NFRAMES", 4i64);
        h.set("GROUPGAP", 0i64);
        let mut r = Ramp::zeros(1, 3, 1, 1, h);
        r.sci = vec![1000.0, 4500.0, 5200.0];
        let p = SaturationParams {
            n_pix_grow_sat: 0,
            ..Default::default()
        };
        saturation(&mut r, &sat_ref(5000.0, 1), &p).unwrap();
        assert_eq!(
            r.groupdq,
            vec![0, dq::DO_NOT_USE as u8, dq::SATURATED as u8]
        );
        // Without the read pattern only group 3 is flagged.
        let mut r2 = r.clone();
        r2.groupdq.fill(0);
        let p2 = SaturationParams {
            use_readpatt: false,
            ..p
        };
        saturation(&mut r2, &sat_ref(5000.0, 1), &p2).unwrap();
        assert_eq!(r2.groupdq, vec![0, 0, dq::SATURATED as u8]);
    }

    #[test]
    fn simulated_exposure_against_a_full_frame_reference() {
        let dir = tempfile::tempdir().unwrap();
        let (mut ramp, _, _) = small_dark(dir.path());
        // A 64x64 "full-frame" reference: level 12000 DN except a corner region at 1e6.
        let (fy, fx) = (64, 64);
        let mut level = vec![12_000f32; fy * fx];
        for y in 0..fy {
            for x in 0..fx {
                if y >= 20 || x >= 20 {
                    level[y * fx + x] = 1.0e6;
                }
            }
        }
        let p = dir.path().join("sat.fits");
        let spec = RefSpec {
            reftype: "SATURATION",
            detector: "NRCA1",
            start: (1, 1),
            ny: fy,
            nx: fx,
        };
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![fy, fx], level.clone())],
            Some((&vec![0; fy * fx], &[])),
            &[],
        );
        let sat = read_saturation(&p, &Target::of(&ramp).unwrap()).unwrap();
        let before = ramp.clone();
        saturation(&mut ramp, &sat, &SaturationParams::default()).unwrap();
        // Expected: primary flags where raw >= level (sticky), grown by one pixel.
        let n = ramp.frame_len();
        let mut expect = vec![0u8; ramp.groupdq.len()];
        let mut sticky = vec![false; n];
        for g in 0..ramp.ngroups {
            let s0 = ramp.frame_start(0, g);
            for (p, st) in sticky.iter_mut().enumerate() {
                let (y, x) = (p / ramp.nx, p % ramp.nx);
                *st |= before.sci[s0 + p] >= level[y * fx + x];
            }
            for p in 0..n {
                let (y, x) = (p / ramp.nx, p % ramp.nx);
                let near = (y.saturating_sub(1)..=(y + 1).min(ramp.ny - 1)).any(|yy| {
                    (x.saturating_sub(1)..=(x + 1).min(ramp.nx - 1))
                        .any(|xx| sticky[yy * ramp.nx + xx])
                });
                if near {
                    expect[s0 + p] = dq::SATURATED as u8;
                }
            }
        }
        assert_eq!(ramp.groupdq, expect);
        let flagged = expect.iter().filter(|&&v| v != 0).count();
        assert!(flagged > 50 && flagged < expect.len() / 2, "{flagged}");
        assert_eq!(
            ramp.header.get_str(REF_KEYWORD),
            Some(p.to_string_lossy().as_ref())
        );
    }

    #[test]
    fn growth_is_a_box_dilation() {
        let mut plane = vec![0u8; 25];
        plane[0] = 2;
        plane[12] = 2 | 1;
        grow(&mut plane, 5, 5, 2, 1);
        let got: Vec<u8> = plane.iter().map(|v| v & 2).collect();
        #[rustfmt::skip]
        let want = [
            2, 2, 0, 0, 0,
            2, 2, 2, 2, 0,
            0, 2, 2, 2, 0,
            0, 2, 2, 2, 0,
            0, 0, 0, 0, 0,
        ];
        assert_eq!(got, want);
        assert_eq!(plane[12], 3);
    }

    /// Sparse flags, with the working space reused from plane to plane (rows without flags
    /// are passed over and keep what an earlier plane left there): the box dilation by brute
    /// force.
    #[test]
    fn growth_of_sparse_flags_equals_the_brute_force_dilation() {
        let (ny, nx): (usize, usize) = (23, 17);
        let mut rows = Vec::new();
        let mut state = 99u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        for round in 0..40 {
            let n: usize = round % 4;
            let plane: Vec<u8> = (0..ny * nx)
                .map(|_| {
                    if next() % 37 == 0 {
                        2
                    } else {
                        (next() % 2) as u8
                    }
                })
                .collect();
            let mut want = plane.clone();
            for y in 0..ny {
                for x in 0..nx {
                    let near = (y.saturating_sub(n)..=(y + n).min(ny - 1)).any(|yy| {
                        (x.saturating_sub(n)..=(x + n).min(nx - 1))
                            .any(|xx| plane[yy * nx + xx] & 2 != 0)
                    });
                    if near {
                        want[y * nx + x] |= 2;
                    }
                }
            }
            let mut got = plane.clone();
            grow_with(&mut got, ny, nx, 2, n, &mut rows);
            assert_eq!(got, want, "round {round}");
        }
    }
}
