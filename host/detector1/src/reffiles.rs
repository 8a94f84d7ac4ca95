//! Reference-file readers for the detector1 steps: MASK, SATURATION, SUPERBIAS, LINEARITY,
//! (NIR) DARK, and the READNOISE and GAIN that jump and ramp_fit use, each cut to the exposure's
//! readout window.
//!
//! What the jwst pipeline does, and this module follows:
//!
//! - **REFTYPE and detector.** CRDS selects a file by INSTRUME/DETECTOR/...; a file given by
//!   hand may be of the wrong kind. A file whose primary REFTYPE is not the one the step needs,
//!   or whose DETECTOR differs from the exposure's, is an error naming the file.
//! - **DQ_DEF.** stdatamodels reads the DQ array of a reference file through its DQ_DEF table
//!   (`dynamic_mask`): for every row, pixels with the row's VALUE bit set get the *standard*
//!   flag of the row's NAME; rows with names that are not standard flags are ignored (dropped);
//!   without a DQ_DEF table the DQ values are used as they are. [`standardize_dq`] does this.
//! - **Subarrays** (`jwst.lib.reffile_utils.ref_matches_sci` / `get_subarray_model`): when the
//!   reference file's window (SUBSTRT1/2, SUBSIZE1/2 of its primary header; the full image from
//!   pixel (1, 1) when absent) differs from the exposure's, the exposure's window is cut out of
//!   it; a window that does not lie inside the reference file's is an error.
//!
//! Only the rows of the window are read from disk, so a subarray exposure does not load a whole
//! full-frame reference file.

use std::path::{Path, PathBuf};

use mkrefs_support::dq::{DqDefRow, flag_value};
use mkrefs_support::fits::{ImageReader, Pixel, hdu_names, read_dq_def, read_primary_header};
use mkrefs_support::geometry::{Instrument, detector_info};
use mkrefs_support::header::Header;

use crate::error::StepError;
use crate::ramp::Ramp;

/// A readout window in full-frame pixels: SUBSTRT1 (`xstart`) and SUBSTRT2 (`ystart`) are
/// 1-based; SUBSIZE1 (`nx`) and SUBSIZE2 (`ny`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub xstart: usize,
    pub ystart: usize,
    pub nx: usize,
    pub ny: usize,
}

impl Window {
    /// The window a header describes, for data of `ny × nx` pixels: SUBSTRT1/2 default to 1 and
    /// SUBSIZE1/2 to the data's size. Fails (message only) if SUBSIZE1/2 disagree with the data.
    fn from_header(h: &Header, ny: usize, nx: usize) -> Result<Window, String> {
        let get = |k: &str, default: usize| -> Result<usize, String> {
            match h.get(k) {
                None => Ok(default),
                Some(v) => v
                    .as_i64()
                    .filter(|&i| i >= 1)
                    .map(|i| i as usize)
                    .ok_or_else(|| format!("{k} = {v} is not a positive integer")),
            }
        };
        let w = Window {
            xstart: get("SUBSTRT1", 1)?,
            ystart: get("SUBSTRT2", 1)?,
            nx: get("SUBSIZE1", nx)?,
            ny: get("SUBSIZE2", ny)?,
        };
        if (w.ny, w.nx) != (ny, nx) {
            return Err(format!(
                "SUBSIZE2 x SUBSIZE1 = {}x{} but the data are {ny}x{nx}",
                w.ny, w.nx
            ));
        }
        Ok(w)
    }

    /// Offsets `(y0, x0)` of `inner` inside `self`, if `inner` lies wholly inside.
    fn offset_of(&self, inner: &Window) -> Option<(usize, usize)> {
        let inside = inner.xstart >= self.xstart
            && inner.ystart >= self.ystart
            && inner.xstart + inner.nx <= self.xstart + self.nx
            && inner.ystart + inner.ny <= self.ystart + self.ny;
        inside.then(|| (inner.ystart - self.ystart, inner.xstart - self.xstart))
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SUBSTRT1={} SUBSTRT2={} SUBSIZE1={} SUBSIZE2={}",
            self.xstart, self.ystart, self.nx, self.ny
        )
    }
}

/// What a reference file must match: the exposure's detector and readout window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// DETECTOR of the exposure, if its header has one.
    pub detector: Option<String>,
    pub window: Window,
}

impl Target {
    /// The detector and window of `ramp`, from its primary header (SUBSTRT1/2 and SUBSIZE1/2;
    /// the frame size from pixel (1, 1) when absent).
    pub fn of(ramp: &Ramp) -> Result<Target, StepError> {
        let window =
            Window::from_header(&ramp.header, ramp.ny, ramp.nx).map_err(|m| StepError::Ramp {
                path: PathBuf::from("<ramp in memory>"),
                message: m,
            })?;
        Ok(Target {
            detector: ramp.header.get_str("DETECTOR").map(str::to_string),
            window,
        })
    }
}

/// Canonical detector name (NRCA5 and NRCALONG are the same detector).
fn canonical_detector(name: &str) -> String {
    detector_info(name)
        .map(|d| d.name.to_string())
        .unwrap_or_else(|| name.trim().to_ascii_uppercase())
}

/// An opened reference file whose REFTYPE and DETECTOR have been checked.
struct RefFile<'a> {
    path: PathBuf,
    header: Header,
    hdus: Vec<String>,
    target: &'a Target,
}

impl<'a> RefFile<'a> {
    fn open(path: &Path, reftype: &str, target: &'a Target) -> Result<RefFile<'a>, StepError> {
        let header = read_primary_header(path)?;
        let f = RefFile {
            path: path.to_path_buf(),
            hdus: hdu_names(path)?,
            header,
            target,
        };
        match f.header.get_str("REFTYPE") {
            Some(t) if t.trim().eq_ignore_ascii_case(reftype) => {}
            Some(t) => {
                return Err(f.err(format!(
                    "REFTYPE is {t:?} but this step needs a {reftype} reference file"
                )));
            }
            None => {
                return Err(f.err(format!(
                    "the primary header has no REFTYPE; a {reftype} reference file is needed"
                )));
            }
        }
        if let (Some(want), Some(have)) = (&target.detector, f.header.get_str("DETECTOR")) {
            let have_c = canonical_detector(have);
            if have_c != "ANY" && have_c != canonical_detector(want) {
                return Err(f.err(format!(
                    "DETECTOR is {have:?} but the exposure is from {want:?}; give the \
                     {reftype} file of that detector"
                )));
            }
        }
        Ok(f)
    }

    fn err(&self, message: String) -> StepError {
        StepError::Reference {
            path: self.path.clone(),
            message,
        }
    }

    fn has(&self, hdu: &str) -> bool {
        self.hdus.iter().any(|h| h.eq_ignore_ascii_case(hdu))
    }

    /// Reads image `hdu` of `ndim` dimensions, cut to the target window: returns the planes
    /// (each `target ny × nx`, row-major) and their number.
    fn read_cut<T: Pixel>(&self, hdu: &str, ndim: usize) -> Result<(Vec<T>, usize), StepError> {
        self.read_cut_planes(hdu, ndim, usize::MAX)
    }

    /// [`RefFile::read_cut`] of at most the first `max_planes` planes.
    fn read_cut_planes<T: Pixel>(
        &self,
        hdu: &str,
        ndim: usize,
        max_planes: usize,
    ) -> Result<(Vec<T>, usize), StepError> {
        self.read_cut_range(hdu, ndim, 0, max_planes)
    }

    /// [`RefFile::read_cut`] of at most `max_planes` planes from plane `first` on (planes
    /// counted over all leading axes, so plane `i·ngroups + g` of a 4-D image is integration
    /// `i`, group `g`).
    fn read_cut_range<T: Pixel>(
        &self,
        hdu: &str,
        ndim: usize,
        first: usize,
        max_planes: usize,
    ) -> Result<(Vec<T>, usize), StepError> {
        let mut r = ImageReader::open(&self.path, hdu)?;
        let shape = r.shape().to_vec();
        if shape.len() != ndim {
            return Err(self.err(format!(
                "{hdu} has shape {shape:?} ({} dimensions) but a {}-D image is needed",
                shape.len(),
                ndim
            )));
        }
        let (rny, rnx) = (r.ny(), r.nx());
        let refwin = Window::from_header(&self.header, rny, rnx)
            .map_err(|m| self.err(format!("{hdu}: {m}")))?;
        let want = self.target.window;
        let (y0, x0) = refwin.offset_of(&want).ok_or_else(|| {
            self.err(format!(
                "its window ({refwin}) does not contain the exposure's ({want}), so the \
                 exposure's pixels cannot be taken from it; give a reference file for this \
                 subarray or the full frame"
            ))
        })?;
        let planes = r.n_planes().saturating_sub(first).min(max_planes);
        let mut out = vec![T::default(); planes * want.ny * want.nx];
        let mut band = vec![T::default(); want.ny * rnx];
        for p in 0..planes {
            r.read_rows(first + p, y0, y0 + want.ny, &mut band)?;
            let dst = &mut out[p * want.ny * want.nx..(p + 1) * want.ny * want.nx];
            for (row, src) in dst.chunks_exact_mut(want.nx).zip(band.chunks_exact(rnx)) {
                row.copy_from_slice(&src[x0..x0 + want.nx]);
            }
        }
        Ok((out, planes))
    }

    /// The 2-D DQ image `hdu` cut to the window and mapped to standard flags through DQ_DEF;
    /// zeros when the file has no such HDU (the datamodel default).
    fn read_dq(&self, hdu: &str) -> Result<Vec<u32>, StepError> {
        let w = self.target.window;
        if !self.has(hdu) {
            return Ok(vec![0; w.ny * w.nx]);
        }
        let (mut dq, _) = self.read_cut::<u32>(hdu, 2)?;
        if self.has("DQ_DEF") {
            standardize_dq(&mut dq, &read_dq_def(&self.path)?);
        }
        Ok(dq)
    }
}

/// Maps DQ values written with a file's own bit assignment to the standard JWST flags, as
/// stdatamodels `dynamic_mask` does on reading: each output value is the OR of the standard
/// flags named by the DQ_DEF rows whose VALUE bits are set in the input; rows whose NAME is not
/// a standard flag are ignored. An empty table leaves the values as they are.
pub fn standardize_dq(dq: &mut [u32], table: &[DqDefRow]) {
    if table.is_empty() {
        return;
    }
    let map: Vec<(u32, u32)> = table
        .iter()
        .filter(|r| r.value != 0)
        .filter_map(|r| flag_value(&r.name).map(|std| (r.value, std)))
        .collect();
    for v in dq.iter_mut() {
        let mut out = 0;
        for &(bit, std) in &map {
            if *v & bit != 0 {
                out |= std;
            }
        }
        *v = out;
    }
}

/// A MASK reference file (MaskModel): DQ in standard flags, cut to the exposure.
#[derive(Clone, Debug, PartialEq)]
pub struct MaskRef {
    pub path: PathBuf,
    pub dq: Vec<u32>,
}

/// Reads a MASK reference file for `target`.
pub fn read_mask(path: &Path, target: &Target) -> Result<MaskRef, StepError> {
    let f = RefFile::open(path, "MASK", target)?;
    if !f.has("DQ") {
        return Err(f.err("a MASK file needs a DQ image, and this one has none".into()));
    }
    Ok(MaskRef {
        path: path.to_path_buf(),
        dq: f.read_dq("DQ")?,
    })
}

/// A reference file holding one value per pixel in SCI and DQ in standard flags, cut to the
/// exposure: SATURATION (the saturation level, DN) and SUPERBIAS (the bias, DN).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageRef {
    pub path: PathBuf,
    pub sci: Vec<f32>,
    pub dq: Vec<u32>,
}

/// A SATURATION reference file (SaturationModel).
pub type SaturationRef = ImageRef;

/// A SUPERBIAS reference file (SuperBiasModel).
pub type SuperbiasRef = ImageRef;

fn read_image_ref(path: &Path, reftype: &str, target: &Target) -> Result<ImageRef, StepError> {
    let f = RefFile::open(path, reftype, target)?;
    Ok(ImageRef {
        path: path.to_path_buf(),
        sci: f.read_cut::<f32>("SCI", 2)?.0,
        dq: f.read_dq("DQ")?,
    })
}

/// Reads a SATURATION reference file for `target`.
pub fn read_saturation(path: &Path, target: &Target) -> Result<SaturationRef, StepError> {
    read_image_ref(path, "SATURATION", target)
}

/// Reads a SUPERBIAS reference file for `target`.
pub fn read_superbias(path: &Path, target: &Target) -> Result<SuperbiasRef, StepError> {
    read_image_ref(path, "SUPERBIAS", target)
}

/// A LINEARITY reference file (LinearityModel): COEFFS `[ncoeffs][y][x]` and DQ in standard
/// flags, cut to the exposure.
#[derive(Clone, Debug, PartialEq)]
pub struct LinearityRef {
    pub path: PathBuf,
    pub ncoeffs: usize,
    pub coeffs: Vec<f32>,
    pub dq: Vec<u32>,
}

/// Reads a LINEARITY reference file for `target`. At least 2 coefficients are needed (the
/// correction's linear term is coefficient 1).
pub fn read_linearity(path: &Path, target: &Target) -> Result<LinearityRef, StepError> {
    let f = RefFile::open(path, "LINEARITY", target)?;
    let (coeffs, ncoeffs) = f.read_cut::<f32>("COEFFS", 3)?;
    if ncoeffs < 2 {
        return Err(f.err(format!(
            "COEFFS has {ncoeffs} coefficient plane(s); a polynomial with at least the constant \
             and linear terms (2 planes) is needed"
        )));
    }
    Ok(LinearityRef {
        path: path.to_path_buf(),
        ncoeffs,
        coeffs,
        dq: f.read_dq("DQ")?,
    })
}

/// A near-infrared DARK reference file (DarkModel): SCI `[ngroups][y][x]` (DN), DQ in standard
/// flags, and the NFRAMES and GROUPGAP its groups were taken with.
#[derive(Clone, Debug, PartialEq)]
pub struct DarkRef {
    pub path: PathBuf,
    pub ngroups: usize,
    pub nframes: usize,
    pub groupgap: usize,
    pub sci: Vec<f32>,
    pub dq: Vec<u32>,
}

/// Reads a near-infrared DARK reference file (3-D SCI) for `target`. MIRI darks (4-D SCI, one
/// dark per integration) are read by [`read_dark_miri`]; each reader refuses the other kind. The primary header must give NFRAMES and
/// GROUPGAP, which the dark step compares with the exposure's.
pub fn read_dark(path: &Path, target: &Target) -> Result<DarkRef, StepError> {
    read_dark_groups(path, target, usize::MAX)
}

/// [`read_dark`] of only the dark's first `max_groups` groups (planes), so that an exposure of
/// a few groups does not load every plane of a long full-frame dark. `ngroups` of the result is
/// the number read.
pub fn read_dark_groups(
    path: &Path,
    target: &Target,
    max_groups: usize,
) -> Result<DarkRef, StepError> {
    let f = RefFile::open(path, "DARK", target)?;
    let sci_shape = ImageReader::open(path, "SCI")?.shape().to_vec();
    check_dark_dimensions(path, &f.header, sci_shape.len(), target)?;
    let key = |k: &str| {
        f.header
            .get_i64(k)
            .filter(|&v| v >= 0)
            .map(|v| v as usize)
            .ok_or_else(|| {
                f.err(format!(
                    "the primary header has no valid {k}; the dark step needs NFRAMES and \
                     GROUPGAP of the dark to match its groups to the exposure's"
                ))
            })
    };
    let (nframes, groupgap) = (key("NFRAMES")?, key("GROUPGAP")?);
    if nframes == 0 {
        return Err(f.err("NFRAMES is 0".into()));
    }
    let (sci, ngroups) = f.read_cut_planes::<f32>("SCI", 3, max_groups)?;
    Ok(DarkRef {
        path: path.to_path_buf(),
        ngroups,
        nframes,
        groupgap,
        sci,
        dq: f.read_dq("DQ")?,
    })
}

/// Whether `target` is a MIRI detector, whose DARK files are DarkMIRIModel (4-D SCI) where
/// every other detector's are DarkModel (3-D SCI), as jwst's dark step chooses the model by
/// instrument. A target without a known detector is taken by the dimensions of the file.
fn target_is_miri(target: &Target) -> Option<bool> {
    target
        .detector
        .as_deref()
        .and_then(detector_info)
        .map(|d| d.instrument == Instrument::Miri)
}

/// The DARK's SCI must have the dimensions of the exposure's instrument's dark model: 4 for
/// MIRI (DarkMIRIModel: integrations × groups × rows × columns), 3 for the others (DarkModel).
/// The primary header's INSTRUME, when present, must agree with them.
fn check_dark_dimensions(
    path: &Path,
    header: &Header,
    ndim: usize,
    target: &Target,
) -> Result<(), StepError> {
    let file_miri = header
        .get_str("INSTRUME")
        .and_then(Instrument::from_header)
        .map(|i| i == Instrument::Miri);
    let want_miri = target_is_miri(target).or(file_miri).unwrap_or(ndim == 4);
    let want = if want_miri { 4 } else { 3 };
    if ndim != want {
        let (kind, model) = if want_miri {
            (
                "a MIRI exposure needs",
                "DarkMIRIModel, SCI of (integrations, groups, rows, columns)",
            )
        } else {
            (
                "a near-infrared exposure needs",
                "DarkModel, SCI of (groups, rows, columns)",
            )
        };
        return Err(StepError::Reference {
            path: path.to_path_buf(),
            message: format!(
                "the DARK's SCI is {ndim}-D but {kind} a {want}-D dark ({model}); \
                 give the dark of the exposure's instrument"
            ),
        });
    }
    Ok(())
}

/// A MIRI DARK reference file (DarkMIRIModel): SCI `[integration][group][y][x]` (DN), of which
/// only the integrations and groups the exposure uses are held, and the DQ planes collapsed to
/// one image in standard flags.
#[derive(Clone, Debug, PartialEq)]
pub struct MiriDarkRef {
    pub path: PathBuf,
    /// Integrations in the file.
    pub file_nints: usize,
    /// Groups per integration in the file.
    pub file_ngroups: usize,
    /// Groups read per held integration (at most `file_ngroups`).
    pub ngroups: usize,
    pub nframes: usize,
    pub groupgap: usize,
    /// The integrations held: (index in the file, `ngroups` planes of the exposure's window).
    pub ints: Vec<(usize, Vec<f32>)>,
    /// The OR over the file's integrations of DQ plane `[i][0]` (DarkMIRIModel's DQ is
    /// (integrations, 1, rows, columns)), as stcal's `subtract_dark` collapses it.
    pub dq: Vec<u32>,
}

impl MiriDarkRef {
    /// The planes held for file integration `index`.
    pub fn integration(&self, index: usize) -> Option<&[f32]> {
        self.ints
            .iter()
            .find(|(i, _)| *i == index)
            .map(|(_, v)| v.as_slice())
    }
}

/// The dark integration (0-based, in a dark of `dark_nints`) that corrects the exposure's
/// integration `int`; `intstart` is the exposure's INTSTART (1 for an unsegmented exposure).
/// The rule of stcal's MIRI dark subtraction; it lives with the reader, which reads only the
/// integrations it assigns.
pub fn dark_integration(int: usize, dark_nints: usize, intstart: i64) -> usize {
    if int < dark_nints && intstart == 1 {
        int
    } else {
        dark_nints.saturating_sub(1)
    }
}

/// Reads a MIRI DARK reference file (4-D SCI) for `target`: for each of the exposure's
/// `sci_nints` integrations the dark integration [`dark_integration`] assigns to it
/// (`intstart` is the exposure's INTSTART), and of each at most `max_groups` groups, so a long
/// dark does not have to fit in memory. The primary header must give NFRAMES and GROUPGAP.
pub fn read_dark_miri(
    path: &Path,
    target: &Target,
    sci_nints: usize,
    intstart: i64,
    max_groups: usize,
) -> Result<MiriDarkRef, StepError> {
    let f = RefFile::open(path, "DARK", target)?;
    let shape = ImageReader::open(path, "SCI")?.shape().to_vec();
    check_dark_dimensions(path, &f.header, shape.len(), target)?;
    let (file_nints, file_ngroups) = (shape[0], shape[1]);
    if file_nints == 0 || file_ngroups == 0 {
        return Err(f.err(format!("SCI has shape {shape:?}: no dark planes")));
    }
    let key = |k: &str| {
        f.header
            .get_i64(k)
            .filter(|&v| v >= 0)
            .map(|v| v as usize)
            .ok_or_else(|| {
                f.err(format!(
                    "the primary header has no valid {k}; the dark step needs NFRAMES and \
                     GROUPGAP of the dark to match its groups to the exposure's"
                ))
            })
    };
    let (nframes, groupgap) = (key("NFRAMES")?, key("GROUPGAP")?);
    if nframes == 0 {
        return Err(f.err("NFRAMES is 0".into()));
    }
    let mut wanted: Vec<usize> = (0..sci_nints)
        .map(|i| dark_integration(i, file_nints, intstart))
        .collect();
    wanted.sort_unstable();
    wanted.dedup();
    let ngroups = file_ngroups.min(max_groups);
    let mut ints = Vec::with_capacity(wanted.len());
    for i in wanted {
        let (planes, _) = f.read_cut_range::<f32>("SCI", 4, i * file_ngroups, ngroups)?;
        ints.push((i, planes));
    }
    let w = target.window;
    let mut dq = vec![0u32; w.ny * w.nx];
    if f.has("DQ") {
        let dq_shape = ImageReader::open(path, "DQ")?.shape().to_vec();
        if dq_shape.len() != 4 || dq_shape[0] != file_nints {
            return Err(f.err(format!(
                "DQ has shape {dq_shape:?}; a MIRI dark's DQ is (integrations, 1, rows, \
                 columns) with the {file_nints} integrations of SCI"
            )));
        }
        let per_int = dq_shape[1];
        for i in 0..file_nints {
            let (plane, _) = f.read_cut_range::<u32>("DQ", 4, i * per_int, 1)?;
            for (d, v) in dq.iter_mut().zip(plane) {
                *d |= v;
            }
        }
        if f.has("DQ_DEF") {
            standardize_dq(&mut dq, &read_dq_def(path)?);
        }
    }
    Ok(MiriDarkRef {
        path: path.to_path_buf(),
        file_nints,
        file_ngroups,
        ngroups,
        nframes,
        groupgap,
        ints,
        dq,
    })
}

/// Checks a reference file without reading its data: REFTYPE, DETECTOR, and that its main
/// image (DQ for MASK, COEFFS for LINEARITY, SCI otherwise) has a window containing the
/// exposure's. The pipeline driver calls this for every file before the first step runs, so a
/// wrong file given for a late step (a dark of another detector, say) fails in seconds instead
/// of after minutes of earlier steps; the data are read later, one file at a time, by the
/// readers above, which repeat these checks.
pub fn check_reference(path: &Path, reftype: &str, target: &Target) -> Result<(), StepError> {
    let f = RefFile::open(path, reftype, target)?;
    let hdu = match reftype {
        "MASK" => "DQ",
        "LINEARITY" => "COEFFS",
        _ => "SCI",
    };
    if !f.has(hdu) {
        return Err(f.err(format!(
            "a {reftype} file needs a {hdu} image, and this one has none"
        )));
    }
    let r = ImageReader::open(path, hdu)?;
    if reftype == "DARK" {
        check_dark_dimensions(path, &f.header, r.shape().len(), target)?;
    }
    if r.shape().len() < 2 {
        return Err(f.err(format!(
            "{hdu} has shape {:?}; an image of at least 2 dimensions is needed",
            r.shape()
        )));
    }
    let refwin =
        Window::from_header(&f.header, r.ny(), r.nx()).map_err(|m| f.err(format!("{hdu}: {m}")))?;
    let want = target.window;
    if refwin.offset_of(&want).is_none() {
        return Err(f.err(format!(
            "its window ({refwin}) does not contain the exposure's ({want}), so the \
             exposure's pixels cannot be taken from it; give a reference file for this \
             subarray or the full frame"
        )));
    }
    Ok(())
}

/// A READNOISE reference file (ReadnoiseModel): SCI, the CDS read noise of every pixel (DN),
/// cut to the exposure. The model has no DQ.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadnoiseRef {
    pub path: PathBuf,
    pub sci: Vec<f32>,
}

/// Reads a READNOISE reference file for `target` (used by jump and ramp_fit, which take the
/// values as they are: NaN or non-positive values make those steps leave the pixel alone).
pub fn read_readnoise(path: &Path, target: &Target) -> Result<ReadnoiseRef, StepError> {
    let f = RefFile::open(path, "READNOISE", target)?;
    Ok(ReadnoiseRef {
        path: path.to_path_buf(),
        sci: f.read_cut::<f32>("SCI", 2)?.0,
    })
}

/// A GAIN reference file (GainModel): SCI, the gain of every pixel (e-/DN), cut to the
/// exposure. The model has no DQ.
#[derive(Clone, Debug, PartialEq)]
pub struct GainRef {
    pub path: PathBuf,
    pub sci: Vec<f32>,
}

/// Reads a GAIN reference file for `target` (used by jump and ramp_fit to convert DN to
/// electrons for the Poisson noise).
pub fn read_gain(path: &Path, target: &Target) -> Result<GainRef, StepError> {
    let f = RefFile::open(path, "GAIN", target)?;
    Ok(GainRef {
        path: path.to_path_buf(),
        sci: f.read_cut::<f32>("SCI", 2)?.0,
    })
}

#[cfg(test)]
pub(crate) mod testutil {
    //! Writing small reference files for tests.

    use std::path::Path;

    use mkrefs_support::dq::DqDefRow;
    use mkrefs_support::fits::{FitsWriter, Pixel};
    use mkrefs_support::header::HeaderValue;

    /// Where a test reference file is placed and what it claims to be.
    pub struct RefSpec<'a> {
        pub reftype: &'a str,
        pub detector: &'a str,
        /// (SUBSTRT1, SUBSTRT2); SUBSIZE1/2 are the image's size.
        pub start: (usize, usize),
        pub ny: usize,
        pub nx: usize,
    }

    /// Writes a reference file with the given images (name, shape, data) and optional DQ_DEF.
    pub fn write_ref<T: Pixel>(
        path: &Path,
        spec: &RefSpec,
        images: &[(&str, Vec<usize>, Vec<T>)],
        dq: Option<(&[u32], &[DqDefRow])>,
        extra_keys: &[(&str, HeaderValue)],
    ) {
        let mut w = FitsWriter::create(path).unwrap();
        let keys: Vec<(&str, HeaderValue)> = vec![
            ("TELESCOP", "JWST".into()),
            ("INSTRUME", "NIRCAM".into()),
            ("DETECTOR", spec.detector.into()),
            ("REFTYPE", spec.reftype.into()),
            ("SUBARRAY", "GENERIC".into()),
            ("SUBSTRT1", (spec.start.0 as i64).into()),
            ("SUBSTRT2", (spec.start.1 as i64).into()),
            ("SUBSIZE1", (spec.nx as i64).into()),
            ("SUBSIZE2", (spec.ny as i64).into()),
        ];
        for (k, v) in keys.iter().chain(extra_keys) {
            w.set_primary_key(k, v, "").unwrap();
        }
        for (name, shape, data) in images {
            w.write_image(name, shape, data).unwrap();
        }
        if let Some((dq, table)) = dq {
            w.write_image("DQ", &[spec.ny, spec.nx], dq).unwrap();
            if !table.is_empty() {
                w.write_dq_def(table).unwrap();
            }
        }
        w.finish().unwrap();
    }

    /// Writes a MIRI DARK (DarkMIRIModel layout): SCI `(nints, ngroups, ny, nx)` and DQ
    /// `(nints, 1, ny, nx)`, NFRAMES = 1 and GROUPGAP = 0.
    pub fn write_ref_miri_dark(
        path: &Path,
        spec: &RefSpec,
        (nints, ngroups): (usize, usize),
        sci: &[f32],
        dq: &[u32],
    ) {
        let mut w = FitsWriter::create(path).unwrap();
        let keys: Vec<(&str, HeaderValue)> = vec![
            ("TELESCOP", "JWST".into()),
            ("INSTRUME", "MIRI".into()),
            ("DETECTOR", spec.detector.into()),
            ("REFTYPE", spec.reftype.into()),
            ("SUBARRAY", "GENERIC".into()),
            ("SUBSTRT1", (spec.start.0 as i64).into()),
            ("SUBSTRT2", (spec.start.1 as i64).into()),
            ("SUBSIZE1", (spec.nx as i64).into()),
            ("SUBSIZE2", (spec.ny as i64).into()),
            ("NFRAMES", 1i64.into()),
            ("GROUPGAP", 0i64.into()),
        ];
        for (k, v) in &keys {
            w.set_primary_key(k, v, "").unwrap();
        }
        w.write_image("SCI", &[nints, ngroups, spec.ny, spec.nx], sci)
            .unwrap();
        w.write_image("DQ", &[nints, 1, spec.ny, spec.nx], dq)
            .unwrap();
        w.finish().unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::{RefSpec, write_ref};
    use super::*;
    use mkrefs_support::dq;
    use mkrefs_support::header::HeaderValue;

    fn target(det: &str, xstart: usize, ystart: usize, nx: usize, ny: usize) -> Target {
        Target {
            detector: Some(det.to_string()),
            window: Window {
                xstart,
                ystart,
                nx,
                ny,
            },
        }
    }

    /// A full-frame-like 12x16 superbias whose value encodes the position: 100*y + x.
    fn position_image(ny: usize, nx: usize) -> Vec<f32> {
        (0..ny * nx)
            .map(|i| (100 * (i / nx) + i % nx) as f32)
            .collect()
    }

    #[test]
    fn subarray_is_cut_from_a_larger_reference() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bias.fits");
        let (ny, nx) = (12, 16);
        let spec = RefSpec {
            reftype: "SUPERBIAS",
            detector: "NRCA1",
            start: (1, 1),
            ny,
            nx,
        };
        let mut dqv = vec![0u32; ny * nx];
        dqv[5 * nx + 7] = dq::UNRELIABLE_BIAS;
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![ny, nx], position_image(ny, nx))],
            Some((&dqv, &[])),
            &[],
        );
        // Window at full-frame (x, y) = (5, 4) 1-based, 6 wide, 3 high: rows 3..6, cols 4..10.
        let t = target("NRCA1", 5, 4, 6, 3);
        let r = read_superbias(&p, &t).unwrap();
        assert_eq!(r.sci.len(), 18);
        assert_eq!(r.sci[0], 304.0);
        assert_eq!(r.sci[17], 509.0);
        // Pixel (y=5, x=7) of the reference is (2, 3) of the window.
        assert_eq!(r.dq[2 * 6 + 3], dq::UNRELIABLE_BIAS);
        assert_eq!(r.dq.iter().filter(|&&v| v != 0).count(), 1);
        // The same window described by a matching reference: used whole.
        let full = read_superbias(&p, &target("NRCA1", 1, 1, nx, ny)).unwrap();
        assert_eq!(full.sci, position_image(ny, nx));
        // A window reaching outside the reference is an error naming the file.
        let e = read_superbias(&p, &target("NRCA1", 12, 1, 6, 3)).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("bias.fits") && text.contains("does not contain"),
            "{text}"
        );
    }

    #[test]
    fn wrong_reftype_detector_or_shape_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sat.fits");
        let spec = RefSpec {
            reftype: "SATURATION",
            detector: "NRCB2",
            start: (1, 1),
            ny: 4,
            nx: 4,
        };
        write_ref(&p, &spec, &[("SCI", vec![4, 4], vec![1f32; 16])], None, &[]);
        let t = target("NRCB2", 1, 1, 4, 4);
        assert!(read_saturation(&p, &t).is_ok());
        let e = read_superbias(&p, &t).unwrap_err().to_string();
        assert!(e.contains("sat.fits") && e.contains("REFTYPE"), "{e}");
        let e = read_saturation(&p, &target("NRCA1", 1, 1, 4, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sat.fits") && e.contains("DETECTOR"), "{e}");
        // A 3-D SCI where a 2-D image is needed.
        let p3 = dir.path().join("sat3.fits");
        write_ref(
            &p3,
            &spec,
            &[("SCI", vec![2, 4, 4], vec![1f32; 32])],
            None,
            &[],
        );
        let e = read_saturation(&p3, &t).unwrap_err().to_string();
        assert!(e.contains("sat3.fits") && e.contains("2-D"), "{e}");
        // SUBSIZE disagreeing with the data.
        let pb = dir.path().join("satb.fits");
        write_ref(
            &pb,
            &RefSpec { nx: 5, ..spec },
            &[("SCI", vec![4, 4], vec![1f32; 16])],
            None,
            &[],
        );
        let e = read_saturation(&pb, &t).unwrap_err().to_string();
        assert!(e.contains("satb.fits") && e.contains("SUBSIZE"), "{e}");
    }

    #[test]
    fn dq_def_maps_to_standard_flags() {
        let table = vec![
            DqDefRow {
                bit: 0,
                value: 1,
                name: "DO_NOT_USE".into(),
                description: String::new(),
            },
            DqDefRow {
                bit: 1,
                value: 2,
                name: "UNRELIABLE_BIAS".into(),
                description: String::new(),
            },
            DqDefRow {
                bit: 2,
                value: 4,
                name: "NOT_A_STANDARD_FLAG".into(),
                description: String::new(),
            },
        ];
        let mut v = vec![0, 1, 2, 3, 4, 7];
        standardize_dq(&mut v, &table);
        let ub = dq::UNRELIABLE_BIAS;
        assert_eq!(v, vec![0, 1, ub, 1 | ub, 0, 1 | ub]);
        // Read through a MASK file with that table.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mask.fits");
        let spec = RefSpec {
            reftype: "MASK",
            detector: "NRCA1",
            start: (1, 1),
            ny: 2,
            nx: 3,
        };
        write_ref::<f32>(
            &p,
            &spec,
            &[],
            Some((&[0, 1, 2, 3, 4, 7], &table)),
            &[("DATAMODL", HeaderValue::from("MaskModel"))],
        );
        let m = read_mask(&p, &target("NRCA1", 1, 1, 3, 2)).unwrap();
        assert_eq!(m.dq, vec![0, 1, ub, 1 | ub, 0, 1 | ub]);
    }

    #[test]
    fn readnoise_and_gain_are_checked_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (ny, nx) = (12, 16);
        let spec = |reftype| RefSpec {
            reftype,
            detector: "NRCA1",
            start: (1, 1),
            ny,
            nx,
        };
        let rn = dir.path().join("rn.fits");
        write_ref::<f32>(
            &rn,
            &spec("READNOISE"),
            &[("SCI", vec![ny, nx], position_image(ny, nx))],
            None,
            &[],
        );
        let gain = dir.path().join("gain.fits");
        write_ref::<f32>(
            &gain,
            &spec("GAIN"),
            &[("SCI", vec![ny, nx], vec![2.5; ny * nx])],
            None,
            &[],
        );
        let t = target("NRCA1", 5, 4, 6, 3);
        let r = read_readnoise(&rn, &t).unwrap();
        assert_eq!(r.sci.len(), 18);
        assert_eq!((r.sci[0], r.sci[17]), (304.0, 509.0));
        assert_eq!(read_gain(&gain, &t).unwrap().sci, vec![2.5; 18]);
        // Each reader wants its own REFTYPE and the exposure's detector.
        let e = read_gain(&rn, &t).unwrap_err().to_string();
        assert!(e.contains("rn.fits") && e.contains("GAIN"), "{e}");
        let e = read_readnoise(&gain, &t).unwrap_err().to_string();
        assert!(e.contains("gain.fits") && e.contains("READNOISE"), "{e}");
        let e = read_gain(&gain, &target("NRCB1", 5, 4, 6, 3))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DETECTOR"), "{e}");
        // A 3-D readnoise is not a ReadnoiseModel.
        let rn3 = dir.path().join("rn3.fits");
        write_ref::<f32>(
            &rn3,
            &spec("READNOISE"),
            &[("SCI", vec![2, ny, nx], vec![1.0; 2 * ny * nx])],
            None,
            &[],
        );
        let e = read_readnoise(&rn3, &t).unwrap_err().to_string();
        assert!(e.contains("rn3.fits") && e.contains("2-D"), "{e}");
    }

    #[test]
    fn check_reference_reads_headers_only_and_catches_what_the_readers_would() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RefSpec {
            reftype: "DARK",
            detector: "NRCA1",
            start: (1, 1),
            ny: 4,
            nx: 4,
        };
        let p = dir.path().join("dark.fits");
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![3, 4, 4], vec![1f32; 48])],
            None,
            &[],
        );
        let inside = target("NRCA1", 2, 2, 2, 2);
        check_reference(&p, "DARK", &inside).unwrap();
        let e = check_reference(&p, "GAIN", &inside)
            .unwrap_err()
            .to_string();
        assert!(e.contains("REFTYPE"), "{e}");
        let e = check_reference(&p, "DARK", &target("NRCB1", 2, 2, 2, 2))
            .unwrap_err()
            .to_string();
        assert!(e.contains("DETECTOR"), "{e}");
        let e = check_reference(&p, "DARK", &target("NRCA1", 3, 3, 4, 4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not contain"), "{e}");
        let p4 = dir.path().join("dark4.fits");
        write_ref(
            &p4,
            &spec,
            &[("SCI", vec![2, 3, 4, 4], vec![1f32; 96])],
            None,
            &[],
        );
        let e = check_reference(&p4, "DARK", &inside)
            .unwrap_err()
            .to_string();
        assert!(e.contains("4-D"), "{e}");
        // A MASK is checked through its DQ image, which this file lacks.
        let pm = dir.path().join("mask.fits");
        write_ref::<f32>(
            &pm,
            &RefSpec {
                reftype: "MASK",
                ..spec
            },
            &[],
            None,
            &[],
        );
        let e = check_reference(&pm, "MASK", &inside)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a DQ image"), "{e}");
    }

    #[test]
    fn dark_needs_nframes_and_refuses_miri_darks() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RefSpec {
            reftype: "DARK",
            detector: "NRCA1",
            start: (1, 1),
            ny: 2,
            nx: 2,
        };
        let t = target("NRCA1", 1, 1, 2, 2);
        let p = dir.path().join("dark.fits");
        write_ref(
            &p,
            &spec,
            &[("SCI", vec![3, 2, 2], vec![1f32; 12])],
            None,
            &[],
        );
        let e = read_dark(&p, &t).unwrap_err().to_string();
        assert!(e.contains("dark.fits") && e.contains("NFRAMES"), "{e}");
        let p4 = dir.path().join("dark4.fits");
        write_ref(
            &p4,
            &spec,
            &[("SCI", vec![2, 3, 2, 2], vec![1f32; 24])],
            None,
            &[("NFRAMES", 1i64.into()), ("GROUPGAP", 0i64.into())],
        );
        let e = read_dark(&p4, &t).unwrap_err().to_string();
        assert!(e.contains("4-D"), "{e}");
        let pok = dir.path().join("darkok.fits");
        write_ref(
            &pok,
            &spec,
            &[("SCI", vec![3, 2, 2], (0..12).map(|i| i as f32).collect())],
            None,
            &[("NFRAMES", 1i64.into()), ("GROUPGAP", 0i64.into())],
        );
        let d = read_dark(&pok, &t).unwrap();
        assert_eq!((d.ngroups, d.nframes, d.groupgap), (3, 1, 0));
        assert_eq!(d.sci[4..8], [4.0, 5.0, 6.0, 7.0]);
        assert_eq!(d.dq, vec![0; 4]);
        let d2 = read_dark_groups(&pok, &t, 2).unwrap();
        assert_eq!(d2.ngroups, 2);
        assert_eq!(d2.sci[..], d.sci[..8]);
    }
}
