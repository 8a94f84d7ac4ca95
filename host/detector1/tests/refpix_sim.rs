//! The refpix step on a simulated 2048-column NRCB1 stripe read through 4 outputs: after the
//! simulator's true bias is subtracted (as superbias does), per-amplifier, per-group offsets
//! that differ between odd and even detector columns and a row drift common to the amplifiers
//! are injected in detector orientation; refpix must remove them to within the noise of the
//! reference pixels. NRCB1's detector frame is the DMS frame flipped in y, so the stripe at the
//! bottom of the DMS frame holds the detector's *top* reference rows, and its 4 leftmost and
//! rightmost columns are the side reference columns.

use mkrefs_detector1::ramp::Ramp;
use mkrefs_detector1::steps::{RefpixParams, refpix};
use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};
use mkrefs_support::geometry::Subarray;

const FULL: usize = 2048;
const NY: usize = 64;

fn stripe() -> Ramp {
    let dir = tempfile::tempdir().unwrap();
    let cfg = SimConfig::default()
        .with_detector("NRCB1")
        .with_subarray(Subarray {
            name: "SUBGRISM64".into(),
            xstart: 1,
            ystart: 1,
            nx: FULL,
            ny: NY,
        })
        .with_ramp(1, 2)
        .without_defects()
        .without_cosmic_rays();
    let truth = Truth::generate(&cfg).unwrap();
    let p = dir.path().join("s_uncal.fits");
    write_uncal(&p, &cfg, &truth, Kind::Dark, 0).unwrap();
    let mut ramp = Ramp::read(&p).unwrap();
    let n = ramp.frame_len();
    for frame in ramp.sci.chunks_exact_mut(n) {
        for (v, b) in frame.iter_mut().zip(&truth.bias) {
            *v -= b;
        }
    }
    // A stripe read with the 4 amplifiers.
    ramp.header.set("NOUTPUTS", 4i64);
    ramp
}

/// Detector row of DMS row `y` for NRCB1 (FASTAXIS = 1, SLOWAXIS = -2).
fn det_row(y: usize) -> usize {
    FULL - 1 - y
}

fn offset(g: usize, c: usize) -> f32 {
    let amp = c / 512;
    [120.0, -40.0, 65.0, 10.0][amp] + 20.0 * g as f32 + if c % 2 == 1 { 6.0 } else { -2.0 }
}

fn drift(g: usize, r: usize) -> f32 {
    2.5 * (r as f32 / 25.0 + 1.3 * g as f32).sin()
}

#[test]
fn four_amplifier_stripe_offsets_and_drift_are_removed() {
    let clean = stripe();
    let mut inj = clean.clone();
    for g in 0..inj.ngroups {
        for y in 0..NY {
            for x in 0..FULL {
                let i = inj.index(0, g, y, x);
                inj.sci[i] += offset(g, x) + drift(g, det_row(y));
            }
        }
    }
    let mut a = clean.clone();
    let mut b = inj.clone();
    refpix(&mut a, &RefpixParams::default()).unwrap();
    refpix(&mut b, &RefpixParams::default()).unwrap();
    assert_eq!(b.header.get_str("S_REFPIX"), Some("COMPLETE"));
    for g in 0..b.ngroups {
        // Per amplifier and column parity, the injected offsets are gone: the mean
        // difference to the corrected clean exposure is far below the reference noise (~5 DN
        // per pixel; ~0.16 DN for the mean of an amplifier's 1024 top pixels of one parity).
        for amp in 0..4 {
            for parity in 0..2 {
                let (mut s, mut n) = (0.0f64, 0usize);
                for y in 0..NY - 4 {
                    for x in (amp * 512 + 4..amp * 512 + 508).filter(|x| x % 2 == parity) {
                        s += f64::from(b.sci[b.index(0, g, y, x)] - a.sci[a.index(0, g, y, x)]);
                        n += 1;
                    }
                }
                let m = s / n as f64;
                assert!(m.abs() < 0.3, "group {g} amp {amp} parity {parity}: {m}");
            }
        }
        // Row by row the drift is gone too, to within the running median's noise.
        for y in 0..NY {
            let d: f64 = (0..FULL)
                .map(|x| f64::from(b.sci[b.index(0, g, y, x)] - a.sci[a.index(0, g, y, x)]))
                .sum::<f64>()
                / FULL as f64;
            assert!(d.abs() < 0.6, "group {g} row {y}: {d}");
        }
        // The reference pixels of the injected exposure end near zero, per amplifier (top
        // rows: DMS rows 0..4 here).
        for amp in 0..4 {
            let v: Vec<f64> = (0..4)
                .flat_map(|y| (amp * 512..amp * 512 + 512).map(move |x| (y, x)))
                .map(|(y, x)| f64::from(b.sci[b.index(0, g, y, x)]))
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            assert!(m.abs() < 1.5, "group {g} amp {amp}: {m}");
        }
    }
}

#[test]
fn stripe_without_side_pixels_keeps_the_drift_but_not_the_offsets() {
    let clean = stripe();
    let mut inj = clean.clone();
    for y in 0..NY {
        for x in 0..FULL {
            let i = inj.index(0, 1, y, x);
            inj.sci[i] += offset(1, x) + drift(1, det_row(y));
        }
    }
    let p = RefpixParams {
        use_side_ref_pixels: false,
        ..Default::default()
    };
    let mut a = clean.clone();
    let mut b = inj.clone();
    refpix(&mut a, &p).unwrap();
    refpix(&mut b, &p).unwrap();
    let rows: Vec<f64> = (0..NY)
        .map(|y| {
            (0..FULL)
                .map(|x| f64::from(b.sci[b.index(0, 1, y, x)] - a.sci[a.index(0, 1, y, x)]))
                .sum::<f64>()
                / FULL as f64
        })
        .collect();
    // Offsets (tens of DN, different per amplifier) are removed: every row's residual is the
    // drift minus its mean over the 4 reference rows, at most ~2.5 DN * 2.
    assert!(rows.iter().all(|d| d.abs() < 5.5), "{rows:?}");
    // ... and the drift itself stays.
    let rms = (rows.iter().map(|d| d * d).sum::<f64>() / NY as f64).sqrt();
    assert!(rms > 0.8, "{rms}");
}
