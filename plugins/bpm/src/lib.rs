//! The bad-pixel-mask generator (being written): bad pixels from flats ([`flats`]) and from
//! darks ([`darks`]), combined into a MASK reference file.

pub mod darks;
pub mod flats;
