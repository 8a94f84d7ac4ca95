//! The mkrefs host: from command line and configuration to reference files.
//!
//! Each stage is a function from one plain data type to the next (see DESIGN.md): settings,
//! inputs, groups, calibration state, jobs, execution, summary.

pub mod app;
pub mod atomic;
pub mod calibration;
pub mod calibration_child;
pub mod calstate;
pub mod child;
pub mod classify;
pub mod cli;
pub mod commands;
pub mod config;
pub mod crds_client;
pub mod executor;
pub mod grouping;
pub mod inputs;
pub mod jobfile;
pub mod jwst_backend;
pub mod layout;
pub mod logging;
pub mod plan;
pub mod product_check;
pub mod reference_files;
pub mod registry;
pub mod steps;
pub mod tables;
