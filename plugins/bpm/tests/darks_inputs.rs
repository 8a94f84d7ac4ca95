//! Bad input to the dark search: each a clear error naming the file (issue: different detectors
//! or subarrays, a rate file where a ramp is needed and the reverse, missing jump or fitopt
//! products, too few integrations, NaN-filled inputs, an unknown flag mnemonic), and the
//! geometry cases: a subarray away from the detector edges, MIRI.

use std::path::{Path, PathBuf};

use mkref_bpm::darks::{DarkInputs, DarkParams, DarkResult, bad_pixels_from_darks};
use mkrefs_plugin_api::GeneratorError;
use mkrefs_sim::{DefectClass, Kind, Layout, Product, SimConfig, Truth, write_selected};
use mkrefs_support::dq;
use mkrefs_support::fits::{FitsWriter, ImageReader, read_primary_header};
use mkrefs_support::geometry::Subarray;

fn small(detector: &str) -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_detector(detector)
        .with_square_subarray(64)
        .with_ramp(2, 6);
    cfg.defects = mkrefs_sim::DefectFractions::uniform(2e-3);
    cfg
}

/// `n` darks of `cfg` in `dir` (exposure numbers from `first`), with uncal files if asked.
fn darks(dir: &Path, cfg: &SimConfig, first: usize, n: usize, uncal: bool) -> Vec<DarkInputs> {
    let truth = Truth::generate(cfg).unwrap();
    (first..first + n)
        .map(|i| {
            let mut products = vec![Product::Jump, Product::Rateints, Product::Fitopt];
            if uncal {
                products.push(Product::Uncal);
            }
            let (info, files) =
                write_selected(dir, cfg, &truth, Kind::Dark, i, &products, Layout::Lean).unwrap();
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
        .collect()
}

fn run(inputs: &[DarkInputs], p: &DarkParams) -> Result<DarkResult, GeneratorError> {
    bad_pixels_from_darks(inputs, p, &|_| {})
}

fn err(inputs: &[DarkInputs], p: &DarkParams) -> String {
    run(inputs, p).unwrap_err().message.to_string()
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn darks_of_different_detectors_or_windows_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let other = darks(dir.path(), &small("NRCA2"), 3, 1, false);
    inputs.extend(other.clone());
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("different detectors") && e.contains("DETECTOR"),
        "{e}"
    );
    assert!(e.contains(&name(&other[0].slope)), "{e}");
    // Same detector, window elsewhere on it.
    let mut inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let moved = small("NRCA1").with_substrt(101, 1);
    inputs.extend(darks(dir.path(), &moved, 4, 1, false));
    let e = err(&inputs, &DarkParams::default());
    assert!(e.contains("SUBSTRT1"), "{e}");
}

#[test]
fn rate_for_ramp_and_ramp_for_rate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let good = inputs.clone();
    // A slope file given as the jump product.
    inputs[1].jump = Some(inputs[1].slope.clone());
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("not a ramp") && e.contains(&name(&inputs[1].slope)),
        "{e}"
    );
    // A ramp given as the slopes.
    let mut inputs = good.clone();
    inputs[2].slope = inputs[2].jump.clone().unwrap();
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("is a ramp") && e.contains(&name(&inputs[2].slope)),
        "{e}"
    );
}

#[test]
fn missing_jump_or_fitopt_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let good = inputs.clone();
    inputs[0].jump = None;
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("no jump product") && e.contains(&name(&inputs[0].slope)),
        "{e}"
    );
    let mut inputs = good.clone();
    inputs[2].fitopt = None;
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("no fitopt product") && e.contains(&name(&inputs[2].slope)),
        "{e}"
    );
    // A fitopt path that does not exist: the FITS error names it.
    let mut inputs = good;
    inputs[1].fitopt = Some(dir.path().join("nowhere_fitopt.fits"));
    let e = err(&inputs, &DarkParams::default());
    assert!(e.contains("nowhere_fitopt.fits"), "{e}");
}

#[test]
fn too_few_integrations_say_how_many_are_needed() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = darks(dir.path(), &small("NRCA1"), 0, 2, false);
    let e = err(&inputs, &DarkParams::default());
    assert!(
        e.contains("too few") && e.contains("at least 5") && e.contains("4 integration"),
        "{e}"
    );
    assert!(e.contains(&name(&inputs[0].slope)), "{e}");
}

/// Copies `src` to `dst` with the image `hdu` replaced by NaN (other extensions as they are).
fn nan_copy(src: &Path, dst: &Path, hdus: &[&str], nan_hdu: &str) -> PathBuf {
    let mut w = FitsWriter::create(dst).unwrap();
    for (k, v) in read_primary_header(src).unwrap().iter() {
        if !matches!(k, "SIMPLE" | "BITPIX" | "NAXIS" | "EXTEND") {
            w.set_primary_key(k, v, "").unwrap();
        }
    }
    for h in hdus {
        let mut r = ImageReader::open(src, h).unwrap();
        let shape = r.shape().to_vec();
        let mut data: Vec<f32> = (0..r.n_planes())
            .flat_map(|p| r.read_plane::<f32>(p).unwrap())
            .collect();
        if *h == nan_hdu {
            data.fill(f32::NAN);
        }
        w.write_image(h, &shape, &data).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn nan_filled_inputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let good = inputs.clone();
    let bad = dir.path().join("nan_rateints.fits");
    nan_copy(&inputs[1].slope, &bad, &["SCI", "ERR"], "SCI");
    inputs[1].slope = bad.clone();
    let e = err(&inputs, &DarkParams::default());
    assert!(e.contains("NaN") && e.contains("nan_rateints.fits"), "{e}");
    let mut inputs = good;
    let bad = dir.path().join("nan_fitopt.fits");
    nan_copy(
        inputs[0].fitopt.as_ref().unwrap(),
        &bad,
        &["PEDESTAL"],
        "PEDESTAL",
    );
    inputs[0].fitopt = Some(bad);
    let e = err(&inputs, &DarkParams::default());
    assert!(e.contains("NaN") && e.contains("nan_fitopt.fits"), "{e}");
}

#[test]
fn unknown_flag_mnemonic_or_class_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let mut p = DarkParams::default();
    p.flag_values
        .0
        .insert("rc".into(), vec!["RC".into(), "WONKY".into()]);
    let e = err(&inputs, &p);
    assert!(e.contains("WONKY"), "{e}");
    let mut p = DarkParams::default();
    p.do_not_use.push("hott".into());
    let e = err(&inputs, &p);
    assert!(e.contains("hott"), "{e}");
    let p = DarkParams {
        early_cutoff_fraction: 0.7,
        ..DarkParams::default()
    };
    assert!(err(&inputs, &p).contains("early_cutoff_fraction"));
}

/// The DO_NOT_USE mapping follows `do_not_use`, and calling twice gives the same map (upstream's
/// mutable default turned HOT into HOT|SATURATED on the second call).
#[test]
fn do_not_use_mapping_and_repeatability() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = darks(dir.path(), &small("NRCA1"), 0, 3, false);
    let p = DarkParams::default();
    let a = run(&inputs, &p).unwrap();
    let b = run(&inputs, &p).unwrap();
    assert_eq!(a.dq, b.dq);
    let hot: Vec<usize> = (0..a.dq.len())
        .filter(|&i| a.classes["saturated"][i])
        .collect();
    assert!(!hot.is_empty());
    for &i in &hot {
        assert_eq!(
            a.dq[i] & !dq::TELEGRAPH,
            dq::HOT | dq::DO_NOT_USE,
            "pixel {i}"
        );
    }
    let p2 = DarkParams {
        do_not_use: vec!["rc".into()],
        ..DarkParams::default()
    };
    let c = run(&inputs, &p2).unwrap();
    for i in 0..c.dq.len() {
        if c.classes["saturated"][i] {
            assert_eq!(c.dq[i] & dq::DO_NOT_USE, 0);
        }
        if c.classes["rc"][i] {
            assert_ne!(c.dq[i] & dq::DO_NOT_USE, 0);
            assert_ne!(c.dq[i] & dq::RC, 0);
        }
    }
}

/// A subarray in the middle of the detector has no reference pixels: none is flagged, and every
/// pixel is searched (upstream assumes a 4-pixel border).
#[test]
fn subarray_away_from_the_edges_has_no_reference_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = small("NRCA1").with_subarray(Subarray {
        name: "GENERIC".into(),
        xstart: 901,
        ystart: 901,
        nx: 64,
        ny: 64,
    });
    let truth = Truth::generate(&cfg).unwrap();
    let inputs = darks(dir.path(), &cfg, 0, 3, false);
    let r = run(&inputs, &DarkParams::default()).unwrap();
    assert!(r.classes["reference_pixel"].iter().all(|&b| !b));
    assert!(r.dq.iter().all(|&v| v & dq::REFERENCE_PIXEL == 0));
    // Defects on the window's border rows and columns are found too.
    let sat: Vec<usize> = (0..truth.defects.len())
        .filter(|&i| DefectClass::Saturated.matches(truth.defects[i]))
        .collect();
    assert!(!sat.is_empty());
    assert!(sat.iter().all(|&i| r.dq[i] & dq::HOT != 0));
}

/// MIRI: reference columns only (4 left, 4 right), the pedestal tests use |group 2 − PEDESTAL|
/// from the uncal ramp, which is then required.
#[test]
fn miri_layout_and_uncal_ramps() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = SimConfig::default()
        .with_detector("MIRIMAGE")
        .with_ramp(2, 6);
    cfg.defects = mkrefs_sim::DefectFractions::uniform(2e-4);
    let truth = Truth::generate(&cfg).unwrap();
    let inputs = darks(dir.path(), &cfg, 0, 3, true);
    let r = run(&inputs, &DarkParams::default()).unwrap();
    assert_eq!((r.ny, r.nx), (1024, 1032));
    for y in [0, 500, 1023] {
        for x in 0..1032 {
            let want = !(4..1028).contains(&x);
            assert_eq!(
                r.classes["reference_pixel"][y * 1032 + x],
                want,
                "({y},{x})"
            );
        }
    }
    let found = |class: DefectClass, flag: u32| {
        let idx: Vec<usize> = (0..truth.defects.len())
            .filter(|&i| class.matches(truth.defects[i]))
            .collect();
        let n = idx.iter().filter(|&&i| r.dq[i] & flag != 0).count();
        (n, idx.len())
    };
    let (n, of) = found(DefectClass::Rc, dq::RC);
    assert!(of > 0 && n * 100 >= of * 99, "RC {n} of {of}");
    let (n, of) = found(DefectClass::Saturated, dq::HOT);
    assert!(of > 0 && n == of, "saturated {n} of {of}");
    // Without the uncal ramps MIRI cannot be searched.
    let mut no_uncal = inputs.clone();
    no_uncal[0].uncal = dir.path().join("missing_uncal.fits");
    let e = err(&no_uncal, &DarkParams::default());
    assert!(e.contains("missing_uncal.fits"), "{e}");
}
