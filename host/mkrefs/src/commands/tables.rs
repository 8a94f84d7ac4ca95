//! The bookkeeping tables of a run directory: plain aligned text with a `#` header line,
//! deterministic for the same inputs (no dates), so a rerun can tell whether its inputs
//! changed.

use crate::exec::executor::Work;
use crate::plan::RunPlan;

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

/// One row per input file, in MJD order (`<stem>.im.txt`).
pub fn input_table(plan: &RunPlan<'_>) -> String {
    let rows: Vec<Vec<String>> = plan
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            vec![
                i.to_string(),
                r.kind.name().to_string(),
                r.detector.clone(),
                format!("{:.8}", r.mjd),
                r.exp_type.clone().unwrap_or_else(|| "-".into()),
                r.path.display().to_string(),
            ]
        })
        .collect();
    table(
        &["imID", "imtype", "detector", "MJD", "EXP_TYPE", "fitsfile"],
        &rows,
    )
}

/// One row per image of every job (`<stem>.inputim.txt`): which file each job reads.
pub fn group_table(plan: &RunPlan<'_>) -> String {
    let mut rows = Vec::new();
    for job in &plan.jobs {
        let Work::Generate(spec) = &job.work else {
            continue;
        };
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
                String::new(),
                String::new(),
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
