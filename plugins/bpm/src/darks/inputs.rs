//! Opening and checking the dark products: which file gives the per-integration slopes, that
//! the jump file is a ramp and the slope file is not, that every file shows the same detector
//! window, and the reference pixels that window has.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::fits::{FitsError, ImageReader, hdu_names, read_primary_header};
use mkrefs_support::geometry::{Instrument, Subarray, detector_info, reference_pixel_mask};
use mkrefs_support::header::{Header, HeaderValue};

/// One dark exposure's files (the host resolves them from the configuration's
/// ssbsteps/ssb_save_steps).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DarkInputs {
    /// A short name for messages (usually the exposure's base name).
    pub label: String,
    /// rate (2-D) or rateints (3-D) product.
    pub slope: PathBuf,
    /// The rateints product when `slope` is a rate file (per-integration slopes).
    pub rateints: Option<PathBuf>,
    /// The jump product (GROUPDQ with JUMP_DET / SATURATED per group).
    pub jump: Option<PathBuf>,
    /// The fitopt product (PEDESTAL).
    pub fitopt: Option<PathBuf>,
    /// The raw ramp (MIRI's second group).
    pub uncal: PathBuf,
}

/// A FITS failure as a generator error; the FITS error already names file, HDU and key.
pub(crate) fn fits_err(e: FitsError) -> GeneratorError {
    GeneratorError::invalid_input(e.to_string())
}

/// The checked files of one dark exposure.
#[derive(Clone, Debug)]
pub(crate) struct Exposure {
    pub label: String,
    /// File with the per-integration slopes: SCI and ERR, 3-D (or 2-D for one integration).
    pub slopes: PathBuf,
    pub jump: PathBuf,
    pub fitopt: PathBuf,
    /// MIRI only: the raw ramp whose second group replaces the pedestal.
    pub uncal: Option<PathBuf>,
    /// NIR: the raw ramp, when it is there, and its groups; its first group tells a pixel
    /// saturated of its own from one the saturation step flagged for a saturated neighbour.
    pub raw: Option<(PathBuf, usize)>,
    pub nints: usize,
    pub ngroups: usize,
    /// Groups of the uncal ramp (MIRI).
    pub uncal_ngroups: usize,
    /// Whether the slope file has VAR_POISSON (the noise test's shot-noise part).
    pub var_poisson: bool,
}

/// The detector window all inputs share.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    pub ny: usize,
    pub nx: usize,
    pub miri: bool,
    /// Row-major, `true` on reference pixels.
    pub reference: Vec<bool>,
    /// The columns of each readout output (amplifier) a row crosses: outputs are stripes along
    /// the fast axis, so on detectors read along rows a row crosses up to 4 of them (else one
    /// range, the whole row). Contiguous and in column order.
    pub outputs: Vec<std::ops::Range<usize>>,
    pub describe: String,
}

/// The keys that say which detector window a file shows; all files must agree on them.
const IDENTITY_KEYS: [&str; 5] = ["INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2"];

fn key_text(h: &Header, key: &str) -> Option<String> {
    match h.get(key)? {
        HeaderValue::Str(s) => Some(s.trim().to_ascii_uppercase()),
        v => v.as_i64().map(|i| i.to_string()),
    }
}

/// Shape of the SCI (or `hdu`) image of a file.
fn shape_of(path: &Path, hdu: &str) -> Result<Vec<usize>, GeneratorError> {
    Ok(ImageReader::open(path, hdu)
        .map_err(fits_err)?
        .shape()
        .to_vec())
}

fn bad(msg: String) -> GeneratorError {
    GeneratorError::invalid_input(msg)
}

/// The first file seen: its path, primary header and image size; every other file must show
/// the same window.
type First = Option<(PathBuf, Header, (usize, usize))>;

/// Checks all inputs and resolves the files each statistic reads.
pub(crate) fn open(inputs: &[DarkInputs]) -> Result<(Geometry, Vec<Exposure>), GeneratorError> {
    let mut first: First = None;
    let mut exposures = Vec::with_capacity(inputs.len());
    let mut miri = false;
    for inp in inputs {
        let (jump, fitopt) = products(inp)?;
        let slope_shape = slope_product_shape(inp)?;
        let [nints, ngroups, ny, nx] = groupdq_shape(&jump, &inp.label)?;
        check_ramp_data(&jump, [nints, ngroups, ny, nx])?;
        let slopes = slopes_file(inp, &slope_shape, nints)?;
        let var_poisson = hdu_names(&slopes)
            .map_err(fits_err)?
            .iter()
            .any(|h| h == "VAR_POISSON")
            && shape_of(&slopes, "VAR_POISSON")? == shape_of(&slopes, "SCI")?;
        check_slopes_match(&slopes, &jump, nints, ny, nx)?;
        check_pedestal(&fitopt, &jump, nints, ny, nx)?;
        for path in [&inp.slope, &slopes, &jump, &fitopt] {
            check_same_window(&mut first, path, (ny, nx))?;
        }
        let h0 = &first.as_ref().expect("set above").1;
        miri = key_text(h0, "INSTRUME").and_then(|s| Instrument::from_header(&s))
            == Some(Instrument::Miri);
        let (uncal, uncal_ngroups) = if miri {
            let g = miri_uncal_groups(&inp.uncal, nints, ny, nx)?;
            (Some(inp.uncal.clone()), g)
        } else {
            (None, 0)
        };
        let raw = if miri {
            None
        } else {
            raw_ramp(&inp.uncal, nints, ny, nx)
        };
        exposures.push(Exposure {
            raw,
            label: inp.label.clone(),
            slopes,
            jump,
            fitopt,
            uncal,
            nints,
            ngroups,
            uncal_ngroups,
            var_poisson,
        });
    }
    let Some((p0, h0, (ny, nx))) = first else {
        return Err(bad("no dark exposures given".to_string()));
    };
    Ok((window_geometry(&p0, &h0, ny, nx, miri)?, exposures))
}

/// The jump and fitopt products, which the searches cannot do without.
fn products(inp: &DarkInputs) -> Result<(PathBuf, PathBuf), GeneratorError> {
    let label = &inp.label;
    let jump = inp.jump.clone().ok_or_else(|| {
        bad(format!(
            "dark {label} ({}): no jump product; the RC and TELEGRAPH searches read its \
             GROUPDQ; add 'jump' to the dark's ssb_save_steps so the host keeps it",
            inp.slope.display()
        ))
    })?;
    let fitopt = inp.fitopt.clone().ok_or_else(|| {
        bad(format!(
            "dark {label} ({}): no fitopt product; the RC and low-pedestal searches read \
             its PEDESTAL; have ramp fitting save its optional output (fitopt)",
            inp.slope.display()
        ))
    })?;
    Ok((jump, fitopt))
}

/// The SCI shape of the slope file, which must be a rate or rateints product, not a ramp.
fn slope_product_shape(inp: &DarkInputs) -> Result<Vec<usize>, GeneratorError> {
    let label = &inp.label;
    let slope_hdus = hdu_names(&inp.slope).map_err(fits_err)?;
    let is_ramp = slope_hdus.iter().any(|h| h == "GROUPDQ")
        || (slope_hdus.iter().any(|h| h == "SCI") && shape_of(&inp.slope, "SCI")?.len() == 4);
    if is_ramp {
        return Err(bad(format!(
            "{}: is a ramp (4-D SCI / GROUPDQ), but a rate or rateints product (2-D or 3-D \
             slopes) is needed here for dark {label}",
            inp.slope.display()
        )));
    }
    let slope_shape = shape_of(&inp.slope, "SCI")?;
    if !(2..=3).contains(&slope_shape.len()) {
        return Err(bad(format!(
            "{} [SCI]: shape {slope_shape:?}; a rate (2-D) or rateints (3-D) product is \
             needed for dark {label}",
            inp.slope.display()
        )));
    }
    Ok(slope_shape)
}

/// `(nints, ngroups, ny, nx)` of the jump product, which must be a ramp with a 4-D GROUPDQ.
fn groupdq_shape(jump: &Path, label: &str) -> Result<[usize; 4], GeneratorError> {
    let names = hdu_names(jump).map_err(fits_err)?;
    if !names.iter().any(|h| h == "GROUPDQ") {
        return Err(bad(format!(
            "{}: has no GROUPDQ extension, so it is not a ramp (jump product); the dark \
             search needs the ramp after the jump step for dark {label}",
            jump.display()
        )));
    }
    let gshape = shape_of(jump, "GROUPDQ")?;
    match gshape[..] {
        [nints, ngroups, ny, nx] => Ok([nints, ngroups, ny, nx]),
        _ => Err(bad(format!(
            "{} [GROUPDQ]: shape {gshape:?}, expected 4-D (nints, ngroups, ny, nx)",
            jump.display()
        ))),
    }
}

/// The jump product's SCI ramp, whose group differences tell a pixel's own jumps from its
/// neighbours' flags, must have GROUPDQ's shape.
fn check_ramp_data(jump: &Path, gshape: [usize; 4]) -> Result<(), GeneratorError> {
    let names = hdu_names(jump).map_err(fits_err)?;
    if !names.iter().any(|h| h == "SCI") {
        return Err(bad(format!(
            "{}: has no SCI extension; the dark search reads the ramp's group values to tell              a pixel's own jumps from flags the jump step gave it for a neighbour's; keep the              whole jump product",
            jump.display()
        )));
    }
    let sshape = shape_of(jump, "SCI")?;
    if sshape != gshape {
        return Err(bad(format!(
            "{} [SCI]: shape {sshape:?} differs from GROUPDQ {gshape:?}",
            jump.display()
        )));
    }
    Ok(())
}

/// The file of per-integration slopes: a 3-D slope file, else the rateints, else a rate of a
/// one-integration exposure.
fn slopes_file(
    inp: &DarkInputs,
    slope_shape: &[usize],
    nints: usize,
) -> Result<PathBuf, GeneratorError> {
    if slope_shape.len() == 3 {
        Ok(inp.slope.clone())
    } else if let Some(ri) = &inp.rateints {
        Ok(ri.clone())
    } else if nints == 1 {
        Ok(inp.slope.clone())
    } else {
        Err(bad(format!(
            "{}: a rate file of {nints} integrations; the dark search needs the slope of \
             every integration: give the rateints product of dark {}",
            inp.slope.display(),
            inp.label
        )))
    }
}

/// The slopes (SCI and ERR) must be per integration and of the jump product's exposure.
fn check_slopes_match(
    slopes: &Path,
    jump: &Path,
    nints: usize,
    ny: usize,
    nx: usize,
) -> Result<(), GeneratorError> {
    let sshape = shape_of(slopes, "SCI")?;
    let s_nints = if sshape.len() == 3 { sshape[0] } else { 1 };
    if sshape.len() == 4 || sshape.len() < 2 {
        return Err(bad(format!(
            "{} [SCI]: shape {sshape:?}; per-integration slopes (rateints, 3-D) are needed",
            slopes.display()
        )));
    }
    let eshape = shape_of(slopes, "ERR")?;
    if eshape != sshape {
        return Err(bad(format!(
            "{} [ERR]: shape {eshape:?} differs from SCI {sshape:?}",
            slopes.display()
        )));
    }
    if s_nints != nints || sshape[sshape.len() - 2..] != [ny, nx] {
        return Err(bad(format!(
            "{} [SCI] has shape {sshape:?} but the jump product {} has {nints} integrations \
             of {ny}x{nx}; they must come from the same exposure",
            slopes.display(),
            jump.display()
        )));
    }
    Ok(())
}

/// PEDESTAL must be per integration (2-D only for one integration) of the jump product's size.
fn check_pedestal(
    fitopt: &Path,
    jump: &Path,
    nints: usize,
    ny: usize,
    nx: usize,
) -> Result<(), GeneratorError> {
    let pshape = shape_of(fitopt, "PEDESTAL")?;
    let p_ok = match pshape.len() {
        3 => pshape == [nints, ny, nx],
        2 => nints == 1 && pshape == [ny, nx],
        _ => false,
    };
    if !p_ok {
        return Err(bad(format!(
            "{} [PEDESTAL]: shape {pshape:?}, expected ({nints}, {ny}, {nx}) to match the \
             jump product {}",
            fitopt.display(),
            jump.display()
        )));
    }
    Ok(())
}

/// Every file must show the window of the first one (identity keywords and size).
fn check_same_window(
    first: &mut First,
    path: &Path,
    shape: (usize, usize),
) -> Result<(), GeneratorError> {
    let h = read_primary_header(path).map_err(fits_err)?;
    let Some((p0, h0, shape0)) = first else {
        *first = Some((path.to_path_buf(), h, shape));
        return Ok(());
    };
    for key in IDENTITY_KEYS {
        let (a, b) = (key_text(h0, key), key_text(&h, key));
        if a != b {
            return Err(bad(format!(
                "darks from different detectors or windows: {} has {key} = {} but {} has \
                 {key} = {}; give darks of one detector and subarray per job",
                p0.display(),
                a.as_deref().unwrap_or("(missing)"),
                path.display(),
                b.as_deref().unwrap_or("(missing)")
            )));
        }
    }
    if *shape0 != shape {
        return Err(bad(format!(
            "darks of different sizes: {} is {}x{} but {} is {}x{}",
            p0.display(),
            shape0.0,
            shape0.1,
            path.display(),
            shape.0,
            shape.1
        )));
    }
    Ok(())
}

/// The raw ramp of a NIR exposure and its groups, if the file is there with a matching SCI
/// (products alone, without their uncal file, are a valid input: then the saturation flags
/// are taken as they are).
fn raw_ramp(uncal: &Path, nints: usize, ny: usize, nx: usize) -> Option<(PathBuf, usize)> {
    let shape = ImageReader::open(uncal, "SCI").ok()?.shape().to_vec();
    (shape.len() == 4 && shape[0] == nints && shape[2..] == [ny, nx])
        .then(|| (uncal.to_path_buf(), shape[1]))
}

/// The groups of a MIRI exposure's raw ramp, whose second group the pedestal tests use.
fn miri_uncal_groups(
    uncal: &Path,
    nints: usize,
    ny: usize,
    nx: usize,
) -> Result<usize, GeneratorError> {
    let ushape = shape_of(uncal, "SCI")?;
    if ushape.len() != 4 || ushape[0] != nints || ushape[1] < 2 || ushape[2..] != [ny, nx] {
        return Err(bad(format!(
            "{} [SCI]: shape {ushape:?}; MIRI's dark search needs the raw ramp \
             ({nints}, >= 2 groups, {ny}, {nx}) for its second group",
            uncal.display()
        )));
    }
    Ok(ushape[1])
}

/// The detector window of the first file's header and its reference pixels.
fn window_geometry(
    p0: &Path,
    h0: &Header,
    ny: usize,
    nx: usize,
    miri: bool,
) -> Result<Geometry, GeneratorError> {
    let det_name = key_text(h0, "DETECTOR").unwrap_or_default();
    let det = detector_info(&det_name).ok_or_else(|| {
        bad(format!(
            "{}: DETECTOR = {det_name:?} has no instrument profile (README, Instrument \
             profiles), so its reference pixels are unknown",
            p0.display()
        ))
    })?;
    let start = |key: &str| h0.get_i64(key).filter(|&v| v >= 1).map(|v| v as usize);
    let sub = match (start("SUBSTRT1"), start("SUBSTRT2")) {
        (Some(xs), Some(ys)) => Subarray {
            name: key_text(h0, "SUBARRAY").unwrap_or_default(),
            xstart: xs,
            ystart: ys,
            nx,
            ny,
        },
        _ if (ny, nx) == (det.full_ny, det.full_nx) => Subarray::full_frame(&det),
        _ => {
            return Err(bad(format!(
                "{}: a {ny}x{nx} window without SUBSTRT1/SUBSTRT2; the reference pixels of a \
                 subarray depend on where it lies on the detector",
                p0.display()
            )));
        }
    };
    sub.check(&det)
        .map_err(|e| bad(format!("{}: {e}", p0.display())))?;
    let reference = reference_pixel_mask(&det, &sub);
    let output_of = |x: usize| {
        if det.fastaxis.abs() == 1 {
            ((sub.xstart - 1 + x) * 4 / det.full_nx).min(3)
        } else {
            0
        }
    };
    let mut outputs: Vec<std::ops::Range<usize>> = Vec::new();
    for x in 0..nx {
        match outputs.last_mut() {
            Some(r) if output_of(r.start) == output_of(x) => r.end = x + 1,
            _ => outputs.push(x..x + 1),
        }
    }
    Ok(Geometry {
        ny,
        nx,
        miri,
        reference,
        outputs,
        describe: format!(
            "{} {} ({}x{} at SUBSTRT1={}, SUBSTRT2={})",
            det.name, sub.name, nx, ny, sub.xstart, sub.ystart
        ),
    })
}
