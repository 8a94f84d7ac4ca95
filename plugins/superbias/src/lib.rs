//! The superbias generator.
mod compute;
