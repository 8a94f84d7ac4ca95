//! The job children: `mkrefs run-job` (a generator on a group, [`generate`]),
//! `mkrefs run-calibration` (one exposure to its calibration state, [`calibrate`]) and
//! `mkrefs run-combine` (the final stage, [`combine`]), each in its own process so that a crash
//! fails that job only; the same entry points are what a batch system runs. All end the same
//! way ([`finish`]): the scratch directory removed, the report
//! written (`exec::protocol`), the exit status returned.

pub(crate) mod calibrate;
pub(crate) mod combine;
mod ffi;
pub(crate) mod generate;
mod program;

pub(crate) use ffi::probe_library;

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::exec::protocol::JobReportFile;

/// What every job child reports, whatever it ran.
struct JobIdentity<'a> {
    id: u32,
    /// The reflabel, or `calibrate`.
    label: &'a str,
    output: &'a Path,
    report: &'a Path,
    scratch_dir: &'a Path,
}

/// What a child's work made besides its output, and a one-line summary.
struct Done {
    extra_outputs: Vec<PathBuf>,
    summary: String,
}

/// Limits rayon's global pool to the job's threads, so code that uses it stays in budget.
fn limit_threads(threads: usize) {
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
}

/// Runs `work`, then cleans up and reports; returns the process exit status.
fn finish(job: &JobIdentity<'_>, work: impl FnOnce() -> Result<Done, String>) -> i32 {
    let start = Instant::now();
    let outcome = work();
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(job.scratch_dir);
    let report = match outcome {
        Ok(done) => {
            tracing::info!("finished in {seconds:.2} s: {}", job.output.display());
            JobReportFile {
                cmd_id: job.id,
                reflabel: job.label.to_string(),
                ok: true,
                error: None,
                seconds,
                output: job.output.to_path_buf(),
                extra_outputs: done.extra_outputs,
                summary: done.summary,
            }
        }
        Err(e) => {
            tracing::error!("failed after {seconds:.2} s: {e}");
            JobReportFile {
                cmd_id: job.id,
                reflabel: job.label.to_string(),
                ok: false,
                error: Some(e),
                seconds,
                output: job.output.to_path_buf(),
                extra_outputs: Vec::new(),
                summary: String::new(),
            }
        }
    };
    if let Err(e) = report.write(job.report) {
        tracing::error!("{e}");
        return 2;
    }
    if report.ok { 0 } else { 1 }
}

/// Creates the parent directory of `path`.
fn create_parent(path: &Path) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    Ok(())
}
