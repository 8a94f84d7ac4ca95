//! What can go wrong while simulating.

use mkrefs_support::fits::FitsError;

/// Why the simulator could not produce its files.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The configuration is unusable (unknown detector, subarray outside the frame, ...).
    #[error("simulator configuration: {0}")]
    Config(String),
    /// Reading or writing a FITS file failed.
    #[error(transparent)]
    Fits(#[from] FitsError),
    /// A scratch or manifest file could not be written or read.
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}
