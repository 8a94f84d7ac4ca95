//! Detection of the dark defect classes on simulated darks with known injected defects, noise
//! and cosmic rays: per class, the fraction of injected pixels found with their own flag, how
//! often they carry another class's flag, and the fraction of clean pixels wrongly flagged.
//!
//! Targets (issue): every class found at >= 99.5 % with its own flag, at most 1 in 10,000 clean
//! pixels wrongly flagged for any class. The full-frame table (2048×2048 NIRCam, 5 darks of
//! 2 × 10 groups) is `full_frame_detection_table`; run it in release:
//! `cargo test --release -p mkref-bpm --test darks_detection -- --ignored --nocapture`.

use std::path::Path;
use std::time::Instant;

use mkref_bpm::darks::{DarkInputs, DarkParams, DarkResult, bad_pixels_from_darks};
use mkrefs_sim::{DefectClass, Kind, Layout, Product, SimConfig, Truth, write_selected};
use mkrefs_support::dq;

/// Writes `n` darks (jump, rateints, fitopt; lean layout) and returns their inputs and truth.
fn simulate(dir: &Path, cfg: &SimConfig, n: usize) -> (Vec<DarkInputs>, Truth) {
    let truth = Truth::generate(cfg).unwrap();
    let inputs = (0..n)
        .map(|i| {
            let (info, files) = write_selected(
                dir,
                cfg,
                &truth,
                Kind::Dark,
                i,
                &[Product::Jump, Product::Rateints, Product::Fitopt],
                Layout::Lean,
            )
            .unwrap();
            let get = |p: Product| files.iter().find(|f| f.0 == p).unwrap().1.clone();
            DarkInputs {
                label: format!("D{}", i + 1),
                slope: get(Product::Rateints),
                rateints: None,
                jump: Some(get(Product::Jump)),
                fitopt: Some(get(Product::Fitopt)),
                uncal: dir.join(info.uncal_name()),
            }
        })
        .collect();
    (inputs, truth)
}

/// The dark classes of the truth, the flag each must carry, and its report name.
const CLASSES: [(DefectClass, u32, &str); 5] = [
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
];

/// The flags the dark search sets, with their names.
const FLAGS: [(u32, &str); 4] = [
    (dq::HOT, "HOT"),
    (dq::RC, "RC"),
    (dq::TELEGRAPH, "TELEGRAPH"),
    (dq::OTHER_BAD_PIXEL, "OTHER_BAD_PIXEL"),
];

struct Row {
    name: &'static str,
    injected: usize,
    found: usize,
    other: usize,
}

/// Builds, prints and checks the detection table.
fn table(truth: &Truth, res: &DarkResult, title: &str) {
    assert_eq!((res.ny, res.nx), (truth.ny, truth.nx));
    let dark_bits = dq::HOT | dq::RC | dq::TELEGRAPH | dq::OTHER_BAD_PIXEL;
    let mut rows = Vec::new();
    for (class, flag, name) in CLASSES {
        let idx: Vec<usize> = (0..truth.defects.len())
            .filter(|&i| class.matches(truth.defects[i]))
            .collect();
        let found = idx.iter().filter(|&&i| res.dq[i] & flag != 0).count();
        let other = idx
            .iter()
            .filter(|&&i| res.dq[i] & dark_bits & !flag != 0)
            .count();
        rows.push(Row {
            name,
            injected: idx.len(),
            found,
            other,
        });
    }
    // Clean: science pixels without any dark-visible defect (flat-only classes such as DEAD
    // and LOW_QE change nothing in a dark).
    let visible = dq::HOT | dq::RC | dq::TELEGRAPH | dq::OTHER_BAD_PIXEL | dq::SATURATED;
    let clean: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| !truth.is_reference(i) && truth.defects[i] & visible == 0)
        .collect();
    println!("\n{title}");
    println!(
        "| class | injected | found with own flag | also another dark flag |\n|---|---:|---:|---:|"
    );
    for r in &rows {
        println!(
            "| {} | {} | {} ({:.2} %) | {} ({:.2} %) |",
            r.name,
            r.injected,
            r.found,
            100.0 * r.found as f64 / r.injected.max(1) as f64,
            r.other,
            100.0 * r.other as f64 / r.injected.max(1) as f64
        );
    }
    println!(
        "\n| flag | clean pixels wrongly flagged (of {}) | fraction |\n|---|---:|---:|",
        clean.len()
    );
    let mut wrong = Vec::new();
    for (flag, name) in FLAGS {
        let n = clean.iter().filter(|&&i| res.dq[i] & flag != 0).count();
        let f = n as f64 / clean.len() as f64;
        println!("| {name} | {n} | {:.2e} |", f);
        wrong.push((name, n, f));
    }
    let refpix_ok = (0..truth.defects.len())
        .filter(|&i| truth.is_reference(i))
        .all(|i| res.dq[i] == dq::REFERENCE_PIXEL);
    println!("\nreference pixels flagged REFERENCE_PIXEL only: {refpix_ok}");
    for n in &res.notes {
        println!("note: {n}");
    }
    assert!(refpix_ok);
    for r in &rows {
        assert!(r.injected > 0, "{}: nothing injected", r.name);
        let f = r.found as f64 / r.injected as f64;
        assert!(f >= 0.995, "{}: found {:.4} < 0.995", r.name, f);
        // A pixel of one class is rarely flagged as another: at most 2 %.
        assert!(
            r.other as f64 <= 0.02 * r.injected as f64,
            "{}: {} of {} carry another class's flag",
            r.name,
            r.other,
            r.injected
        );
    }
    for (name, n, f) in wrong {
        assert!(
            f <= 1e-4,
            "{name}: {n} clean pixels wrongly flagged ({f:.2e})"
        );
    }
}

/// A scratch directory; the full-frame set (about 1.5 GB) goes to /dev/shm when there is one,
/// or to `MKREFS_TEST_TMPDIR`.
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

fn run(cfg: &SimConfig, darks: usize, title: &str) {
    let dir = scratch_dir();
    let t0 = Instant::now();
    let (inputs, truth) = simulate(dir.path(), cfg, darks);
    let t_sim = t0.elapsed();
    let t1 = Instant::now();
    let res = bad_pixels_from_darks(&inputs, &DarkParams::default(), &|_| {}).unwrap();
    let t_find = t1.elapsed();
    table(&truth, &res, title);
    println!(
        "simulation {:.1} s, search {:.2} s ({} threads)",
        t_sim.as_secs_f64(),
        t_find.as_secs_f64(),
        rayon::current_num_threads()
    );
}

/// 512×512 NIRCam subarray at the detector corner (reference pixels on two sides only), 5 darks
/// of 2 integrations × 40 groups, a higher defect density so that every class has enough pixels.
/// The subarray's frame time is 2.7 s (one output), so 40 groups give about the ramp length of
/// 10 full-frame groups: the faintest simulated hot pixels (0.5 DN/s) are then as far above the
/// slope noise as at full frame (with 10 groups of 2.7 s they are below it).
#[test]
fn subarray_detection_table() {
    let mut cfg = SimConfig::default()
        .with_square_subarray(512)
        .with_ramp(2, 40);
    cfg.defects.hot = 2e-3;
    cfg.defects.saturated = 1e-3;
    cfg.defects.rc = 1e-3;
    cfg.defects.telegraph = 1e-3;
    cfg.defects.low_pedestal = 1e-3;
    run(
        &cfg,
        5,
        "Dark search, NIRCam NRCA1 512x512 corner subarray, 5 darks x 2 ints x 40 groups",
    );
}

/// The full-frame table the issue asks for: 2048×2048 NIRCam, 5 darks of 2 × 10 groups, the
/// simulator's default defect fractions, noise and cosmic rays.
#[test]
#[ignore = "full frame: run with --release -- --ignored --nocapture"]
fn full_frame_detection_table() {
    let cfg = SimConfig::default().with_ramp(2, 10);
    run(
        &cfg,
        5,
        "Dark search, NIRCam NRCA1 full frame 2048x2048, 5 darks x 2 ints x 10 groups",
    );
}
