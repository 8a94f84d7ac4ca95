//! One readnoise job: open the inputs, plan the CDS frames, stream the map, write the
//! READNOISE file.

use std::path::Path;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::thread_pool;
use mkrefs_support::fits::FitsWriter;
use mkrefs_support::generator::Report;
use mkrefs_support::geometry::{Subarray, detector_info, reference_pixel_mask};
use mkrefs_support::header::HeaderValue;
use mkrefs_support::job::{JobView, open_ramps};
use mkrefs_support::jobparams::report_ignored;
use mkrefs_support::ramps::{FitsRamp, fits_error};
use mkrefs_support::reffile::RefMeta;

use crate::cds::CdsPlan;
use crate::compute::{MapOptions, Method, RampSource, readnoise_map};
use crate::params::{IGNORED, Settings};
use crate::single::single_value;

/// Makes `job.output` from `job.inputs`.
pub fn run(job: &JobView<'_>) -> Result<Report, GeneratorError> {
    let s = Settings::from_job(job)?;
    report_ignored(job, IGNORED);
    let mut ramps = open_ramps(job)?;
    let plans = plan_all(job, &ramps, &s)?;
    let n_total: usize = ramps
        .iter()
        .zip(&plans)
        .map(|(r, p)| r.dims().nints * p.per_integration())
        .sum();
    check_sample_counts(&ramps, &plans, s.method, n_total)?;
    warn_averaged_groups(job, &ramps);

    let dims = ramps[0].dims();
    job.info(&format!(
        "readnoise: method {}, {} differences, {} input(s), {} CDS frames per pixel, {}x{} pixels",
        s.method.name(),
        s.diff,
        ramps.len(),
        n_total,
        dims.ny,
        dims.nx
    ));
    let opts = MapOptions {
        method: s.method,
        sigma: s.sigma,
        maxiters: s.maxiters,
        upstream_estimator: s.upstream_estimator,
        budget_bytes: s.budget_bytes,
    };
    let pool = thread_pool(job.threads).map_err(GeneratorError::internal)?;
    let progress = |done: usize, total: usize| job.progress("readnoise", done as u64, total as u64);
    let result = pool.install(|| readnoise_map(&mut ramps, &plans, &opts, &progress))?;
    job.debug(&format!(
        "processed {} row(s) per block within {} MiB",
        result.rows_per_block,
        s.budget_bytes / (1024 * 1024)
    ));
    if !result.inputs_without_finite.is_empty() {
        let names: Vec<String> = result
            .inputs_without_finite
            .iter()
            .map(|&i| ramps[i].path.display().to_string())
            .collect();
        return Err(GeneratorError::invalid_input(format!(
            "no finite value in the SCI data used from {}; the file is NaN-filled or \
             corrupt; remove it from the group",
            names.join(", ")
        )));
    }
    let (ny, nx) = (result.ny, result.nx);
    let mut map = result.map;
    let non_finite = map.iter().filter(|v| !v.is_finite()).count();
    if non_finite > 0 {
        job.warn(&format!(
            "{non_finite} pixel(s) have no finite CDS value and are NaN in the output"
        ));
    }

    let mut meta = RefMeta::from_header("READNOISE", "ReadnoiseModel", &ramps[0].header, (ny, nx))
        .map_err(GeneratorError::invalid_input)?;
    if let Some(sub) = &s.meta.subarray {
        meta.subarray = sub.to_ascii_uppercase();
    }
    if s.single_value {
        let reference = reference_mask(&meta, ny, nx);
        let sv = single_value(
            &map,
            ny,
            nx,
            &meta.instrument,
            &meta.detector,
            &meta.subarray,
            reference.as_deref(),
            s.sigma,
            s.maxiters,
        )
        .map_err(GeneratorError::invalid_input)?;
        job.info(&format!(
            "single_value: {:.4} DN, the clipped mean of {} pixels of {}{}",
            sv.value,
            sv.n,
            sv.region,
            if reference.is_some() {
                ", reference pixels left out"
            } else {
                ""
            }
        ));
        map.fill(sv.value);
    }

    let paths: Vec<&Path> = ramps.iter().map(|r| r.path.as_path()).collect();
    s.meta.apply(&mut meta, "readnoise", &paths)?;

    let sci: Vec<f32> = map.iter().map(|&v| v as f32).collect();
    write_file(&job.output, &meta, &sci, ny, nx)?;

    let median = median_finite(&map);
    Ok(Report {
        summary: format!(
            "median readnoise {median:.3} DN ({}, {} CDS frames per pixel{})",
            s.method.name(),
            n_total,
            if s.single_value { ", single value" } else { "" }
        ),
        extra_outputs: Vec::new(),
    })
}

/// The CDS plan of each input, with a log line for left-out groups.
fn plan_all(
    job: &JobView<'_>,
    ramps: &[FitsRamp],
    s: &Settings,
) -> Result<Vec<CdsPlan>, GeneratorError> {
    let mut plans = Vec::with_capacity(ramps.len());
    for r in ramps {
        let miri = r.key("INSTRUME").as_deref() == Some("MIRI");
        let plan = CdsPlan::new(r.dims().ngroups, miri, s.diff)
            .map_err(|e| GeneratorError::invalid_input(format!("{}: {e}", r.path.display())))?;
        if miri {
            job.debug(&format!(
                "{}: MIRI, groups {}..{} used (first {} and the last left out)",
                r.path.display(),
                plan.first,
                plan.end,
                plan.first
            ));
        }
        if let Some(g) = plan.dropped {
            job.warn(&format!(
                "{}: {} usable groups is odd; independent differences leave out the last \
                 group ({g}) of each integration",
                r.path.display(),
                plan.end - plan.first
            ));
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// The statistics need at least two samples: a std of one value is 0, not a noise.
fn check_sample_counts(
    ramps: &[FitsRamp],
    plans: &[CdsPlan],
    method: Method,
    n_total: usize,
) -> Result<(), GeneratorError> {
    match method {
        Method::Stack if n_total < 2 => Err(GeneratorError::invalid_input(format!(
            "the inputs give {n_total} CDS frame(s) per pixel; method 'stack' needs at least 2 \
             (for example 2 inputs of 2 groups, or one input of 4 groups); add inputs or use \
             group_diff_type 'consecutive'"
        ))),
        Method::Ramp => {
            for (r, p) in ramps.iter().zip(plans) {
                let n = r.dims().nints * p.per_integration();
                if n < 2 {
                    return Err(GeneratorError::invalid_input(format!(
                        "{} gives {n} CDS frame(s) per pixel; method 'ramp' takes a std per input \
                         and needs at least 2 frames from each (4 groups in independent mode, 3 in \
                         consecutive); use method 'stack' or longer ramps",
                        r.path.display()
                    )));
                }
            }
            Ok(())
        }
        Method::Stack => Ok(()),
    }
}

/// The pipeline expects the CDS noise of single frames; groups that average several frames have
/// less. Not an error (upstream does not check), but worth a warning.
fn warn_averaged_groups(job: &JobView<'_>, ramps: &[FitsRamp]) {
    for r in ramps {
        if let Some(nf) = r.header.get("NFRAMES").and_then(HeaderValue::as_i64)
            && nf > 1
        {
            job.warn(&format!(
                "{}: NFRAMES = {nf}; each group averages {nf} frames, so its CDS noise is lower \
                 than that of single frames",
                r.path.display()
            ));
        }
    }
}

/// The reference-pixel map of the output, when the detector and subarray are known.
fn reference_mask(meta: &RefMeta, ny: usize, nx: usize) -> Option<Vec<bool>> {
    let det = detector_info(&meta.detector)?;
    let sub = Subarray {
        name: meta.subarray.clone(),
        xstart: usize::try_from(meta.substrt1).ok()?,
        ystart: usize::try_from(meta.substrt2).ok()?,
        nx,
        ny,
    };
    sub.check(&det).ok()?;
    Some(reference_pixel_mask(&det, &sub))
}

fn write_file(
    output: &Path,
    meta: &RefMeta,
    sci: &[f32],
    ny: usize,
    nx: usize,
) -> Result<(), GeneratorError> {
    let mut w = FitsWriter::create(output).map_err(fits_error)?;
    meta.write_primary(&mut w).map_err(fits_error)?;
    w.write_image::<f32>("SCI", &[ny, nx], sci)
        .map_err(fits_error)?;
    w.set_key("BUNIT", &HeaderValue::Str("DN".into()), "Units of the data")
        .map_err(fits_error)?;
    w.finish().map_err(fits_error)?;
    Ok(())
}

/// The median of the finite values (for the summary line); NaN if there is none.
fn median_finite(v: &[f64]) -> f64 {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return f64::NAN;
    }
    let mid = f.len() / 2;
    let (_, m, _) = f.select_nth_unstable_by(mid, f64::total_cmp);
    *m
}
