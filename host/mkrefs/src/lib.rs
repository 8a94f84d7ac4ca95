//! The mkrefs host: from command line and configuration to reference files.
//!
//! The folders follow the data flow: `config` (settings) and `inputs` (one row per exposure,
//! groups) feed `prep` (calibration state and calibration jobs) and `plan` (every job of a
//! run); `exec` runs the jobs as `child` processes; `commands` are the subcommands.

pub mod app;
pub(crate) mod atomic;
pub(crate) mod child;
pub(crate) mod cli;
pub(crate) mod combine;
pub(crate) mod commands;
pub(crate) mod config;
pub(crate) mod exec;
pub(crate) mod inputs;
pub(crate) mod layout;
pub(crate) mod logging;
pub(crate) mod plan;
pub mod prep;
pub(crate) mod registry;
