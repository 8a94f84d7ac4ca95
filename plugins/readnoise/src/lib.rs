//! The readnoise generator.
