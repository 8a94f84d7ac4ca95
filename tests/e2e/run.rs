//! Real runs of the readnoise and superbias generators through the `mkrefs` binary on
//! simulated exposures, checked by stdatamodels and against the simulator's truth.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{all_files, assert_valid, fits_outputs, mkrefs, run, small_dataset};
use mkrefs_support::fits::ImageReader;
use mkrefs_support::stats::nanmedian;

fn strs(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

fn image(path: &Path, hdu: &str) -> Vec<f32> {
    ImageReader::open(path, hdu)
        .unwrap()
        .read_plane::<f32>(0)
        .unwrap()
}

fn one(outputs: &[PathBuf], reflabel: &str) -> PathBuf {
    let found: Vec<&PathBuf> = outputs
        .iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&format!("{reflabel}."))
        })
        .collect();
    assert_eq!(found.len(), 1, "{outputs:?}");
    found[0].clone()
}

#[test]
fn readnoise_and_superbias_from_raw_darks() {
    let dir = tempfile::tempdir().unwrap();
    let (darks, _) = small_dataset(&dir.path().join("data"), 5, 0, 64, 6, 11);
    let out_root = dir.path().join("out");
    let base = || {
        let mut c = mkrefs(dir.path());
        c.arg("readnoise,superbias")
            .args(strs(&darks))
            .arg("--outrootdir")
            .arg(&out_root)
            .args(["--outsubdir", "test1"]);
        c
    };

    // A dry run shows the plan and writes nothing.
    let dry = run(base().arg("--dry-run"));
    assert!(dry.ok(), "{dry:?}");
    assert!(dry.stdout.contains("cmd0_readnoise"), "{dry:?}");
    assert!(dry.stdout.contains("cmd1_superbias"), "{dry:?}");
    assert!(all_files(&out_root).is_empty(), "a dry run writes nothing");

    let first = run(&mut base());
    assert!(first.ok(), "{first:?}");
    let outputs = fits_outputs(&out_root);
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let rn = one(&outputs, "readnoise");
    let sb = one(&outputs, "superbias");
    assert_eq!(
        rn,
        out_root.join("test1/run000/readnoise/readnoise.test1_run000.cmd0_readnoise.fits")
    );
    let results = assert_valid(&outputs);
    assert!(
        results.iter().any(|r| r["model"] == "ReadnoiseModel"),
        "{results:?}"
    );
    assert!(
        results.iter().any(|r| r["model"] == "SuperBiasModel"),
        "{results:?}"
    );

    // The run directory holds the tables, job files, logs and the summary.
    let run_dir = out_root.join("test1/run000");
    for name in [
        "test1_run000.im.txt",
        "test1_run000.inputim.txt",
        "test1_run000.summary.txt",
        "readnoise/readnoise.test1_run000.cmd0_readnoise.job.json",
        "readnoise/readnoise.test1_run000.cmd0_readnoise.log",
        "superbias/superbias.test1_run000.cmd1_superbias.report.json",
    ] {
        assert!(run_dir.join(name).is_file(), "{name} missing");
    }
    assert!(
        !all_files(&out_root)
            .iter()
            .any(|p| p.to_string_lossy().contains(".part")),
        "no temporary file survives"
    );

    // The maps match what the simulator put in.
    let truth = dir.path().join("data/truth.fits");
    let made = image(&rn, "SCI");
    let want = image(&truth, "READNOISE");
    let ratios: Vec<f32> = made.iter().zip(&want).map(|(a, b)| a / b).collect();
    let ratio = nanmedian(&ratios).unwrap();
    // 5 files x 2 ints x 3 CDS pairs = N = 30 samples per pixel. The default estimator is
    // unbiased for normal noise (its median lies about 1/(12N) = 0.3 % below its mean), and the
    // median over 4096 pixels scatters by about 0.3 %; upstream's was about 0.970.
    assert!(
        (ratio - 1.0).abs() < 0.01,
        "readnoise / truth median ratio {ratio}"
    );
    let made = image(&sb, "SCI");
    let bias = image(&truth, "BIAS");
    let diffs: Vec<f32> = made.iter().zip(&bias).map(|(a, b)| a - b).collect();
    let diff = nanmedian(&diffs).unwrap();
    assert!(diff.abs() < 1.0, "superbias - truth median {diff} DN");

    // Running again skips the finished jobs; --force redoes them.
    let again = run(&mut base());
    assert!(again.ok(), "{again:?}");
    assert!(again.stdout.contains("4 skipped"), "{again:?}");
    let forced = run(base().arg("--force"));
    assert!(forced.ok(), "{forced:?}");
    assert!(forced.stdout.contains("4 ok"), "{forced:?}");

    // A changed parameter changes the job file, so that job runs again.
    let changed = run(base().args(["--readnoise.clipping_sigma", "4.0"]));
    assert!(changed.ok(), "{changed:?}");
    // The readnoise and its final copy; the superbias and its copy are up to date.
    assert!(changed.stdout.contains("2 ok, 2 skipped"), "{changed:?}");

    // -n starts a new run next to the first.
    let new_run = run(base().arg("-n"));
    assert!(new_run.ok(), "{new_run:?}");
    assert!(out_root.join("test1/run001").is_dir());

    // The same run directory is not reused for other inputs.
    let other = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&darks[..3]))
        .arg("--outrootdir")
        .arg(&out_root)
        .args(["--outsubdir", "test1"]));
    assert!(!other.ok(), "{other:?}");
    assert!(other.stderr.contains("other input files"), "{other:?}");
}

#[test]
fn reftype_aliases_and_upstream_style_options_work() {
    let dir = tempfile::tempdir().unwrap();
    let (darks, _) = small_dataset(&dir.path().join("data"), 3, 0, 64, 4, 5);
    // A directory of exposures as input (the data directory also holds truth.fits).
    let only = dir.path().join("exposures");
    std::fs::create_dir_all(&only).unwrap();
    let darks: Vec<PathBuf> = darks
        .iter()
        .map(|d| {
            let to = only.join(d.file_name().unwrap());
            std::fs::copy(d, &to).unwrap();
            to
        })
        .collect();
    // `superbias` through default_reflabels' reftype, upstream's option spellings.
    let out = run(mkrefs(dir.path())
        .arg("SUPERBIAS")
        .arg(&only)
        .args(["--outrootdir", "out", "--runID", "7", "--runIDNdigits", "2"])
        .args(["--superbias.bad_sigma_threshold", "6"]));
    assert!(out.ok(), "{out:?}");
    let outputs = fits_outputs(&dir.path().join("out"));
    assert_eq!(
        outputs,
        vec![
            dir.path()
                .join("out/run07/superbias/superbias.run07.cmd0_superbias.fits")
        ]
    );
    assert_valid(&outputs);
    let job = std::fs::read_to_string(
        dir.path()
            .join("out/run07/superbias/superbias.run07.cmd0_superbias.job.json"),
    )
    .unwrap();
    assert!(job.contains("\"bad_sigma_threshold\""), "{job}");
    assert!(job.contains("6.0"), "{job}");
    for d in &darks {
        assert!(job.contains(&d.display().to_string()), "{job}");
    }
}

#[test]
fn calibrated_products_are_found_in_the_search_directories() {
    use mkrefs_sim::{ProductSet, SimConfig, write_dataset};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = SimConfig::default()
        .with_square_subarray(64)
        .with_ramp(2, 4)
        .with_seed(9);
    let products = ProductSet {
        jump: true,
        ..ProductSet::NONE
    };
    write_dataset(&data, &cfg, 3, 0, products).unwrap();
    let jump = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with("_jump.fits"))
        .expect("a jump product");
    let steps = mkrefs_support::fits::read_primary_header(&jump).unwrap();
    let done: Vec<&str> = [
        ("S_DQINIT", "dq_init"),
        ("S_SATURA", "saturation"),
        ("S_SUPERB", "superbias"),
        ("S_REFPIX", "refpix"),
        ("S_LINEAR", "linearity"),
        ("S_JUMP", "jump"),
    ]
    .into_iter()
    .filter(|(k, _)| steps.get_str(k) == Some("COMPLETE"))
    .map(|(_, s)| s)
    .collect();
    let uncal: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with("_uncal.fits"))
        .map(|p| p.display().to_string())
        .collect();
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(&uncal)
        .args(["--outrootdir", "out"])
        .args(["--pp", "readnoise", "ssbsteps", &done.join(", ")])
        .args(["--pp", "output", "pipeline_prod_search_dir"])
        .arg(&data));
    assert!(out.ok(), "{out:?}");
    let job = std::fs::read_to_string(
        dir.path()
            .join("out/run000/readnoise/readnoise.run000.cmd0_readnoise.job.json"),
    )
    .unwrap();
    assert!(
        job.contains("_jump.fits"),
        "the job reads the products: {job}"
    );
    assert_valid(&fits_outputs(&dir.path().join("out")));
}
