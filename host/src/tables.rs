//! The bookkeeping tables of a run directory: plain aligned text with a `#` header line,
//! deterministic for the same inputs (no dates), so a rerun can tell whether its inputs
//! changed.

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
        for input in &job.spec.inputs {
            let index = plan
                .rows
                .iter()
                .position(|r| r.path == input.raw_path)
                .map(|i| i.to_string())
                .unwrap_or_default();
            rows.push(vec![
                job.spec.cmd_id.to_string(),
                job.spec.reflabel.clone(),
                input.label.clone(),
                input.kind.clone(),
                input.detector.clone(),
                index,
                format!("{:.8}", input.mjd),
                input.path.display().to_string(),
            ]);
        }
        for p in &job.spec.products {
            rows.push(vec![
                job.spec.cmd_id.to_string(),
                job.spec.reflabel.clone(),
                format!("{}.{}", p.label, p.product),
                "product".to_string(),
                job.spec.detector.clone(),
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

/// The job list for a dry run and the log: one line per job.
pub fn job_table(plan: &RunPlan<'_>) -> String {
    let rows: Vec<Vec<String>> = plan
        .jobs
        .iter()
        .map(|j| {
            let labels: Vec<&str> = j.spec.inputs.iter().map(|i| i.label.as_str()).collect();
            vec![
                j.spec.cmd_id.to_string(),
                j.spec.reflabel.clone(),
                j.spec.detector.clone(),
                labels.join(","),
                j.spec.output.display().to_string(),
            ]
        })
        .collect();
    table(
        &["cmdID", "reflabel", "detector", "images", "output"],
        &rows,
    )
}
