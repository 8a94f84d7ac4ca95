//! The dark and bpm generators through the `mkrefs` binary: inputs at a calibrated state found
//! as products (jump, rate, rateints, fitopt) in `output.pipeline_prod_search_dir`, outputs
//! checked by stdatamodels.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{assert_valid, fits_outputs, mkrefs, run};
use mkrefs_sim::{Kind, ProductSet, SimConfig, write_dataset};

/// Darks and flats of a small NIRCam subarray with every calibrated product; the uncal files.
fn dataset(dir: &Path, darks: usize, flats: usize) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = SimConfig::default()
        .with_square_subarray(64)
        .with_ramp(2, 10)
        .with_seed(21);
    let manifest = write_dataset(dir, &cfg, darks, flats, ProductSet::ALL).unwrap();
    [Kind::Dark, Kind::Flat]
        .into_iter()
        .flat_map(|k| {
            manifest
                .of_kind(k)
                .map(|e| e.files[0].file.clone())
                .collect::<Vec<_>>()
        })
        .map(|f| dir.join(f).display().to_string())
        .collect()
}

#[test]
fn dark_and_bpm_from_calibrated_products() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let uncal = dataset(&data, 5, 4);
    let out = run(mkrefs(dir.path())
        .arg("dark,bpm")
        .args(&uncal)
        .args([
            "--outrootdir",
            "out",
            "--pp",
            "output",
            "pipeline_prod_search_dir",
        ])
        .arg(&data));
    assert!(out.ok(), "{out:?}");
    let outputs = fits_outputs(&dir.path().join("out"));
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let results = assert_valid(&outputs);
    let models: Vec<&str> = results
        .iter()
        .map(|r| r["model"].as_str().unwrap())
        .collect();
    assert!(models.contains(&"DarkModel"), "{results:?}");
    assert!(models.contains(&"MaskModel"), "{results:?}");
    // The bpm job read the intermediate products the host found.
    let job: PathBuf = dir
        .path()
        .join("out/run000/bpm/bpm.run000.cmd1_mask.job.json");
    let text = std::fs::read_to_string(&job).unwrap();
    for product in ["\"fitopt\"", "\"jump\"", "\"rateints\"", "_fitopt.fits"] {
        assert!(text.contains(product), "{product} missing from {text}");
    }
}
