//! Bad input: each case fails its job with a clear message (what, which file, what to do).

mod common;

use std::path::{Path, PathBuf};

use common::{Hdr, In, flat_image, run_bpm, write_sci};
use mkrefs_plugin_api::{ErrorKind, ImageKind, ParamScalar, ParamValue};
use mkrefs_sim::{Kind, Layout, Product, SimConfig, Truth, write_selected};

const N: usize = 64;

fn flat(dir: &Path, name: &str, hdr: &Hdr) -> PathBuf {
    write_sci(&dir.join(name), hdr, &[N, N], &flat_image(N, N, 100.0))
}

fn three_flats(dir: &Path) -> Vec<In> {
    (0..3)
        .map(|i| {
            In::new(
                ImageKind::Flat,
                i,
                &flat(
                    dir,
                    &format!("f{i}_rate.fits"),
                    &Hdr::nircam("SUB64P", (1, 1)),
                ),
            )
        })
        .collect()
}

fn err_of(inputs: &[In], dir: &Path, overrides: &[(&str, ParamValue)]) -> (ErrorKind, String) {
    let o = run_bpm(inputs, &dir.join("out.fits"), overrides);
    let e = o.err();
    assert!(!dir.join("out.fits").exists(), "no output on failure");
    (e.kind, e.message.to_string())
}

fn strs(v: &[&str]) -> ParamValue {
    ParamValue::List(
        v.iter()
            .map(|s| ParamScalar::Str((*s).into()))
            .collect::<Vec<_>>()
            .into(),
    )
}

#[test]
fn flats_from_different_detectors() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = three_flats(dir.path());
    let other = Hdr {
        detector: "NRCA3",
        ..Hdr::nircam("SUB64P", (1, 1))
    };
    inputs[2] = In::new(
        ImageKind::Flat,
        2,
        &flat(dir.path(), "other_rate.fits", &other),
    );
    let (k, m) = err_of(&inputs, dir.path(), &[]);
    assert_eq!(k, ErrorKind::INVALID_INPUT);
    assert!(
        m.contains("differ in DETECTOR") && m.contains("F1") && m.contains("other_rate.fits"),
        "{m}"
    );
}

/// A dark of another window in the group of the flats (sizes equal, positions not).
#[test]
fn flats_and_darks_from_different_subarrays() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = three_flats(dir.path());
    let dark = flat(
        dir.path(),
        "dark_rate.fits",
        &Hdr::nircam("SUB64P", (101, 1)),
    );
    inputs.push(In {
        label: "D1".into(),
        kind: ImageKind::Dark,
        path: dark.clone(),
        raw: dark,
        products: vec![],
    });
    let (_, m) = err_of(&inputs, dir.path(), &[]);
    assert!(m.contains("differ in SUBSTRT1") && m.contains("D1"), "{m}");
}

/// A raw ramp where a rate product is needed: the message says to include the rate step.
#[test]
fn ramp_given_as_a_flat_slope() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = three_flats(dir.path());
    let hdr = Hdr {
        s_ramp: None,
        ..Hdr::nircam("SUB64P", (1, 1))
    };
    let ramp = write_sci(
        &dir.path().join("x_uncal.fits"),
        &hdr,
        &[1, 5, N, N],
        &vec![1000u16; 5 * N * N],
    );
    inputs[1] = In::new(ImageKind::Flat, 1, &ramp);
    let (_, m) = err_of(&inputs, dir.path(), &[]);
    assert!(
        m.contains("F2") && m.contains("not a slope product") && m.contains("'rate' step"),
        "{m}"
    );
}

/// A rate file where the dead flux check needs a ramp; and a ramp with too few groups.
#[test]
fn flux_check_needs_raw_ramps_with_four_groups() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = three_flats(dir.path());
    let rate = inputs[0].path.to_string_lossy().into_owned();
    let on = ("run_dead_flux_check", ParamValue::Bool(true));
    let (_, m) = err_of(
        &inputs,
        dir.path(),
        &[on.clone(), ("dead_flux_check_files", strs(&[&rate]))],
    );
    assert!(m.contains("slope product") && m.contains("uncal"), "{m}");
    let hdr = Hdr {
        s_ramp: None,
        ..Hdr::nircam("SUB64P", (1, 1))
    };
    let short = write_sci(
        &dir.path().join("short_uncal.fits"),
        &hdr,
        &[1, 3, N, N],
        &vec![1000u16; 3 * N * N],
    );
    let short = short.to_string_lossy().into_owned();
    let (_, m) = err_of(
        &inputs,
        dir.path(),
        &[on, ("dead_flux_check_files", strs(&[&short]))],
    );
    assert!(m.contains("3 group(s)") && m.contains("at least 4"), "{m}");
}

#[test]
fn nan_filled_flat() {
    let dir = tempfile::tempdir().unwrap();
    let mut inputs = three_flats(dir.path());
    let p = write_sci(
        &dir.path().join("nan_rate.fits"),
        &Hdr::nircam("SUB64P", (1, 1)),
        &[N, N],
        &vec![f32::NAN; N * N],
    );
    inputs[1] = In::new(ImageKind::Flat, 1, &p);
    let (_, m) = err_of(&inputs, dir.path(), &[]);
    assert!(
        m.contains("F2") && m.contains("NaN-filled") && m.contains("nan_rate.fits"),
        "{m}"
    );
}

#[test]
fn malformed_manual_flag_file() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = three_flats(dir.path());
    let f = dir.path().join("flags.txt");
    std::fs::write(&f, "# test\nx y flag\n10 20 DEAD\n10 2o DEAD\n").unwrap();
    let (k, m) = err_of(
        &inputs,
        dir.path(),
        &[("manual_flag_file", ParamValue::str(f.to_string_lossy()))],
    );
    assert_eq!(k, ErrorKind::INVALID_INPUT);
    assert!(
        m.contains("flags.txt, line 4, column 4") && m.contains("'2o'"),
        "{m}"
    );
    let (_, m) = err_of(
        &inputs,
        dir.path(),
        &[("manual_flag_file", ParamValue::str("/no/such/flags.txt"))],
    );
    assert!(
        m.contains("cannot read manual flag file /no/such/flags.txt"),
        "{m}"
    );
}

#[test]
fn unknown_flag_mnemonics() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = three_flats(dir.path());
    let f = dir.path().join("flags.txt");
    std::fs::write(&f, "x y flag\n10 20 WONKY\n").unwrap();
    let (_, m) = err_of(
        &inputs,
        dir.path(),
        &[("manual_flag_file", ParamValue::str(f.to_string_lossy()))],
    );
    assert!(m.contains("line 2, column 7") && m.contains("WONKY"), "{m}");
    let (k, m) = err_of(
        &inputs,
        dir.path(),
        &[("flat_do_not_use", strs(&["DEAD", "WEIRD"]))],
    );
    assert_eq!(k, ErrorKind::INVALID_PARAMETER);
    // The declared choices (the DQ mnemonics) refuse it before the search reads it.
    assert!(
        m.contains("flat_do_not_use must be one of GOOD|DO_NOT_USE|") && m.contains("'WEIRD'"),
        "{m}"
    );
    let fv = r#"{"hot": ["HOT"], "rc": ["RCC"], "low_pedestal": ["OTHER_BAD_PIXEL"], "high_cr": ["TELEGRAPH"]}"#;
    let (_, m) = err_of(&inputs, dir.path(), &[("flag_values", ParamValue::str(fv))]);
    assert!(m.contains("'rc'") && m.contains("RCC"), "{m}");
    let (_, m) = err_of(
        &inputs,
        dir.path(),
        &[("dark_do_not_use", strs(&["hot", "warm"]))],
    );
    assert!(m.contains("'warm'"), "{m}");
}

#[test]
fn bad_option_values() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = three_flats(dir.path());
    for (name, v, needle) in [
        (
            "flat_mean_normalization_method",
            ParamValue::str("fit2d"),
            "fit2d",
        ),
        ("smoothing_type", ParamValue::str("gauss"), "gauss"),
        (
            "dead_search_type",
            ParamValue::str("zero_signal"),
            "zero_signal",
        ),
        ("adj_open_neighbours", ParamValue::Int(6), "4 or 8"),
        ("description", ParamValue::str("d".repeat(70)), "65"),
    ] {
        let (k, m) = err_of(&inputs, dir.path(), &[(name, v)]);
        assert_eq!(k, ErrorKind::INVALID_PARAMETER, "{name}");
        assert!(m.contains(needle), "{name}: {m}");
    }
}

/// Simulated darks (64×64, lean products) with their rate products.
fn darks(dir: &Path, n: usize, nints: usize) -> Vec<In> {
    let cfg = SimConfig::default()
        .with_square_subarray(N)
        .with_ramp(nints, 6)
        .with_seed(3);
    let truth = Truth::generate(&cfg).unwrap();
    (0..n)
        .map(|i| {
            let (info, files) = write_selected(
                dir,
                &cfg,
                &truth,
                Kind::Dark,
                i,
                &[
                    Product::Rate,
                    Product::Rateints,
                    Product::Jump,
                    Product::Fitopt,
                ],
                Layout::Lean,
            )
            .unwrap();
            let get = |p: Product| files.iter().find(|f| f.0 == p).unwrap().1.clone();
            In {
                label: format!("D{}", i + 1),
                kind: ImageKind::Dark,
                path: get(Product::Rate),
                raw: dir.join(info.uncal_name()),
                products: vec![
                    ("rateints".into(), get(Product::Rateints)),
                    ("jump".into(), get(Product::Jump)),
                    ("fitopt".into(), get(Product::Fitopt)),
                ],
            }
        })
        .collect()
}

#[test]
fn missing_jump_or_fitopt_product() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = darks(dir.path(), 1, 5);
    d[0].products.retain(|p| p.0 != "jump");
    let (_, m) = err_of(&d, dir.path(), &[]);
    assert!(
        m.contains("dark D1") && m.contains("'jump' product") && m.contains("ssb_save_steps"),
        "{m}"
    );
    let mut d = darks(dir.path(), 1, 5);
    d[0].products.retain(|p| p.0 != "fitopt");
    let (_, m) = err_of(&d, dir.path(), &[]);
    assert!(
        m.contains("'fitopt'") && m.contains("ssb_save_steps"),
        "{m}"
    );
}

#[test]
fn too_few_dark_integrations() {
    let dir = tempfile::tempdir().unwrap();
    let d = darks(dir.path(), 2, 2);
    let (_, m) = err_of(&d, dir.path(), &[]);
    assert!(m.contains("too few") && m.contains("at least 5"), "{m}");
}

/// The wrapper with darks only: the dark flags plus reference pixels, HOT-and-DEAD rule and
/// keywords; the file validates.
#[test]
fn darks_only_mask() {
    let dir = tempfile::tempdir().unwrap();
    let d = darks(dir.path(), 5, 1);
    let out = dir.path().join("darks_mask.fits");
    let o = run_bpm(&d, &out, &[]);
    o.ok();
    let (m, ny, nx) = common::read_mask(&out);
    assert_eq!((ny, nx), (N, N));
    let refpix = m
        .iter()
        .filter(|&&v| v & mkrefs_support::dq::REFERENCE_PIXEL != 0)
        .count();
    assert_eq!(refpix, N * 4 + N * 4 - 16, "bottom rows and left columns");
    let h = mkrefs_support::fits::read_primary_header(&out).unwrap();
    assert_eq!(h.get("BPDSERCH").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(h.get("BPFDEAD").and_then(|v| v.as_bool()), Some(false));
    assert!(h.get_str("BPDMAPS").unwrap().contains("hot: HOT"));
    mkrefs_sim::testkit::validate(&out);
}
