//! The bookkeeping tables of a run directory: plain aligned text with a `#` header line,
//! deterministic for the same inputs (no dates), so a rerun can tell whether its inputs
//! changed.

use mkrefs_support::header::HeaderValue;

use crate::exec::executor::{JobResult, JobStatus, Work};
use crate::plan::RunPlan;
use crate::prep::steps::Step;

fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c.to_string()
                } else {
                    format!("{c:w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
    };
    let mut out = format!("# {}\n", line(header.to_vec()));
    for row in rows {
        out.push_str("  ");
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A header value as a table cell: `None` when the file lacks the key (as upstream wrote it),
/// double quotes around text with blanks or nothing in it, so every cell is one word.
fn cell(value: Option<&HeaderValue>) -> String {
    match value {
        None => "None".to_string(),
        Some(HeaderValue::Str(s)) => {
            let t = s.trim();
            if t.is_empty() || t.contains(char::is_whitespace) {
                format!("\"{t}\"")
            } else {
                t.to_string()
            }
        }
        Some(other) => other.to_string(),
    }
}

/// One row per input file, in MJD order (`<stem>.im.txt`), with the header keys the
/// configuration collects (`requiredfitskeys`, `optionalfitskeys`) as columns.
pub fn input_table(plan: &RunPlan<'_>) -> String {
    let rows: Vec<Vec<String>> = plan
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut row = vec![
                i.to_string(),
                r.kind.name().to_string(),
                r.detector.clone(),
                format!("{:.8}", r.mjd),
                r.exp_type.clone().unwrap_or_else(|| "-".into()),
            ];
            row.extend(plan.input_keys.iter().map(|k| cell(r.header.get(k))));
            row.push(r.path.display().to_string());
            row
        })
        .collect();
    let mut header = vec!["imID", "imtype", "detector", "MJD", "EXP_TYPE"];
    header.extend(plan.input_keys.iter().map(String::as_str));
    header.push("fitsfile");
    table(&header, &rows)
}

/// Steps as upstream's tables wrote them: comma-joined without blanks, `None` for none.
fn steps_cell<T: AsRef<str>>(names: &[T]) -> String {
    if names.is_empty() {
        "None".to_string()
    } else {
        names
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// One row per image of every job (`<stem>.inputim.txt`): which file each job reads, at the
/// state its reflabel asks for (`ssbsteps`) with the products it also reads
/// (`ssb_save_steps`).
pub fn group_table(plan: &RunPlan<'_>) -> String {
    let mut rows = Vec::new();
    for job in &plan.jobs {
        let Work::Generate(spec) = &job.work else {
            continue;
        };
        let (ssbsteps, save) = plan
            .selected
            .iter()
            .find(|s| s.reflabel == spec.reflabel)
            .map(|s| {
                let steps: Vec<&str> = s.steps.iter().map(|st: &Step| st.name()).collect();
                let save: Vec<String> = s.save.iter().map(ToString::to_string).collect();
                (steps_cell(&steps), steps_cell(&save))
            })
            .unwrap_or_default();
        for input in &spec.inputs {
            let index = plan
                .rows
                .iter()
                .position(|r| r.path == input.raw_path)
                .map(|i| i.to_string())
                .unwrap_or_default();
            rows.push(vec![
                spec.cmd_id.to_string(),
                spec.reflabel.clone(),
                input.label.clone(),
                input.kind.clone(),
                input.detector.clone(),
                ssbsteps.clone(),
                save.clone(),
                index,
                format!("{:.8}", input.mjd),
                input.path.display().to_string(),
            ]);
        }
        for p in &spec.products {
            rows.push(vec![
                spec.cmd_id.to_string(),
                spec.reflabel.clone(),
                format!("{}.{}", p.label, p.product),
                "product".to_string(),
                spec.detector.clone(),
                ssbsteps.clone(),
                save.clone(),
                "-".to_string(),
                "-".to_string(),
                p.path.display().to_string(),
            ]);
        }
    }
    table(
        &[
            "cmdID",
            "reflabel",
            "imlabel",
            "imtype",
            "detector",
            "ssbsteps",
            "ssb_save_steps",
            "imID",
            "MJD",
            "file_read",
        ],
        &rows,
    )
}

/// The job graph for a dry run and the log: one line per job, with the jobs it waits for.
/// Generator jobs list their group's images; calibration jobs the exposure, the steps to run
/// and the products they save.
pub fn job_table(plan: &RunPlan<'_>) -> String {
    let rows: Vec<Vec<String>> = plan
        .jobs
        .iter()
        .map(|j| {
            let after: Vec<String> = j.after.iter().map(|&d| plan.jobs[d].id()).collect();
            let what = match &j.work {
                Work::Generate(spec) => spec
                    .inputs
                    .iter()
                    .map(|i| i.label.as_str())
                    .collect::<Vec<_>>()
                    .join(","),
                Work::Combine(spec) => format!("combine {} file(s)", spec.inputs.len()),
                Work::Calibrate(spec) => {
                    let name = |p: &std::path::Path| {
                        p.file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default()
                    };
                    let mut text = format!("{}: {}", name(&spec.raw), spec.run.join(","));
                    if !spec.saves.is_empty() {
                        let saves: Vec<&str> =
                            spec.saves.iter().map(|s| s.product.as_str()).collect();
                        text.push_str(&format!(" (+{})", saves.join(",")));
                    }
                    text
                }
            };
            let output = match &j.blocked {
                Some(why) => format!("BLOCKED: {why}"),
                None => j.output().display().to_string(),
            };
            vec![
                j.id(),
                j.label().to_string(),
                j.detector().to_string(),
                if after.is_empty() {
                    "-".to_string()
                } else {
                    after.join(",")
                },
                what,
                output,
            ]
        })
        .collect();
    table(
        &[
            "job",
            "reflabel",
            "detector",
            "after",
            "images/steps",
            "output",
        ],
        &rows,
    )
}

/// The table printed at the end of a run and kept in the run directory.
pub fn summary_table(results: &[JobResult]) -> String {
    let mut out = String::new();
    let width = results
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(8)
        .max(8);
    out.push_str(&format!(
        "{:>5}  {:width$}  {:9}  {:8}  {:>8}  output\n",
        "job", "reflabel", "detector", "status", "seconds"
    ));
    for r in results {
        out.push_str(&format!(
            "{:>5}  {:width$}  {:9}  {:8}  {:>8.2}  {}\n",
            r.id,
            r.label,
            r.detector,
            r.status.word(),
            r.seconds,
            r.output.display()
        ));
    }
    let failed: Vec<&JobResult> = results
        .iter()
        .filter(|r| !r.status.succeeded() && !matches!(r.status, JobStatus::Submitted(_)))
        .collect();
    let count = |w: &str| results.iter().filter(|r| r.status.word() == w).count();
    out.push_str(&format!(
        "{} job(s): {} ok, {} skipped, {} failed{}\n",
        results.len(),
        count("ok"),
        count("skipped"),
        count("FAILED"),
        match (count("not run"), count("held")) {
            (0, 0) => String::new(),
            (n, 0) => format!(", {n} not run"),
            (0, h) => format!(", {h} held back for a later run"),
            (n, h) => format!(", {n} not run, {h} held back for a later run"),
        } + &match count("submitted") {
            0 => String::new(),
            n => format!(", {n} submitted (see `mkrefs status`)"),
        }
    ));
    for r in failed {
        match &r.status {
            JobStatus::Failed(why) => out.push_str(&format!(
                "{} {} {} failed: {why}\n    log: {}\n",
                r.id,
                r.label,
                r.detector,
                r.log.display()
            )),
            JobStatus::NotRun(why) => out.push_str(&format!(
                "{} {} {} not run: {why}\n",
                r.id, r.label, r.detector
            )),
            JobStatus::Held(why) => out.push_str(&format!(
                "{} {} {} held back: {why}\n",
                r.id, r.label, r.detector
            )),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn result(id: &str, status: JobStatus) -> JobResult {
        JobResult {
            id: id.to_string(),
            label: "x".into(),
            detector: "NRCA1".into(),
            status,
            seconds: 1.0,
            output: PathBuf::from(format!("/out/{id}.fits")),
            log: PathBuf::from(format!("/out/{id}.log")),
            summary: String::new(),
        }
    }

    #[test]
    fn the_summary_counts_every_outcome_and_says_why_jobs_failed() {
        let results = [
            result("cmd0", JobStatus::Failed("boom".into())),
            result("cmd1", JobStatus::NotRun("it needs cmd0 x NRCA1".into())),
            result("cmd2", JobStatus::Ok),
            result("cmd3", JobStatus::Skipped),
            result("cmd4", JobStatus::Held("--maxNref 1 reached".into())),
        ];
        let table = summary_table(&results);
        assert!(
            table.contains(
                "5 job(s): 1 ok, 1 skipped, 1 failed, 1 not run, 1 held back for a later run"
            ),
            "{table}"
        );
        assert!(
            table.contains("cmd4 x NRCA1 held back: --maxNref 1 reached"),
            "{table}"
        );
        assert!(
            table.contains("cmd0 x NRCA1 failed: boom\n    log: /out/cmd0.log"),
            "{table}"
        );
        assert!(
            table.contains("cmd1 x NRCA1 not run: it needs cmd0 x NRCA1"),
            "{table}"
        );
    }
}
