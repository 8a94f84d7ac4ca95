//! The combine jobs of a plan: one per reflabel and detector that has generator jobs, after
//! them. It reads their reference files and writes `final/<reftype>_<detector>.fits` (the
//! reflabel before it when two reflabels of the run share a reftype), lower case.

use std::collections::BTreeMap;

use crate::combine::rule::{Method, Rule};
use crate::config::settings::CombineSettings;
use crate::exec::executor::{PreparedJob, Work};
use crate::exec::jobfile::{JOB_FORMAT, JobInput, JobSpec, MadeFrom};
use crate::layout::{RunLayout, with_ext};

/// The generator jobs of one reflabel and detector.
struct Family<'a> {
    reflabel: &'a str,
    reftype: &'a str,
    detector: &'a str,
    /// Indices of the generator jobs, in plan order.
    members: Vec<usize>,
}

/// `jobs` followed by their combine jobs. `declared(reflabel)` is the combination method and
/// flag count the generator declares, if any.
pub(crate) fn add_combine_jobs(
    mut jobs: Vec<PreparedJob>,
    settings: &CombineSettings,
    declared: &dyn Fn(&str) -> Option<(Method, u32)>,
    layout: &RunLayout,
) -> Vec<PreparedJob> {
    if !settings.enabled {
        return jobs;
    }
    let mut families: Vec<Family<'_>> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let Work::Generate(s) = &job.work else {
            continue;
        };
        match families
            .iter_mut()
            .find(|f| f.reflabel == s.reflabel && f.detector == s.detector)
        {
            Some(f) => f.members.push(i),
            None => families.push(Family {
                reflabel: &s.reflabel,
                reftype: &s.reftype,
                detector: &s.detector,
                members: vec![i],
            }),
        }
    }
    // Reftypes made by more than one reflabel get the reflabel in their final names.
    let mut reflabels_of: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for f in &families {
        let names = reflabels_of
            .entry(f.reftype.to_ascii_lowercase())
            .or_default();
        if !names.contains(&f.reflabel) {
            names.push(f.reflabel);
        }
    }
    let combine: Vec<PreparedJob> = families
        .iter()
        .enumerate()
        .map(|(k, f)| {
            let reftype = f.reftype.to_ascii_lowercase();
            let shared = reflabels_of[&reftype].len() > 1;
            let name = match shared {
                true => format!(
                    "{}_{reftype}_{}",
                    f.reflabel,
                    f.detector.to_ascii_lowercase()
                ),
                false => format!("{reftype}_{}", f.detector.to_ascii_lowercase()),
            };
            let rule = Rule::for_reftype(f.reftype, declared(f.reflabel), settings);
            combine_job(k as u32 + 1, f, &name, rule, &jobs, layout)
        })
        .collect();
    jobs.extend(combine);
    jobs
}

/// The combine job `fin<id>` of one family.
fn combine_job(
    id: u32,
    f: &Family<'_>,
    name: &str,
    rule: Rule,
    jobs: &[PreparedJob],
    layout: &RunLayout,
) -> PreparedJob {
    let base = layout.combine_basename(name);
    let inputs = f
        .members
        .iter()
        .enumerate()
        .map(|(n, &i)| {
            let output = jobs[i].output().to_path_buf();
            JobInput {
                label: format!("R{}", n + 1),
                kind: "reference".to_string(),
                path: output.clone(),
                raw_path: output,
                mjd: 0.0,
                detector: f.detector.to_string(),
                header: Vec::new(),
            }
        })
        .collect();
    let spec = JobSpec {
        format: JOB_FORMAT,
        cmd_id: id,
        reflabel: f.reflabel.to_string(),
        reftype: f.reftype.to_string(),
        detector: f.detector.to_string(),
        library: None,
        program: None,
        output: layout.final_file(name),
        log: with_ext(&base, "log"),
        report: with_ext(&base, "report.json"),
        scratch_dir: layout.combine_scratch(id),
        inputs,
        products: Vec::new(),
        params: rule.to_params(),
        made_from: MadeFrom {
            program: format!("combine (mkrefs {})", env!("CARGO_PKG_VERSION")),
            files: Vec::new(),
        },
    };
    PreparedJob {
        work: Work::Combine(spec),
        job_file: with_ext(&base, "job.json"),
        after: f.members.clone(),
        blocked: None,
    }
}
