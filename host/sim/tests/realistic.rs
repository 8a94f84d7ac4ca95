//! The opt-in features of a simulator that does not flatter ([`SimConfig::with_realistic_noise`])
//! are in the files, at the levels asked for: 1/f banding along the readout lines, reset
//! offsets and amplifier drifts (reference pixels included), noisy pixels, the read-noise tail,
//! cosmic rays per group and spread telegraph switching rates.

// A pixel index addresses several parallel arrays (truth maps, planes) at once.
#![allow(clippy::needless_range_loop)]

use std::path::Path;

use mkrefs_sim::{
    DefectClass, Kind, Product, ProductSet, SimConfig, StepReference, Truth, write_products,
    write_step_references, write_uncal,
};
use mkrefs_support::dq;
use mkrefs_support::fits::ImageReader;
use mkrefs_support::geometry::Subarray;

fn read_all<T: mkrefs_support::fits::Pixel>(path: &Path, ext: &str) -> Vec<T> {
    let mut r = ImageReader::open(path, ext).unwrap();
    (0..r.n_planes())
        .flat_map(|p| r.read_plane::<T>(p).unwrap())
        .collect()
}

/// The uncal SCI of exposure 0 (a dark) of `cfg` as f64, `[(i * ng + g) * ny * nx + p]`.
fn dark_ramps(dir: &Path, cfg: &SimConfig, truth: &Truth) -> Vec<f64> {
    let path = dir.join("x_uncal.fits");
    write_uncal(&path, cfg, truth, Kind::Dark, 0).unwrap();
    read_all::<u16>(&path, "SCI")
        .into_iter()
        .map(f64::from)
        .collect()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

fn std(v: &[f64]) -> f64 {
    let m = mean(v);
    (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / v.len() as f64).sqrt()
}

fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma) * (x - ma)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb) * (y - mb)).sum();
    cov / (va * vb).sqrt()
}

/// Mean periodogram power of `x` (mean removed) over the frequency bins `bins`.
fn power(x: &[f64], bins: std::ops::Range<usize>) -> f64 {
    let n = x.len();
    let m = mean(x);
    let nb = bins.len() as f64;
    bins.map(|k| {
        let w = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
        let (mut re, mut im) = (0.0, 0.0);
        for (t, v) in x.iter().enumerate() {
            re += (v - m) * (w * t as f64).cos();
            im += (v - m) * (w * t as f64).sin();
        }
        (re * re + im * im) / n as f64
    })
    .sum::<f64>()
        / nb
}

/// A `n × n` NRCA1 corner window (fast axis x: readout lines are rows) with the realistic noise.
fn realistic(n: usize, nints: usize, ngroups: usize) -> SimConfig {
    SimConfig::default()
        .with_square_subarray(n)
        .with_ramp(nints, ngroups)
        .with_seed(21)
        .with_realistic_noise()
}

/// Per CDS difference (integration, group pair) of a corner window: the median over each row's
/// science pixels, and the mean over each row's 4 reference columns (rows 4..ny).
fn row_series(cfg: &SimConfig, truth: &Truth, raw: &[f64]) -> Vec<(Vec<f64>, Vec<f64>)> {
    let (ny, nx, ng) = (truth.ny, truth.nx, cfg.ngroups);
    let mut out = Vec::new();
    for i in 0..cfg.nints {
        for g in 0..ng - 1 {
            let plane = |g: usize| (i * ng + g) * ny * nx;
            let d = |p: usize| raw[plane(g + 1) + p] - raw[plane(g) + p];
            let (mut sci, mut refs) = (Vec::new(), Vec::new());
            for y in 4..ny {
                let mut row: Vec<f64> = (4..nx).map(|x| d(y * nx + x)).collect();
                sci.push(median(&mut row));
                refs.push((0..4).map(|x| d(y * nx + x)).sum::<f64>() / 4.0);
            }
            out.push((sci, refs));
        }
    }
    out
}

#[test]
fn one_over_f_banding_along_the_rows_reference_pixels_included() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = realistic(256, 2, 6);
    let plain = SimConfig::default()
        .with_square_subarray(256)
        .with_ramp(2, 6)
        .with_seed(21);
    let mut ratios = Vec::new();
    for (k, c) in [&cfg, &plain].into_iter().enumerate() {
        let truth = Truth::generate(c).unwrap();
        let raw = dark_ramps(dir.path(), c, &truth);
        let series = row_series(c, &truth, &raw);
        let low: f64 = series.iter().map(|s| power(&s.0, 1..9)).sum();
        let high: f64 = series.iter().map(|s| power(&s.0, 64..126)).sum();
        let rms = mean(&series.iter().map(|s| std(&s.0)).collect::<Vec<_>>());
        ratios.push((low / high, rms));
        if k == 0 {
            // The reference columns see the same banding (their own noise is ~3.5 DN per row).
            let (sci, refs): (Vec<f64>, Vec<f64>) = series
                .iter()
                .flat_map(|s| s.0.iter().copied().zip(s.1.iter().copied()))
                .unzip();
            let r = correlation(&sci, &refs);
            assert!(r > 0.4, "reference columns vs science rows: r = {r}");
        }
    }
    let ((ratio, rms), (plain_ratio, plain_rms)) = (ratios[0], ratios[1]);
    // 1/f: far more power at low than at high frequency; white read noise: about the same.
    assert!(ratio > 8.0, "realistic low/high power {ratio}");
    assert!(plain_ratio < 2.0, "default low/high power {plain_ratio}");
    // A CDS difference of two reads with 3 DN rms each, minus what the 252-row mean takes.
    assert!((2.0..6.0).contains(&rms), "realistic row rms {rms}");
    assert!(plain_rms < 1.2, "default row rms {plain_rms}");
}

/// A full-width 2048 × 8 window (4 outputs, reference rows 0..4) with only reset offsets and
/// drifts, and the same with the whole realistic preset.
#[test]
fn reset_offsets_and_drifts_in_the_reference_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let wide = SimConfig::default()
        .with_subarray(Subarray {
            name: "GENERIC".to_string(),
            xstart: 1,
            ystart: 1,
            nx: 2048,
            ny: 8,
        })
        .with_ramp(6, 6)
        .with_seed(5);
    let mut only = wide.clone().without_defects().without_cosmic_rays();
    only.reset_offset_sigma = 30.0;
    only.amp_drift_per_frame = 0.5;
    for (cfg, exact) in [(only, true), (wide.with_realistic_noise(), false)] {
        let truth = Truth::generate(&cfg).unwrap();
        let raw = dark_ramps(dir.path(), &cfg, &truth);
        let (nx, ng) = (truth.nx, cfg.ngroups);
        let mut offsets = Vec::new();
        let mut drifts = Vec::new();
        for i in 0..cfg.nints {
            for o in 0..4 {
                // Mean of read - bias over the output's reference-row pixels, per group.
                let level = |g: usize, rows: std::ops::Range<usize>| {
                    let mut sum = 0.0;
                    let mut n = 0.0;
                    for y in rows {
                        for x in (o * 512..(o + 1) * 512).filter(|x| (4..2044).contains(x)) {
                            let p = y * nx + x;
                            sum += raw[(i * ng + g) * 8 * nx + p] - f64::from(truth.bias[p]);
                            n += 1.0;
                        }
                    }
                    sum / n
                };
                let v: Vec<f64> = (0..ng).map(|g| level(g, 0..4)).collect();
                let gm = (ng - 1) as f64 / 2.0;
                let sxx: f64 = (0..ng).map(|g| (g as f64 - gm).powi(2)).sum();
                let slope = (0..ng).map(|g| (g as f64 - gm) * v[g]).sum::<f64>() / sxx;
                let offset = mean(&v) - slope * gm;
                if exact {
                    // The science pixels of the output have the same offset (dark current is
                    // negligible here).
                    let sci = level(0, 4..8);
                    assert!(
                        (sci - v[0]).abs() < 1.0,
                        "int {i} output {o}: {sci} vs {}",
                        v[0]
                    );
                }
                offsets.push(offset);
                drifts.push(slope);
            }
        }
        let s = std(&offsets);
        assert!(
            (15.0..50.0).contains(&s),
            "reset offsets σ {s}: {offsets:?}"
        );
        if exact {
            let max = drifts.iter().fold(0.0f64, |m, d| m.max(d.abs()));
            assert!(max <= 0.52, "drift beyond ±0.5 DN/frame: {drifts:?}");
            assert!(max > 0.25, "no visible drift: {drifts:?}");
            // Uniform in ±0.5: σ 0.29.
            let sd = std(&drifts);
            assert!((0.15..0.45).contains(&sd), "drift σ {sd}: {drifts:?}");
        }
    }
}

/// Robust σ (1.4826 × MAD) of the CDS differences of each pixel, after taking each row's median
/// difference out (the banding, offsets and drifts are common to a row of a 1-output window).
fn cds_noise(cfg: &SimConfig, truth: &Truth, raw: &[f64]) -> Vec<f64> {
    let (ny, nx, ng) = (truth.ny, truth.nx, cfg.ngroups);
    let mut diffs = vec![Vec::new(); ny * nx];
    for i in 0..cfg.nints {
        for g in 0..ng - 1 {
            let plane = |g: usize| (i * ng + g) * ny * nx;
            for y in 0..ny {
                let d: Vec<f64> = (0..nx)
                    .map(|x| raw[plane(g + 1) + y * nx + x] - raw[plane(g) + y * nx + x])
                    .collect();
                let m = median(&mut d[4.min(nx)..].to_vec());
                for x in 0..nx {
                    diffs[y * nx + x].push(d[x] - m);
                }
            }
        }
    }
    diffs
        .into_iter()
        .map(|mut d| {
            let m = median(&mut d);
            let mut dev: Vec<f64> = d.iter().map(|v| (v - m).abs()).collect();
            1.4826 * median(&mut dev)
        })
        .collect()
}

#[test]
fn noisy_pixels_have_six_times_the_read_noise_and_the_readnoise_reference_knows_them() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = realistic(128, 2, 20)
        .without_defects()
        .with_noisy_fraction(0.005);
    let truth = Truth::generate(&cfg).unwrap();
    assert_eq!(truth.count(DefectClass::Noisy), 77);
    let noisy: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| DefectClass::Noisy.matches(truth.defects[i]))
        .collect();
    let normal: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| truth.defects[i] == 0)
        .collect();
    let mut true_rn: Vec<f64> = normal
        .iter()
        .map(|&i| f64::from(truth.readnoise[i]))
        .collect();
    let median_rn = median(&mut true_rn);
    for &i in &noisy {
        assert_eq!(truth.defects[i], dq::UNRELIABLE_SLOPE);
        let r = f64::from(truth.readnoise[i]) / median_rn;
        assert!(
            (4.95..8.05).contains(&r),
            "noisy pixel {i}: {r} × the median"
        );
    }

    let raw = dark_ramps(dir.path(), &cfg, &truth);
    let measured = cds_noise(&cfg, &truth, &raw);
    let mut normal_measured: Vec<f64> = normal.iter().map(|&i| measured[i]).collect();
    let normal_level = median(&mut normal_measured);
    assert!(
        (normal_level / median_rn - 1.0).abs() < 0.05,
        "normal pixels: {normal_level} vs {median_rn}"
    );
    let mut vs_truth: Vec<f64> = noisy
        .iter()
        .map(|&i| measured[i] / f64::from(truth.readnoise[i]))
        .collect();
    let mut vs_normal: Vec<f64> = noisy.iter().map(|&i| measured[i] / normal_level).collect();
    let (t, n) = (median(&mut vs_truth), median(&mut vs_normal));
    assert!((t - 1.0).abs() < 0.1, "noisy: measured/true {t}");
    assert!((5.5..7.5).contains(&n), "noisy: {n} × the normal CDS noise");

    // The READNOISE step reference is the truth map, noisy pixels included.
    let uncal = dir.path().join("x_uncal.fits");
    let refs =
        write_step_references(dir.path(), &uncal, &truth, &[StepReference::Readnoise]).unwrap();
    let sci = read_all::<f32>(&refs[0].1, "SCI");
    for &i in &noisy {
        assert_eq!(sci[i], truth.readnoise[i]);
    }
    assert_eq!(DefectClass::Noisy.expected_flag(), dq::TELEGRAPH);
    assert_eq!(DefectClass::Saturated.expected_flag(), dq::HOT);
    assert_eq!(
        DefectClass::LowPedestal.expected_flag(),
        dq::OTHER_BAD_PIXEL
    );
    assert_eq!(DefectClass::Rc.expected_flag(), dq::RC);
}

#[test]
fn readnoise_tail_multiplies_the_chosen_fraction_by_1_3_to_3() {
    let base = SimConfig::default().with_square_subarray(128).with_seed(3);
    let mut tail = base.clone();
    tail.readnoise_tail = 0.05;
    let (a, b) = (
        Truth::generate(&base).unwrap(),
        Truth::generate(&tail).unwrap(),
    );
    let sci: Vec<usize> = (0..a.defects.len())
        .filter(|&i| !a.is_reference(i))
        .collect();
    let factors: Vec<f64> = sci
        .iter()
        .map(|&i| f64::from(b.readnoise[i]) / f64::from(a.readnoise[i]))
        .filter(|&f| f != 1.0)
        .collect();
    let fraction = factors.len() as f64 / sci.len() as f64;
    // 15376 science pixels: σ of the fraction 0.0018.
    assert!((fraction - 0.05).abs() < 0.01, "tail fraction {fraction}");
    assert!(factors.iter().all(|f| (1.299..=3.0001).contains(f)));
    let capped = factors.iter().filter(|&&f| f > 2.999).count() as f64 / factors.len() as f64;
    // P(Pareto(1.3, 3) > 3) = 0.077.
    assert!((0.03..0.14).contains(&capped), "capped {capped}");
    // Reference pixels and everything else stay as they were.
    for i in 0..a.defects.len() {
        if a.is_reference(i) {
            assert_eq!(a.readnoise[i], b.readnoise[i]);
        }
    }
    assert_eq!((a.bias.clone(), a.defects.clone()), (b.bias, b.defects));
}

#[test]
fn cosmic_rays_per_group_as_asked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = realistic(160, 2, 10).without_defects();
    let tgroup = cfg.frame_time().unwrap();
    assert!((cfg.cosmic_ray_rate * tgroup / 1e-3 - 1.0).abs() < 1e-12);
    let truth = Truth::generate(&cfg).unwrap();
    let set = ProductSet {
        jump: true,
        ..ProductSet::NONE
    };
    let (_, files) = write_products(dir.path(), &cfg, &truth, Kind::Dark, 0, set).unwrap();
    let jump = &files.iter().find(|f| f.0 == Product::Jump).unwrap().1;
    let groupdq = read_all::<u8>(jump, "GROUPDQ");
    let n = truth.ny * truth.nx;
    let sci = (0..n).filter(|&p| !truth.is_reference(p)).count();
    let hits = groupdq
        .iter()
        .enumerate()
        .filter(|&(k, &q)| u32::from(q) & dq::JUMP_DET != 0 && !truth.is_reference(k % n))
        .count() as f64;
    // Hits land after group 0: 9 groups of 2 integrations.
    let expected = 1e-3 * (sci * 2 * 9) as f64;
    assert!(
        (hits - expected).abs() < 5.0 * expected.sqrt(),
        "{hits} jumps, {expected} expected"
    );
}

#[test]
fn telegraph_switching_rates_spread_and_recorded_in_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::default()
        .with_square_subarray(128)
        .with_ramp(2, 60)
        .with_seed(9)
        .without_defects()
        .without_cosmic_rays();
    cfg.defects.telegraph = 0.005;
    cfg.telegraph_switch_prob = (0.1, 0.3);
    let truth = Truth::generate(&cfg).unwrap();
    let pixels: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| DefectClass::Telegraph.matches(truth.defects[i]))
        .collect();
    assert_eq!(pixels.len(), 77);
    let probs: Vec<f64> = pixels
        .iter()
        .map(|&i| f64::from(truth.telegraph_prob[i]))
        .collect();
    assert!(probs.iter().all(|p| (0.1..=0.3).contains(p)), "{probs:?}");
    let (lo, hi) = probs
        .iter()
        .fold((1.0f64, 0.0f64), |(a, b), &p| (a.min(p), b.max(p)));
    assert!(lo < 0.12 && hi > 0.27, "no spread: {lo}..{hi}");

    // Each switch between two single-frame groups is a jump of the jump product.
    let set = ProductSet {
        jump: true,
        ..ProductSet::NONE
    };
    let (_, files) = write_products(dir.path(), &cfg, &truth, Kind::Dark, 0, set).unwrap();
    let jump = &files.iter().find(|f| f.0 == Product::Jump).unwrap().1;
    let groupdq = read_all::<u8>(jump, "GROUPDQ");
    let n = truth.ny * truth.nx;
    let measured: Vec<f64> = pixels
        .iter()
        .map(|&p| {
            let jumps = (0..2 * 60)
                .filter(|&plane| u32::from(groupdq[plane * n + p]) & dq::JUMP_DET != 0)
                .count();
            jumps as f64 / (2.0 * 59.0)
        })
        .collect();
    let r = correlation(&measured, &probs);
    assert!(r > 0.6, "measured vs true switching rates: r = {r}");
    assert!((mean(&measured) - mean(&probs)).abs() < 0.02);

    // truth.fits keeps the per-pixel rates; a file of a single rate gives it to every pixel.
    let path = dir.path().join("truth.fits");
    truth.write(&path, &cfg).unwrap();
    assert_eq!(Truth::read(&path).unwrap(), truth);
    let mut single = cfg.clone();
    single.telegraph_switch_prob = (0.2, 0.2);
    let t1 = Truth::generate(&single).unwrap();
    assert!(pixels.iter().all(|&i| t1.telegraph_prob[i] == 0.2));
    t1.write(&path, &single).unwrap();
    assert_eq!(Truth::read(&path).unwrap(), t1);
}

#[test]
fn realistic_config_is_checked_and_defaults_are_off() {
    let d = SimConfig::default();
    assert_eq!(
        (d.readnoise_tail, d.noise_1f_rms, d.reset_offset_sigma),
        (0.0, 0.0, 0.0)
    );
    assert_eq!(d.amp_drift_per_frame, 0.0);
    assert_eq!(d.defects.noisy, 0.0);
    assert_eq!(d.telegraph_switch_prob, (0.25, 0.25));
    let r = SimConfig::realistic();
    assert_eq!(r.defects.noisy, 1e-4);
    assert_eq!(r.telegraph_switch_prob, (0.1, 0.3));
    // Full frame: 10.737 s per group.
    assert!((r.cosmic_ray_rate * 10.737 / 1e-3 - 1.0).abs() < 1e-3);
    let bad = |f: fn(&mut SimConfig)| {
        let mut c = SimConfig::default().with_square_subarray(64);
        f(&mut c);
        Truth::generate(&c).is_err()
    };
    assert!(bad(|c| c.noise_1f_rms = -1.0));
    assert!(bad(|c| c.reset_offset_sigma = f64::NAN));
    assert!(bad(|c| c.readnoise_tail = 1.5));
    assert!(bad(|c| c.telegraph_switch_prob = (0.3, 0.1)));
    assert!(bad(|c| c.telegraph_switch_prob = (0.0, 0.1)));
    assert!(!bad(|c| c.telegraph_switch_prob = (0.1, 0.3)));
}
