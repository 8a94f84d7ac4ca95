//! Calibration prep: bringing every input to the calibration state its generator needs,
//! reusing products that exist and planning calibration jobs for the rest.
//!
//! - [`steps`]: the calwebb_detector1 steps per instrument and the `ssbsteps` syntax;
//! - `reads`: what generators read of the products (`ssb_save_steps`, with extensions);
//! - `state`: which file each input is read from at each state (products found or to make);
//! - `check`: a product found is checked against its S_* state before it is used;
//! - [`references`]: the reference files of the steps (`reffile4ssb`);
//! - [`crds`]: reference files chosen by the crds client or a local CRDS cache;
//! - `jobs`: one calibration job per exposure and chain of states;
//! - `record`: what each calibrated product was made from, kept beside it;
//! - [`jwst`]: the jwst backend (strun's argument vector and products).
//!
//! `steps`, `references`, `crds` and `jwst` are public for the host's integration tests.

pub(crate) mod check;
pub mod crds;
pub(crate) mod jobs;
pub mod jwst;
pub(crate) mod reads;
pub(crate) mod record;
pub mod references;
pub(crate) mod state;
pub mod steps;
