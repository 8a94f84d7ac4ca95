//! Execution: job files, and the executor that runs them as child processes in dependency
//! order.

pub(crate) mod executor;
pub(crate) mod interrupt;
pub(crate) mod jobfile;
pub(crate) mod protocol;
