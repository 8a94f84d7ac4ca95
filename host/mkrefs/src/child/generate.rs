//! The job child: `mkrefs run-job JOBFILE` runs one generator on one group in its own process,
//! so a crash or abort in a generator fails that job only. The same entry point is what a
//! batch system will run later.
//!
//! Protocol with the parent: log lines go to stderr (the parent sends them to the job's log
//! file); progress goes to stdout as lines `@@mkrefs-progress <done> <total> <stage>`; the
//! outcome is the report file named in the job file, and the exit status (0 = success).

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef, std_types::RStr};
use mkrefs_plugin_api::{
    GeneratorBox, HostCallbacks, HostCallbacks_TO, Job, LogLevel, bundled_generators, load_library,
};

use crate::atomic;
use crate::exec::jobfile::{JobReportFile, JobSpec};

/// The prefix of progress lines on the child's stdout.
pub const PROGRESS_PREFIX: &str = "@@mkrefs-progress ";

struct ChildHost;

impl HostCallbacks for ChildHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let message = message.as_str();
        match level {
            LogLevel::Error => tracing::error!(target: "generator", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "generator", "{message}"),
            LogLevel::Info => tracing::info!(target: "generator", "{message}"),
            LogLevel::Debug => tracing::debug!(target: "generator", "{message}"),
            LogLevel::Trace => tracing::trace!(target: "generator", "{message}"),
        }
    }

    fn progress(&self, stage: RStr<'_>, done: u64, total: u64) {
        let mut out = std::io::stdout().lock();
        let stage = stage.as_str().replace('\n', " ");
        let _ = writeln!(out, "{PROGRESS_PREFIX}{done} {total} {stage}");
        let _ = out.flush();
    }
}

fn find_generator(spec: &JobSpec) -> Result<GeneratorBox, String> {
    if let Some(lib) = &spec.library {
        return load_library(lib).map_err(|e| format!("library {} {e}", lib.display()));
    }
    for made in bundled_generators() {
        let g = made.map_err(|e| format!("a bundled generator could not be created: {e}"))?;
        if g.reflabel().as_str() == spec.reflabel {
            return Ok(g);
        }
    }
    Err(format!(
        "this mkrefs has no bundled generator '{}'",
        spec.reflabel
    ))
}

/// Runs the job and returns the process exit status.
pub fn run_job(job_file: &Path, threads: usize) -> i32 {
    let spec = match JobSpec::read(job_file) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    let start = Instant::now();
    tracing::info!(
        "job cmd{} {} ({}) on {} input(s), {threads} thread(s)",
        spec.cmd_id,
        spec.reflabel,
        spec.detector,
        spec.inputs.len()
    );
    // Generators that use rayon's global pool stay within the budget too.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build_global();
    let outcome = execute(&spec, threads);
    let seconds = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&spec.scratch_dir);
    let (ok, error, extra_outputs, summary) = match outcome {
        Ok(report) => (
            true,
            None,
            report
                .extra_outputs
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
            report.summary.to_string(),
        ),
        Err(e) => (false, Some(e), Vec::new(), String::new()),
    };
    match &error {
        None => tracing::info!("finished in {seconds:.2} s: {}", spec.output.display()),
        Some(e) => tracing::error!("failed after {seconds:.2} s: {e}"),
    }
    let report = JobReportFile {
        cmd_id: spec.cmd_id,
        reflabel: spec.reflabel.clone(),
        ok,
        error,
        seconds,
        output: spec.output.clone(),
        extra_outputs,
        summary,
    };
    let text = serde_json::to_string_pretty(&report).expect("reports always serialize");
    if let Err(e) = atomic::write(&spec.report, text.as_bytes()) {
        tracing::error!("{e}");
        return 2;
    }
    if ok { 0 } else { 1 }
}

fn execute(spec: &JobSpec, threads: usize) -> Result<mkrefs_plugin_api::JobReport, String> {
    let generator = find_generator(spec)?;
    std::fs::create_dir_all(&spec.scratch_dir).map_err(|e| {
        format!(
            "cannot create scratch directory {}: {e}",
            spec.scratch_dir.display()
        )
    })?;
    if let Some(dir) = spec.output.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create output directory {}: {e}", dir.display()))?;
    }
    let inputs = spec.ffi_inputs()?;
    let host = ChildHost;
    let job = Job {
        reflabel: spec.reflabel.as_str().into(),
        reftype: spec.reftype.as_str().into(),
        cmd_id: spec.cmd_id,
        output: spec.output.to_string_lossy().as_ref().into(),
        inputs: inputs.into(),
        params: spec.ffi_params().into(),
        scratch_dir: spec.scratch_dir.to_string_lossy().as_ref().into(),
        threads: threads.max(1) as u32,
        extensions: spec.ffi_extensions().into(),
        host: HostCallbacks_TO::from_ptr(RRef::new(&host), TD_Opaque),
    };
    let report = generator
        .call_algorithm(&job)
        .into_result()
        .map_err(|e| e.to_string())?;
    if !spec.output.is_file() {
        return Err(format!(
            "generator '{}' reported success but wrote no {}",
            spec.reflabel,
            spec.output.display()
        ));
    }
    Ok(report)
}
