//! Execution: job files, the executor that runs them as child processes in dependency
//! order (sharing the cores as `cores` says), the locks that keep concurrent runs apart,
//! drop-in libraries tried in child processes before they are loaded (`probe`), and the
//! manifest of what a run made.

pub(crate) mod batch;
pub(crate) mod cores;
pub(crate) mod executor;
pub(crate) mod interrupt;
pub(crate) mod jobfile;
pub(crate) mod lock;
pub(crate) mod manifest;
pub(crate) mod probe;
pub(crate) mod protocol;
pub(crate) mod slurm;
