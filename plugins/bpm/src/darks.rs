//! Bad pixels from darks (being written).
