//! A generator program's job: the job child writes the program's job file, runs
//! `PROGRAM run JOB.json` (its stdout and stderr are the job child's, so progress lines reach
//! the executor and everything else the job's log), then checks what it wrote and gives the
//! output its final name. The program writes under a temporary name, so a program that dies
//! half-way never leaves a file with the final name, however it writes.
//!
//! The program's job file, format 1, carries the fields of the ABI's `Job`: `reflabel`,
//! `reftype`, `cmd_id`, `output` (where to write the reference file), `inputs` (each with
//! `label`, `kind` dark|flat, `path` at its calibration state, `raw_path`, `mjd`, `detector`
//! and the collected `header` keys), `params` (every parameter, resolved and checked),
//! `extensions` (`product.<label>.<product>`: the intermediate products the generator
//! asked for), `scratch_dir`, `threads`; and `report`, where the program writes
//! `{"summary": "...", "extra_outputs": [...]}` when it succeeds.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::child::ffi::GeneratorReport;
use crate::exec::jobfile::{JobSpec, ProgramRun};
use crate::registry::executable::command;

/// The job-file format given to programs.
const FORMAT: u32 = 1;

#[derive(Deserialize)]
struct ProgramReport {
    #[serde(default)]
    summary: String,
    #[serde(default)]
    extra_outputs: Vec<PathBuf>,
}

/// Runs the job's generator program.
pub(crate) fn call_program(
    spec: &JobSpec,
    run: &ProgramRun,
    threads: usize,
) -> Result<GeneratorReport, String> {
    let program = spec
        .library
        .as_deref()
        .ok_or("the job names a generator program but not its file")?;
    let partial = partial_output(&spec.output);
    let report_path = spec.scratch_dir.join("program-report.json");
    let job_path = spec.scratch_dir.join("program-job.json");
    let job = job_document(spec, &partial, &report_path, threads);
    std::fs::write(
        &job_path,
        serde_json::to_vec_pretty(&job).unwrap_or_default(),
    )
    .map_err(|e| format!("cannot write {}: {e}", job_path.display()))?;
    let threads = threads.max(1).to_string();
    let status = command(program, run.interpreter.as_deref())
        .arg("run")
        .arg(&job_path)
        .stdin(Stdio::null())
        // numpy's BLAS and OpenMP pools stay within the job's threads.
        .env("OMP_NUM_THREADS", &threads)
        .env("OPENBLAS_NUM_THREADS", &threads)
        .env("MKL_NUM_THREADS", &threads)
        .status()
        .map_err(|e| format!("cannot start generator program {}: {e}", program.display()));
    let result = status.and_then(|status| {
        if !status.success() {
            return Err(format!(
                "generator program {} failed ({status}); its messages are in this log",
                program.display()
            ));
        }
        finish_output(spec, program, &partial, &report_path)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// `.<name>.part-<pid>.fits` beside the output: on the same file system, so the final
/// rename is atomic, and still a `.fits` name for programs that look at it.
fn partial_output(output: &Path) -> PathBuf {
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    output.with_file_name(format!(".{name}.part-{}.fits", std::process::id()))
}

fn job_document(spec: &JobSpec, output: &Path, report: &Path, threads: usize) -> Value {
    let object = |pairs: &mut dyn Iterator<Item = (String, Value)>| -> Value {
        Value::Object(pairs.collect::<Map<String, Value>>())
    };
    let inputs: Vec<Value> = spec
        .inputs
        .iter()
        .map(|i| {
            json!({
                "label": i.label,
                "kind": i.kind,
                "path": i.path,
                "raw_path": i.raw_path,
                "mjd": i.mjd,
                "detector": i.detector,
                "header": object(&mut i.header.iter().map(|h| (h.name.clone(), h.value.clone()))),
            })
        })
        .collect();
    json!({
        "mkrefs_job": FORMAT,
        "reflabel": spec.reflabel,
        "reftype": spec.reftype,
        "cmd_id": spec.cmd_id,
        "output": output,
        "report": report,
        "inputs": inputs,
        "params": object(&mut spec.params.iter().map(|p| (p.name.clone(), p.value.clone()))),
        "extensions": object(&mut spec.products.iter().map(|p| (
            format!("{}{}.{}", mkrefs_plugin_api::PRODUCT_PREFIX, p.label, p.product),
            Value::String(p.path.to_string_lossy().into_owned()),
        ))),
        "scratch_dir": spec.scratch_dir,
        "threads": threads.max(1),
    })
}

/// Checks the program's output and report, syncs the output and gives it its final name.
fn finish_output(
    spec: &JobSpec,
    program: &Path,
    partial: &Path,
    report_path: &Path,
) -> Result<GeneratorReport, String> {
    let who = format!("generator program {}", program.display());
    let text = std::fs::read_to_string(report_path).map_err(|e| {
        format!(
            "{who} exited successfully but wrote no report {} ({e}); it must write \
             {{\"summary\": ..., \"extra_outputs\": [...]}} there",
            report_path.display()
        )
    })?;
    let report: ProgramReport = serde_json::from_str(&text)
        .map_err(|e| format!("{who} wrote a report that is not valid: {e}"))?;
    let mut head = [0u8; 9];
    let is_fits = std::fs::File::open(partial)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut head))
        .is_ok_and(|()| &head == b"SIMPLE  =");
    if !is_fits {
        return Err(format!(
            "{who} reported success but wrote no FITS file at the job's output {}",
            partial.display()
        ));
    }
    // Extra files (diagnostics) belong beside the output, inside the run directory.
    let dir = spec.output.parent().unwrap_or(Path::new("."));
    for extra in &report.extra_outputs {
        if !extra.starts_with(dir) || !extra.is_file() {
            return Err(format!(
                "{who} reports the extra output {}, which is not a file in {}; write extra \
                 files beside the output",
                extra.display(),
                dir.display()
            ));
        }
    }
    std::fs::File::open(partial)
        .and_then(|f| f.sync_all())
        .and_then(|()| std::fs::rename(partial, &spec.output))
        .map_err(|e| format!("cannot move {} into place: {e}", partial.display()))?;
    Ok(GeneratorReport {
        summary: report.summary,
        extra_outputs: report
            .extra_outputs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
    })
}
