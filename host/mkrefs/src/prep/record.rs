//! What a calibrated product was made from, kept beside it in a small JSON file
//! (`<product>.made_from.json`): the program that made it, its steps, and the fingerprint of
//! the file the steps started from and of every reference file they read.
//!
//! A product with a record was made by mkrefs, so a run never takes it on trust: the plan gives
//! it a calibration job, and the job is skipped only while the record matches what the job
//! would read now (by content: the same raw data and reference files under new paths, such as
//! a superbias remade identically in a new run directory, still match). A product without a
//! record is the user's own (made by the jwst pipeline, say) and is used as found. The record
//! is written before the job starts ("being made") and completed with the product's size,
//! modification time and inode once the job succeeds, so a product left by an interrupted job,
//! edited afterwards or replaced by another file, is made again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::inputs::fingerprint::{self, Fingerprint};

/// Version of the record's layout; records of another version are not trusted.
pub const RECORD_FORMAT: u32 = 1;

/// The ending added to a product's file name for its record.
const RECORD_ENDING: &str = ".made_from.json";

/// One file a product was made from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Ingredient {
    /// What the file is to the job: `input`, or `<step> <REFTYPE>` for a reference file.
    pub role: String,
    pub path: PathBuf,
    pub fingerprint: Fingerprint,
}

/// A product's size, modification time and inode when it was made: any of them changing means
/// the file is no longer the one the job wrote (edited, or another file put in its place).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub modified_ns: i128,
    pub inode: u64,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct ProductRecord {
    pub format: u32,
    /// The engine that made it, with its version (or the jwst backend's `strun`).
    pub program: String,
    /// The steps run, in pipeline order, and the state of the product.
    pub run: Vec<String>,
    pub state: Vec<String>,
    pub ingredients: Vec<Ingredient>,
    /// `None` while the product is being made.
    pub written: Option<Written>,
}

/// Where the record of `product` is kept.
pub fn record_path(product: &Path) -> PathBuf {
    let mut name = product.file_name().unwrap_or_default().to_os_string();
    name.push(RECORD_ENDING);
    product.with_file_name(name)
}

/// Whether mkrefs made (or began to make) `product`.
pub fn has_record(product: &Path) -> bool {
    record_path(product).is_file()
}

fn written(product: &Path) -> std::io::Result<Written> {
    let (size, modified_ns, inode) = fingerprint::stat(product)?;
    Ok(Written {
        size,
        modified_ns,
        inode,
    })
}

impl ProductRecord {
    /// Notes, before the job starts, that `product` is being made from this.
    pub fn write_pending(&self, product: &Path) -> Result<(), String> {
        let pending = ProductRecord {
            written: None,
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&pending).expect("a record serializes");
        atomic::write(&record_path(product), text.as_bytes())
    }

    /// Completes the record of `product`, which the job has just written.
    pub fn write_made(&self, product: &Path) -> Result<(), String> {
        let stat = written(product).map_err(|e| {
            format!(
                "the calibration job succeeded but its product {} cannot be read: {e}",
                product.display()
            )
        })?;
        let made = ProductRecord {
            written: Some(stat),
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&made).expect("a record serializes");
        atomic::write(&record_path(product), text.as_bytes())
    }

    /// Why `product` is not what a job with this record would make now; `Err(None)` when
    /// there is no product to reuse (so making it needs no explanation).
    pub fn check(&self, product: &Path) -> Result<(), Option<String>> {
        let Ok(now) = written(product) else {
            return Err(None);
        };
        let path = record_path(product);
        let old = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<ProductRecord>(&text).ok(),
            Err(_) => {
                return Err(Some(format!(
                    "{} has no record of what it was made from",
                    product.display()
                )));
            }
        };
        let old = match old {
            Some(o) if o.format == RECORD_FORMAT => o,
            _ => {
                return Err(Some(format!(
                    "{} is unreadable or from another version of mkrefs",
                    path.display()
                )));
            }
        };
        match old.written {
            None => Err(Some(format!(
                "{} was being made when its run stopped",
                product.display()
            ))),
            Some(w) if w != now => Err(Some(format!(
                "{} was changed after it was made",
                product.display()
            ))),
            Some(_) => self.changes_from(&old).map_or(Ok(()), |why| Err(Some(why))),
        }
    }

    /// Why `old` does not describe this product, in one line; `None` when both agree on
    /// everything that decides it. Files are compared by content, not by path.
    fn changes_from(&self, old: &ProductRecord) -> Option<String> {
        if old.program != self.program {
            return Some(format!(
                "it was made by {}, this run uses {}",
                old.program, self.program
            ));
        }
        if old.run != self.run || old.state != self.state {
            return Some(format!(
                "it was made by running {} (now {})",
                old.run.join(", "),
                self.run.join(", ")
            ));
        }
        for i in &self.ingredients {
            match old.ingredients.iter().find(|o| o.role == i.role) {
                Some(o) if o.fingerprint.xxh3 == i.fingerprint.xxh3 => {}
                Some(o) if o.path == i.path => {
                    return Some(format!("{} changed since", i.path.display()));
                }
                Some(o) => {
                    return Some(format!(
                        "it was made from {} as {}, now {} (other content)",
                        o.path.display(),
                        i.role,
                        i.path.display()
                    ));
                }
                None => return Some(format!("it now reads {} as {}", i.path.display(), i.role)),
            }
        }
        if let Some(o) = old
            .ingredients
            .iter()
            .find(|o| !self.ingredients.iter().any(|i| i.role == o.role))
        {
            return Some(format!(
                "it was made with {} as {}, which this run does not give",
                o.path.display(),
                o.role
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(hash: &str) -> Fingerprint {
        Fingerprint {
            size: 1,
            modified_ns: 1,
            xxh3: hash.into(),
        }
    }

    fn record(raw_hash: &str, bias: (&str, &str)) -> ProductRecord {
        ProductRecord {
            format: RECORD_FORMAT,
            program: "mkrefs 1 native engine".into(),
            run: vec!["dq_init".into(), "superbias".into()],
            state: vec!["dq_init".into(), "superbias".into()],
            ingredients: vec![
                Ingredient {
                    role: "input".into(),
                    path: "/d/a_uncal.fits".into(),
                    fingerprint: fp(raw_hash),
                },
                Ingredient {
                    role: "superbias SUPERBIAS".into(),
                    path: bias.0.into(),
                    fingerprint: fp(bias.1),
                },
            ],
            written: None,
        }
    }

    #[test]
    fn a_product_is_reused_only_while_its_record_matches() {
        let dir = tempfile::tempdir().unwrap();
        let product = dir.path().join("a_superbias.fits");
        let made = record("r1", ("/run1/bias.fits", "b1"));
        // No product, nothing to explain.
        assert_eq!(made.check(&product), Err(None));
        std::fs::write(&product, b"data").unwrap();
        // A product without a record (made by another program).
        assert!(
            made.check(&product)
                .unwrap_err()
                .unwrap()
                .contains("no record")
        );
        made.write_pending(&product).unwrap();
        assert!(
            made.check(&product)
                .unwrap_err()
                .unwrap()
                .contains("being made")
        );
        made.write_made(&product).unwrap();
        assert_eq!(made.check(&product), Ok(()));
        // The same superbias content under another run's path still matches.
        assert_eq!(
            record("r1", ("/run2/bias.fits", "b1")).check(&product),
            Ok(())
        );
        let other_data = record("r2", ("/run1/bias.fits", "b1")).check(&product);
        assert_eq!(
            other_data,
            Err(Some("/d/a_uncal.fits changed since".into()))
        );
        let other_bias = record("r1", ("/run2/bias.fits", "b2")).check(&product);
        assert!(
            other_bias
                .unwrap_err()
                .unwrap()
                .contains("made from /run1/bias.fits as superbias SUPERBIAS, now /run2/bias.fits")
        );
        // Edited after it was made.
        std::fs::write(&product, b"other data").unwrap();
        assert!(
            made.check(&product)
                .unwrap_err()
                .unwrap()
                .contains("changed after")
        );
    }

    #[test]
    fn the_record_sits_beside_the_product() {
        assert_eq!(
            record_path(Path::new("/ssb/a_uncal_dq_init.fits")),
            Path::new("/ssb/a_uncal_dq_init.fits.made_from.json")
        );
    }
}
