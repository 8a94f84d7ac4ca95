//! `mkrefs demo`: simulates a small NIRCam data set of uncal darks and flats and makes all four
//! bundled reference files from them with the default configuration, then compares them with
//! the simulator's truth. What the README's first command runs.
//!
//! Only raw files are simulated. Readnoise and superbias read them as they are; dark and bpm
//! need them calibrated, which the run does with the native engine, and the readnoise it makes
//! feeds those calibrations (`reffile4ssb: SELF`), so the jobs run in the order readnoise, then
//! calibration, then dark and bpm. The steps' other reference files (mask, saturation,
//! linearity, gain, superbias) come from the simulator, as a user's would come from CRDS. The
//! superbias made in the run is compared with the truth but does not calibrate the darks: one
//! made from the same darks takes in the low-pedestal pixels' offsets, and the bpm could not
//! find them (README, 'Bad pixels and a SELF superbias').

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use mkrefs_sim::{
    DefectClass, Kind, ProductSet, StepReference, Truth, write_dataset, write_step_references,
};
use mkrefs_support::fits::ImageReader;
use mkrefs_support::stats::nanmedian;

use crate::cli::{DemoArgs, GlobalOptions, RunArgs};
use crate::commands::{run, simulate::sim_config};
use crate::registry::Registry;

/// Groups per integration: a subarray reads out faster than the full frame, so it takes about
/// 40 groups for a ramp long enough to show the faintest simulated hot pixels.
const DEMO_GROUPS: usize = 40;

fn read_image(path: &Path, hdu: &str) -> Result<Vec<f32>, String> {
    let mut r = ImageReader::open(path, hdu).map_err(|e| e.to_string())?;
    r.read_plane::<f32>(0).map_err(|e| e.to_string())
}

fn median_ratio(a: &[f32], b: &[f32]) -> Option<f32> {
    let r: Vec<f32> = a
        .iter()
        .zip(b)
        .filter(|(x, y)| x.is_finite() && y.is_finite() && **y != 0.0)
        .map(|(x, y)| x / y)
        .collect();
    nanmedian(&r)
}

fn median_difference(a: &[f32], b: &[f32]) -> Option<f32> {
    let d: Vec<f32> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    nanmedian(&d)
}

pub fn run(
    registry: &Registry,
    global: &GlobalOptions,
    args: &DemoArgs,
) -> Result<ExitCode, String> {
    let data = args.dir.join("data");
    let sim = simulate(args, &data)?;
    let mut items = vec!["readnoise,superbias,dark,bpm".to_string()];
    items.extend(sim.uncal.iter().map(|p| p.display().to_string()));
    // The steps' reference files: the simulator's, and this run's readnoise.
    let mut global = global.clone();
    for (reftype, path) in &sim.references {
        global.pp.extend([
            "reffile4ssb".to_string(),
            reftype.to_ascii_lowercase(),
            path.display().to_string(),
        ]);
    }
    global.pp.extend([
        "reffile4ssb".to_string(),
        "readnoise".to_string(),
        "SELF".to_string(),
    ]);
    let out = args.dir.join("out");
    let run_args = RunArgs {
        items,
        outrootdir: Some(out.clone()),
        jobs: args.jobs,
        ..RunArgs::default()
    };
    let code = run::run(registry, &global, &run_args, &[])?;
    if code == ExitCode::SUCCESS {
        compare_with_truth(&out, &sim.truth)?;
    }
    Ok(code)
}

/// What the demo simulated.
struct Simulated {
    uncal: Vec<PathBuf>,
    /// The steps' reference files the simulator wrote, by reftype.
    references: Vec<(String, PathBuf)>,
    truth: PathBuf,
}

/// Writes the uncal darks and flats, the truth and the steps' reference files into `data`.
fn simulate(args: &DemoArgs, data: &Path) -> Result<Simulated, String> {
    std::fs::create_dir_all(data).map_err(|e| format!("cannot create {}: {e}", data.display()))?;
    let cfg = sim_config("NRCA1", Some(args.size), 2, DEMO_GROUPS, 42)?;
    tracing::info!(
        "simulating {} NIRCam NRCA1 uncal darks and {} flats ({}x{}, 2 integrations x {} groups) \
         in {}",
        args.darks,
        args.flats,
        args.size,
        args.size,
        DEMO_GROUPS,
        data.display()
    );
    let manifest = write_dataset(data, &cfg, args.darks, args.flats, ProductSet::NONE)
        .map_err(|e| e.to_string())?;
    let uncal: Vec<PathBuf> = manifest
        .exposures
        .iter()
        .filter(|e| matches!(e.kind, Kind::Dark | Kind::Flat))
        .filter_map(|e| e.files.first())
        .map(|f| data.join(&f.file))
        .collect();
    let truth = data.join(&manifest.truth);
    let references = write_step_references(
        data,
        uncal.first().ok_or("the demo simulated no exposure")?,
        &Truth::read(&truth).map_err(|e| e.to_string())?,
        &[
            StepReference::Mask,
            StepReference::Saturation,
            StepReference::Linearity,
            StepReference::Gain,
            StepReference::Superbias,
        ],
    )
    .map_err(|e| e.to_string())?;
    Ok(Simulated {
        uncal,
        references: references
            .into_iter()
            .map(|(reftype, path)| (reftype.to_string(), path))
            .collect(),
        truth,
    })
}

/// Prints each reference file made under `out` with how it compares with the simulator's truth.
fn compare_with_truth(out: &Path, truth: &Path) -> Result<(), String> {
    let find = |reflabel: &str| -> Option<PathBuf> {
        let mut found: Vec<_> = walk(out)
            .into_iter()
            .filter(|p| {
                let name = p.file_name().unwrap_or_default().to_string_lossy();
                name.starts_with(&format!("{reflabel}.")) && name.ends_with(".fits")
            })
            .collect();
        found.sort();
        found.pop()
    };
    if let Some(rn) = find("readnoise") {
        let made = read_image(&rn, "SCI")?;
        let want = read_image(truth, "READNOISE")?;
        if let Some(r) = median_ratio(&made, &want) {
            println!(
                "readnoise: {} (median ratio to the simulated truth: {r:.3})",
                rn.display()
            );
        }
    }
    if let Some(sb) = find("superbias") {
        let made = read_image(&sb, "SCI")?;
        let want = read_image(truth, "BIAS")?;
        if let Some(d) = median_difference(&made, &want) {
            println!(
                "superbias: {} (median difference from the simulated bias: {d:.2} DN)",
                sb.display()
            );
        }
    }
    if let Some(dark) = find("dark") {
        println!("dark:      {}", dark.display());
    }
    if let Some(mask) = find("bpm") {
        println!(
            "bpm:       {} (simulated bad pixels flagged, per class: {})",
            mask.display(),
            defects_found(&mask, truth)?.join(", ")
        );
    }
    Ok(())
}

/// `<class> <flagged>/<simulated>` for every defect class the truth has.
fn defects_found(mask: &Path, truth: &Path) -> Result<Vec<String>, String> {
    let made = ImageReader::open(mask, "DQ")
        .and_then(|mut r| r.read_plane::<u32>(0))
        .map_err(|e| e.to_string())?;
    let truth_defects = ImageReader::open(truth, "DEFECTS")
        .and_then(|mut r| r.read_plane::<u32>(0))
        .map_err(|e| e.to_string())?;
    let mut per_class = Vec::new();
    for class in DefectClass::ALL {
        if class == DefectClass::ReferencePixel {
            continue;
        }
        let pixels: Vec<usize> = (0..truth_defects.len())
            .filter(|&i| class.matches(truth_defects[i]))
            .collect();
        let found = pixels.iter().filter(|&&i| made[i] != 0).count();
        if !pixels.is_empty() {
            per_class.push(format!("{class:?} {found}/{}", pixels.len()));
        }
    }
    Ok(per_class)
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}
