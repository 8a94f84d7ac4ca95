//! Calibration jobs: from the products a run lacks (`state::Source::ToMake`) to one job per
//! exposure and chain of states, with the reference file of every step chosen.
//!
//! - Products of one exposure whose states are prefixes of one another (in pipeline order) are
//!   made by one job: it runs to the longest state and saves the others on the way, so two
//!   reflabels that need the same exposure at nested states cause one job, and a product
//!   (jump) that another reflabel reads directly is saved by the job that makes a later one.
//! - Steps the input already has are never run again (the input state is a prefix of every
//!   wanted state, or `calstate` has already refused it).
//! - The native backend must implement every step to run and have a reference file for each
//!   reftype the step reads; anything missing stops the plan before a job runs, naming the step,
//!   the reftype and the `reffile4ssb` key. The jwst backend passes configured files as
//!   overrides and lets the pipeline ask CRDS for the rest.
//! - A reference file chosen for an exposure must fit it (REFTYPE, DETECTOR, SUBARRAY or FULL,
//!   USEAFTER): when none fits, that job is blocked (it fails at once, its dependents are listed
//!   as not run) and every other job still runs. `SELF` is resolved by the plan, which knows
//!   the generator jobs (see [`RefChoice::SelfMade`]).
//! - `CRDS` references are collected over all jobs and chosen at once at the end of the plan
//!   (one crds client process for every exposure and reftype, see [`crate::prep::crds`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use mkrefs_detector1::pipeline::EngineStep;

use crate::config::Backend;
use crate::inputs::read::InputRow;
use crate::prep::crds::{self, ClientSettings};
use crate::prep::jwst;
use crate::prep::references::{ExposureKeys, RefConfig, RefSource, select_from_pattern};
use crate::prep::state::{ResolvedInput, Source, product_name};
use crate::prep::steps::{Instrument, SaveProduct, Step, in_pipeline_order};

/// The file a step reads, or where it will come from.
#[derive(Clone, Debug, PartialEq)]
pub enum RefChoice {
    /// A file chosen now, with the reason (logged and shown in dry runs).
    File { path: PathBuf, why: String },
    /// The reference file of this reftype that a generator job of this run makes for the
    /// exposure's detector; the plan fills in the path and orders the jobs.
    SelfMade,
}

#[derive(Clone, Debug, PartialEq)]
pub struct StepRef {
    pub step: Step,
    /// Upper case (REFTYPE).
    pub reftype: String,
    pub choice: RefChoice,
}

/// One calibration job.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationJob {
    /// Index of the input row.
    pub row: usize,
    pub raw: PathBuf,
    pub detector: String,
    /// The steps to run, in pipeline order.
    pub run: Vec<Step>,
    /// The state of the final product.
    pub state: Vec<Step>,
    pub final_product: PathBuf,
    /// `Some`: the final product is run-internal, with only these extensions.
    pub final_hdus: Option<BTreeSet<String>>,
    /// Products saved on the way (intermediate states, rateints, fitopt).
    pub saves: Vec<Save>,
    pub references: Vec<StepRef>,
    /// The reflabels whose inputs these are.
    pub reflabels: Vec<String>,
    /// Indices into the resolved list of the files this job makes (or, when blocked, of the
    /// broken product it stands for).
    pub makes: Vec<usize>,
    /// Why this job cannot run (it then fails at once).
    pub blocked: Option<String>,
}

/// A product a calibration job saves on the way to its final product.
#[derive(Clone, Debug, PartialEq)]
pub struct Save {
    pub kind: SaveProduct,
    pub path: PathBuf,
    /// `Some`: run-internal, with only these extensions (see `ResolvedInput::hdus`).
    pub hdus: Option<BTreeSet<String>>,
}

/// What the planner needs besides the resolved inputs.
pub struct CalibrationContext<'a> {
    pub instrument: Instrument,
    pub backend: Backend,
    /// `reffile4ssb` as it applies to each reflabel.
    pub references: &'a BTreeMap<String, RefConfig>,
    /// The crds client and the local CRDS cache for `CRDS` sources.
    pub crds: ClientSettings,
    /// Whether a CRDS is configured ([`crds::configuration`]: how, or why not), which
    /// the jwst backend needs for reference files `reffile4ssb` does not give.
    pub crds_configured: Result<String, String>,
    pub ssbdir: &'a Path,
}

/// The reftypes a step reads with this backend (upper case), and whether each is required.
fn step_reftypes(backend: Backend, step: Step) -> Vec<(String, bool)> {
    match backend {
        Backend::Native => step
            .reftypes()
            .iter()
            .map(|r| (r.name().to_string(), true))
            .collect(),
        Backend::Jwst => jwst::step_reftypes(step)
            .iter()
            .map(|r| (r.to_ascii_uppercase(), false))
            .collect(),
    }
}

/// Whether `short` is `long` cut after some step.
fn is_prefix(short: &[Step], long: &[Step]) -> bool {
    short.len() <= long.len() && long[..short.len()] == *short
}

/// Plans the calibration jobs. Errors that stop the run (a step the native engine lacks, a
/// reference file nobody configured, reflabels configuring different files for one product)
/// are all collected into one message.
pub fn plan_jobs(
    rows: &[InputRow],
    resolved: &[ResolvedInput],
    ctx: &CalibrationContext<'_>,
) -> Result<Vec<CalibrationJob>, String> {
    let mut jobs = Vec::new();
    let mut problems = Vec::new();
    // Broken products stand as blocked jobs, so their dependents are reported.
    for (i, r) in resolved.iter().enumerate() {
        if let Source::Broken(why) = &r.source {
            jobs.push(CalibrationJob {
                row: r.row,
                raw: r.raw.clone(),
                detector: rows[r.row].detector.clone(),
                run: Vec::new(),
                state: r.steps.clone(),
                final_product: r.file.clone(),
                final_hdus: None,
                saves: Vec::new(),
                references: Vec::new(),
                reflabels: r.reflabels.clone(),
                makes: vec![i],
                blocked: Some(format!(
                    "cannot use the product of {}: {why}",
                    r.raw.display()
                )),
            });
        }
    }
    // Per input, the files to make, longest state first, into chains of nested states.
    let mut per_row: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, r) in resolved.iter().enumerate() {
        if r.source == Source::ToMake {
            per_row.entry(r.row).or_default().push(i);
        }
    }
    let mut drafts = Vec::new();
    for (row, mut targets) in per_row {
        targets.sort_by(|&a, &b| {
            resolved[b]
                .steps
                .len()
                .cmp(&resolved[a].steps.len())
                .then(a.cmp(&b))
        });
        let mut chains: Vec<(Vec<Step>, Vec<usize>)> = Vec::new();
        for t in targets {
            let state = &resolved[t].steps;
            match chains.iter_mut().find(|(s, _)| is_prefix(state, s)) {
                Some((_, members)) => members.push(t),
                None => chains.push((state.clone(), vec![t])),
            }
        }
        for (state, members) in chains {
            let hint = nearby_hint(resolved, &members, &state);
            match chain_job(rows, resolved, ctx, row, state, members) {
                Ok(draft) => drafts.push(draft),
                Err(e) => problems.push(format!("{e}{hint}")),
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    resolve_crds(&mut drafts, ctx);
    jobs.extend(drafts.into_iter().map(Draft::finish));
    Ok(jobs)
}

/// When an exposure that would have to be calibrated has products at other states, what they
/// are and how to use them instead (appended to the reason the calibration cannot be
/// planned); empty when there are none.
fn nearby_hint(resolved: &[ResolvedInput], members: &[usize], wanted: &[Step]) -> String {
    let mut nearby: Vec<&(PathBuf, Vec<Step>)> = Vec::new();
    for &m in members {
        for n in &resolved[m].nearby {
            if !nearby.iter().any(|o| o.0 == n.0) {
                nearby.push(n);
            }
        }
    }
    let Some(&first) = members.first() else {
        return String::new();
    };
    if nearby.is_empty() {
        return String::new();
    }
    let names = |steps: &[Step]| -> String {
        if steps.is_empty() {
            "none".to_string()
        } else {
            steps
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut text = format!(
        "\n  {} has products at other states than the wanted one ({}); another ssbsteps would \
         use them instead of calibrating:",
        resolved[first].raw.display(),
        names(wanted)
    );
    for (file, steps) in nearby {
        let lacks: Vec<Step> = wanted
            .iter()
            .copied()
            .filter(|s| !steps.contains(s))
            .collect();
        let extra: Vec<Step> = steps
            .iter()
            .copied()
            .filter(|s| !wanted.contains(s))
            .collect();
        text.push_str(&format!(
            "\n    {} has {}: it lacks {}, and has {} besides; to use it, set ssbsteps: {}",
            file.display(),
            names(steps),
            names(&lacks),
            names(&extra),
            names(steps)
        ));
    }
    text
}

/// A job whose reference files may still wait for CRDS.
struct Draft {
    /// Without references and `blocked`, which [`Draft::finish`] fills in.
    job: CalibrationJob,
    /// In step order.
    references: Vec<(RefKey, Slot)>,
}

/// The reference file of one (step, reftype), or where it will come from.
enum Slot {
    /// The file, or why no file fits this exposure.
    Chosen(Result<RefChoice, String>),
    /// `CRDS`, to be asked for with every other one of the plan. `required`: the native engine
    /// needs a file (CRDS's `N/A` is then an error).
    Crds { need: crds::Need, required: bool },
    /// No file given to the step (CRDS's `N/A` for the jwst backend, whose pipeline then
    /// decides itself).
    Omitted,
}

impl Draft {
    fn finish(self) -> CalibrationJob {
        let mut job = self.job;
        for ((step, reftype), slot) in self.references {
            match slot {
                Slot::Chosen(Ok(choice)) => job.references.push(StepRef {
                    step,
                    reftype,
                    choice,
                }),
                Slot::Chosen(Err(e)) => {
                    job.blocked.get_or_insert(e);
                }
                Slot::Omitted => {}
                Slot::Crds { .. } => unreachable!("resolve_crds resolves every CRDS slot"),
            }
        }
        job
    }
}

/// Chooses every `CRDS` reference of the plan at once (one crds client run, or header
/// matching in the local cache when the client is not installed or configured).
fn resolve_crds(drafts: &mut [Draft], ctx: &CalibrationContext<'_>) {
    let mut needs = Vec::new();
    for d in drafts.iter() {
        for (_, slot) in &d.references {
            if let Slot::Crds { need, .. } = slot {
                needs.push(need.clone());
            }
        }
    }
    if needs.is_empty() {
        return;
    }
    let mut choices = crds::resolve(&ctx.crds, &needs).choices.into_iter();
    for d in drafts.iter_mut() {
        let exposure = d.job.raw.clone();
        for ((step, reftype), slot) in d.references.iter_mut() {
            let Slot::Crds { required, .. } = slot else {
                continue;
            };
            let required = *required;
            let choice = choices.next().expect("crds::resolve answers every need");
            *slot = match choice {
                Ok(crds::Choice::File { path, why }) => {
                    Slot::Chosen(Ok(RefChoice::File { path, why }))
                }
                Ok(crds::Choice::NotApplicable { context }) if required => {
                    Slot::Chosen(Err(format!(
                        "{}, step {step}: CRDS context {context} assigns no {reftype} file (N/A) \
                         to this exposure, but the native {step} step needs one: give \
                         reffile4ssb.{} a file, or leave {step} out of ssbsteps",
                        exposure.display(),
                        reftype.to_ascii_lowercase()
                    )))
                }
                Ok(crds::Choice::NotApplicable { .. }) => Slot::Omitted,
                // The message names the exposure.
                Err(e) => Slot::Chosen(Err(format!("step {step}: {e}"))),
            };
        }
    }
}

/// The saved product a resolved file is, within a job whose final state is `state`.
fn save_kind(r: &ResolvedInput) -> SaveProduct {
    match r.product {
        Some(p @ (SaveProduct::Rateints | SaveProduct::Fitopt)) => p,
        _ => SaveProduct::Step(*r.steps.last().expect("a product to make has steps")),
    }
}

fn chain_job(
    rows: &[InputRow],
    resolved: &[ResolvedInput],
    ctx: &CalibrationContext<'_>,
    row: usize,
    state: Vec<Step>,
    members: Vec<usize>,
) -> Result<Draft, String> {
    let input = &rows[row];
    let run: Vec<Step> = in_pipeline_order(
        state
            .iter()
            .copied()
            .filter(|s| !input.completed.contains(s)),
        ctx.instrument,
    );
    let mut reflabels: Vec<String> = Vec::new();
    for &m in &members {
        for r in &resolved[m].reflabels {
            if !reflabels.contains(r) {
                reflabels.push(r.clone());
            }
        }
    }
    let who = format!("{} ({})", input.path.display(), reflabels.join(", "));
    // A step to run before one the input already has would be applied out of pipeline order.
    let position = |s: &Step| ctx.instrument.position(*s).unwrap_or(usize::MAX);
    if let Some(latest_done) = input.completed.iter().max_by_key(|s| position(s))
        && let Some(early) = run.iter().find(|s| position(s) < position(latest_done))
    {
        return Err(format!(
            "{who}: needs {early}, but the file already has {latest_done} done, which comes \
             after {early} in the {} pipeline; running {early} now would apply the steps out of \
             pipeline order: give the raw (_uncal) exposure, or leave {early} out of ssbsteps",
            ctx.instrument
        ));
    }
    if ctx.backend == Backend::Native {
        let foreign: Vec<&str> = run
            .iter()
            .filter(|s| !s.is_native())
            .map(|s| s.name())
            .collect();
        if !foreign.is_empty() {
            return Err(format!(
                "{who}: the native calibration engine does not implement {}; run this \
                 calibration with the jwst backend (calibration.backend: jwst, or --backend \
                 jwst, with the jwst package's strun installed), or leave the step out of \
                 ssbsteps",
                foreign.join(", ")
            ));
        }
    }
    // The final product is the chain's longest state; other members are saved on the way.
    let last = members.iter().map(|&m| &resolved[m]).find(|r| {
        r.steps == state && !matches!(save_kind(r), SaveProduct::Rateints | SaveProduct::Fitopt)
    });
    let (final_product, final_hdus) = match last {
        Some(r) => (r.file.clone(), r.hdus.clone()),
        None => (
            ctx.ssbdir
                .join(product_name(&input.path, &state, ctx.instrument)),
            None,
        ),
    };
    let mut saves: Vec<Save> = Vec::new();
    for &m in &members {
        let r = &resolved[m];
        if r.file == final_product {
            continue;
        }
        let kind = save_kind(r);
        if !saves.iter().any(|s| s.kind == kind) {
            saves.push(Save {
                kind,
                path: r.file.clone(),
                hdus: r.hdus.clone(),
            });
        }
    }
    saves.sort_by_key(|s| {
        (
            ctx.instrument
                .position(s.kind.producing_step())
                .unwrap_or(usize::MAX),
            matches!(s.kind, SaveProduct::Fitopt),
        )
    });
    let references = choose_references(input, &run, &reflabels, ctx, &who)?;
    Ok(Draft {
        job: CalibrationJob {
            row,
            raw: input.path.clone(),
            detector: input.detector.clone(),
            run,
            state,
            final_product,
            final_hdus,
            saves,
            references: Vec::new(),
            reflabels,
            makes: members,
            blocked: None,
        },
        references,
    })
}

type RefKey = (Step, String);

/// The reference file of every (step, reftype) the run's steps read. The outer error stops the
/// plan (nothing configured, reflabels disagreeing); an inner error blocks this job only (no
/// file fits this exposure).
fn choose_references(
    input: &InputRow,
    run: &[Step],
    reflabels: &[String],
    ctx: &CalibrationContext<'_>,
    who: &str,
) -> Result<Vec<(RefKey, Slot)>, String> {
    let empty = RefConfig::default();
    let mut out = Vec::new();
    // The input table keeps only the configured keys; matching needs DATE-OBS, READPATT...
    let header = mkrefs_support::fits::read_primary_header(&input.path);
    let exposure = header
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|h| ExposureKeys::from_header(&input.path, h));
    for &step in run {
        for (reftype, required) in step_reftypes(ctx.backend, step) {
            let lower = reftype.to_ascii_lowercase();
            let mut sources: Vec<(&String, &RefSource)> = Vec::new();
            for label in reflabels {
                let cfg = ctx.references.get(label).unwrap_or(&empty);
                match cfg.source(step.name(), &lower) {
                    Ok(src) => sources.push((label, src)),
                    Err(e) if required => {
                        return Err(format!("{who}: {e}"));
                    }
                    Err(_) => {}
                }
            }
            let Some(&(_, first)) = sources.first() else {
                // The jwst pipeline asks CRDS itself, which needs a CRDS to ask.
                if let Err(why) = &ctx.crds_configured {
                    return Err(format!(
                        "{who}: the jwst pipeline's {step} step reads a {reftype} file, which \
                         reffile4ssb.{lower} does not give, and it cannot ask CRDS for one: \
                         {why}; set reffile4ssb.{lower} (a file, SELF or CRDS) or configure \
                         CRDS (calibration.crds_path or CRDS_PATH with a synced cache, or \
                         CRDS_SERVER_URL)"
                    ));
                }
                continue;
            };
            if let Some((other, src)) = sources.iter().find(|(_, s)| *s != first) {
                return Err(format!(
                    "{who}: reflabels {} and {other} configure different {reftype} files \
                     ({first:?} and {src:?}) for the same product; products are named by their \
                     steps only, so give them the same reffile4ssb.{lower}, or run them with \
                     different ssbdirs",
                    sources[0].0
                ));
            }
            let choice = match (first, &exposure, &header) {
                (RefSource::SelfMade, _, _) => Ok(RefChoice::SelfMade),
                (_, Err(e), _) => Err(e.clone()),
                (RefSource::Files(pattern), Ok(keys), _) => {
                    select_from_pattern(pattern, &lower, keys)
                        .map(|(path, why)| RefChoice::File { path, why })
                }
                (RefSource::Crds, Ok(keys), Ok(h)) => {
                    // Chosen with every other CRDS reference of the plan (resolve_crds).
                    let need = crds::Need {
                        exposure: input.path.clone(),
                        keys: keys.clone(),
                        parameters: crds::parameters(h),
                        reftype: lower.clone(),
                    };
                    out.push(((step, reftype), Slot::Crds { need, required }));
                    continue;
                }
                (RefSource::Crds, Ok(_), Err(e)) => Err(e.to_string()),
            };
            let choice = choice.map_err(|e| format!("{}, step {step}: {e}", input.path.display()));
            out.push(((step, reftype), Slot::Chosen(choice)));
        }
    }
    Ok(out)
}
