//! Detection of every defect class by the whole generator on simulated data with known injected
//! defects, noise and cosmic rays (darks with rate/rateints/jump/fitopt, flats with rate), run as
//! a job: per class, the fraction of injected pixels found with their own flag and how many
//! carry another class's flag; per flag, the fraction of clean pixels wrongly flagged.
//!
//! Targets (issue): every class found at >= 99.5 % with its own flag (a LOW_QE pixel is not
//! also DEAD), at most 1 in 10,000 clean pixels wrongly flagged for any flag. The full-frame
//! table (2048×2048 NIRCam NRCA1, 5 darks and 4 flats of 2 × 10 groups) is
//! `full_frame_all_classes`; run it in release:
//! `cargo test --release -p mkref-bpm --test detection -- --ignored --nocapture`.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{In, read_mask, run_bpm};
use mkrefs_plugin_api::ImageKind;
use mkrefs_sim::{
    DefectClass, DefectFractions, Kind, Layout, Product, SimConfig, Truth, write_selected,
};
use mkrefs_support::dq;

/// Each class and the flag it must carry.
const CLASSES: [(DefectClass, u32, &str); 10] = [
    (DefectClass::Dead, dq::DEAD, "DEAD"),
    (DefectClass::LowQe, dq::LOW_QE, "LOW_QE"),
    (DefectClass::Open, dq::OPEN, "OPEN"),
    (DefectClass::AdjOpen, dq::ADJ_OPEN, "ADJ_OPEN"),
    (DefectClass::Hot, dq::HOT, "HOT (unsaturated)"),
    (
        DefectClass::Saturated,
        dq::HOT,
        "HOT (saturated in all groups)",
    ),
    (DefectClass::Rc, dq::RC, "RC"),
    (DefectClass::Telegraph, dq::TELEGRAPH, "TELEGRAPH"),
    (
        DefectClass::LowPedestal,
        dq::OTHER_BAD_PIXEL,
        "OTHER_BAD_PIXEL (low pedestal)",
    ),
    (
        DefectClass::ReferencePixel,
        dq::REFERENCE_PIXEL,
        "REFERENCE_PIXEL",
    ),
];

/// The class flags the generator sets.
const FLAGS: [(u32, &str); 9] = [
    (dq::DEAD, "DEAD"),
    (dq::LOW_QE, "LOW_QE"),
    (dq::OPEN, "OPEN"),
    (dq::ADJ_OPEN, "ADJ_OPEN"),
    (dq::HOT, "HOT"),
    (dq::RC, "RC"),
    (dq::TELEGRAPH, "TELEGRAPH"),
    (dq::OTHER_BAD_PIXEL, "OTHER_BAD_PIXEL"),
    (dq::REFERENCE_PIXEL, "REFERENCE_PIXEL"),
];

/// A scratch directory in /dev/shm when there is one (the full-frame set is about 1.5 GB), or
/// in `MKREFS_TEST_TMPDIR`.
fn scratch_dir() -> tempfile::TempDir {
    if let Some(d) = std::env::var_os("MKREFS_TEST_TMPDIR") {
        return tempfile::tempdir_in(d).unwrap();
    }
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().unwrap()
}

/// Writes `darks` darks (rate, rateints, jump, fitopt; lean layout) and `flats` flats (rate),
/// only the products the generator reads.
fn simulate(dir: &Path, cfg: &SimConfig, darks: usize, flats: usize) -> (Vec<In>, Truth) {
    let truth = Truth::generate(cfg).unwrap();
    let mut inputs = Vec::new();
    for (kind, n) in [(Kind::Dark, darks), (Kind::Flat, flats)] {
        for i in 0..n {
            let products: &[Product] = match kind {
                Kind::Dark => &[
                    Product::Rate,
                    Product::Rateints,
                    Product::Jump,
                    Product::Fitopt,
                ],
                Kind::Flat => &[Product::Rate],
            };
            let (info, files) =
                write_selected(dir, cfg, &truth, kind, i, products, Layout::Lean).unwrap();
            let get = |p: Product| files.iter().find(|f| f.0 == p).unwrap().1.clone();
            let (label, image_kind, extra) = match kind {
                Kind::Dark => (
                    format!("D{}", i + 1),
                    ImageKind::Dark,
                    vec![
                        ("rateints".to_string(), get(Product::Rateints)),
                        ("jump".to_string(), get(Product::Jump)),
                        ("fitopt".to_string(), get(Product::Fitopt)),
                    ],
                ),
                Kind::Flat => (format!("F{}", i + 1), ImageKind::Flat, vec![]),
            };
            inputs.push(In {
                label,
                kind: image_kind,
                path: get(Product::Rate),
                raw: dir.join(info.uncal_name()),
                products: extra,
            });
        }
    }
    (inputs, truth)
}

fn run(cfg: &SimConfig, title: &str) {
    let dir = scratch_dir();
    let t0 = Instant::now();
    let (inputs, truth) = simulate(dir.path(), cfg, 5, 4);
    let t_sim = t0.elapsed();
    let out = dir.path().join("bpm_mask.fits");
    let t1 = Instant::now();
    let o = run_bpm(&inputs, &out, &[]);
    let t_job = t1.elapsed();
    let summary = o.ok().summary.to_string();
    let (m, ny, nx) = read_mask(&out);
    assert_eq!((ny, nx), (truth.ny, truth.nx));

    let all_class_bits: u32 = FLAGS.iter().map(|f| f.0).fold(0, |a, b| a | b);
    println!("\n{title}");
    println!(
        "| class | injected | found with own flag | also another class's flag |\n|---|---:|---:|---:|"
    );
    let mut failures = Vec::new();
    for (class, flag, name) in CLASSES {
        let idx: Vec<usize> = (0..truth.defects.len())
            .filter(|&i| class.matches(truth.defects[i]))
            .collect();
        let found = idx.iter().filter(|&&i| m[i] & flag != 0).count();
        let other = idx
            .iter()
            .filter(|&&i| m[i] & all_class_bits & !flag & !dq::REFERENCE_PIXEL != 0)
            .count();
        let n = idx.len().max(1) as f64;
        println!(
            "| {name} | {} | {found} ({:.2} %) | {other} ({:.2} %) |",
            idx.len(),
            100.0 * found as f64 / n,
            100.0 * other as f64 / n
        );
        if idx.is_empty() {
            failures.push(format!("{name}: nothing injected"));
        } else if (found as f64) < 0.995 * n {
            failures.push(format!("{name}: found {found} of {}", idx.len()));
        }
        // Cross-class flags are allowed on at most 2 % (as the darks test); LOW_QE/OPEN vs DEAD
        // is checked exactly below.
        if other as f64 > 0.02 * n {
            failures.push(format!(
                "{name}: {other} of {} carry another class's flag",
                idx.len()
            ));
        }
    }
    let clean: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| truth.defects[i] == 0)
        .collect();
    println!(
        "\n| flag | clean pixels wrongly flagged (of {}) | fraction |\n|---|---:|---:|",
        clean.len()
    );
    for (flag, name) in FLAGS {
        let n = clean.iter().filter(|&&i| m[i] & flag != 0).count();
        let f = n as f64 / clean.len() as f64;
        println!("| {name} | {n} | {f:.2e} |");
        if f > 1e-4 {
            failures.push(format!(
                "{name}: {n} clean pixels wrongly flagged ({f:.2e})"
            ));
        }
    }
    let low_qe_dead = (0..truth.defects.len())
        .filter(|&i| {
            (DefectClass::LowQe.matches(truth.defects[i])
                || DefectClass::Open.matches(truth.defects[i]))
                && m[i] & dq::DEAD != 0
        })
        .count();
    println!("\nLOW_QE or OPEN pixels also flagged DEAD: {low_qe_dead}");
    println!(
        "simulation {:.1} s; bpm job {:.2} s on 2 threads\nsummary: {summary}",
        t_sim.as_secs_f64(),
        t_job.as_secs_f64()
    );
    assert_eq!(low_qe_dead, 0, "a LOW_QE or OPEN pixel is not also DEAD");
    assert!(
        failures.is_empty(),
        "targets missed:\n{}",
        failures.join("\n")
    );
}

/// 512×512 NIRCam window at the detector corner (reference pixels on two sides only), 40
/// groups (a subarray's frame time is 2.7 s; 40 groups give about the ramp length of 10
/// full-frame groups, which the faintest hot pixels need), 10× the default defect density so
/// every class has a few hundred pixels.
#[test]
fn subarray_all_classes() {
    let cfg = SimConfig {
        defects: DefectFractions {
            hot: 2e-3,
            ..DefectFractions::uniform(1e-3)
        },
        ..SimConfig::default()
    }
    .with_square_subarray(512)
    .with_ramp(2, 40)
    .with_seed(11);
    run(
        &cfg,
        "512x512 NIRCam corner window, 5 darks + 4 flats, 2 x 40 groups",
    );
}

/// The case: full-frame NIRCam NRCA1, 5 darks and 4 flats of 2 integrations × 10
/// groups, default noise, cosmic rays and defect densities.
#[test]
#[ignore = "full frame: run in release with --ignored"]
fn full_frame_all_classes() {
    run(
        &SimConfig::default(),
        "2048x2048 NIRCam NRCA1, 5 darks + 4 flats, 2 x 10 groups",
    );
}
