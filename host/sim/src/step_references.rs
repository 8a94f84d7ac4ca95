//! Reference files for the calibration steps, written from the simulator's truth in the jwst
//! formats, so a simulated data set can go from uncal files to every reference file (the demo,
//! end-to-end tests, the benchmark) without CRDS:
//!
//! - MASK (MaskModel): DQ with the reference pixels flagged REFERENCE_PIXEL | DO_NOT_USE and
//!   nothing else: the defects are for the bad-pixel mask generator to find, not to be given;
//! - SATURATION (SaturationModel): 65000 DN everywhere, below the simulated 16-bit ceiling
//!   (65535), so a clipped group is flagged;
//! - LINEARITY (LinearityModel): the identity polynomial (the simulated ramps are linear);
//! - GAIN (GainModel): the simulated gain;
//! - READNOISE (ReadnoiseModel) and SUPERBIAS (SuperBiasModel): the true maps (the read-noise
//!   tail and the noisy pixels included), for runs that do not make them with `SELF`.
//!
//! Each covers the exposure's window (its SUBARRAY, SUBSTRT and SUBSIZE), as CRDS would select.

use std::path::{Path, PathBuf};

use mkrefs_support::dq::{self, dq_def_for};
use mkrefs_support::fits::{FitsWriter, read_primary_header};
use mkrefs_support::reffile::RefMeta;

use crate::error::SimError;
use crate::truth::Truth;

/// A reftype the simulator can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepReference {
    Mask,
    Saturation,
    Linearity,
    Gain,
    Readnoise,
    Superbias,
}

impl StepReference {
    pub const ALL: [StepReference; 6] = [
        StepReference::Mask,
        StepReference::Saturation,
        StepReference::Linearity,
        StepReference::Gain,
        StepReference::Readnoise,
        StepReference::Superbias,
    ];

    /// The REFTYPE.
    pub fn reftype(self) -> &'static str {
        match self {
            StepReference::Mask => "MASK",
            StepReference::Saturation => "SATURATION",
            StepReference::Linearity => "LINEARITY",
            StepReference::Gain => "GAIN",
            StepReference::Readnoise => "READNOISE",
            StepReference::Superbias => "SUPERBIAS",
        }
    }

    fn datamodel(self) -> &'static str {
        match self {
            StepReference::Mask => "MaskModel",
            StepReference::Saturation => "SaturationModel",
            StepReference::Linearity => "LinearityModel",
            StepReference::Gain => "GainModel",
            StepReference::Readnoise => "ReadnoiseModel",
            StepReference::Superbias => "SuperBiasModel",
        }
    }
}

/// Saturation level of the simulated detector's reference file (DN).
pub const SATURATION_LEVEL: f32 = 65_000.0;

/// Writes the reference files `which` into `dir` as `sim_<reftype>_<detector>.fits`, with the
/// metadata of the simulated exposure `example` (any uncal file of the data set), and returns
/// (REFTYPE, path) for each.
pub fn write_step_references(
    dir: &Path,
    example: &Path,
    truth: &Truth,
    which: &[StepReference],
) -> Result<Vec<(&'static str, PathBuf)>, SimError> {
    let header = read_primary_header(example)?;
    let (ny, nx) = (truth.ny, truth.nx);
    let n = ny * nx;
    let detector = header
        .get_str("DETECTOR")
        .unwrap_or("NRCA1")
        .trim()
        .to_ascii_lowercase();
    let mut written = Vec::new();
    for &r in which {
        let path = dir.join(format!(
            "sim_{}_{detector}.fits",
            r.reftype().to_ascii_lowercase()
        ));
        let mut meta = RefMeta::from_header(r.reftype(), r.datamodel(), &header, (ny, nx))
            .map_err(SimError::Config)?;
        meta.description = format!("mkrefs simulator {} from the truth", r.reftype());
        meta.author = "mkrefs simulate".to_string();
        meta.pedigree = "SIMULATION".to_string();
        meta.useafter = "2000-01-01T00:00:00".to_string();
        let mut w = FitsWriter::create(&path)?;
        meta.write_primary(&mut w)?;
        let reference_dq: Vec<u32> = (0..n)
            .map(|i| {
                if truth.is_reference(i) {
                    dq::REFERENCE_PIXEL | dq::DO_NOT_USE
                } else {
                    0
                }
            })
            .collect();
        match r {
            StepReference::Mask => {
                w.write_image::<u32>("DQ", &[ny, nx], &reference_dq)?;
                w.write_dq_def(&dq_def_for(&["DO_NOT_USE", "REFERENCE_PIXEL"]))?;
            }
            StepReference::Saturation => {
                w.write_image::<f32>("SCI", &[ny, nx], &vec![SATURATION_LEVEL; n])?;
                w.write_image::<u32>("DQ", &[ny, nx], &vec![0; n])?;
                w.write_dq_def(&dq_def_for(&["DO_NOT_USE"]))?;
            }
            StepReference::Linearity => {
                let mut coeffs = vec![0f32; 3 * n];
                coeffs[n..2 * n].fill(1.0);
                w.write_image::<f32>("COEFFS", &[3, ny, nx], &coeffs)?;
                w.write_image::<u32>("DQ", &[ny, nx], &vec![0; n])?;
                w.write_dq_def(&dq_def_for(&["DO_NOT_USE"]))?;
            }
            StepReference::Gain => {
                w.write_image::<f32>("SCI", &[ny, nx], &vec![truth.gain as f32; n])?;
            }
            StepReference::Readnoise => {
                w.write_image::<f32>("SCI", &[ny, nx], &truth.readnoise)?;
            }
            StepReference::Superbias => {
                w.write_image::<f32>("SCI", &[ny, nx], &truth.bias)?;
                w.write_image::<u32>("DQ", &[ny, nx], &vec![0; n])?;
                w.write_image::<f32>("ERR", &[ny, nx], &vec![0.0; n])?;
                w.write_dq_def(&dq_def_for(&["DO_NOT_USE"]))?;
            }
        }
        w.finish()?;
        written.push((r.reftype(), path));
    }
    Ok(written)
}
