//! JWST data-quality flags and DQ_DEF tables.

/// One row of a DQ_DEF binary table: bit number, value (2^bit, 0 for GOOD), name, description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DqDefRow {
    pub bit: i32,
    pub value: u32,
    pub name: String,
    pub description: String,
}
