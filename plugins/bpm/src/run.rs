//! One bpm job: check the inputs, find bad pixels from the flats and from the darks, combine
//! them with the reference pixels and the manual flags, write the MASK file, then the optional
//! figures and pipeline check.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::thread_pool;
use mkrefs_support::dq;
use mkrefs_support::fits::FitsWriter;
use mkrefs_support::generator::Report;
use mkrefs_support::header::Header;
use mkrefs_support::job::{Input, InputKind, JobView};
use mkrefs_support::jobparams::report_ignored;
use mkrefs_support::ramps::fits_error;
use mkrefs_support::reffile::RefMeta;

use crate::darks::{DarkInputs, DarkResult, bad_pixels_from_darks};
use crate::flats::{self, FlatMaps};
use crate::inputs::{self, Geometry, SlopeFile};
use crate::manual;
use crate::mask::{self, Ran};
use crate::params::{IGNORED, Settings};
use crate::plots;
use crate::quality::{self, QualityOutcome};

/// What the flat side produced, on the full window.
pub struct FlatOutcome {
    pub maps: FlatMaps,
    /// DEAD, LOW_QE, OPEN, ADJ_OPEN (with DO_NOT_USE per flat_do_not_use), full window.
    pub dq: Vec<u32>,
    /// Science-region mean image; empty unless plots are asked for (as the maps' float
    /// images).
    pub mean: Vec<f64>,
    pub flux_check_cleared: Option<usize>,
}

/// The dark products of one input: rate `path`, the saved rateints/jump/fitopt, the uncal.
/// A missing jump or fitopt product is an error naming the input and what to add.
fn dark_inputs(job: &JobView<'_>, input: &Input) -> Result<DarkInputs, GeneratorError> {
    let label = input.label.as_str();
    let need = |product: &str| {
        job.product(label, product)
            .map(Path::to_path_buf)
            .ok_or_else(|| {
                GeneratorError::invalid_input(format!(
                    "dark {label} ({}) has no '{product}' product, which the dark search needs; \
                     add '{product}' to ssb_save_steps in the bpm section (default: {})",
                    input.raw_path.display(),
                    crate::DEFAULT_SSB_SAVE_STEPS
                ))
            })
    };
    Ok(DarkInputs {
        label: label.to_string(),
        slope: input.path.clone(),
        rateints: job.product(label, "rateints").map(Path::to_path_buf),
        jump: Some(need("jump")?),
        fitopt: Some(need("fitopt")?),
        uncal: input.raw_path.clone(),
    })
}

/// Makes `job.output`.
pub fn run(job: &JobView<'_>) -> Result<Report, GeneratorError> {
    let s = Settings::from_job(job)?;
    report_ignored(job, IGNORED);
    let Inputs {
        mut flat_files,
        dark_inputs,
        geometry,
        first_header,
    } = open_inputs(job)?;
    let pool = thread_pool(job.threads).map_err(GeneratorError::internal)?;
    // The two searches are independent; run side by side, each one's sequential steps leave
    // the other the idle core.
    let (flat, dark) = pool.install(|| {
        rayon::join(
            || {
                (!flat_files.is_empty())
                    .then(|| flat_side(job, &s, &mut flat_files, &geometry))
                    .transpose()
            },
            || {
                (!dark_inputs.is_empty())
                    .then(|| dark_side(job, &s, &dark_inputs, &geometry))
                    .transpose()
            },
        )
    });
    let (flat, dark) = (flat?, dark?);
    drop(flat_files);
    let (dq_map, manual_count) = combine(job, &s, &geometry, flat.as_ref(), dark.as_ref())?;
    let ran = Ran {
        flats: flat.is_some(),
        darks: dark.is_some(),
        max_dead: flat.as_ref().map(|f| f.maps.max_dead),
        flux_check_ran: flat
            .as_ref()
            .is_some_and(|f| f.flux_check_cleared.is_some()),
    };
    write_mask(
        &job.output,
        &s,
        &ran,
        &first_header,
        &geometry,
        job,
        &dq_map,
    )?;

    let summary_counts = flag_counts(&dq_map)
        .iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    job.info(&format!("bpm: flagged pixels per flag: {summary_counts}"));
    let extra_outputs = if s.plot {
        write_plots(job, &s, &geometry, flat.as_ref(), &dq_map)?
    } else {
        Vec::new()
    };
    let mut summary = format!(
        "{} flagged pixel(s) besides reference pixels ({summary_counts}); {} from the manual \
         file",
        dq_map
            .iter()
            .filter(|&&v| v & !(dq::REFERENCE_PIXEL | dq::DO_NOT_USE) != 0)
            .count(),
        manual_count
    );
    if s.quality_check {
        summary.push_str(&quality_check(job)?);
    }
    Ok(Report {
        summary,
        extra_outputs,
    })
}

/// The inputs of a job, checked to be slope products of the same pixels.
struct Inputs {
    flat_files: Vec<SlopeFile>,
    dark_inputs: Vec<DarkInputs>,
    geometry: Geometry,
    first_header: Header,
}

/// Opens the flats' slope products and checks the darks' (and their intermediate products), so
/// that a wrong group fails before any work.
fn open_inputs(job: &JobView<'_>) -> Result<Inputs, GeneratorError> {
    let darks: Vec<&Input> = job.inputs_of(InputKind::Dark).collect();
    let flats: Vec<&Input> = job.inputs_of(InputKind::Flat).collect();
    if darks.is_empty() && flats.is_empty() {
        return Err(GeneratorError::invalid_input(format!(
            "job {} of bpm has no input files; give darks, flats or both",
            job.cmd_id
        )));
    }
    let open = |inputs: &[&Input]| {
        inputs
            .iter()
            .map(|i| SlopeFile::open(&i.label, &i.path))
            .collect::<Result<Vec<_>, _>>()
    };
    let flat_files = open(&flats)?;
    let dark_files = open(&darks)?;
    let all: Vec<&SlopeFile> = flat_files.iter().chain(&dark_files).collect();
    inputs::check_same_pixels(
        &all.iter()
            .map(|f| {
                (
                    f.label.as_str(),
                    f.path.as_path(),
                    &f.header,
                    f.ny(),
                    f.nx(),
                )
            })
            .collect::<Vec<_>>(),
    )?;
    let first = all[0];
    let geometry = Geometry::from_header(&first.path, &first.header, first.ny(), first.nx())?;
    let first_header = first.header.clone();
    let dark_inputs = darks
        .iter()
        .map(|i| dark_inputs(job, i))
        .collect::<Result<Vec<_>, _>>()?;
    job.info(&format!(
        "bpm: {} dark(s), {} flat(s) of {} {} ({}x{} pixels, SUBARRAY {}, science region rows \
         {}..{} columns {}..{})",
        darks.len(),
        flats.len(),
        geometry.instrument,
        geometry.detector,
        geometry.ny(),
        geometry.nx(),
        geometry.sub.name,
        geometry.science.0,
        geometry.science.1,
        geometry.science.2,
        geometry.science.3
    ));
    Ok(Inputs {
        flat_files,
        dark_inputs,
        geometry,
        first_header,
    })
}

/// The dark side: the dark search, its notes logged, its map checked against the window.
fn dark_side(
    job: &JobView<'_>,
    s: &Settings,
    dark_inputs: &[DarkInputs],
    g: &Geometry,
) -> Result<DarkResult, GeneratorError> {
    let (ny, nx) = (g.ny(), g.nx());
    let log = |m: &str| job.info(m);
    let r = bad_pixels_from_darks(dark_inputs, &s.dark, &log)?;
    if (r.ny, r.nx) != (ny, nx) || r.dq.len() != ny * nx {
        return Err(GeneratorError::internal(format!(
            "the dark search returned a {}x{} map for {}x{} inputs",
            r.ny, r.nx, ny, nx
        )));
    }
    Ok(r)
}

/// The mask: flats | darks with the HOT/RC-and-DEAD rule, then the reference pixels of the
/// geometry and the manual flags, which apply whichever inputs were given (upstream: only with
/// flats). Returns the mask and the number of pixels the manual flags touch.
fn combine(
    job: &JobView<'_>,
    s: &Settings,
    g: &Geometry,
    flat: Option<&FlatOutcome>,
    dark: Option<&DarkResult>,
) -> Result<(Vec<u32>, usize), GeneratorError> {
    let mut dq_map = mask::combine(
        flat.map(|f| f.dq.as_slice()),
        dark.map(|d| d.dq.as_slice()),
        g.ny() * g.nx(),
    );
    let refpix = mask::reference_pixel_flags(&g.reference_pixels(), &s.flat_do_not_use);
    for (o, r) in dq_map.iter_mut().zip(&refpix) {
        *o |= r;
    }
    let manual_count = apply_manual(job, s, g, &mut dq_map)?;
    Ok((dq_map, manual_count))
}

/// The PNG figures beside the output; returns the files written.
fn write_plots(
    job: &JobView<'_>,
    s: &Settings,
    g: &Geometry,
    flat: Option<&FlatOutcome>,
    dq_map: &[u32],
) -> Result<Vec<PathBuf>, GeneratorError> {
    let (sy, sx) = g.science_shape();
    let mut thresholds = Vec::new();
    if let Some(f) = flat {
        if let Some(t) = f.maps.sigma_dead_threshold {
            thresholds.push(("sigma_rate dead".to_string(), t));
        }
        thresholds.push(("max_dead_norm_signal".into(), f.maps.max_dead));
        thresholds.push((
            "max_low_qe_norm_signal".into(),
            s.flat.max_low_qe_norm_signal,
        ));
        thresholds.push((
            "max_open_adj_norm_signal".into(),
            s.flat.max_open_adj_norm_signal,
        ));
    }
    let inputs = plots::PlotInputs {
        sci_ny: sy,
        sci_nx: sx,
        mean: flat.map(|f| f.mean.as_slice()),
        normalized: flat.map(|f| f.maps.normalized.as_slice()),
        thresholds,
        ny: g.ny(),
        nx: g.nx(),
        mask: dq_map,
    };
    let (files, note) = plots::write_all(&job.output, &inputs).map_err(GeneratorError::io)?;
    if let Some(n) = note {
        job.warn(&n);
    }
    for f in &files {
        job.info(&format!("plot: wrote {}", f.display()));
    }
    Ok(files)
}

/// Runs the pipeline check on the written mask; returns what the summary line gets.
fn quality_check(job: &JobView<'_>) -> Result<String, GeneratorError> {
    let uncal = job
        .inputs
        .first()
        .map(|i| i.raw_path.clone())
        .unwrap_or_default();
    Ok(match quality::run(&job.output, &uncal)? {
        QualityOutcome::Passed(m) => {
            job.info(&m);
            "; quality check passed".to_string()
        }
        QualityOutcome::Skipped(m) => {
            job.warn(&m);
            format!("; {m}")
        }
    })
}

/// The flat side: mean/stdev, normalisation and searches on the science region, the optional
/// flux check, then the maps padded back to the window.
fn flat_side(
    job: &JobView<'_>,
    s: &Settings,
    files: &mut [SlopeFile],
    g: &Geometry,
) -> Result<FlatOutcome, GeneratorError> {
    let planes: usize = files.iter().map(|f| f.planes).sum();
    if planes < 3 {
        job.warn(&format!(
            "bpm: {planes} flat plane(s): the per-pixel sigma clip cannot reject anything with \
             fewer than 3 values; give at least 3 flats (or rateints) for a robust mean"
        ));
    }
    let progress = |done: usize, total: usize| job.progress("flats", done as u64, total as u64);
    let (mean_full, _std_full) =
        inputs::flat_mean_stdev(files, s.flat.sigma_threshold, s.budget_bytes, &progress)?;
    let (sy, sx) = g.science_shape();
    if sy == 0 || sx == 0 {
        return Err(GeneratorError::invalid_input(format!(
            "the {}x{} window of {} has no science pixels (it lies in the reference-pixel \
             border); flats cannot be searched there",
            g.ny(),
            g.nx(),
            g.detector
        )));
    }
    let mean = g.crop(&mean_full);
    drop(mean_full);
    let mut maps = flats::find_bad_pixels(&mean, sy, sx, &s.flat, &g.instrument, &g.detector)?;
    job.info(&format!(
        "flats: normalised mean {:.4} ± {:.4} (clipped); dead threshold {}",
        maps.norm_mean,
        maps.norm_std,
        match maps.sigma_dead_threshold {
            Some(t) if s.flat.dead_search_type == flats::DeadSearchType::SigmaRate =>
                format!("{t:.4} (sigma_rate)"),
            _ => format!("{} (absolute_rate)", maps.max_dead),
        }
    ));
    let mut cleared = None;
    if s.flat.dead_search && s.run_dead_flux_check {
        let paths: Vec<PathBuf> = if s.dead_flux_check_files.is_empty() {
            job.inputs_of(InputKind::Flat)
                .map(|i| i.raw_path.clone())
                .collect()
        } else {
            s.dead_flux_check_files.clone()
        };
        let signal = g.crop(&inputs::flux_check_signal(&paths, g, s.budget_bytes)?);
        let n = flats::apply_flux_check(&mut maps.dead, &signal, s.flux_check);
        job.info(&format!(
            "flats: dead flux check on {} ramp(s): {n} DEAD candidate(s) at or above {} DN in \
             their last 4 groups un-flagged",
            paths.len(),
            s.flux_check
        ));
        cleared = Some(n);
    }
    let sci_dq = flats::combine_individual_maps(
        &[
            ("DEAD", &maps.dead),
            ("LOW_QE", &maps.low_qe),
            ("OPEN", &maps.open),
            ("ADJ_OPEN", &maps.adj_open),
        ],
        &s.flat_do_not_use,
    );
    let count = |m: &[bool]| m.iter().filter(|&&b| b).count();
    job.info(&format!(
        "flats: DEAD {}, LOW_QE {}, OPEN {}, ADJ_OPEN {}",
        count(&maps.dead),
        count(&maps.low_qe),
        count(&maps.open),
        count(&maps.adj_open)
    ));
    // The float images serve only the plots; without them they would sit through the dark
    // search (400 MB at 4096x4096).
    let mean = match s.plot {
        true => mean,
        false => {
            maps.normalization_image = Vec::new();
            maps.normalized = Vec::new();
            Vec::new()
        }
    };
    Ok(FlatOutcome {
        dq: g.pad(&sci_dq, 0),
        maps,
        mean,
        flux_check_cleared: cleared,
    })
}

/// ORs the manual flags into `dq_map`; returns the number of pixels they touch.
fn apply_manual(
    job: &JobView<'_>,
    s: &Settings,
    g: &Geometry,
    dq_map: &mut [u32],
) -> Result<usize, GeneratorError> {
    let path = match s.manual.resolve(&g.instrument, &g.detector) {
        Ok(p) => p,
        Err(why) => {
            job.info(&why);
            return Ok(0);
        }
    };
    let entries = manual::read(&path, g.det.full_ny, g.det.full_nx, &s.flat_do_not_use)?;
    let m = manual::to_map(&entries, g.sub.ystart - 1, g.sub.xstart - 1, g.ny(), g.nx());
    let mut n = 0;
    for (o, &v) in dq_map.iter_mut().zip(&m) {
        if v != 0 {
            *o |= v;
            n += 1;
        }
    }
    job.info(&format!(
        "manual flags: {} entr(ies) from {} flag {n} pixel(s) of this window",
        entries.len(),
        path.display()
    ));
    Ok(n)
}

/// Pixel counts per flag, in table order, for the flags that occur.
fn flag_counts(dq_map: &[u32]) -> Vec<(&'static str, usize)> {
    dq::PIXEL_FLAGS
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|&(n, v)| (n, dq_map.iter().filter(|&&p| p & v != 0).count()))
        .filter(|&(_, c)| c > 0)
        .collect()
}

fn write_mask(
    output: &Path,
    s: &Settings,
    ran: &Ran,
    first_header: &Header,
    g: &Geometry,
    job: &JobView<'_>,
    dq_map: &[u32],
) -> Result<(), GeneratorError> {
    let (ny, nx) = (g.ny(), g.nx());
    let mut meta = RefMeta::from_header("MASK", "MaskModel", first_header, (ny, nx))
        .map_err(GeneratorError::invalid_input)?;
    // Flats first, then darks, as upstream lists them under DATA USED.
    let inputs: Vec<&Path> = job
        .inputs_of(InputKind::Flat)
        .chain(job.inputs_of(InputKind::Dark))
        .map(|i| i.raw_path.as_path())
        .collect();
    s.meta.apply(&mut meta, "bpm", &inputs)?;
    if g.det.instrument == mkrefs_support::geometry::Instrument::Fgs && meta.exp_type.is_none() {
        // CRDS selects FGS masks by EXP_TYPE; a mask made from darks and flats applies to all.
        meta.exp_type = Some("ANY".into());
    }
    // Parameter descriptions after the SOFTWARE entry, the DO_NOT_USE sentences at the end.
    let at = meta.history.len().min(3);
    let params = mask::parameter_history(ran);
    meta.history.splice(at..at, params);
    meta.history.extend(mask::do_not_use_history(s, ran));
    meta.extra = mask::keywords(s, ran);
    meta.validate().map_err(GeneratorError::invalid_parameter)?;
    let mut w = FitsWriter::create(output).map_err(fits_error)?;
    meta.write_primary(&mut w).map_err(fits_error)?;
    w.write_image::<u32>("DQ", &[ny, nx], dq_map)
        .map_err(fits_error)?;
    w.write_dq_def(&dq::standard_dq_def()).map_err(fits_error)?;
    w.finish().map_err(fits_error)?;
    Ok(())
}
