//! The jobs of a run: one generator job per group, one calibration job per exposure and chain
//! of states, linked into one dependency graph for the executor.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::config::Backend;
use crate::config::value::header_json;
use crate::exec::executor::{PreparedJob, Work};
use crate::exec::jobfile::{
    CalibrationSpec, JOB_FORMAT, JobInput, JobParam, JobProduct, JobSpec, SavedProduct,
    StepReference, StrunCrds,
};
use crate::inputs::group::CmdGroup;
use crate::inputs::read::InputRow;
use crate::layout::{RunLayout, with_ext};
use crate::plan::select::Selected;
use crate::prep::jobs::{CalibrationJob, RefChoice};
use crate::prep::state::{self, ResolvedInput};
use crate::prep::steps::{Instrument, Step};

/// How calibration jobs run: the backend and, for jwst, its program and CRDS.
pub(crate) struct JwstRun<'a> {
    pub backend: Backend,
    pub strun: &'a str,
    pub crds: Option<StrunCrds>,
}

/// The calibration job's spec and files.
fn calibration_job(
    id: u32,
    job: &CalibrationJob,
    instrument: Instrument,
    how: &JwstRun<'_>,
    layout: &RunLayout,
) -> PreparedJob {
    let backend = how.backend;
    let jwst = backend == Backend::Jwst;
    let stem = job
        .final_product
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| format!("cal{id}"));
    let base = layout.calibration_basename(&stem);
    let names = |steps: &[Step]| steps.iter().map(|s| s.name().to_string()).collect();
    let spec = CalibrationSpec {
        format: JOB_FORMAT,
        cal_id: id,
        backend: backend.name().to_string(),
        instrument: instrument.to_string(),
        detector: job.detector.clone(),
        raw: job.raw.clone(),
        input: job.raw.clone(),
        run: names(&job.run),
        state: names(&job.state),
        final_product: job.final_product.clone(),
        saves: job
            .saves
            .iter()
            .map(|(k, path)| SavedProduct {
                product: k.name().to_string(),
                path: path.clone(),
            })
            .collect(),
        references: job
            .references
            .iter()
            .filter_map(|r| match &r.choice {
                RefChoice::File { path, .. } => Some(StepReference {
                    step: r.step.name().to_string(),
                    reftype: r.reftype.clone(),
                    path: path.clone(),
                }),
                RefChoice::SelfMade => None, // filled in by link_jobs
            })
            .collect(),
        strun: jwst.then(|| how.strun.to_string()),
        crds: how.crds.clone().filter(|_| jwst),
        log: with_ext(&base, "log"),
        report: with_ext(&base, "report.json"),
        scratch_dir: layout.calibration_scratch(id),
    };
    PreparedJob {
        work: Work::Calibrate(spec),
        job_file: with_ext(&base, "job.json"),
        after: Vec::new(),
        blocked: job.blocked.clone(),
    }
}

/// Puts calibration and generator jobs into one graph: a generator job waits for the
/// calibration jobs that make the files it reads; a calibration job whose step reads a `SELF`
/// reference waits for the generator job of this run that makes it (same reftype, same
/// detector). With `calibrate_only`, generator jobs are kept only where a calibration needs
/// their output.
#[allow(clippy::too_many_arguments)]
pub(crate) fn link_jobs(
    cal_jobs: Vec<CalibrationJob>,
    gen_jobs: Vec<PreparedJob>,
    resolved: &[ResolvedInput],
    instrument: Instrument,
    how: &JwstRun<'_>,
    layout: &RunLayout,
    calibrate_only: bool,
) -> Result<Vec<PreparedJob>, String> {
    let ncal = cal_jobs.len();
    let mut jobs: Vec<PreparedJob> = cal_jobs
        .iter()
        .enumerate()
        .map(|(i, c)| calibration_job(i as u32 + 1, c, instrument, how, layout))
        .collect();
    // Which calibration job makes each resolved file.
    let mut maker = HashMap::new();
    for (i, c) in cal_jobs.iter().enumerate() {
        for &m in &c.makes {
            maker.insert(resolved[m].file.clone(), i);
        }
    }
    for mut g in gen_jobs {
        let Work::Generate(spec) = &g.work else {
            unreachable!("job_for makes generator jobs")
        };
        let mut after: Vec<usize> = spec
            .inputs
            .iter()
            .map(|i| &i.path)
            .chain(spec.products.iter().map(|p| &p.path))
            .filter_map(|f| maker.get(f).copied())
            .collect();
        after.sort_unstable();
        after.dedup();
        g.after = after;
        jobs.push(g);
    }
    // SELF references.
    let mut problems = Vec::new();
    let mut needed_generators = BTreeSet::new();
    for (i, c) in cal_jobs.iter().enumerate() {
        for r in &c.references {
            if r.choice != RefChoice::SelfMade {
                continue;
            }
            let makers: Vec<usize> = (ncal..jobs.len())
                .filter(|&j| match &jobs[j].work {
                    Work::Generate(s) => {
                        s.reftype.eq_ignore_ascii_case(&r.reftype) && s.detector == c.detector
                    }
                    Work::Calibrate(_) => false,
                })
                .collect();
            let key = r.reftype.to_ascii_lowercase();
            match makers[..] {
                [j] => {
                    let path = jobs[j].output().to_path_buf();
                    if let Work::Calibrate(spec) = &mut jobs[i].work {
                        spec.references.push(StepReference {
                            step: r.step.name().to_string(),
                            reftype: r.reftype.clone(),
                            path,
                        });
                    }
                    jobs[i].after.push(j);
                    needed_generators.insert(j);
                }
                [] => problems.push(format!(
                    "{}: reffile4ssb.{key} is SELF (the {} file this run makes), but no                      generator of this run makes {} for detector {}: add the reflabel that                      makes it (e.g. `mkrefs run {key},...`), or give a file",
                    c.raw.display(),
                    r.reftype,
                    r.reftype,
                    c.detector
                )),
                _ => problems.push(format!(
                    "{}: reffile4ssb.{key} is SELF, but this run makes {} {} files for detector                      {} ({}); group that reflabel's inputs into one job per detector (imtypes                      D+), or give a file",
                    c.raw.display(),
                    makers.len(),
                    r.reftype,
                    c.detector,
                    makers
                        .iter()
                        .map(|&j| jobs[j].id())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
        }
    }
    problems.dedup();
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    if calibrate_only {
        // Keep the calibration jobs and the generators they need; renumber the links.
        let keep: Vec<usize> = (0..jobs.len())
            .filter(|&j| j < ncal || needed_generators.contains(&j))
            .collect();
        let new_index: HashMap<usize, usize> =
            keep.iter().enumerate().map(|(n, &o)| (o, n)).collect();
        let mut kept = Vec::new();
        for &o in &keep {
            let mut j = jobs[o].clone();
            j.after = j
                .after
                .iter()
                .filter_map(|d| new_index.get(d).copied())
                .collect();
            kept.push(j);
        }
        jobs = kept;
    }
    Ok(jobs)
}

pub(crate) fn job_for(
    g: &CmdGroup,
    selected: &[Selected<'_>],
    rows: &[InputRow],
    resolved: &[ResolvedInput],
    layout: &RunLayout,
) -> Result<PreparedJob, String> {
    let sel = selected
        .iter()
        .find(|s| s.reflabel == g.reflabel)
        .expect("every group belongs to a selected reflabel");
    let outbase = layout.outbasename(&sel.reflabel, g.cmd_id, &sel.entry.reftype);
    let mut products = Vec::new();
    for (label, index) in &g.group.members {
        for &p in &sel.save {
            let path = state::resolved_product(resolved, *index, &sel.steps, Some(p)).ok_or_else(
                || {
                    format!(
                        "internal: no {p} product for {}",
                        rows[*index].path.display()
                    )
                },
            )?;
            products.push(JobProduct {
                label: label.clone(),
                product: p.name().to_string(),
                path: path.to_path_buf(),
            });
        }
    }
    let inputs = g
        .group
        .members
        .iter()
        .map(|(label, index)| {
            let row = &rows[*index];
            let path = state::resolved_file(resolved, *index, &sel.steps).ok_or_else(|| {
                format!("internal: no calibrated file for {}", row.path.display())
            })?;
            Ok(JobInput {
                label: label.clone(),
                kind: row.kind.name().to_string(),
                path: path.to_path_buf(),
                raw_path: row.path.clone(),
                mjd: row.mjd,
                detector: row.detector.clone(),
                header: row
                    .header
                    .iter()
                    .map(|(k, v)| JobParam {
                        name: k.to_string(),
                        value: header_json(v),
                    })
                    .collect(),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let spec = JobSpec {
        format: JOB_FORMAT,
        cmd_id: g.cmd_id,
        reflabel: sel.reflabel.clone(),
        reftype: sel.entry.reftype.clone(),
        detector: g.group.detector.clone(),
        library: sel.entry.origin.library().map(Path::to_path_buf),
        output: with_ext(&outbase, "fits"),
        log: with_ext(&outbase, "log"),
        report: with_ext(&outbase, "report.json"),
        scratch_dir: layout.scratch(g.cmd_id),
        inputs,
        products,
        params: sel
            .params
            .iter()
            .map(|p| JobParam::new(p.name.as_str(), &p.value))
            .collect(),
    };
    Ok(PreparedJob {
        job_file: with_ext(&outbase, "job.json"),
        work: Work::Generate(spec),
        after: Vec::new(),
        blocked: None,
    })
}
