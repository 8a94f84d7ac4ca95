//! The crds client against the test venv's crds (14.x) and a handmade local CRDS cache, without
//! a network: one client run chooses per exposure by detector and USEAFTER, names what it could
//! not choose, and a Python that cannot run or cannot import crds, or a CRDS that is not
//! configured, falls back to header matching in the local cache with the reason.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrefs::prep::crds::{
    self, Choice, ClientOutcome, ClientSettings, Method, Need, PARAMETER_KEYWORDS,
};
use mkrefs::prep::references::ExposureKeys;
use mkrefs_sim::testkit::{
    CRDS_TEST_CONTEXT, CrdsRmap, python, python_eval_args, write_crds_cache,
};
use mkrefs_support::fits::{FitsWriter, read_primary_header};
use mkrefs_support::header::HeaderValue;

/// A small FITS file with these primary keys (strings, or integers when they parse).
fn fits(path: &Path, keys: &[(&str, &str)]) -> PathBuf {
    let mut w = FitsWriter::create(path).unwrap();
    for (k, v) in keys {
        let value = match v.parse::<i64>() {
            Ok(i) => HeaderValue::Int(i),
            Err(_) => HeaderValue::Str(v.to_string()),
        };
        w.set_primary_key(k, &value, "").unwrap();
    }
    w.write_image::<f32>("SCI", &[2, 2], &[0.0; 4]).unwrap();
    w.finish().unwrap()
}

fn superbias(dir: &Path, name: &str, detector: &str, useafter: &str) -> PathBuf {
    fits(
        &dir.join(name),
        &[
            ("REFTYPE", "SUPERBIAS"),
            ("INSTRUME", "NIRCAM"),
            ("DETECTOR", detector),
            ("SUBARRAY", "SUB64P"),
            ("READPATT", "ANY"),
            ("USEAFTER", useafter),
        ],
    )
}

/// A raw NIRCam exposure's primary header on disk.
fn exposure(dir: &Path, name: &str, detector: &str, date: &str, time: &str) -> PathBuf {
    fits(
        &dir.join(name),
        &[
            ("TELESCOP", "JWST"),
            ("INSTRUME", "NIRCAM"),
            ("DETECTOR", detector),
            ("SUBARRAY", "SUB64P"),
            ("SUBSTRT1", "1"),
            ("SUBSIZE1", "64"),
            ("READPATT", "RAPID"),
            ("EXP_TYPE", "NRC_DARK"),
            ("NGROUPS", "10"),
            ("DATE-OBS", date),
            ("TIME-OBS", time),
        ],
    )
}

fn need(path: &Path, reftype: &str) -> Need {
    let h = read_primary_header(path).unwrap();
    Need {
        exposure: path.to_path_buf(),
        keys: ExposureKeys::from_header(path, &h).unwrap(),
        parameters: crds::parameters(&h),
        reftype: reftype.to_string(),
    }
}

/// A cache with superbias rules: NRCA1 has an old and a new file (USEAFTER 2020 and
/// 2025-06-01 00:05), NRCB1 one file from 2020, NRCB2 `N/A`; nothing else.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
    env: Vec<(String, String)>,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let made = dir.join("made");
    std::fs::create_dir_all(&made).unwrap();
    let a1_old = superbias(&made, "a1_old.fits", "NRCA1", "2020-01-01T00:00:00");
    let a1_new = superbias(&made, "a1_new.fits", "NRCA1", "2025-06-01T00:05:00");
    let b1 = superbias(&made, "b1.fits", "NRCB1", "2020-01-01T00:00:00");
    let cache = dir.join("crds");
    let env = write_crds_cache(
        &cache,
        "nircam",
        &[CrdsRmap {
            reftype: "superbias",
            parkey: "(('META.INSTRUMENT.DETECTOR', 'META.SUBARRAY.NAME'), \
                     ('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))",
            selector: "Match({\n\
                ('NRCA1', 'SUB64P') : UseAfter({\n\
                    '2020-01-01 00:00:00' : 'jwst_nircam_superbias_0001.fits',\n\
                    '2025-06-01 00:05:00' : 'jwst_nircam_superbias_0002.fits',\n\
                }),\n\
                ('NRCB1', 'SUB64P') : UseAfter({\n\
                    '2020-01-01 00:00:00' : 'jwst_nircam_superbias_0003.fits',\n\
                }),\n\
                ('NRCB2', 'SUB64P') : 'N/A',\n\
            })",
        }],
        &[
            (&a1_old, "jwst_nircam_superbias_0001.fits"),
            (&a1_new, "jwst_nircam_superbias_0002.fits"),
            (&b1, "jwst_nircam_superbias_0003.fits"),
        ],
    );
    Fixture {
        _tmp: tmp,
        dir,
        cache,
        env,
    }
}

fn settings(f: &Fixture, python: &str) -> ClientSettings {
    ClientSettings {
        python: python.to_string(),
        crds_path: Some(f.cache.clone()),
        env: f.env.clone(),
    }
}

fn venv_python() -> String {
    python().display().to_string()
}

fn cached(f: &Fixture, n: u32) -> PathBuf {
    f.cache.join(format!(
        "references/jwst/nircam/jwst_nircam_superbias_{n:04}.fits"
    ))
}

fn file(choice: &Result<Choice, String>) -> PathBuf {
    match choice {
        Ok(Choice::File { path, .. }) => path.clone(),
        other => panic!("expected a file, got {other:?}"),
    }
}

#[test]
fn one_client_run_chooses_per_exposure_by_detector_and_useafter() {
    let f = fixture();
    let a1_before = exposure(
        &f.dir,
        "a1_before.fits",
        "NRCA1",
        "2025-06-01",
        "00:00:00.000",
    );
    let a1_after = exposure(
        &f.dir,
        "a1_after.fits",
        "NRCA1",
        "2025-06-01",
        "00:10:00.395",
    );
    let b1 = exposure(&f.dir, "b1.fits", "NRCB1", "2025-06-01T00:10:00", "");
    let a2 = exposure(&f.dir, "a2.fits", "NRCA2", "2025-06-01", "00:10:00");
    let a1_early = exposure(&f.dir, "a1_early.fits", "NRCA1", "2019-01-01", "00:00:00");
    let b2 = exposure(&f.dir, "b2.fits", "NRCB2", "2025-06-01", "00:00:00");
    let needs = vec![
        need(&a1_before, "superbias"),
        need(&a1_after, "superbias"),
        need(&b1, "superbias"),
        need(&a2, "superbias"),
        need(&a1_early, "superbias"),
        need(&b2, "superbias"),
        need(&a1_before, "linearity"),
    ];
    let r = crds::resolve(&settings(&f, &venv_python()), &needs);
    assert_eq!(
        r.method,
        Method::Client {
            context: CRDS_TEST_CONTEXT.to_string()
        }
    );
    // USEAFTER 2025-06-01 00:05 separates the two NRCA1 exposures; NRCB1 has its own file.
    assert_eq!(file(&r.choices[0]), cached(&f, 1));
    assert_eq!(file(&r.choices[1]), cached(&f, 2));
    assert_eq!(file(&r.choices[2]), cached(&f, 3));
    let Ok(Choice::File { why, .. }) = &r.choices[1] else {
        unreachable!()
    };
    assert!(
        why.contains("CRDS context jwst_0001.pmap chose")
            && why.contains("jwst_nircam_superbias_0002.fits as SUPERBIAS for")
            && why.contains("a1_after.fits"),
        "{why}"
    );
    // No rule for NRCA2: the exposure, the reftype, crds' reason and what to do.
    let err = r.choices[3].as_ref().unwrap_err();
    for part in [
        "a2.fits",
        "reffile4ssb.superbias is CRDS",
        "CRDS context jwst_0001.pmap chose no SUPERBIAS file",
        "NRCA2",
        "META.INSTRUMENT.DETECTOR=NRCA2",
        "give reffile4ssb.superbias a file",
    ] {
        assert!(err.contains(part), "{part:?} in {err}");
    }
    // Before every USEAFTER: no match.
    let err = r.choices[4].as_ref().unwrap_err();
    assert!(
        err.contains("a1_early.fits") && err.contains("No match found"),
        "{err}"
    );
    // The rules say N/A.
    assert_eq!(
        r.choices[5],
        Ok(Choice::NotApplicable {
            context: CRDS_TEST_CONTEXT.to_string()
        })
    );
    // A reftype the context has no rules for.
    let err = r.choices[6].as_ref().unwrap_err();
    assert!(
        err.contains("LINEARITY") && err.contains("Unknown reference type 'linearity'"),
        "{err}"
    );
}

#[test]
fn the_client_is_asked_once_with_every_exposure_and_reftype() {
    let f = fixture();
    let a = exposure(&f.dir, "a.fits", "NRCA1", "2025-06-01", "00:10:00");
    let b = exposure(&f.dir, "b.fits", "NRCB1", "2025-06-01", "00:10:00");
    let requests = vec![
        crds::Request {
            exposure: a.clone(),
            parameters: need(&a, "superbias").parameters,
            reftypes: vec!["superbias".into(), "dark".into()],
        },
        crds::Request {
            exposure: b.clone(),
            parameters: need(&b, "superbias").parameters,
            reftypes: vec!["superbias".into()],
        },
    ];
    let ClientOutcome::Answered(answers) = crds::ask(&settings(&f, &venv_python()), &requests)
    else {
        panic!("the client did not answer")
    };
    assert_eq!(answers.context, CRDS_TEST_CONTEXT);
    assert!(
        answers.crds_version.starts_with(char::is_numeric),
        "{answers:?}"
    );
    assert_eq!(answers.answers.len(), 2);
    assert_eq!(
        answers.answers[0]["superbias"],
        crds::Answer::File(cached(&f, 2))
    );
    assert!(matches!(
        &answers.answers[0]["dark"],
        crds::Answer::Error(e) if e.contains("Unknown reference type 'dark'")
    ));
    assert_eq!(
        answers.answers[1]["superbias"],
        crds::Answer::File(cached(&f, 3))
    );
}

/// A Python that cannot import crds: the venv's own, without its site-packages (`-S`).
fn python_without_crds(dir: &Path) -> String {
    let path = dir.join("python-without-crds");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec '{}' -S \"$@\"\n", python().display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn without_an_importable_crds_the_cache_is_searched_by_header_matching() {
    let f = fixture();
    let a1 = exposure(&f.dir, "a1.fits", "NRCA1", "2025-06-01", "00:10:00");
    let a2 = exposure(&f.dir, "a2.fits", "NRCA2", "2025-06-01", "00:10:00");
    let needs = vec![need(&a1, "superbias"), need(&a2, "superbias")];
    for (python, reason) in [
        (
            "/nonexistent/bin/python3".to_string(),
            "calibration.python /nonexistent/bin/python3 cannot be run",
        ),
        (
            python_without_crds(&f.dir),
            "cannot import crds (ModuleNotFoundError: No module named 'crds')",
        ),
    ] {
        let r = crds::resolve(&settings(&f, &python), &needs);
        let Method::HeaderMatching { reason: why } = &r.method else {
            panic!("{python}: the client was used: {r:?}")
        };
        assert!(why.contains(reason), "{python}: {why}");
        // Header matching: the latest USEAFTER not after the exposure, same detector.
        assert_eq!(file(&r.choices[0]), cached(&f, 2), "{python}");
        let Ok(Choice::File { why, .. }) = &r.choices[0] else {
            unreachable!()
        };
        assert!(
            why.contains("header matching in the local CRDS cache"),
            "{why}"
        );
        let err = r.choices[1].as_ref().unwrap_err();
        assert!(
            err.contains("a2.fits")
                && err.contains("the crds client is not used")
                && err.contains(reason)
                && err.contains("DETECTOR is NRCA1"),
            "{err}"
        );
    }
}

#[test]
fn without_a_crds_configuration_the_client_is_not_started() {
    let f = fixture();
    let a1 = exposure(&f.dir, "a1.fits", "NRCA1", "2025-06-01", "00:10:00");
    let needs = vec![need(&a1, "superbias")];
    let unset = |keys: &[&str]| -> Vec<(String, String)> {
        f.env
            .iter()
            .map(|(k, v)| {
                let v = if keys.contains(&k.as_str()) {
                    String::new()
                } else {
                    v.clone()
                };
                (k.clone(), v)
            })
            .collect()
    };
    // No server and no context in the environment: the cache's server_config names one.
    let mut s = settings(&f, &venv_python());
    s.env = unset(&["CRDS_SERVER_URL", "CRDS_CONTEXT"]);
    assert!(
        crds::configuration(&s)
            .unwrap()
            .contains("config/jwst/server_config")
    );
    std::fs::remove_file(f.cache.join("config/jwst/server_config")).unwrap();
    let err = crds::configuration(&s).unwrap_err();
    assert!(err.contains("names no context"), "{err}");
    // A python that would fail loudly if it were started: the configuration is checked first.
    s.python = "/nonexistent/bin/python3".into();
    let r = crds::resolve(&s, &needs);
    assert_eq!(
        r.method,
        Method::HeaderMatching {
            reason: err.clone()
        }
    );
    assert_eq!(file(&r.choices[0]), cached(&f, 2));
    // A cache without rules.
    let empty = f.dir.join("empty-cache");
    std::fs::create_dir_all(&empty).unwrap();
    s.crds_path = Some(empty);
    let err = crds::configuration(&s).unwrap_err();
    assert!(err.contains("holds no rules"), "{err}");
    // No cache at all: nothing to fall back on, and the message says what to set.
    s.crds_path = None;
    let r = crds::resolve(&s, &needs);
    let err = r.choices[0].as_ref().unwrap_err();
    assert!(
        err.contains("a1.fits") && err.contains("set calibration.crds_path or CRDS_PATH"),
        "{err}"
    );
}

/// Once crds is installed and configured there is no fallback: a crds that cannot start (here:
/// a serverless setup whose cache lacks the server_config crds reads its settings from) fails
/// every need with crds' message and what to do.
#[test]
fn a_crds_that_fails_to_start_fails_every_need_with_its_message() {
    let f = fixture();
    std::fs::remove_file(f.cache.join("config/jwst/server_config")).unwrap();
    let a1 = exposure(&f.dir, "a1.fits", "NRCA1", "2025-06-01", "00:10:00");
    let b1 = exposure(&f.dir, "b1.fits", "NRCB1", "2025-06-01", "00:10:00");
    let needs = vec![need(&a1, "superbias"), need(&b1, "superbias")];
    let r = crds::resolve(&settings(&f, &venv_python()), &needs);
    assert!(matches!(r.method, Method::Client { .. }), "{r:?}");
    for (choice, name) in r.choices.iter().zip(["a1.fits", "b1.fits"]) {
        let err = choice.as_ref().unwrap_err();
        for part in [
            name,
            "reffile4ssb.superbias is CRDS",
            "failed before choosing the SUPERBIAS file",
            "server_config",
            "give reffile4ssb.superbias a file",
        ] {
            assert!(err.contains(part), "{part:?} in {err}");
        }
    }
}

#[test]
fn parameters_carry_the_datamodel_names_crds_expects() {
    let tmp = tempfile::tempdir().unwrap();
    let e = exposure(tmp.path(), "e.fits", "NRCA1", "2025-06-01T01:02:03.5", "");
    let p = crds::parameters(&read_primary_header(&e).unwrap());
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    assert_eq!(get("META.INSTRUMENT.NAME"), "NIRCAM");
    assert_eq!(get("META.INSTRUMENT.DETECTOR"), "NRCA1");
    assert_eq!(get("META.SUBARRAY.NAME"), "SUB64P");
    assert_eq!(get("META.EXPOSURE.READPATT"), "RAPID");
    assert_eq!(get("META.EXPOSURE.TYPE"), "NRC_DARK");
    assert_eq!(get("META.EXPOSURE.NGROUPS"), 10);
    assert_eq!(get("META.OBSERVATION.DATE"), "2025-06-01");
    assert_eq!(get("META.OBSERVATION.TIME"), "01:02:03.5");
    // The table is the datamodels' own mapping, as crds reads it.
    let fits_keys: Vec<&str> = PARAMETER_KEYWORDS.iter().map(|(k, _)| *k).collect();
    let stdout = python_eval_args(
        "import json, sys\nfrom crds.jwst import schema\n\
         print(json.dumps({k: schema.fits_to_dm(k) for k in sys.argv[1:]}))",
        &fits_keys,
    );
    let line = stdout.lines().last().unwrap_or_default();
    let dm: BTreeMap<String, Option<String>> = serde_json::from_str(line).unwrap();
    for (fits, model) in PARAMETER_KEYWORDS {
        assert_eq!(
            dm[*fits].as_deref(),
            Some(*model),
            "{fits} maps to {:?} in crds",
            dm[*fits]
        );
    }
}

#[test]
fn the_default_python_is_the_one_beside_strun() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let strun = bin.join("strun");
    std::fs::write(&strun, "").unwrap();
    assert_eq!(crds::default_python(strun.to_str().unwrap()), "python3");
    std::fs::write(bin.join("python"), "").unwrap();
    assert_eq!(
        crds::default_python(strun.to_str().unwrap()),
        bin.join("python").display().to_string()
    );
    assert_eq!(crds::default_python("/nonexistent/strun"), "python3");
}
