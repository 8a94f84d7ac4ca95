//! The mkrefs host: from command line and configuration to reference files.
//!
//! Each stage is a function from one plain data type to the next (see DESIGN.md): settings,
//! inputs, groups, calibration state, jobs, execution, summary.

pub mod atomic;
pub mod child;
pub mod cli;
pub mod executor;
pub mod jobfile;
pub mod layout;
pub mod logging;
pub mod registry;
