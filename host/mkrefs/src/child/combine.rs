//! `mkrefs run-combine JOBFILE`: the final stage for one reflabel and detector, in its own
//! process (see [`crate::combine`]).

use std::path::{Path, PathBuf};

use crate::child::{Done, JobIdentity, finish};
use crate::combine::file::combine_files;
use crate::combine::rule::Rule;
use crate::exec::jobfile::{JobFile, JobSpec};

/// Runs the job and returns the process exit status.
pub(crate) fn run_combine(job_file: &Path) -> i32 {
    let spec = match JobSpec::read(job_file) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    tracing::info!(
        "job fin{} combine {} ({}) from {} file(s)",
        spec.cmd_id,
        spec.reflabel,
        spec.detector,
        spec.inputs.len()
    );
    let identity = JobIdentity {
        id: spec.cmd_id,
        label: &spec.reflabel,
        output: &spec.output,
        report: &spec.report,
        scratch_dir: &spec.scratch_dir,
    };
    finish(&identity, || {
        let rule = Rule::from_params(&spec.params)?;
        let inputs: Vec<PathBuf> = spec.inputs.iter().map(|i| i.path.clone()).collect();
        let summary = combine_files(&inputs, &spec.output, rule)?;
        tracing::info!("{summary}");
        Ok(Done {
            extra_outputs: Vec::new(),
            summary,
        })
    })
}
