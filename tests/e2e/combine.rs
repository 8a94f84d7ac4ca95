//! The final stage through the `mkrefs` binary (README, "The final combination"): the reference
//! files of a reflabel and detector combined into `final/`, checked against astropy's
//! sigma clipping and by stdatamodels; a single file copied; `combine: false` honoured.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, assert_valid, mkrefs, python_eval, run};

fn final_dir(root: &Path) -> PathBuf {
    root.join("run000/final")
}

/// readnoise and superbias one file per dark (imtypes D), dark one file from all of them.
fn three_reflabels(
    dir: &Path,
    data: &CalibrationData,
    root: &str,
    extra: &[&str],
) -> mkrefs_e2e::Ran {
    let refs = data.ref_args();
    run(mkrefs(dir)
        .arg("readnoise,superbias,dark")
        .args(data.uncal())
        .args(refs)
        .args(["--pp", "readnoise", "imtypes", "D"])
        .args(["--pp", "superbias", "imtypes", "D"])
        .args(["--pp", "superbias", "integrations", "all"])
        .args(["--outrootdir", root])
        .args(extra))
}

/// Compares final/superbias with astropy's sigma-clipped mean of the inputs (median centre,
/// std, 3 sigma, 5 iterations), their ERR propagated and their DQ flags kept by majority.
const CHECK: &str = r#"
import json, sys
import numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip
final, inputs = sys.argv[1], sys.argv[2:]
sci = np.array([fits.getdata(p, 'SCI').astype(np.float64) for p in inputs])
err = np.array([fits.getdata(p, 'ERR').astype(np.float64) for p in inputs])
dq = np.array([fits.getdata(p, 'DQ').astype(np.uint32) for p in inputs])
clipped = sigma_clip(sci, sigma=3, maxiters=5, cenfunc='median', stdfunc='std', axis=0)
mean = clipped.mean(axis=0).filled(np.nan)
n = (~clipped.mask).sum(axis=0)
e = np.sqrt(np.where(clipped.mask, 0, err**2).sum(axis=0)) / n
bits = [(dq >> b) & 1 for b in range(32)]
want_dq = sum(((b.sum(axis=0) >= 2).astype(np.uint32) << k) for k, b in enumerate(bits))
with fits.open(final, checksum=True) as h:
    got_sci, got_err = h['SCI'].data.astype(np.float64), h['ERR'].data.astype(np.float64)
    got_dq = h['DQ'].data.astype(np.uint32)
    history = [str(c) for c in h[0].header.get('HISTORY', [])]
    useafter = h[0].header['USEAFTER']
print(json.dumps({
    "sci": float(np.nanmax(np.abs(got_sci - mean) / np.abs(mean))),
    "err": float(np.nanmax(np.abs(got_err - e) / e)),
    "dq_equal": bool((got_dq == want_dq).all()),
    "dq_flagged": int((want_dq != 0).sum()),
    "inputs_in_history": sum(any(p.split('/')[-1] in line for line in history) for p in inputs),
    "useafter": useafter,
    "input_useafters": [fits.getheader(p)['USEAFTER'] for p in inputs],
}))
"#;

#[test]
fn each_reflabel_ends_in_one_final_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = CalibrationData::write(&d.join("data"), (3, 0), 64, 6, 51);
    let out = three_reflabels(d, &data, "out", &[]);
    assert!(out.ok(), "{out:?}");
    assert!(out.stdout.contains("fin1"), "{}", out.stdout);
    let fin = final_dir(&d.join("out"));
    let mut names: Vec<String> = std::fs::read_dir(&fin)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "dark_nrca1.fits",
            "readnoise_nrca1.fits",
            "superbias_nrca1.fits"
        ]
    );
    let finals: Vec<PathBuf> = names.iter().map(|n| fin.join(n)).collect();
    assert_valid(&finals);

    // The superbias is the clipped mean of the three, as astropy computes it.
    let inputs: Vec<PathBuf> = (1..=3)
        .map(|k| {
            let reflabel_dir = d.join("out/run000/superbias");
            std::fs::read_dir(&reflabel_dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "fits"))
                .nth(k - 1)
                .unwrap()
        })
        .collect();
    let mut args = vec![fin.join("superbias_nrca1.fits")];
    args.extend(inputs.iter().cloned());
    let code = format!(
        "import sys; sys.argv = sys.argv[:1] + {:?}\n{CHECK}",
        args.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
    );
    let text = python_eval(&code, &args[0]);
    let r: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert!(r["sci"].as_f64().unwrap() < 1e-6, "{r}");
    assert!(r["err"].as_f64().unwrap() < 1e-5, "{r}");
    assert_eq!(r["dq_equal"], true, "{r}");
    assert_eq!(r["inputs_in_history"], 3, "{r}");
    let earliest = r["input_useafters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .min()
        .unwrap();
    assert_eq!(r["useafter"], earliest, "{r}");

    // One dark file for all darks: copied as it is.
    let dark_dir = d.join("out/run000/dark");
    let dark = std::fs::read_dir(&dark_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "fits"))
        .unwrap();
    assert_eq!(
        std::fs::read(&dark).unwrap(),
        std::fs::read(fin.join("dark_nrca1.fits")).unwrap()
    );

    // A rerun finds the final files up to date.
    let again = three_reflabels(d, &data, "out", &[]);
    assert!(again.ok(), "{again:?}");
    assert!(
        again.stdout.contains("13 job(s): 0 ok, 13 skipped"),
        "{}",
        again.stdout
    );

    // combine: false leaves final/ out.
    let off = three_reflabels(d, &data, "off", &["--pp", "combine", "enabled", "false"]);
    assert!(off.ok(), "{off:?}");
    assert!(!final_dir(&d.join("off")).exists());
}
