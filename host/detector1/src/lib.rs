//! A native calwebb_detector1 engine: the steps reference-file generation needs, following
//! jwst 3.0.0 and stcal 1.20 (the crate's `UPSTREAM.md` says what of them and where), on ramps
//! in the jwst data formats.
//!
//! - [`ramp::Ramp`]: the exposure in memory (SCI f32 `[int][group][y][x]`, GROUPDQ, PIXELDQ,
//!   primary header), read from an uncal or RampModel file and written as a RampModel file;
//!   every step updates it in place and records its S_* and R_* keywords.
//! - [`pipeline::calibrate`]: the driver the host calls per calibration job: checks the request
//!   against the input's S_* keywords and the reference files given, runs the steps, writes the
//!   final and the saved products.
//! - [`reffiles`]: MASK, SATURATION, SUPERBIAS, LINEARITY, DARK (near-infrared 3-D and MIRI
//!   4-D), READNOISE and GAIN reference files, checked (REFTYPE, DETECTOR, shape), DQ mapped through DQ_DEF, cut to the
//!   exposure's subarray.
//! - [`steps`]: group_scale, dq_init, saturation, superbias, refpix, linearity, dark_current,
//!   and for MIRI firstframe, lastframe, the per-integration dark and the MIRI refpix.
//! - [`jump`]: two-point-difference jump detection; [`ramp_fit`]: OLS ramp fitting with optimal
//!   weighting between jumps, writing rate, rateints and the optional fitopt product.
//! - [`form::Form`]: a whole product, or only the extensions a run's generators read.
//! - [`StepError`]: what went wrong, naming the file.

pub mod error;
pub mod form;
pub mod jump;
pub mod pipeline;
pub mod ramp;
pub mod ramp_fit;
pub mod reffiles;
pub mod steps;

pub use error::StepError;
