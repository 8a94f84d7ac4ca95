//! Runs jobs as child processes (`mkrefs run-job`), `jobs` at a time, so that a crash, abort
//! or leak in one generator fails that job only. Jobs whose output exists and whose job file
//! is unchanged (and whose last report says ok) are skipped unless forced.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::atomic;
use crate::child::PROGRESS_PREFIX;
use crate::jobfile::{JobReportFile, JobSpec};
use crate::logging;

/// A job ready to run: its spec and where its job file goes.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    pub spec: JobSpec,
    pub job_file: PathBuf,
}

impl PreparedJob {
    pub fn title(&self) -> String {
        format!(
            "cmd{} {} {}",
            self.spec.cmd_id, self.spec.reflabel, self.spec.detector
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Ok,
    Skipped,
    Failed(String),
}

impl JobStatus {
    pub fn word(&self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Skipped => "skipped",
            JobStatus::Failed(_) => "FAILED",
        }
    }
}

#[derive(Debug, Clone)]
pub struct JobResult {
    pub cmd_id: u32,
    pub reflabel: String,
    pub detector: String,
    pub status: JobStatus,
    pub seconds: f64,
    pub output: PathBuf,
    pub log: PathBuf,
    pub summary: String,
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// Jobs at the same time.
    pub jobs: usize,
    /// Threads per job.
    pub threads: usize,
    pub force: bool,
    /// Verbosity flags passed on to the children (`-v`, `-q`...).
    pub child_flags: Vec<String>,
}

/// Whether an earlier run already made this job's output from the same job file.
fn up_to_date(job: &PreparedJob, text: &str) -> bool {
    let same_job = std::fs::read_to_string(&job.job_file).is_ok_and(|old| old == text);
    let report_ok = std::fs::read_to_string(&job.spec.report)
        .ok()
        .and_then(|r| serde_json::from_str::<JobReportFile>(&r).ok())
        .is_some_and(|r| r.ok);
    same_job && report_ok && job.spec.output.is_file()
}

/// Runs every job and returns one result per job, in the order given.
pub fn execute(jobs: Vec<PreparedJob>, opts: &ExecOptions) -> Vec<JobResult> {
    let total = jobs.len();
    let overall = logging::progress_bar(total as u64, "jobs");
    let queue: Mutex<VecDeque<(usize, PreparedJob)>> =
        Mutex::new(jobs.into_iter().enumerate().collect());
    let results: Mutex<Vec<Option<JobResult>>> = Mutex::new(vec![None; total]);
    let workers = opts.jobs.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                loop {
                    let next = queue.lock().expect("queue lock").pop_front();
                    let Some((index, job)) = next else { break };
                    let result = run_one(&job, opts);
                    announce(&job, &result);
                    if let Some(bar) = &overall {
                        bar.inc(1);
                    }
                    results.lock().expect("results lock")[index] = Some(result);
                }
            });
        }
    });
    if let Some(bar) = overall {
        bar.finish_and_clear();
    }
    results
        .into_inner()
        .expect("results lock")
        .into_iter()
        .map(|r| r.expect("every job produces a result"))
        .collect()
}

fn announce(job: &PreparedJob, result: &JobResult) {
    match &result.status {
        JobStatus::Ok => tracing::info!("{}: ok in {:.2} s", job.title(), result.seconds),
        JobStatus::Skipped => tracing::info!(
            "{}: skipped, {} is up to date (use --force to redo)",
            job.title(),
            result.output.display()
        ),
        JobStatus::Failed(why) => tracing::error!(
            "{}: failed: {why} (log: {})",
            job.title(),
            result.log.display()
        ),
    }
}

fn run_one(job: &PreparedJob, opts: &ExecOptions) -> JobResult {
    let spec = &job.spec;
    let mut result = JobResult {
        cmd_id: spec.cmd_id,
        reflabel: spec.reflabel.clone(),
        detector: spec.detector.clone(),
        status: JobStatus::Ok,
        seconds: 0.0,
        output: spec.output.clone(),
        log: spec.log.clone(),
        summary: String::new(),
    };
    let text = spec.to_json();
    if !opts.force && up_to_date(job, &text) {
        result.status = JobStatus::Skipped;
        return result;
    }
    let start = Instant::now();
    result.status = match launch(job, &text, opts) {
        Ok(report) => {
            result.summary = report.summary.clone();
            if report.ok {
                JobStatus::Ok
            } else {
                JobStatus::Failed(report.error.unwrap_or_else(|| "unknown error".into()))
            }
        }
        Err(why) => JobStatus::Failed(why),
    };
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// Writes the job file, runs the child and reads its report.
fn launch(job: &PreparedJob, text: &str, opts: &ExecOptions) -> Result<JobReportFile, String> {
    let spec = &job.spec;
    // A stale output or report must not survive a job that is being redone.
    for stale in [&spec.output, &spec.report] {
        if stale.exists() {
            std::fs::remove_file(stale)
                .map_err(|e| format!("cannot remove the old {}: {e}", stale.display()))?;
        }
    }
    atomic::write(&job.job_file, text.as_bytes())?;
    let log = File::create(&spec.log)
        .map_err(|e| format!("cannot create log file {}: {e}", spec.log.display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the mkrefs executable to start the job: {e}"))?;
    let mut child = Command::new(exe)
        .arg("run-job")
        .arg(&job.job_file)
        .arg("--threads")
        .arg(opts.threads.max(1).to_string())
        .args(&opts.child_flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start the job process: {e}"))?;
    let bar = logging::progress_bar(0, &job.title());
    if let Some(stdout) = child.stdout.take() {
        forward_stdout(stdout, &spec.log, bar.as_ref());
    }
    let status = child
        .wait()
        .map_err(|e| format!("lost the job process: {e}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = read_report(&spec.report);
    match (status.success(), report) {
        (_, Some(report)) => Ok(report),
        (true, None) => Err(format!(
            "the job process ended without writing its report {}",
            spec.report.display()
        )),
        (false, None) => Err(describe_exit(status)),
    }
}

fn read_report(path: &Path) -> Option<JobReportFile> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

fn describe_exit(status: std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let name = match signal {
                6 => " (SIGABRT: the generator aborted)",
                9 => " (SIGKILL: killed, perhaps out of memory)",
                11 => " (SIGSEGV: the generator crashed)",
                _ => "",
            };
            return format!("the job process was killed by signal {signal}{name}");
        }
    }
    match status.code() {
        Some(code) => format!("the job process exited with status {code}"),
        None => "the job process ended abnormally".to_string(),
    }
}

/// Progress lines drive the job's bar; anything else a generator prints goes to its log.
fn forward_stdout(stdout: impl std::io::Read, log_path: &Path, bar: Option<&ProgressBar>) {
    let mut log = OpenOptions::new().append(true).open(log_path).ok();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Some(rest) = line.strip_prefix(PROGRESS_PREFIX) {
            let mut parts = rest.splitn(3, ' ');
            let done = parts.next().and_then(|s| s.parse::<u64>().ok());
            let total = parts.next().and_then(|s| s.parse::<u64>().ok());
            let stage = parts.next().unwrap_or("");
            if let (Some(bar), Some(done), Some(total)) = (bar, done, total) {
                if bar.length() != Some(total) {
                    bar.set_length(total);
                    bar.set_style(job_style());
                }
                bar.set_position(done);
                bar.set_message(stage.to_string());
            }
        } else if let Some(log) = log.as_mut() {
            let _ = writeln!(log, "{line}");
        }
    }
}

fn job_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:24} [{bar:30}] {pos}/{len} {msg}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// The table printed at the end of a run and kept in the run directory.
pub fn summary_table(results: &[JobResult]) -> String {
    let mut out = String::new();
    let width = results
        .iter()
        .map(|r| r.reflabel.len())
        .max()
        .unwrap_or(8)
        .max(8);
    out.push_str(&format!(
        "{:>5}  {:width$}  {:9}  {:8}  {:>8}  output\n",
        "cmdID", "reflabel", "detector", "status", "seconds"
    ));
    for r in results {
        out.push_str(&format!(
            "{:>5}  {:width$}  {:9}  {:8}  {:>8.2}  {}\n",
            r.cmd_id,
            r.reflabel,
            r.detector,
            r.status.word(),
            r.seconds,
            r.output.display()
        ));
    }
    let failed: Vec<&JobResult> = results
        .iter()
        .filter(|r| matches!(r.status, JobStatus::Failed(_)))
        .collect();
    let count = |w: &str| results.iter().filter(|r| r.status.word() == w).count();
    out.push_str(&format!(
        "{} job(s): {} ok, {} skipped, {} failed\n",
        results.len(),
        count("ok"),
        count("skipped"),
        failed.len()
    ));
    for r in failed {
        if let JobStatus::Failed(why) = &r.status {
            out.push_str(&format!(
                "cmd{} {} {} failed: {why}\n    log: {}\n",
                r.cmd_id,
                r.reflabel,
                r.detector,
                r.log.display()
            ));
        }
    }
    out
}
