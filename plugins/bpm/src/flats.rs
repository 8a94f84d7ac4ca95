//! Bad pixels from flats (being written).
