//! `crds certify`, the check every JWST reference file has to pass before it is delivered to
//! CRDS, on full-frame (2048x2048 NIRCam NRCA1) READNOISE, SUPERBIAS, DARK and MASK files made
//! by the real `mkrefs` binary from uncal darks and a flat it simulated itself. certify has
//! rules of its own for full frames (arrays exactly 2048x2048, SUBSTRT1/2 = 1), which the
//! subarrays of the other tests never meet. It runs offline against a handmade CRDS cache
//! whose rmaps select on the keywords the jwst documentation gives for NIRCam, so those
//! keywords are required and each file is test-inserted into its rmap. Besides the .tpn rules
//! of each reftype (keywords, their values, array shapes and types, DQ_DEF columns), certify
//! checks the FITS standard and the FITS checksums, and opens each file as its stdatamodels
//! model.
//!
//! A MASK broken on purpose must fail, so the test shows that the gate can close.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use mkrefs_e2e::{Ran, final_outputs, mkrefs, python, python_eval_args, run, step_reference_args};
use mkrefs_sim::testkit::{CRDS_TEST_CONTEXT, CrdsRmap, write_crds_cache};
use mkrefs_support::fits::read_primary_header;

/// The USEAFTER part of every rmap's parkey.
const DATE_TIME: &str = "('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME')";

/// (reftype, parkey) of the cache's NIRCam rmaps: the selection keywords of the jwst
/// documentation's "Reference Selection Keywords" tables (READPATT only for READNOISE and
/// SUPERBIAS). certify makes them required and inserts each file by their values.
fn rmaps() -> Vec<(&'static str, String)> {
    let with_readpatt = format!(
        "(('META.INSTRUMENT.DETECTOR', 'META.EXPOSURE.READPATT', 'META.SUBARRAY.NAME'), \
         {DATE_TIME})"
    );
    let without = format!("(('META.INSTRUMENT.DETECTOR', 'META.SUBARRAY.NAME'), {DATE_TIME})");
    vec![
        ("readnoise", with_readpatt.clone()),
        ("superbias", with_readpatt),
        ("dark", without.clone()),
        ("mask", without),
    ]
}

/// Simulates 2 darks and 1 flat, full frame, 3 integrations x 4 groups (the bad-pixel search
/// needs 5 dark integrations), and the steps' reference files; returns the uncal files and
/// the `--pp reffile4ssb` arguments.
fn simulate(dir: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let sim = run(mkrefs(dir).args([
        "simulate",
        "--out",
        "sim",
        "--size",
        "2048",
        "--darks",
        "2",
        "--flats",
        "1",
        "--nints",
        "3",
        "--ngroups",
        "4",
        "--seed",
        "11",
        "--step-references",
    ]));
    assert!(sim.ok(), "{sim:?}");
    let mut uncal: Vec<PathBuf> = std::fs::read_dir(dir.join("sim"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_uncal.fits"))
        .collect();
    uncal.sort();
    assert_eq!(uncal.len(), 3, "{uncal:?}");
    (uncal, step_reference_args(&dir.join("sim"), "NRCA1"))
}

/// Runs the four bundled generators (the dark and bpm through native calibration jobs) and
/// returns the final files, READNOISE, SUPERBIAS, DARK and MASK, each checked to be FULL.
fn make_reference_files(dir: &Path) -> Vec<PathBuf> {
    let (uncal, refs) = simulate(dir);
    let out = run(mkrefs(dir)
        .arg("readnoise,superbias,dark,bpm")
        .args(&uncal)
        .args(["--outrootdir", "out"])
        .args(refs));
    assert!(out.ok(), "{out:?}");
    let finals = final_outputs(&dir.join("out"));
    let names: Vec<String> = finals
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "dark_nrca1.fits",
            "mask_nrca1.fits",
            "readnoise_nrca1.fits",
            "superbias_nrca1.fits"
        ]
    );
    for f in &finals {
        let h = read_primary_header(f).unwrap();
        assert_eq!(h.get_str("SUBARRAY"), Some("FULL"), "{}", f.display());
        assert_eq!(h.get_i64("SUBSIZE1"), Some(2048), "{}", f.display());
        assert_eq!(h.get_i64("SUBSIZE2"), Some(2048), "{}", f.display());
    }
    finals
}

/// `python -m crds.certify` (what `crds certify` runs) on `files`, offline: the handmade cache
/// in `crds_env` (CRDS_PATH, CRDS_MODE=local, a serverless CRDS_SERVER_URL, CRDS_CONTEXT) and
/// no other CRDS setting of the caller's environment, so that e.g. a
/// CRDS_FITS_VERIFY_CHECKSUM=0 or CRDS_ALLOW_SCHEMA_VIOLATIONS=1 cannot soften the check.
/// The comparison context is the cache's own context. (crds writes its trial rmaps to
/// /tmp/<rmap name>, a path it fixes; they are left there for any other certify run that may
/// be using them.)
fn certify(cwd: &Path, crds_env: &[(String, String)], files: &[PathBuf]) -> Ran {
    let mut cmd = Command::new(python());
    cmd.current_dir(cwd);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("CRDS_") {
            cmd.env_remove(key);
        }
    }
    cmd.envs(crds_env.iter().map(|(k, v)| (k, v)))
        .args([
            "-m",
            "crds.certify",
            "--comparison-context",
            CRDS_TEST_CONTEXT,
        ])
        .args(files);
    run(&mut cmd)
}

/// Certify accepted every file: exit status 0, no ERROR and no WARNING line, and each file
/// went through the FITS check, the datamodel check and the test insertion into its rmap.
///
/// No warning is accepted, though certify's exit status ignores warnings: with these files
/// none appears, and a FITS checksum that does not verify, or a value stdatamodels warns
/// about, is only a warning to certify (see the negative check).
fn assert_certified(ran: &Ran, files: &[PathBuf]) {
    let all = ran.all();
    let bad: Vec<&str> = all
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARNING"))
        .collect();
    assert!(
        ran.ok() && bad.is_empty(),
        "crds certify did not accept the files:\n{}\n{ran:?}",
        bad.join("\n")
    );
    assert!(
        all.contains(" 0 errors") && all.contains(" 0 warnings"),
        "{all}"
    );
    for f in files {
        let name = f.file_name().unwrap().to_string_lossy();
        let reftype = read_primary_header(f)
            .unwrap()
            .get_str("REFTYPE")
            .unwrap()
            .to_ascii_lowercase();
        for needle in [
            format!("FITS file '{name}' conforms to FITS standards."),
            format!("Inserting {name} into 'jwst_nircam_{reftype}_0001.rmap'"),
        ] {
            assert!(all.contains(&needle), "no {needle:?} in\n{all}");
        }
    }
    assert_eq!(
        all.matches("Checking JWST datamodels.").count(),
        files.len(),
        "{all}"
    );
}

/// Copies of the MASK, each with one defect: SUBSTRT1 = 5 on a full frame and a float DQ
/// (both with fresh checksums, so the defect is the only fault), and one DQ bit flipped without
/// updating the checksums.
fn broken_masks(mask: &Path, dir: &Path) -> [PathBuf; 3] {
    std::fs::create_dir_all(dir).unwrap();
    let code = r#"
import sys
import numpy as np
from astropy.io import fits
mask, out = sys.argv[1], sys.argv[2]
def copy(name, change, checksum=True):
    with fits.open(mask) as hdus:
        new = fits.HDUList([h.copy() for h in hdus])
    change(new)
    new.writeto(f"{out}/{name}", checksum=checksum)
def substrt1(h): h[0].header["SUBSTRT1"] = 5
def float_dq(h): h["DQ"].data = h["DQ"].data.astype(np.float32)
def flip(h): h["DQ"].data[100, 100] ^= 1
copy("mask_substrt1.fits", substrt1)
copy("mask_float_dq.fits", float_dq)
copy("mask_stale_checksum.fits", flip, checksum=False)
"#;
    python_eval_args(code, [mask, dir]);
    ["mask_substrt1", "mask_float_dq", "mask_stale_checksum"].map(|n| dir.join(format!("{n}.fits")))
}

/// Certify refuses the broken masks: errors (and a non-zero exit status) for the wrong start
/// and the float DQ, and warnings, which [`assert_certified`] refuses, for the checksums.
fn assert_broken_masks_fail(dir: &Path, crds_env: &[(String, String)], mask: &Path) {
    let broken = broken_masks(mask, &dir.join("broken"));
    let ran = certify(dir, crds_env, &broken);
    assert!(!ran.ok(), "certify accepted broken masks: {ran:?}");
    let all = ran.all();
    let error_about = |file: &str, what: &str| {
        all.lines()
            .any(|l| l.contains("ERROR") && l.contains(file) && l.contains(what))
    };
    assert!(
        error_about("mask_substrt1.fits", "(META_SUBARRAY_XSTART==1)"),
        "{all}"
    );
    assert!(
        error_about("mask_float_dq.fits", "(has_type(DQ_ARRAY,'INT'))"),
        "{all}"
    );
    assert!(
        all.lines().any(|l| l.contains("WARNING")
            && l.contains("Datasum verification failed for HDU ('DQ', 1)")),
        "{all}"
    );
}

#[test]
fn full_frame_reference_files_pass_crds_certify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let start = Instant::now();
    let files = make_reference_files(d);
    let made = start.elapsed();
    let rmaps = rmaps();
    let rmaps: Vec<CrdsRmap<'_>> = rmaps
        .iter()
        .map(|(reftype, parkey)| CrdsRmap {
            reftype,
            parkey,
            selector: "Match({\n})",
        })
        .collect();
    let crds_env = write_crds_cache(&d.join("crds"), "nircam", &rmaps, &[]);
    let ran = certify(d, &crds_env, &files);
    assert_certified(&ran, &files);
    let certified = start.elapsed();
    let mask = files
        .iter()
        .find(|f| f.ends_with("mask_nrca1.fits"))
        .unwrap();
    assert_broken_masks_fail(d, &crds_env, mask);
    eprintln!(
        "simulate + mkrefs {:.1} s, certify {:.1} s, broken masks {:.1} s",
        made.as_secs_f64(),
        (certified - made).as_secs_f64(),
        (start.elapsed() - certified).as_secs_f64()
    );
}
