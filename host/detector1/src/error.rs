//! The errors of the detector1 engine: reading or writing ramps, unusable reference files, and
//! exposures a step cannot process.

use std::path::PathBuf;

use mkrefs_support::fits::FitsError;

/// Why a ramp could not be read or written, or a step could not run.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Reading or writing a FITS file failed (the message names the file and HDU).
    #[error(transparent)]
    Fits(#[from] FitsError),
    /// A ramp file that is not a usable level-1b or RampModel ramp.
    #[error("{}: {message}", path.display())]
    Ramp { path: PathBuf, message: String },
    /// A reference file of the wrong REFTYPE, detector or shape for the exposure.
    #[error("reference file {}: {message}", path.display())]
    Reference { path: PathBuf, message: String },
    /// The exposure needs something this engine does not do (yet), or the step cannot be
    /// applied to it; the message says what.
    #[error("{step}: {message}")]
    Unsupported { step: &'static str, message: String },
}
