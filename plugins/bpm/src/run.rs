//! One bpm job (bpm.md §4.1): check the inputs, find bad pixels from the flats and from the
//! darks, combine them with the reference pixels and the manual flags, write the MASK file,
//! then the optional figures and pipeline check.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::{GeneratorError, ImageKind, InputImage, Job, JobReport};
use mkrefs_support::budget::thread_pool;
use mkrefs_support::dq;
use mkrefs_support::fits::{FitsWriter, ImageReader, read_primary_header};
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
    /// Science-region mean image.
    pub mean: Vec<f64>,
    pub flux_check_cleared: Option<usize>,
}

/// The dark products of one input: rate `path`, the saved rateints/jump/fitopt, the uncal.
/// A missing jump or fitopt product is an error naming the input and what to add.
pub fn dark_inputs(job: &Job<'_>, input: &InputImage) -> Result<DarkInputs, GeneratorError> {
    let label = input.label.as_str();
    let need = |product: &str| {
        job.product(label, product).map(PathBuf::from).ok_or_else(|| {
            GeneratorError::invalid_input(format!(
                "dark {label} ({}) has no '{product}' product, which the dark search needs; add \
                 '{product}' to ssb_save_steps in the bpm section (default: jump, fitopt, \
                 rateints)",
                input.raw_path
            ))
        })
    };
    Ok(DarkInputs {
        label: label.to_string(),
        slope: PathBuf::from(input.path.as_str()),
        rateints: job.product(label, "rateints").map(PathBuf::from),
        jump: Some(need("jump")?),
        fitopt: Some(need("fitopt")?),
        uncal: PathBuf::from(input.raw_path.as_str()),
    })
}

/// Makes `job.output`.
pub fn run(job: &Job<'_>) -> Result<JobReport, GeneratorError> {
    let s = Settings::from_job(job)?;
    report_ignored(job, IGNORED);
    let darks: Vec<&InputImage> = job.inputs_of(ImageKind::Dark).collect();
    let flats: Vec<&InputImage> = job.inputs_of(ImageKind::Flat).collect();
    if darks.is_empty() && flats.is_empty() {
        return Err(GeneratorError::invalid_input(format!(
            "job {} of bpm has no input files; give darks, flats or both",
            job.cmd_id
        )));
    }
    // Every input must be a slope product of the same pixels. Darks' products are checked too,
    // so a wrong group fails before any work.
    let mut flat_files = flats
        .iter()
        .map(|i| SlopeFile::open(&i.label, Path::new(i.path.as_str())))
        .collect::<Result<Vec<_>, _>>()?;
    let dark_files = darks
        .iter()
        .map(|i| SlopeFile::open(&i.label, Path::new(i.path.as_str())))
        .collect::<Result<Vec<_>, _>>()?;
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
    drop(dark_files);
    let (ny, nx) = (geometry.ny(), geometry.nx());
    job.info(&format!(
        "bpm: {} dark(s), {} flat(s) of {} {} ({}x{} pixels, SUBARRAY {}, science region rows \
         {}..{} columns {}..{})",
        darks.len(),
        flats.len(),
        geometry.instrument,
        geometry.detector,
        ny,
        nx,
        geometry.sub.name,
        geometry.science.0,
        geometry.science.1,
        geometry.science.2,
        geometry.science.3
    ));

    let pool = thread_pool(job.threads as usize).map_err(GeneratorError::internal)?;
    let flat = if flat_files.is_empty() {
        None
    } else {
        Some(pool.install(|| flat_side(job, &s, &mut flat_files, &flats, &geometry))?)
    };
    drop(flat_files);
    let dark = if dark_inputs.is_empty() {
        None
    } else {
        let log = |m: &str| job.info(m);
        let r = pool.install(|| bad_pixels_from_darks(&dark_inputs, &s.dark, &log))?;
        if (r.ny, r.nx) != (ny, nx) || r.dq.len() != ny * nx {
            return Err(GeneratorError::internal(format!(
                "the dark search returned a {}x{} map for {}x{} inputs",
                r.ny, r.nx, ny, nx
            )));
        }
        for n in &r.notes {
            job.info(n);
        }
        Some(r)
    };

    // Combination (§4.1 steps 4–5), then the reference pixels of the geometry and the manual
    // flags, which apply whichever inputs were given (upstream: only with flats).
    let mut dq_map = mask::combine(
        flat.as_ref().map(|f| f.dq.as_slice()),
        dark.as_ref().map(|d: &DarkResult| d.dq.as_slice()),
        ny * nx,
    );
    let refpix = mask::reference_pixel_flags(&geometry.reference_pixels(), &s.flat_do_not_use);
    for (o, r) in dq_map.iter_mut().zip(&refpix) {
        *o |= r;
    }
    let manual_count = apply_manual(job, &s, &geometry, &mut dq_map)?;

    // The MASK file.
    let ran = Ran {
        flats: flat.is_some(),
        darks: dark.is_some(),
        max_dead: flat.as_ref().map(|f| f.maps.max_dead),
        flux_check_ran: flat
            .as_ref()
            .is_some_and(|f| f.flux_check_cleared.is_some()),
    };
    let output = PathBuf::from(job.output.as_str());
    write_mask(&output, &s, &ran, &first_header, &geometry, job, &dq_map)?;

    let counts = flag_counts(&dq_map);
    let summary_counts = counts
        .iter()
        .map(|(n, c)| format!("{n} {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    job.info(&format!("bpm: flagged pixels per flag: {summary_counts}"));
    let mut extra = Vec::new();
    if s.plot {
        let (sy, sx) = geometry.science_shape();
        let mut thresholds = Vec::new();
        if let Some(f) = &flat {
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
            mean: flat.as_ref().map(|f| f.mean.as_slice()),
            normalized: flat.as_ref().map(|f| f.maps.normalized.as_slice()),
            thresholds,
            ny,
            nx,
            mask: &dq_map,
        };
        let (files, note) = plots::write_all(&output, &inputs).map_err(GeneratorError::io)?;
        if let Some(n) = note {
            job.warn(&n);
        }
        for f in &files {
            job.info(&format!("plot: wrote {}", f.display()));
        }
        extra.extend(files.iter().map(|f| f.display().to_string().into()));
    }
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
        let uncal = job
            .inputs
            .first()
            .map(|i| PathBuf::from(i.raw_path.as_str()))
            .unwrap_or_default();
        match quality::run(&output, &uncal)? {
            QualityOutcome::Passed(m) => {
                job.info(&m);
                summary.push_str("; quality check passed");
            }
            QualityOutcome::Skipped(m) => {
                job.warn(&m);
                summary.push_str("; ");
                summary.push_str(&m);
            }
        }
    }
    Ok(JobReport {
        extra_outputs: extra.into(),
        summary: summary.into(),
    })
}

/// The flat side (§2): mean/stdev, normalisation and searches on the science region, the
/// optional flux check, then the maps padded back to the window.
fn flat_side(
    job: &Job<'_>,
    s: &Settings,
    files: &mut [SlopeFile],
    flats: &[&InputImage],
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
            flats
                .iter()
                .map(|i| PathBuf::from(i.raw_path.as_str()))
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
    Ok(FlatOutcome {
        dq: g.pad(&sci_dq, 0),
        maps,
        mean,
        flux_check_cleared: cleared,
    })
}

/// ORs the manual flags into `dq_map`; returns the number of pixels they touch.
fn apply_manual(
    job: &Job<'_>,
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
pub fn flag_counts(dq_map: &[u32]) -> Vec<(&'static str, usize)> {
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
    first_header: &mkrefs_support::header::Header,
    g: &Geometry,
    job: &Job<'_>,
    dq_map: &[u32],
) -> Result<(), GeneratorError> {
    let (ny, nx) = (g.ny(), g.nx());
    let mut meta = RefMeta::from_header("MASK", "MaskModel", first_header, (ny, nx))
        .map_err(GeneratorError::invalid_input)?;
    // Flats first, then darks, as upstream lists them under DATA USED.
    let inputs: Vec<&Path> = job
        .inputs_of(ImageKind::Flat)
        .chain(job.inputs_of(ImageKind::Dark))
        .map(|i| Path::new(i.raw_path.as_str()))
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

/// Reads the DQ of a written mask (tests, benchmark).
pub fn read_mask(path: &Path) -> Result<(Vec<u32>, usize, usize), GeneratorError> {
    let _ = read_primary_header(path).map_err(fits_error)?;
    let mut r = ImageReader::open(path, "DQ").map_err(fits_error)?;
    let (ny, nx) = (r.ny(), r.nx());
    Ok((r.read_plane::<u32>(0).map_err(fits_error)?, ny, nx))
}
