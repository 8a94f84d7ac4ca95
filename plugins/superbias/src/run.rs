//! One superbias job: open the inputs, stream the group-0 statistics, flag unreliable pixels,
//! write the SUPERBIAS file.

use std::path::Path;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::thread_pool;
use mkrefs_support::dq::dq_def_for;
use mkrefs_support::fits::{FitsError, FitsWriter};
use mkrefs_support::generator::Report;
use mkrefs_support::job::{JobView, open_ramps};
use mkrefs_support::jobparams::report_ignored;
use mkrefs_support::ramps::fits_error;
use mkrefs_support::reffile::RefMeta;

use crate::compute::{
    FLAGGED, Integrations, RampSource, output_planes, superbias_maps, unreliable_threshold,
};
use crate::params::{IGNORED, Settings};

/// At least this many group-0 frames per pixel: one frame has no scatter, so neither ERR nor the
/// UNRELIABLE_BIAS test would mean anything.
pub const MIN_SAMPLES: usize = 2;

/// Makes `job.output` from `job.inputs`.
pub fn run(job: &JobView<'_>) -> Result<Report, GeneratorError> {
    let s = Settings::from_job(job)?;
    report_ignored(job, IGNORED);
    let mut ramps = open_ramps(job)?;
    let samples: usize = ramps
        .iter()
        .map(|r| s.integrations.count(r.dims().nints))
        .sum();
    if samples < MIN_SAMPLES {
        let hint = match s.integrations {
            Integrations::First => {
                "give at least 2 input ramps, or set integrations: all if the input has \
                 several integrations"
            }
            Integrations::All => "give more input ramps",
        };
        return Err(GeneratorError::invalid_input(format!(
            "the inputs give {samples} group-0 frame(s) per pixel; superbias needs at least \
             {MIN_SAMPLES} for a mean with a scatter; {hint}"
        )));
    }
    let dims = ramps[0].dims();
    job.info(&format!(
        "superbias: group 0 of {} integration(s), {samples} frame(s) per pixel from {} input(s), \
         {}x{} pixels",
        match s.integrations {
            Integrations::First => "the first",
            Integrations::All => "every",
        },
        ramps.len(),
        dims.ny,
        dims.nx
    ));

    let pool = thread_pool(job.threads).map_err(GeneratorError::internal)?;
    let progress = |done: usize, total: usize| job.progress("superbias", done as u64, total as u64);
    let (maps, limit, (sci, err, dq)) = pool.install(|| {
        let maps = superbias_maps(
            &mut ramps,
            s.integrations,
            s.sigma,
            s.maxiters,
            s.budget_bytes,
            &progress,
        )?;
        let limit =
            unreliable_threshold(&maps.scatter, s.bad_sigma, s.bad_maxiters, s.bad_threshold);
        let planes = output_planes(&maps, s.err, limit);
        Ok::<_, GeneratorError>((maps, limit, planes))
    })?;
    if !maps.inputs_without_finite.is_empty() {
        let names: Vec<String> = maps
            .inputs_without_finite
            .iter()
            .map(|&i| ramps[i].path.display().to_string())
            .collect();
        return Err(GeneratorError::invalid_input(format!(
            "no finite value in group 0 of {}; the file is NaN-filled or corrupt; remove it \
             from the group",
            names.join(", ")
        )));
    }
    let (ny, nx) = (maps.ny, maps.nx);
    let non_finite = maps.mean.iter().filter(|v| !v.is_finite()).count();
    if non_finite > 0 {
        job.warn(&format!(
            "{non_finite} pixel(s) have no finite group-0 value: NaN in SCI and ERR, flagged"
        ));
    }
    let flagged = dq.iter().filter(|&&d| d == FLAGGED).count();
    match limit {
        Some(t) => job.info(&format!(
            "UNRELIABLE_BIAS: single-frame scatter above {t:.4} DN flags {flagged} pixel(s) \
             (DO_NOT_USE + UNRELIABLE_BIAS)"
        )),
        None => job.warn("no finite scatter: every pixel is flagged"),
    }

    let mut meta = RefMeta::from_header("SUPERBIAS", "SuperBiasModel", &ramps[0].header, (ny, nx))
        .map_err(GeneratorError::invalid_input)?;
    if let Some(sub) = &s.meta.subarray {
        meta.subarray = sub.to_ascii_uppercase();
    }
    let paths: Vec<&Path> = ramps.iter().map(|r| r.path.as_path()).collect();
    s.meta.apply(&mut meta, "superbias", &paths)?;

    // The summary's median needs no file and the file's write (cfitsio, then the fsync) one
    // thread: side by side.
    let output = job.output.as_path();
    let (written, median) = pool.install(|| {
        rayon::join(
            || write_superbias(output, &meta, (ny, nx), &sci, &err, &dq),
            || upper_median(&maps.mean),
        )
    });
    written.map_err(fits_error)?;
    Ok(Report {
        summary: format!(
            "median superbias {median:.2} DN from {samples} frame(s) per pixel; {flagged} \
             pixel(s) flagged UNRELIABLE_BIAS"
        ),
        extra_outputs: Vec::new(),
    })
}

/// The SUPERBIAS file: SCI, DQ, ERR and DQ_DEF, written under a temporary name, fsynced and
/// renamed.
fn write_superbias(
    output: &Path,
    meta: &RefMeta,
    (ny, nx): (usize, usize),
    sci: &[f32],
    err: &[f32],
    dq: &[u32],
) -> Result<(), FitsError> {
    let mut w = FitsWriter::create(output)?;
    meta.write_primary(&mut w)?;
    w.write_image::<f32>("SCI", &[ny, nx], sci)?;
    w.write_image::<u32>("DQ", &[ny, nx], dq)?;
    w.write_image::<f32>("ERR", &[ny, nx], err)?;
    w.write_dq_def(&dq_def_for(&["DO_NOT_USE", "UNRELIABLE_BIAS"]))?;
    w.finish()?;
    Ok(())
}

/// The upper median (order statistic `n / 2`) of the finite values; NaN when there is none.
fn upper_median(values: &[f64]) -> f64 {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return f64::NAN;
    }
    let mid = finite.len() / 2;
    *finite.select_nth_unstable_by(mid, f64::total_cmp).1
}
