//! Shared machinery of the bundled mkrefs generators, and of the host where it reads the same
//! files: what does not cross the plugin ABI.
//!
//! - [`generator`]: the trait a generator implements, and its export to the host.
//! - [`job`]: the job a generator runs, in plain Rust.
//! - [`params`]: parameters declared once, read back typed.
//! - [`header`]: typed FITS header values.
//! - [`fits`]: reading headers and ramps/images in row bands; writing FITS files atomically.
//! - [`ramps`]: the input ramps of a generator job, read in row bands.
//! - [`jobparams`]: parameters every generator shares (metadata, budgets, ignored ones).
//! - [`pipeline_steps`]: the calwebb_detector1 steps, their keywords and order.
//! - [`reffile`]: CRDS reference-file metadata and HISTORY, shared by every generator.
//! - [`stats`]: astropy-compatible sigma clipping and masked statistics.
//! - [`clipped`]: astropy's sigma-clipped statistics of whole images, fast (f64 sums).
//! - [`dq`]: JWST data-quality flags and DQ_DEF tables.
//! - [`geometry`]: detectors, subarrays and reference pixels.
//! - [`timeutil`]: ISO dates, MJD and the current UTC time.
//! - [`budget`]: row blocks within a memory budget, thread pools.

pub mod budget;
pub mod clipped;
pub mod dq;
pub mod fits;
mod fits_checksum;
pub mod fits_layout;
pub mod generator;
pub mod geometry;
pub mod header;
pub mod job;
pub mod jobparams;
pub mod lanes;
pub mod params;
pub mod pipeline_steps;
pub mod profile;
pub mod ramps;
pub mod reffile;
pub mod stats;
pub mod timeutil;
