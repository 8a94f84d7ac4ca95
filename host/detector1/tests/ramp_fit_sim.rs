//! Ramp fitting on simulated ramps with known dark and flat rates: the fitted rates must agree
//! with the truth within their ERR (z-score statistics), per exposure and per integration, with
//! jumps, with saturation, and after this crate's own jump step.

use std::path::Path;

use mkrefs_detector1::form::Form;
use mkrefs_detector1::jump::{JumpParams, jump};
use mkrefs_detector1::ramp::Ramp;
use mkrefs_detector1::ramp_fit::{
    FitOpt, FitOptParts, Fitopt, Slopes, ramp_fit_parts, write_fitopt_parts, write_rate,
    write_rateints,
};
use mkrefs_sim::{Kind, SimConfig, Truth, write_jump};
use mkrefs_support::dq;
use mkrefs_support::fits::{ImageReader, read_primary_header};

/// Reads a RampModel file with the engine's own reader.
fn read_ramp(path: &Path) -> Ramp {
    Ramp::read(path).unwrap()
}

/// 48x48 away from the reference pixels, 2 integrations of 10 groups of 10.737 s.
fn config(seed: u64, illumination: f64, hits_per_ramp: f64) -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_square_subarray(48)
        .with_substrt(300, 300)
        .with_ramp(2, 10)
        .with_seed(seed)
        .without_defects();
    cfg.tframe = Some(10.737);
    cfg.flat_illumination = illumination;
    cfg.cosmic_ray_rate = hits_per_ramp / (10.737 * 9.0);
    cfg
}

fn simulate(cfg: &SimConfig, kind: Kind, dir: &Path) -> (Ramp, Truth, Vec<f64>) {
    let truth = Truth::generate(cfg).unwrap();
    let path = dir.join("jump.fits");
    write_jump(&path, cfg, &truth, kind, 0).unwrap();
    let illum = match kind {
        Kind::Dark => 0.0,
        Kind::Flat => cfg.flat_illumination,
    };
    let rate = (0..truth.dark.len())
        .map(|p| f64::from(truth.dark[p]) + illum * f64::from(truth.qe[p]))
        .collect();
    (read_ramp(&path), truth, rate)
}

/// Everything ramp fitting makes, the optional output also expanded to full arrays.
struct Fit {
    rate: Slopes,
    rateints: Slopes,
    fitopt: FitOpt,
    compact: FitOptParts,
}

fn fit(ramp: &Ramp, truth: &Truth) -> Fit {
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    let parts = ramp_fit_parts(ramp, &truth.readnoise, &gain, Fitopt::Whole).unwrap();
    let compact = parts.fitopt.unwrap();
    Fit {
        rate: parts.rate,
        rateints: parts.rateints,
        fitopt: compact.expand(),
        compact,
    }
}

/// z-scores of plane `k` against the truth, on the pixels `keep` selects.
fn zscores(s: &Slopes, k: usize, truth: &[f64], keep: impl Fn(usize) -> bool) -> Vec<f64> {
    let n = s.ny * s.nx;
    (0..n)
        .filter(|&p| keep(p))
        .map(|p| (f64::from(s.sci[k * n + p]) - truth[p]) / f64::from(s.err[k * n + p]))
        .collect()
}

/// Mean, standard deviation and fraction within |z| < 3.
fn stats(z: &[f64]) -> (f64, f64, f64) {
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let within = z.iter().filter(|v| v.abs() < 3.0).count() as f64 / n;
    (mean, sd, within)
}

fn check(label: &str, z: &[f64]) {
    assert!(z.iter().all(|v| v.is_finite()), "{label}: non-finite z");
    let (mean, sd, within) = stats(z);
    eprintln!(
        "{label}: n {} mean z {mean:.3} sd {sd:.3} within 3 sigma {within:.4}",
        z.len()
    );
    assert!(z.len() > 100, "{label}: {} pixels", z.len());
    assert!(mean.abs() < 0.2, "{label}: mean z {mean}");
    assert!((0.8..1.2).contains(&sd), "{label}: sd z {sd}");
    assert!(within > 0.98, "{label}: {within} within 3 sigma");
}

fn has_jump(ramp: &Ramp, p: usize) -> bool {
    let n = ramp.frame_len();
    (0..ramp.nints * ramp.ngroups).any(|f| ramp.groupdq[f * n + p] & dq::JUMP_DET as u8 != 0)
}

#[test]
fn flat_rates_agree_with_truth_within_err() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(21, 100.0, 0.1);
    let (ramp, truth, rate) = simulate(&cfg, Kind::Flat, dir.path());
    let out = fit(&ramp, &truth);
    assert_eq!((out.rate.nplanes, out.rateints.nplanes), (1, 2));
    assert!(out.rate.dq.iter().all(|q| q & dq::DO_NOT_USE == 0));
    check("flat rate", &zscores(&out.rate, 0, &rate, |_| true));
    for i in 0..2 {
        check(
            &format!("flat rateints {i}"),
            &zscores(&out.rateints, i, &rate, |_| true),
        );
    }
    // Pixels with a jump: the segments around it still give the right rate.
    let jumped = zscores(&out.rate, 0, &rate, |p| has_jump(&ramp, p));
    check("flat rate, pixels with jumps", &jumped);
    let n = ramp.frame_len();
    for p in 0..n {
        assert_eq!(
            out.rate.dq[p] & dq::JUMP_DET != 0,
            has_jump(&ramp, p),
            "pixel {p}"
        );
    }
    // Variances: ERR² = VAR_POISSON + VAR_RNOISE; Poisson dominates at 100 DN/s.
    for p in 0..n {
        let (e, vp, vr) = (
            out.rate.err[p],
            out.rate.var_poisson[p],
            out.rate.var_rnoise[p],
        );
        assert!((e * e - vp - vr).abs() <= 1e-5 * e * e);
        assert!(vp > 5.0 * vr);
    }
    // The combined rate is more precise than each integration's.
    let mean_var = |s: &Slopes, k: usize| {
        (0..n)
            .map(|p| f64::from(s.err[k * n + p]).powi(2))
            .sum::<f64>()
            / n as f64
    };
    let (v_all, v0) = (mean_var(&out.rate, 0), mean_var(&out.rateints, 0));
    assert!((0.4..0.6).contains(&(v_all / v0)), "{v_all} vs {v0}");

    // PEDESTAL: the bias-subtracted first group minus the charge of one frame is ~0 (bias and
    // signal both removed), within the first group's read and shot noise.
    let ped = &out.fitopt.pedestal;
    assert_eq!(ped.len(), 2 * n);
    let mean = ped.iter().map(|&v| f64::from(v)).sum::<f64>() / ped.len() as f64;
    let sd = (ped
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / ped.len() as f64)
        .sqrt();
    eprintln!("pedestal mean {mean:.3} sd {sd:.3}");
    assert!(mean.abs() < 2.0, "{mean}");
    assert!((10.0..40.0).contains(&sd), "{sd}");
}

#[test]
fn dark_rates_agree_with_truth_within_err() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(22, 0.0, 0.05);
    let (ramp, truth, rate) = simulate(&cfg, Kind::Dark, dir.path());
    let out = fit(&ramp, &truth);
    check("dark rate", &zscores(&out.rate, 0, &rate, |_| true));
    check(
        "dark rateints 1",
        &zscores(&out.rateints, 1, &rate, |_| true),
    );
    // Read noise dominates a dark of 0.005 DN/s.
    let n = ramp.frame_len();
    assert!((0..n).all(|p| out.rate.var_rnoise[p] > out.rate.var_poisson[p]));
}

#[test]
fn saturated_groups_are_excluded() {
    let dir = tempfile::tempdir().unwrap();
    // 620 DN/s on a 12000 DN bias reaches 65535 after about 8 of the 10 groups.
    let cfg = config(23, 620.0, 0.05);
    let (ramp, truth, rate) = simulate(&cfg, Kind::Flat, dir.path());
    let n = ramp.frame_len();
    let sat = |p: usize| {
        (0..ramp.ngroups).any(|g| ramp.groupdq[ramp.index(0, g, p / ramp.nx, p % ramp.nx)] & 2 != 0)
    };
    let n_sat = (0..n).filter(|&p| sat(p)).count();
    assert!(n_sat > n / 2, "{n_sat} of {n} pixels saturate");
    let out = fit(&ramp, &truth);
    check("saturating flat rate", &zscores(&out.rate, 0, &rate, sat));
    assert!(out.rate.dq.iter().all(|q| q & dq::DO_NOT_USE == 0));
    // The saturated groups (at 65535 - bias) would pull the slope far down if they were used.
    let z = zscores(&out.rateints, 0, &rate, sat);
    assert!(z.iter().all(|v| v.abs() < 6.0));
}

#[test]
fn jump_then_ramp_fit_recovers_the_rates() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(24, 100.0, 0.3);
    let (mut ramp, truth, rate) = simulate(&cfg, Kind::Flat, dir.path());
    for q in &mut ramp.groupdq {
        *q &= !(dq::JUMP_DET as u8);
    }
    // Without the jump step the hits (100 to 5000 DN) bias the rates of the hit pixels high.
    let raw = fit(&ramp, &truth);
    let hit: Vec<bool> = {
        let mut flagged = ramp.clone();
        let gain = vec![truth.gain as f32; truth.readnoise.len()];
        let params = JumpParams {
            flag_4_neighbors: false,
            ..JumpParams::default()
        };
        jump(&mut flagged, &truth.readnoise, &gain, &params).unwrap();
        (0..ramp.frame_len())
            .map(|p| has_jump(&flagged, p))
            .collect()
    };
    let z_raw = zscores(&raw.rate, 0, &rate, |p| hit[p]);
    let (m_raw, _, _) = stats(&z_raw);
    assert!(
        m_raw > 1.0,
        "unflagged hits should bias the rate: mean z {m_raw}"
    );

    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    jump(&mut ramp, &truth.readnoise, &gain, &JumpParams::default()).unwrap();
    let out = fit(&ramp, &truth);
    check(
        "flat rate after jump",
        &zscores(&out.rate, 0, &rate, |_| true),
    );
    check(
        "hit pixels after jump",
        &zscores(&out.rate, 0, &rate, |p| hit[p]),
    );
    // The optional output: segments split at the jumps, CRMAG of the hits.
    let o = &out.fitopt;
    assert!(o.nseg >= 2 && o.ncr >= 1, "nseg {} ncr {}", o.nseg, o.ncr);
    let n = ramp.frame_len();
    let big = o.crmag.iter().filter(|&&c| c > 100.0).count();
    assert!(big > n / 10, "{big} CRMAG entries above 100 DN");
    // SLOPE and WEIGHTS of each integration's segments recombine into its rateints slope.
    let mut multi = 0;
    for i in 0..2 {
        for p in 0..n {
            let (mut sw, mut swb, mut k) = (0.0f64, 0.0f64, 0);
            for s in 0..o.nseg {
                let j = (i * o.nseg + s) * n + p;
                if o.weights[j] > 0.0 {
                    sw += f64::from(o.weights[j]);
                    swb += f64::from(o.weights[j]) * f64::from(o.slope[j]);
                    k += 1;
                }
            }
            multi += usize::from(k > 1);
            let want = f64::from(out.rateints.sci[i * n + p]);
            assert!(
                (swb / sw - want).abs() <= 1e-4 * want.abs().max(1.0),
                "int {i} pixel {p}: {} vs {want}",
                swb / sw
            );
        }
    }
    assert!(multi > 100, "{multi} ramps with several segments");
}

#[test]
fn writes_rate_rateints_and_fitopt() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(25, 100.0, 0.1);
    let (ramp, truth, _) = simulate(&cfg, Kind::Flat, dir.path());
    let out = fit(&ramp, &truth);
    let (ny, nx, n) = (ramp.ny, ramp.nx, ramp.frame_len());
    let rate = write_rate(
        &dir.path().join("x_rate.fits"),
        &ramp.header,
        &out.rate,
        &Form::Full,
    )
    .unwrap();
    let ints = write_rateints(
        &dir.path().join("x_rateints.fits"),
        &ramp.header,
        &out.rateints,
        &Form::Full,
    )
    .unwrap();
    let opt = write_fitopt_parts(
        &dir.path().join("x_fitopt.fits"),
        &ramp.header,
        &out.compact,
        &Form::Full,
    )
    .unwrap();
    for (path, model) in [
        (&rate, "ImageModel"),
        (&ints, "CubeModel"),
        (&opt, "RampFitOutputModel"),
    ] {
        let h = read_primary_header(path).unwrap();
        // As jwst 3.0.0 writes them: the optional output without S_RAMP.
        let fitted = (model != "RampFitOutputModel").then_some("COMPLETE");
        assert_eq!(h.get_str("S_RAMP"), fitted, "{model}");
        assert_eq!(h.get_str("S_JUMP"), Some("COMPLETE"));
        assert_eq!(h.get_str("DATAMODL"), Some(model));
        let name = path.file_name().unwrap().to_str().unwrap();
        assert_eq!(h.get_str("FILENAME"), Some(name));
        assert_eq!(h.get_str("DETECTOR"), ramp.header.get_str("DETECTOR"));
        assert_eq!(h.get_f64("TGROUP"), ramp.header.get_f64("TGROUP"));
    }
    for ext in ["SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"] {
        assert_eq!(ImageReader::open(&rate, ext).unwrap().shape(), &[ny, nx]);
        assert_eq!(ImageReader::open(&ints, ext).unwrap().shape(), &[2, ny, nx]);
    }
    let mut sci = ImageReader::open(&ints, "SCI").unwrap();
    let mut plane = vec![0f32; n];
    sci.read_rows(1, 0, ny, &mut plane).unwrap();
    assert_eq!(plane, out.rateints.sci[n..]);
    let mut dqr = ImageReader::open(&rate, "DQ").unwrap();
    let mut d = vec![0u32; n];
    dqr.read_rows(0, 0, ny, &mut d).unwrap();
    assert_eq!(d, out.rate.dq);
    let o = &out.fitopt;
    for ext in [
        "SLOPE",
        "SIGSLOPE",
        "YINT",
        "SIGYINT",
        "WEIGHTS",
        "VAR_POISSON",
        "VAR_RNOISE",
    ] {
        let r = ImageReader::open(&opt, ext).unwrap();
        assert_eq!(r.shape(), &[2, o.nseg, ny, nx], "{ext}");
        assert_eq!(r.stored_type(), "float32");
    }
    assert_eq!(
        ImageReader::open(&opt, "PEDESTAL").unwrap().shape(),
        &[2, ny, nx]
    );
    assert_eq!(
        ImageReader::open(&opt, "CRMAG").unwrap().shape(),
        &[2, o.ncr, ny, nx]
    );
}

/// Without the optional output the rates are the same; the optional output written plane by
/// plane from its compact form holds the full arrays.
#[test]
fn compact_fitopt_is_written_as_the_full_arrays() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(26, 100.0, 0.5);
    let (ramp, truth, _) = simulate(&cfg, Kind::Flat, dir.path());
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    let full = fit(&ramp, &truth);
    let o = &full.fitopt;
    assert!(o.nseg >= 2 && o.ncr >= 2);
    let without = ramp_fit_parts(&ramp, &truth.readnoise, &gain, Fitopt::No).unwrap();
    assert!(without.fitopt.is_none());
    assert_eq!(
        (&without.rate, &without.rateints),
        (&full.rate, &full.rateints)
    );
    // Pedestals only (a run-internal fitopt read for PEDESTAL): the same pedestals and rates;
    // writing more of it than was made is refused.
    let ped = ramp_fit_parts(&ramp, &truth.readnoise, &gain, Fitopt::Pedestal).unwrap();
    let ped_opt = ped.fitopt.as_ref().unwrap();
    assert!(!ped_opt.whole && full.compact.whole);
    assert_eq!(ped_opt.pedestal, full.compact.pedestal);
    assert_eq!((&ped.rate, &ped.rateints), (&full.rate, &full.rateints));
    let only_ped = Form::Only(["PEDESTAL".to_string()].into_iter().collect());
    let ped_path = dir.path().join("p_fitopt.fits");
    write_fitopt_parts(&ped_path, &ramp.header, ped_opt, &only_ped).unwrap();
    let err = write_fitopt_parts(&ped_path, &ramp.header, ped_opt, &Form::Full).unwrap_err();
    assert!(err.to_string().contains("only the pedestals"), "{err}");
    let path = write_fitopt_parts(
        &dir.path().join("x_fitopt.fits"),
        &ramp.header,
        &full.compact,
        &Form::Full,
    )
    .unwrap();
    let read = |ext: &str| {
        let mut r = ImageReader::open(&path, ext).unwrap();
        (0..r.n_planes())
            .flat_map(|p| r.read_plane::<f32>(p).unwrap())
            .collect::<Vec<f32>>()
    };
    let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
    for (ext, want) in [
        ("SLOPE", &o.slope),
        ("SIGSLOPE", &o.sigslope),
        ("VAR_POISSON", &o.var_poisson),
        ("VAR_RNOISE", &o.var_rnoise),
        ("YINT", &o.yint),
        ("SIGYINT", &o.sigyint),
        ("PEDESTAL", &o.pedestal),
        ("WEIGHTS", &o.weights),
        ("CRMAG", &o.crmag),
    ] {
        let got = read(ext);
        assert_eq!(got.len(), want.len(), "{ext}");
        assert!(same(&got, want), "{ext}");
    }
}
