//! Execution: job files, the executor that runs them as child processes in dependency
//! order, and the locks that keep concurrent runs apart.

pub(crate) mod executor;
pub(crate) mod interrupt;
pub(crate) mod jobfile;
pub(crate) mod lock;
pub(crate) mod protocol;
