//! Products made the way users make them: the project's simulated uncal files run through the
//! real jwst 3.0.0 calwebb_detector1 (the test venv's jwst, offline), saved under jwst's own
//! names (`<stem>_jump.fits`, `<stem>_fitopt.fits`, `<stem>_rate.fits`,
//! `<stem>_rateints.fits`, and a step's result `<stem>_linearity.fits`). The set is made once
//! per machine and kept in target/jwst-products (a fresh key when the simulator, the script or
//! this recipe changes).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use mkrefs_e2e::{
    CalibrationData, assert_valid, fits_outputs, mkrefs, python, run, workspace_root,
};

/// The steps jwst runs, and the products it saves besides rate and rateints.
const STEPS: &str = "dq_init,saturation,superbias,refpix,linearity,jump,ramp_fit";
const SAVE: &str = "linearity,jump,fitopt";

struct JwstSet {
    /// The uncal darks, then the uncal flats.
    darks: Vec<PathBuf>,
    flats: Vec<PathBuf>,
    /// jwst's products of every exposure.
    products: PathBuf,
}

fn simulate(raw: &Path) -> (Vec<PathBuf>, Vec<PathBuf>, Vec<(String, PathBuf)>) {
    let d = CalibrationData::write(raw, (3, 2), 64, 10, 55);
    (d.darks, d.flats, d.refs)
}

/// The key of a data set: the simulated exposures, the script and the recipe (the reference
/// files follow from the exposures' truth, but carry the time they were written).
fn key(exposures: &[PathBuf]) -> String {
    let mut h = DefaultHasher::new();
    for n in exposures {
        n.file_name().hash(&mut h);
        std::fs::read(n).unwrap().hash(&mut h);
    }
    let script = workspace_root().join("tests/python/jwst_products.py");
    std::fs::read(script).unwrap().hash(&mut h);
    (STEPS, SAVE).hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Runs jwst on every exposure into `out`.
fn make_products(darks: &[PathBuf], flats: &[PathBuf], refs: &[(String, PathBuf)], out: &Path) {
    let scratch = out.join("scratch");
    let mut cmd = Command::new(python());
    cmd.arg(workspace_root().join("tests/python/jwst_products.py"))
        .arg(out)
        .arg(STEPS)
        .arg(SAVE)
        .args(darks)
        .args(flats)
        .arg("--");
    for (reftype, path) in refs {
        cmd.arg(format!("{reftype}={}", path.display()));
    }
    for (k, v) in mkrefs::prep::jwst::offline_environment(&scratch).unwrap() {
        cmd.env(k, v);
    }
    let ran = run(&mut cmd);
    assert!(ran.ok(), "jwst failed: {ran:?}");
    std::fs::remove_dir_all(&scratch).unwrap();
}

/// The data set, made on first use. Tests running at the same time wait for the one that
/// makes it (a `<key>.making` directory is the lock; one left by a killed test is taken over
/// after ten minutes).
fn jwst_set() -> JwstSet {
    let base = workspace_root().join("target/jwst-products");
    let tmp = base.join(format!("tmp-{}-{}", std::process::id(), rand_suffix()));
    let raw = tmp.join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let (darks, flats, refs) = simulate(&raw);
    let exposures: Vec<PathBuf> = darks.iter().chain(&flats).cloned().collect();
    let dir = base.join(key(&exposures));
    let lock = base.join(format!("{}.making", key(&exposures)));
    loop {
        if dir.join("done").is_file() {
            let _ = std::fs::remove_dir_all(&tmp);
            break;
        }
        if std::fs::create_dir(&lock).is_ok() {
            make_products(&darks, &flats, &refs, &tmp.join("products"));
            std::fs::write(tmp.join("done"), b"").unwrap();
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&tmp, &dir).unwrap();
            std::fs::remove_dir(&lock).unwrap();
            break;
        }
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default().as_secs() > 600);
        if stale {
            let _ = std::fs::remove_dir(&lock);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let at = |files: &[PathBuf]| -> Vec<PathBuf> {
        files
            .iter()
            .map(|f| dir.join("raw").join(f.file_name().unwrap()))
            .collect()
    };
    JwstSet {
        darks: at(&darks),
        flats: at(&flats),
        products: dir.join("products"),
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn strs(files: &[PathBuf]) -> Vec<String> {
    files.iter().map(|f| f.display().to_string()).collect()
}

/// `--pp output pipeline_prod_search_dir DIR`.
fn search(dir: &Path) -> [String; 4] {
    [
        "--pp".into(),
        "output".into(),
        "pipeline_prod_search_dir".into(),
        dir.display().to_string(),
    ]
}

#[test]
fn dark_and_bpm_run_from_jwst_products_without_calibrating() {
    let set = jwst_set();
    let dir = tempfile::tempdir().unwrap();
    // No reference file for any step: everything needed must be found.
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "dark,bpm"])
        .args(strs(&set.darks))
        .args(strs(&set.flats))
        .args(search(&set.products)));
    assert!(out.ok(), "{out:?}");
    assert!(
        !out.stdout.contains("calibrate"),
        "nothing to calibrate: {out:?}"
    );
    let made = fits_outputs(&dir.path().join("out"));
    assert_eq!(made.len(), 2, "{made:?}");
    assert_valid(&made);
    // The generators read jwst's files.
    let groups = std::fs::read_to_string(dir.path().join("out/run000/run000.inputim.txt")).unwrap();
    for suffix in ["_jump.fits", "_fitopt.fits", "_rateints.fits", "_rate.fits"] {
        assert!(groups.contains(suffix), "{suffix} not read: {groups}");
    }
}

#[test]
fn a_step_result_saved_by_jwst_is_found_by_its_state() {
    let set = jwst_set();
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "readnoise"])
        .args(strs(&set.darks))
        .args([
            "--pp",
            "readnoise",
            "ssbsteps",
            "dq_init, saturation, superbias, refpix, linearity",
        ])
        .args(search(&set.products)));
    assert!(out.ok(), "{out:?}");
    let groups = std::fs::read_to_string(dir.path().join("out/run000/run000.inputim.txt")).unwrap();
    assert_eq!(groups.matches("_linearity.fits").count(), 3, "{groups}");
}

/// A directory as a jwst run leaves it: the uncal files and their products side by side.
fn pipeline_directory(set: &JwstSet, dir: &Path) -> PathBuf {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in set.darks.iter().chain(&set.flats) {
        std::fs::copy(f, data.join(f.file_name().unwrap())).unwrap();
    }
    for e in std::fs::read_dir(&set.products).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, data.join(p.file_name().unwrap())).unwrap();
    }
    data
}

#[test]
fn a_directory_of_uncal_files_and_their_products_counts_each_exposure_once() {
    let set = jwst_set();
    let dir = tempfile::tempdir().unwrap();
    let data = pipeline_directory(&set, dir.path());
    // superbias reads the raw darks; the products beside them are the same exposures.
    let out = run(mkrefs(dir.path()).args(["--outrootdir", "out", "superbias", "data"]));
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr.contains("are products of exposures also given"),
        "{out:?}"
    );
    let images = std::fs::read_to_string(dir.path().join("out/run000/run000.im.txt")).unwrap();
    assert_eq!(
        images.lines().count(),
        1 + 5,
        "one row per exposure: {images}"
    );
    // dark finds the jump products among the files given, with no search directory.
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out2", "dark"])
        .arg(&data));
    assert!(out.ok(), "{out:?}");
    assert!(!out.stdout.contains("calibrate"), "{out:?}");
}

#[test]
fn products_at_another_state_are_named_with_the_ssbsteps_that_would_use_them() {
    let set = jwst_set();
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "dark"])
        .args(strs(&set.darks))
        .args([
            "--pp",
            "dark",
            "ssbsteps",
            "dq_init, saturation, superbias, refpix, linearity, dark_current, jump",
        ])
        .args(search(&set.products)));
    assert!(!out.ok(), "{out:?}");
    let jump = set.products.join(
        set.darks[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("_uncal.fits", "_jump.fits"),
    );
    assert!(
        out.stderr.contains(&format!(
            "{} has dq_init, saturation, superbias, refpix, linearity, jump: it lacks \
             dark_current, and has none besides; to use it, set ssbsteps: dq_init, saturation, \
             superbias, refpix, linearity, jump",
            jump.display()
        )),
        "{out:?}"
    );
}
