//! The deterministic exposure simulator used by tests, benchmarks and the demo.
//!
//! No public JWST data can be downloaded where mkrefs is built and tested, so this module writes
//! JWST-format exposures with a known truth:
//!
//! - [`SimConfig`]: the detector, readout and noise parameters, defect fractions and a seed.
//! - [`Truth`]: per-pixel bias, CDS read noise, dark current, QE, defect classes and the
//!   amplitudes of the anomalous pixels, computed from the config alone and written to
//!   `truth.fits`.
//! - [`write_uncal`]: a level-1b ramp (uint16 SCI, PIXELDQ, GROUPDQ) with bias, read noise, dark
//!   current or flat-field light with shot noise, cosmic rays and the defects.
//! - [`write_jump`], [`write_rate`], [`write_rateints`], [`write_fitopt`] and [`write_products`]:
//!   calibrated products computed from the *same* realisation (the same random streams) as the
//!   uncal file, with the S_* keywords of the steps they stand for (see [`Product`]).
//! - [`write_dataset`]: a directory of truth, exposures and products with a `manifest.json`.
//! - [`write_step_references`]: the calibration steps' reference files from the truth.
//!
//! Reproducibility: every random number comes from [`crate::rng::stream`] keyed by what it is
//! for (truth map and row; exposure, integration and row for the ramps), so the bytes written do
//! not depend on the number of threads or on the order in which rows are computed. Memory stays
//! bounded: ramps are generated and written in bands of rows (see [`products`]).

mod config;
mod dataset;
mod products;
mod ramps;
mod step_references;
mod truth;

pub use config::{DefectFractions, ExposureInfo, Kind, SimConfig, subarray_name_for_size};
pub use dataset::{
    DatasetManifest, ManifestExposure, ManifestFile, write_dataset, write_dataset_with,
};
pub use products::{
    Layout, Product, ProductSet, product_name, write_fitopt, write_jump, write_products,
    write_products_with, write_rate, write_rateints, write_selected, write_uncal,
};
pub use step_references::{SATURATION_LEVEL, StepReference, write_step_references};
pub use truth::{DefectClass, SATURATED_IN_ALL_GROUPS, Truth};

use crate::fits::FitsError;

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
