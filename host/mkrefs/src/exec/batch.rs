//! A job child that a batch system started (`--batch`): the host that stamps a job before it
//! runs, locks the calibrated products it makes and records them afterwards is on another
//! machine, or gone (`--detach`), so the child does those steps around its work, exactly as
//! the local executor would.

use std::path::Path;

use crate::atomic;
use crate::exec::executor::{PreparedJob, Work, lock_products, record_products};
use crate::exec::jobfile::{CalibrationSpec, JobFile, JobSpec};
use crate::exec::lock::Lock;
use crate::inputs::fingerprint::{self, Fingerprints};

/// Which child runs the job file.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Generate,
    Calibrate,
    Combine,
}

/// Before the work: stamps the job file with the fingerprints of what the job reads (made by
/// now by the jobs before it), locks a calibration job's products and marks them being made.
pub(crate) fn prepare(job_file: &Path, kind: Kind) -> Result<(PreparedJob, Vec<Lock>), String> {
    let work = match kind {
        Kind::Generate => Work::Generate(JobSpec::read(job_file)?),
        Kind::Combine => Work::Combine(JobSpec::read(job_file)?),
        Kind::Calibrate => Work::Calibrate(CalibrationSpec::read(job_file)?),
    };
    let planned = PreparedJob {
        work,
        job_file: job_file.to_path_buf(),
        after: Vec::new(),
        blocked: None,
    };
    let fingerprints = Fingerprints::in_dir(&fingerprint::cache_dir().unwrap_or_else(|| {
        job_file
            .parent()
            .unwrap_or_else(|| Path::new("."))
            .to_path_buf()
    }));
    let locks = lock_products(&planned, false)?;
    let job = planned.stamped(&fingerprints)?;
    if let Err(e) = fingerprints.save() {
        tracing::warn!("{e} (the next run hashes its inputs again)");
    }
    atomic::write(job_file, job.to_json().as_bytes())?;
    for (product, hdus, record) in job.product_records() {
        record.write_pending(product, hdus)?;
    }
    Ok((job, locks))
}

/// After the work succeeded: the records of a calibration job's products.
pub(crate) fn complete(job: &PreparedJob) -> Result<(), String> {
    record_products(job)
}
