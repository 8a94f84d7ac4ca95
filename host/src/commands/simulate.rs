//! placeholder during integration
