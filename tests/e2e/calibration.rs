//! Calibration prep through the `mkrefs` binary: uncal files alone, brought to each generator's
//! state by the native engine in calibration jobs the executor runs before the generators, with
//! the superbias made in the same run feeding the darks' superbias step (`SELF`); and one test
//! per bad input of the issue, each failing only the jobs it concerns.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, all_files, assert_valid, fits_outputs, mkrefs, run};
use mkrefs_sim::{
    ProductSet, SimConfig, StepReference, Truth, write_dataset, write_step_references,
};
use mkrefs_support::fits::{FitsWriter, read_primary_header};
use mkrefs_support::geometry::Subarray;

struct Data {
    uncal: Vec<String>,
    /// (reftype lower case, file) of every step reference file.
    refs: Vec<(String, PathBuf)>,
}

/// Uncal darks and flats of a 64x64 NIRCam subarray, and the steps' reference files.
fn dataset(dir: &Path, darks: usize, flats: usize) -> Data {
    let d = CalibrationData::write(dir, (darks, flats), 64, 10, 33);
    Data {
        uncal: d.uncal(),
        refs: d.refs,
    }
}

/// `--pp reffile4ssb <reftype> <file>` for every reference file except `except`.
fn ref_args(data: &Data, except: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for (reftype, path) in &data.refs {
        if except.contains(&reftype.as_str()) {
            continue;
        }
        args.extend([
            "--pp".to_string(),
            "reffile4ssb".to_string(),
            reftype.clone(),
            path.display().to_string(),
        ]);
    }
    args
}

/// The FITS files in ssb directories below `root` (or in `root` itself if it is one).
fn ssb_products(root: &Path) -> Vec<PathBuf> {
    all_files(root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "fits"))
        .filter(|p| p.components().any(|c| c.as_os_str() == "ssb"))
        .collect()
}

/// The jump product below `root`, checked to carry every step up to jump as COMPLETE and to
/// record `superbias` (by file name) as R_SUPERB; returns its primary header.
fn checked_jump_product(root: &Path, superbias: &Path) -> mkrefs_support::header::Header {
    let products = ssb_products(root);
    let jump = products
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_linearity_jump.fits"))
        .unwrap_or_else(|| panic!("no jump product in {products:?}"));
    let h = read_primary_header(jump).unwrap();
    for key in [
        "S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR", "S_JUMP",
    ] {
        assert_eq!(
            h.get_str(key),
            Some("COMPLETE"),
            "{key} of {}",
            jump.display()
        );
    }
    let r_superb = h.get_str("R_SUPERB").unwrap_or_default().to_string();
    assert!(
        r_superb.ends_with(superbias.file_name().unwrap().to_str().unwrap()),
        "R_SUPERB {r_superb}"
    );
    h
}

/// The reference files below `root` (the FITS outputs outside ssb directories).
fn reference_outputs(root: &Path) -> Vec<PathBuf> {
    fits_outputs(root)
        .into_iter()
        .filter(|p| !p.components().any(|c| c.as_os_str() == "ssb"))
        .collect()
}

/// Nothing of strun's work directories is left below `root`.
fn assert_no_strun_work_dirs(root: &Path) {
    let files = all_files(root);
    assert!(
        files
            .iter()
            .all(|p| !p.to_string_lossy().contains(".strun-")),
        "{files:?}"
    );
}

#[test]
fn all_reference_files_from_uncal_with_self_superbias() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 4, 3);
    let args = |extra: &[&str]| {
        let mut cmd = mkrefs(dir.path());
        cmd.arg("superbias,readnoise,dark,bpm")
            .args(&data.uncal)
            .args(["--outrootdir", "out"])
            .args(ref_args(&data, &["superbias"]))
            .args(["--pp", "reffile4ssb", "superbias", "SELF"])
            .args(extra);
        cmd
    };

    // The dry run shows the graph and writes nothing.
    let dry = run(&mut args(&["--dry-run"]));
    assert!(dry.ok(), "{dry:?}");
    assert!(dry.stdout.contains("cal1"), "{}", dry.stdout);
    assert!(
        dry.stdout
            .contains("dq_init,saturation,superbias,refpix,linearity,jump,rate (+jump"),
        "{}",
        dry.stdout
    );
    assert!(!dir.path().join("out").exists());

    let out = run(&mut args(&[]));
    assert!(out.ok(), "{out:?}");
    // One calibration job per dark and flat (dark and bpm share the darks' products).
    assert_eq!(
        out.stdout.matches(" calibrate ").count(),
        7,
        "{}",
        out.stdout
    );
    let refs = reference_outputs(&dir.path().join("out"));
    assert_eq!(refs.len(), 4, "{refs:?}");
    let models: Vec<String> = assert_valid(&refs)
        .iter()
        .map(|r| r["model"].as_str().unwrap().to_string())
        .collect();
    for m in ["SuperBiasModel", "ReadnoiseModel", "DarkModel", "MaskModel"] {
        assert!(models.iter().any(|x| x == m), "{m} in {models:?}");
    }
    // The products record their steps and the superbias this run made.
    let superbias = refs
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_superbias.fits"))
        .unwrap();
    checked_jump_product(&dir.path().join("out"), superbias);

    // A second run checks every product against its record and every generator job against
    // its job file: all up to date, nothing runs.
    let again = run(&mut args(&[]));
    assert!(again.ok(), "{again:?}");
    assert!(
        again.stdout.contains("15 job(s): 0 ok, 15 skipped"),
        "{}",
        again.stdout
    );
}

/// The case: a SELF superbias campaign, then `-n` on other exposures under the same
/// names. The darks' products must be made again, through the new run's superbias.
#[test]
fn a_new_run_on_other_data_remakes_the_products_through_its_own_superbias() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let campaign = |extra: &[&str]| {
        run(mkrefs(dir.path())
            .arg("superbias,dark")
            .args(&data.uncal)
            .args(["--outrootdir", "out"])
            .args(ref_args(&data, &["superbias"]))
            .args(["--pp", "reffile4ssb", "superbias", "SELF"])
            .args(extra))
    };
    let first = campaign(&[]);
    assert!(first.ok(), "{first:?}");
    let other = CalibrationData::write(&dir.path().join("other"), (2, 0), 64, 10, 77);
    for (from, to) in other.darks.iter().zip(&data.uncal) {
        std::fs::copy(from, to).unwrap();
    }
    let second = campaign(&["-n"]);
    assert!(second.ok(), "{second:?}");
    for u in &data.uncal {
        assert!(
            second
                .stderr
                .contains(&format!("made again: {u} changed since")),
            "{u}: {second:?}"
        );
    }
    // The products now name the second run's superbias.
    let superbias = reference_outputs(&dir.path().join("out/run001"))
        .into_iter()
        .find(|p| p.to_string_lossy().ends_with("_superbias.fits"))
        .unwrap();
    checked_jump_product(&dir.path().join("out"), &superbias);
}

#[test]
fn a_missing_reference_file_stops_the_run_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let out = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out"])
        .args(ref_args(&data, &["saturation"])));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("the saturation step needs a SATURATION reference file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("reffile4ssb.saturation"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("out").exists(), "nothing may be written");
}

#[test]
fn a_step_the_native_engine_lacks_points_to_the_jwst_backend() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let out = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args([
            "--outrootdir",
            "out",
            "--pp",
            "dark",
            "ssbsteps",
            "dq_init, ipc",
        ])
        .args(ref_args(&data, &[])));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("does not implement ipc"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--backend jwst"), "{}", out.stderr);
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_step_that_does_not_exist_for_the_instrument_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let out = run(mkrefs(dir.path()).arg("dark").args(&data.uncal).args([
        "--outrootdir",
        "out",
        "--pp",
        "dark",
        "ssbsteps",
        "dq_init, firstframe",
    ]));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("firstframe"), "{}", out.stderr);
    assert!(out.stderr.contains("ssbsteps"), "{}", out.stderr);
}

#[test]
fn steps_that_would_run_out_of_pipeline_order_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    // Make linearity products, then ask for superbias on top of them.
    let made = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args([
            "--outrootdir",
            "first",
            "--pp",
            "dark",
            "ssbsteps",
            "dq_init, saturation, linearity",
            "--calibrate-only",
        ])
        .args(ref_args(&data, &[])));
    assert!(made.ok(), "{made:?}");
    let linearized: Vec<String> = ssb_products(&dir.path().join("first"))
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(linearized.len(), 2, "{linearized:?}");
    let out = run(mkrefs(dir.path())
        .arg("dark")
        .args(&linearized)
        .args([
            "--outrootdir",
            "second",
            "--pp",
            "dark",
            "ssbsteps",
            "dq_init, saturation, superbias, linearity",
        ])
        .args(ref_args(&data, &[])));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(
            "needs superbias, but the file already has linearity done, which comes after \
             superbias in the"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn a_reference_file_of_the_wrong_reftype_fails_its_jobs_and_their_dependents_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let saturation = data
        .refs
        .iter()
        .find(|(r, _)| r == "saturation")
        .unwrap()
        .1
        .clone();
    let out = run(mkrefs(dir.path())
        .arg("readnoise,dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out"])
        .args(ref_args(&data, &["mask"]))
        .args(["--pp", "reffile4ssb", "mask"])
        .arg(&saturation));
    assert!(!out.ok(), "{out:?}");
    // The calibration jobs name the input, the step and the file; the dark job is listed as
    // not run; readnoise (raw inputs) still made its file.
    assert!(out.stdout.contains("step dq_init"), "{}", out.stdout);
    assert!(
        out.stdout.contains("REFTYPE is SATURATION"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&data.uncal[0]), "{}", out.stdout);
    assert!(
        out.stdout.contains("dark NRCA1 not run: it needs cal"),
        "{}",
        out.stdout
    );
    let outputs: Vec<PathBuf> = fits_outputs(&dir.path().join("out"));
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert!(outputs[0].to_string_lossy().contains("readnoise"));
}

#[test]
fn a_reference_file_of_another_detector_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    // A mask of NRCB1 for NRCA1 exposures.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let cfg = SimConfig::default()
        .with_detector("NRCB1")
        .with_square_subarray(64)
        .with_ramp(2, 10);
    let m = write_dataset(&other, &cfg, 1, 0, ProductSet::NONE).unwrap();
    let truth = Truth::read(&other.join(&m.truth)).unwrap();
    let example = other.join(&m.exposures[0].files[0].file);
    let mask = write_step_references(&other, &example, &truth, &[StepReference::Mask])
        .unwrap()
        .remove(0)
        .1;
    let out = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out"])
        .args(ref_args(&data, &["mask"]))
        .args(["--pp", "reffile4ssb", "mask"])
        .arg(&mask));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("DETECTOR is NRCB1"), "{}", out.stdout);
    assert!(out.stdout.contains("not run"), "{}", out.stdout);
}

#[test]
fn a_reference_file_of_the_wrong_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    // A mask that claims the exposures' subarray (SUB64P) but holds only 32x32 pixels.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let cfg = SimConfig::default()
        .with_subarray(Subarray {
            name: "SUB64P".into(),
            xstart: 1,
            ystart: 1,
            nx: 32,
            ny: 32,
        })
        .with_ramp(2, 10);
    let m = write_dataset(&other, &cfg, 1, 0, ProductSet::NONE).unwrap();
    let truth = Truth::read(&other.join(&m.truth)).unwrap();
    let example = other.join(&m.exposures[0].files[0].file);
    let mask = write_step_references(&other, &example, &truth, &[StepReference::Mask])
        .unwrap()
        .remove(0)
        .1;
    assert_eq!(
        read_primary_header(&mask).unwrap().get_str("SUBARRAY"),
        Some("SUB64P")
    );
    let out = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out"])
        .args(ref_args(&data, &["mask"]))
        .args(["--pp", "reffile4ssb", "mask"])
        .arg(&mask));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("does not contain the exposure's"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(mask.to_str().unwrap()),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dark NRCA1 not run"), "{}", out.stdout);
}

/// Runs dark on the data with every reference file, returning the run's output.
/// With whole products in ssbdir (`--keep-products`), which these tests take for the user's
/// own once their record is gone.
fn dark_run(dir: &Path, data: &Data, outroot: &str) -> mkrefs_e2e::Ran {
    run(mkrefs(dir)
        .arg("dark")
        .args(&data.uncal)
        .args([
            "--outrootdir",
            outroot,
            "--ssbdir",
            "ssb",
            "--keep-products",
        ])
        .args(ref_args(data, &[])))
}

/// The record mkrefs keeps beside a product it made.
fn record_of(product: &Path) -> PathBuf {
    PathBuf::from(format!("{}.made_from.json", product.display()))
}

#[test]
fn a_truncated_product_is_remade_when_mkrefs_made_it_and_fails_its_jobs_when_the_user_did() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 3, 0);
    let first = dark_run(dir.path(), &data, "a");
    assert!(first.ok(), "{first:?}");
    let products = ssb_products(&dir.path().join("ssb"));
    let victim = products
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_jump.fits"))
        .unwrap();
    let len = std::fs::metadata(victim).unwrap().len();
    let truncate = || {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(victim)
            .unwrap();
        f.set_len(len / 2).unwrap();
    };
    // Made by mkrefs: its record no longer matches, so it is made again.
    truncate();
    let remade = dark_run(dir.path(), &data, "a");
    assert!(remade.ok(), "{remade:?}");
    assert!(
        remade.stderr.contains(&format!(
            "made again: {} was changed after it was made",
            victim.display()
        )),
        "{remade:?}"
    );
    assert_eq!(std::fs::metadata(victim).unwrap().len(), len);
    // Without a record it is the user's product: used as found, so checked, and refused.
    truncate();
    std::fs::remove_file(record_of(victim)).unwrap();
    let out = dark_run(dir.path(), &data, "b");
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("is truncated"), "{}", out.stdout);
    assert!(
        out.stdout.contains(&victim.display().to_string()),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("--recalibrate"), "{}", out.stdout);
    assert!(out.stdout.contains("dark NRCA1 not run"), "{}", out.stdout);
    // --recalibrate remakes it.
    let fixed = run(mkrefs(dir.path())
        .arg("dark")
        .args(&data.uncal)
        .args([
            "--outrootdir",
            "b",
            "--ssbdir",
            "ssb",
            "--recalibrate",
            "--keep-products",
        ])
        .args(ref_args(&data, &[])));
    assert!(fixed.ok(), "{fixed:?}");
    assert_eq!(std::fs::metadata(victim).unwrap().len(), len);
}

#[test]
fn a_product_whose_data_contradict_its_state_fails_the_jobs_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let first = dark_run(dir.path(), &data, "a");
    assert!(first.ok(), "{first:?}");
    // Replace one jump product by a file with the same keywords but a 2-D SCI, as if a rate
    // image had been given the jump product's name and state.
    let products = ssb_products(&dir.path().join("ssb"));
    let victim = products
        .iter()
        .find(|p| p.to_string_lossy().ends_with("_jump.fits"))
        .unwrap();
    let header = read_primary_header(victim).unwrap();
    std::fs::remove_file(victim).unwrap();
    // Without the record mkrefs kept, the product is taken as the user's own.
    std::fs::remove_file(record_of(victim)).unwrap();
    let mut w = FitsWriter::create(victim).unwrap();
    for (key, value) in header.iter() {
        if !STRUCTURAL.contains(&key) {
            w.set_primary_key(key, value, "").unwrap();
        }
    }
    w.write_image::<f32>("SCI", &[64, 64], &[0.0; 64 * 64])
        .unwrap();
    w.finish().unwrap();
    let out = dark_run(dir.path(), &data, "b");
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("claims dq_init"), "{}", out.stdout);
    assert!(
        out.stdout.contains("its SCI has shape [64, 64]"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dark NRCA1 not run"), "{}", out.stdout);
}

/// Keywords cfitsio writes itself.
const STRUCTURAL: &[&str] = &["SIMPLE", "BITPIX", "NAXIS", "EXTEND", "END"];

#[test]
fn strun_missing_fails_the_calibration_jobs_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let out = run(mkrefs(dir.path())
        .arg("readnoise,dark")
        .args(&data.uncal)
        .args([
            "--outrootdir",
            "out",
            "--backend",
            "jwst",
            "--pp",
            "calibration",
            "strun",
            "/nonexistent/bin/strun",
        ])
        .args(ref_args(&data, &[])));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stdout.contains("cannot run the jwst pipeline's strun"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dark NRCA1 not run"), "{}", out.stdout);
    assert!(
        fits_outputs(&dir.path().join("out"))
            .iter()
            .any(|p| p.to_string_lossy().contains("readnoise"))
    );
}

/// The test venv's `strun` (jwst 3.0.0), beside the Python that validates the outputs.
fn venv_strun() -> PathBuf {
    let python = mkrefs_sim::testkit::python();
    let strun = python.parent().unwrap().join("strun");
    assert!(
        strun.exists(),
        "{} does not exist: the test venv lacks jwst; run `bash tests/run.sh` or \
         `tests/python/ensure-venv.sh target/test-venv`",
        strun.display()
    );
    strun
}

/// `mkrefs run --backend jwst` with the real strun: the darks and flats are calibrated by the
/// jwst pipeline (offline, every reference file an override), the products carry the pipeline's
/// state and the reference files they were given, and the generators make valid files from them.
#[test]
fn the_jwst_backend_calibrates_through_strun_for_the_generators() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 3, 2);
    let strun = venv_strun();
    let out = run(mkrefs(dir.path())
        .arg("dark,bpm")
        .args(&data.uncal)
        .args(["--outrootdir", "out", "--backend", "jwst", "--pp"])
        .args(["calibration", "strun", strun.to_str().unwrap()])
        .args(ref_args(&data, &[])));
    assert!(out.ok(), "{out:?}");
    assert_eq!(
        out.stdout.matches(" calibrate ").count(),
        5,
        "{}",
        out.stdout
    );
    let root = dir.path().join("out");
    let superbias = &data.refs.iter().find(|(r, _)| r == "superbias").unwrap().1;
    let h = checked_jump_product(&root, superbias);
    // Steps the job did not ask for were skipped, not run.
    assert_ne!(h.get_str("S_DARK"), Some("COMPLETE"));
    // The pipeline's own products only: no work directory left beside them.
    assert_no_strun_work_dirs(&root);
    let refs = reference_outputs(&root);
    assert_eq!(refs.len(), 2, "{refs:?}");
    assert_valid(&refs);
}

/// A pipeline run that fails (strun exits non-zero: here a parameter the jump step rejects)
/// fails its calibration job with the input named and the log pointed to, skips the jobs that
/// needed its product, keeps nothing of the run beside the products, and lets the other
/// generator (readnoise, which needs no calibration) finish.
#[test]
fn a_failing_pipeline_run_fails_its_job_and_skips_its_dependents_only() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let strun = venv_strun();
    let wrapper = dir.path().join("strun-broken-jump");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nexec '{}' \"$@\" --steps.jump.rejection_threshold=not-a-number\n",
            strun.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = run(mkrefs(dir.path())
        .arg("readnoise,dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out", "--backend", "jwst", "--pp"])
        .args(["calibration", "strun", wrapper.to_str().unwrap()])
        .args(ref_args(&data, &[])));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("strun failed"), "{}", out.stdout);
    assert!(out.stdout.contains(&data.uncal[0]) || out.stdout.contains(&data.uncal[1]));
    assert!(out.stdout.contains("dark NRCA1 not run"), "{}", out.stdout);
    let root = dir.path().join("out");
    assert!(
        fits_outputs(&root)
            .iter()
            .any(|p| p.to_string_lossy().contains("readnoise")),
        "{:?}",
        all_files(&root)
    );
    assert!(ssb_products(&root).is_empty(), "{:?}", ssb_products(&root));
    assert_no_strun_work_dirs(&root);
}

/// The calibrated products of a `--calibrate-only` run, by the raw exposure they come from.
fn products_of(root: &Path, uncal: &str) -> Vec<PathBuf> {
    let stem = Path::new(uncal)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches("_uncal")
        .to_string();
    ssb_products(root)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&stem))
        .collect()
}

/// `reffile4ssb superbias CRDS` through the crds client of the test venv, on a handmade local
/// CRDS cache (no network): the rules give the first dark (00:00) the old superbias and the
/// second (00:10) the one whose USEAFTER is 00:05; each product records its own (R_SUPERB), and
/// the log names the context and each choice.
#[test]
fn crds_references_come_from_the_crds_client() {
    use mkrefs_sim::testkit::{CrdsRmap, write_crds_cache};
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let superbias = &data.refs.iter().find(|(r, _)| r == "superbias").unwrap().1;
    let env = write_crds_cache(
        &dir.path().join("crds"),
        "nircam",
        &[CrdsRmap {
            reftype: "superbias",
            parkey: "(('META.INSTRUMENT.DETECTOR', 'META.SUBARRAY.NAME'), \
                     ('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))",
            selector: "Match({\n\
                ('NRCA1', 'SUB64P') : UseAfter({\n\
                    '2000-01-01 00:00:00' : 'jwst_nircam_superbias_0001.fits',\n\
                    '2025-06-01 00:05:00' : 'jwst_nircam_superbias_0002.fits',\n\
                }),\n\
            })",
        }],
        &[
            (superbias, "jwst_nircam_superbias_0001.fits"),
            (superbias, "jwst_nircam_superbias_0002.fits"),
        ],
    );
    let python = mkrefs_sim::testkit::python();
    let out = run(mkrefs(dir.path())
        .envs(env)
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out", "--calibrate-only"])
        .args(["--pp", "dark", "ssbsteps", "dq_init, saturation, superbias"])
        .args(["--pp", "calibration", "python", python.to_str().unwrap()])
        .args(["--pp", "reffile4ssb", "superbias", "CRDS"])
        .args(ref_args(&data, &["superbias"])));
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("asking the crds client"),
        "{}",
        out.stderr
    );
    let root = dir.path().join("out");
    for (uncal, chosen) in data.uncal.iter().zip([
        "jwst_nircam_superbias_0001.fits",
        "jwst_nircam_superbias_0002.fits",
    ]) {
        assert!(
            out.stderr.contains(&format!(
                "CRDS context jwst_0001.pmap chose {} as SUPERBIAS for {uncal}",
                dir.path()
                    .join("crds/references/jwst/nircam")
                    .join(chosen)
                    .display()
            )),
            "{}",
            out.stderr
        );
        let products = products_of(&root, uncal);
        assert_eq!(products.len(), 1, "{products:?}");
        let h = read_primary_header(&products[0]).unwrap();
        assert_eq!(h.get_str("S_SUPERB"), Some("COMPLETE"));
        assert_eq!(
            h.get_str("R_SUPERB"),
            Some(format!("crds://{chosen}").as_str()),
            "{}",
            products[0].display()
        );
    }
}

/// With a Python that cannot be run, `CRDS` falls back to header matching in the local cache,
/// and the log says why.
#[test]
fn crds_without_a_usable_client_falls_back_to_header_matching() {
    use mkrefs_sim::testkit::write_crds_cache;
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 1, 0);
    let mask = &data.refs.iter().find(|(r, _)| r == "mask").unwrap().1;
    let env = write_crds_cache(
        &dir.path().join("crds"),
        "nircam",
        &[],
        &[(mask, "jwst_nircam_mask_0001.fits")],
    );
    let out = run(mkrefs(dir.path())
        .envs(env)
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out", "--calibrate-only"])
        .args(["--pp", "dark", "ssbsteps", "dq_init"])
        .args(["--pp", "calibration", "python", "/nonexistent/bin/python3"])
        .args(["--pp", "reffile4ssb", "mask", "CRDS"])
        .args(ref_args(&data, &["mask"])));
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(
            "the crds client is not used: calibration.python /nonexistent/bin/python3 cannot \
             be run"
        ),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("header matching in the local CRDS cache chose"),
        "{}",
        out.stderr
    );
    let products = products_of(&dir.path().join("out"), &data.uncal[0]);
    assert_eq!(products.len(), 1, "{products:?}");
    let h = read_primary_header(&products[0]).unwrap();
    assert_eq!(
        h.get_str("R_MASK"),
        Some("crds://jwst_nircam_mask_0001.fits")
    );
}

/// With the jwst backend, a step whose reference file `reffile4ssb` does not give is left to
/// the pipeline's CRDS lookup; with no CRDS configured that lookup cannot succeed, so the plan
/// stops before anything runs, naming the step, the reftype and what to set.
#[test]
fn the_jwst_backend_without_a_reference_file_or_crds_stops_the_plan() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(&dir.path().join("data"), 2, 0);
    let out = run(mkrefs(dir.path())
        .env_remove("CRDS_PATH")
        .env_remove("CRDS_SERVER_URL")
        .arg("dark")
        .args(&data.uncal)
        .args(["--outrootdir", "out", "--backend", "jwst"])
        .args(["--pp", "calibration", "strun", "/nonexistent/bin/strun"])
        .args(ref_args(&data, &["linearity"])));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("the jwst pipeline's linearity step reads a LINEARITY file"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("set reffile4ssb.linearity"),
        "{}",
        out.stderr
    );
    assert!(!dir.path().join("out").exists(), "nothing may be written");
}
