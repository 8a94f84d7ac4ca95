//! Calibration prep: bringing every input to the calibration state its generator needs,
//! reusing products that exist and planning calibration jobs for the rest.

pub mod check;
pub mod crds;
pub mod jobs;
pub mod jwst;
pub mod references;
pub mod state;
pub mod steps;
