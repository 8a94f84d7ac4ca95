//! Writing exposures: the uncal ramp and the calibrated products, from one realisation.
//!
//! One pass over the exposure generates bands of rows in parallel (each row from its own random
//! streams, see [`crate::ramps`]) and writes them in row order, so memory is one band (at most
//! [`BAND_BUDGET_BYTES`]) whatever the frame size. The uncal SCI goes straight into its FITS
//! file. A FITS writer fills one extension after the other, while a band yields pieces of every
//! extension of every product; those pieces go to scratch files (native-endian, in FITS pixel
//! order, beside the outputs) that are copied into the products at the end and then removed.
//!
//! Product names follow jwst_reffiles (`plugins/support/UPSTREAM.md`, "Calibration steps"):
//! `<stem>_<steps applied, in pipeline order>`, with `_rate` spelt `_0_ramp_fit` as upstream
//! does, `_1_ramp_fit` for the per-integration rates and `_fitopt` for the optional fit output.
//! For NIR detectors:
//!
//! - jump: `<stem>_dq_init_saturation_superbias_refpix_linearity_jump.fits`
//! - rate: `<stem>_dq_init_saturation_superbias_refpix_linearity_jump_0_ramp_fit.fits`
//! - rateints: `..._jump_1_ramp_fit.fits`; fitopt: `..._jump_fitopt.fits`
//!
//! MIRI has no superbias step, and its refpix step runs after linearity: `<stem>_dq_init_
//! saturation_linearity_refpix_jump...`; its products keep the bias.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::config::{ExposureInfo, Kind, Resolved, SimConfig};
use crate::error::SimError;
use crate::ramps::{ExposureCtx, RowProducts, RowRamp, Slope, calibrate_row, realise_row};
use crate::truth::Truth;
use mkrefs_support::budget::{row_blocks, rows_per_block};
use mkrefs_support::fits::{FitsWriter, Pixel};
use mkrefs_support::geometry::Instrument;
use mkrefs_support::header::HeaderValue;
use mkrefs_support::pipeline_steps::Step;

/// Memory for one band of rows (raw ramps, calibrated ramps and fits of every row in it).
pub const BAND_BUDGET_BYTES: usize = 64 * 1024 * 1024;

/// The files the simulator writes for one exposure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Product {
    /// Level-1b ramp: uint16 SCI (nints, ngroups, ny, nx), PIXELDQ and GROUPDQ of zeros.
    Uncal,
    /// After the jump step (RampModel): SCI f32 4-D, PIXELDQ u32 2-D, GROUPDQ u8 4-D.
    Jump,
    /// Ramp fit over all integrations (ImageModel): SCI, ERR, DQ, VAR_POISSON, VAR_RNOISE, 2-D.
    Rate,
    /// Ramp fit per integration (CubeModel): the same extensions, (nints, ny, nx).
    Rateints,
    /// The optional ramp-fit output (RampFitOutputModel): SLOPE, SIGSLOPE, VAR_POISSON,
    /// VAR_RNOISE, YINT, SIGYINT, WEIGHTS (nints, nsegments, ny, nx); PEDESTAL (nints, ny, nx);
    /// CRMAG (nints, max jumps per ramp, ny, nx). nsegments is the largest number of fitted runs
    /// of any pixel and integration; unused entries are 0, as in jwst.
    Fitopt,
}

/// Which calibrated products to write beside the uncal file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProductSet {
    pub jump: bool,
    pub rate: bool,
    pub rateints: bool,
    pub fitopt: bool,
}

impl ProductSet {
    pub const NONE: ProductSet = ProductSet {
        jump: false,
        rate: false,
        rateints: false,
        fitopt: false,
    };
    pub const ALL: ProductSet = ProductSet {
        jump: true,
        rate: true,
        rateints: true,
        fitopt: true,
    };

    fn products(self) -> Vec<Product> {
        [
            (self.jump, Product::Jump),
            (self.rate, Product::Rate),
            (self.rateints, Product::Rateints),
            (self.fitopt, Product::Fitopt),
        ]
        .into_iter()
        .filter_map(|(on, p)| on.then_some(p))
        .collect()
    }
}

/// Whether the simulated products have had `step` applied. What they stand for: the dark
/// reference file's ssbsteps (dq_init, saturation, superbias, refpix, linearity, jump) plus ramp
/// fitting. group_scale (NFRAMES is a power of 2 here), ipc, persistence, dark_current and the
/// MIRI-only frame steps are recorded as SKIPPED.
fn applied(step: Step, instrument: Instrument) -> bool {
    match step {
        Step::DqInit
        | Step::Saturation
        | Step::Refpix
        | Step::Linearity
        | Step::Jump
        | Step::Rate => true,
        Step::Superbias => instrument.is_nir(),
        _ => false,
    }
}

/// The S_* keys of a product whose last step is `last` (jump or rate), for every step of the
/// instrument's pipeline up to it.
fn step_keys(instrument: Instrument, last: Step) -> Vec<(&'static str, &'static str)> {
    let steps = instrument.steps();
    let end = instrument.position(last).map_or(0, |p| p + 1);
    steps[..end]
        .iter()
        .map(|&step| {
            let state = if applied(step, instrument) {
                "COMPLETE"
            } else {
                "SKIPPED"
            };
            (step.keyword(), state)
        })
        .collect()
}

fn name_for(r: &Resolved, info: &ExposureInfo, product: Product) -> String {
    let inst = r.det.instrument;
    let steps: Vec<&str> = inst
        .steps()
        .iter()
        .filter(|&&s| s != Step::Rate && applied(s, inst))
        .map(|s| s.name())
        .collect();
    let base = format!("{}_{}", info.stem, steps.join("_"));
    match product {
        Product::Uncal => info.uncal_name(),
        Product::Jump => format!("{base}.fits"),
        Product::Rate => format!("{base}_0_ramp_fit.fits"),
        Product::Rateints => format!("{base}_1_ramp_fit.fits"),
        Product::Fitopt => format!("{base}_fitopt.fits"),
    }
}

/// The file name of `product` of exposure `index` of `kind` (see the module documentation).
pub fn product_name(
    cfg: &SimConfig,
    kind: Kind,
    index: usize,
    product: Product,
) -> Result<String, SimError> {
    let r = cfg.resolve()?;
    Ok(name_for(&r, &r.exposure(cfg, kind, index), product))
}

/// Writes the uncal ramp of exposure `index` (0-based) of `kind` to `path`.
pub fn write_uncal(
    path: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
) -> Result<ExposureInfo, SimError> {
    write_exposure(
        cfg,
        truth,
        kind,
        index,
        Layout::Full,
        &[(Product::Uncal, path.to_path_buf())],
    )
}

/// Writes the jump-step product of the exposure to `path`.
pub fn write_jump(
    path: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
) -> Result<ExposureInfo, SimError> {
    write_exposure(
        cfg,
        truth,
        kind,
        index,
        Layout::Full,
        &[(Product::Jump, path.to_path_buf())],
    )
}

/// Writes the rate product (all integrations combined) of the exposure to `path`.
pub fn write_rate(
    path: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
) -> Result<ExposureInfo, SimError> {
    write_exposure(
        cfg,
        truth,
        kind,
        index,
        Layout::Full,
        &[(Product::Rate, path.to_path_buf())],
    )
}

/// Writes the per-integration rate product of the exposure to `path`.
pub fn write_rateints(
    path: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
) -> Result<ExposureInfo, SimError> {
    write_exposure(
        cfg,
        truth,
        kind,
        index,
        Layout::Full,
        &[(Product::Rateints, path.to_path_buf())],
    )
}

/// Writes the optional ramp-fit output of the exposure to `path`.
pub fn write_fitopt(
    path: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
) -> Result<ExposureInfo, SimError> {
    write_exposure(
        cfg,
        truth,
        kind,
        index,
        Layout::Full,
        &[(Product::Fitopt, path.to_path_buf())],
    )
}

/// Writes the uncal file and the products in `set` of one exposure into `dir` under their
/// standard names, from a single pass over the realisation. Returns what was written.
pub fn write_products(
    dir: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
    set: ProductSet,
) -> Result<(ExposureInfo, Vec<(Product, PathBuf)>), SimError> {
    write_products_with(dir, cfg, truth, kind, index, set, Layout::Full)
}

/// [`write_products`] with complete or [`Layout::Lean`] jump and fitopt products.
pub fn write_products_with(
    dir: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
    set: ProductSet,
    layout: Layout,
) -> Result<(ExposureInfo, Vec<(Product, PathBuf)>), SimError> {
    let r = cfg.resolve()?;
    let info = r.exposure(cfg, kind, index);
    let mut targets = vec![(Product::Uncal, dir.join(info.uncal_name()))];
    for p in set.products() {
        targets.push((p, dir.join(name_for(&r, &info, p))));
    }
    write_exposure(cfg, truth, kind, index, layout, &targets)?;
    Ok((info, targets))
}

/// How complete the calibrated products are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Complete JWST products (every extension the datamodel has).
    #[default]
    Full,
    /// The fitopt product with only what the bad-pixel search reads, PEDESTAL (no per-segment
    /// or CRMAG arrays): a full-frame fitopt is over a gigabyte. Jump, rate and rateints are
    /// complete (mkrefs refuses a jump product without its SCI ramp). Such fitopt files are not
    /// valid datamodels.
    Lean,
}

/// Writes the given `products` of one exposure into `dir` under their standard names (the uncal
/// file only if [`Product::Uncal`] is listed), from a single pass over the realisation, with
/// the jump and fitopt products complete or [`Layout::Lean`].
pub fn write_selected(
    dir: &Path,
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
    products: &[Product],
    layout: Layout,
) -> Result<(ExposureInfo, Vec<(Product, PathBuf)>), SimError> {
    let r = cfg.resolve()?;
    let info = r.exposure(cfg, kind, index);
    let targets: Vec<(Product, PathBuf)> = products
        .iter()
        .map(|&p| (p, dir.join(name_for(&r, &info, p))))
        .collect();
    write_exposure(cfg, truth, kind, index, layout, &targets)?;
    Ok((info, targets))
}

/// Plausible FILTER and PUPIL values of calibration exposures.
fn optical_keys(r: &Resolved, kind: Kind) -> Vec<(&'static str, &'static str)> {
    match r.det.instrument {
        Instrument::NirCam if r.det.name.ends_with("LONG") => {
            vec![("FILTER", "F444W"), ("PUPIL", "CLEAR")]
        }
        Instrument::NirCam => vec![("FILTER", "F150W"), ("PUPIL", "CLEAR")],
        Instrument::NirIss => vec![("FILTER", "CLEAR"), ("PUPIL", "CLEARP")],
        Instrument::NirSpec => match kind {
            Kind::Dark => vec![("FILTER", "OPAQUE"), ("GRATING", "MIRROR")],
            Kind::Flat => vec![("FILTER", "CLEAR"), ("GRATING", "MIRROR")],
        },
        Instrument::Miri => match kind {
            Kind::Dark => vec![("FILTER", "OPAQUE")],
            Kind::Flat => vec![("FILTER", "F560W")],
        },
        // IRIS's filters as its datamodel schemas list them.
        Instrument::Iris => vec![("FILTER", "K")],
        _ => vec![],
    }
}

/// The primary keys of the uncal file, as the level-1b files carry them.
///
/// DATE-OBS/TIME-OBS and DATE-END/TIME-END are written as separate date and time, the form the
/// mkrefs configuration reads (`dateobs_fitskey: DATE-END`, `timeobs_fitskey: TIME-END`);
/// EXPSTART/EXPMID/EXPEND are MJDs (UTC). MJD-OBS and GAINFACT are not written: the level-1b
/// files do not have them. DATE is the end of the exposure, so that files are reproducible byte
/// for byte.
fn primary_keys(
    cfg: &SimConfig,
    r: &Resolved,
    info: &ExposureInfo,
) -> Vec<(&'static str, HeaderValue, &'static str)> {
    let (date_obs, time_obs) = info.start_date_time();
    let (date_end, time_end) = info.end_date_time();
    let int = |v: usize| HeaderValue::Int(v as i64);
    let s = |v: &str| HeaderValue::Str(v.to_string());
    let mut keys = vec![
        ("DATE", s(&format!("{date_end}T{time_end}")), "file date"),
        ("ORIGIN", s("mkrefs simulator"), "simulated data"),
        ("TELESCOP", s(r.det.instrument.telescope()), ""),
        ("INSTRUME", s(r.det.instrument.name()), ""),
        ("DETECTOR", s(r.det.name), ""),
        ("PROGRAM", s(&format!("{:05}", cfg.program)), ""),
        ("OBSERVTN", s("001"), ""),
        (
            "VISIT",
            s(match info.kind {
                Kind::Dark => "001",
                Kind::Flat => "002",
            }),
            "",
        ),
        ("EXPOSURE", s(&format!("{:05}", info.index + 1)), ""),
        (
            "EXP_TYPE",
            s(&info.exp_type),
            "type of data in the exposure",
        ),
        ("READPATT", s(&cfg.readpatt), "readout pattern"),
        ("NINTS", int(cfg.nints), "number of integrations"),
        ("NGROUPS", int(cfg.ngroups), "groups per integration"),
        ("NFRAMES", int(cfg.nframes), "frames per group"),
        (
            "GROUPGAP",
            int(cfg.groupgap),
            "frames dropped between groups",
        ),
        ("NRSTSTRT", int(1), "resets at the start of the exposure"),
        ("TFRAME", HeaderValue::Float(r.tframe), "[s] frame time"),
        (
            "TGROUP",
            HeaderValue::Float(r.tgroup(cfg)),
            "[s] group time",
        ),
        ("DATE-OBS", s(&date_obs), "UTC date of the start"),
        ("TIME-OBS", s(&time_obs), "UTC time of the start"),
        ("DATE-END", s(&date_end), "UTC date of the end"),
        ("TIME-END", s(&time_end), "UTC time of the end"),
        (
            "EXPSTART",
            HeaderValue::Float(info.start_mjd),
            "[MJD] exposure start",
        ),
        (
            "EXPMID",
            HeaderValue::Float((info.start_mjd + info.end_mjd) / 2.0),
            "[MJD] exposure middle",
        ),
        (
            "EXPEND",
            HeaderValue::Float(info.end_mjd),
            "[MJD] exposure end",
        ),
        ("SUBARRAY", s(&r.sub.name), "subarray used"),
        (
            "SUBSTRT1",
            int(r.sub.xstart),
            "starting pixel in axis 1 direction",
        ),
        (
            "SUBSTRT2",
            int(r.sub.ystart),
            "starting pixel in axis 2 direction",
        ),
        (
            "SUBSIZE1",
            int(r.sub.nx),
            "number of pixels in axis 1 direction",
        ),
        (
            "SUBSIZE2",
            int(r.sub.ny),
            "number of pixels in axis 2 direction",
        ),
        (
            "FASTAXIS",
            HeaderValue::Int(r.det.fastaxis.into()),
            "fast readout axis",
        ),
        (
            "SLOWAXIS",
            HeaderValue::Int(r.det.slowaxis.into()),
            "slow readout axis",
        ),
        (
            "NOUTPUTS",
            HeaderValue::Int(r.noutputs()),
            "number of outputs used",
        ),
        (
            "SIMSEED",
            HeaderValue::Int(cfg.seed as i64),
            "mkrefs simulator seed",
        ),
    ];
    for (k, v) in optical_keys(r, info.kind) {
        keys.push((k, s(v), ""));
    }
    keys
}

/// What one pass writes: the uncal writer and the product scratch files.
struct Sinks {
    uncal: Option<FitsWriter>,
    scratch: Option<Scratch>,
}

/// Writes the requested files of one exposure in one pass over the realisation.
fn write_exposure(
    cfg: &SimConfig,
    truth: &Truth,
    kind: Kind,
    index: usize,
    layout: Layout,
    targets: &[(Product, PathBuf)],
) -> Result<ExposureInfo, SimError> {
    let r = cfg.resolve()?;
    if (truth.ny, truth.nx) != (r.ny(), r.nx()) {
        return Err(SimError::Config(format!(
            "the truth is {}x{} but the config describes a {}x{} frame; generate the truth from \
             the same config",
            truth.ny,
            truth.nx,
            r.ny(),
            r.nx()
        )));
    }
    let info = r.exposure(cfg, kind, index);
    let keys = primary_keys(cfg, &r, &info);
    let ctx = ExposureCtx::new(cfg, &r, truth, kind, index);
    let (ny, nx, nints, ng) = (r.ny(), r.nx(), cfg.nints, cfg.ngroups);

    let uncal_path = targets.iter().find(|t| t.0 == Product::Uncal).map(|t| &t.1);
    let products: Vec<&(Product, PathBuf)> =
        targets.iter().filter(|t| t.0 != Product::Uncal).collect();
    let mut sinks = Sinks {
        uncal: None,
        scratch: None,
    };
    if let Some(path) = uncal_path {
        let mut w = FitsWriter::create(path)?;
        write_primary(&mut w, &keys, path, "Level1bModel", &[])?;
        w.create_image::<u16>("SCI", &[nints, ng, ny, nx])?;
        w.set_key("BUNIT", &"DN".into(), "")?;
        sinks.uncal = Some(w);
    }
    if let Some(first) = products.first() {
        let wants = ProductSet {
            jump: products.iter().any(|p| p.0 == Product::Jump),
            rate: products.iter().any(|p| p.0 == Product::Rate),
            rateints: products.iter().any(|p| p.0 == Product::Rateints),
            fitopt: products.iter().any(|p| p.0 == Product::Fitopt),
        };
        sinks.scratch = Some(Scratch::new(&first.1, (nints, ng, ny, nx), wants, layout)?);
    }
    let calibrate = sinks.scratch.is_some();

    // Raw u16 and f32 SCI, u8 GROUPDQ and the fits, twice over for the band being written.
    let bytes_per_row = 2 * nints * ng * nx * (2 + 2 + 4 + 1) + 64 * nints * nx;
    let rows = rows_per_block(bytes_per_row, BAND_BUDGET_BYTES, ny);
    for (y0, y1) in row_blocks(ny, rows) {
        let band: Vec<(RowRamp, Option<RowProducts>)> = (y0..y1)
            .into_par_iter()
            .map(|y| {
                let ramp = realise_row(&ctx, y);
                let prods = calibrate.then(|| calibrate_row(&ctx, y, &ramp));
                (ramp, prods)
            })
            .collect();
        if let Some(w) = sinks.uncal.as_mut() {
            let mut buf = Vec::with_capacity((y1 - y0) * nx);
            for plane in 0..nints * ng {
                buf.clear();
                for (ramp, _) in &band {
                    buf.extend_from_slice(&ramp.raw[plane * nx..(plane + 1) * nx]);
                }
                w.write_pixels((plane * ny + y0) * nx, &buf)?;
            }
        }
        if let Some(s) = sinks.scratch.as_mut() {
            let rows: Vec<&RowProducts> = band.iter().filter_map(|b| b.1.as_ref()).collect();
            s.put_band(y0, &rows)?;
        }
    }

    if let Some(mut w) = sinks.uncal.take() {
        w.write_image("PIXELDQ", &[ny, nx], &vec![0u32; ny * nx])?;
        w.create_image::<u8>("GROUPDQ", &[nints, ng, ny, nx])?;
        let zeros = vec![0u8; ny * nx];
        for plane in 0..nints * ng {
            w.write_pixels(plane * ny * nx, &zeros)?;
        }
        // As in real uncal files; strun cannot read an input without it.
        w.write_asdf_extension()?;
        w.finish()?;
    }
    if let Some(mut scratch) = sinks.scratch.take() {
        for (product, path) in products {
            scratch.write_product(*product, path, &r, &keys)?;
        }
    }
    Ok(info)
}

/// The primary header of a simulated file.
fn write_primary(
    w: &mut FitsWriter,
    keys: &[(&str, HeaderValue, &str)],
    path: &Path,
    datamodel: &str,
    steps: &[(&str, &str)],
) -> Result<(), SimError> {
    let filename = path
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    w.set_primary_key("FILENAME", &filename.into(), "name of the file")?;
    w.set_primary_key("DATAMODL", &datamodel.into(), "type of data model")?;
    for (k, v, c) in keys {
        w.set_primary_key(k, v, c)?;
    }
    for (k, state) in steps {
        w.set_primary_key(k, &(*state).into(), "")?;
    }
    w.add_history(
        "Simulated by the mkrefs simulator (mkrefs_sim); the truth it used is in \
         truth.fits.",
    )?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scratch files
// ---------------------------------------------------------------------------------------------

/// A pixel type that goes through a scratch file.
trait Raw: Pixel {
    const SIZE: usize;
    fn put(self, out: &mut Vec<u8>);
    fn get(bytes: &[u8]) -> Self;
}

macro_rules! raw {
    ($t:ty) => {
        impl Raw for $t {
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
raw!(f32);
raw!(u8);
raw!(u32);

/// One array in a scratch file, in C order; parts never written read back as zeros.
struct Spill {
    file: File,
    path: PathBuf,
}

impl Spill {
    fn create(path: PathBuf) -> Result<Spill, SimError> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| SimError::Io {
                path: path.clone(),
                source,
            })?;
        Ok(Spill { file, path })
    }

    fn put<T: Raw>(&self, first: usize, data: &[T]) -> Result<(), SimError> {
        let mut bytes = Vec::with_capacity(data.len() * T::SIZE);
        for &v in data {
            v.put(&mut bytes);
        }
        self.file
            .write_all_at(&bytes, (first * T::SIZE) as u64)
            .map_err(|source| SimError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Copies elements `first..first + n` into the current image of `w` at `dst`.
    fn copy<T: Raw>(
        &self,
        w: &mut FitsWriter,
        first: usize,
        n: usize,
        dst: usize,
    ) -> Result<(), SimError> {
        const CHUNK: usize = 1 << 20;
        let len = self
            .file
            .metadata()
            .map_err(|source| SimError::Io {
                path: self.path.clone(),
                source,
            })?
            .len();
        let mut bytes = vec![0u8; CHUNK.min(n) * T::SIZE];
        let mut values = Vec::with_capacity(CHUNK.min(n));
        let mut done = 0;
        while done < n {
            let m = CHUNK.min(n - done);
            let buf = &mut bytes[..m * T::SIZE];
            buf.fill(0);
            let at = ((first + done) * T::SIZE) as u64;
            // Only what was written exists; past the end the array is zero.
            let avail = len.saturating_sub(at).min(buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut buf[..avail], at)
                .map_err(|source| SimError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            values.clear();
            values.extend(buf.chunks_exact(T::SIZE).map(T::get));
            w.write_pixels(dst + done, &values)?;
            done += m;
        }
        Ok(())
    }
}

/// Names of the per-segment fitopt arrays, in file order.
const SEGMENT_EXTS: [&str; 7] = [
    "SLOPE",
    "SIGSLOPE",
    "VAR_POISSON",
    "VAR_RNOISE",
    "YINT",
    "SIGYINT",
    "WEIGHTS",
];

/// The scratch directory of one exposure and its arrays, removed when dropped.
struct Scratch {
    dir: PathBuf,
    shape: (usize, usize, usize, usize),
    /// Which products the arrays are for; the others are not written.
    wants: ProductSet,
    layout: Layout,
    spills: BTreeMap<(String, usize), Spill>,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.spills.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Scratch {
    fn new(
        beside: &Path,
        shape: (usize, usize, usize, usize),
        wants: ProductSet,
        layout: Layout,
    ) -> Result<Scratch, SimError> {
        let parent = match beside.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = beside
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let dir = parent.join(format!(
            ".{name}.scratch-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).map_err(|source| SimError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(Scratch {
            dir,
            shape,
            wants,
            layout,
            spills: BTreeMap::new(),
        })
    }

    /// The array `name` (plane group `k`, e.g. the segment number), created on first use.
    fn spill(&mut self, name: &str, k: usize) -> Result<&Spill, SimError> {
        let key = (name.to_string(), k);
        if !self.spills.contains_key(&key) {
            let s = Spill::create(self.dir.join(format!("{name}-{k}")))?;
            self.spills.insert(key.clone(), s);
        }
        Ok(&self.spills[&key])
    }

    /// The number of plane groups of `name` written (0 if none).
    fn groups(&self, name: &str) -> usize {
        self.spills
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, k)| k + 1)
            .max()
            .unwrap_or(0)
    }

    /// Writes `planes` planes of rows `y0..` taken from each row by `get(row, plane)`.
    fn put_planes<T: Raw>(
        &mut self,
        name: &str,
        k: usize,
        y0: usize,
        rows: &[&RowProducts],
        planes: usize,
        get: impl Fn(&RowProducts, usize) -> Vec<T>,
    ) -> Result<(), SimError> {
        let (_, _, ny, nx) = self.shape;
        let spill = self.spill(name, k)?;
        let mut buf = Vec::with_capacity(rows.len() * nx);
        for p in 0..planes {
            buf.clear();
            for row in rows {
                buf.extend(get(row, p));
            }
            spill.put((p * ny + y0) * nx, &buf)?;
        }
        Ok(())
    }

    fn put_band(&mut self, y0: usize, rows: &[&RowProducts]) -> Result<(), SimError> {
        let (nints, ng, _, nx) = self.shape;
        let plane = |v: &[f32], p: usize| v[p * nx..(p + 1) * nx].to_vec();
        let wants = self.wants;
        let lean = self.layout == Layout::Lean;
        if wants.jump {
            self.put_planes("SCI4", 0, y0, rows, nints * ng, |r, p| plane(&r.sci, p))?;
        }
        if wants.jump {
            self.put_planes("GROUPDQ", 0, y0, rows, nints * ng, |r, p| {
                r.groupdq[p * nx..(p + 1) * nx].to_vec()
            })?;
            self.put_planes("PIXELDQ", 0, y0, rows, 1, |r, _| r.pixeldq.clone())?;
        }
        type Field = fn(&Slope) -> f32;
        let fields: [(&str, Field); 4] = [
            ("SCI", |s| s.slope),
            ("ERR", |s| s.err),
            ("VAR_POISSON", |s| s.var_poisson),
            ("VAR_RNOISE", |s| s.var_rnoise),
        ];
        if wants.rateints {
            for (name, f) in fields {
                self.put_planes(&format!("INTS_{name}"), 0, y0, rows, nints, |r, p| {
                    r.ints[p * nx..(p + 1) * nx].iter().map(f).collect()
                })?;
            }
            self.put_planes("INTS_DQ", 0, y0, rows, nints, |r, p| {
                r.ints[p * nx..(p + 1) * nx].iter().map(|s| s.dq).collect()
            })?;
        }
        if wants.rate {
            for (name, f) in fields {
                self.put_planes(&format!("RATE_{name}"), 0, y0, rows, 1, |r, _| {
                    r.rate.iter().map(f).collect()
                })?;
            }
            self.put_planes("RATE_DQ", 0, y0, rows, 1, |r, _| {
                r.rate.iter().map(|s| s.dq).collect()
            })?;
        }
        if !wants.fitopt {
            return Ok(());
        }
        self.put_planes("PEDESTAL", 0, y0, rows, nints, |r, p| plane(&r.pedestal, p))?;
        if lean {
            return Ok(());
        }

        // Per-segment and per-jump arrays: dense planes per band, one array per segment/jump.
        let nseg = rows
            .iter()
            .flat_map(|r| r.segments.iter().map(|s| s.n + 1))
            .max()
            .unwrap_or(0);
        let ny = self.shape.2;
        let band = rows.len() * nx;
        for k in 0..nseg {
            // One pass over the segments fills the planes of all seven arrays.
            let mut bufs = vec![vec![0f32; nints * band]; SEGMENT_EXTS.len()];
            for (j, r) in rows.iter().enumerate() {
                for s in r.segments.iter().filter(|s| s.n == k) {
                    let at = s.int * band + j * nx + s.x;
                    let values = [
                        s.slope,
                        s.sigslope,
                        s.var_poisson,
                        s.var_rnoise,
                        s.yint,
                        s.sigyint,
                        s.weight,
                    ];
                    for (buf, v) in bufs.iter_mut().zip(values) {
                        buf[at] = v as f32;
                    }
                }
            }
            for (name, buf) in SEGMENT_EXTS.iter().zip(&bufs) {
                let spill = self.spill(name, k)?;
                for p in 0..nints {
                    spill.put((p * ny + y0) * nx, &buf[p * band..(p + 1) * band])?;
                }
            }
        }
        // The k-th jump of each pixel and integration, in group order.
        let crmag: Vec<Vec<(usize, usize, usize, f32)>> = rows
            .iter()
            .map(|r| {
                let mut out = Vec::with_capacity(r.events.len());
                let mut last = (usize::MAX, usize::MAX);
                let mut k = 0;
                for ev in &r.events {
                    k = if (ev.int, ev.x) == last { k + 1 } else { 0 };
                    last = (ev.int, ev.x);
                    out.push((ev.int, ev.x, k, ev.amp));
                }
                out
            })
            .collect();
        let ncr = crmag
            .iter()
            .flat_map(|v| v.iter().map(|e| e.2 + 1))
            .max()
            .unwrap_or(0);
        for k in 0..ncr {
            let spill = self.spill("CRMAG", k)?;
            for p in 0..nints {
                let mut buf = vec![0f32; rows.len() * nx];
                for (j, evs) in crmag.iter().enumerate() {
                    for &(int, x, kk, amp) in evs {
                        if int == p && kk == k {
                            buf[j * nx + x] = amp;
                        }
                    }
                }
                spill.put((p * ny + y0) * nx, &buf)?;
            }
        }
        Ok(())
    }

    /// Copies array `name` (all its planes) into a new image extension `extname`.
    fn image<T: Raw>(
        &mut self,
        w: &mut FitsWriter,
        name: &str,
        extname: &str,
        shape: &[usize],
        bunit: Option<&str>,
    ) -> Result<(), SimError> {
        let n: usize = shape.iter().product();
        w.create_image::<T>(extname, shape)?;
        if let Some(u) = bunit {
            w.set_key("BUNIT", &u.into(), "")?;
        }
        self.spill(name, 0)?.copy::<T>(w, 0, n, 0)
    }

    /// Interleaves the per-segment (or per-jump) arrays of `name` into a (nints, k, ny, nx)
    /// extension, with at least one plane per integration.
    fn stacked(&mut self, w: &mut FitsWriter, name: &str, extname: &str) -> Result<(), SimError> {
        let (nints, _, ny, nx) = self.shape;
        let k = self.groups(name).max(1);
        let plane = ny * nx;
        w.create_image::<f32>(extname, &[nints, k, ny, nx])?;
        for i in 0..nints {
            for j in 0..k {
                self.spill(name, j)?
                    .copy::<f32>(w, i * plane, plane, (i * k + j) * plane)?;
            }
        }
        Ok(())
    }

    /// Writes one product from the scratch arrays.
    fn write_product(
        &mut self,
        product: Product,
        path: &Path,
        r: &Resolved,
        keys: &[(&str, HeaderValue, &str)],
    ) -> Result<(), SimError> {
        let (nints, ng, ny, nx) = self.shape;
        let (model, last) = match product {
            Product::Uncal => unreachable!("the uncal file is written directly"),
            Product::Jump => ("RampModel", Step::Jump),
            Product::Rate => ("ImageModel", Step::Rate),
            Product::Rateints => ("CubeModel", Step::Rate),
            // jwst writes the optional output with the state before ramp fitting.
            Product::Fitopt => ("RampFitOutputModel", Step::Jump),
        };
        let mut w = FitsWriter::create(path)?;
        write_primary(
            &mut w,
            keys,
            path,
            model,
            &step_keys(r.det.instrument, last),
        )?;
        match product {
            Product::Uncal => unreachable!(),
            Product::Jump => {
                let shape = [nints, ng, ny, nx];
                self.image::<f32>(&mut w, "SCI4", "SCI", &shape, Some("DN"))?;
                self.image::<u32>(&mut w, "PIXELDQ", "PIXELDQ", &[ny, nx], None)?;
                self.image::<u8>(&mut w, "GROUPDQ", "GROUPDQ", &shape, None)?;
            }
            Product::Rate | Product::Rateints => {
                let (prefix, shape) = if product == Product::Rate {
                    ("RATE", vec![ny, nx])
                } else {
                    ("INTS", vec![nints, ny, nx])
                };
                let a = |n: &str| format!("{prefix}_{n}");
                self.image::<f32>(&mut w, &a("SCI"), "SCI", &shape, Some("DN/s"))?;
                self.image::<f32>(&mut w, &a("ERR"), "ERR", &shape, Some("DN/s"))?;
                self.image::<u32>(&mut w, &a("DQ"), "DQ", &shape, None)?;
                let var = Some("DN^2/s^2");
                self.image::<f32>(&mut w, &a("VAR_POISSON"), "VAR_POISSON", &shape, var)?;
                self.image::<f32>(&mut w, &a("VAR_RNOISE"), "VAR_RNOISE", &shape, var)?;
            }
            Product::Fitopt if self.layout == Layout::Lean => {
                self.image::<f32>(&mut w, "PEDESTAL", "PEDESTAL", &[nints, ny, nx], Some("DN"))?;
            }
            Product::Fitopt => {
                for name in &SEGMENT_EXTS[..6] {
                    self.stacked(&mut w, name, name)?;
                }
                self.image::<f32>(&mut w, "PEDESTAL", "PEDESTAL", &[nints, ny, nx], Some("DN"))?;
                self.stacked(&mut w, "WEIGHTS", "WEIGHTS")?;
                self.stacked(&mut w, "CRMAG", "CRMAG")?;
            }
        }
        w.finish()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::fits::hdu_names;

    /// The lean layout keeps only PEDESTAL in the fitopt product; the other products are
    /// complete; no uncal file unless asked.
    #[test]
    fn lean_layout_cuts_the_fitopt_product_to_what_the_dark_search_reads() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = SimConfig::default()
            .with_square_subarray(32)
            .with_ramp(2, 4);
        let truth = Truth::generate(&cfg).unwrap();
        let (info, files) = write_selected(
            dir.path(),
            &cfg,
            &truth,
            Kind::Dark,
            0,
            &[Product::Jump, Product::Rateints, Product::Fitopt],
            Layout::Lean,
        )
        .unwrap();
        assert!(!dir.path().join(info.uncal_name()).exists());
        let names = |p: Product| hdu_names(&files.iter().find(|f| f.0 == p).unwrap().1).unwrap();
        assert_eq!(
            names(Product::Jump),
            ["PRIMARY", "SCI", "PIXELDQ", "GROUPDQ"]
        );
        assert_eq!(names(Product::Fitopt), ["PRIMARY", "PEDESTAL"]);
        assert_eq!(
            names(Product::Rateints),
            ["PRIMARY", "SCI", "ERR", "DQ", "VAR_POISSON", "VAR_RNOISE"]
        );
    }
}
