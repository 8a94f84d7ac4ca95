//! A native calwebb_detector1 engine (issue 4, being written): the steps reference-file
//! generation needs, following the jwst/stcal documentation of each step, on ramps in the jwst
//! data formats. [`ramp::Ramp`] is the exposure in memory that every step updates in place.

pub mod error;
pub mod ramp;
pub mod reffiles;
pub mod steps;

pub use error::StepError;
