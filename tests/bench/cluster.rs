//! The cluster campaign of the benchmark: 4 detectors x 10 darks at 512x512, from uncal files
//! with the simulator's step reference files, readnoise per dark (combined in the final stage),
//! superbias and dark per detector: 40 calibrations, 40 readnoise, 4 superbias, 4 dark and 12
//! combine jobs. Run on the local executor or on Slurm, to see what Slurm adds per job.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::measure::{measured, median};

const DETECTORS: &[&str] = &["NRCA1", "NRCA2", "NRCA3", "NRCA4"];
const DARKS: usize = 10;
const SIZE: usize = 512;

/// Simulates the data set once into `<data>/cluster4x10`; returns the uncal files and the
/// step reference file arguments (a glob per reftype: each detector finds its own).
fn data_set(mkrefs: &Path, data: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let root = data.join("cluster4x10");
    let mut uncal = Vec::new();
    for (k, det) in DETECTORS.iter().enumerate() {
        let dir = root.join(det);
        if !dir.join("manifest.json").is_file() {
            let status = Command::new(mkrefs)
                .args(["-q", "simulate", "--out"])
                .arg(&dir)
                .args(["--darks", &DARKS.to_string(), "--size", &SIZE.to_string()])
                .args(["--detector", det, "--seed", &(11 + k).to_string()])
                .arg("--step-references")
                .status()
                .expect("mkrefs simulate runs");
            assert!(status.success(), "simulating {det} failed");
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().ends_with("_uncal.fits"))
            .collect();
        files.sort();
        uncal.extend(files);
    }
    let refs = [
        "mask",
        "saturation",
        "linearity",
        "superbias",
        "readnoise",
        "gain",
    ]
    .iter()
    .flat_map(|r| {
        [
            "--pp".to_string(),
            "reffile4ssb".to_string(),
            r.to_string(),
            root.join(format!("*/sim_{r}_*.fits")).display().to_string(),
        ]
    })
    .collect();
    (uncal, refs)
}

/// Runs the campaign `runs` times on `executor` and prints its line.
pub(crate) fn campaign(mkrefs: &Path, data: &Path, runs: usize, executor: &str) {
    if executor == "slurm" && std::env::var_os("SLURM_CONF").is_none() {
        eprintln!(
            "skipping cluster-slurm: no SLURM_CONF (eval \"$(tests/slurm/cluster.sh start)\")"
        );
        return;
    }
    let (uncal, refs) = data_set(mkrefs, data);
    let mut walls = Vec::new();
    let mut jobs = 0usize;
    for _ in 0..runs {
        let out = tempfile::tempdir().expect("temp dir");
        let mut cmd: Vec<String> = vec![
            mkrefs.display().to_string(),
            "-q".into(),
            "run".into(),
            "readnoise,superbias,dark".into(),
        ];
        cmd.extend(uncal.iter().map(|p| p.display().to_string()));
        cmd.extend(refs.iter().cloned());
        cmd.extend(
            [
                "--pp",
                "readnoise",
                "imtypes",
                "D",
                "--executor",
                executor,
                "--outrootdir",
            ]
            .map(str::to_string),
        );
        cmd.push(out.path().display().to_string());
        let (wall, _) = measured(&cmd);
        walls.push(wall);
        let summary = std::fs::read_to_string(out.path().join("run000/run000.summary.txt"))
            .unwrap_or_default();
        jobs = summary
            .lines()
            .last()
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        if !summary.contains(&format!("{jobs} ok")) {
            eprintln!("cluster-{executor}: not every job succeeded:\n{summary}");
        }
    }
    walls.sort_by(f64::total_cmp);
    println!(
        "{:18} {:>5} {:>9.2} {:>9.2} {:>9.2}   {jobs} jobs, {:.2} s per job",
        format!("cluster-{executor}"),
        DETECTORS.len() * DARKS,
        median(&walls),
        walls[0],
        walls[walls.len() - 1],
        median(&walls) / jobs.max(1) as f64
    );
}
