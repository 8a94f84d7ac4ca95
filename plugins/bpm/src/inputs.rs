//! Reading the inputs of a bpm job: slope products (rate/rateints) of flats and darks, the raw
//! ramps of the dead flux check, and the detector geometry their headers give.
//!
//! Slope files are read in row bands, all planes of all files at once, so memory is one band
//! (sized by `memory_budget_mb`) plus the output images, whatever the number of inputs.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::{row_blocks, rows_per_block};
use mkrefs_support::fits::{ImageReader, read_primary_header};
use mkrefs_support::geometry::{DetectorInfo, Subarray, detector_info, science_region};
use mkrefs_support::header::Header;
use mkrefs_support::ramps::{FitsRamp, RampSource, SAME_KEYS, fits_error};

use crate::flats;

/// Where the pixels of a job are on the detector.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    /// INSTRUME and DETECTOR, upper case.
    pub instrument: String,
    pub detector: String,
    pub det: DetectorInfo,
    /// The readout window (the full frame for SUBARRAY FULL).
    pub sub: Subarray,
    /// Science (non-reference) box `(y0, y1, x0, x1)`, half-open, window coordinates.
    pub science: (usize, usize, usize, usize),
}

impl Geometry {
    /// From a primary header and the image size. A window has reference pixels only where it
    /// overlaps the detector's reference strips ([`science_region`]): 4 rows/columns on every
    /// side of a NIR full frame, the 4 left and right columns on MIRI.
    pub fn from_header(
        path: &Path,
        h: &Header,
        ny: usize,
        nx: usize,
    ) -> Result<Geometry, GeneratorError> {
        let text = |k: &str| {
            h.get_str(k)
                .map(|s| s.trim().to_ascii_uppercase())
                .ok_or_else(|| {
                    GeneratorError::invalid_input(format!(
                        "{}: the primary header has no {k}; bpm needs INSTRUME, DETECTOR and \
                         SUBARRAY to place the pixels on the detector",
                        path.display()
                    ))
                })
        };
        let instrument = text("INSTRUME")?;
        let detector = text("DETECTOR")?;
        let name = text("SUBARRAY")?;
        let det = detector_info(&detector).ok_or_else(|| {
            GeneratorError::invalid_input(format!(
                "{}: unknown DETECTOR {detector}; no instrument profile has it (README, Instrument \
                 profiles: NRCA1..NRCBLONG, NRS1, NRS2, NIS, GUIDER1, GUIDER2, MIRIMAGE, \
                 MIRIFULONG, MIRIFUSHORT, IRIS1 are bundled)",
                path.display()
            ))
        })?;
        let start = |k: &str| h.get_i64(k).filter(|&v| v >= 1).map(|v| v as usize);
        let sub = if (ny, nx) == (det.full_ny, det.full_nx) {
            Subarray::full_frame(&det)
        } else {
            let (Some(xstart), Some(ystart)) = (start("SUBSTRT1"), start("SUBSTRT2")) else {
                return Err(GeneratorError::invalid_input(format!(
                    "{}: a {ny}x{nx} window of {detector} (SUBARRAY {name}) needs SUBSTRT1 and \
                     SUBSTRT2 (>= 1) in the primary header to place it on the detector",
                    path.display()
                )));
            };
            Subarray {
                name: name.clone(),
                xstart,
                ystart,
                nx,
                ny,
            }
        };
        sub.check(&det)
            .map_err(|m| GeneratorError::invalid_input(format!("{}: {m}", path.display())))?;
        let science = science_region(&det, &sub);
        Ok(Geometry {
            instrument,
            detector: det.name.to_string(),
            det,
            sub,
            science,
        })
    }

    pub fn ny(&self) -> usize {
        self.sub.ny
    }

    pub fn nx(&self) -> usize {
        self.sub.nx
    }

    /// The window's reference-pixel map (row-major).
    pub fn reference_pixels(&self) -> Vec<bool> {
        let (y0, y1, x0, x1) = self.science;
        let nx = self.nx();
        let mut m = vec![true; self.ny() * nx];
        for y in y0..y1 {
            m[y * nx + x0..y * nx + x1].fill(false);
        }
        m
    }

    /// Science-region size `(ny, nx)`.
    pub fn science_shape(&self) -> (usize, usize) {
        let (y0, y1, x0, x1) = self.science;
        (y1 - y0, x1 - x0)
    }

    /// The science region of a full-window image.
    pub fn crop<T: Copy>(&self, img: &[T]) -> Vec<T> {
        let (y0, y1, x0, x1) = self.science;
        let nx = self.nx();
        (y0..y1)
            .flat_map(|y| img[y * nx + x0..y * nx + x1].iter().copied())
            .collect()
    }

    /// A science-region image placed back into the window, `fill` on reference pixels.
    pub fn pad<T: Copy>(&self, sci: &[T], fill: T) -> Vec<T> {
        let (y0, y1, x0, x1) = self.science;
        let (nx, w) = (self.nx(), x1 - x0);
        let mut out = vec![fill; self.ny() * nx];
        for (k, y) in (y0..y1).enumerate() {
            out[y * nx + x0..y * nx + x1].copy_from_slice(&sci[k * w..(k + 1) * w]);
        }
        out
    }
}

/// A slope product (rate or rateints) opened for reading in row bands.
pub struct SlopeFile {
    /// The group label (D1, F2, ...).
    pub label: String,
    pub path: PathBuf,
    pub header: Header,
    pub reader: ImageReader,
    /// Planes: 1 for a rate file, NINTS for a rateints file.
    pub planes: usize,
}

impl SlopeFile {
    /// Opens the SCI of a slope product. A file whose ramp fitting has not run (`S_RAMP` not
    /// COMPLETE), or whose SCI is a 4-D ramp, is rejected: the flat searches need slopes.
    pub fn open(label: &str, path: &Path) -> Result<SlopeFile, GeneratorError> {
        let header = read_primary_header(path).map_err(fits_error)?;
        let s_ramp = header
            .get_str("S_RAMP")
            .map_or_else(|| "NOT RUN".to_string(), |s| s.trim().to_ascii_uppercase());
        let reader = ImageReader::open(path, "SCI").map_err(fits_error)?;
        let shape = reader.shape().to_vec();
        if s_ramp != "COMPLETE" || !(2..=3).contains(&shape.len()) {
            return Err(GeneratorError::invalid_input(format!(
                "input {label} ({}) is not a slope product (S_RAMP is {s_ramp}, SCI has shape \
                 {shape:?}): bpm reads rate or rateints files; include the 'rate' step in the \
                 ssbsteps of the bpm section (default: dq_init, saturation, superbias, refpix, \
                 linearity, jump, rate)",
                path.display()
            )));
        }
        let planes = if shape.len() == 3 { shape[0] } else { 1 };
        Ok(SlopeFile {
            label: label.to_string(),
            path: path.to_path_buf(),
            header,
            planes,
            reader,
        })
    }

    pub fn ny(&self) -> usize {
        self.reader.ny()
    }

    pub fn nx(&self) -> usize {
        self.reader.nx()
    }
}

/// Fails, naming both files, when two inputs differ in image size or in INSTRUME, DETECTOR,
/// SUBARRAY, SUBSTRT1/2: their pixels would not be the same pixels. `what` lists (label, path,
/// header, ny, nx).
pub fn check_same_pixels(
    files: &[(&str, &Path, &Header, usize, usize)],
) -> Result<(), GeneratorError> {
    let Some(&(la, pa, ha, nya, nxa)) = files.first() else {
        return Ok(());
    };
    let key = |h: &Header, k: &str| h.get(k).map(|v| v.to_string().trim().to_ascii_uppercase());
    for &(lb, pb, hb, nyb, nxb) in &files[1..] {
        if (nya, nxa) != (nyb, nxb) {
            return Err(GeneratorError::invalid_input(format!(
                "inputs differ in image size: {la} ({}) has {nya}x{nxa} pixels (ny x nx) but {lb} \
                 ({}) has {nyb}x{nxb}; all darks and flats of one mask must come from the same \
                 detector and subarray; regroup the inputs",
                pa.display(),
                pb.display()
            )));
        }
        for k in SAME_KEYS {
            let (va, vb) = (key(ha, k), key(hb, k));
            if va != vb {
                let show = |v: Option<String>| v.unwrap_or_else(|| "(missing)".into());
                return Err(GeneratorError::invalid_input(format!(
                    "inputs differ in {k}: {la} ({}) has {} but {lb} ({}) has {}; all darks and \
                     flats of one mask must come from the same detector and subarray; regroup \
                     the inputs",
                    pa.display(),
                    show(va),
                    pb.display(),
                    show(vb)
                )));
            }
        }
    }
    Ok(())
}

/// The per-pixel clipped mean and std over every plane of every flat (UPSTREAM.md, 'Flats: mean and
/// scatter'), full window, streamed in row bands within `budget_bytes`. A file without a single
/// finite value is an error naming it (a NaN-filled input would silently weigh nothing).
pub fn flat_mean_stdev(
    files: &mut [SlopeFile],
    sigma: f64,
    budget_bytes: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<(Vec<f64>, Vec<f64>), GeneratorError> {
    let (ny, nx) = (files[0].ny(), files[0].nx());
    let nplanes: usize = files.iter().map(|f| f.planes).sum();
    // One f32 per plane and pixel of the band, plus the f64 outputs.
    let rows = rows_per_block(nx * (4 * nplanes + 16), budget_bytes, ny);
    let mut mean = vec![f64::NAN; ny * nx];
    let mut std = vec![f64::NAN; ny * nx];
    let mut finite = vec![0usize; files.len()];
    let mut band: Vec<Vec<f32>> = vec![Vec::new(); nplanes];
    for (y0, y1) in row_blocks(ny, rows) {
        let n = (y1 - y0) * nx;
        let mut k = 0;
        for (fi, f) in files.iter_mut().enumerate() {
            for p in 0..f.planes {
                band[k].resize(n, 0.0);
                f.reader
                    .read_rows::<f32>(p, y0, y1, &mut band[k])
                    .map_err(fits_error)?;
                finite[fi] += band[k].iter().filter(|v| v.is_finite()).count();
                k += 1;
            }
        }
        let planes: Vec<&[f32]> = band.iter().map(Vec::as_slice).collect();
        flats::mean_stdev_into(
            &planes,
            0,
            sigma,
            &mut mean[y0 * nx..y1 * nx],
            &mut std[y0 * nx..y1 * nx],
        );
        progress(y1, ny);
    }
    if let Some(i) = finite.iter().position(|&c| c == 0) {
        return Err(GeneratorError::invalid_input(format!(
            "flat {} ({}) has no finite value in SCI: it is NaN-filled or corrupt; remove it \
             from the group",
            files[i].label,
            files[i].path.display()
        )));
    }
    Ok((mean, std))
}

/// The raw signal of the dead flux check (UPSTREAM.md, 'Dead flux check'), full window: per file,
/// the mean over integrations of the mean of the **last** four groups (upstream's
/// `average_last4groups` averages the first four, against its name and documentation; a pixel that
/// saturates during the ramp shows its high signal at the end), then the mean over files, each
/// counted once. Files must be raw ramps (4-D SCI, ramp fitting not run) with at least 4 groups, of
/// the same pixels as the slopes (`geometry`).
pub fn flux_check_signal(
    paths: &[PathBuf],
    geometry: &Geometry,
    budget_bytes: usize,
) -> Result<Vec<f64>, GeneratorError> {
    const GROUPS: usize = 4;
    let mut ramps = Vec::with_capacity(paths.len());
    for p in paths {
        let h = read_primary_header(p).map_err(fits_error)?;
        if h.get_str("S_RAMP").map(|s| s.trim().to_ascii_uppercase()) == Some("COMPLETE".into()) {
            return Err(GeneratorError::invalid_input(format!(
                "dead flux check file {} is a slope product (S_RAMP COMPLETE); the check needs \
                 raw ramps (uncal files): leave dead_flux_check_files empty to use the flats' \
                 uncal files, or list uncal files",
                p.display()
            )));
        }
        let r = FitsRamp::open(p)?;
        let d = r.dims();
        if d.ngroups < GROUPS {
            return Err(GeneratorError::invalid_input(format!(
                "dead flux check file {} has {} group(s); the check averages the last {GROUPS} \
                 groups and needs at least {GROUPS}",
                p.display(),
                d.ngroups
            )));
        }
        if (d.ny, d.nx) != (geometry.ny(), geometry.nx())
            || r.key("DETECTOR").as_deref() != Some(geometry.detector.as_str())
        {
            return Err(GeneratorError::invalid_input(format!(
                "dead flux check file {} ({}x{} pixels, DETECTOR {}) does not cover the pixels \
                 of the flats ({}x{}, {}); use ramps of the same detector and subarray",
                p.display(),
                d.ny,
                d.nx,
                r.key("DETECTOR").unwrap_or_default(),
                geometry.ny(),
                geometry.nx(),
                geometry.detector
            )));
        }
        ramps.push(r);
    }
    if ramps.is_empty() {
        return Err(GeneratorError::invalid_input(
            "run_dead_flux_check is on but there are no ramps to check: give \
             dead_flux_check_files or flats with uncal files",
        ));
    }
    let (ny, nx) = (geometry.ny(), geometry.nx());
    let rows = rows_per_block(nx * 4 * 3, budget_bytes, ny);
    let mut signal = vec![0f64; ny * nx];
    let mut buf = Vec::new();
    for (y0, y1) in row_blocks(ny, rows) {
        let out = &mut signal[y0 * nx..y1 * nx];
        let mut per_file = vec![0f64; out.len()];
        for r in ramps.iter_mut() {
            let d = r.dims();
            per_file.fill(0.0);
            for i in 0..d.nints {
                for g in d.ngroups - GROUPS..d.ngroups {
                    buf.resize(out.len(), 0.0f32);
                    r.read_band(i, g, y0, y1, &mut buf)?;
                    for (a, &v) in per_file.iter_mut().zip(&buf) {
                        *a += f64::from(v);
                    }
                }
            }
            let n = (d.nints * GROUPS) as f64;
            for (o, a) in out.iter_mut().zip(&per_file) {
                *o += a / n;
            }
        }
        let nf = ramps.len() as f64;
        out.iter_mut().for_each(|o| *o /= nf);
    }
    Ok(signal)
}
