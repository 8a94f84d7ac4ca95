//! The run's manifest, `<rundir>/manifest.json`: every file the run's jobs have made and that
//! exists at its end (reference files, their diagnostics, calibrated products), each with its
//! sha256, size, what made it (generator and version, or the calibration engine and its
//! steps), the parameters, and the files it was made from with their fingerprints (xxh3-128, as
//! the job files record them). It is what a delivery is checked against: written atomically
//! after every run that was not interrupted, including one where every job was up to date.
//!
//! sha256 reads every byte, so it is kept in the per-user fingerprint cache beside the xxh3
//! (see [`crate::inputs::fingerprint`]): a product that a shared ssbdir keeps for many runs is
//! read for it once, not by every run's manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic;
use crate::exec::executor::{JobResult, JobStatus, PreparedJob, Work};
use crate::exec::jobfile::{CalibrationSpec, JobFile, JobSpec};
use crate::exec::protocol::JobReportFile;
use crate::inputs::fingerprint::{self, Fingerprints};
use crate::prep::record::ProductRecord;

/// Version of the manifest layout.
pub const MANIFEST_FORMAT: u32 = 1;

/// The file name, in the run directory.
pub const MANIFEST_NAME: &str = "manifest.json";

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Manifest {
    pub format: u32,
    /// `mkrefs <version>`.
    pub mkrefs: String,
    /// Where the jobs ran: `local`.
    pub executor: String,
    pub run_dir: PathBuf,
    /// When the manifest was written (UTC).
    pub written: String,
    /// Every job of the run finished well or was up to date.
    pub complete: bool,
    /// The jobs that did not (failed, not run, held back), with their status.
    pub jobs_not_done: Vec<JobNotDone>,
    pub products: Vec<Product>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobNotDone {
    pub job: String,
    pub status: String,
}

/// One file a job made.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Product {
    pub path: PathBuf,
    /// `reference`, `diagnostic` (a generator's other outputs), `calibrated` or `final` (the
    /// combination of a reflabel's reference files, README "The final combination").
    pub kind: String,
    /// The job that made it (`cmd<N>`, `cal<N>`).
    pub job: String,
    /// Made by this run, rather than found up to date from an earlier one.
    pub made_now: bool,
    pub size: u64,
    pub modified_ns: i128,
    pub sha256: String,
    pub detector: String,
    /// The reference file type (reference and diagnostic files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reftype: Option<String>,
    /// The generator and its version, or the calibration engine.
    pub program: String,
    /// A drop-in generator's library.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub library: Option<PathBuf>,
    /// A generator's parameters, by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parameters: BTreeMap<String, Value>,
    /// A calibrated product: which (`jump`, `rateints`, ...), the steps of its state, and the
    /// extensions of a run-internal product (`None`: whole).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibrated: Option<Calibrated>,
    pub made_from: Vec<Ingredient>,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Calibrated {
    pub product: String,
    pub state: Vec<String>,
    pub extensions: Option<Vec<String>>,
}

/// A file a product was made from.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Ingredient {
    /// What the file is to the job: `dark D1`, `jump of D1`, `input`, `superbias SUPERBIAS`...
    pub role: String,
    pub path: PathBuf,
    pub size: u64,
    pub xxh3: String,
}

/// Writes the manifest of `jobs` (with their `results`, matched by job id) into `run_dir`.
pub fn write(
    run_dir: &Path,
    jobs: &[PreparedJob],
    results: &[JobResult],
    executor: &str,
    fingerprints: &Fingerprints,
) -> Result<PathBuf, String> {
    let path = run_dir.join(MANIFEST_NAME);
    let mut products = Vec::new();
    let mut jobs_not_done = Vec::new();
    for job in jobs {
        let id = job.id();
        let status = results.iter().find(|r| r.id == id).map(|r| &r.status);
        let made_now = match status {
            Some(JobStatus::Ok) => true,
            Some(JobStatus::Skipped) => false,
            other => {
                jobs_not_done.push(JobNotDone {
                    job: id,
                    status: other.map_or("not run", |s| s.word()).to_string(),
                });
                continue;
            }
        };
        products.extend(match &job.work {
            Work::Generate(spec) => generator_products(job, spec, made_now, "reference")?,
            Work::Combine(spec) => generator_products(job, spec, made_now, "final")?,
            Work::Calibrate(spec) => calibrated_products(job, spec, made_now)?,
        });
    }
    hash_products(&mut products, fingerprints)?;
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        mkrefs: format!("mkrefs {}", env!("CARGO_PKG_VERSION")),
        executor: executor.to_string(),
        run_dir: run_dir.to_path_buf(),
        written: mkrefs_support::timeutil::now_utc_iso(),
        complete: jobs_not_done.is_empty(),
        jobs_not_done,
        products,
    };
    let mut text = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    text.push('\n');
    atomic::write(&path, text.as_bytes())?;
    Ok(path)
}

/// A generator job's reference file and other outputs, from its job file (which holds the
/// fingerprints of what it read) and its report.
fn generator_products(
    job: &PreparedJob,
    spec: &JobSpec,
    made_now: bool,
    kind: &str,
) -> Result<Vec<Product>, String> {
    let spec = written_spec(&job.job_file, spec)?;
    let roles: Vec<(PathBuf, String)> = spec
        .inputs
        .iter()
        .map(|i| (i.path.clone(), format!("{} {}", i.kind, i.label)))
        .chain(
            spec.products
                .iter()
                .map(|p| (p.path.clone(), format!("{} of {}", p.product, p.label))),
        )
        .chain(
            spec.library
                .iter()
                .map(|l| (l.clone(), "library".to_string())),
        )
        .collect();
    let made_from: Vec<Ingredient> = spec
        .made_from
        .files
        .iter()
        .map(|(path, fp)| Ingredient {
            role: roles
                .iter()
                .find(|(p, _)| p == path)
                .map_or_else(|| "read".to_string(), |(_, r)| r.clone()),
            path: path.clone(),
            size: fp.size,
            xxh3: fp.xxh3.clone(),
        })
        .collect();
    let extra = JobReportFile::read(&spec.report)
        .map(|r| r.extra_outputs)
        .unwrap_or_default();
    let files = std::iter::once((spec.output.clone(), kind))
        .chain(extra.into_iter().map(|p| (p, "diagnostic")));
    let mut out = Vec::new();
    for (path, kind) in files {
        let Some((size, modified_ns)) = stat(&path, kind != "diagnostic")? else {
            continue;
        };
        out.push(Product {
            path,
            kind: kind.to_string(),
            job: job.id(),
            made_now,
            size,
            modified_ns,
            sha256: String::new(),
            detector: spec.detector.clone(),
            reftype: Some(spec.reftype.clone()),
            program: spec.made_from.program.clone(),
            library: spec.library.clone(),
            parameters: spec
                .params
                .iter()
                .map(|p| (p.name.clone(), p.value.clone()))
                .collect(),
            calibrated: None,
            made_from: made_from.clone(),
        });
    }
    Ok(out)
}

/// A calibration job's products, each from the record kept beside it.
fn calibrated_products(
    job: &PreparedJob,
    spec: &CalibrationSpec,
    made_now: bool,
) -> Result<Vec<Product>, String> {
    let spec = written_spec(&job.job_file, spec)?;
    let last = spec.state.last().cloned().unwrap_or_default();
    let files = std::iter::once((spec.final_product.clone(), last, spec.final_hdus.clone())).chain(
        spec.saves
            .iter()
            .map(|s| (s.path.clone(), s.product.clone(), s.hdus.clone())),
    );
    let mut out = Vec::new();
    for (path, product, extensions) in files {
        // Only the products the job made (a save may name the final product again).
        if out.iter().any(|p: &Product| p.path == path) {
            continue;
        }
        let Some((size, modified_ns)) = stat(&path, false)? else {
            continue;
        };
        let record = ProductRecord::read(&path);
        out.push(Product {
            path,
            kind: "calibrated".to_string(),
            job: job.id(),
            made_now,
            size,
            modified_ns,
            sha256: String::new(),
            detector: spec.detector.clone(),
            reftype: None,
            program: record.as_ref().map_or_else(
                || format!("{} backend", spec.backend),
                |r| r.program.clone(),
            ),
            library: None,
            parameters: BTreeMap::new(),
            calibrated: Some(Calibrated {
                product,
                state: spec.state.clone(),
                extensions,
            }),
            made_from: record
                .map(|r| {
                    r.ingredients
                        .into_iter()
                        .map(|i| Ingredient {
                            role: i.role,
                            path: i.path,
                            size: i.fingerprint.size,
                            xxh3: i.fingerprint.xxh3,
                        })
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The sha256 of every product, each file read once: a final file made from one reference file
/// is a hard link to it (the same device and inode), so it takes that file's hash.
fn hash_products(products: &mut [Product], fingerprints: &Fingerprints) -> Result<(), String> {
    let mut first_of: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut same_as: Vec<Option<usize>> = vec![None; products.len()];
    #[cfg(unix)]
    for (i, p) in products.iter().enumerate() {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(&p.path) {
            let first = *first_of.entry((meta.dev(), meta.ino())).or_insert(i);
            same_as[i] = (first != i).then_some(first);
        }
    }
    products
        .par_iter_mut()
        .zip(&same_as)
        .filter(|(_, same)| same.is_none())
        .try_for_each(|(p, _)| {
            p.sha256 = fingerprints
                .sha256(&p.path)
                .map_err(|e| format!("manifest: {e}"))?;
            Ok::<(), String>(())
        })?;
    for (i, same) in same_as.iter().enumerate() {
        if let Some(first) = *same {
            products[i].sha256 = products[first].sha256.clone();
        }
    }
    Ok(())
}

/// The job file as the executor wrote it (with the fingerprints of what the job read), or the
/// planned job where there is none (a calibration whose products an earlier run made).
fn written_spec<T: JobFile + Clone>(path: &Path, planned: &T) -> Result<T, String> {
    match path.is_file() {
        true => T::read(path),
        false => Ok(planned.clone()),
    }
}

/// Size and modification time of a product; `None` when it does not exist and need not.
fn stat(path: &Path, required: bool) -> Result<Option<(u64, i128)>, String> {
    match fingerprint::stat(path) {
        Ok((size, modified_ns, _)) => Ok(Some((size, modified_ns))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
        Err(e) => Err(format!(
            "manifest: cannot read {}: {e}; the run's products changed while it ended; run \
             again to write the manifest",
            path.display()
        )),
    }
}
