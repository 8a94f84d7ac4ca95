//! The inputs: from the positional words of the command line to one row per exposure (its
//! header keys, MJD, dark or flat), then grouped the way each generator asks.

pub(crate) mod classify;
pub(crate) mod group;
pub(crate) mod read;
