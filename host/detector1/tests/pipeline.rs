//! The detector1 driver on simulated exposures, with reference files written from the
//! simulator's truth in the jwst formats: uncal → rate agrees with the true dark current within
//! ERR; saved intermediate products carry their S_* keywords; requests that cannot be served fail
//! before anything is written; a partially calibrated input is continued, not redone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrefs_detector1::StepError;
use mkrefs_detector1::form::Form;
use mkrefs_detector1::pipeline::{Outputs, References, SaveAt, StepName, StepName::*, calibrate};
use mkrefs_detector1::ramp::Ramp;
use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};
use mkrefs_support::fits::{FitsWriter, ImageReader, Pixel, hdu_names, read_primary_header};
use mkrefs_support::header::HeaderValue;

const START: usize = 300;
const N: usize = 40;

/// A 40x40 NRCA1 subarray at full-frame (300, 300), away from the reference pixels, 2
/// integrations of 10 groups of 10.737 s, no defects, a few cosmic rays.
fn config() -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_square_subarray(N)
        .with_substrt(START, START)
        .with_ramp(2, 10)
        .with_seed(7)
        .without_defects();
    cfg.tframe = Some(10.737);
    cfg.cosmic_ray_rate = 0.05 / (10.737 * 9.0);
    cfg
}

/// Writes a reference file of `reftype` whose window starts at full-frame pixel
/// (`start`, `start`) (1-based) with images (name, shape, data) and, if given, a DQ image.
fn write_ref<T: Pixel>(
    path: &Path,
    reftype: &str,
    start: usize,
    n: usize,
    images: &[(&str, Vec<usize>, Vec<T>)],
    dq: Option<Vec<u32>>,
    extra: &[(&str, HeaderValue)],
) {
    let mut w = FitsWriter::create(path).unwrap();
    let keys: Vec<(&str, HeaderValue)> = vec![
        ("TELESCOP", "JWST".into()),
        ("INSTRUME", "NIRCAM".into()),
        ("DETECTOR", "NRCA1".into()),
        ("REFTYPE", reftype.into()),
        ("SUBARRAY", "GENERIC".into()),
        ("SUBSTRT1", (start as i64).into()),
        ("SUBSTRT2", (start as i64).into()),
        ("SUBSIZE1", (n as i64).into()),
        ("SUBSIZE2", (n as i64).into()),
    ];
    for (k, v) in keys.iter().chain(extra) {
        w.set_primary_key(k, v, "").unwrap();
    }
    for (name, shape, data) in images {
        w.write_image(name, shape, data).unwrap();
    }
    if let Some(dq) = dq {
        w.write_image("DQ", &[n, n], &dq).unwrap();
    }
    w.finish().unwrap();
}

/// `map` (N×N) placed in the middle of a (N+2·pad)² image filled with `fill`, so the driver must
/// cut the exposure's window out of a larger reference file.
fn padded(map: &[f32], pad: usize, fill: f32) -> Vec<f32> {
    let m = N + 2 * pad;
    let mut out = vec![fill; m * m];
    for y in 0..N {
        out[(y + pad) * m + pad..(y + pad) * m + pad + N].copy_from_slice(&map[y * N..(y + 1) * N]);
    }
    out
}

/// The uncal file and every reference file, from the truth.
struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    uncal: PathBuf,
    truth: Truth,
    refs: References,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let cfg = config();
    let truth = Truth::generate(&cfg).unwrap();
    let uncal = d.join("x_uncal.fits");
    write_uncal(&uncal, &cfg, &truth, Kind::Dark, 0).unwrap();
    let n2 = N * N;
    let p = |name: &str| d.join(name);
    write_ref::<f32>(
        &p("mask.fits"),
        "MASK",
        START,
        N,
        &[],
        Some(vec![0; n2]),
        &[],
    );
    write_ref(
        &p("sat.fits"),
        "SATURATION",
        START,
        N,
        &[("SCI", vec![N, N], vec![60_000f32; n2])],
        Some(vec![0; n2]),
        &[],
    );
    // SUPERBIAS and READNOISE 10 pixels larger on every side.
    let pad = 10;
    let m = N + 2 * pad;
    write_ref(
        &p("bias.fits"),
        "SUPERBIAS",
        START - pad,
        m,
        &[("SCI", vec![m, m], padded(&truth.bias, pad, 0.0))],
        Some(vec![0; m * m]),
        &[],
    );
    write_ref::<f32>(
        &p("rn.fits"),
        "READNOISE",
        START - pad,
        m,
        &[("SCI", vec![m, m], padded(&truth.readnoise, pad, 1e6))],
        None,
        &[],
    );
    write_ref::<f32>(
        &p("gain.fits"),
        "GAIN",
        START,
        N,
        &[("SCI", vec![N, N], vec![truth.gain as f32; n2])],
        None,
        &[],
    );
    let mut coeffs = vec![0f32; 3 * n2];
    coeffs[n2..2 * n2].fill(1.0);
    write_ref(
        &p("lin.fits"),
        "LINEARITY",
        START,
        N,
        &[("COEFFS", vec![3, N, N], coeffs)],
        Some(vec![0; n2]),
        &[],
    );
    // A frame-resolved dark (NFRAMES = 1, GROUPGAP = 0) of 12 frames: DARK × time.
    let tframe = cfg.frame_time().unwrap() as f32;
    let dark: Vec<f32> = (0..12 * n2)
        .map(|i| truth.dark[i % n2] * tframe * (i / n2 + 1) as f32)
        .collect();
    write_ref(
        &p("dark.fits"),
        "DARK",
        START,
        N,
        &[("SCI", vec![12, N, N], dark)],
        Some(vec![0; n2]),
        &[
            ("NFRAMES", HeaderValue::Int(1)),
            ("GROUPGAP", HeaderValue::Int(0)),
        ],
    );
    let refs = References {
        mask: Some(p("mask.fits")),
        saturation: Some(p("sat.fits")),
        superbias: Some(p("bias.fits")),
        linearity: Some(p("lin.fits")),
        dark: Some(p("dark.fits")),
        readnoise: Some(p("rn.fits")),
        gain: Some(p("gain.fits")),
    };
    Setup {
        _dir: dir,
        dir: d,
        uncal,
        truth,
        refs,
    }
}

fn outputs(dir: &Path, final_name: &str, saved: &[(SaveAt, &str)]) -> Outputs {
    Outputs {
        final_product: dir.join(final_name),
        saved: saved
            .iter()
            .map(|(k, name)| (*k, dir.join(name)))
            .collect::<BTreeMap<_, _>>(),
        ..Default::default()
    }
}

fn plane(path: &Path, hdu: &str, k: usize) -> Vec<f32> {
    ImageReader::open(path, hdu)
        .unwrap()
        .read_plane::<f32>(k)
        .unwrap()
}

/// Checks z = (rate − truth)/ERR over all pixels: finite, mean ≈ 0, sd ≈ 1, > 98 % within 3.
fn check_z(label: &str, rate: &[f32], err: &[f32], truth: &[f32]) {
    let z: Vec<f64> = (0..rate.len())
        .map(|p| f64::from(rate[p] - truth[p]) / f64::from(err[p]))
        .collect();
    assert!(z.iter().all(|v| v.is_finite()), "{label}: non-finite z");
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let within = z.iter().filter(|v| v.abs() < 3.0).count() as f64 / n;
    eprintln!("{label}: mean z {mean:.3} sd {sd:.3} within 3 sigma {within:.4}");
    assert!(mean.abs() < 0.15, "{label}: mean z {mean}");
    assert!((0.85..1.15).contains(&sd), "{label}: sd z {sd}");
    assert!(within > 0.98, "{label}: {within}");
}

/// Files in `dir` other than the inputs written by [`setup`].
fn products_in(dir: &Path) -> Vec<String> {
    let inputs = [
        "x_uncal.fits",
        "mask.fits",
        "sat.fits",
        "bias.fits",
        "rn.fits",
        "gain.fits",
        "lin.fits",
        "dark.fits",
    ];
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !inputs.contains(&n.as_str()))
        .collect();
    v.sort();
    v
}

const TO_RATE: [StepName; 6] = [DqInit, Saturation, Superbias, Linearity, Jump, Rate];

#[test]
fn uncal_to_rate_agrees_with_the_true_dark_and_saves_the_jump_product() {
    let s = setup();
    let out = outputs(
        &s.dir,
        "x_rate.fits",
        &[
            (SaveAt::Step(Jump), "x_jump.fits"),
            (SaveAt::Rateints, "x_rateints.fits"),
            (SaveAt::Fitopt, "x_fitopt.fits"),
            // Named but not requested: not written.
            (SaveAt::Step(Superbias), "x_superbias.fits"),
        ],
    );
    // In any order, repeats harmless.
    let save = [
        SaveAt::Fitopt,
        SaveAt::Step(Jump),
        SaveAt::Rateints,
        SaveAt::Fitopt,
    ];
    let done = calibrate(&s.uncal, &TO_RATE, &save, &s.refs, &out).unwrap();
    assert_eq!(done.ran, TO_RATE);
    assert!(done.already_done.is_empty() && done.skipped.is_empty());
    assert!(
        done.jump.as_ref().is_some_and(|j| j.primary > 0),
        "{:?}",
        done.jump
    );
    assert_eq!(
        done.saved.iter().map(|x| x.0).collect::<Vec<_>>(),
        [SaveAt::Step(Jump), SaveAt::Rateints, SaveAt::Fitopt]
    );
    // Every product complete under its own name, no temporary file left, nothing unrequested.
    assert_eq!(
        products_in(&s.dir),
        [
            "x_fitopt.fits",
            "x_jump.fits",
            "x_rate.fits",
            "x_rateints.fits"
        ]
    );

    let rate = &out.final_product;
    check_z(
        "rate",
        &plane(rate, "SCI", 0),
        &plane(rate, "ERR", 0),
        &s.truth.dark,
    );
    let ri = out.saved[&SaveAt::Rateints].as_path();
    for i in 0..2 {
        check_z(
            &format!("rateints {i}"),
            &plane(ri, "SCI", i),
            &plane(ri, "ERR", i),
            &s.truth.dark,
        );
    }
    let h = read_primary_header(rate).unwrap();
    assert_eq!(h.get_str("DATAMODL"), Some("ImageModel"));
    for k in [
        "S_DQINIT", "S_SATURA", "S_SUPERB", "S_LINEAR", "S_JUMP", "S_RAMP",
    ] {
        assert_eq!(h.get_str(k), Some("COMPLETE"), "{k}");
    }
    for (k, f) in [
        ("R_MASK", "mask.fits"),
        ("R_SATURA", "sat.fits"),
        ("R_SUPERB", "bias.fits"),
        ("R_LINEAR", "lin.fits"),
        ("R_READNO", "rn.fits"),
        ("R_GAIN", "gain.fits"),
    ] {
        let v = h.get_str(k).unwrap_or_default();
        assert!(v.starts_with('/') && v.ends_with(f), "{k} = {v}");
    }
    assert_eq!(h.get_str("S_DARK"), None);

    // The saved jump product is a RampModel with the state after jump, not after ramp fitting.
    let jp = out.saved[&SaveAt::Step(Jump)].as_path();
    let j = Ramp::read(jp).unwrap();
    assert_eq!((j.nints, j.ngroups, j.ny, j.nx), (2, 10, N, N));
    for k in ["S_DQINIT", "S_SATURA", "S_SUPERB", "S_LINEAR", "S_JUMP"] {
        assert_eq!(j.header.get_str(k), Some("COMPLETE"), "{k}");
    }
    assert_eq!(j.header.get_str("S_RAMP"), None);
    assert_eq!(j.header.get_str("DATAMODL"), Some("RampModel"));
    assert!(j.groupdq.iter().any(|q| q & 4 != 0), "JUMP_DET flags kept");
    // Bias removed: the first group is about the first frame's dark, far below 10 DN.
    let g0 = &j.sci[..N * N];
    let mean = g0.iter().map(|&v| f64::from(v)).sum::<f64>() / g0.len() as f64;
    assert!(mean.abs() < 2.0, "{mean}");
    assert_eq!(
        hdu_names(&out.saved[&SaveAt::Fitopt]).unwrap()[1..],
        [
            "SLOPE",
            "SIGSLOPE",
            "VAR_POISSON",
            "VAR_RNOISE",
            "YINT",
            "SIGYINT",
            "PEDESTAL",
            "WEIGHTS",
            "CRMAG"
        ]
    );
}

/// Run-internal products hold only the extensions named, with the same data as the full ones.
#[test]
fn compact_forms_write_only_the_extensions_named() {
    let s = setup();
    let mut out = outputs(
        &s.dir,
        "x_rate.fits",
        &[
            (SaveAt::Step(Jump), "x_jump.fits"),
            (SaveAt::Rateints, "x_rateints.fits"),
            (SaveAt::Fitopt, "x_fitopt.fits"),
        ],
    );
    let only = |names: &[&str]| Form::Only(names.iter().map(|n| n.to_string()).collect());
    out.forms = [
        (out.final_product.clone(), only(&["SCI"])),
        (s.dir.join("x_jump.fits"), only(&["SCI", "GROUPDQ"])),
        (s.dir.join("x_rateints.fits"), only(&["SCI", "ERR"])),
        (s.dir.join("x_fitopt.fits"), only(&["PEDESTAL"])),
    ]
    .into_iter()
    .collect();
    let save = [SaveAt::Step(Jump), SaveAt::Rateints, SaveAt::Fitopt];
    calibrate(&s.uncal, &TO_RATE, &save, &s.refs, &out).unwrap();
    let names = |f: &str| hdu_names(&s.dir.join(f)).unwrap()[1..].to_vec();
    assert_eq!(names("x_rate.fits"), ["SCI"]);
    assert_eq!(names("x_jump.fits"), ["SCI", "GROUPDQ"]);
    assert_eq!(names("x_rateints.fits"), ["SCI", "ERR"]);
    assert_eq!(names("x_fitopt.fits"), ["PEDESTAL"]);
    assert_eq!(
        products_in(&s.dir),
        [
            "x_fitopt.fits",
            "x_jump.fits",
            "x_rate.fits",
            "x_rateints.fits"
        ]
    );
    // The same pixels as the whole product.
    let full_dir = s.dir.join("full");
    std::fs::create_dir(&full_dir).unwrap();
    let full = outputs(
        &full_dir,
        "x_rate.fits",
        &[(SaveAt::Fitopt, "x_fitopt.fits")],
    );
    calibrate(&s.uncal, &TO_RATE, &[SaveAt::Fitopt], &s.refs, &full).unwrap();
    assert_eq!(
        plane(&out.final_product, "SCI", 0),
        plane(&full.final_product, "SCI", 0)
    );
    let ped = |p: &Path| plane(p, "PEDESTAL", 1);
    assert_eq!(
        ped(&s.dir.join("x_fitopt.fits")),
        ped(&full_dir.join("x_fitopt.fits"))
    );
}

#[test]
fn dark_current_step_leaves_a_rate_of_zero() {
    let s = setup();
    let steps = [
        GroupScale,
        DqInit,
        Saturation,
        Superbias,
        Linearity,
        DarkCurrent,
        Jump,
        Rate,
    ];
    let out = outputs(&s.dir, "x_rate.fits", &[]);
    let done = calibrate(&s.uncal, &steps, &[], &s.refs, &out).unwrap();
    // NFRAMES = 1 and FRMDIVSR = 1: group_scale runs and records itself SKIPPED.
    assert_eq!(done.skipped, [GroupScale]);
    let r = &out.final_product;
    let zero = vec![0f32; N * N];
    check_z(
        "dark-subtracted rate",
        &plane(r, "SCI", 0),
        &plane(r, "ERR", 0),
        &zero,
    );
    let h = read_primary_header(r).unwrap();
    assert_eq!(h.get_str("S_DARK"), Some("COMPLETE"));
    assert_eq!(h.get_str("S_GRPSCL"), Some("SKIPPED"));
    assert!(h.get_str("R_DARK").unwrap().ends_with("dark.fits"));
}

#[test]
fn the_whole_nir_chain_runs_natively_including_refpix() {
    let s = setup();
    let steps = [
        GroupScale,
        DqInit,
        Saturation,
        Superbias,
        Refpix,
        Linearity,
        DarkCurrent,
        Jump,
        Rate,
    ];
    let out = outputs(&s.dir, "x_rate.fits", &[]);
    let done = calibrate(&s.uncal, &steps, &[], &s.refs, &out).unwrap();
    assert!(done.ran.contains(&Refpix), "{:?}", done.ran);
    let r = &out.final_product;
    // The window is inside the detector, without reference pixels: refpix changes nothing and
    // records itself done, as the jwst step does; the dark-subtracted rate is still zero.
    let zero = vec![0f32; N * N];
    check_z(
        "rate after the whole chain",
        &plane(r, "SCI", 0),
        &plane(r, "ERR", 0),
        &zero,
    );
    let h = read_primary_header(r).unwrap();
    assert_eq!(h.get_str("S_REFPIX"), Some("COMPLETE"));
    assert_eq!(h.get_str("S_RAMP"), Some("COMPLETE"));
}

fn message(e: StepError) -> String {
    e.to_string()
}

#[test]
fn a_missing_reference_file_fails_before_anything_runs() {
    let s = setup();
    let refs = References {
        gain: None,
        superbias: None,
        ..s.refs.clone()
    };
    let out = outputs(
        &s.dir,
        "x_rate.fits",
        &[(SaveAt::Step(DqInit), "x_dq.fits")],
    );
    let e =
        message(calibrate(&s.uncal, &TO_RATE, &[SaveAt::Step(DqInit)], &refs, &out).unwrap_err());
    for want in [
        "superbias",
        "SUPERBIAS",
        "reffile4ssb.superbias",
        "jump",
        "GAIN",
        "reffile4ssb.gain",
    ] {
        assert!(e.contains(want), "{want} not in: {e}");
    }
    assert!(products_in(&s.dir).is_empty(), "{:?}", products_in(&s.dir));
    // Steps that do not run need no files: without GAIN, calibrating up to linearity works.
    let ok = calibrate(&s.uncal, &[DqInit, Saturation, Linearity], &[], &refs, &out).unwrap();
    assert_eq!(ok.ran, [DqInit, Saturation, Linearity]);
    // A file of the wrong kind is refused before the first step, too.
    let wrong = References {
        dark: s.refs.gain.clone(),
        ..s.refs.clone()
    };
    std::fs::remove_file(&out.final_product).unwrap();
    let e = message(
        calibrate(
            &s.uncal,
            &[DqInit, DarkCurrent],
            &[SaveAt::Step(DqInit)],
            &wrong,
            &out,
        )
        .unwrap_err(),
    );
    assert!(e.contains("gain.fits") && e.contains("REFTYPE"), "{e}");
    assert!(products_in(&s.dir).is_empty(), "{:?}", products_in(&s.dir));
}

#[test]
fn steps_left_to_the_jwst_backend_fail_before_anything_runs() {
    let s = setup();
    let out = outputs(&s.dir, "x_out.fits", &[(SaveAt::Step(DqInit), "x_dq.fits")]);
    for step in [Ipc, Persistence] {
        let steps = [DqInit, Saturation, step, Linearity];
        let e = message(
            calibrate(&s.uncal, &steps, &[SaveAt::Step(DqInit)], &s.refs, &out).unwrap_err(),
        );
        assert!(
            e.contains(step.name()) && e.contains("not implemented") && e.contains("jwst backend"),
            "{e}"
        );
    }
    // A MIRI-only step is not a NIRCam step at all.
    let e = message(calibrate(&s.uncal, &[DqInit, Rscd], &[], &s.refs, &out).unwrap_err());
    assert!(
        e.contains("rscd") && e.contains("not a NIRCAM pipeline step"),
        "{e}"
    );
    assert!(products_in(&s.dir).is_empty(), "{:?}", products_in(&s.dir));
}

#[test]
fn a_partially_calibrated_input_is_continued_not_redone() {
    let s = setup();
    // One run from the uncal file.
    let whole = outputs(&s.dir, "x_rate.fits", &[]);
    calibrate(&s.uncal, &TO_RATE, &[], &s.refs, &whole).unwrap();
    // The same in two runs: up to superbias, then on from that product.
    let part = outputs(&s.dir, "x_dq_init_saturation_superbias.fits", &[]);
    calibrate(
        &s.uncal,
        &[DqInit, Saturation, Superbias],
        &[],
        &s.refs,
        &part,
    )
    .unwrap();
    let cont = outputs(
        &s.dir,
        "x_rate2.fits",
        &[(SaveAt::Step(Linearity), "x_lin.fits")],
    );
    // Steps in any order: they run in pipeline order.
    let shuffled = [Rate, Linearity, DqInit, Jump, Superbias, Saturation];
    let done = calibrate(
        &part.final_product,
        &shuffled,
        &[SaveAt::Step(Linearity)],
        &s.refs,
        &cont,
    )
    .unwrap();
    assert_eq!(done.already_done, [DqInit, Saturation, Superbias]);
    assert_eq!(done.ran, [Linearity, Jump, Rate]);
    // Bias subtracted once: the two-run rate is the one-run rate, bit for bit.
    for hdu in ["SCI", "ERR", "VAR_POISSON", "VAR_RNOISE"] {
        let (a, b) = (
            plane(&whole.final_product, hdu, 0),
            plane(&cont.final_product, hdu, 0),
        );
        assert!(
            a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{hdu} differs"
        );
    }
    // The bias was subtracted once: the first group of the saved linearity product is about the
    // first frame's dark, not minus the bias (about -12000 DN).
    let lin = Ramp::read(&cont.saved[&SaveAt::Step(Linearity)]).unwrap();
    let g0 = &lin.sci[..N * N];
    let mean = g0.iter().map(|&v| f64::from(v)).sum::<f64>() / g0.len() as f64;
    assert!(mean.abs() < 2.0, "{mean}");
    assert_eq!(lin.header.get_str("S_LINEAR"), Some("COMPLETE"));
    assert_eq!(lin.header.get_str("S_JUMP"), None);
    // The superbias step is not run again, so the continuation needs no SUPERBIAS file.
    let no_bias = References {
        superbias: None,
        ..s.refs.clone()
    };
    let cont3 = outputs(&s.dir, "x_rate3.fits", &[]);
    calibrate(&part.final_product, &TO_RATE, &[], &no_bias, &cont3).unwrap();

    // Requests the input cannot serve.
    let e = message(
        calibrate(
            &part.final_product,
            &[DqInit, Jump, Rate],
            &[],
            &s.refs,
            &cont3,
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("already has saturation, superbias") && e.contains("un-calibrated"),
        "{e}"
    );
    let partial2 = outputs(&s.dir, "x_dq_init_superbias.fits", &[]);
    calibrate(&s.uncal, &[DqInit, Superbias], &[], &s.refs, &partial2).unwrap();
    let e = message(
        calibrate(
            &partial2.final_product,
            &[DqInit, Saturation, Superbias, Linearity],
            &[],
            &s.refs,
            &cont3,
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("already has superbias, which comes after saturation"),
        "{e}"
    );
    // A product of a step the input already has cannot be saved by this run.
    let o = outputs(
        &s.dir,
        "x_r.fits",
        &[(SaveAt::Step(Superbias), "x_sb.fits")],
    );
    let e = message(
        calibrate(
            &part.final_product,
            &TO_RATE,
            &[SaveAt::Step(Superbias)],
            &s.refs,
            &o,
        )
        .unwrap_err(),
    );
    assert!(e.contains("superbias product cannot be saved"), "{e}");
}
