//! The job children: `mkrefs run-job` (a generator on a group) and `mkrefs run-calibration`
//! (one exposure to its calibration state), each in its own process.

pub(crate) mod calibrate;
pub(crate) mod generate;
