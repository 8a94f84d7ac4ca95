//! The final stage (README, "The final combination"): after the generator jobs of a reflabel
//! and detector, one more job combines their reference files into `final/`, pixel by pixel,
//! so that `final/` holds the run's answer whatever the grouping made.
//!
//! - `rule`: how a reftype combines (the generator's word, else the host's default, adjusted
//!   by the `combine` settings).
//! - `jobs`: the combine jobs of a plan, after the jobs that make their inputs.
//! - `stack`: the per-pixel statistics of a band of rows.
//! - `file`: reading the inputs and writing the combined file (in the job's child process).

pub(crate) mod file;
pub(crate) mod jobs;
pub(crate) mod rule;
mod stack;
