//! `mkrefs run-job JOBFILE`: one generator on one group, in its own process.

use std::path::{Path, PathBuf};

use crate::child::{Done, JobIdentity, create_parent, ffi, finish, limit_threads, program};
use crate::exec::jobfile::{JobFile, JobSpec};

/// Runs the job and returns the process exit status.
pub(crate) fn run_job(job_file: &Path, threads: usize) -> i32 {
    let spec = match JobSpec::read(job_file) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    tracing::info!(
        "job cmd{} {} ({}) on {} input(s), {threads} thread(s)",
        spec.cmd_id,
        spec.reflabel,
        spec.detector,
        spec.inputs.len()
    );
    limit_threads(threads);
    let identity = JobIdentity {
        id: spec.cmd_id,
        label: &spec.reflabel,
        output: &spec.output,
        report: &spec.report,
        scratch_dir: &spec.scratch_dir,
    };
    finish(&identity, || generate(&spec, threads))
}

fn generate(spec: &JobSpec, threads: usize) -> Result<Done, String> {
    std::fs::create_dir_all(&spec.scratch_dir).map_err(|e| {
        format!(
            "cannot create scratch directory {}: {e}",
            spec.scratch_dir.display()
        )
    })?;
    create_parent(&spec.output)?;
    let report = match &spec.program {
        Some(run) => program::call_program(spec, run, threads)?,
        None => ffi::call_generator(spec, threads)?,
    };
    if !spec.output.is_file() {
        return Err(format!(
            "generator '{}' reported success but wrote no {}",
            spec.reflabel,
            spec.output.display()
        ));
    }
    Ok(Done {
        extra_outputs: report
            .extra_outputs
            .into_iter()
            .map(PathBuf::from)
            .collect(),
        summary: report.summary,
    })
}
