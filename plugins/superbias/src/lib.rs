//! The superbias generator.
