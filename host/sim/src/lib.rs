//! The deterministic exposure simulator and the test kit of mkrefs.
//!
//! A normal dependency of the `mkrefs` binary only (its `demo` and `simulate` commands); every
//! other crate takes it as a dev-dependency, so generators and third-party plugins never link it.
//!
//! No public JWST data can be downloaded where mkrefs is built and tested, so this crate writes
//! JWST-format exposures with a known truth:
//!
//! - [`SimConfig`]: the detector, readout and noise parameters, defect fractions and a seed.
//! - [`Truth`]: per-pixel bias, CDS read noise, dark current, QE, defect classes and the
//!   amplitudes of the anomalous pixels, computed from the config alone and written to
//!   `truth.fits`.
//! - [`write_uncal`]: a level-1b ramp (uint16 SCI, PIXELDQ, GROUPDQ) with bias, read noise, dark
//!   current or flat-field light with shot noise, cosmic rays and the defects; opt-in (see
//!   [`SimConfig::with_realistic_noise`]): a read-noise tail, noisy pixels, 1/f banding along
//!   the readout lines, reset offsets and amplifier drifts, spread telegraph switching rates.
//! - [`write_jump`], [`write_rate`], [`write_rateints`], [`write_fitopt`] and [`write_products`]:
//!   calibrated products computed from the *same* realisation (the same random streams) as the
//!   uncal file, with the S_* keywords of the steps they stand for (see [`Product`]).
//! - [`write_dataset`]: a directory of truth, exposures and products with a `manifest.json`.
//! - [`write_step_references`]: the calibration steps' reference files from the truth.
//!
//! Reproducibility: every random number comes from [`crate::rng::stream`] keyed by what it is
//! for (truth map and row; exposure, integration and row for the ramps; exposure and integration
//! for the readout offsets), so the bytes written do not depend on the number of threads or on
//! the order in which rows are computed. Memory stays bounded: ramps are generated and written
//! in bands of rows.
//!
//! [`testkit`]: a job runner for generators, the stdatamodels validator (found through this
//! crate's source path, so it serves tests in this workspace), small CRDS caches.

mod config;
mod dataset;
mod error;
mod products;
mod ramps;
mod readout;
mod step_references;
mod truth;

pub mod rng;
pub mod testkit;

pub use config::{DefectFractions, ExposureInfo, Kind, SimConfig, subarray_name_for_size};
pub use dataset::{
    DatasetManifest, ManifestExposure, ManifestFile, write_dataset, write_dataset_with,
};
pub use error::SimError;
pub use products::{
    Layout, Product, ProductSet, product_name, write_fitopt, write_jump, write_products,
    write_products_with, write_rate, write_rateints, write_selected, write_uncal,
};
pub use step_references::{SATURATION_LEVEL, StepReference, write_step_references};
pub use truth::{DefectClass, SATURATED_IN_ALL_GROUPS, Truth};
