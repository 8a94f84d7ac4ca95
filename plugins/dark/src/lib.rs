//! The dark-current generator (being written).
