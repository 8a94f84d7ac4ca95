//! `mkrefs simulate`: writes a simulated data set (truth, uncal ramps, optional calibrated
//! products and a manifest) for trying mkrefs, for tests and for benchmarks.

use std::process::ExitCode;
use std::time::Instant;

use mkrefs_sim::{
    Layout, ProductSet, SimConfig, StepReference, Truth, write_dataset_with, write_step_references,
};
use mkrefs_support::geometry::detector_info;

use crate::cli::SimulateArgs;

/// The simulator configuration for a detector, frame size, ramp shape and seed: the full
/// frame when `size` is `None` or the detector's full size, else a square window at the
/// corner.
pub fn sim_config(
    detector: &str,
    size: Option<usize>,
    nints: usize,
    ngroups: usize,
    seed: u64,
) -> Result<SimConfig, String> {
    let info = detector_info(detector).ok_or_else(|| {
        format!(
            "--detector {detector}: no instrument profile has this detector (instruments: {}; \
             see README, Instrument profiles)",
            mkrefs_support::geometry::Instrument::known_names()
        )
    })?;
    let mut cfg = SimConfig::default().with_detector(detector);
    if let Some(size) = size.filter(|&s| !(s == info.full_nx && s == info.full_ny)) {
        if size < 8 || size > info.full_ny.min(info.full_nx) {
            return Err(format!(
                "--size {size}: use 8 to {} pixels for {detector}",
                info.full_ny.min(info.full_nx)
            ));
        }
        cfg = cfg.with_square_subarray(size);
    }
    Ok(cfg.with_ramp(nints, ngroups).with_seed(seed))
}

/// `--products` words as the simulator's product set.
fn product_set(words: &[String]) -> Result<ProductSet, String> {
    let mut set = ProductSet::NONE;
    for w in words {
        match w.trim().to_ascii_lowercase().as_str() {
            "all" => set = ProductSet::ALL,
            "jump" => set.jump = true,
            "rate" => set.rate = true,
            "rateints" => set.rateints = true,
            "fitopt" => set.fitopt = true,
            other => {
                return Err(format!(
                    "--products: unknown product '{other}'; use jump, rate, rateints, fitopt or all"
                ));
            }
        }
    }
    Ok(set)
}

pub fn run(args: &SimulateArgs) -> Result<ExitCode, String> {
    let cfg = sim_config(
        &args.detector,
        args.size,
        args.nints,
        args.ngroups,
        args.seed,
    )?;
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let products = product_set(&args.products)?;
    let layout = if args.lean {
        Layout::Lean
    } else {
        Layout::Full
    };
    let start = Instant::now();
    let manifest = write_dataset_with(&args.out, &cfg, args.darks, args.flats, products, layout)
        .map_err(|e| e.to_string())?;
    if args.step_references {
        let truth = Truth::read(&args.out.join(&manifest.truth)).map_err(|e| e.to_string())?;
        let example = manifest
            .exposures
            .first()
            .and_then(|e| e.files.first())
            .ok_or("--step-references needs at least one exposure")?;
        let written = write_step_references(
            &args.out,
            &args.out.join(&example.file),
            &truth,
            &StepReference::ALL,
        )
        .map_err(|e| e.to_string())?;
        for (reftype, path) in written {
            tracing::info!("wrote the {reftype} reference file {}", path.display());
        }
    }
    tracing::info!(
        "wrote {} exposure(s) of {} {}x{} ({} ints x {} groups) and truth.fits to {} in {:.1} s",
        manifest.exposures.len(),
        manifest.detector,
        manifest.size.1,
        manifest.size.0,
        manifest.nints,
        manifest.ngroups,
        args.out.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
