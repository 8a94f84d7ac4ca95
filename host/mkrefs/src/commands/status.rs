//! `mkrefs status RUNDIR`: how the Slurm jobs a run submitted stand, from Slurm (`squeue`) and
//! the jobs' reports (after Slurm has forgotten a job, its report still says how it ended).

use std::path::Path;
use std::process::ExitCode;

use crate::exec::executor::JobStatus;
use crate::exec::slurm::{Submission, UNKNOWN, ended, states, submissions_file};

pub fn run(run_dir: &Path) -> Result<ExitCode, String> {
    let file = submissions_file(run_dir);
    let text = std::fs::read_to_string(&file).map_err(|e| {
        format!(
            "{}: {e}; this run directory has no Slurm jobs (was it run with --executor slurm?)",
            file.display()
        )
    })?;
    let list: Vec<Submission> =
        serde_json::from_str(&text).map_err(|e| format!("{} is not valid: {e}", file.display()))?;
    let ids: Vec<&str> = list.iter().map(|s| s.slurm_id.as_str()).collect();
    let known = states(&ids)?;
    println!("{:>6}  {:>9}  {:12}  outcome", "job", "slurm", "state");
    let (mut running, mut bad) = (0, 0);
    for s in &list {
        let (state, reason) = known
            .get(&s.slurm_id)
            .cloned()
            .unwrap_or_else(|| (UNKNOWN.to_string(), String::new()));
        let outcome = match state.as_str() {
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" | "REQUEUED" | "SUSPENDED" => {
                running += 1;
                if reason.is_empty() || reason == "None" {
                    "not ended".to_string()
                } else {
                    format!("not ended ({reason})")
                }
            }
            _ => match ended(s, &state, &reason).0 {
                JobStatus::Ok => format!("ok: {}", s.output.display()),
                JobStatus::Failed(why) => {
                    bad += 1;
                    format!("FAILED: {why}")
                }
                other => other.word().to_string(),
            },
        };
        println!("{:>6}  {:>9}  {:12}  {outcome}", s.job, s.slurm_id, state);
    }
    println!(
        "{} Slurm job(s): {} not ended, {} failed",
        list.len(),
        running,
        bad
    );
    Ok(if bad > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
