//! What of a product is written: the whole product as the jwst pipeline writes it, or only the
//! extensions the run's generators read (a run-internal product, see the mkrefs README,
//! "Run-internal products").
//!
//! A full product is synced to disk before it takes its name; a run-internal one is not:
//! nobody outside the run reads it, and the host proves it intact by its content hash before
//! reusing it, so syncing would only make the disk flush gigabytes the run will read back from
//! memory.

use std::collections::BTreeSet;

/// The extensions of a product to write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Form {
    /// Every extension, synced to disk (a product the user keeps or another program reads).
    #[default]
    Full,
    /// Only these extensions (upper-case EXTNAMEs; the primary header is always written), not
    /// synced.
    Only(BTreeSet<String>),
}

impl Form {
    /// Whether the extension `name` is written.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Form::Full => true,
            Form::Only(names) => names.contains(name),
        }
    }

    /// Whether flag planes (a ramp's GROUPDQ) are written tile-compressed: only in a
    /// run-internal product, which no jwst datamodel reads (stdatamodels expects plain images)
    /// and whose flags, nearly all zero, would otherwise be a fifth of what a campaign writes.
    pub fn compresses_flags(&self) -> bool {
        matches!(self, Form::Only(_))
    }

    /// Whether the file is synced to disk before it is renamed to its final name.
    pub fn durable(&self) -> bool {
        matches!(self, Form::Full)
    }
}
