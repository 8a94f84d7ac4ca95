//! The run's manifest (README, "The products manifest") through the `mkrefs` binary: every
//! product made, with a sha256 that is the file's, what made it and from what; rewritten by a
//! rerun in which every job is up to date.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, mkrefs, run};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn sha256(path: &Path) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest(run_dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap()).unwrap()
}

fn dark_bpm(dir: &Path, data: &CalibrationData) -> mkrefs_e2e::Ran {
    let refs = data.ref_args();
    run(mkrefs(dir)
        .arg("dark,bpm")
        .args(data.uncal())
        .args(["--outrootdir", "out", "--ssbdir", "ssb"])
        .args(refs))
}

#[test]
fn the_manifest_lists_every_product_with_its_hash_and_what_made_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = CalibrationData::write(&d.join("data"), (3, 2), 64, 10, 43);
    let first = dark_bpm(d, &data);
    assert!(first.ok(), "{first:?}");
    let m = manifest(&d.join("out/run000"));
    assert_eq!(m["format"], 1);
    assert_eq!(m["executor"], "local");
    assert_eq!(m["complete"], true);
    let products = m["products"].as_array().unwrap();
    let of_kind = |k: &str| -> Vec<&Value> { products.iter().filter(|p| p["kind"] == k).collect() };
    // The two reference files, and per dark its jump, rate, rateints and fitopt, per flat
    // its rate (run-internal, with the extensions the generators read).
    let refs = of_kind("reference");
    let mut reftypes: Vec<&str> = refs
        .iter()
        .map(|p| p["reftype"].as_str().unwrap())
        .collect();
    reftypes.sort();
    assert_eq!(reftypes, ["DARK", "MASK"]);
    assert_eq!(of_kind("calibrated").len(), 3 * 4 + 2, "{products:?}");
    for p in products {
        let path = PathBuf::from(p["path"].as_str().unwrap());
        assert_eq!(
            p["sha256"].as_str().unwrap(),
            sha256(&path),
            "{}",
            path.display()
        );
        assert_eq!(p["size"], std::fs::metadata(&path).unwrap().len());
        assert_eq!(p["made_now"], true);
        assert_eq!(p["detector"], "NRCA1");
        assert!(!p["made_from"].as_array().unwrap().is_empty(), "{p}");
    }
    // A reference file: its generator, parameters and the products it read, by their role.
    let mask = refs.iter().find(|p| p["reftype"] == "MASK").unwrap();
    assert!(
        mask["program"].as_str().unwrap().starts_with("bpm "),
        "{mask}"
    );
    assert_eq!(mask["parameters"]["dark_hot_sigma_threshold"], 5.0);
    let roles: Vec<&str> = mask["made_from"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["role"].as_str().unwrap())
        .collect();
    assert!(
        roles.contains(&"fitopt of D1") && roles.contains(&"flat F1"),
        "{roles:?}"
    );
    // A calibrated product: its state, extensions and the step reference files it used.
    let jump = of_kind("calibrated")
        .into_iter()
        .find(|p| p["calibrated"]["product"] == "jump")
        .unwrap();
    assert_eq!(
        jump["calibrated"]["extensions"],
        serde_json::json!(["GROUPDQ", "SCI"])
    );
    assert!(
        jump["made_from"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["role"] == "saturation SATURATION"),
        "{jump}"
    );

    // A rerun finds everything up to date and writes the manifest again, same hashes.
    let again = dark_bpm(d, &data);
    assert!(again.ok(), "{again:?}");
    let m2 = manifest(&d.join("out/run000"));
    let products2 = m2["products"].as_array().unwrap();
    assert_eq!(products2.len(), products.len());
    for (a, b) in products.iter().zip(products2) {
        assert_eq!((&a["path"], &a["sha256"]), (&b["path"], &b["sha256"]));
        assert_eq!(b["made_now"], false);
    }
}
