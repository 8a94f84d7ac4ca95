//! Runs jobs as child processes (`mkrefs run-job`), `jobs` at a time, so that a crash, abort
//! or leak in one generator fails that job only. A job whose outputs exist and were made from
//! what it would read now is skipped unless forced: a generator job by its job file, a
//! calibration job by its products' records. A calibration job holds a lock on its products
//! while it checks and makes them, since the ssbdir is shared between runs.
//!
//! Jobs form a dependency graph: a job starts only when every job it depends on has finished
//! well (calibration before the generators that read its products; a reference file made in
//! the run before the calibration that uses it). When a dependency fails, its dependents do
//! not run and are listed as such; every other job still runs.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::atomic;
use crate::exec::cores::{self, Cores};
use crate::exec::interrupt;
use crate::exec::jobfile::{CalibrationSpec, JobFile, JobSpec};
use crate::exec::lock::{self, Lock};
use crate::exec::protocol::{JobReportFile, PROGRESS_PREFIX};
use crate::inputs::fingerprint::Fingerprints;
use crate::logging;
use crate::prep::record::{Ingredient, ProductRecord, RECORD_FORMAT};

/// What a job does.
#[derive(Debug, Clone)]
pub enum Work {
    /// Run a generator on a group (`mkrefs run-job`).
    Generate(JobSpec),
    /// Bring an exposure to a calibration state (`mkrefs run-calibration`).
    Calibrate(CalibrationSpec),
    /// Combine a reflabel's reference files into `final/` (`mkrefs run-combine`): a generator
    /// job's spec whose inputs are the reference files and whose parameters are the rule.
    Combine(JobSpec),
}

/// A job ready to run: what it does and where its job file goes.
#[derive(Debug, Clone)]
pub struct PreparedJob {
    pub work: Work,
    pub job_file: PathBuf,
    /// Indices (in the list given to [`execute`]) of the jobs that must succeed first.
    pub after: Vec<usize>,
    /// Why the job cannot run, found while planning (e.g. a broken product, a reference file
    /// that fits no input); it fails at once and its dependents are listed as not run.
    pub blocked: Option<String>,
}

impl PreparedJob {
    /// The job's estimated peak memory ([`cores::job_memory`]).
    fn memory(&self) -> u64 {
        match &self.work {
            Work::Generate(_) | Work::Combine(_) => cores::job_memory(None, false),
            Work::Calibrate(s) => {
                let raw = std::fs::metadata(&s.input).map_or(0, |m| m.len());
                cores::job_memory(Some(raw), s.backend == "jwst")
            }
        }
    }

    /// `cmd<N>` for generator jobs, `cal<N>` for calibration jobs.
    pub fn id(&self) -> String {
        match &self.work {
            Work::Generate(s) => format!("cmd{}", s.cmd_id),
            Work::Calibrate(s) => format!("cal{}", s.cal_id),
            Work::Combine(s) => format!("fin{}", s.cmd_id),
        }
    }

    /// The reflabel, or `calibrate`.
    pub fn label(&self) -> &str {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => &s.reflabel,
            Work::Calibrate(_) => "calibrate",
        }
    }

    pub fn detector(&self) -> &str {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => &s.detector,
            Work::Calibrate(s) => &s.detector,
        }
    }

    pub fn output(&self) -> &Path {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => &s.output,
            Work::Calibrate(s) => &s.final_product,
        }
    }

    pub fn log(&self) -> &Path {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => &s.log,
            Work::Calibrate(s) => &s.log,
        }
    }

    pub fn report(&self) -> &Path {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => &s.report,
            Work::Calibrate(s) => &s.report,
        }
    }

    pub(crate) fn to_json(&self) -> String {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => s.to_json(),
            Work::Calibrate(s) => s.to_json(),
        }
    }

    /// The child subcommand that runs the job file.
    pub(crate) fn subcommand(&self) -> &'static str {
        match &self.work {
            Work::Generate(_) => "run-job",
            Work::Calibrate(_) => "run-calibration",
            Work::Combine(_) => "run-combine",
        }
    }

    pub fn title(&self) -> String {
        format!("{} {} {}", self.id(), self.label(), self.detector())
    }

    /// The job with the fingerprints of the files it reads, as they are now: what decides
    /// whether its outputs are up to date.
    pub(crate) fn stamped(&self, fingerprints: &Fingerprints) -> Result<PreparedJob, String> {
        let mut job = self.clone();
        match &mut job.work {
            Work::Generate(s) | Work::Combine(s) => {
                let files: Vec<PathBuf> = s
                    .inputs
                    .iter()
                    .map(|i| i.path.clone())
                    .chain(s.products.iter().map(|p| p.path.clone()))
                    .chain(s.library.clone())
                    .collect();
                let prints = fingerprints.of_all(&files)?;
                s.made_from.files = files.into_iter().zip(prints).collect();
            }
            Work::Calibrate(s) => {
                s.made_from = Some(Box::new(calibration_record(s, fingerprints)?))
            }
        }
        Ok(job)
    }

    /// Every file the job writes besides its log and report.
    pub(crate) fn outputs(&self) -> Vec<&Path> {
        self.output_forms().into_iter().map(|(p, _)| p).collect()
    }

    /// Each product of a calibration job with the extensions it holds when run-internal and
    /// its own record ([`ProductRecord::for_state`]: a saved step's product by the steps up to
    /// that step; rateints and fitopt, like the final product, by all of them).
    pub(crate) fn product_records(&self) -> Vec<(&Path, Option<&[String]>, ProductRecord)> {
        let Work::Calibrate(s) = &self.work else {
            return Vec::new();
        };
        let record = s.made_from.as_ref().expect("the job is stamped");
        let upto = |product: &str| {
            s.state
                .iter()
                .position(|step| step == product)
                .map_or(s.state.len(), |i| i + 1)
        };
        std::iter::once((&s.final_product, s.final_hdus.as_deref(), s.state.len()))
            .chain(
                s.saves
                    .iter()
                    .map(|p| (&p.path, p.hdus.as_deref(), upto(&p.product))),
            )
            .map(|(p, h, n)| (p.as_path(), h, record.for_state(&s.state[..n])))
            .collect()
    }

    /// Each output with the extensions it holds when run-internal (`None`: whole).
    pub(crate) fn output_forms(&self) -> Vec<(&Path, Option<&[String]>)> {
        match &self.work {
            Work::Generate(s) | Work::Combine(s) => vec![(&s.output, None)],
            Work::Calibrate(s) => std::iter::once((&s.final_product, s.final_hdus.as_deref()))
                .chain(s.saves.iter().map(|p| (&p.path, p.hdus.as_deref())))
                .map(|(p, h)| (p.as_path(), h))
                .collect(),
        }
    }
}

/// What a calibration job's products are made from: the engine, the steps, and the
/// fingerprints of the file the steps start from and of each reference file.
fn calibration_record(
    spec: &CalibrationSpec,
    fingerprints: &Fingerprints,
) -> Result<ProductRecord, String> {
    let mut roles = vec![("input".to_string(), spec.input.clone())];
    for r in &spec.references {
        roles.push((format!("{} {}", r.step, r.reftype), r.path.clone()));
    }
    let paths: Vec<PathBuf> = roles.iter().map(|(_, p)| p.clone()).collect();
    let prints = fingerprints.of_all(&paths)?;
    let program = match &spec.strun {
        Some(strun) if spec.backend == "jwst" => format!("the jwst pipeline ({strun})"),
        _ => format!("the native engine of mkrefs {}", env!("CARGO_PKG_VERSION")),
    };
    Ok(ProductRecord {
        format: RECORD_FORMAT,
        program,
        run: spec.run.clone(),
        state: spec.state.clone(),
        ingredients: roles
            .into_iter()
            .zip(prints)
            .map(|((role, path), fingerprint)| Ingredient {
                role,
                path,
                fingerprint,
            })
            .collect(),
        written: None,
        hdus: None,
    })
}

#[derive(Debug, Clone, PartialEq)]
pub enum JobStatus {
    Ok,
    Skipped,
    Failed(String),
    /// Not run because a job it depends on failed (or the dependencies form a cycle).
    NotRun(String),
    /// Held back for a later run by `--maxNstrun`/`--maxNref` (or because a job it needs
    /// was); not a failure.
    Held(String),
    /// Submitted to the batch system by a run that does not follow its jobs (`--detach`);
    /// `mkrefs status` reports how it ended.
    Submitted(String),
}

impl JobStatus {
    pub fn word(&self) -> &'static str {
        match self {
            JobStatus::Ok => "ok",
            JobStatus::Skipped => "skipped",
            JobStatus::Failed(_) => "FAILED",
            JobStatus::NotRun(_) => "not run",
            JobStatus::Held(_) => "held",
            JobStatus::Submitted(_) => "submitted",
        }
    }

    /// Whether dependents may run after this.
    pub fn succeeded(&self) -> bool {
        matches!(self, JobStatus::Ok | JobStatus::Skipped)
    }
}

#[derive(Debug, Clone)]
pub struct JobResult {
    /// `cmd<N>` or `cal<N>`.
    pub id: String,
    /// The reflabel, or `calibrate`.
    pub label: String,
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
    /// The threads jobs get (see [`Cores`]).
    pub cores: Cores,
    /// The memory jobs may take together ([`cores::available_memory`]); `None`: no limit.
    pub memory: Option<u64>,
    pub force: bool,
    /// Verbosity flags passed on to the children (`-v`, `-q`...).
    pub child_flags: Vec<String>,
    /// At most this many calibration jobs run (`--maxNstrun`).
    pub max_calibrations: Option<usize>,
    /// At most this many generator jobs run (`--maxNref`).
    pub max_generators: Option<usize>,
    /// Fingerprints of the files jobs read, recorded in their job files.
    pub fingerprints: Arc<Fingerprints>,
    /// Calibration jobs run even when their products are up to date (`--recalibrate`).
    pub recalibrate: bool,
    /// Stop instead of waiting for a product another run is making (`--no-wait`).
    pub no_wait: bool,
}

/// How many jobs of each kind have been started, against `ExecOptions`' limits.
#[derive(Default)]
struct Started {
    calibrations: AtomicUsize,
    generators: AtomicUsize,
}

impl Started {
    /// Counts the job in, or says which limit holds it back.
    fn admit(&self, job: &PreparedJob, opts: &ExecOptions) -> Result<(), String> {
        let (count, limit, option) = match job.work {
            Work::Calibrate(_) => (&self.calibrations, opts.max_calibrations, "--maxNstrun"),
            Work::Generate(_) => (&self.generators, opts.max_generators, "--maxNref"),
            // Nothing limits the final stage: it runs when what it combines has been made.
            Work::Combine(_) => return Ok(()),
        };
        let Some(limit) = limit else {
            return Ok(());
        };
        count
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| format!("{option} {limit} reached; run again to make it"))
    }
}

/// Whether an earlier run already made this job's outputs from the same things. Otherwise,
/// when there were earlier outputs, why they are made again.
pub(crate) fn up_to_date(job: &PreparedJob, text: &str) -> Result<(), Option<String>> {
    match &job.work {
        Work::Generate(spec) | Work::Combine(spec) => generator_up_to_date(job, spec, text),
        Work::Calibrate(_) => job
            .product_records()
            .into_iter()
            .try_for_each(|(p, hdus, record)| record.check(p, hdus)),
    }
}

/// A generator job is up to date when its output exists, its last report says ok and its job
/// file (the generator, parameters and files it read, by content) is unchanged.
fn generator_up_to_date(
    job: &PreparedJob,
    spec: &JobSpec,
    text: &str,
) -> Result<(), Option<String>> {
    let Ok(old_text) = std::fs::read_to_string(&job.job_file) else {
        return Err(None);
    };
    let report_ok = JobReportFile::read(job.report()).is_some_and(|r| r.ok);
    if !report_ok || !job.output().is_file() {
        return Err(None);
    }
    if old_text == text {
        return Ok(());
    }
    let why = match JobSpec::read_text(&old_text, &job.job_file) {
        Ok(old) => spec.changes_from(&old),
        Err(_) => Some("its job file is from another version of mkrefs".to_string()),
    };
    Err(Some(
        why.unwrap_or_else(|| "its job file changed".to_string()),
    ))
}

/// Locks the job's outputs that other runs may share (calibrated products), in name order so
/// that two runs never wait on each other.
fn lock_outputs(job: &PreparedJob, opts: &ExecOptions) -> Result<Vec<Lock>, String> {
    lock_products(job, opts.no_wait)
}

/// Locks a calibration job's products (none for other jobs), in name order.
pub(crate) fn lock_products(job: &PreparedJob, no_wait: bool) -> Result<Vec<Lock>, String> {
    if !matches!(job.work, Work::Calibrate(_)) {
        return Ok(Vec::new());
    }
    let mut outputs = job.outputs();
    outputs.sort();
    outputs
        .into_iter()
        .map(|p| {
            let what = format!("{}: the product {}", job.title(), p.display());
            lock::acquire(&lock::beside(p), &what, no_wait)
        })
        .collect()
}

/// Runs every job and returns one result per job, in the order given.
pub fn execute(jobs: Vec<PreparedJob>, opts: &ExecOptions) -> Vec<JobResult> {
    let overall = logging::progress_bar(jobs.len() as u64, "jobs");
    let started = Started::default();
    let finished = std::sync::atomic::AtomicBool::new(false);
    let results = std::thread::scope(|scope| {
        // Passes a SIGINT/SIGTERM on to the running children (the workers wait for them).
        let watcher = scope.spawn(|| {
            while !finished.load(Ordering::SeqCst) {
                if let Some(signal) = interrupt::received() {
                    tracing::warn!(
                        "{}: stopping the running jobs and starting no more",
                        interrupt::signal_name(signal)
                    );
                    interrupt::stop_children();
                    return;
                }
                std::thread::park_timeout(std::time::Duration::from_millis(100));
            }
        });
        let limits = Limits {
            workers: opts.jobs,
            cores: opts.cores,
            memory: opts.memory,
        };
        let results = schedule(&jobs, limits, |job, threads| {
            let result = run_one(job, threads, opts, &started);
            if let Some(bar) = &overall {
                bar.inc(1);
            }
            result
        });
        finished.store(true, Ordering::SeqCst);
        watcher.thread().unpark();
        results
    });
    if let Some(bar) = overall {
        bar.finish_and_clear();
    }
    results
}

/// What the scheduler shares out: job slots, threads and memory.
#[derive(Clone, Copy)]
struct Limits {
    workers: usize,
    cores: Cores,
    /// The memory jobs may take together; `None`: no limit.
    memory: Option<u64>,
}

/// Where a job stands while the graph runs.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Waiting,
    Running,
    Done { ok: bool },
}

/// Runs `run` on every job, at most `workers` at a time, each only after the jobs it depends
/// on succeeded, with the threads `cores` gives it; among the ready ones, those more jobs wait
/// on first, then in list order (see [`crate::exec::cores`]). Dependents of a failed job get a
/// [`JobStatus::NotRun`] result naming it.
fn schedule(
    jobs: &[PreparedJob],
    limits: Limits,
    run: impl Fn(&PreparedJob, usize) -> JobResult + Sync,
) -> Vec<JobResult> {
    let total = jobs.len();
    let after: Vec<Vec<usize>> = jobs.iter().map(|j| j.after.clone()).collect();
    let waiting_on = cores::waiting_on(&after);
    let mut order: Vec<usize> = (0..total).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(waiting_on[i]), i));
    let memory: Vec<u64> = jobs.iter().map(PreparedJob::memory).collect();
    // The threads and the estimated memory of the running jobs.
    let busy = Mutex::new((0usize, 0u64));
    let memory_said = std::sync::atomic::AtomicBool::new(false);
    let (workers, cores) = (limits.workers, limits.cores);
    let board = Mutex::new((vec![State::Waiting; total], vec![None::<JobResult>; total]));
    let changed = Condvar::new();
    let workers = workers.clamp(1, total.max(1));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let mut guard = board.lock().expect("scheduler lock");
                loop {
                    let (states, results) = &mut *guard;
                    block_dependents(jobs, states, results);
                    if let Some(signal) = interrupt::received() {
                        stop_waiting(jobs, states, results, signal);
                    }
                    let ready: Vec<usize> = order
                        .iter()
                        .copied()
                        .filter(|&i| {
                            states[i] == State::Waiting
                                && jobs[i]
                                    .after
                                    .iter()
                                    .all(|&d| states[d] == State::Done { ok: true })
                        })
                        .collect();
                    let running = states.iter().filter(|s| **s == State::Running).count();
                    let startable = {
                        let (_, in_use) = *busy.lock().expect("busy lock");
                        ready.iter().copied().find(|&i| {
                            cores::fits_in_memory(limits.memory, in_use, memory[i], running)
                        })
                    };
                    if startable.is_none()
                        && let Some(&i) = ready.first()
                        && !memory_said.swap(true, Ordering::SeqCst)
                    {
                        tracing::info!(
                            "{} waits for memory: it may take {:.1} GB, and the running jobs \
                             together may take what the system had available ({:.1} GB of \
                             {:.1} GB in use)",
                            jobs[i].title(),
                            memory[i] as f64 / 1e9,
                            busy.lock().expect("busy lock").1 as f64 / 1e9,
                            limits.memory.unwrap_or(0) as f64 / 1e9
                        );
                    }
                    if let Some(i) = startable {
                        states[i] = State::Running;
                        let threads = {
                            let mut busy = busy.lock().expect("busy lock");
                            let t = cores.threads_for(busy.0, ready.len());
                            busy.0 += t;
                            busy.1 += memory[i];
                            t
                        };
                        drop(guard);
                        let result = run(&jobs[i], threads);
                        announce(&jobs[i], &result);
                        {
                            let mut busy = busy.lock().expect("busy lock");
                            busy.0 -= threads;
                            busy.1 -= memory[i];
                        }
                        guard = board.lock().expect("scheduler lock");
                        let (states, results) = &mut *guard;
                        states[i] = State::Done {
                            ok: result.status.succeeded(),
                        };
                        results[i] = Some(result);
                        changed.notify_all();
                        continue;
                    }
                    let waiting = states.contains(&State::Waiting);
                    let running = states.contains(&State::Running);
                    if !waiting {
                        break;
                    }
                    if !running {
                        // Nothing runs and nothing can start: the rest wait on each other.
                        for i in 0..total {
                            if states[i] == State::Waiting {
                                states[i] = State::Done { ok: false };
                                results[i] =
                                    Some(not_run(&jobs[i], "its dependencies form a cycle".into()));
                            }
                        }
                        changed.notify_all();
                        break;
                    }
                    // Woken by a finished job, or after a while to notice a signal.
                    guard = changed
                        .wait_timeout(guard, std::time::Duration::from_millis(200))
                        .expect("scheduler lock")
                        .0;
                }
            });
        }
    });
    let (_, results) = board.into_inner().expect("scheduler lock");
    results
        .into_iter()
        .map(|r| r.expect("every job produces a result"))
        .collect()
}

/// After a signal, the jobs that have not started are not started.
fn stop_waiting(
    jobs: &[PreparedJob],
    states: &mut [State],
    results: &mut [Option<JobResult>],
    signal: i32,
) {
    for i in 0..jobs.len() {
        if states[i] == State::Waiting {
            let why = format!("the run was stopped by {}", interrupt::signal_name(signal));
            results[i] = Some(not_run(&jobs[i], why));
            states[i] = State::Done { ok: false };
        }
    }
}

/// Marks, transitively, the waiting dependents of failed jobs as not run.
fn block_dependents(jobs: &[PreparedJob], states: &mut [State], results: &mut [Option<JobResult>]) {
    loop {
        let mut changed = false;
        for i in 0..jobs.len() {
            if states[i] != State::Waiting {
                continue;
            }
            if let Some(&d) = jobs[i]
                .after
                .iter()
                .find(|&&d| states[d] == State::Done { ok: false })
            {
                let held = matches!(
                    results[d].as_ref().map(|r| &r.status),
                    Some(JobStatus::Held(_))
                );
                let mut result = not_run(&jobs[i], String::new());
                result.status = if held {
                    JobStatus::Held(format!("it needs {}, which was held back", jobs[d].title()))
                } else {
                    JobStatus::NotRun(format!(
                        "it needs {}, which did not succeed",
                        jobs[d].title()
                    ))
                };
                announce(&jobs[i], &result);
                states[i] = State::Done { ok: false };
                results[i] = Some(result);
                changed = true;
            }
        }
        if !changed {
            return;
        }
    }
}

pub(crate) fn not_run(job: &PreparedJob, why: String) -> JobResult {
    JobResult {
        id: job.id(),
        label: job.label().to_string(),
        detector: job.detector().to_string(),
        status: JobStatus::NotRun(why),
        seconds: 0.0,
        output: job.output().to_path_buf(),
        log: job.log().to_path_buf(),
        summary: String::new(),
    }
}

pub(crate) fn announce(job: &PreparedJob, result: &JobResult) {
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
        JobStatus::NotRun(why) => tracing::error!("{}: not run: {why}", job.title()),
        JobStatus::Held(why) => tracing::info!("{}: held back: {why}", job.title()),
        JobStatus::Submitted(how) => tracing::info!("{}: submitted: {how}", job.title()),
    }
}

fn run_one(job: &PreparedJob, threads: usize, opts: &ExecOptions, started: &Started) -> JobResult {
    let mut result = not_run(job, String::new());
    if let Some(why) = &job.blocked {
        result.status = JobStatus::Failed(why.clone());
        return result;
    }
    let _locks = match lock_outputs(job, opts) {
        Ok(locks) => locks,
        Err(why) => {
            result.status = JobStatus::Failed(why);
            return result;
        }
    };
    let job = match job.stamped(&opts.fingerprints) {
        Ok(j) => j,
        Err(why) => {
            result.status = JobStatus::Failed(why);
            return result;
        }
    };
    let job = &job;
    let text = job.to_json();
    let forced = match job.work {
        Work::Generate(_) | Work::Combine(_) => opts.force,
        Work::Calibrate(_) => opts.recalibrate,
    };
    match up_to_date(job, &text) {
        Ok(()) if !forced => {
            result.status = JobStatus::Skipped;
            return result;
        }
        Err(Some(why)) if !forced => {
            tracing::info!("{}: made again: {why}", job.title());
        }
        _ => {}
    }
    if let Err(why) = started.admit(job, opts) {
        result.status = JobStatus::Held(why);
        return result;
    }
    let start = Instant::now();
    result.status = match launch(job, &text, threads, opts) {
        Ok(report) => {
            result.summary = report.summary.clone();
            if report.ok {
                record_products(job).map_or_else(JobStatus::Failed, |()| JobStatus::Ok)
            } else {
                JobStatus::Failed(report.error.unwrap_or_else(|| "unknown error".into()))
            }
        }
        Err(why) => JobStatus::Failed(why),
    };
    result.seconds = start.elapsed().as_secs_f64();
    result
}

/// Completes the records of a calibration job's products (see [`crate::prep::record`]).
pub(crate) fn record_products(job: &PreparedJob) -> Result<(), String> {
    job.product_records()
        .into_iter()
        .try_for_each(|(p, hdus, record)| record.write_made(p, hdus))
}

/// Writes the job file, runs the child and reads its report.
fn launch(
    job: &PreparedJob,
    text: &str,
    threads: usize,
    opts: &ExecOptions,
) -> Result<JobReportFile, String> {
    // A stale output or report must not survive a job that is being redone, and a product
    // is marked as being made until the job has succeeded.
    for stale in job.outputs().into_iter().chain([job.report()]) {
        if stale.exists() {
            std::fs::remove_file(stale)
                .map_err(|e| format!("cannot remove the old {}: {e}", stale.display()))?;
        }
    }
    for (product, hdus, record) in job.product_records() {
        record.write_pending(product, hdus)?;
    }
    for file in [&job.job_file, job.log()] {
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
        }
    }
    atomic::write(&job.job_file, text.as_bytes())?;
    let log = File::create(job.log())
        .map_err(|e| format!("cannot create log file {}: {e}", job.log().display()))?;
    let exe = std::env::current_exe()
        .map_err(|e| format!("cannot find the mkrefs executable to start the job: {e}"))?;
    let mut child = Command::new(exe)
        .arg(job.subcommand())
        .arg(&job.job_file)
        .arg("--threads")
        .arg(threads.max(1).to_string())
        .args(&opts.child_flags)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .spawn()
        .map_err(|e| format!("cannot start the job process: {e}"))?;
    interrupt::register(child.id());
    if interrupt::received().is_some() {
        // Started just as the run was being stopped: the watcher may have passed it by.
        interrupt::stop_children();
    }
    let bar = logging::progress_bar(0, &job.title());
    if let Some(stdout) = child.stdout.take() {
        forward_stdout(stdout, job.log(), bar.as_ref());
    }
    let status = child.wait();
    interrupt::unregister(child.id());
    let status = status.map_err(|e| format!("lost the job process: {e}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let report = JobReportFile::read(job.report());
    match (status.success(), report) {
        (_, Some(report)) => Ok(report),
        (true, None) => Err(format!(
            "the job process ended without writing its report {}",
            job.report().display()
        )),
        (false, None) => Err(match interrupt::received() {
            Some(signal) => format!("stopped by {}", interrupt::signal_name(signal)),
            None => describe_exit(status),
        }),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::jobfile::JOB_FORMAT;

    const LIMITS: Limits = Limits {
        workers: 2,
        cores: Cores {
            total: 2,
            per_job: 1,
            adaptive: true,
        },
        memory: None,
    };

    fn job(cmd_id: u32, after: &[usize]) -> PreparedJob {
        let p = PathBuf::from(format!("/nowhere/cmd{cmd_id}"));
        PreparedJob {
            work: Work::Generate(JobSpec {
                format: JOB_FORMAT,
                cmd_id,
                reflabel: "x".into(),
                reftype: "X".into(),
                detector: "NRCA1".into(),
                library: None,
                program: None,
                output: p.with_extension("fits"),
                log: p.with_extension("log"),
                report: p.with_extension("report.json"),
                scratch_dir: p.clone(),
                inputs: Vec::new(),
                products: Vec::new(),
                params: Vec::new(),
                made_from: Default::default(),
            }),
            job_file: p.with_extension("job.json"),
            after: after.to_vec(),
            blocked: None,
        }
    }

    /// A runner that fails the jobs in `fail` and records start and end events.
    fn runner<'a>(
        fail: &'a [u32],
        events: &'a Mutex<Vec<String>>,
    ) -> impl Fn(&PreparedJob, usize) -> JobResult + Sync + 'a {
        move |j, _threads| {
            let Work::Generate(spec) = &j.work else {
                unreachable!("the tests schedule generator jobs")
            };
            let id = spec.cmd_id;
            events.lock().unwrap().push(format!("start {id}"));
            std::thread::sleep(std::time::Duration::from_millis(20));
            events.lock().unwrap().push(format!("end {id}"));
            let mut r = not_run(j, String::new());
            r.status = if fail.contains(&id) {
                JobStatus::Failed("boom".into())
            } else {
                JobStatus::Ok
            };
            r
        }
    }

    fn position(events: &[String], e: &str) -> usize {
        events
            .iter()
            .position(|x| x == e)
            .unwrap_or_else(|| panic!("{e} in {events:?}"))
    }

    #[test]
    fn dependents_start_after_their_dependencies_finish() {
        // 0 <- 1 <- 2, and 3 independent; two workers.
        let jobs = vec![job(0, &[]), job(1, &[0]), job(2, &[1]), job(3, &[])];
        let events = Mutex::new(Vec::new());
        let results = schedule(&jobs, LIMITS, runner(&[], &events));
        assert!(results.iter().all(|r| r.status == JobStatus::Ok));
        let ev = events.into_inner().unwrap();
        assert!(position(&ev, "end 0") < position(&ev, "start 1"), "{ev:?}");
        assert!(position(&ev, "end 1") < position(&ev, "start 2"), "{ev:?}");
        // The independent job runs beside the chain, not after it.
        assert!(position(&ev, "start 3") < position(&ev, "end 2"), "{ev:?}");
    }

    #[test]
    fn jobs_that_would_not_fit_in_memory_together_run_one_after_the_other() {
        // Each generator job is taken to need 1 GB; 1.5 GB are available.
        let jobs = vec![job(0, &[]), job(1, &[])];
        let events = Mutex::new(Vec::new());
        let limits = Limits {
            memory: Some(3 << 29),
            ..LIMITS
        };
        let results = schedule(&jobs, limits, runner(&[], &events));
        assert!(results.iter().all(|r| r.status == JobStatus::Ok));
        let ev = events.into_inner().unwrap();
        assert!(position(&ev, "end 0") < position(&ev, "start 1"), "{ev:?}");
        // With enough memory they overlap.
        let events = Mutex::new(Vec::new());
        schedule(&jobs, LIMITS, runner(&[], &events));
        let ev = events.into_inner().unwrap();
        assert!(position(&ev, "start 1") < position(&ev, "end 0"), "{ev:?}");
    }

    #[test]
    fn a_failure_stops_its_dependents_only() {
        // 0 fails; 1 needs 0; 2 needs 1; 3 is independent.
        let jobs = vec![job(0, &[]), job(1, &[0]), job(2, &[1]), job(3, &[])];
        let events = Mutex::new(Vec::new());
        let results = schedule(&jobs, LIMITS, runner(&[0], &events));
        assert!(matches!(results[0].status, JobStatus::Failed(_)));
        match &results[1].status {
            JobStatus::NotRun(why) => assert!(why.contains("cmd0"), "{why}"),
            other => panic!("{other:?}"),
        }
        match &results[2].status {
            JobStatus::NotRun(why) => assert!(why.contains("cmd1"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert_eq!(results[3].status, JobStatus::Ok);
        let ev = events.into_inner().unwrap();
        assert!(
            !ev.iter().any(|e| e == "start 1" || e == "start 2"),
            "{ev:?}"
        );
    }

    #[test]
    fn a_dependency_cycle_is_reported_not_waited_for() {
        let jobs = vec![job(0, &[1]), job(1, &[0]), job(2, &[])];
        let events = Mutex::new(Vec::new());
        let results = schedule(&jobs, LIMITS, runner(&[], &events));
        for r in &results[..2] {
            match &r.status {
                JobStatus::NotRun(why) => assert!(why.contains("cycle"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(results[2].status, JobStatus::Ok);
    }
}
