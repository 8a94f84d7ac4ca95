//! The detector1 driver on simulated MIRI exposures, with reference files in the jwst MIRI
//! formats (MASK, SATURATION, LINEARITY, a 4-D DarkMIRIModel DARK, READNOISE, GAIN) written
//! from the simulator's truth: uncal → rate through the native MIRI steps agrees with the true
//! dark current (and with zero once dark_current has run); firstframe and lastframe flag the
//! first and last groups and skip themselves on short ramps; superbias is never asked for; a
//! MIRI step left to the jwst backend stops the request before anything is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrefs_detector1::StepError;
use mkrefs_detector1::pipeline::{Outputs, References, SaveAt, StepName, StepName::*, calibrate};
use mkrefs_detector1::ramp::Ramp;
use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};
use mkrefs_support::dq;
use mkrefs_support::fits::{FitsWriter, ImageReader, Pixel, read_primary_header};
use mkrefs_support::header::HeaderValue;

/// A MIRIMAGE exposure (FAST readout): the full frame (1024 rows × 1032 columns) when `sub` is
/// `None`, else a `sub`×`sub` window at the corner; no defects; dark current raised to
/// 0.5 DN/s so that its subtraction is visible in the rates.
fn config(nints: usize, ngroups: usize, sub: Option<usize>) -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_detector("MIRIMAGE")
        .with_ramp(nints, ngroups)
        .with_seed(11)
        .without_defects();
    if let Some(n) = sub {
        cfg = cfg.with_square_subarray(n);
    }
    cfg.readpatt = "FAST".into();
    cfg.dark_current = 0.5;
    cfg
}

/// Writes a MIRIMAGE reference file covering the exposure's window (`ny`×`nx` from pixel
/// (1, 1)) with the given images (name, shape, data).
fn write_ref<T: Pixel>(
    path: &Path,
    reftype: &str,
    (ny, nx): (usize, usize),
    images: &[(&str, Vec<usize>, Vec<T>)],
    extra: &[(&str, HeaderValue)],
) {
    let mut w = FitsWriter::create(path).unwrap();
    let keys: Vec<(&str, HeaderValue)> = vec![
        ("TELESCOP", "JWST".into()),
        ("INSTRUME", "MIRI".into()),
        ("DETECTOR", "MIRIMAGE".into()),
        ("REFTYPE", reftype.into()),
        ("SUBARRAY", "GENERIC".into()),
        ("SUBSTRT1", 1i64.into()),
        ("SUBSTRT2", 1i64.into()),
        ("SUBSIZE1", (nx as i64).into()),
        ("SUBSIZE2", (ny as i64).into()),
    ];
    for (k, v) in keys.iter().chain(extra) {
        w.set_primary_key(k, v, "").unwrap();
    }
    for (name, shape, data) in images {
        w.write_image(name, shape, data).unwrap();
    }
    w.finish().unwrap();
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    uncal: PathBuf,
    truth: Truth,
    refs: References,
}

/// The uncal file and the reference files. The DARK is a DarkMIRIModel of `dark_nints`
/// integrations × `ngroups` frames, each the true dark current times the frame's time.
fn setup(cfg: &SimConfig, dark_nints: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let truth = Truth::generate(cfg).unwrap();
    let uncal = d.join("m_uncal.fits");
    write_uncal(&uncal, cfg, &truth, Kind::Dark, 0).unwrap();
    let (ny, nx) = (truth.ny, truth.nx);
    let n = ny * nx;
    let p = |name: &str| d.join(name);
    // The reference columns keep their REFERENCE_PIXEL flag, as the MIRI masks have it.
    write_ref(
        &p("mask.fits"),
        "MASK",
        (ny, nx),
        &[("DQ", vec![ny, nx], truth.defects.clone())],
        &[],
    );
    write_ref(
        &p("sat.fits"),
        "SATURATION",
        (ny, nx),
        &[("SCI", vec![ny, nx], vec![60_000f32; n])],
        &[],
    );
    let mut coeffs = vec![0f32; 3 * n];
    coeffs[n..2 * n].fill(1.0);
    write_ref(
        &p("lin.fits"),
        "LINEARITY",
        (ny, nx),
        &[("COEFFS", vec![3, ny, nx], coeffs)],
        &[],
    );
    let ng = cfg.ngroups;
    let tframe = cfg.frame_time().unwrap() as f32;
    let one: Vec<f32> = (0..ng * n)
        .map(|i| truth.dark[i % n] * tframe * (i / n + 1) as f32)
        .collect();
    let sci: Vec<f32> = (0..dark_nints).flat_map(|_| one.iter().copied()).collect();
    let mut w = FitsWriter::create(&p("dark.fits")).unwrap();
    for (k, v) in [
        ("TELESCOP", HeaderValue::from("JWST")),
        ("INSTRUME", "MIRI".into()),
        ("DETECTOR", "MIRIMAGE".into()),
        ("REFTYPE", "DARK".into()),
        ("DATAMODL", "DarkMIRIModel".into()),
        ("READPATT", "FAST".into()),
        ("SUBARRAY", "FULL".into()),
        ("NFRAMES", 1i64.into()),
        ("GROUPGAP", 0i64.into()),
    ] {
        w.set_primary_key(k, &v, "").unwrap();
    }
    w.write_image("SCI", &[dark_nints, ng, ny, nx], &sci)
        .unwrap();
    let mut ddq = vec![0u32; dark_nints * n];
    ddq[(dark_nints - 1) * n + nx + 7] = dq::UNRELIABLE_DARK;
    w.write_image("DQ", &[dark_nints, 1, ny, nx], &ddq).unwrap();
    w.finish().unwrap();
    write_ref::<f32>(
        &p("rn.fits"),
        "READNOISE",
        (ny, nx),
        &[("SCI", vec![ny, nx], truth.readnoise.clone())],
        &[],
    );
    write_ref::<f32>(
        &p("gain.fits"),
        "GAIN",
        (ny, nx),
        &[("SCI", vec![ny, nx], vec![truth.gain as f32; n])],
        &[],
    );
    let refs = References {
        mask: Some(p("mask.fits")),
        saturation: Some(p("sat.fits")),
        superbias: None,
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

/// z = (rate − truth)/ERR over all pixels: finite, mean ≈ 0, sd ≈ 1, > 98 % within 3.
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

fn message(e: StepError) -> String {
    e.to_string()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// MIRI's native steps to the rate image, without and with dark_current.
const NO_DARK: [StepName; 9] = [
    GroupScale, DqInit, Saturation, FirstFrame, LastFrame, Linearity, Refpix, Jump, Rate,
];

#[test]
fn full_frame_uncal_to_rate_through_the_native_miri_steps() {
    // 2 integrations of 6 groups; the dark has 1 integration, which integration 2 reuses.
    let cfg = config(2, 6, None);
    let s = setup(&cfg, 1);
    let (ny, nx) = (s.truth.ny, s.truth.nx);
    assert_eq!((ny, nx), (1024, 1032));

    // Without dark_current: the rates are the true dark current.
    let out = outputs(
        &s.dir,
        "m_rate.fits",
        &[
            (SaveAt::Step(Jump), "m_jump.fits"),
            (SaveAt::Rateints, "m_rateints.fits"),
        ],
    );
    let save = [SaveAt::Step(Jump), SaveAt::Rateints];
    let done = calibrate(&s.uncal, &NO_DARK, &save, &s.refs, &out).unwrap();
    assert_eq!(done.ran, NO_DARK);
    // group_scale has nothing to do (NFRAMES = FRMDIVSR) and says so; the rest ran.
    assert_eq!(done.skipped, [GroupScale]);
    let rate = &out.final_product;
    check_z(
        "rate",
        &plane(rate, "SCI", 0),
        &plane(rate, "ERR", 0),
        &s.truth.dark,
    );
    let h = read_primary_header(rate).unwrap();
    for k in [
        "S_DQINIT", "S_SATURA", "S_FRSTFR", "S_LASTFR", "S_LINEAR", "S_REFPIX", "S_JUMP", "S_RAMP",
    ] {
        assert_eq!(h.get_str(k), Some("COMPLETE"), "{k}");
    }
    for k in ["S_SUPERB", "S_DARK", "S_RSCD", "S_RESET", "S_MIREMI"] {
        assert_eq!(h.get_str(k), None, "{k}");
    }
    // firstframe and lastframe: DO_NOT_USE on the first and last group of every pixel, in
    // every integration, and on no other group (no defects, nothing saturates).
    let j = Ramp::read(&out.saved[&SaveAt::Step(Jump)]).unwrap();
    let n = ny * nx;
    let dnu = dq::DO_NOT_USE as u8;
    for int in 0..2 {
        for g in 0..6 {
            let s0 = j.frame_start(int, g);
            let flagged = j.groupdq[s0..s0 + n]
                .iter()
                .filter(|&&v| v & dnu != 0)
                .count();
            let want = if g == 0 || g == 5 { n } else { 0 };
            assert_eq!(flagged, want, "integration {int} group {g}");
        }
    }
    // The reference columns are still flagged and were used by refpix.
    assert_eq!(j.pixeldq[0] & dq::REFERENCE_PIXEL, dq::REFERENCE_PIXEL);
    assert_eq!(j.pixeldq[nx - 1] & dq::REFERENCE_PIXEL, dq::REFERENCE_PIXEL);

    // With dark_current (a 4-D MIRI dark): every integration's rate is ~0, the second one
    // corrected with the dark's only (last) integration.
    let mut steps = NO_DARK.to_vec();
    steps.insert(6, DarkCurrent);
    let out2 = outputs(
        &s.dir,
        "m2_rate.fits",
        &[(SaveAt::Rateints, "m2_rateints.fits")],
    );
    let done = calibrate(&s.uncal, &steps, &[SaveAt::Rateints], &s.refs, &out2).unwrap();
    // Pipeline order: dark_current before refpix for MIRI, whatever order it was given in.
    assert_eq!(
        done.ran,
        [
            GroupScale,
            DqInit,
            Saturation,
            FirstFrame,
            LastFrame,
            Linearity,
            DarkCurrent,
            Refpix,
            Jump,
            Rate
        ]
    );
    let zero = vec![0f32; n];
    let ri = out2.saved[&SaveAt::Rateints].as_path();
    for int in 0..2 {
        check_z(
            &format!("dark-subtracted rateints {int}"),
            &plane(ri, "SCI", int),
            &plane(ri, "ERR", int),
            &zero,
        );
        // Not subtracting the dark in integration 2 would leave a mean of 0.5 DN/s.
        let sci = plane(ri, "SCI", int);
        let mean = sci.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.05, "integration {int}: mean rate {mean}");
    }
    let h = read_primary_header(&out2.final_product).unwrap();
    assert_eq!(h.get_str("S_DARK"), Some("COMPLETE"));
    assert!(h.get_str("R_DARK").unwrap().ends_with("dark.fits"));
    // The dark's DQ (its integrations ORed) reaches the rate's DQ.
    let rdq = ImageReader::open(&out2.final_product, "DQ")
        .unwrap()
        .read_plane::<u32>(0)
        .unwrap();
    assert_ne!(rdq[nx + 7] & dq::UNRELIABLE_DARK, 0);
}

#[test]
fn firstframe_and_lastframe_skip_short_ramps() {
    for (ngroups, first, last) in [
        (4, "COMPLETE", "COMPLETE"),
        (3, "SKIPPED", "COMPLETE"),
        (2, "SKIPPED", "SKIPPED"),
    ] {
        let cfg = config(1, ngroups, Some(32));
        let s = setup(&cfg, 1);
        let out = outputs(&s.dir, "m_lastframe.fits", &[]);
        let done = calibrate(
            &s.uncal,
            &[DqInit, FirstFrame, LastFrame],
            &[],
            &s.refs,
            &out,
        )
        .unwrap();
        let r = Ramp::read(&out.final_product).unwrap();
        assert_eq!(
            r.header.get_str("S_FRSTFR"),
            Some(first),
            "{ngroups} groups"
        );
        assert_eq!(r.header.get_str("S_LASTFR"), Some(last), "{ngroups} groups");
        let mut skipped = Vec::new();
        if first == "SKIPPED" {
            skipped.push(FirstFrame);
        }
        if last == "SKIPPED" {
            skipped.push(LastFrame);
        }
        assert_eq!(done.skipped, skipped);
        let n = r.frame_len();
        let dnu = dq::DO_NOT_USE as u8;
        for g in 0..ngroups {
            let s0 = r.frame_start(0, g);
            let all = r.groupdq[s0..s0 + n].iter().all(|&v| v & dnu != 0);
            let none = r.groupdq[s0..s0 + n].iter().all(|&v| v & dnu == 0);
            let want = (g == 0 && first == "COMPLETE") || (g == ngroups - 1 && last == "COMPLETE");
            assert!(if want { all } else { none }, "{ngroups} groups, group {g}");
        }
    }
    // A subarray: refpix skips itself (jwst does not correct MIRI subarrays).
    let cfg = config(1, 5, Some(32));
    let s = setup(&cfg, 1);
    let out = outputs(&s.dir, "m_refpix.fits", &[]);
    let done = calibrate(&s.uncal, &[DqInit, Refpix], &[], &s.refs, &out).unwrap();
    assert_eq!(done.skipped, [Refpix]);
    let raw = Ramp::read(&s.uncal).unwrap();
    let r = Ramp::read(&out.final_product).unwrap();
    assert_eq!(r.sci, raw.sci);
    assert_eq!(r.header.get_str("S_REFPIX"), Some("SKIPPED"));
}

#[test]
fn miri_steps_left_to_the_jwst_backend_fail_before_anything_runs() {
    let cfg = config(1, 5, Some(32));
    let s = setup(&cfg, 1);
    let before = files_in(&s.dir);
    let out = outputs(&s.dir, "m_out.fits", &[(SaveAt::Step(DqInit), "m_dq.fits")]);
    for step in [Emicorr, Ipc, Reset, Rscd] {
        let steps = [DqInit, Saturation, step, Linearity, Jump, Rate];
        let e = message(
            calibrate(&s.uncal, &steps, &[SaveAt::Step(DqInit)], &s.refs, &out).unwrap_err(),
        );
        assert!(
            e.contains(&format!("the {} step", step.name()))
                && e.contains("not implemented")
                && e.contains("jwst backend"),
            "{e}"
        );
    }
    // superbias and persistence are not MIRI steps; the request is refused as such.
    for step in [Superbias, Persistence] {
        let e = message(calibrate(&s.uncal, &[DqInit, step], &[], &s.refs, &out).unwrap_err());
        assert!(
            e.contains(step.name()) && e.contains("not a MIRI pipeline step"),
            "{e}"
        );
    }
    // A near-infrared (3-D) dark given for a MIRI exposure is refused before any step runs.
    let nir_dark = s.dir.join("nir_dark.fits");
    let n = s.truth.ny * s.truth.nx;
    write_ref(
        &nir_dark,
        "DARK",
        (s.truth.ny, s.truth.nx),
        &[("SCI", vec![5, s.truth.ny, s.truth.nx], vec![0f32; 5 * n])],
        &[("NFRAMES", 1i64.into()), ("GROUPGAP", 0i64.into())],
    );
    let refs = References {
        dark: Some(nir_dark.clone()),
        ..s.refs.clone()
    };
    let e = message(
        calibrate(
            &s.uncal,
            &[DqInit, Saturation, DarkCurrent],
            &[SaveAt::Step(DqInit)],
            &refs,
            &out,
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("nir_dark.fits") && e.contains("DarkMIRIModel"),
        "{e}"
    );
    let mut expected = before;
    expected.push("nir_dark.fits".into());
    expected.sort();
    assert_eq!(files_in(&s.dir), expected);
}
