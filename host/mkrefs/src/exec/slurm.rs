//! The Slurm executor (README, "Running on a Slurm cluster"). Every job that is not found up to
//! date becomes one `sbatch` job running `mkrefs run-job|run-calibration|run-combine JOBFILE
//! --batch` on a node, through a fixed script that executes its arguments (so no user string
//! passes through a shell). The run's dependencies go to Slurm (`--dependency=afterok:...` with
//! `--kill-on-invalid-dep=yes`); jobs are named `mkrefs-<run>-<job>`, the child's stderr is the
//! job's log and its stdout a `.slurm.out` file beside it. The submitting process then follows
//! the jobs (`squeue`, and each job's report for how it ended) and ends as a local run does;
//! with `--detach` it returns once they are submitted, and `mkrefs status RUNDIR` reports later.
//!
//! A job whose inputs exist when the run starts is checked as a local run checks it and skipped
//! when up to date; one that waits on a job being run is submitted, since what it will read
//! does not exist yet. A job that failed for its node (NODE_FAIL, PREEMPTED, BOOT_FAIL) is
//! submitted again up to `executor.retries` times, and so are the jobs Slurm cancelled because
//! they waited on it, and so is one that ran out of memory where `retry_mem` gives it more; a
//! job that failed on its data is not.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::config::settings::{BatchOptions, ExecutorSettings};
use crate::exec::executor::{
    ExecOptions, JobResult, JobStatus, PreparedJob, Work, announce, not_run, up_to_date,
};
use crate::exec::interrupt;
use crate::exec::protocol::JobReportFile;
use crate::logging;

/// Seconds between two looks at the queue.
const POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Slurm states after which a job may be submitted again (the node failed, not the job).
const NODE_STATES: &[&str] = &["NODE_FAIL", "PREEMPTED", "BOOT_FAIL"];

/// What a job's state is taken to be once Slurm no longer lists it (after `MinJobAge`).
pub(crate) const UNKNOWN: &str = "UNKNOWN";

/// States in which a job has not ended.
const LIVE_STATES: &[&str] = &[
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "SUSPENDED",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SIGNALING",
    "STAGE_OUT",
    "STOPPED",
];

/// What the run does on Slurm.
pub(crate) struct SlurmRun<'a> {
    pub settings: &'a ExecutorSettings,
    pub run_dir: &'a Path,
    /// `<outsubdir>_run<NNN>`-like name, in the Slurm job names.
    pub run_name: &'a str,
    pub detach: bool,
    /// Threads per job where `cpus_per_task` is not configured.
    pub threads: usize,
}

/// One submitted job, as `<rundir>/slurm/jobs.json` keeps it for `mkrefs status`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Submission {
    pub job: String,
    pub title: String,
    pub slurm_id: String,
    pub attempt: u32,
    /// Submitted with `retry_mem`, after running out of memory.
    #[serde(default)]
    pub raised_mem: bool,
    pub report: PathBuf,
    pub output: PathBuf,
    pub log: PathBuf,
}

/// The file that lists a run's submissions.
pub(crate) fn submissions_file(run_dir: &Path) -> PathBuf {
    run_dir.join("slurm").join("jobs.json")
}

/// Where a job stands.
enum Track {
    Undecided,
    /// To be submitted (decided, not yet given to sbatch).
    ToSubmit,
    Submitted(Submission),
    Done(JobStatus, f64, String),
}

/// Runs `jobs` on Slurm; one result per job, in the order given.
pub(crate) fn execute(
    jobs: &[PreparedJob],
    opts: &ExecOptions,
    run: &SlurmRun<'_>,
) -> Vec<JobResult> {
    let mut track: Vec<Track> = jobs.iter().map(|_| Track::Undecided).collect();
    let order = topological(jobs);
    let script = match write_script(run.run_dir) {
        Ok(s) => s,
        Err(e) => {
            return jobs.iter().map(|j| failed(j, e.clone())).collect();
        }
    };
    for &i in &order {
        track[i] = decide(jobs, i, &track, opts).unwrap_or(Track::ToSubmit);
        announce_done(&jobs[i], &track[i]);
    }
    // The calibrations that wait on nothing go as one job array (they share their options);
    // every other job on its own, after the jobs it waits on.
    let array: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| {
            matches!(track[i], Track::ToSubmit)
                && matches!(jobs[i].work, Work::Calibrate(_))
                && !jobs[i]
                    .after
                    .iter()
                    .any(|&d| matches!(track[d], Track::ToSubmit))
        })
        .collect();
    if array.len() > 1 {
        let submitted = submit_array(jobs, &array, run, opts);
        for (&i, t) in array.iter().zip(submitted) {
            track[i] = t;
            announce_done(&jobs[i], &track[i]);
        }
    }
    for &i in &order {
        if !matches!(track[i], Track::ToSubmit) {
            continue;
        }
        // A job it waits on could not be submitted: it has nothing to wait for.
        let lost = jobs[i]
            .after
            .iter()
            .find(|&&d| matches!(&track[d], Track::Done(s, ..) if !s.succeeded()));
        track[i] = match lost {
            Some(&d) => Track::needs(jobs, d),
            None => submit(jobs, i, &track, run, &script, opts, (1, false)),
        };
        announce_done(&jobs[i], &track[i]);
    }
    for (i, j) in jobs.iter().enumerate() {
        if matches!(track[i], Track::Undecided) {
            track[i] = Track::ended(JobStatus::NotRun(
                "its dependencies form a cycle".to_string(),
            ));
            announce_done(j, &track[i]);
        }
    }
    let mut submitted = BTreeMap::new();
    save_submissions(run.run_dir, &track, &mut submitted);
    if !run.detach {
        follow(jobs, &mut track, &order, run, &script, opts, &mut submitted);
    }
    jobs.iter()
        .zip(track)
        .map(|(j, t)| match t {
            Track::Done(status, seconds, summary) => result_of(j, status, seconds, summary),
            Track::Submitted(s) => result_of(
                j,
                JobStatus::Submitted(format!("Slurm job {}", s.slurm_id)),
                0.0,
                String::new(),
            ),
            Track::Undecided | Track::ToSubmit => not_run(j, "never decided".into()),
        })
        .collect()
}

impl Track {
    /// Ended without running (no time, no summary).
    fn ended(status: JobStatus) -> Track {
        Track::Done(status, 0.0, String::new())
    }

    /// Not run because job `d` did not succeed.
    fn needs(jobs: &[PreparedJob], d: usize) -> Track {
        let why = format!("it needs {}, which did not succeed", jobs[d].title());
        Track::ended(JobStatus::NotRun(why))
    }
}

/// Says how a job ended, when it has.
fn announce_done(job: &PreparedJob, track: &Track) {
    if let Track::Done(status, seconds, summary) = track {
        announce(
            job,
            &result_of(job, status.clone(), *seconds, summary.clone()),
        );
    }
}

fn result_of(job: &PreparedJob, status: JobStatus, seconds: f64, summary: String) -> JobResult {
    let mut r = not_run(job, String::new());
    r.status = status;
    r.seconds = seconds;
    r.summary = summary;
    r
}

fn failed(job: &PreparedJob, why: String) -> JobResult {
    result_of(job, JobStatus::Failed(why), 0.0, String::new())
}

/// The jobs in an order where each comes after those it needs (Kahn); jobs on a cycle are
/// left out.
fn topological(jobs: &[PreparedJob]) -> Vec<usize> {
    let mut waiting: Vec<usize> = jobs.iter().map(|j| j.after.len()).collect();
    let mut ready: Vec<usize> = (0..jobs.len()).filter(|&i| waiting[i] == 0).collect();
    let mut order = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.first().copied() {
        ready.remove(0);
        order.push(i);
        for (k, j) in jobs.iter().enumerate() {
            if j.after.contains(&i) {
                waiting[k] -= 1;
                if waiting[k] == 0 {
                    ready.push(k);
                }
            }
        }
    }
    order
}

/// What happens to job `i` without submitting it: failed when blocked, not run after a
/// failure, skipped when its inputs exist and its outputs are up to date; `None`: submit it.
fn decide(jobs: &[PreparedJob], i: usize, track: &[Track], opts: &ExecOptions) -> Option<Track> {
    let job = &jobs[i];
    if let Some(why) = &job.blocked {
        return Some(Track::ended(JobStatus::Failed(why.clone())));
    }
    let mut waits = false;
    for &d in &job.after {
        match &track[d] {
            Track::Done(s, ..) if s.succeeded() => {}
            Track::Done(..) | Track::Undecided => return Some(Track::needs(jobs, d)),
            Track::Submitted(_) | Track::ToSubmit => waits = true,
        }
    }
    if waits {
        return None;
    }
    let stamped = match job.stamped(&opts.fingerprints) {
        Ok(j) => j,
        Err(why) => return Some(Track::ended(JobStatus::Failed(why))),
    };
    let forced = match job.work {
        Work::Generate(_) | Work::Combine(_) => opts.force,
        Work::Calibrate(_) => opts.recalibrate,
    };
    match up_to_date(&stamped, &stamped.to_json()) {
        Ok(()) if !forced => Some(Track::ended(JobStatus::Skipped)),
        Err(Some(why)) if !forced => {
            tracing::info!("{}: made again: {why}", job.title());
            None
        }
        _ => None,
    }
}

/// The script every Slurm job runs: it executes its arguments, which sbatch passes on
/// unchanged, so no path or name is ever parsed by a shell.
fn write_script(run_dir: &Path) -> Result<PathBuf, String> {
    let path = run_dir.join("slurm").join("job.sh");
    atomic::write(
        &path,
        b"#!/bin/sh\n# Written by mkrefs: runs the command sbatch passes as arguments.\nexec \"$@\"\n",
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make {} executable: {e}", path.display()))?;
    Ok(path)
}

/// The sbatch options of a job: the section's, with the override of its reflabel (or
/// `calibrate`, `combine`) in their place.
fn options_for(job: &PreparedJob, settings: &ExecutorSettings) -> BatchOptions {
    let key = match &job.work {
        Work::Generate(s) => s.reflabel.as_str(),
        Work::Calibrate(_) => "calibrate",
        Work::Combine(_) => "combine",
    };
    match settings.overrides.get(key) {
        Some(over) => settings.batch.with(over),
        None => settings.batch.clone(),
    }
}

/// Clears what an earlier attempt left (a stale report or output must not pass for this
/// job's), creates the job's directories and writes its job file.
fn prepare_files(job: &PreparedJob) -> Result<(), String> {
    for stale in job.outputs().into_iter().chain([job.report()]) {
        if stale.exists() {
            std::fs::remove_file(stale)
                .map_err(|e| format!("cannot remove the old {}: {e}", stale.display()))?;
        }
    }
    for dir in [job.job_file.parent(), job.log().parent()]
        .into_iter()
        .flatten()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    atomic::write(&job.job_file, job.to_json().as_bytes())
}

/// The sbatch arguments every job of `job`'s kind gets (with `retry_mem` as its memory when
/// `raised`), and the threads it runs with.
fn common_args(job: &PreparedJob, run: &SlurmRun<'_>, raised: bool) -> (Vec<String>, usize) {
    let mut o = options_for(job, run.settings);
    if raised {
        o.mem = o.retry_mem.clone();
    }
    let cpus = o.cpus_per_task.map_or(run.threads, |c| c as usize).max(1);
    let mut args: Vec<String> = vec![
        "--parsable".into(),
        format!("--chdir={}", run.run_dir.display()),
        format!("--cpus-per-task={cpus}"),
        "--no-requeue".into(),
    ];
    for (flag, value) in [
        ("partition", &o.partition),
        ("account", &o.account),
        ("qos", &o.qos),
        ("time", &o.time),
        ("mem", &o.mem),
    ] {
        if let Some(v) = value {
            args.push(format!("--{flag}={v}"));
        }
    }
    args.extend(o.extra_args.iter().cloned());
    (args, cpus)
}

/// The command a job's Slurm job runs, before its job file: the child with `--batch`.
fn child_command(
    job: &PreparedJob,
    cpus: usize,
    opts: &ExecOptions,
) -> Result<Vec<String>, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the mkrefs executable: {e}"))?;
    let mut cmd = vec![exe.display().to_string()];
    cmd.extend(opts.child_flags.iter().cloned());
    cmd.extend([
        job.subcommand().to_string(),
        "--threads".into(),
        cpus.to_string(),
        "--batch".into(),
    ]);
    Ok(cmd)
}

fn submission(job: &PreparedJob, slurm_id: String, attempt: u32, raised_mem: bool) -> Submission {
    Submission {
        job: job.id(),
        title: job.title(),
        slurm_id,
        attempt,
        raised_mem,
        report: job.report().to_path_buf(),
        output: job.output().to_path_buf(),
        log: job.log().to_path_buf(),
    }
}

/// Submits job `i` (attempt `attempt`), after the jobs it waits on.
fn submit(
    jobs: &[PreparedJob],
    i: usize,
    track: &[Track],
    run: &SlurmRun<'_>,
    script: &Path,
    opts: &ExecOptions,
    (attempt, raised): (u32, bool),
) -> Track {
    let job = &jobs[i];
    let done = |why: String| Track::ended(JobStatus::Failed(why));
    if let Err(e) = prepare_files(job) {
        return done(e);
    }
    let (mut args, cpus) = common_args(job, run, raised);
    args.extend([
        format!("--job-name=mkrefs-{}-{}", run.run_name, job.id()),
        format!("--error={}", job.log().display()),
        format!(
            "--output={}",
            job.log().with_extension("slurm.out").display()
        ),
    ]);
    let after: Vec<&str> = job
        .after
        .iter()
        .filter_map(|&d| match &track[d] {
            Track::Submitted(s) => Some(s.slurm_id.as_str()),
            _ => None,
        })
        .collect();
    if !after.is_empty() {
        args.push(format!("--dependency=afterok:{}", after.join(":")));
        args.push("--kill-on-invalid-dep=yes".into());
    }
    let command = match child_command(job, cpus, opts) {
        Ok(c) => c,
        Err(e) => return done(e),
    };
    args.push(script.display().to_string());
    args.extend(command);
    args.push(job.job_file.display().to_string());
    match sbatch(&args) {
        Ok(slurm_id) => {
            tracing::info!("{}: submitted as Slurm job {slurm_id}", job.title());
            Track::Submitted(submission(job, slurm_id, attempt, raised))
        }
        Err(why) => done(why),
    }
}

/// Submits the calibration jobs `array` (which wait on nothing) as one job array: task `k`
/// runs the job file on line `k + 1` of `<rundir>/slurm/calibrations-<first>.list`, through a
/// script that reads its line; each task's stderr is its job's log (the script sends it there
/// itself, as sbatch names one file pattern for the array). Falls back to one submission per
/// job where a job file name holds a line break.
fn submit_array(
    jobs: &[PreparedJob],
    array: &[usize],
    run: &SlurmRun<'_>,
    opts: &ExecOptions,
) -> Vec<Track> {
    let done = |why: String| Track::ended(JobStatus::Failed(why));
    let first = &jobs[array[0]];
    let all_failed = |why: String| array.iter().map(|_| done(why.clone())).collect();
    let mut lines = String::new();
    for &i in array {
        if let Err(e) = prepare_files(&jobs[i]) {
            return all_failed(e);
        }
        let (file, log) = (jobs[i].job_file.display(), jobs[i].log().display());
        let line = format!("{file}\t{log}");
        if line.contains('\n') {
            return all_failed(format!("{file}: a job file name with a line break"));
        }
        lines.push_str(&line);
        lines.push('\n');
    }
    let slurm_dir = run.run_dir.join("slurm");
    let list = slurm_dir.join(format!("calibrations-{}.list", first.id()));
    let script = slurm_dir.join("array.sh");
    let written = atomic::write(&list, lines.as_bytes()).and_then(|()| {
        atomic::write(
            &script,
            b"#!/bin/sh\n# Written by mkrefs: task N of a job array runs the command sbatch passes as\n\
              # arguments (after the list) on the job file of line N + 1 of the list, its stderr\n\
              # to that job's log.\nlist=\"$1\"; shift\n\
              line=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$list\")\n\
              job=$(printf '%s' \"$line\" | cut -f1); log=$(printf '%s' \"$line\" | cut -f2)\n\
              exec \"$@\" \"$job\" 2>>\"$log\"\n",
        )
    });
    if let Err(e) = written {
        return all_failed(e);
    }
    use std::os::unix::fs::PermissionsExt;
    if let Err(e) = std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)) {
        return all_failed(format!("cannot make {} executable: {e}", script.display()));
    }
    let (mut args, cpus) = common_args(first, run, false);
    let out_pattern = slurm_dir.join(format!("calibrations-{}-%a.slurm.out", first.id()));
    args.extend([
        format!("--array=0-{}", array.len() - 1),
        format!("--job-name=mkrefs-{}-calibrations", run.run_name),
        format!("--output={}", out_pattern.display()),
        format!("--error={}", out_pattern.with_extension("err").display()),
    ]);
    let command = match child_command(first, cpus, opts) {
        Ok(c) => c,
        Err(e) => return all_failed(e),
    };
    args.push(script.display().to_string());
    args.push(list.display().to_string());
    args.extend(command);
    match sbatch(&args) {
        Ok(array_id) => {
            tracing::info!(
                "{} calibration job(s) submitted as Slurm job array {array_id}",
                array.len()
            );
            array
                .iter()
                .enumerate()
                .map(|(k, &i)| {
                    Track::Submitted(submission(&jobs[i], format!("{array_id}_{k}"), 1, false))
                })
                .collect()
        }
        Err(why) => all_failed(why),
    }
}

/// Runs sbatch; returns the job id it printed.
fn sbatch(args: &[String]) -> Result<String, String> {
    let out = Command::new("sbatch").args(args).output().map_err(|e| {
        format!(
            "cannot run sbatch ({e}); the Slurm executor needs the Slurm client programs in \
             PATH (and SLURM_CONF where the cluster is not configured in /etc/slurm)"
        )
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if !out.status.success() || id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
        let said = String::from_utf8_lossy(&out.stderr);
        let advice = if said.contains("configuration source") {
            "sbatch found no cluster: set SLURM_CONF to the cluster's slurm.conf (or run where \
             /etc/slurm has it)"
        } else {
            "check the executor section (partition, account, qos, time, mem, extra_args)"
        };
        return Err(format!(
            "sbatch refused the job: {}; {advice}",
            said.trim().replace('\n', " / ")
        ));
    }
    Ok(id)
}

/// The state and reason of each of `ids` Slurm still knows (`squeue -t all`).
pub(crate) fn states(ids: &[&str]) -> Result<BTreeMap<String, (String, String)>, String> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "-t", "all", "-o", "%i|%T|%r", "-j"])
        .arg(
            ids.iter()
                .map(|id| id.split('_').next().unwrap_or(id))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(","),
        )
        .output()
        .map_err(|e| {
            format!("cannot run squeue ({e}); the Slurm client programs must be in PATH")
        })?;
    // squeue fails when every id is unknown (purged): then it knows none of them.
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '|');
            Some((
                parts.next()?.trim().to_string(),
                (
                    parts.next()?.trim().to_string(),
                    parts.next().unwrap_or("").trim().to_string(),
                ),
            ))
        })
        .collect())
}

/// Writes the latest submission of every job submitted so far (`submitted`, by job index,
/// updated from `track`).
fn save_submissions(run_dir: &Path, track: &[Track], submitted: &mut BTreeMap<usize, Submission>) {
    for (i, t) in track.iter().enumerate() {
        if let Track::Submitted(s) = t {
            submitted.insert(i, s.clone());
        }
    }
    if submitted.is_empty() {
        return;
    }
    let list: Vec<&Submission> = submitted.values().collect();
    let text = serde_json::to_string_pretty(&list).expect("submissions serialize");
    if let Err(e) = atomic::write(&submissions_file(run_dir), text.as_bytes()) {
        tracing::warn!("{e} (`mkrefs status` will not know this run's Slurm jobs)");
    }
}

/// How a job Slurm says has ended went, from its state and its report.
pub(crate) fn ended(s: &Submission, state: &str, reason: &str) -> (JobStatus, f64, String) {
    let report = JobReportFile::read(&s.report);
    match (state, report) {
        ("COMPLETED" | UNKNOWN, Some(r)) if r.ok => (JobStatus::Ok, r.seconds, r.summary),
        (_, Some(r)) if !r.ok => (
            JobStatus::Failed(r.error.unwrap_or_else(|| "unknown error".into())),
            r.seconds,
            String::new(),
        ),
        ("OUT_OF_MEMORY", _) => (
            JobStatus::Failed(format!(
                "Slurm job {} ran out of the memory it was given; raise executor.mem, or \
                 executor.overrides.<reflabel or calibrate>.mem for this kind of job, or set \
                 retry_mem to have such a job submitted again with more (see {})",
                s.slurm_id,
                s.log.display()
            )),
            0.0,
            String::new(),
        ),
        _ => (
            JobStatus::Failed(format!(
                "Slurm job {} ended {state}{}; see {}",
                s.slurm_id,
                if reason.is_empty() || reason == "None" {
                    String::new()
                } else {
                    format!(" ({reason})")
                },
                s.log.display()
            )),
            0.0,
            String::new(),
        ),
    }
}

/// Follows the submitted jobs until each has ended, submitting again what a node lost.
fn follow(
    jobs: &[PreparedJob],
    track: &mut [Track],
    order: &[usize],
    run: &SlurmRun<'_>,
    script: &Path,
    opts: &ExecOptions,
    submitted: &mut BTreeMap<usize, Submission>,
) {
    let live = |t: &[Track]| {
        t.iter()
            .filter(|t| matches!(t, Track::Submitted(_)))
            .count()
    };
    let bar = logging::progress_bar(live(track) as u64, "Slurm jobs");
    while live(track) > 0 {
        if interrupt::received().is_some() {
            cancel_all(track);
            break;
        }
        std::thread::sleep(POLL);
        let ids = live_ids(track);
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let known = match states(&ids) {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("{e}");
                continue;
            }
        };
        let mut changed = false;
        for &i in order {
            let Track::Submitted(s) = &track[i] else {
                continue;
            };
            let s = s.clone();
            let (state, reason) = known
                .get(&s.slurm_id)
                .cloned()
                .unwrap_or_else(|| (UNKNOWN.to_string(), String::new()));
            if LIVE_STATES.contains(&state.as_str()) {
                continue;
            }
            changed = true;
            let retry_mem = options_for(&jobs[i], run.settings).retry_mem.is_some();
            let retried = s.attempt <= run.settings.retries
                && (NODE_STATES.contains(&state.as_str())
                    || (state == "OUT_OF_MEMORY" && retry_mem));
            track[i] = if retried {
                let raised = s.raised_mem || state == "OUT_OF_MEMORY";
                tracing::warn!(
                    "{}: Slurm job {} ended {state}; submitting it again{}",
                    jobs[i].title(),
                    s.slurm_id,
                    if raised {
                        " with executor retry_mem"
                    } else {
                        ""
                    }
                );
                submit(jobs, i, track, run, script, opts, (s.attempt + 1, raised))
            } else if state == "CANCELLED" && reason.contains("Dependency") {
                // Slurm cancelled it because a job it waits on failed: submitted again when
                // that one is being retried, else not run.
                match jobs[i]
                    .after
                    .iter()
                    .find(|&&d| !matches!(&track[d], Track::Done(st, ..) if st.succeeded()))
                {
                    Some(&d) if matches!(track[d], Track::Submitted(_)) => {
                        submit(jobs, i, track, run, script, opts, (s.attempt, s.raised_mem))
                    }
                    Some(&d) => Track::needs(jobs, d),
                    None => Track::ended(JobStatus::Failed(format!(
                        "Slurm cancelled job {} ({reason})",
                        s.slurm_id
                    ))),
                }
            } else {
                let (status, seconds, summary) = ended(&s, &state, &reason);
                Track::Done(status, seconds, summary)
            };
            if let Track::Done(status, seconds, summary) = &track[i] {
                announce(
                    &jobs[i],
                    &result_of(&jobs[i], status.clone(), *seconds, summary.clone()),
                );
                if let Some(b) = &bar {
                    b.inc(1);
                }
            }
        }
        if changed {
            save_submissions(run.run_dir, track, submitted);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
}

/// The Slurm ids of the jobs submitted and not yet ended.
fn live_ids(track: &[Track]) -> Vec<String> {
    track
        .iter()
        .filter_map(|t| match t {
            Track::Submitted(s) => Some(s.slurm_id.clone()),
            _ => None,
        })
        .collect()
}

/// After Ctrl-C: asks (on a terminal) whether to cancel the run's Slurm jobs, and cancels
/// them unless told not to; the jobs left running are reported as submitted.
fn cancel_all(track: &mut [Track]) {
    let ids = live_ids(track);
    let cancel = if std::io::stdin().is_terminal() {
        eprint!(
            "Cancel the {} Slurm job(s) of this run with scancel? [y/N] ",
            ids.len()
        );
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        answer.trim().eq_ignore_ascii_case("y") || answer.trim().eq_ignore_ascii_case("yes")
    } else {
        true
    };
    if !cancel {
        tracing::warn!("the run's Slurm jobs keep running; `mkrefs status` reports them");
        return;
    }
    match Command::new("scancel").args(&ids).status() {
        Ok(s) if s.success() => {
            tracing::warn!("cancelled Slurm job(s) {}", ids.join(", "));
            for t in track.iter_mut() {
                if matches!(t, Track::Submitted(_)) {
                    *t = Track::ended(JobStatus::NotRun("cancelled with the run".to_string()));
                }
            }
        }
        _ => tracing::error!(
            "scancel failed; cancel the jobs yourself: scancel {}",
            ids.join(" ")
        ),
    }
}
