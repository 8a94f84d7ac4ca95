//! Run-internal products through the `mkrefs` binary (README, "Run-internal products"): a run
//! writes the calibrated products its generators read with only the extensions they name, in
//! `<ssbdir>/mkrefs-internal`, proves them by their hash before reusing them, writes them whole
//! with `--keep-products`, and `mkrefs clean` removes them.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, all_files, fits_outputs, mkrefs, run};
use mkrefs_support::fits::{ImageReader, hdu_names, read_header};

/// `mkrefs run dark,bpm` on the data set into `outroot` with the shared ssbdir `ssb`.
fn dark_bpm(dir: &Path, data: &CalibrationData, outroot: &str, extra: &[&str]) -> mkrefs_e2e::Ran {
    run(mkrefs(dir)
        .arg("dark,bpm")
        .args(data.uncal())
        .args(["--outrootdir", outroot, "--ssbdir", "ssb"])
        .args(extra)
        .args(data.ref_args()))
}

fn fits_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().is_some_and(|x| x == "fits"));
    v.sort();
    v
}

fn extensions(p: &Path) -> Vec<String> {
    hdu_names(p).unwrap()[1..].to_vec()
}

fn pixels(p: &Path, hdu: &str) -> Vec<f64> {
    let mut r = ImageReader::open(p, hdu).unwrap();
    (0..r.n_planes())
        .flat_map(|k| r.read_plane::<f64>(k).unwrap())
        .collect()
}

/// The reference file of `reflabel` below `root`.
fn reference(root: &Path, reflabel: &str) -> PathBuf {
    fits_outputs(root)
        .into_iter()
        .find(|p| p.to_string_lossy().contains(&format!("/{reflabel}/")))
        .unwrap()
}

#[test]
fn a_run_writes_what_its_generators_read_and_keeps_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = CalibrationData::write(&d.join("data"), (3, 2), 64, 10, 41);
    let first = dark_bpm(d, &data, "a", &[]);
    assert!(first.ok(), "{first:?}");
    let internal = d.join("ssb/mkrefs-internal");
    // Nothing whole in ssbdir; per dark: the jump product (what dark and bpm read of it), the
    // rate, rateints and fitopt with the bpm's extensions; per flat only its rate's SCI.
    assert!(fits_in(&d.join("ssb")).is_empty());
    let products = fits_in(&internal);
    let ends = |p: &PathBuf, e: &str| p.to_string_lossy().ends_with(e);
    let of = |e: &str| products.iter().filter(|p| ends(p, e)).collect::<Vec<_>>();
    assert_eq!(products.len(), 3 * 4 + 2, "{products:?}");
    for p in of("_jump.fits") {
        assert_eq!(extensions(p), ["SCI", "GROUPDQ"], "{}", p.display());
    }
    for p in of("_fitopt.fits") {
        assert_eq!(extensions(p), ["PEDESTAL"]);
    }
    for p in of("_1_ramp_fit.fits") {
        assert_eq!(extensions(p), ["SCI", "ERR", "VAR_POISSON"]);
    }
    assert_eq!(of("_0_ramp_fit.fits").len(), 5);
    for p in of("_0_ramp_fit.fits") {
        assert_eq!(extensions(p), ["SCI"]);
    }

    // A rerun proves every product by its hash and makes nothing again.
    let again = dark_bpm(d, &data, "a", &[]);
    assert!(again.ok(), "{again:?}");
    assert_eq!(again.stderr.matches("made again").count(), 0, "{again:?}");
    assert!(again.stdout.contains("0 failed"), "{}", again.stdout);

    // Torn by a crash: the same size and time, other bytes. It is made again.
    let victim = of("_fitopt.fits")[0].clone();
    let meta = std::fs::metadata(&victim).unwrap();
    let mut bytes = std::fs::read(&victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&victim, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&victim).unwrap();
    f.set_modified(meta.modified().unwrap()).unwrap();
    drop(f);
    let torn = dark_bpm(d, &data, "a", &[]);
    assert!(torn.ok(), "{torn:?}");
    assert!(
        torn.stderr.contains(&format!(
            "made again: {} no longer has the content it was written with",
            victim.display()
        )),
        "{torn:?}"
    );

    // --keep-products writes them whole in ssbdir, as jwst would; the reference files are the
    // same as from the run-internal products.
    let kept = dark_bpm(d, &data, "b", &["--keep-products"]);
    assert!(kept.ok(), "{kept:?}");
    // (Products nobody reads are not made: the flats still have only their rate.)
    let whole = fits_in(&d.join("ssb"));
    assert_eq!(whole.len(), 3 * 4 + 2, "{whole:?}");
    let jump = whole.iter().find(|p| ends(p, "_jump.fits")).unwrap();
    assert_eq!(extensions(jump), ["SCI", "PIXELDQ", "GROUPDQ", "ASDF"]);
    // The run-internal GROUPDQ is tile-compressed, the whole one plain, with the same flags.
    let internal_jump = internal.join(jump.file_name().unwrap());
    let zcmptype = |p: &Path| {
        read_header(p, "GROUPDQ")
            .unwrap()
            .get_str("ZCMPTYPE")
            .map(str::to_string)
    };
    assert_eq!(zcmptype(&internal_jump).as_deref(), Some("RICE_1"));
    assert_eq!(zcmptype(jump), None);
    assert_eq!(pixels(&internal_jump, "GROUPDQ"), pixels(jump, "GROUPDQ"));
    assert!(pixels(jump, "GROUPDQ").iter().any(|&f| f != 0.0));
    let fitopt = whole.iter().find(|p| ends(p, "_fitopt.fits")).unwrap();
    assert!(extensions(fitopt).len() == 9, "{:?}", extensions(fitopt));
    for (reflabel, hdu) in [("dark", "SCI"), ("bpm", "DQ")] {
        assert_eq!(
            pixels(&reference(&d.join("a"), reflabel), hdu),
            pixels(&reference(&d.join("b"), reflabel), hdu),
            "{reflabel}"
        );
    }
    // Whole products serve a run that would make them run-internal: nothing is made.
    let reuse = dark_bpm(d, &data, "c", &[]);
    assert!(reuse.ok(), "{reuse:?}");
    assert_eq!(reuse.stderr.matches("calibrate NRCA1: skipped").count(), 5);
    assert!(
        !reuse.stderr.contains("calibrate NRCA1: ok"),
        "{}",
        reuse.stderr
    );

    // A configuration naming the products bare (as upstream's do) gets them whole, and is told
    // what the generator reads.
    let bare = dark_bpm(
        d,
        &data,
        "d",
        &[
            "--pp",
            "bpm",
            "ssb_save_steps",
            "jump, fitopt, rateints",
            "--dry-run",
        ],
    );
    assert!(bare.ok(), "{bare:?}");
    assert!(
        bare.stderr
            .contains("'fitopt' (it reads D:fitopt[PEDESTAL])")
            && bare.stderr.contains("asked for whole"),
        "{}",
        bare.stderr
    );

    // clean removes the run-internal products (and their records), nothing else.
    let before: Vec<PathBuf> = all_files(d)
        .into_iter()
        .filter(|p| !p.starts_with(&internal))
        .collect();
    let cleaned = run(mkrefs(d).args(["clean", "--outrootdir", "a", "--ssbdir", "ssb"]));
    assert!(cleaned.ok(), "{cleaned:?}");
    assert!(
        cleaned
            .stdout
            .contains("removed 14 run-internal product(s)"),
        "{}",
        cleaned.stdout
    );
    assert!(fits_in(&internal).is_empty());
    let records = all_files(&internal)
        .into_iter()
        .filter(|p| p.to_string_lossy().ends_with(".json"))
        .count();
    assert_eq!(records, 0);
    let after: Vec<PathBuf> = all_files(d)
        .into_iter()
        .filter(|p| !p.starts_with(&internal))
        .collect();
    assert_eq!(before, after);
}

/// The calibrations a run did not skip, from its summary table (`cal<N> ... ok`).
fn calibrated(out: &mkrefs_e2e::Ran) -> usize {
    out.stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("cal") && l.contains(" ok "))
        .count()
}

#[test]
fn separate_dark_and_bpm_runs_share_the_jump_products() {
    // The dark reads the darks at the jump state; the bpm reads them ramp-fitted and saves the
    // same jump product on the way. Each run must take the other's jump product as its own
    // (same steps, same references up to jump), not calibrate the darks again every time.
    let dir = tempfile::tempdir().unwrap();
    let data = CalibrationData::write(&dir.path().join("data"), (3, 1), 32, 5, 61);
    let one = |reflabel: &str| {
        let out = run(mkrefs(dir.path())
            .arg(reflabel)
            .args(data.uncal())
            .args(["--outrootdir", "out", "--ssbdir", "ssb"])
            .args(data.ref_args()));
        assert!(out.ok(), "{out:?}");
        out
    };
    assert_eq!(calibrated(&one("dark")), 3);
    let bpm = one("bpm");
    assert_eq!(
        calibrated(&bpm),
        4,
        "the darks to the ramp fit, and the flat: {bpm:?}"
    );
    let dark = one("dark");
    assert_eq!(
        calibrated(&dark),
        0,
        "the bpm's jump products serve the dark: {dark:?}"
    );
    let bpm = one("bpm");
    assert_eq!(calibrated(&bpm), 0, "{bpm:?}");
}
