//! The engine's driver: brings one exposure to a requested calibration state and writes the
//! products, as the host calls it for each calibration job ([`calibrate`]).
//!
//! Everything that can be known to fail is checked before the first step runs, so a job that
//! cannot finish fails in seconds and leaves no partial products:
//!
//! - the steps must be steps of the exposure's instrument; they are run in that instrument's
//!   pipeline order whatever order they are given in (the crate's `UPSTREAM.md`, "Step order");
//! - the input's completed steps (S_* = 'COMPLETE', `UPSTREAM.md`, "Completed steps") are never
//!   re-applied; a completed step the request does not contain is an error (a file cannot be
//!   un-calibrated), and so is a step still to run that comes before a completed one (it would
//!   be applied out of order);
//! - steps this engine does not implement natively ([`StepName::is_native`]) are refused, naming
//!   the jwst backend (for MIRI: firstframe and lastframe, the MIRI dark, one dark per
//!   integration, [`crate::reffiles::read_dark_miri`], and the MIRI refpix algorithm,
//!   [`crate::steps::refpix_miri()`], run natively; emicorr, ipc, reset and rscd are left to the
//!   jwst backend; superbias and persistence are not MIRI steps);
//! - every reference file a step to run needs must be given ([`References`]; the error names the
//!   step, the reftype and the `reffile4ssb.<reftype>` config key) and is checked (REFTYPE,
//!   DETECTOR, window) without reading its data;
//! - every product to save must be made by a step that runs and have a path in [`Outputs`].
//!
//! Then the input's pixels are read once, the steps run in place on the one [`Ramp`] in memory,
//! each reference file is read just before its step and dropped after it (so at most one is held
//! beside the ramp), and the products are written through `FitsWriter`, each under a temporary
//! name renamed when complete. The steps record their S_* and R_* keywords; for jump and
//! ramp_fit this driver records R_READNO and R_GAIN, as stpipe does for their reference files.
//!
//! Ramp fitting makes its optional output (fitopt) only when that product is to be saved, holds
//! it compactly and writes it plane by plane ([`crate::ramp_fit::ramp_fit_parts`]), so that a
//! few pixels with many jumps do not multiply the memory; the ramp's pixels are released before
//! the products are written.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use mkrefs_support::fits::read_primary_header;
use mkrefs_support::geometry::Instrument;
use mkrefs_support::header::Header;

use crate::error::StepError;
use crate::form::Form;
use crate::jump::{JumpParams, JumpSummary, jump};
use crate::ramp::Ramp;
use crate::ramp_fit::{
    Fitopt, RampFitError, ramp_fit_parts, write_fitopt_parts, write_rate, write_rateints,
};
use crate::reffiles::{
    GainRef, ReadnoiseRef, Target, check_reference, read_dark_groups, read_dark_miri, read_gain,
    read_linearity, read_mask, read_readnoise, read_saturation, read_superbias,
};
use crate::steps::saturation::SaturationParams;
use crate::steps::{
    FirstFrameParams, FrameFlagging, MiriRefpix, MiriRefpixParams, RefpixParams, dark_current,
    dark_current::dark_frames_needed, dark_current_miri, dq_init, firstframe, group_scale,
    lastframe, linearity, refpix, refpix_miri, saturation, superbias,
};

/// Where to point a user whose request needs a step this engine does not run.
const JWST_BACKEND_HINT: &str = "run this calibration with the jwst backend (the jwst \
     package's calwebb_detector1 through strun), or leave the step out of ssbsteps";

pub use mkrefs_support::pipeline_steps::Step as StepName;

/// What this engine knows about a step beyond its name.
pub trait EngineStep {
    /// Whether this engine runs the step. ipc, persistence and the MIRI corrections that need
    /// MIRI-only reference files (emicorr, reset, rscd) are left to the jwst pipeline;
    /// firstframe and lastframe (flags only) run here.
    fn is_native(&self) -> bool;
    /// The reference files the step needs, in the order it reads them.
    fn reftypes(&self) -> &'static [RefType];
}

impl EngineStep for StepName {
    fn is_native(&self) -> bool {
        matches!(
            *self,
            StepName::GroupScale
                | StepName::DqInit
                | StepName::Saturation
                | StepName::FirstFrame
                | StepName::LastFrame
                | StepName::Superbias
                | StepName::Refpix
                | StepName::Linearity
                | StepName::DarkCurrent
                | StepName::Jump
                | StepName::Rate
        )
    }

    fn reftypes(&self) -> &'static [RefType] {
        match *self {
            StepName::DqInit => &[RefType::Mask],
            StepName::Saturation => &[RefType::Saturation],
            StepName::Superbias => &[RefType::Superbias],
            StepName::Linearity => &[RefType::Linearity],
            StepName::DarkCurrent => &[RefType::Dark],
            StepName::Jump | StepName::Rate => &[RefType::Readnoise, RefType::Gain],
            _ => &[],
        }
    }
}

/// The instrument's steps in pipeline order (`UPSTREAM.md`, "Step order").
pub fn pipeline_order(instrument: Instrument) -> &'static [StepName] {
    instrument.steps()
}

/// A kind of reference file the native steps read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefType {
    Mask,
    Saturation,
    Superbias,
    Linearity,
    Dark,
    Readnoise,
    Gain,
}

impl RefType {
    /// The REFTYPE keyword value.
    pub fn name(self) -> &'static str {
        match self {
            RefType::Mask => "MASK",
            RefType::Saturation => "SATURATION",
            RefType::Superbias => "SUPERBIAS",
            RefType::Linearity => "LINEARITY",
            RefType::Dark => "DARK",
            RefType::Readnoise => "READNOISE",
            RefType::Gain => "GAIN",
        }
    }

    /// The configuration key through which the user gives this file.
    pub fn config_key(self) -> String {
        format!("reffile4ssb.{}", self.name().to_ascii_lowercase())
    }
}

/// The reference file of each reftype (e.g. chosen by the host from `reffile4ssb` or CRDS).
/// Only the files of the steps that actually run are needed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct References {
    pub mask: Option<PathBuf>,
    pub saturation: Option<PathBuf>,
    pub superbias: Option<PathBuf>,
    pub linearity: Option<PathBuf>,
    pub dark: Option<PathBuf>,
    pub readnoise: Option<PathBuf>,
    pub gain: Option<PathBuf>,
}

impl References {
    pub fn get(&self, reftype: RefType) -> Option<&Path> {
        match reftype {
            RefType::Mask => self.mask.as_deref(),
            RefType::Saturation => self.saturation.as_deref(),
            RefType::Superbias => self.superbias.as_deref(),
            RefType::Linearity => self.linearity.as_deref(),
            RefType::Dark => self.dark.as_deref(),
            RefType::Readnoise => self.readnoise.as_deref(),
            RefType::Gain => self.gain.as_deref(),
        }
    }

    /// The file of `reftype`; the plan has checked that it is there.
    fn need(&self, reftype: RefType, step: StepName) -> Result<&Path, StepError> {
        self.get(reftype).ok_or_else(|| missing(&[(step, reftype)]))
    }
}

/// An intermediate or side product to keep (`ssb_save_steps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaveAt {
    /// The output of this step: a RampModel file, or for `Rate` the slope image (ImageModel).
    Step(StepName),
    /// The per-integration slopes (CubeModel) of ramp fitting.
    Rateints,
    /// Ramp fitting's optional output (RampFitOutputModel).
    Fitopt,
}

impl SaveAt {
    /// The step whose run makes the product.
    pub fn producing_step(self) -> StepName {
        match self {
            SaveAt::Step(s) => s,
            SaveAt::Rateints | SaveAt::Fitopt => StepName::Rate,
        }
    }
}

impl fmt::Display for SaveAt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaveAt::Step(s) => f.write_str(s.name()),
            SaveAt::Rateints => f.write_str("rateints"),
            SaveAt::Fitopt => f.write_str("fitopt"),
        }
    }
}

/// Where the products go: the final product (the RampModel after the last step, or the rate
/// image when ramp fitting is the last step) and the path of each product that may be saved.
/// `calibrate`'s `save` says which of `saved` are written; the host may fill `saved` with the
/// names of every product it knows how to name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outputs {
    pub final_product: PathBuf,
    pub saved: BTreeMap<SaveAt, PathBuf>,
    /// The form of each product by path; a product not listed is written whole
    /// ([`Form::Full`]).
    pub forms: BTreeMap<PathBuf, Form>,
}

impl Outputs {
    /// What of the product at `path` is written.
    pub fn form(&self, path: &Path) -> &Form {
        static FULL: Form = Form::Full;
        self.forms.get(path).unwrap_or(&FULL)
    }
}

/// Parameters of the steps that have any (the jwst defaults by [`Default`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepParams {
    pub saturation: SaturationParams,
    pub firstframe: FirstFrameParams,
    /// refpix of the near-infrared detectors.
    pub refpix: RefpixParams,
    /// refpix of MIRI (a different algorithm with its own parameters).
    pub refpix_miri: MiriRefpixParams,
    pub jump: JumpParams,
}

/// What [`calibrate`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibrated {
    /// Requested steps the input already had, left alone.
    pub already_done: Vec<StepName>,
    /// Steps run, in order (some may have recorded themselves SKIPPED, see `skipped`).
    pub ran: Vec<StepName>,
    /// Steps that ran but found nothing to do (group_scale with NFRAMES = FRMDIVSR, jump with
    /// too few groups, firstframe and lastframe with too few groups, refpix of a MIRI
    /// subarray) and recorded S_* = 'SKIPPED', as jwst does.
    pub skipped: Vec<StepName>,
    /// The jump step's counts, when it ran.
    pub jump: Option<JumpSummary>,
    /// The final product.
    pub final_product: PathBuf,
    /// The saved products, in the order written.
    pub saved: Vec<(SaveAt, PathBuf)>,
    /// Wall seconds of each phase, in order ("read", each step, "write" and the product), for the
    /// job's log: where a slow calibration spends its time.
    pub timings: Vec<(String, f64)>,
}

/// Records the seconds since `*since` under `what` and restarts the clock.
fn lap(timings: &mut Vec<(String, f64)>, since: &mut Instant, what: impl Into<String>) {
    timings.push((what.into(), since.elapsed().as_secs_f64()));
    *since = Instant::now();
}

/// The error of steps that need reference files nobody gave.
fn missing(list: &[(StepName, RefType)]) -> StepError {
    let items: Vec<String> = list
        .iter()
        .map(|(s, r)| {
            format!(
                "step {s} needs a {} reference file; set {} in the configuration",
                r.name(),
                r.config_key()
            )
        })
        .collect();
    StepError::Unsupported {
        step: list.first().map_or("calibrate", |(s, _)| s.name()),
        message: format!("no reference file given: {}", items.join("; ")),
    }
}

/// Whether group_scale would change the data of an exposure with this header (the condition
/// under which [`group_scale`] does not skip itself).
fn group_scale_would_scale(h: &Header) -> bool {
    matches!((h.get_i64("NFRAMES"), h.get_i64("FRMDIVSR")), (Some(n), Some(d)) if n != d)
}

/// The checked request: the steps to run, in pipeline order.
#[derive(Debug)]
struct Plan {
    instrument: Instrument,
    already_done: Vec<StepName>,
    to_run: Vec<StepName>,
}

/// Everything about the request that can be decided from the input's primary header, before
/// its pixels are read.
fn plan(
    input: &Path,
    header: &Header,
    steps: &[StepName],
    save: &[SaveAt],
    refs: &References,
    outputs: &Outputs,
) -> Result<Plan, StepError> {
    let request_err = |step: &'static str, message: String| StepError::Unsupported {
        step,
        message: format!("{}: {message}", input.display()),
    };
    let instrument = instrument_of(header).map_err(|m| request_err("calibrate", m))?;
    let order = pipeline_order(instrument);
    let wanted = in_pipeline_order(steps, instrument).map_err(|(s, m)| request_err(s, m))?;
    let done = completed_steps(header);
    let (already_done, to_run): (Vec<StepName>, Vec<StepName>) =
        wanted.iter().partition(|s| done.contains(s));
    let extra: Vec<StepName> = done
        .iter()
        .copied()
        .filter(|s| !wanted.contains(s))
        .collect();
    if let Some(&first) = extra.first() {
        return Err(request_err(
            first.name(),
            format!(
                "the input already has {} (S_* = 'COMPLETE') but the requested steps ({}) do \
                 not; a file cannot be un-calibrated: add those steps to the request or start \
                 from the uncal file",
                names(&extra),
                names(&wanted)
            ),
        ));
    }
    check_not_out_of_order(&to_run, &done, order, header).map_err(|(s, m)| request_err(s, m))?;
    if let Some(&s) = to_run.iter().find(|s| !s.is_native()) {
        return Err(StepError::Unsupported {
            step: s.name(),
            message: format!(
                "the {s} step is not implemented by the native detector1 engine; \
                 {JWST_BACKEND_HINT}"
            ),
        });
    }
    let absent: Vec<(StepName, RefType)> = to_run
        .iter()
        .flat_map(|&s| s.reftypes().iter().map(move |&r| (s, r)))
        .filter(|&(_, r)| refs.get(r).is_none())
        .collect();
    if !absent.is_empty() {
        return Err(missing(&absent));
    }
    check_saved_products(save, outputs, &to_run, &already_done)
        .map_err(|(s, m)| request_err(s, m))?;
    Ok(Plan {
        instrument,
        already_done,
        to_run,
    })
}

/// A refusal of the request: the step it concerns and why.
type Refusal = (&'static str, String);

/// Comma list of step names.
fn names(v: &[StepName]) -> String {
    v.iter().map(|s| s.name()).collect::<Vec<_>>().join(", ")
}

/// The instrument of INSTRUME, which decides the steps and their order.
fn instrument_of(header: &Header) -> Result<Instrument, String> {
    match header.get_str("INSTRUME") {
        Some(v) => Instrument::from_header(v).ok_or_else(|| {
            format!("INSTRUME = {v:?} has no instrument profile (README, Instrument profiles)")
        }),
        None => Err(
            "the primary header has no INSTRUME, which decides the pipeline's steps and \
                     their order"
                .into(),
        ),
    }
}

/// The requested steps without repeats in the instrument's pipeline order (the request is a
/// set, as `ssbsteps` is); a step that is not one of the instrument's is refused.
fn in_pipeline_order(steps: &[StepName], instrument: Instrument) -> Result<Vec<StepName>, Refusal> {
    let order = pipeline_order(instrument);
    let pos = |s: StepName| order.iter().position(|o| *o == s);
    let mut wanted: Vec<StepName> = steps
        .iter()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if let Some(&s) = wanted.iter().find(|&&s| pos(s).is_none()) {
        return Err((
            s.name(),
            format!(
                "{s} is not a {} pipeline step; its steps are: {}",
                instrument.name(),
                names(order)
            ),
        ));
    }
    wanted.sort_by_key(|&s| pos(s));
    Ok(wanted)
}

/// The completed steps, over every S_* keyword (a step done is done, whatever the instrument).
fn completed_steps(header: &Header) -> Vec<StepName> {
    StepName::ALL
        .into_iter()
        .filter(|s| header.get_str(s.keyword()).map(str::trim) == Some("COMPLETE"))
        .collect()
}

/// A step still to run must not come before a completed one (it would be applied out of
/// order); group_scale that would skip itself changes nothing, wherever it runs.
fn check_not_out_of_order(
    to_run: &[StepName],
    done: &[StepName],
    order: &[StepName],
    header: &Header,
) -> Result<(), Refusal> {
    let pos = |s: StepName| order.iter().position(|o| *o == s);
    for &s in to_run {
        if s == StepName::GroupScale && !group_scale_would_scale(header) {
            continue;
        }
        if let Some(&later) = done.iter().find(|&&d| pos(d) > pos(s)) {
            return Err((
                s.name(),
                format!(
                    "the input already has {later}, which comes after {s} in the pipeline; \
                     running {s} now would apply it out of order: start from the uncal file"
                ),
            ));
        }
    }
    Ok(())
}

/// Every product to save must be made by a step that runs, and have a path of its own (the
/// final product's path only if it is the final product).
fn check_saved_products(
    save: &[SaveAt],
    outputs: &Outputs,
    to_run: &[StepName],
    already_done: &[StepName],
) -> Result<(), Refusal> {
    let mut paths: BTreeMap<&Path, String> = BTreeMap::new();
    paths.insert(outputs.final_product.as_path(), "the final product".into());
    for p in save.iter().copied().collect::<BTreeSet<_>>() {
        let step = p.producing_step();
        if !to_run.contains(&step) {
            let why = if already_done.contains(&step) {
                "the input already has that step, so this run does not make it"
            } else {
                "that step is not requested"
            };
            return Err((
                step.name(),
                format!("the {p} product cannot be saved: {why}"),
            ));
        }
        let path = outputs.saved.get(&p).ok_or_else(|| {
            (
                step.name(),
                format!("the {p} product is to be saved but no output path was given for it"),
            )
        })?;
        if let Some(other) = paths.insert(path, format!("the {p} product"))
            && !(other == "the final product" && is_final(p, to_run))
        {
            return Err((
                step.name(),
                format!(
                    "the {p} product and {other} would both be written to {}",
                    path.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Whether `p` is the final product itself (saving it under the final path is no conflict).
fn is_final(p: SaveAt, to_run: &[StepName]) -> bool {
    matches!(p, SaveAt::Step(s) if to_run.last() == Some(&s))
}

/// Brings the exposure `input` (an uncal or RampModel file) to the state `steps` describe and
/// writes the final product and the `save` products to their paths in `outputs`, with the jwst
/// default step parameters. See the module documentation for what is checked first.
pub fn calibrate(
    input: &Path,
    steps: &[StepName],
    save: &[SaveAt],
    refs: &References,
    outputs: &Outputs,
) -> Result<Calibrated, StepError> {
    calibrate_with(input, steps, save, refs, outputs, &StepParams::default())
}

/// [`calibrate`] with explicit step parameters.
pub fn calibrate_with(
    input: &Path,
    steps: &[StepName],
    save: &[SaveAt],
    refs: &References,
    outputs: &Outputs,
    params: &StepParams,
) -> Result<Calibrated, StepError> {
    let mut clock = Instant::now();
    let mut timings = Vec::new();
    let header = read_primary_header(input)?;
    let plan = plan(input, &header, steps, save, refs, outputs)?;
    drop(header);
    let mut ramp = Ramp::read(input)?;
    lap(&mut timings, &mut clock, "read");
    let target = Target::of(&ramp)?;
    for &s in &plan.to_run {
        for &r in s.reftypes() {
            check_reference(refs.need(r, s)?, r.name(), &target)?;
        }
    }
    let mut done = Calibrated {
        already_done: plan.already_done.clone(),
        final_product: outputs.final_product.clone(),
        timings,
        ..Calibrated::default()
    };
    // READNOISE and GAIN, read once for jump and ramp_fit.
    let mut noise: Option<(ReadnoiseRef, GainRef)> = None;
    // A product of the step just before ramp fitting, written while the ramp is fitted (the
    // fit only reads the ramp).
    let mut deferred: Option<(StepName, &Path)> = None;
    for (k, &s) in plan.to_run.iter().enumerate() {
        let mut skipped = false;
        match s {
            StepName::GroupScale => {
                skipped = group_scale(&mut ramp)? == group_scale::GroupScale::Skipped;
            }
            StepName::DqInit => {
                let m = read_mask(refs.need(RefType::Mask, s)?, &target)?;
                dq_init(&mut ramp, &m)?;
            }
            StepName::Saturation => {
                let r = read_saturation(refs.need(RefType::Saturation, s)?, &target)?;
                saturation(&mut ramp, &r, &params.saturation)?;
            }
            StepName::Superbias => {
                let r = read_superbias(refs.need(RefType::Superbias, s)?, &target)?;
                superbias(&mut ramp, &r)?;
            }
            StepName::FirstFrame => {
                skipped = firstframe(&mut ramp, &params.firstframe)? == FrameFlagging::Skipped;
            }
            StepName::LastFrame => {
                skipped = lastframe(&mut ramp)? == FrameFlagging::Skipped;
            }
            StepName::Refpix if plan.instrument == Instrument::Miri => {
                skipped =
                    refpix_miri(&mut ramp, &params.refpix_miri)? == MiriRefpix::SkippedSubarray;
            }
            StepName::Refpix => refpix(&mut ramp, &params.refpix)?,
            StepName::Linearity => {
                let r = read_linearity(refs.need(RefType::Linearity, s)?, &target)?;
                linearity(&mut ramp, &r)?;
            }
            StepName::DarkCurrent if plan.instrument == Instrument::Miri => {
                let groups = dark_frames_needed(&ramp)?;
                let path = refs.need(RefType::Dark, s)?;
                let start = dark_current_miri::intstart(&ramp);
                let r = read_dark_miri(path, &target, ramp.nints, start, groups)?;
                dark_current_miri(&mut ramp, &r)?;
            }
            StepName::DarkCurrent => {
                let planes = dark_frames_needed(&ramp)?;
                let r = read_dark_groups(refs.need(RefType::Dark, s)?, &target, planes)?;
                dark_current(&mut ramp, &r)?;
            }
            StepName::Jump => {
                let (rn, g) = match noise.take() {
                    Some(n) => n,
                    None => read_noise(refs, &target, s)?,
                };
                let summary = jump(&mut ramp, &rn.sci, &g.sci, &params.jump).map_err(|e| {
                    StepError::Unsupported {
                        step: "jump",
                        message: e.to_string(),
                    }
                })?;
                skipped = summary.skipped;
                ramp.set_reference("R_READNO", &rn.path);
                ramp.set_reference("R_GAIN", &g.path);
                done.jump = Some(summary);
                noise = Some((rn, g));
            }
            StepName::Rate => {
                let (rn, g) = match noise.take() {
                    Some(n) => n,
                    None => read_noise(refs, &target, s)?,
                };
                ramp.set_reference("R_READNO", &rn.path);
                ramp.set_reference("R_GAIN", &g.path);
                done.ran.push(s);
                return fit_and_write(ramp, &rn, &g, save, outputs, deferred, done, clock);
            }
            other => {
                // plan() refused every step that is not native.
                return Err(StepError::Unsupported {
                    step: other.name(),
                    message: format!("not implemented natively; {JWST_BACKEND_HINT}"),
                });
            }
        }
        done.ran.push(s);
        if skipped {
            done.skipped.push(s);
        }
        lap(&mut done.timings, &mut clock, s.name());
        if let Some(path) = saved_path(SaveAt::Step(s), save, outputs) {
            // The last step's product under the final path is written once, below.
            let written = if path == outputs.final_product {
                path.to_path_buf()
            } else if plan.to_run.get(k + 1) == Some(&StepName::Rate) {
                deferred = Some((s, path));
                continue;
            } else {
                let w = ramp.write_as(path, outputs.form(path))?;
                lap(&mut done.timings, &mut clock, format!("write {s} product"));
                w
            };
            done.saved.push((SaveAt::Step(s), written));
        }
    }
    let last = &outputs.final_product;
    ramp.write_as(last, outputs.form(last))?;
    lap(&mut done.timings, &mut clock, "write final product");
    Ok(done)
}

/// Reads the READNOISE and GAIN files for `step` (jump or rate).
fn read_noise(
    refs: &References,
    target: &Target,
    step: StepName,
) -> Result<(ReadnoiseRef, GainRef), StepError> {
    Ok((
        read_readnoise(refs.need(RefType::Readnoise, step)?, target)?,
        read_gain(refs.need(RefType::Gain, step)?, target)?,
    ))
}

/// The path of `p` if it is to be saved.
fn saved_path<'a>(p: SaveAt, save: &[SaveAt], outputs: &'a Outputs) -> Option<&'a Path> {
    save.contains(&p)
        .then(|| outputs.saved.get(&p).map(PathBuf::as_path))
        .flatten()
}

fn fit_error(e: RampFitError) -> StepError {
    match e {
        RampFitError::Fits(f) => StepError::Fits(f),
        other => StepError::Unsupported {
            step: "rate",
            message: other.to_string(),
        },
    }
}

/// Ramp fitting, the last step: fits, releases the ramp's pixels, and writes the rate image as
/// the final product plus the requested rate, rateints and fitopt products. Writing overlaps
/// the work where it can (cfitsio is built reentrant; each thread has its own file): the
/// `deferred` product of the step before is written while the ramp is fitted, and the fitopt
/// file (the largest by far) while the others are written.
#[allow(clippy::too_many_arguments)]
fn fit_and_write(
    ramp: Ramp,
    rn: &ReadnoiseRef,
    g: &GainRef,
    save: &[SaveAt],
    outputs: &Outputs,
    deferred: Option<(StepName, &Path)>,
    mut done: Calibrated,
    mut clock: Instant,
) -> Result<Calibrated, StepError> {
    // The optional output is made only when it is to be saved, and only its pedestals when
    // nothing else of it is written.
    let fitopt = match saved_path(SaveAt::Fitopt, save, outputs).map(|p| outputs.form(p)) {
        None => Fitopt::No,
        Some(Form::Only(hdus)) if hdus.iter().all(|h| h == "PEDESTAL") => Fitopt::Pedestal,
        Some(_) => Fitopt::Whole,
    };
    let (fit, written_before) = std::thread::scope(|scope| {
        let ramp = &ramp;
        let writer = deferred.map(|(step, path)| {
            scope.spawn(move || {
                ramp.write_as(path, outputs.form(path))
                    .map(|w| (SaveAt::Step(step), w))
            })
        });
        let fit = ramp_fit_parts(ramp, &rn.sci, &g.sci, fitopt);
        let written = writer.map(|h| h.join().expect("writing a product does not panic"));
        (fit, written)
    });
    if let Some(w) = written_before {
        done.saved.push(w?);
    }
    let out = fit.map_err(fit_error)?;
    let header = ramp.header;
    drop((ramp.sci, ramp.groupdq));
    lap(
        &mut done.timings,
        &mut clock,
        if deferred.is_some() {
            "rate (and writing the product before it)"
        } else {
            "rate"
        },
    );
    let fitopt_path = saved_path(SaveAt::Fitopt, save, outputs);
    let (others, fitopt) = std::thread::scope(|scope| {
        let fitopt = fitopt_path.map(|path| {
            let (header, parts) = (&header, out.fitopt.as_ref());
            scope.spawn(move || match parts {
                Some(o) => write_fitopt_parts(path, header, o, outputs.form(path)),
                None => Err(RampFitError::Shape(
                    "the optional output was not made".into(),
                )),
            })
        });
        let mut others = vec![
            write_rate(
                &outputs.final_product,
                &header,
                &out.rate,
                outputs.form(&outputs.final_product),
            )
            .map(|_| None)
            .map_err(fit_error),
        ];
        for p in [SaveAt::Step(StepName::Rate), SaveAt::Rateints] {
            let Some(path) = saved_path(p, save, outputs) else {
                continue;
            };
            let written = match p {
                _ if path == outputs.final_product => Ok(path.to_path_buf()),
                SaveAt::Rateints => {
                    write_rateints(path, &header, &out.rateints, outputs.form(path))
                }
                _ => write_rate(path, &header, &out.rate, outputs.form(path)),
            };
            others.push(written.map(|w| Some((p, w))).map_err(fit_error));
        }
        let fitopt = fitopt.map(|h| h.join().expect("writing a product does not panic"));
        (others, fitopt)
    });
    for w in others {
        if let Some(saved) = w? {
            done.saved.push(saved);
        }
    }
    if let Some(w) = fitopt {
        done.saved.push((SaveAt::Fitopt, w.map_err(fit_error)?));
    }
    lap(&mut done.timings, &mut clock, "write rate products");
    Ok(done)
}
