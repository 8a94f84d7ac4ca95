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
//!
//! A run-internal product (only some extensions, not synced to disk; README, "Run-internal
//! products") also records its extensions and its content hash: after a crash its size and
//! time may be right while its data never reached the disk, so its reuse is proven by the
//! hash, read again each time, and a reader needing an extension it lacks has it made again.

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
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub size: u64,
    pub modified_ns: i128,
    pub inode: u64,
    /// xxh3-128 of a run-internal product's content (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xxh3: Option<String>,
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
    /// The extensions of a run-internal product; `None` for a whole product.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdus: Option<Vec<String>>,
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
        xxh3: None,
    })
}

impl ProductRecord {
    /// Notes, before the job starts, that `product` is being made from this (run-internal
    /// with the extensions `hdus` when given).
    pub fn write_pending(&self, product: &Path, hdus: Option<&[String]>) -> Result<(), String> {
        let pending = ProductRecord {
            written: None,
            hdus: hdus.map(<[String]>::to_vec),
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&pending).expect("a record serializes");
        atomic::write(&record_path(product), text.as_bytes())
    }

    /// The record of the job's product at `state`, one of the states the job passes through
    /// (a saved jump product before the ramp fit): the steps run and the reference files read
    /// up to that state. A product is then judged by what made it, so the same jump product
    /// made by a job that stops at jump (for the dark) and by one that goes on to the ramp fit
    /// (for the bpm) is the same, and neither run makes it again for the other.
    pub fn for_state(&self, state: &[String]) -> ProductRecord {
        let reaches = |step: &str| state.iter().any(|s| s == step);
        ProductRecord {
            run: self.run.iter().filter(|s| reaches(s)).cloned().collect(),
            state: state.to_vec(),
            ingredients: self
                .ingredients
                .iter()
                .filter(|i| match i.role.split_once(' ') {
                    Some((step, _)) => reaches(step),
                    None => true,
                })
                .cloned()
                .collect(),
            ..self.clone()
        }
    }

    /// Completes the record of `product`, which the job has just written (run-internal with
    /// the extensions `hdus` when given: its content hash is recorded too).
    pub fn write_made(&self, product: &Path, hdus: Option<&[String]>) -> Result<(), String> {
        let unreadable = |e: std::io::Error| {
            format!(
                "the calibration job succeeded but its product {} cannot be read: {e}",
                product.display()
            )
        };
        let mut stat = written(product).map_err(unreadable)?;
        if hdus.is_some() {
            stat.xxh3 = Some(fingerprint::hash_file(product).map_err(unreadable)?);
        }
        let made = ProductRecord {
            written: Some(stat),
            hdus: hdus.map(<[String]>::to_vec),
            ..self.clone()
        };
        let text = serde_json::to_string_pretty(&made).expect("a record serializes");
        atomic::write(&record_path(product), text.as_bytes())
    }

    /// The record kept beside `product`, if there is a readable one of this format.
    pub fn read(product: &Path) -> Option<ProductRecord> {
        let text = std::fs::read_to_string(record_path(product)).ok()?;
        serde_json::from_str::<ProductRecord>(&text)
            .ok()
            .filter(|r| r.format == RECORD_FORMAT)
    }

    /// Why `product` is not what a job with this record would make now, reading the
    /// extensions `hdus` (`None`: the whole product); `Err(None)` when there is no product to
    /// reuse (so making it needs no explanation).
    pub fn check(&self, product: &Path, hdus: Option<&[String]>) -> Result<(), Option<String>> {
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
        let Some(w) = &old.written else {
            return Err(Some(format!(
                "{} was being made when its run stopped",
                product.display()
            )));
        };
        if (w.size, w.modified_ns, w.inode) != (now.size, now.modified_ns, now.inode) {
            return Err(Some(format!(
                "{} was changed after it was made",
                product.display()
            )));
        }
        if let Some(missing) = lacking(old.hdus.as_deref(), hdus) {
            return Err(Some(format!(
                "{} holds only {} of the product, and this run also reads {missing}",
                product.display(),
                old.hdus.as_deref().unwrap_or_default().join(", ")
            )));
        }
        if let Some(recorded) = &w.xxh3 {
            let intact = fingerprint::hash_file(product).is_ok_and(|h| h == *recorded);
            if !intact {
                return Err(Some(format!(
                    "{} no longer has the content it was written with (a write cut short by a \
                     crash, or an edit that kept its size and time)",
                    product.display()
                )));
            }
        }
        self.changes_from(&old).map_or(Ok(()), |why| Err(Some(why)))
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

/// What a product holding the extensions `has` (`None`: all) lacks of `wants` (`None`: the
/// whole product), for messages; `None` when it lacks nothing.
fn lacking(has: Option<&[String]>, wants: Option<&[String]>) -> Option<String> {
    let has = has?;
    match wants {
        None => Some("the rest (the whole product)".to_string()),
        Some(w) => {
            let missing: Vec<&str> = w
                .iter()
                .filter(|x| !has.contains(x))
                .map(String::as_str)
                .collect();
            (!missing.is_empty()).then(|| missing.join(", "))
        }
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
            hdus: None,
        }
    }

    #[test]
    fn a_product_is_reused_only_while_its_record_matches() {
        let dir = tempfile::tempdir().unwrap();
        let product = dir.path().join("a_superbias.fits");
        let made = record("r1", ("/run1/bias.fits", "b1"));
        // No product, nothing to explain.
        assert_eq!(made.check(&product, None), Err(None));
        std::fs::write(&product, b"data").unwrap();
        // A product without a record (made by another program).
        assert!(
            made.check(&product, None)
                .unwrap_err()
                .unwrap()
                .contains("no record")
        );
        made.write_pending(&product, None).unwrap();
        assert!(
            made.check(&product, None)
                .unwrap_err()
                .unwrap()
                .contains("being made")
        );
        made.write_made(&product, None).unwrap();
        assert_eq!(made.check(&product, None), Ok(()));
        // The same superbias content under another run's path still matches.
        assert_eq!(
            record("r1", ("/run2/bias.fits", "b1")).check(&product, None),
            Ok(())
        );
        let other_data = record("r2", ("/run1/bias.fits", "b1")).check(&product, None);
        assert_eq!(
            other_data,
            Err(Some("/d/a_uncal.fits changed since".into()))
        );
        let other_bias = record("r1", ("/run2/bias.fits", "b2")).check(&product, None);
        assert!(
            other_bias
                .unwrap_err()
                .unwrap()
                .contains("made from /run1/bias.fits as superbias SUPERBIAS, now /run2/bias.fits")
        );
        // Edited after it was made.
        std::fs::write(&product, b"other data").unwrap();
        assert!(
            made.check(&product, None)
                .unwrap_err()
                .unwrap()
                .contains("changed after")
        );
    }

    #[test]
    fn a_run_internal_product_is_proven_by_its_hash_and_extensions() {
        let dir = tempfile::tempdir().unwrap();
        let product = dir.path().join("a_jump.fits");
        let made = record("r1", ("/run1/bias.fits", "b1"));
        let hdus = ["GROUPDQ".to_string(), "SCI".to_string()];
        std::fs::write(&product, b"pixels").unwrap();
        made.write_made(&product, Some(&hdus)).unwrap();
        assert_eq!(made.check(&product, Some(&hdus)), Ok(()));
        assert_eq!(made.check(&product, Some(&hdus[1..])), Ok(()));
        let more = ["PIXELDQ".to_string(), "SCI".to_string()];
        let why = made.check(&product, Some(&more)).unwrap_err().unwrap();
        assert!(
            why.contains("holds only GROUPDQ, SCI of the product, and this run also reads PIXELDQ"),
            "{why}"
        );
        let why = made.check(&product, None).unwrap_err().unwrap();
        assert!(why.contains("the whole product"), "{why}");
        // Torn by a crash: same size and time, other bytes.
        let (size, modified, _) = fingerprint::stat(&product).unwrap();
        std::fs::write(&product, b"\0\0\0\0\0\0").unwrap();
        let f = std::fs::File::options().write(true).open(&product).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(modified as u64);
        f.set_modified(t).unwrap();
        assert_eq!(fingerprint::stat(&product).unwrap().0, size);
        let why = made.check(&product, Some(&hdus)).unwrap_err().unwrap();
        assert!(why.contains("no longer has the content"), "{why}");
    }

    #[test]
    fn the_record_sits_beside_the_product() {
        assert_eq!(
            record_path(Path::new("/ssb/a_uncal_dq_init.fits")),
            Path::new("/ssb/a_uncal_dq_init.fits.made_from.json")
        );
    }
}
