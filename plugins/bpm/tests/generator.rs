//! The bpm generator end to end on small hand-made flats: the MASK file (stdatamodels strict
//! validation, keywords, HISTORY, DQ_DEF), reference pixels from the window geometry (corner
//! and mid-detector NIRCam subarrays, MIRI), figures and the quality check.

mod common;

use std::path::{Path, PathBuf};

use common::{Hdr, In, flat_image, read_mask, run_bpm, write_sci};
use mkref_bpm::quality::{QualityOutcome, run_with};
use mkrefs_plugin_api::{ImageKind, LogLevel, ParamScalar, ParamValue};
use mkrefs_sim::testkit::{history_cards, validate};
use mkrefs_support::dq;
use mkrefs_support::fits::{read_dq_def, read_primary_header};

/// Pixels (y, x) given defects in every flat: dead, low QE, an open pixel with bright
/// neighbours.
const DEAD: (usize, usize) = (50, 50);
const LOWQE: (usize, usize) = (80, 80);
const OPEN: (usize, usize) = (100, 100);

fn with_defects(mut img: Vec<f32>, nx: usize, extra_open: &[(usize, usize)]) -> Vec<f32> {
    img[DEAD.0 * nx + DEAD.1] *= 0.01;
    img[LOWQE.0 * nx + LOWQE.1] *= 0.4;
    for &(y, x) in [OPEN].iter().chain(extra_open) {
        img[y * nx + x] *= 0.35;
        for (dy, dx) in [(1i64, 0i64), (-1, 0), (0, 1), (0, -1)] {
            let (yy, xx) = (y as i64 + dy, x as i64 + dx);
            if yy >= 0 && xx >= 0 && (yy as usize) * nx + (xx as usize) < img.len() {
                img[yy as usize * nx + xx as usize] *= 1.25;
            }
        }
    }
    img
}

/// Three flats of `hdr`, scaled 1.0/1.02/0.98.
fn flats(dir: &Path, hdr: &Hdr, ny: usize, nx: usize, extra_open: &[(usize, usize)]) -> Vec<In> {
    let base = with_defects(flat_image(ny, nx, 100.0), nx, extra_open);
    [1.0f32, 1.02, 0.98]
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let data: Vec<f32> = base.iter().map(|v| v * k).collect();
            let p = write_sci(
                &dir.join(format!("flat{i}_rate.fits")),
                hdr,
                &[ny, nx],
                &data,
            );
            In::new(ImageKind::Flat, i, &p)
        })
        .collect()
}

fn at(m: &[u32], nx: usize, (y, x): (usize, usize)) -> u32 {
    m[y * nx + x]
}

#[test]
fn corner_subarray_mask_is_valid_and_complete() {
    let dir = tempfile::tempdir().unwrap();
    let (ny, nx) = (160, 160);
    let inputs = flats(dir.path(), &Hdr::nircam("SUB160", (1, 1)), ny, nx, &[]);
    let out = dir.path().join("bpm_mask.fits");
    let dnu = ParamValue::List(vec![ParamScalar::Str("dead".into())].into());
    let o = run_bpm(
        &inputs,
        &out,
        &[
            ("flat_do_not_use", dnu),
            ("history", ParamValue::str("made by a test")),
        ],
    );
    let report = o.ok();
    assert!(report.summary.contains("DEAD 1"), "{}", report.summary);
    let (m, my, mx) = read_mask(&out);
    assert_eq!((my, mx), (ny, nx));
    assert_eq!(at(&m, nx, DEAD), dq::DEAD | dq::DO_NOT_USE);
    assert_eq!(at(&m, nx, LOWQE), dq::LOW_QE);
    assert_eq!(at(&m, nx, OPEN), dq::OPEN);
    // The default 3x3 box around the OPEN pixel.
    for dy in [-1, 0, 1] {
        for dx in [-1, 0, 1] {
            if (dy, dx) != (0, 0) {
                let n = ((OPEN.0 as i64 + dy) as usize, (OPEN.1 as i64 + dx) as usize);
                assert_eq!(at(&m, nx, n), dq::ADJ_OPEN, "{n:?}");
            }
        }
    }
    // Reference pixels: this window touches the bottom and left edges only.
    for y in 0..ny {
        for x in 0..nx {
            let r = at(&m, nx, (y, x)) & dq::REFERENCE_PIXEL != 0;
            assert_eq!(r, y < 4 || x < 4, "({y}, {x})");
        }
    }
    let others = m
        .iter()
        .filter(|&&v| v & !(dq::REFERENCE_PIXEL) != 0)
        .count();
    assert_eq!(others, 11, "only the injected defects are flagged");

    let v = validate(&out);
    assert_eq!(v["model"], "MaskModel");
    let h = read_primary_header(&out).unwrap();
    assert_eq!(h.get_str("REFTYPE"), Some("MASK"));
    assert_eq!(h.get_str("SUBARRAY"), Some("SUB160"));
    assert_eq!(h.get_i64("SUBSIZE1"), Some(160));
    assert_eq!(h.get_str("USEAFTER"), Some("2019-04-01T00:00:00"));
    assert_eq!(h.get_str("DESCRIP"), Some("A bad pix mask"));
    assert_eq!(h.get("BPFDEAD").and_then(|v| v.as_bool()), Some(true));
    assert_eq!(h.get("BPDSERCH").and_then(|v| v.as_bool()), Some(false));
    assert_eq!(h.get_str("BPFSCHTP"), Some("sigma_rate"));
    assert_eq!(h.get_f64("BPFMXDED"), Some(0.05));
    assert_eq!(h.get_f64("BPFSMOTH"), Some(15.0));
    assert_eq!(h.get_str("BPFSMTYP"), Some("Box2D"));
    assert_eq!(h.get_str("BPFDONOT"), Some("DEAD"));
    assert_eq!(h.get_f64("BPFFXLIM"), Some(45000.0));
    assert_eq!(h.get_str("BPFMANFL"), Some(""));
    let hist = history_cards(&out).join(" ");
    for needle in [
        "Parameter values and descriptions:",
        "BPFMXDED keyword",
        "DATA USED:",
        "flat0_rate.fits",
        "flat2_rate.fits",
        "made by a test",
        "Bad pixel types from flat to which DO_NOT_USE is applied: DEAD",
    ] {
        assert!(hist.contains(needle), "{needle} not in HISTORY: {hist}");
    }
    let def = read_dq_def(&out).unwrap();
    assert_eq!(def.len(), 33);
    assert_eq!(def[0].name, "GOOD");
    assert_eq!((def[32].bit, def[32].value), (31, 1 << 31));
}

/// A window in the middle of the detector has no reference pixels; an OPEN pixel on its first
/// row gets its ADJ_OPEN neighbours (upstream: none).
#[test]
fn mid_detector_subarray_has_no_reference_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let (ny, nx) = (160, 160);
    let inputs = flats(
        dir.path(),
        &Hdr::nircam("SUB160", (1025, 1025)),
        ny,
        nx,
        &[(0, 20)],
    );
    let out = dir.path().join("mask.fits");
    run_bpm(&inputs, &out, &[]).ok();
    let (m, ..) = read_mask(&out);
    assert!(m.iter().all(|v| v & dq::REFERENCE_PIXEL == 0));
    assert_eq!(at(&m, nx, (0, 20)), dq::OPEN);
    for n in [(1, 20), (0, 19), (0, 21)] {
        assert_eq!(at(&m, nx, n), dq::ADJ_OPEN, "{n:?}");
    }
    let h = read_primary_header(&out).unwrap();
    assert_eq!(h.get_i64("SUBSTRT1"), Some(1025));
    validate(&out);
}

/// MIRI: reference columns only, so a defect on row 0 is found.
#[test]
fn miri_reference_columns_only() {
    let dir = tempfile::tempdir().unwrap();
    let (ny, nx) = (1024, 1032);
    let hdr = Hdr {
        instrument: "MIRI",
        detector: "MIRIMAGE",
        subarray: "FULL",
        substrt: (1, 1),
        s_ramp: Some("COMPLETE"),
    };
    let mut base = flat_image(ny, nx, 50.0);
    base[500] *= 0.02; // row 0, column 500
    let inputs: Vec<In> = (0..3)
        .map(|i| {
            let p = write_sci(
                &dir.path().join(format!("m{i}_rate.fits")),
                &hdr,
                &[ny, nx],
                &base,
            );
            In::new(ImageKind::Flat, i, &p)
        })
        .collect();
    let out = dir.path().join("miri_mask.fits");
    run_bpm(&inputs, &out, &[]).ok();
    let (m, ..) = read_mask(&out);
    assert_eq!(m[500], dq::DEAD);
    for y in [0, 511, 1023] {
        for x in 0..nx {
            let r = m[y * nx + x] & dq::REFERENCE_PIXEL != 0;
            assert_eq!(r, !(4..1028).contains(&x), "({y}, {x})");
        }
    }
    validate(&out);
}

#[test]
fn plots_are_written_beside_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = flats(dir.path(), &Hdr::nircam("SUB160", (1, 1)), 160, 160, &[]);
    let out = dir.path().join("plotted.fits");
    let o = run_bpm(&inputs, &out, &[("plot", ParamValue::Bool(true))]);
    let extra: Vec<PathBuf> = o
        .ok()
        .extra_outputs
        .iter()
        .map(|s| PathBuf::from(s.as_str()))
        .collect();
    let names: Vec<String> = extra
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "plotted_mean_flat.png",
            "plotted_normalized_flat.png",
            "plotted_normalized_histogram.png",
            "plotted_mask.png"
        ]
    );
    for p in &extra {
        assert_eq!(p.parent(), Some(dir.path()));
        let bytes = std::fs::read(p).unwrap();
        assert!(bytes.len() > 100 && bytes.starts_with(b"\x89PNG"), "{p:?}");
    }
}

/// Without the jwst package the check is reported as skipped and the job succeeds.
#[test]
fn quality_check_reports_a_missing_jwst_package() {
    let dir = tempfile::tempdir().unwrap();
    let inputs = flats(dir.path(), &Hdr::nircam("SUB160", (1, 1)), 160, 160, &[]);
    let out = dir.path().join("q.fits");
    let fake = dir.path().join("nopython");
    std::fs::write(
        &fake,
        "#!/bin/sh\necho 'ModuleNotFoundError: No module named jwst' >&2\nexit 1\n",
    )
    .unwrap();
    make_executable(&fake);
    let o = run_bpm(&inputs, &out, &[]);
    o.ok();
    match run_with(&fake, &out, &inputs[0].raw).unwrap() {
        QualityOutcome::Skipped(m) => {
            assert!(
                m.contains("not importable") && m.contains("No module named jwst"),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
    // Through the job: whatever python3 has, the summary says what the check did.
    let o = run_bpm(&inputs, &out, &[("quality_check", ParamValue::Bool(true))]);
    let s = o.ok().summary.to_string();
    assert!(
        s.contains("quality check skipped") || s.contains("quality check passed"),
        "{s}"
    );
    if s.contains("skipped") {
        assert!(o.logged(LogLevel::Warn, "quality check skipped"));
    }
}

/// With a (stand-in) jwst the step's verdict decides.
#[test]
fn quality_check_outcomes_with_jwst() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("okpython");
    std::fs::write(
        &ok,
        "#!/bin/sh\n[ \"$2\" = 'import jwst' ] && exit 0\necho '{\"status\": \"COMPLETE\", \"shape\": [4, 4], \"carried\": true, \"flagged\": 3}'\n",
    )
    .unwrap();
    make_executable(&ok);
    let mask = dir.path().join("m.fits");
    let uncal = dir.path().join("x_uncal.fits");
    match run_with(&ok, &mask, &uncal).unwrap() {
        QualityOutcome::Passed(m) => assert!(m.contains("3 flagged pixels"), "{m}"),
        other => panic!("{other:?}"),
    }
    let bad = dir.path().join("badpython");
    std::fs::write(
        &bad,
        "#!/bin/sh\n[ \"$2\" = 'import jwst' ] && exit 0\necho 'ValueError: mask shape mismatch' >&2\nexit 1\n",
    )
    .unwrap();
    make_executable(&bad);
    let e = run_with(&bad, &mask, &uncal).unwrap_err();
    assert!(e.message.contains("mask shape mismatch"), "{e}");
    let skipped = dir.path().join("nodir/python");
    assert!(matches!(
        run_with(&skipped, &mask, &uncal).unwrap(),
        QualityOutcome::Skipped(m) if m.contains("cannot run")
    ));
}

fn make_executable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
}
