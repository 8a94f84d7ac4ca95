//! Reference files written by `FitsWriter` + `RefMeta` are checked by their real consumer:
//! stdatamodels' JWST datamodels with strict validation, through
//! `tests/python/validate_reffile.py`. Good files must be accepted, and files with a wrong
//! dtype, a missing required keyword or a bad USEAFTER must be rejected.
//!
//! Python is `$MKREFS_TEST_PYTHON`, else `<workspace>/target/test-venv/bin/python`; create the
//! latter with `tests/python/ensure-venv.sh target/test-venv`.

use std::path::{Path, PathBuf};

use mkrefs_sim::testkit::run_validator;
use mkrefs_support::dq::DqDefRow;
use mkrefs_support::fits::{FitsErrorKind, FitsWriter, read_primary_header};
use mkrefs_support::header::{Header, HeaderValue};
use mkrefs_support::reffile::{RefMeta, history_entries};
use serde_json::Value;

const NY: usize = 32;
const NX: usize = 24;

/// Runs the validator; returns its exit code and one JSON object per file, by file name.
fn validate(paths: &[PathBuf]) -> (i32, Vec<(String, Value)>) {
    let (code, results) = run_validator(paths);
    let named = results
        .into_iter()
        .map(|v| {
            let name = Path::new(v["path"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (name, v)
        })
        .collect();
    (code, named)
}

fn input_header(instrument: &str, detector: &str) -> Header {
    let mut h = Header::new();
    h.set("INSTRUME", instrument);
    h.set("DETECTOR", detector);
    h.set("SUBARRAY", "FULL");
    h.set("SUBSTRT1", 1i64);
    h.set("SUBSTRT2", 1i64);
    h.set("FASTAXIS", -1i64);
    h.set("SLOWAXIS", 2i64);
    h
}

fn meta(reftype: &str, model: &str) -> RefMeta {
    let mut m =
        RefMeta::from_header(reftype, model, &input_header("NIRCAM", "NRCA1"), (NY, NX)).unwrap();
    m.description = format!("{reftype} written by the mkrefs-sim tests");
    m.author = "mkrefs test suite".into();
    m.pedigree = "GROUND".into();
    m.useafter = "2022-01-01".into();
    m.normalize_useafter();
    let inputs = [Path::new(
        "/data/jw01234001001_01101_00001_nrca1_uncal.fits",
    )];
    m.history = history_entries(
        &reftype.to_ascii_lowercase(),
        &inputs,
        "Written by an integration test.",
    );
    m
}

fn sci() -> Vec<f32> {
    (0..NY * NX).map(|i| 5.0 + (i % 7) as f32 * 0.25).collect()
}

/// The standard JWST DQ_DEF table: GOOD, then one row per bit.
fn standard_dq_def() -> Vec<DqDefRow> {
    const NAMES: [&str; 32] = [
        "DO_NOT_USE",
        "SATURATED",
        "JUMP_DET",
        "DROPOUT",
        "OUTLIER",
        "PERSISTENCE",
        "AD_FLOOR",
        "CHARGELOSS",
        "RESERVED",
        "NON_SCIENCE",
        "DEAD",
        "HOT",
        "WARM",
        "LOW_QE",
        "RC",
        "TELEGRAPH",
        "NONLINEAR",
        "BAD_REF_PIXEL",
        "NO_FLAT_FIELD",
        "NO_GAIN_VALUE",
        "NO_LIN_CORR",
        "NO_SAT_CHECK",
        "UNRELIABLE_BIAS",
        "UNRELIABLE_DARK",
        "UNRELIABLE_SLOPE",
        "UNRELIABLE_FLAT",
        "OPEN",
        "ADJ_OPEN",
        "FLUX_ESTIMATED",
        "MSA_FAILED_OPEN",
        "OTHER_BAD_PIXEL",
        "REFERENCE_PIXEL",
    ];
    let mut rows = vec![DqDefRow {
        bit: 0,
        value: 0,
        name: "GOOD".into(),
        description: String::new(),
    }];
    rows.extend(NAMES.iter().enumerate().map(|(bit, name)| DqDefRow {
        bit: bit as i32,
        value: 1u32 << bit,
        name: name.to_string(),
        description: String::new(),
    }));
    rows
}

fn write_readnoise(path: &Path, m: &RefMeta) -> PathBuf {
    let mut m = m.clone();
    m.readpatt.get_or_insert_with(|| "ANY".into());
    let mut w = FitsWriter::create(path).unwrap();
    m.write_primary(&mut w).unwrap();
    w.write_image("SCI", &[NY, NX], &sci()).unwrap();
    w.set_key("BUNIT", &"DN".into(), "physical units of the array values")
        .unwrap();
    w.finish().unwrap()
}

fn write_superbias(path: &Path, with_dq_def: bool) -> PathBuf {
    let mut m = meta("SUPERBIAS", "SuperBiasModel");
    m.readpatt = Some("ANY".into());
    let mut w = FitsWriter::create(path).unwrap();
    m.write_primary(&mut w).unwrap();
    let bias: Vec<f32> = (0..NY * NX).map(|i| 12000.0 + i as f32).collect();
    w.write_image("SCI", &[NY, NX], &bias).unwrap();
    let dq: Vec<u32> = (0..NY * NX).map(|i| u32::from(i % 50 == 0)).collect();
    w.write_image("DQ", &[NY, NX], &dq).unwrap();
    w.write_image("ERR", &[NY, NX], &vec![3.5f32; NY * NX])
        .unwrap();
    if with_dq_def {
        w.write_dq_def(&[
            DqDefRow {
                bit: 0,
                value: 0,
                name: "GOOD".into(),
                description: String::new(),
            },
            DqDefRow {
                bit: 0,
                value: 1,
                name: "DO_NOT_USE".into(),
                description: String::new(),
            },
            DqDefRow {
                bit: 1,
                value: 2,
                name: "UNRELIABLE_BIAS".into(),
                description: String::new(),
            },
        ])
        .unwrap();
    }
    w.finish().unwrap()
}

/// A MASK file; the DQ array is written with pixel type `T` (u32 is right).
fn write_mask<T: mkrefs_support::fits::Pixel>(path: &Path, dq: &[T]) -> PathBuf {
    let mut m = meta("MASK", "MaskModel");
    m.extra.push((
        "BPDSERCH".into(),
        HeaderValue::Bool(true),
        "bad pixels from darks".into(),
    ));
    m.extra.push((
        "BPDCLPSG".into(),
        HeaderValue::Float(3.0),
        "sigma clipping threshold".into(),
    ));
    let mut w = FitsWriter::create(path).unwrap();
    m.write_primary(&mut w).unwrap();
    w.write_image("DQ", &[NY, NX], dq).unwrap();
    w.write_dq_def(&standard_dq_def()).unwrap();
    w.finish().unwrap()
}

fn mask_dq() -> Vec<u32> {
    (0..NY * NX)
        .map(|i| match i % 97 {
            0 => 1 | 1024, // DO_NOT_USE | DEAD
            1 => 2048,     // HOT
            2 => 1 << 31,  // REFERENCE_PIXEL
            _ => 0,
        })
        .collect()
}

/// A NIRCam dark (3-D SCI/ERR, 2-D DQ) or a MIRI dark (everything 4-D).
fn write_dark(path: &Path, miri: bool) -> PathBuf {
    let ngroups = 3;
    let mut m = if miri {
        let mut h = input_header("MIRI", "MIRIMAGE");
        h.set("FASTAXIS", 1i64);
        let mut m = RefMeta::from_header("DARK", "DarkMIRIModel", &h, (NY, NX)).unwrap();
        m.description = "MIRI dark written by the mkrefs-sim tests".into();
        m.author = "mkrefs test suite".into();
        m.pedigree = "INFLIGHT 2022-07-01 2022-08-01".into();
        m.useafter = "2022-07-01T00:00:00".into();
        m.readpatt = Some("FAST".into());
        m.exp_type = Some("MIR_DARKIMG".into());
        m
    } else {
        let mut m = meta("DARK", "DarkModel");
        m.readpatt = Some("RAPID".into());
        m.exp_type = Some("NRC_DARK".into());
        m.extra.push((
            "NOUTPUTS".into(),
            HeaderValue::Int(4),
            "number of amplifiers".into(),
        ));
        m
    };
    m.extra.push((
        "NGROUPS".into(),
        HeaderValue::Int(ngroups as i64),
        "groups".into(),
    ));
    let mut w = FitsWriter::create(path).unwrap();
    m.write_primary(&mut w).unwrap();
    let (sci_shape, dq_shape): (Vec<usize>, Vec<usize>) = if miri {
        (vec![2, ngroups, NY, NX], vec![2, 1, NY, NX])
    } else {
        (vec![ngroups, NY, NX], vec![NY, NX])
    };
    let n: usize = sci_shape.iter().product();
    // Streamed one plane at a time.
    w.create_image::<f32>("SCI", &sci_shape).unwrap();
    for p in 0..n / (NY * NX) {
        w.write_pixels(p * NY * NX, &vec![0.01f32 * p as f32; NY * NX])
            .unwrap();
    }
    w.write_image("ERR", &sci_shape, &vec![0.5f32; n]).unwrap();
    w.write_image("DQ", &dq_shape, &vec![0u32; dq_shape.iter().product()])
        .unwrap();
    w.write_dq_def(&standard_dq_def()[..3]).unwrap();
    w.finish().unwrap()
}

fn find<'a>(results: &'a [(String, Value)], name: &str) -> &'a Value {
    &results
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} not validated"))
        .1
}

#[test]
fn stdatamodels_accepts_written_reference_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let files = vec![
        write_readnoise(
            &d.join("readnoise.fits"),
            &meta("READNOISE", "ReadnoiseModel"),
        ),
        write_superbias(&d.join("superbias.fits"), true),
        write_mask(&d.join("mask.fits"), &mask_dq()),
        write_dark(&d.join("dark_nircam.fits"), false),
        write_dark(&d.join("dark_miri.fits"), true),
    ];
    let (code, results) = validate(&files);
    for (name, v) in &results {
        assert_eq!(
            v["ok"],
            Value::Bool(true),
            "{name} rejected: {}",
            v["error"]
        );
        assert!(v["error"].is_null());
    }
    assert_eq!(code, 0);

    let rn = find(&results, "readnoise.fits");
    assert_eq!(rn["model"], "ReadnoiseModel");
    assert_eq!(rn["shape"], serde_json::json!([NY, NX]));
    assert_eq!(rn["sci_finite_fraction"], 1.0);
    let mut sorted = sci();
    sorted.sort_by(f32::total_cmp);
    let median = (sorted[NY * NX / 2 - 1] as f64 + sorted[NY * NX / 2] as f64) / 2.0;
    assert_eq!(rn["sci_median"].as_f64().unwrap(), median);
    assert!(rn["dq_nonzero"].is_null());

    let sb = find(&results, "superbias.fits");
    assert_eq!(sb["model"], "SuperBiasModel");
    assert_eq!(sb["dq_nonzero"], (NY * NX).div_ceil(50));
    let mask = find(&results, "mask.fits");
    assert_eq!(mask["model"], "MaskModel");
    assert_eq!(mask["shape"], serde_json::json!([NY, NX]));
    assert_eq!(
        mask["dq_nonzero"],
        mask_dq().iter().filter(|&&v| v != 0).count()
    );
    assert_eq!(find(&results, "dark_nircam.fits")["model"], "DarkModel");
    assert_eq!(
        find(&results, "dark_miri.fits")["shape"],
        serde_json::json!([2, 3, NY, NX])
    );

    // The primary header carries what write_primary promised, with FILENAME the final name.
    let h = read_primary_header(&files[0]).unwrap();
    assert_eq!(h.get_str("FILENAME"), Some("readnoise.fits"));
    assert_eq!(h.get_str("USEAFTER"), Some("2022-01-01T00:00:00"));
    assert_eq!(h.get_str("TELESCOP"), Some("JWST"));
    assert_eq!(
        (h.get_i64("SUBSIZE1"), h.get_i64("SUBSIZE2")),
        (Some(NX as i64), Some(NY as i64))
    );
    let date = h.get_str("DATE").unwrap();
    assert_eq!((date.len(), &date[10..11]), (23, "T"), "{date}");
    let keys: Vec<&str> = h
        .iter()
        .map(|(k, _)| k)
        .filter(|k| !["SIMPLE", "BITPIX", "NAXIS", "EXTEND"].contains(k))
        .collect();
    assert_eq!(
        keys,
        [
            "DATE", "FILENAME", "DATAMODL", "TELESCOP", "REFTYPE", "PEDIGREE", "DESCRIP", "AUTHOR",
            "USEAFTER", "INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1",
            "SUBSIZE2", "FASTAXIS", "SLOWAXIS", "READPATT", "CHECKSUM", "DATASUM"
        ]
    );
}

/// Writes a readnoise file with the primary keywords of `m`, except `skip`, and `set` on top;
/// `write_primary` refuses bad metadata, so this bypasses it to make bad files.
fn write_readnoise_raw(path: &Path, skip: &[&str], set: &[(&str, HeaderValue)]) -> PathBuf {
    let m = meta("READNOISE", "ReadnoiseModel");
    let s = |v: &str| HeaderValue::Str(v.to_string());
    let mut cards: Vec<(&str, HeaderValue)> = vec![
        ("DATE", s("2026-01-01T00:00:00.000")),
        ("FILENAME", s(&path.file_name().unwrap().to_string_lossy())),
        ("DATAMODL", s(&m.datamodel)),
        ("TELESCOP", s("JWST")),
        ("REFTYPE", s(&m.reftype)),
        ("PEDIGREE", s(&m.pedigree)),
        ("DESCRIP", s(&m.description)),
        ("AUTHOR", s(&m.author)),
        ("USEAFTER", s(&m.useafter)),
        ("INSTRUME", s(&m.instrument)),
        ("DETECTOR", s(&m.detector)),
        ("SUBARRAY", s(&m.subarray)),
        ("SUBSTRT1", m.substrt1.into()),
        ("SUBSTRT2", m.substrt2.into()),
        ("SUBSIZE1", m.subsize1.into()),
        ("SUBSIZE2", m.subsize2.into()),
        ("FASTAXIS", m.fastaxis.into()),
        ("SLOWAXIS", m.slowaxis.into()),
        ("READPATT", s("ANY")),
    ];
    cards.retain(|(k, _)| !skip.contains(k));
    for (k, v) in set {
        match cards.iter_mut().find(|(c, _)| c == k) {
            Some(card) => card.1 = v.clone(),
            None => cards.push((k, v.clone())),
        }
    }
    let mut w = FitsWriter::create(path).unwrap();
    for (k, v) in &cards {
        w.set_primary_key(k, v, "").unwrap();
    }
    // As every reference file mkrefs writes; skipping "CHECKSUM" leaves them out.
    w.set_checksums(!skip.contains(&"CHECKSUM")).unwrap();
    w.write_image("SCI", &[NY, NX], &sci()).unwrap();
    w.set_key("BUNIT", &"DN".into(), "").unwrap();
    w.finish().unwrap()
}

#[test]
fn validator_rejects_bad_reference_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The raw writer itself produces an accepted file; each case below changes one thing.
    let control = write_readnoise_raw(&d.join("control.fits"), &[], &[]);

    let f64_sci = {
        let path = d.join("f64_sci.fits");
        let mut w = FitsWriter::create(&path).unwrap();
        let mut m = meta("READNOISE", "ReadnoiseModel");
        m.readpatt = Some("ANY".into());
        m.write_primary(&mut w).unwrap();
        let data: Vec<f64> = sci().iter().map(|&v| v as f64).collect();
        w.write_image("SCI", &[NY, NX], &data).unwrap();
        w.set_key("BUNIT", &"DN".into(), "").unwrap();
        w.finish().unwrap()
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (f64_sci, "SCI is stored as float64"),
        (
            write_mask(
                &d.join("i32_mask.fits"),
                &mask_dq().iter().map(|&v| v as i32).collect::<Vec<_>>(),
            ),
            "DQ is stored as int32",
        ),
        (
            write_readnoise_raw(&d.join("no_descrip.fits"), &["DESCRIP"], &[]),
            "primary keyword DESCRIP is missing",
        ),
        (
            write_readnoise_raw(&d.join("no_readpatt.fits"), &["READPATT"], &[]),
            "READPATT is missing",
        ),
        (
            write_readnoise_raw(
                &d.join("date_only.fits"),
                &[],
                &[("USEAFTER", "2022-01-01".into())],
            ),
            "USEAFTER '2022-01-01' is not",
        ),
        (
            write_readnoise_raw(
                &d.join("bad_date.fits"),
                &[],
                &[("USEAFTER", "2022-02-30T00:00:00".into())],
            ),
            "not a real date",
        ),
        (
            write_readnoise_raw(
                &d.join("bad_pedigree.fits"),
                &[],
                &[("PEDIGREE", "FLIGHT".into())],
            ),
            "PEDIGREE 'FLIGHT'",
        ),
        (
            write_readnoise_raw(
                &d.join("bad_detector.fits"),
                &[],
                &[("DETECTOR", "NRCZ9".into())],
            ),
            "stdatamodels rejects it",
        ),
        (
            write_readnoise_raw(
                &d.join("str_substrt.fits"),
                &[],
                &[("SUBSTRT1", "1".into())],
            ),
            "'1' is not of type 'integer'",
        ),
        (
            write_readnoise_raw(&d.join("no_telescop.fits"), &["TELESCOP"], &[]),
            "TELESCOP is missing",
        ),
        (
            write_superbias(&d.join("no_dq_def.fits"), false),
            "extension DQ_DEF is missing",
        ),
        (
            write_readnoise_raw(&d.join("no_checksum.fits"), &["CHECKSUM"], &[]),
            "HDU PRIMARY has no CHECKSUM",
        ),
    ];
    let mut paths = vec![control.clone()];
    paths.extend(cases.iter().map(|(p, _)| p.clone()));
    let (code, results) = validate(&paths);
    assert_eq!(code, 1, "any rejected file makes the exit status 1");
    let c = find(&results, "control.fits");
    assert_eq!(c["ok"], true, "control rejected: {}", c["error"]);
    for (path, why) in &cases {
        let name = path.file_name().unwrap().to_string_lossy();
        let v = find(&results, &name);
        assert_eq!(v["ok"], false, "{name} accepted");
        let error = v["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{name}: expected {why:?} in {error:?}");
    }
}

#[test]
fn write_primary_refuses_invalid_metadata_and_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("readnoise.fits");
    let mut m = meta("READNOISE", "ReadnoiseModel");
    m.useafter = "2022-01-01".into(); // not normalised
    m.description = String::new();
    {
        let mut w = FitsWriter::create(&path).unwrap();
        let e = m.write_primary(&mut w).unwrap_err();
        assert_eq!(
            (e.kind, e.hdu.as_deref()),
            (FitsErrorKind::BadValue, Some("PRIMARY"))
        );
        let text = e.to_string();
        assert!(
            text.contains("USEAFTER \"2022-01-01\"") && text.contains("DESCRIP is empty"),
            "{text}"
        );
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn validator_reports_unreadable_files() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.fits");
    std::fs::write(&garbage, "not a FITS file").unwrap();
    let (code, results) = validate(&[garbage]);
    assert_eq!(code, 1);
    assert_eq!(results[0].1["ok"], false);
    assert!(
        results[0].1["error"]
            .as_str()
            .unwrap()
            .contains("astropy cannot read it")
    );
}
