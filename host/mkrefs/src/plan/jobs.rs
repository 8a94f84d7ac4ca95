//! The jobs of a run: one generator job per group, one calibration job per exposure and chain
//! of states, linked into one dependency graph for the executor.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use crate::config::Backend;
use crate::config::value::header_json;
use crate::exec::executor::{PreparedJob, Work};
use crate::exec::jobfile::{
    CalibrationSpec, JOB_FORMAT, JobInput, JobParam, JobProduct, JobSpec, MadeFrom, ProgramRun,
    SavedProduct, StepReference, StrunCrds,
};
use crate::inputs::group::CmdGroup;
use crate::inputs::read::InputRow;
use crate::layout::{RunLayout, with_ext};
use crate::plan::select::Selected;
use crate::prep::jobs::{CalibrationJob, RefChoice};
use crate::prep::state::{self, ResolvedInput};
use crate::prep::steps::{Instrument, Step};
use crate::registry::Origin;

/// How calibration jobs run: the instrument, the backend and, for jwst, its program and CRDS.
pub(crate) struct CalibrationRun<'a> {
    pub instrument: Instrument,
    pub backend: Backend,
    pub strun: &'a str,
    pub crds: Option<StrunCrds>,
}

/// The calibration job's spec and files.
fn calibration_job(
    id: u32,
    job: &CalibrationJob,
    how: &CalibrationRun<'_>,
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
        instrument: how.instrument.to_string(),
        detector: job.detector.clone(),
        raw: job.raw.clone(),
        input: job.raw.clone(),
        run: names(&job.run),
        state: names(&job.state),
        final_product: job.final_product.clone(),
        final_hdus: job.final_hdus.as_ref().map(|h| h.iter().cloned().collect()),
        saves: job
            .saves
            .iter()
            .map(|s| SavedProduct {
                product: s.kind.name().to_string(),
                path: s.path.clone(),
                hdus: s.hdus.as_ref().map(|h| h.iter().cloned().collect()),
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
        made_from: None,
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
pub(crate) fn link_jobs(
    cal_jobs: Vec<CalibrationJob>,
    gen_jobs: Vec<PreparedJob>,
    resolved: &[ResolvedInput],
    how: &CalibrationRun<'_>,
    layout: &RunLayout,
    calibrate_only: bool,
) -> Result<Vec<PreparedJob>, String> {
    let ncal = cal_jobs.len();
    let mut jobs: Vec<PreparedJob> = cal_jobs
        .iter()
        .enumerate()
        .map(|(i, c)| calibration_job(i as u32 + 1, c, how, layout))
        .collect();
    jobs.extend(wait_for_makers(&cal_jobs, resolved, gen_jobs));
    let needed = link_self_references(&cal_jobs, &mut jobs)?;
    warn_self_superbias_under_mask(&jobs, ncal);
    if calibrate_only {
        jobs = keep_only(jobs, |j| j < ncal || needed.contains(&j));
    }
    Ok(jobs)
}

/// Warns when a bad-pixel mask's darks are calibrated with a superbias this run makes from
/// those same darks: a pixel whose pedestal is low by a constant offset is then part of the
/// superbias and cannot be found (README, "Bad pixels and a SELF superbias").
fn warn_self_superbias_under_mask(jobs: &[PreparedJob], ncal: usize) {
    for g in &jobs[ncal..] {
        let Work::Generate(mask) = &g.work else {
            continue;
        };
        if !mask.reftype.eq_ignore_ascii_case("MASK") {
            continue;
        }
        let mask_inputs: BTreeSet<&Path> =
            mask.inputs.iter().map(|i| i.raw_path.as_path()).collect();
        let self_made = g.after.iter().filter_map(|&a| match &jobs[a].work {
            Work::Calibrate(c) => c
                .references
                .iter()
                .find(|r| r.reftype.eq_ignore_ascii_case("SUPERBIAS")),
            Work::Generate(_) | Work::Combine(_) => None,
        });
        let from_same_darks = self_made.into_iter().any(|r| {
            jobs[ncal..].iter().any(|m| match &m.work {
                Work::Generate(sb) => {
                    m.output() == r.path
                        && sb
                            .inputs
                            .iter()
                            .any(|i| mask_inputs.contains(i.raw_path.as_path()))
                }
                Work::Calibrate(_) | Work::Combine(_) => false,
            })
        });
        if from_same_darks {
            tracing::warn!(
                "{}: its darks are calibrated with the superbias this run makes from them \
                 (reffile4ssb.superbias: SELF), which takes in a low-pedestal pixel's constant \
                 offset: such pixels cannot be found. Give the calibrations an independent \
                 superbias (a file or CRDS) to find them",
                g.id()
            );
        }
    }
}

/// Generator jobs made to wait for the calibration jobs that make the files they read.
fn wait_for_makers(
    cal_jobs: &[CalibrationJob],
    resolved: &[ResolvedInput],
    gen_jobs: Vec<PreparedJob>,
) -> Vec<PreparedJob> {
    let mut maker = HashMap::new();
    for (i, c) in cal_jobs.iter().enumerate() {
        for &m in &c.makes {
            maker.insert(resolved[m].file.clone(), i);
        }
    }
    gen_jobs
        .into_iter()
        .map(|mut g| {
            if let Work::Generate(spec) = &g.work {
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
            }
            g
        })
        .collect()
}

/// Gives each `SELF` reference of a calibration job (the first jobs of `jobs`, in the order of
/// `cal_jobs`) the output of the generator job that makes it, and makes it wait for that job.
/// Returns the generator jobs that calibrations need.
fn link_self_references(
    cal_jobs: &[CalibrationJob],
    jobs: &mut [PreparedJob],
) -> Result<BTreeSet<usize>, String> {
    let mut problems = Vec::new();
    let mut needed = BTreeSet::new();
    for (i, c) in cal_jobs.iter().enumerate() {
        for r in c
            .references
            .iter()
            .filter(|r| r.choice == RefChoice::SelfMade)
        {
            let makers: Vec<usize> = (cal_jobs.len()..jobs.len())
                .filter(|&j| match &jobs[j].work {
                    Work::Generate(s) => {
                        s.reftype.eq_ignore_ascii_case(&r.reftype) && s.detector == c.detector
                    }
                    Work::Calibrate(_) | Work::Combine(_) => false,
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
                    needed.insert(j);
                }
                [] => problems.push(format!(
                    "{}: reffile4ssb.{key} is SELF (the {} file this run makes), but no \
                     generator of this run makes {} for detector {}: add the reflabel that \
                     makes it (e.g. `mkrefs run {key},...`), or give a file",
                    c.raw.display(),
                    r.reftype,
                    r.reftype,
                    c.detector
                )),
                _ => problems.push(format!(
                    "{}: reffile4ssb.{key} is SELF, but this run makes {} {} files for detector \
                     {} ({}); group that reflabel's inputs into one job per detector (imtypes \
                     D+), or give a file",
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
    if problems.is_empty() {
        Ok(needed)
    } else {
        Err(problems.join("\n"))
    }
}

/// The jobs whose index `keep` accepts, with their links renumbered.
fn keep_only(jobs: Vec<PreparedJob>, keep: impl Fn(usize) -> bool) -> Vec<PreparedJob> {
    let kept: Vec<usize> = (0..jobs.len()).filter(|&j| keep(j)).collect();
    let new_index: HashMap<usize, usize> = kept.iter().enumerate().map(|(n, &o)| (o, n)).collect();
    kept.iter()
        .map(|&o| {
            let mut j = jobs[o].clone();
            j.after = j
                .after
                .iter()
                .filter_map(|d| new_index.get(d).copied())
                .collect();
            j
        })
        .collect()
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
        let kind = rows[*index].kind;
        for u in sel.save.iter().filter(|u| u.applies_to(kind)) {
            let p = u.product;
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
        program: match &sel.entry.origin {
            Origin::Executable { interpreter, .. } => Some(ProgramRun {
                interpreter: interpreter.clone(),
            }),
            _ => None,
        },
        output: with_ext(&outbase, "fits"),
        log: with_ext(&outbase, "log"),
        report: with_ext(&outbase, "report.json"),
        scratch_dir: layout.scratch(g.cmd_id),
        inputs,
        products,
        params: sel
            .params
            .iter()
            .map(|p| JobParam::new(p.param.name.as_str(), &p.param.value))
            .collect(),
        made_from: MadeFrom {
            program: format!(
                "{} {} ({})",
                sel.reflabel,
                sel.entry.info.version,
                sel.entry.origin.describe()
            ),
            files: Vec::new(),
        },
    };
    Ok(PreparedJob {
        job_file: with_ext(&outbase, "job.json"),
        work: Work::Generate(spec),
        after: Vec::new(),
        blocked: None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::prep::jobs::StepRef;

    fn calibration(detector: &str) -> CalibrationJob {
        CalibrationJob {
            row: 0,
            raw: PathBuf::from("/in/d1_uncal.fits"),
            detector: detector.into(),
            run: vec![Step::DqInit, Step::Superbias],
            state: vec![Step::DqInit, Step::Superbias],
            final_product: PathBuf::from("/ssb/d1_dq_init_superbias.fits"),
            final_hdus: None,
            saves: Vec::new(),
            references: vec![StepRef {
                step: Step::Superbias,
                reftype: "SUPERBIAS".into(),
                choice: RefChoice::SelfMade,
            }],
            reflabels: vec!["dark".into()],
            makes: Vec::new(),
            blocked: None,
        }
    }

    fn generator(cmd_id: u32, reftype: &str, detector: &str) -> PreparedJob {
        let base = PathBuf::from(format!("/run/x.cmd{cmd_id}"));
        PreparedJob {
            work: Work::Generate(JobSpec {
                format: JOB_FORMAT,
                cmd_id,
                reflabel: reftype.to_ascii_lowercase(),
                reftype: reftype.into(),
                detector: detector.into(),
                library: None,
                program: None,
                output: with_ext(&base, "fits"),
                log: with_ext(&base, "log"),
                report: with_ext(&base, "report.json"),
                scratch_dir: base.clone(),
                inputs: Vec::new(),
                products: Vec::new(),
                params: Vec::new(),
                made_from: MadeFrom::default(),
            }),
            job_file: with_ext(&base, "job.json"),
            after: Vec::new(),
            blocked: None,
        }
    }

    fn cal_job(c: &CalibrationJob) -> PreparedJob {
        let how = CalibrationRun {
            instrument: Instrument::NirCam,
            backend: Backend::Native,
            strun: "strun",
            crds: None,
        };
        let layout = RunLayout {
            root: PathBuf::from("/"),
            basedir: PathBuf::from("/run"),
            stem: "run000".into(),
            run_label: Some("run000".into()),
            ssbdir: PathBuf::from("/ssb"),
            addsuffix: None,
        };
        calibration_job(1, c, &how, &layout)
    }

    #[test]
    fn a_self_reference_waits_for_the_generator_that_makes_it() {
        let cal = [calibration("NRCA1")];
        let mut jobs = vec![
            cal_job(&cal[0]),
            generator(0, "SUPERBIAS", "NRCA2"),
            generator(1, "SUPERBIAS", "NRCA1"),
        ];
        let needed = link_self_references(&cal, &mut jobs).unwrap();
        assert_eq!(needed, [2].into_iter().collect());
        assert_eq!(jobs[0].after, [2]);
        let Work::Calibrate(spec) = &jobs[0].work else {
            panic!("the first job calibrates")
        };
        assert_eq!(spec.references.len(), 1);
        assert_eq!(spec.references[0].path, PathBuf::from("/run/x.cmd1.fits"));
    }

    #[test]
    fn a_self_reference_nobody_makes_is_refused_with_what_to_do() {
        let cal = [calibration("NRCA1")];
        let mut jobs = vec![cal_job(&cal[0]), generator(0, "SUPERBIAS", "NRCA2")];
        let err = link_self_references(&cal, &mut jobs).unwrap_err();
        assert_eq!(
            err,
            "/in/d1_uncal.fits: reffile4ssb.superbias is SELF (the SUPERBIAS file this run \
             makes), but no generator of this run makes SUPERBIAS for detector NRCA1: add the \
             reflabel that makes it (e.g. `mkrefs run superbias,...`), or give a file"
        );
        let mut jobs = vec![
            cal_job(&cal[0]),
            generator(0, "SUPERBIAS", "NRCA1"),
            generator(1, "SUPERBIAS", "NRCA1"),
        ];
        let err = link_self_references(&cal, &mut jobs).unwrap_err();
        assert!(
            err.contains("this run makes 2 SUPERBIAS files for detector NRCA1 (cmd0, cmd1)"),
            "{err}"
        );
    }

    #[test]
    fn keeping_some_jobs_renumbers_their_links() {
        let mut jobs = vec![
            generator(0, "A", "D"),
            generator(1, "B", "D"),
            generator(2, "C", "D"),
        ];
        jobs[2].after = vec![0, 1];
        let kept = keep_only(jobs, |j| j != 1);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[1].after, [0]);
    }
}
