//! The inputs: from the positional words of the command line to one row per exposure (its
//! header keys, MJD, dark or flat, steps done), then grouped the way each generator asks.

pub(crate) mod classify;
pub(crate) mod discover;
pub(crate) mod error;
pub(crate) mod exposure;
pub(crate) mod fingerprint;
#[cfg(test)]
mod fuzz;
pub(crate) mod geometry;
pub(crate) mod group;
pub(crate) mod read;
