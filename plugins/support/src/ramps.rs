//! The input ramps of a generator job: one SCI reader per file, kept open for the whole job,
//! and the checks that the files can be stacked (same shape, detector and subarray). Shared by
//! every generator that reads 4-D ramps.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;

use crate::fits::{FitsError, FitsErrorKind, ImageReader, read_primary_header};
use crate::header::Header;

/// The dimensions of a 4-D SCI ramp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RampDims {
    pub nints: usize,
    pub ngroups: usize,
    pub ny: usize,
    pub nx: usize,
}

/// Row bands of one ramp's planes. Implemented for FITS files ([`FitsRamp`]) and, in tests,
/// for arrays: the algorithms do not care where the numbers come from.
pub trait RampSource: Send {
    /// Name used in error messages (the file path).
    fn name(&self) -> String;
    fn dims(&self) -> RampDims;
    /// Rows `y0..y1` of `(int, group)` as f32 (exact for uncal u16 and calibrated f32 data).
    fn read_band(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [f32],
    ) -> Result<(), GeneratorError>;
}

/// An in-memory ramp `[int][group][y][x]`, for tests and data already in memory. It records
/// the `(int, group)` planes read, so tests can check what an algorithm touches.
pub struct MemoryRamp {
    pub dims: RampDims,
    pub data: Vec<f32>,
    pub reads: Vec<(usize, usize)>,
}

impl MemoryRamp {
    pub fn new(dims: RampDims, data: Vec<f32>) -> MemoryRamp {
        assert_eq!(data.len(), dims.nints * dims.ngroups * dims.ny * dims.nx);
        MemoryRamp {
            dims,
            data,
            reads: Vec::new(),
        }
    }

    /// The value of integration `i`, group `g`, pixel `(y, x)`.
    pub fn at(&self, i: usize, g: usize, y: usize, x: usize) -> f32 {
        let d = self.dims;
        self.data[((i * d.ngroups + g) * d.ny + y) * d.nx + x]
    }
}

impl RampSource for MemoryRamp {
    fn name(&self) -> String {
        "memory".into()
    }

    fn dims(&self) -> RampDims {
        self.dims
    }

    fn read_band(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [f32],
    ) -> Result<(), GeneratorError> {
        self.reads.push((int, group));
        let d = self.dims;
        let start = ((int * d.ngroups + group) * d.ny + y0) * d.nx;
        out.copy_from_slice(&self.data[start..start + (y1 - y0) * d.nx]);
        Ok(())
    }
}

/// A FITS ramp read through its SCI extension.
pub struct FitsRamp {
    pub path: PathBuf,
    pub header: Header,
    reader: ImageReader,
    dims: RampDims,
}

/// A [`FitsError`] as a job error: problems with the files are the user's inputs, failures to
/// write are I/O.
pub fn fits_error(e: FitsError) -> GeneratorError {
    let text = e.to_string();
    match e.kind {
        FitsErrorKind::Write
        | FitsErrorKind::Unreadable
        | FitsErrorKind::OutOfMemory
        | FitsErrorKind::Other => GeneratorError::io(text),
        FitsErrorKind::BadRequest => GeneratorError::internal(text),
        _ => GeneratorError::invalid_input(text),
    }
}

impl FitsRamp {
    /// Opens `path`: its primary header and a reader of its 4-D SCI extension.
    pub fn open(path: &Path) -> Result<FitsRamp, GeneratorError> {
        let header = read_primary_header(path).map_err(fits_error)?;
        let reader = ImageReader::open(path, "SCI").map_err(fits_error)?;
        let shape = reader.shape().to_vec();
        let [nints, ngroups, ny, nx] = shape[..] else {
            return Err(GeneratorError::invalid_input(format!(
                "{}: SCI has {} dimension(s) {shape:?}; a ramp with a 4-D SCI (NINTS, NGROUPS, \
                 ny, nx) is needed, such as an uncal or a jump-step file (not a rate image)",
                path.display(),
                shape.len()
            )));
        };
        Ok(FitsRamp {
            path: path.to_path_buf(),
            header,
            reader,
            dims: RampDims {
                nints,
                ngroups,
                ny,
                nx,
            },
        })
    }

    /// A primary-header keyword as text (upper case, trimmed), for comparisons and metadata.
    pub fn key(&self, key: &str) -> Option<String> {
        self.header
            .get(key)
            .map(|v| v.to_string().trim().to_ascii_uppercase())
    }
}

impl RampSource for FitsRamp {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn dims(&self) -> RampDims {
        self.dims
    }

    fn read_band(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [f32],
    ) -> Result<(), GeneratorError> {
        let plane = int * self.dims.ngroups + group;
        self.reader
            .read_rows::<f32>(plane, y0, y1, out)
            .map_err(fits_error)
    }
}

/// The keywords that must agree between inputs for their pixels to be the same pixels.
pub const SAME_KEYS: &[&str] = &["INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2"];

/// Fails, naming both files, when an input differs from the first in image size or in one of
/// [`SAME_KEYS`].
pub fn check_compatible(ramps: &[FitsRamp]) -> Result<(), GeneratorError> {
    let Some(first) = ramps.first() else {
        return Ok(());
    };
    for r in &ramps[1..] {
        let (a, b) = (first.dims, r.dims);
        if (a.ny, a.nx) != (b.ny, b.nx) {
            return Err(GeneratorError::invalid_input(format!(
                "inputs differ in image size: {} has {}x{} pixels (ny x nx) but {} has {}x{}; \
                 all inputs of one reference file must cover the same pixels",
                first.path.display(),
                a.ny,
                a.nx,
                r.path.display(),
                b.ny,
                b.nx
            )));
        }
        for key in SAME_KEYS {
            let (va, vb) = (first.key(key), r.key(key));
            if va != vb {
                let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(missing)".into());
                return Err(GeneratorError::invalid_input(format!(
                    "inputs differ in {key}: {} has {} but {} has {}; all inputs of one \
                     reference file must come from the same detector and subarray",
                    first.path.display(),
                    show(&va),
                    r.path.display(),
                    show(&vb)
                )));
            }
        }
    }
    Ok(())
}
