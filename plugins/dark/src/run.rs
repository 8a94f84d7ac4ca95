//! One dark job: open and check the inputs (SCI and GROUPDQ of each), stream the reduction,
//! write the DARK file (SCI streamed into the file, ERR and counts through scratch files) and,
//! if asked, the counts file.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::thread_pool;
use mkrefs_support::dq::dq_def_for;
use mkrefs_support::fits::{FitsErrorKind, FitsWriter, ImageReader, Pixel};
use mkrefs_support::generator::Report;
use mkrefs_support::geometry::Instrument;
use mkrefs_support::header::HeaderValue;
use mkrefs_support::job::{JobView, open_ramps};
use mkrefs_support::jobparams::report_ignored;
use mkrefs_support::ramps::{FitsRamp, RampSource, fits_error};
use mkrefs_support::reffile::RefMeta;

use crate::compute::{
    Band, DarkSource, FEW_VALUES, NO_VALUE, Options, OutputInts, RampDims, Summary, reduce_darks,
};
use crate::params::{IGNORED, Settings};

/// At least this many values per cell (per output integration): one value has no scatter.
pub const MIN_SAMPLES: usize = 2;

/// Header keywords that must agree between inputs besides those `open_ramps` checks: a dark is
/// per group, so the group timing must be the same.
pub const SAME_TIMING: &[&str] = &["READPATT", "NFRAMES", "GROUPGAP"];

/// A calibrated ramp: its SCI (through [`FitsRamp`]) and its GROUPDQ.
pub struct FitsDark {
    pub ramp: FitsRamp,
    groupdq: ImageReader,
}

impl FitsDark {
    /// Opens the GROUPDQ of an opened ramp; its absence is an error saying what input is needed.
    pub fn open(ramp: FitsRamp) -> Result<FitsDark, GeneratorError> {
        let path = ramp.path.clone();
        let groupdq = ImageReader::open(&path, "GROUPDQ").map_err(|e| match e.kind {
            FitsErrorKind::MissingHdu => GeneratorError::invalid_input(format!(
                "{}: no GROUPDQ extension; the dark needs ramps calibrated through the jump \
                 step (ssbsteps ending in jump), whose GROUPDQ carries the JUMP_DET and \
                 SATURATED flags",
                path.display()
            )),
            _ => fits_error(e),
        })?;
        let d = ramp.dims();
        if groupdq.shape() != [d.nints, d.ngroups, d.ny, d.nx] {
            return Err(GeneratorError::invalid_input(format!(
                "{}: GROUPDQ has shape {:?} but SCI has {:?}; the file is inconsistent",
                path.display(),
                groupdq.shape(),
                [d.nints, d.ngroups, d.ny, d.nx]
            )));
        }
        Ok(FitsDark { ramp, groupdq })
    }
}

impl DarkSource for FitsDark {
    fn name(&self) -> String {
        self.ramp.name()
    }
    fn dims(&self) -> RampDims {
        self.ramp.dims()
    }
    fn read_sci(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [f32],
    ) -> Result<(), GeneratorError> {
        self.ramp.read_band(int, group, y0, y1, out)
    }
    fn read_groupdq(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [u8],
    ) -> Result<(), GeneratorError> {
        let plane = int * self.ramp.dims().ngroups + group;
        self.groupdq
            .read_rows::<u8>(plane, y0, y1, out)
            .map_err(fits_error)
    }
}

/// Opens every input (SCI and GROUPDQ) and checks they can be stacked group by group.
pub fn open_darks(job: &JobView<'_>) -> Result<Vec<FitsDark>, GeneratorError> {
    let ramps = open_ramps(job)?;
    let first = &ramps[0];
    for r in &ramps[1..] {
        let (a, b) = (first.dims().ngroups, r.dims().ngroups);
        if a != b {
            return Err(GeneratorError::invalid_input(format!(
                "inputs differ in NGROUPS: {} has {a} groups but {} has {b}; a dark is made \
                 per group, so all inputs need the same number of groups",
                first.path.display(),
                r.path.display()
            )));
        }
        for key in SAME_TIMING {
            let (va, vb) = (first.key(key), r.key(key));
            if va != vb {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
                return Err(GeneratorError::invalid_input(format!(
                    "inputs differ in {key}: {} has {} but {} has {}; a dark is made per group, \
                     so all inputs need the same group timing",
                    first.path.display(),
                    show(&va),
                    r.path.display(),
                    show(&vb)
                )));
            }
        }
    }
    ramps.into_iter().map(FitsDark::open).collect()
}

/// How the output's integrations are formed: MIRI darks carry two (the first integration, and
/// the rest) when the inputs give each at least [`MIN_SAMPLES`] values; otherwise, and for NIR,
/// one. Fails when even the pooled integrations are too few.
pub fn output_ints(
    job: &JobView<'_>,
    instrument: Instrument,
    darks: &[FitsDark],
) -> Result<OutputInts, GeneratorError> {
    let nints: Vec<usize> = darks.iter().map(|d| d.dims().nints).collect();
    let total: usize = nints.iter().sum();
    if total < MIN_SAMPLES {
        let names: Vec<String> = darks
            .iter()
            .map(|d| d.ramp.path.display().to_string())
            .collect();
        return Err(GeneratorError::invalid_input(format!(
            "the inputs ({}) give {total} integration(s) in total; the dark needs at least \
             {MIN_SAMPLES} for a statistic with a scatter: give at least {MIN_SAMPLES} files, or \
             files with {MIN_SAMPLES} or more integrations",
            names.join(", ")
        )));
    }
    if instrument != Instrument::Miri {
        return Ok(OutputInts::Pooled);
    }
    let split = OutputInts::FirstAndRest.samples(&nints);
    if split.iter().all(|&n| n >= MIN_SAMPLES) {
        Ok(OutputInts::FirstAndRest)
    } else {
        job.warn(&format!(
            "MIRI: the inputs give {} first and {} later integration(s); at least {MIN_SAMPLES} \
             of each are needed for the two-integration MIRI dark, so one integration pooling \
             all {total} is written (it then applies to every integration)",
            split[0], split[1]
        ));
        Ok(OutputInts::Pooled)
    }
}

/// A pixel type that goes through a scratch file.
trait Spooled: Pixel {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! spooled {
    ($t:ty) => {
        impl Spooled for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn put(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_ne_bytes());
            }
            fn get(bytes: &[u8]) -> Self {
                <$t>::from_ne_bytes(bytes.try_into().expect("element size"))
            }
        }
    };
}
spooled!(f32);
spooled!(u16);

/// One output array parked in an unnamed scratch file (removed by the OS when closed): a FITS
/// writer fills one extension after the other, while each block yields a piece of SCI, ERR and
/// the counts. SCI goes straight into the file; ERR and the counts wait here, so memory stays
/// one block whatever the size of the cube (ngroups × 16 MiB per extension at full frame).
struct Spool {
    file: File,
    what: &'static str,
    bytes: Vec<u8>,
}

impl Spool {
    fn new(dir: &Path, what: &'static str) -> Result<Spool, GeneratorError> {
        let file = tempfile::tempfile_in(dir).map_err(|e| {
            GeneratorError::io(format!(
                "cannot create a scratch file for {what} in {}: {e}; check the directory is \
                 writable and the disk is not full",
                dir.display()
            ))
        })?;
        Ok(Spool {
            file,
            what,
            bytes: Vec::new(),
        })
    }

    fn io(&self, doing: &str, e: std::io::Error) -> GeneratorError {
        GeneratorError::io(format!(
            "{doing} the scratch file of {} failed: {e}",
            self.what
        ))
    }

    fn put<T: Spooled>(&mut self, first: usize, data: &[T]) -> Result<(), GeneratorError> {
        self.bytes.clear();
        for &v in data {
            v.put(&mut self.bytes);
        }
        self.file
            .write_all_at(&self.bytes, (first * T::SIZE) as u64)
            .map_err(|e| self.io("writing", e))
    }

    /// Copies the first `n` elements into the current image of `w`.
    fn copy_into<T: Spooled>(
        &mut self,
        w: &mut FitsWriter,
        n: usize,
    ) -> Result<(), GeneratorError> {
        const CHUNK: usize = 1 << 20;
        let mut values = Vec::with_capacity(CHUNK.min(n));
        let mut done = 0;
        while done < n {
            let m = CHUNK.min(n - done);
            self.bytes.resize(m * T::SIZE, 0);
            let r = self
                .file
                .read_exact_at(&mut self.bytes, (done * T::SIZE) as u64);
            r.map_err(|e| self.io("reading", e))?;
            values.clear();
            values.extend(self.bytes.chunks_exact(T::SIZE).map(T::get));
            w.write_pixels(done, &values).map_err(fits_error)?;
            done += m;
        }
        Ok(())
    }
}

/// The counts file beside `output`: `<stem>_counts.fits`.
pub fn counts_path(output: &Path) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dark".into());
    output.with_file_name(format!("{stem}_counts.fits"))
}

/// The directory for scratch files: the job's (created if needed), else the output's.
fn scratch_dir(job: &JobView<'_>, output: &Path) -> PathBuf {
    let dir = job.scratch_dir.clone();
    if !dir.as_os_str().is_empty() && std::fs::create_dir_all(&dir).is_ok() {
        return dir;
    }
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// EXP_TYPE of the output: the input's (the NIRCam selector matches it against the science
/// exposures), else what the detector's darks are called.
fn exp_type(header_value: Option<String>, instrument: Instrument, detector: &str) -> String {
    match header_value {
        Some(v) if !v.is_empty() => v,
        _ => match instrument {
            Instrument::Miri if detector.starts_with("MIRIFU") => "MIR_DARKMRS".into(),
            Instrument::Miri => "MIR_DARKIMG".into(),
            i => format!("{}_DARK", i.exp_type_prefix()),
        },
    }
}

/// Makes `job.output` from `job.inputs`.
pub fn run(job: &JobView<'_>) -> Result<Report, GeneratorError> {
    let s = Settings::from_job(job)?;
    report_ignored(job, IGNORED);
    let mut darks = open_darks(job)?;
    let instrument = instrument_of(&darks[0])?;
    let out_ints = output_ints(job, instrument, &darks)?;
    warn_without_jump_step(job, &darks);
    // Metadata first, so bad parameters fail before any work.
    let meta = metadata(&s, &darks, instrument)?;
    let samples: usize = darks.iter().map(|d| d.dims().nints).sum();
    let RampDims {
        ngroups, ny, nx, ..
    } = darks[0].dims();
    job.info(&format!(
        "dark: {} input(s), {samples} integration(s) of {ngroups} groups, {ny}x{nx} pixels; \
         clipped {} ({}), {} output integration(s)",
        darks.len(),
        s.statistic.name(),
        match s.clip() {
            Some((sigma, it)) => format!("sigma {sigma}, at most {it} iterations"),
            None => "no clipping".into(),
        },
        out_ints.count()
    ));

    let cube = cube_shape(instrument, out_ints, darks[0].dims());
    let scratch = scratch_dir(job, &job.output);
    let mut out = DarkFile::create(&job.output, &scratch, &meta, cube, s.counts_file)?;
    let summary = reduce_into(job, &s, out_ints, &mut darks, &mut out)?;
    job.info(&format!(
        "excluded {} group value(s) from the first JUMP_DET group on and {} more flagged \
         SATURATED or DO_NOT_USE",
        summary.excluded_jump, summary.excluded_flags
    ));
    let DarkFile {
        writer,
        err,
        counts,
        cube,
        last_group,
    } = out;
    let dq = finish_dark(writer, err, &cube, &summary)?;
    let unreliable = report_flags(job, &dq, s.min_good);

    let mut extra_outputs = Vec::new();
    if let Some(mut spool) = counts {
        let path = counts_path(&job.output);
        write_counts(&path, &meta, &cube, &mut spool)?;
        job.info(&format!("good-value counts written to {}", path.display()));
        extra_outputs.push(path);
    }
    Ok(Report {
        summary: format!(
            "median dark {:.2} DN in group {ngroups} ({} of {samples} integrations); \
             {unreliable} pixel(s) UNRELIABLE_DARK",
            median_finite(last_group),
            s.statistic.name(),
        ),
        extra_outputs,
    })
}

/// The instrument of the first input.
fn instrument_of(first: &FitsDark) -> Result<Instrument, GeneratorError> {
    let name = first.ramp.key("INSTRUME").unwrap_or_default();
    Instrument::from_header(&name).ok_or_else(|| {
        GeneratorError::invalid_input(format!(
            "{}: INSTRUME is '{name}', which has no instrument profile (README, Instrument \
             profiles)",
            first.ramp.path.display()
        ))
    })
}

/// Cosmic rays are excluded through the jump step's flags; an input without them is used, with
/// a warning.
fn warn_without_jump_step(job: &JobView<'_>, darks: &[FitsDark]) {
    for d in darks {
        if d.ramp.key("S_JUMP").as_deref() != Some("COMPLETE") {
            job.warn(&format!(
                "{} has not been through the jump step (S_JUMP is not COMPLETE): no cosmic ray \
                 is excluded from it; the dark expects ramps calibrated through jump",
                d.ramp.path.display()
            ));
        }
    }
}

/// The primary header of the output: the shared metadata, READPATT and EXP_TYPE, then the
/// exposure keywords of the first input, validated.
fn metadata(
    s: &Settings,
    darks: &[FitsDark],
    instrument: Instrument,
) -> Result<RefMeta, GeneratorError> {
    let first = &darks[0].ramp;
    let RampDims { ny, nx, .. } = first.dims();
    let datamodel = if instrument == Instrument::Miri {
        "DarkMIRIModel"
    } else {
        "DarkModel"
    };
    let mut meta = RefMeta::from_header("DARK", datamodel, &first.header, (ny, nx))
        .map_err(GeneratorError::invalid_input)?;
    let paths: Vec<&Path> = darks.iter().map(|d| d.ramp.path.as_path()).collect();
    s.meta.apply(&mut meta, "dark", &paths)?;
    meta.readpatt = Some(match &s.readpatt {
        Some(r) => r.to_ascii_uppercase(),
        None => first.key("READPATT").ok_or_else(|| {
            GeneratorError::invalid_input(format!(
                "{}: no READPATT keyword; give the readpatt parameter",
                first.path.display()
            ))
        })?,
    });
    meta.exp_type = Some(exp_type(first.key("EXP_TYPE"), instrument, &meta.detector));
    meta.extra.extend(exposure_keywords(first, instrument)?);
    meta.validate().map_err(GeneratorError::invalid_parameter)?;
    Ok(meta)
}

/// NOUTPUTS (NIR; NIRCam darks are selected by it), NGROUPS, NFRAMES, GROUPGAP and GAINFACT
/// (NIR) as the first input has them.
fn exposure_keywords(
    first: &FitsRamp,
    instrument: Instrument,
) -> Result<Vec<(String, HeaderValue, String)>, GeneratorError> {
    let header = &first.header;
    let int_key = |key: &str| header.get(key).and_then(HeaderValue::as_i64);
    let mut extra = Vec::new();
    if instrument.is_nir() {
        match int_key("NOUTPUTS") {
            Some(n) => extra.push((
                "NOUTPUTS".into(),
                n.into(),
                "Number of detector outputs used".into(),
            )),
            None if instrument == Instrument::NirCam => {
                return Err(GeneratorError::invalid_input(format!(
                    "{}: no integer NOUTPUTS keyword; NIRCam darks are selected by NOUTPUTS, \
                     so the inputs must carry it",
                    first.path.display()
                )));
            }
            None => {}
        }
    }
    extra.push((
        "NGROUPS".into(),
        (first.dims().ngroups as i64).into(),
        "Number of groups in the dark".into(),
    ));
    for (key, comment) in [
        ("NFRAMES", "Number of frames per group"),
        ("GROUPGAP", "Number of frames dropped between groups"),
    ] {
        if let Some(v) = int_key(key) {
            extra.push((key.into(), v.into(), comment.into()));
        }
    }
    if instrument.is_nir()
        && let Some(v) = header.get("GAINFACT").and_then(HeaderValue::as_f64)
    {
        extra.push(("GAINFACT".into(), v.into(), "Gain scale factor".into()));
    }
    Ok(extra)
}

/// SCI and ERR: `(ngroups, ny, nx)` for a NIR dark, `(nints, ngroups, ny, nx)` for MIRI.
fn cube_shape(instrument: Instrument, out_ints: OutputInts, dims: RampDims) -> Vec<usize> {
    let RampDims {
        ngroups, ny, nx, ..
    } = dims;
    let n_out = out_ints.count();
    if n_out == 1 && instrument != Instrument::Miri {
        vec![ngroups, ny, nx]
    } else {
        vec![n_out, ngroups, ny, nx]
    }
}

/// The DARK file while the reduction runs: SCI goes straight into the file, ERR and the counts
/// into scratch files; the last group of output integration 0 is kept for the summary.
struct DarkFile {
    writer: FitsWriter,
    err: Spool,
    counts: Option<Spool>,
    cube: Vec<usize>,
    last_group: Vec<f32>,
}

impl DarkFile {
    fn create(
        output: &Path,
        scratch: &Path,
        meta: &RefMeta,
        cube: Vec<usize>,
        counts: bool,
    ) -> Result<DarkFile, GeneratorError> {
        let err = Spool::new(scratch, "ERR")?;
        let counts = if counts {
            Some(Spool::new(scratch, "the counts")?)
        } else {
            None
        };
        let mut writer = FitsWriter::create(output).map_err(fits_error)?;
        meta.write_primary(&mut writer).map_err(fits_error)?;
        writer
            .create_image::<f32>("SCI", &cube)
            .map_err(fits_error)?;
        writer
            .set_key("BUNIT", &"DN".into(), "")
            .map_err(fits_error)?;
        let [.., ny, nx] = cube[..] else {
            unreachable!("a cube has at least 3 axes")
        };
        Ok(DarkFile {
            writer,
            err,
            counts,
            last_group: vec![0f32; ny * nx],
            cube,
        })
    }

    /// Stores one band of the reduction.
    fn put(&mut self, b: Band<'_>) -> Result<(), GeneratorError> {
        let [.., ngroups, ny, nx] = self.cube[..] else {
            unreachable!("a cube has at least 3 axes")
        };
        let at = ((b.out_int * ngroups + b.group) * ny + b.y0) * nx;
        self.writer.write_pixels(at, b.sci).map_err(fits_error)?;
        self.err.put(at, b.err)?;
        if let Some(c) = self.counts.as_mut() {
            c.put(at, b.count)?;
        }
        if b.out_int == 0 && b.group + 1 == ngroups {
            self.last_group[b.y0 * nx..b.y1 * nx].copy_from_slice(b.sci);
        }
        Ok(())
    }
}

/// Runs the reduction with the job's threads, every band into `out`; fails when an input gave
/// no finite value.
fn reduce_into(
    job: &JobView<'_>,
    s: &Settings,
    out_ints: OutputInts,
    darks: &mut [FitsDark],
    out: &mut DarkFile,
) -> Result<Summary, GeneratorError> {
    let opts = Options {
        statistic: s.statistic,
        err: s.err,
        clip: s.clip(),
        min_good: s.min_good,
        out_ints,
        budget_bytes: s.budget_bytes,
    };
    let pool = thread_pool(job.threads).map_err(GeneratorError::internal)?;
    let progress = |done: usize, total: usize| job.progress("dark", done as u64, total as u64);
    let summary = reduce_darks(darks, &opts, &pool, &mut |b| out.put(b), &progress)?;
    job.debug(&format!(
        "blocks of {} row(s) x {} group(s) within {} MiB",
        summary.plan.rows,
        summary.plan.groups,
        s.budget_bytes / (1024 * 1024)
    ));
    if !summary.inputs_without_finite.is_empty() {
        let names: Vec<String> = summary
            .inputs_without_finite
            .iter()
            .map(|&i| darks[i].ramp.path.display().to_string())
            .collect();
        return Err(GeneratorError::invalid_input(format!(
            "no finite SCI value in {}; the file is NaN-filled or corrupt; remove it from the \
             group",
            names.join(", ")
        )));
    }
    Ok(summary)
}

/// Appends ERR (from its scratch file), DQ and DQ_DEF and closes the file; returns the DQ.
fn finish_dark(
    mut w: FitsWriter,
    mut err: Spool,
    cube: &[usize],
    summary: &Summary,
) -> Result<Vec<u32>, GeneratorError> {
    w.create_image::<f32>("ERR", cube).map_err(fits_error)?;
    w.set_key("BUNIT", &"DN".into(), "").map_err(fits_error)?;
    err.copy_into::<f32>(&mut w, cube.iter().product())?;
    drop(err);
    let dq: Vec<u32> = summary.dq.concat();
    let [.., ny, nx] = cube[..] else {
        unreachable!("a cube has at least 3 axes")
    };
    let dq_shape: Vec<usize> = if cube.len() == 4 {
        vec![cube[0], 1, ny, nx]
    } else {
        vec![ny, nx]
    };
    w.write_image::<u32>("DQ", &dq_shape, &dq)
        .map_err(fits_error)?;
    w.write_dq_def(&dq_def_for(&["DO_NOT_USE", "UNRELIABLE_DARK"]))
        .map_err(fits_error)?;
    w.finish().map_err(fits_error)?;
    Ok(dq)
}

/// Logs the pixels flagged for missing or few values; returns how many are flagged.
fn report_flags(job: &JobView<'_>, dq: &[u32], min_good: usize) -> usize {
    let no_value = dq.iter().filter(|&&d| d == NO_VALUE).count();
    let few = dq.iter().filter(|&&d| d == FEW_VALUES).count();
    if no_value > 0 {
        job.warn(&format!(
            "{no_value} pixel(s) have a group with no usable value: SCI and ERR are 0 there, DQ \
             DO_NOT_USE + UNRELIABLE_DARK"
        ));
    }
    if few > 0 {
        job.info(&format!(
            "{few} pixel(s) have a group with fewer than {min_good} value(s) used: \
             UNRELIABLE_DARK"
        ));
    }
    no_value + few
}

/// The median of the finite values (for the summary line); NaN if there is none.
fn median_finite(v: Vec<f32>) -> f32 {
    let mut finite: Vec<f32> = v.into_iter().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return f32::NAN;
    }
    let mid = finite.len() / 2;
    *finite.select_nth_unstable_by(mid, f32::total_cmp).1
}

/// The counts file: an empty primary with the identifying keywords and a `COUNTS` u16 image
/// shaped like SCI (values used per pixel and group after exclusion and clipping).
fn write_counts(
    path: &Path,
    meta: &RefMeta,
    cube: &[usize],
    spool: &mut Spool,
) -> Result<(), GeneratorError> {
    let mut w = FitsWriter::create(path).map_err(fits_error)?;
    let s = |v: &str| HeaderValue::Str(v.to_string());
    let keys = [
        ("INSTRUME", s(&meta.instrument), "Instrument"),
        ("DETECTOR", s(&meta.detector), "Detector"),
        ("SUBARRAY", s(&meta.subarray), "Subarray"),
        (
            "CONTENT",
            s("values used per pixel and group"),
            "after exclusion and clipping",
        ),
    ];
    for (k, v, c) in &keys {
        w.set_primary_key(k, v, c).map_err(fits_error)?;
    }
    for h in &meta.history {
        w.add_history(h).map_err(fits_error)?;
    }
    w.create_image::<u16>("COUNTS", cube).map_err(fits_error)?;
    spool.copy_into::<u16>(&mut w, cube.iter().product())?;
    w.finish().map_err(fits_error)?;
    Ok(())
}
