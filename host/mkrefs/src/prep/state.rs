//! Calibration state: which steps an input has had (its S_* keywords), what its products are
//! called, where an existing product at the wanted state is found, and the plan that says which
//! file each job reads (see UPSTREAM.md, "Calibration state").
//!
//! Differences from upstream, on purpose:
//! - A product is used only when its state **equals** the wanted state; upstream's `choose_file`
//!   also took files with extra steps done, which can apply a correction twice.
//! - An input that is already at the wanted state is used as it is (upstream handed the plugin a
//!   product name in ssbdir that nothing created).
//! - Candidates must start with the exposure's stem followed by `_`, so `foo_1` no longer
//!   matches `foo_10_...`; the exposure's own products given as inputs are tried first, then
//!   ssbdir and every `output.pipeline_prod_search_dir` entry, searched recursively (upstream
//!   searched the top of ssbdir only).
//! - An (input, state) with no usable product is planned as a product to make in ssbdir under
//!   the name [`product_name`] gives (`prep::jobs` plans the jobs that make them); a product
//!   found but cut short or contradicting its S_* state is reported, not used (`prep::check`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::inputs::discover;
use crate::inputs::exposure::exposure_stem;
use crate::inputs::read::{InputRow, ReadHeader, completed_steps};
use crate::prep::reads::{ProductUse, merge_hdus};
use crate::prep::record;
use crate::prep::steps::{Instrument, SaveProduct, Step, in_pipeline_order, join_steps};

/// The file name of `raw`'s product with `steps` done: `<stem>_<steps in pipeline order joined
/// by _>.fits`, `<stem>_uncal.fits` for none, where the stem is the exposure's
/// ([`exposure_stem`]: the name without `.fits` and without product endings). With ramp
/// fitting the trailing `_rate` is written `_0_ramp_fit`, the name the jwst pipeline gives the
/// slope file when told the output name `<stem>_<...>_jump`, so products of upstream runs are
/// recognised. Unlike upstream, `_uncal` and `_rate` are removed only at the end, never inside
/// the stem.
pub fn product_name(raw: &Path, steps: &[Step], instrument: Instrument) -> String {
    let stem = exposure_stem(raw);
    let steps = in_pipeline_order(steps.iter().copied(), instrument);
    if steps.is_empty() {
        return format!("{stem}_uncal.fits");
    }
    let names: Vec<&str> = steps
        .iter()
        .map(|s| match s {
            Step::Rate => "0_ramp_fit",
            other => other.name(),
        })
        .collect();
    format!("{stem}_{}.fits", names.join("_"))
}

/// The directory of ssbdir that holds run-internal products (README, "Run-internal products").
pub const INTERNAL_DIR: &str = "mkrefs-internal";

/// Side products that carry the same S_* keywords as the product but hold different data
/// (per-integration slopes, ramp-fit extras, persistence traps); never taken as a product.
const SIDE_PRODUCT_SUFFIXES: &[&str] = &[
    "_fitopt",
    "_rateints",
    "_1_ramp_fit",
    "_ramp_fit_1",
    "_trapsfilled",
];

/// The `.fits` files below the search directories, recursively: each directory's files sorted,
/// directories in the order given (ssbdir first). Directories that do not exist are skipped; a
/// fresh run has no ssbdir yet.
struct ProductScan {
    files: Vec<PathBuf>,
}

fn scan_dirs(search_dirs: &[PathBuf]) -> Result<ProductScan, String> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for dir in search_dirs {
        if !dir.is_dir() {
            continue;
        }
        // Run-internal products are found by their path, never by a search (one taken as the
        // user's own product would lack the extensions its reader needs).
        let internal: Vec<PathBuf> = std::fs::canonicalize(dir.join(INTERNAL_DIR))
            .into_iter()
            .collect();
        let mut found = discover::fits_files_below(dir, &internal).map_err(|e| {
            format!(
                "looking for calibrated products: {}",
                discover::search_failure(dir, &e)
            )
        })?;
        found.sort();
        files.extend(found.into_iter().filter(|f| seen.insert(f.clone())));
    }
    Ok(ProductScan { files })
}

/// Cached S_* states of candidate products, so each header is read once per run.
type StateCache = HashMap<PathBuf, Result<BTreeSet<Step>, String>>;

/// Outcome of a search: the product, or why candidates were refused when they could not be
/// read, and the products of the exposure found at other states (for messages).
struct Search {
    found: Option<PathBuf>,
    unreadable: Vec<(PathBuf, String)>,
    others: Vec<(PathBuf, BTreeSet<Step>)>,
}

/// Which files of an input can hold what is looked for.
#[derive(Clone, Copy)]
enum Want {
    /// The product itself: anything but a side product.
    Product,
    /// A side product of ramp fitting, recognised by one of these name endings.
    Side(&'static [&'static str]),
}

impl Want {
    fn accepts(self, stem: &str) -> bool {
        let side = SIDE_PRODUCT_SUFFIXES.iter().any(|s| stem.ends_with(s));
        match self {
            Want::Product => !side,
            Want::Side(endings) => endings.iter().any(|s| stem.ends_with(s)),
        }
    }

    /// Whether a candidate's S_* state is the one wanted. jwst writes ramp fitting's optional
    /// output (fitopt) with the state before ramp fitting, so it is matched without `rate`
    /// (and with it, as earlier mkrefs versions wrote it).
    fn state_fits(self, state: &BTreeSet<Step>, required: &BTreeSet<Step>) -> bool {
        if state == required {
            return true;
        }
        let fitopt = matches!(self, Want::Side(endings) if endings == FITOPT_ENDINGS);
        fitopt && required.contains(&Step::Rate) && {
            let mut before = required.clone();
            before.remove(&Step::Rate);
            *state == before
        }
    }
}

/// Looks through `files` (the exposure's own products given as inputs first, then the
/// search directories' files) for the first one of `raw`'s exposure that `want` accepts at
/// the `required` state.
fn search<'f>(
    raw: &Path,
    required: &BTreeSet<Step>,
    want: Want,
    files: impl IntoIterator<Item = &'f PathBuf>,
    reader: &ReadHeader<'_>,
    cache: &mut StateCache,
) -> Search {
    let prefix = format!("{}_", exposure_stem(raw));
    let mut unreadable = Vec::new();
    let mut others = Vec::new();
    for file in files {
        let Some(name) = file.file_name().map(|n| n.to_string_lossy()) else {
            continue;
        };
        if !name.starts_with(&prefix) || file == raw {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let stem = lower.strip_suffix(".fits").unwrap_or(&lower);
        if !want.accepts(stem) {
            continue;
        }
        let state = cache
            .entry(file.clone())
            .or_insert_with(|| reader(file).map(|h| completed_steps(&h)));
        match state {
            Ok(state) if want.state_fits(state, required) => {
                return Search {
                    found: Some(file.clone()),
                    unreadable,
                    others,
                };
            }
            Ok(state) => {
                if matches!(want, Want::Product) && !others.iter().any(|(f, _)| f == file) {
                    others.push((file.clone(), state.clone()));
                }
            }
            Err(e) => unreadable.push((file.clone(), e.clone())),
        }
    }
    Search {
        found: None,
        unreadable,
        others,
    }
}

/// Looks for a product of `raw` at exactly the `required` state in `search_dirs` (ssbdir first,
/// then `output.pipeline_prod_search_dir`), recursively. A candidate's name starts with the
/// exposure's stem (see [`exposure_stem`]) and `_`; side products (`_fitopt`, `_rateints`,
/// `_1_ramp_fit`, `_trapsfilled`) are ignored. The first match wins: earlier directories first,
/// then sorted path order. Unreadable candidates are skipped, and reported only when nothing
/// is found. (The plan searches through [`plan_inputs`]; this single search is for tests.)
#[cfg(test)]
pub fn find_product(
    raw: &Path,
    required: &[Step],
    search_dirs: &[PathBuf],
    reader: &ReadHeader<'_>,
) -> Result<Option<PathBuf>, String> {
    let scan = scan_dirs(search_dirs)?;
    let required: BTreeSet<Step> = required.iter().copied().collect();
    let result = search(
        raw,
        &required,
        Want::Product,
        &scan.files,
        reader,
        &mut HashMap::new(),
    );
    match (result.found, result.unreadable.is_empty()) {
        (Some(p), _) => Ok(Some(p)),
        (None, true) => Ok(None),
        (None, false) => Err(format!(
            "no product of {} found, and these candidates could not be read: {}",
            raw.display(),
            describe_unreadable(&result.unreadable)
        )),
    }
}

fn describe_unreadable(list: &[(PathBuf, String)]) -> String {
    list.iter()
        .map(|(p, e)| format!("{} ({e})", p.display()))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One reflabel's need: its inputs (indices into the sorted input rows, e.g. from
/// `group::rows_used`) at the state its `ssbsteps` expand to.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRequest {
    pub reflabel: String,
    pub steps: Vec<Step>,
    pub rows: Vec<usize>,
    /// What the reflabel reads of each input's products (`ssb_save_steps`): products besides
    /// the input itself, and the extensions read; each one's producing step must be among
    /// `steps` (the caller checks).
    pub save: Vec<ProductUse>,
}

/// Where a resolved input's file comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The input itself is already at the state.
    Raw,
    /// An existing pipeline product at the state that mkrefs did not make (it has no record,
    /// see [`crate::prep::record`]): the user's own, used as found.
    Product,
    /// A calibration job of this run makes the file, or finds that the one mkrefs made before
    /// is still up to date.
    ToMake,
    /// A product at the state exists but cannot be used (truncated, or its data contradict
    /// its S_* keywords); the reason names the file and what to do.
    Broken(String),
}

/// One input at one calibration state; shared by every reflabel that wants that state.
#[derive(Clone, Debug, PartialEq)]
pub struct ResolvedInput {
    /// Index into the sorted input rows.
    pub row: usize,
    /// The exposure the user gave.
    pub raw: PathBuf,
    /// The state, in pipeline order.
    pub steps: Vec<Step>,
    /// The file a job reads.
    pub file: PathBuf,
    pub source: Source,
    /// The reflabels that asked for this (row, state), in request order.
    pub reflabels: Vec<String>,
    /// `None` for the input at its state; `Some` for a side product of it (`rateints`,
    /// `fitopt`). A step's product is the input at that step's state.
    pub product: Option<SaveProduct>,
    /// For a product to make: `Some` when it is run-internal, holding only these extensions
    /// (every reflabel reading it named them, see `prep::reads`); `None`: the whole product.
    pub hdus: Option<BTreeSet<String>>,
    /// For a product to make: the exposure's products found at other states, which a
    /// different `ssbsteps` would use (for messages).
    pub nearby: Vec<(PathBuf, Vec<Step>)>,
}

/// The file to read for input `row` at state `steps`, from a plan made by [`plan_inputs`].
pub fn resolved_file<'a>(
    resolved: &'a [ResolvedInput],
    row: usize,
    steps: &[Step],
) -> Option<&'a Path> {
    resolved_product(resolved, row, steps, None)
}

/// The file of input `row`'s intermediate `product` (or of the input itself for `None`) made
/// for a reflabel whose state is `steps`.
pub fn resolved_product<'a>(
    resolved: &'a [ResolvedInput],
    row: usize,
    steps: &[Step],
    product: Option<SaveProduct>,
) -> Option<&'a Path> {
    let want: BTreeSet<Step> = match product {
        None => steps.iter().copied().collect(),
        Some(p) => product_state(steps, p).into_iter().collect(),
    };
    let product = side_product(product);
    resolved
        .iter()
        .find(|r| {
            r.row == row
                && r.product == product
                && r.steps.iter().copied().collect::<BTreeSet<_>>() == want
        })
        .map(|r| r.file.as_path())
}

/// Why one input cannot be used at one state.
#[derive(Clone, Debug, PartialEq)]
pub enum StateProblemKind {
    /// Steps already done that the state must not have.
    Extra { steps: Vec<Step> },
}

#[derive(Clone, Debug, PartialEq)]
pub struct StateProblem {
    pub raw: PathBuf,
    pub reflabels: Vec<String>,
    pub kind: StateProblemKind,
}

/// Every input that cannot be brought to its state, found before any job runs.
#[derive(Clone, Debug, PartialEq)]
pub struct StateError {
    pub problems: Vec<StateProblem>,
    /// A directory could not be searched.
    pub scan_error: Option<String>,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.scan_error {
            writeln!(f, "{e}")?;
        }
        if !self.problems.is_empty() {
            writeln!(
                f,
                "{} input(s) cannot be used at the calibration state their reference files need (nothing was run):",
                self.problems.len()
            )?;
        }
        for p in &self.problems {
            let who = p.reflabels.join(", ");
            match &p.kind {
                StateProblemKind::Extra { steps } => writeln!(
                    f,
                    "  {} ({who}): already has {} done, which {who} must not have; a file cannot be un-calibrated: give the raw (_uncal) exposure instead, or add the steps to ssbsteps",
                    p.raw.display(),
                    join_steps(steps)
                )?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for StateError {}

/// What one file of a plan is: input row, state, and which side product of it (`None`: the
/// input at the state).
type Target = (usize, Vec<Step>, Option<SaveProduct>);

/// A step's product is the input at the state ending with that step: only ramp fitting's side
/// products are files of their own.
fn side_product(product: Option<SaveProduct>) -> Option<SaveProduct> {
    product.filter(|p| matches!(p, SaveProduct::Rateints | SaveProduct::Fitopt))
}

/// The state of an intermediate product: the requested steps up to the one that writes it.
pub fn product_state(steps: &[Step], product: SaveProduct) -> Vec<Step> {
    let last = product.producing_step();
    match steps.iter().position(|s| *s == last) {
        Some(i) => steps[..=i].to_vec(),
        None => steps.to_vec(),
    }
}

/// Name endings of ramp fitting's side products, as the jwst pipeline and upstream name them.
const RATEINTS_ENDINGS: &[&str] = &["_rateints", "_1_ramp_fit", "_ramp_fit_1"];
const FITOPT_ENDINGS: &[&str] = &["_fitopt"];

fn want_for(product: Option<SaveProduct>) -> Want {
    match product {
        Some(SaveProduct::Rateints) => Want::Side(RATEINTS_ENDINGS),
        Some(SaveProduct::Fitopt) => Want::Side(FITOPT_ENDINGS),
        _ => Want::Product,
    }
}

/// The name a missing product would have, for messages.
pub fn expected_name(
    raw: &Path,
    steps: &[Step],
    product: Option<SaveProduct>,
    instrument: Instrument,
) -> String {
    let name = product_name(raw, steps, instrument);
    match product {
        Some(SaveProduct::Rateints) => name.replace("_0_ramp_fit.fits", "_1_ramp_fit.fits"),
        Some(SaveProduct::Fitopt) => name.replace("_0_ramp_fit.fits", "_fitopt.fits"),
        _ => name,
    }
}

/// Where products are looked for and made.
#[derive(Clone, Debug, PartialEq)]
pub struct ProductSearch {
    /// ssbdir first, then `output.pipeline_prod_search_dir`.
    pub dirs: Vec<PathBuf>,
    /// Where products to make go.
    pub ssbdir: PathBuf,
    /// `false` (`--recalibrate`): existing products are not used, every missing state is made.
    pub reuse: bool,
}

/// Where and how products are looked for.
struct Where<'a> {
    instrument: Instrument,
    search: &'a ProductSearch,
    /// The search directories' files.
    files: &'a [PathBuf],
    reader: &'a ReadHeader<'a>,
}

/// The file one (input, state, product) is read from.
struct Found {
    file: PathBuf,
    source: Source,
    nearby: Vec<(PathBuf, Vec<Step>)>,
    /// A product to make is run-internal (only the extensions asked for).
    internal: bool,
}

/// Where a product mkrefs makes is written. A run-internal one goes to
/// `ssbdir/mkrefs-internal`, unless the whole product is already in ssbdir with a record (kept
/// by an earlier run): its job then checks that one and, if it is stale, makes it whole again,
/// so a product the user kept stays whole. A whole product goes to ssbdir; `found` (a product
/// with a record in ssbdir, outside the internal directory) keeps its name.
fn made_path(
    input: &InputRow,
    state: &[Step],
    product: Option<SaveProduct>,
    at: &Where<'_>,
    internal: bool,
    found: Option<&Path>,
) -> (PathBuf, bool) {
    let ssbdir = &at.search.ssbdir;
    let name = expected_name(&input.path, state, product, at.instrument);
    let whole = ssbdir.join(&name);
    let internal_dir = ssbdir.join(INTERNAL_DIR);
    if internal && !record::has_record(&whole) {
        return (internal_dir.join(name), true);
    }
    match found {
        Some(p) if p.starts_with(ssbdir) && !p.starts_with(&internal_dir) => {
            (p.to_path_buf(), false)
        }
        _ => (whole, false),
    }
}

/// Resolves one (input, state, product): the input itself when it is at the state, else the
/// first product found (the exposure's own products given as inputs, then the search
/// directories) that passes `product_check`, else a product to make (run-internal when
/// `internal`); or the steps the input has and the state must not.
fn resolve_target(
    input: &InputRow,
    state: &[Step],
    product: Option<SaveProduct>,
    internal: bool,
    at: &Where<'_>,
    cache: &mut StateCache,
) -> Result<Found, StateProblemKind> {
    let required: BTreeSet<Step> = state.iter().copied().collect();
    let extra: Vec<Step> = in_pipeline_order(
        input.completed.difference(&required).copied(),
        at.instrument,
    );
    if !extra.is_empty() {
        return Err(StateProblemKind::Extra { steps: extra });
    }
    if required.is_subset(&input.completed) && product.is_none() {
        return Ok(Found {
            file: input.path.clone(),
            source: Source::Raw,
            nearby: Vec::new(),
            internal: false,
        });
    }
    let candidates = input.products.iter().chain(at.files);
    let found = search(
        &input.path,
        &required,
        want_for(product),
        candidates,
        at.reader,
        cache,
    );
    if !found.unreadable.is_empty() {
        tracing::warn!(
            "{}: candidate products that could not be read were passed over: {}",
            input.path.display(),
            describe_unreadable(&found.unreadable)
        );
    }
    let to_make = |found: Option<&Path>, nearby| {
        let (file, internal) = made_path(input, state, product, at, internal, found);
        Found {
            file,
            source: Source::ToMake,
            nearby,
            internal,
        }
    };
    Ok(match found.found {
        // Made by mkrefs: its calibration job checks it against its record, and remakes it
        // (in ssbdir) unless it is up to date.
        Some(p) if record::has_record(&p) => to_make(Some(&p), Vec::new()),
        Some(p) => {
            let source = match crate::prep::check::check_product(&p, &input.path, state, product) {
                Ok(()) => Source::Product,
                Err(why) => Source::Broken(why),
            };
            Found {
                file: p,
                source,
                nearby: Vec::new(),
                internal: false,
            }
        }
        None => to_make(
            None,
            found
                .others
                .into_iter()
                .map(|(f, st)| (f, in_pipeline_order(st, at.instrument)))
                .collect(),
        ),
    })
}

/// One (input, state, product) the requests need: who asks, and the extensions they read
/// together (`None`: the whole product).
struct Need {
    target: Target,
    reflabels: Vec<String>,
    hdus: Option<BTreeSet<String>>,
}

/// Every (input, state, product) the requests need, in request order, each once with the
/// extensions its readers need together. An input's own product is read whole unless the
/// reflabel's `ssb_save_steps` describes it (an item naming the state's last step).
fn collect_needs(
    rows: &[InputRow],
    requests: &[StateRequest],
    instrument: Instrument,
) -> Vec<Need> {
    let mut needs: Vec<Need> = Vec::new();
    let mut index: HashMap<Target, usize> = HashMap::new();
    for req in requests {
        let steps = in_pipeline_order(req.steps.iter().copied(), instrument);
        for &row in &req.rows {
            let uses: Vec<&ProductUse> = req
                .save
                .iter()
                .filter(|u| u.applies_to(rows[row].kind))
                .collect();
            let own = uses.iter().find(|u| u.is_state_product(&steps));
            let mut targets = vec![(None, steps.clone(), own.and_then(|u| u.hdus.clone()))];
            for u in uses.iter().filter(|u| !u.is_state_product(&steps)) {
                let state = product_state(&steps, u.product);
                targets.push((side_product(Some(u.product)), state, u.hdus.clone()));
            }
            for (product, state, hdus) in targets {
                let target = (row, state, product);
                match index.get(&target) {
                    Some(&i) => {
                        let need = &mut needs[i];
                        if !need.reflabels.contains(&req.reflabel) {
                            need.reflabels.push(req.reflabel.clone());
                        }
                        need.hdus = merge_hdus(need.hdus.as_ref(), hdus.as_ref());
                    }
                    None => {
                        index.insert(target.clone(), needs.len());
                        needs.push(Need {
                            target,
                            reflabels: vec![req.reflabel.clone()],
                            hdus,
                        });
                    }
                }
            }
        }
    }
    needs
}

/// Decides, for every (input, state) the requests need, which file a job reads: the input
/// itself when its S_* state equals the wanted one, else an existing product (see
/// [`find_product`]) that passes `product_check`, else a product to make in ssbdir
/// ([`Source::ToMake`], named by [`product_name`]; run-internal, in ssbdir/mkrefs-internal,
/// when every reflabel reading it named the extensions it reads). Each (input, state) is
/// resolved once, however many reflabels want it. Inputs with steps done that the state must
/// not have are all collected into one [`StateError`].
pub fn plan_inputs(
    rows: &[InputRow],
    requests: &[StateRequest],
    instrument: Instrument,
    where_: &ProductSearch,
    reader: &ReadHeader<'_>,
) -> Result<Vec<ResolvedInput>, StateError> {
    let search_dirs: &[PathBuf] = if where_.reuse { &where_.dirs } else { &[] };
    let scan = scan_dirs(search_dirs).map_err(|e| StateError {
        problems: Vec::new(),
        scan_error: Some(e),
    })?;
    let mut cache = StateCache::new();
    let mut resolved: Vec<ResolvedInput> = Vec::new();
    let mut problems: Vec<StateProblem> = Vec::new();
    let at = Where {
        instrument,
        search: where_,
        files: &scan.files,
        reader,
    };
    for need in collect_needs(rows, requests, instrument) {
        let (row, state, product) = need.target;
        let input = &rows[row];
        let internal = need.hdus.is_some();
        match resolve_target(input, &state, product, internal, &at, &mut cache) {
            Ok(found) => resolved.push(ResolvedInput {
                row,
                raw: input.path.clone(),
                steps: state,
                file: found.file,
                source: found.source,
                reflabels: need.reflabels,
                product,
                hdus: need.hdus.filter(|_| found.internal),
                nearby: found.nearby,
            }),
            Err(kind) => problems.push(StateProblem {
                raw: input.path.clone(),
                reflabels: need.reflabels,
                kind,
            }),
        }
    }
    if problems.is_empty() {
        Ok(resolved)
    } else {
        Err(StateError {
            problems,
            scan_error: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::classify::ImageKind;
    use crate::inputs::read::tests::row;
    use Step::*;
    use mkrefs_support::header::Header;
    use std::fs;

    fn header_with(steps: &[Step]) -> Header {
        let mut h = Header::new();
        h.set("INSTRUME", "NIRCAM");
        h.set("DETECTOR", "NRCB1");
        for s in steps {
            h.set(s.keyword(), "COMPLETE");
        }
        h
    }

    #[test]
    fn completed_steps_spec_case() {
        // Upstream's own test of its S_* reading.
        let mut h = header_with(&[DqInit, Linearity, Refpix, Saturation, Superbias]);
        h.set("S_IPC", "SKIPPED");
        h.set("S_GRPSCL", "NOT DONE");
        h.set("S_JUMP", "complete");
        assert_eq!(
            completed_steps(&h),
            [DqInit, Saturation, Superbias, Refpix, Linearity]
                .into_iter()
                .collect()
        );
        let mut h = Header::new();
        h.set("S_RAMP", "COMPLETE  ");
        h.set("S_FRSTFR", "COMPLETE");
        assert_eq!(
            completed_steps(&h),
            [FirstFrame, Rate].into_iter().collect()
        );
        assert!(completed_steps(&Header::new()).is_empty());
    }

    #[test]
    fn product_names_follow_upstream_scheme() {
        // Upstream's naming examples.
        assert_eq!(
            product_name(
                Path::new("/in/dark_current_file_number_42_uncal.fits"),
                &[DqInit, Saturation, Superbias, Refpix, Jump],
                Instrument::NirCam
            ),
            "dark_current_file_number_42_dq_init_saturation_superbias_refpix_jump.fits"
        );
        assert_eq!(
            product_name(
                Path::new("foo_uncal.fits"),
                Instrument::NirCam.steps(),
                Instrument::NirCam
            ),
            "foo_group_scale_dq_init_saturation_ipc_superbias_refpix_linearity_persistence_dark_current_jump_0_ramp_fit.fits"
        );
        assert_eq!(
            product_name(Path::new("foo_uncal.fits"), &[], Instrument::NirCam),
            "foo_uncal.fits"
        );
        // Order given does not matter; MIRI order is used for MIRI.
        assert_eq!(
            product_name(
                Path::new("m_uncal.fits"),
                &[Refpix, DarkCurrent],
                Instrument::Miri
            ),
            "m_dark_current_refpix.fits"
        );
    }

    #[test]
    fn product_names_fix_upstream_replacements() {
        // `_uncal` and `_rate` inside the stem stay (upstream replaced every occurrence).
        assert_eq!(
            product_name(
                Path::new("a_uncal_rate_b_uncal.fits"),
                &[DqInit, Rate],
                Instrument::NirCam
            ),
            "a_uncal_rate_b_dq_init_0_ramp_fit.fits"
        );
        assert_eq!(
            exposure_stem(Path::new("jw00000999888_test_file_cal.fits")),
            "jw00000999888_test_file_cal"
        );
        assert_eq!(exposure_stem(Path::new("x.FITS")), "x");
        assert_eq!(exposure_stem(Path::new("noext")), "noext");
    }

    /// Writes empty files and a reader that serves headers by file name.
    struct Fixture {
        dir: tempfile::TempDir,
        headers: HashMap<String, Header>,
    }

    impl Fixture {
        fn new() -> Self {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                headers: HashMap::new(),
            }
        }
        fn file(&mut self, rel: &str, steps: &[Step]) -> PathBuf {
            let p = self.dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            // A real (empty) FITS file, so the completeness check passes; the states come
            // from `headers`.
            mkrefs_support::fits::FitsWriter::create(&p)
                .unwrap()
                .finish()
                .unwrap();
            self.headers.insert(
                p.file_name().unwrap().to_string_lossy().into_owned(),
                header_with(steps),
            );
            p
        }
        fn broken(&mut self, rel: &str) -> PathBuf {
            let p = self.dir.path().join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, b"").unwrap();
            p
        }
        fn reader(&self) -> impl Fn(&Path) -> Result<Header, String> + '_ {
            |p: &Path| {
                self.headers
                    .get(p.file_name().unwrap().to_string_lossy().as_ref())
                    .cloned()
                    .ok_or_else(|| format!("not a FITS file: {}", p.display()))
            }
        }
        fn path(&self, rel: &str) -> PathBuf {
            self.dir.path().join(rel)
        }
        /// Products searched in and made into `ssb`.
        fn search(&self) -> ProductSearch {
            ProductSearch {
                dirs: vec![self.path("ssb")],
                ssbdir: self.path("ssb"),
                reuse: true,
            }
        }
    }

    #[test]
    fn find_product_requires_exact_state_and_real_prefix() {
        let mut fx = Fixture::new();
        let raw = fx.file("in/foo_1_uncal.fits", &[]);
        // Extra step: never used (upstream's choose_file would take it).
        fx.file(
            "ssb/foo_1_dq_init_saturation_superbias.fits",
            &[DqInit, Saturation, Superbias],
        );
        // Another exposure whose name extends ours without `_`.
        fx.file("ssb/foo_10_dq_init_saturation.fits", &[DqInit, Saturation]);
        let reader = fx.reader();
        let dirs = [fx.path("ssb"), fx.path("prod")];
        assert_eq!(
            find_product(&raw, &[DqInit, Saturation], &dirs, &reader),
            Ok(None)
        );

        let mut fx2 = Fixture::new();
        let raw = fx2.file("in/foo_1_uncal.fits", &[]);
        fx2.file(
            "prod/deep/er/foo_1_dq_init_saturation.fits",
            &[DqInit, Saturation],
        );
        fx2.file(
            "prod/a/foo_1_dq_init_saturation.fits",
            &[DqInit, Saturation],
        );
        let reader = fx2.reader();
        let dirs = [fx2.path("ssb"), fx2.path("prod")];
        // Recursive, sorted: a/ before deep/.
        assert_eq!(
            find_product(&raw, &[Saturation, DqInit], &dirs, &reader),
            Ok(Some(fx2.path("prod/a/foo_1_dq_init_saturation.fits")))
        );
        // ssbdir is preferred over the search dirs.
        drop(reader);
        fx2.file(
            "ssb/zzz/foo_1_dq_init_saturation.fits",
            &[DqInit, Saturation],
        );
        let reader = fx2.reader();
        assert_eq!(
            find_product(&raw, &[DqInit, Saturation], &dirs, &reader),
            Ok(Some(fx2.path("ssb/zzz/foo_1_dq_init_saturation.fits")))
        );
    }

    #[test]
    fn find_product_recognises_upstream_rate_and_skips_side_products() {
        let mut fx = Fixture::new();
        let raw = fx.file("in/d_uncal.fits", &[]);
        let all = Instrument::NirCam.steps();
        // Side products sort first but are never taken.
        fx.file("ssb/d_a_1_ramp_fit.fits", all);
        fx.file("ssb/d_a_fitopt.fits", all);
        let rate = product_name(&raw, all, Instrument::NirCam);
        fx.file(&format!("ssb/{rate}"), all);
        let reader = fx.reader();
        assert_eq!(
            find_product(&raw, all, &[fx.path("ssb")], &reader),
            Ok(Some(fx.path(&format!("ssb/{rate}"))))
        );
    }

    #[test]
    fn saved_products_are_found_by_state_and_side_product_name() {
        let mut fx = Fixture::new();
        let raw = fx.file("in/d_uncal.fits", &[]);
        let rate = [DqInit, Saturation, Superbias, Refpix, Linearity, Jump, Rate];
        let jump = &rate[..6];
        fx.file("ssb/d_x_jump.fits", jump);
        fx.file("ssb/d_x_jump_0_ramp_fit.fits", &rate);
        fx.file("ssb/d_x_jump_1_ramp_fit.fits", &rate);
        fx.file("ssb/d_x_jump_fitopt.fits", &rate);
        let reader = fx.reader();
        let rows = vec![input_row(&raw, &[])];
        let req = StateRequest {
            reflabel: "bpm".into(),
            steps: rate.to_vec(),
            rows: vec![0],
            save: uses("jump, fitopt, rateints"),
        };
        let plan = plan_inputs(&rows, &[req], Instrument::NirCam, &fx.search(), &reader).unwrap();
        let get = |p| resolved_product(&plan, 0, &rate, p).map(Path::to_path_buf);
        assert_eq!(get(None), Some(fx.path("ssb/d_x_jump_0_ramp_fit.fits")));
        assert_eq!(
            get(Some(SaveProduct::Step(Jump))),
            Some(fx.path("ssb/d_x_jump.fits"))
        );
        assert_eq!(
            get(Some(SaveProduct::Fitopt)),
            Some(fx.path("ssb/d_x_jump_fitopt.fits"))
        );
        assert_eq!(
            get(Some(SaveProduct::Rateints)),
            Some(fx.path("ssb/d_x_jump_1_ramp_fit.fits"))
        );

        // Without a fitopt file, that one product is planned under the name upstream gives it.
        drop(reader);
        std::fs::remove_file(fx.path("ssb/d_x_jump_fitopt.fits")).unwrap();
        let reader = fx.reader();
        let req = StateRequest {
            reflabel: "bpm".into(),
            steps: rate.to_vec(),
            rows: vec![0],
            save: uses("fitopt"),
        };
        let plan = plan_inputs(&rows, &[req], Instrument::NirCam, &fx.search(), &reader).unwrap();
        let fitopt = plan
            .iter()
            .find(|r| r.product == Some(SaveProduct::Fitopt))
            .unwrap();
        assert_eq!(fitopt.source, Source::ToMake);
        assert_eq!(
            fitopt.file,
            fx.path("ssb/d_dq_init_saturation_superbias_refpix_linearity_jump_fitopt.fits")
        );
        // The rate product itself is still found.
        assert_eq!(plan[0].source, Source::Product);
    }

    fn uses(spec: &str) -> Vec<ProductUse> {
        crate::prep::reads::parse_product_uses(Some(spec), Instrument::NirCam).unwrap()
    }

    #[test]
    fn products_read_in_part_are_made_run_internal() {
        let mut fx = Fixture::new();
        let dark = fx.file("in/d_uncal.fits", &[]);
        let flat = fx.file("in/f_uncal.fits", &[]);
        let mut flat_row = input_row(&flat, &[]);
        flat_row.kind = ImageKind::Flat;
        let rows = vec![input_row(&dark, &[]), flat_row];
        let rate = [DqInit, Saturation, Superbias, Refpix, Linearity, Jump, Rate];
        let jump = &rate[..6];
        let bpm = StateRequest {
            reflabel: "bpm".into(),
            steps: rate.to_vec(),
            rows: vec![0, 1],
            save: uses("D:jump[SCI, GROUPDQ], D:fitopt[PEDESTAL], rate[SCI]"),
        };
        let reader = fx.reader();
        let plan = plan_inputs(
            &rows,
            std::slice::from_ref(&bpm),
            Instrument::NirCam,
            &fx.search(),
            &reader,
        )
        .unwrap();
        let internal = fx.path("ssb").join(INTERNAL_DIR);
        let got: Vec<(usize, Option<SaveProduct>, PathBuf, Vec<String>)> = plan
            .iter()
            .map(|r| {
                let hdus = r.hdus.iter().flatten().cloned().collect();
                (r.row, r.product, r.file.clone(), hdus)
            })
            .collect();
        let stem = "dq_init_saturation_superbias_refpix_linearity_jump";
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            got,
            [
                (
                    0,
                    None,
                    internal.join(format!("d_{stem}_0_ramp_fit.fits")),
                    strs(&["SCI"])
                ),
                (
                    0,
                    None,
                    internal.join(format!("d_{stem}.fits")),
                    strs(&["GROUPDQ", "SCI"])
                ),
                (
                    0,
                    Some(SaveProduct::Fitopt),
                    internal.join(format!("d_{stem}_fitopt.fits")),
                    strs(&["PEDESTAL"])
                ),
                // The flat has only what the flats need.
                (
                    1,
                    None,
                    internal.join(format!("f_{stem}_0_ramp_fit.fits")),
                    strs(&["SCI"])
                ),
            ]
        );
        // Another reflabel reading the jump product whole (no extensions named) makes it whole,
        // in ssbdir; the extensions of two readers are joined.
        let dark_gen = StateRequest {
            reflabel: "dark".into(),
            steps: jump.to_vec(),
            rows: vec![0],
            save: Vec::new(),
        };
        let plan = plan_inputs(
            &rows,
            &[bpm.clone(), dark_gen.clone()],
            Instrument::NirCam,
            &fx.search(),
            &reader,
        )
        .unwrap();
        let j = plan.iter().find(|r| r.steps == jump).unwrap();
        assert_eq!(j.file, fx.path(&format!("ssb/d_{stem}.fits")));
        assert_eq!(
            (j.hdus.clone(), j.reflabels.clone()),
            (None, strs(&["bpm", "dark"]))
        );
        let dark_gen = StateRequest {
            save: uses("jump[PIXELDQ]"),
            ..dark_gen
        };
        let plan = plan_inputs(
            &rows,
            &[bpm, dark_gen],
            Instrument::NirCam,
            &fx.search(),
            &reader,
        )
        .unwrap();
        let j = plan.iter().find(|r| r.steps == jump).unwrap();
        assert_eq!(j.file, internal.join(format!("d_{stem}.fits")));
        assert_eq!(
            j.hdus.iter().flatten().cloned().collect::<Vec<_>>(),
            strs(&["GROUPDQ", "PIXELDQ", "SCI"])
        );
    }

    #[test]
    fn unreadable_candidates_are_reported_only_when_nothing_found() {
        let mut fx = Fixture::new();
        let raw = fx.file("in/e_uncal.fits", &[]);
        fx.broken("ssb/e_broken.fits");
        let reader = fx.reader();
        let err = find_product(&raw, &[DqInit], &[fx.path("ssb")], &reader).unwrap_err();
        assert!(err.contains("e_broken.fits (not a FITS file"), "{err}");
        drop(reader);
        fx.file("ssb/e_ok.fits", &[DqInit]);
        let reader = fx.reader();
        assert_eq!(
            find_product(&raw, &[DqInit], &[fx.path("ssb")], &reader),
            Ok(Some(fx.path("ssb/e_ok.fits")))
        );
    }

    /// Upstream's product-choice test cases, where they still apply: only a candidate whose
    /// state equals the required one is taken; upstream also took the "closest" one.
    #[test]
    fn spec_choose_file_cases_with_exact_state() {
        let mut fx = Fixture::new();
        let raw = fx.file("in/file_uncal.fits", &[]);
        fx.file("ssb/file_1.fits", &[DqInit, Saturation]);
        fx.file("ssb/file_2.fits", &[DqInit, Saturation, Superbias]);
        fx.file("ssb/file_3.fits", &[DqInit, Saturation, Superbias, Refpix]);
        fx.file(
            "ssb/file_4.fits",
            &[DqInit, Saturation, Superbias, Refpix, Ipc],
        );
        fx.file(
            "ssb/file_5.fits",
            &[DqInit, Saturation, Superbias, Refpix, Ipc, Jump],
        );
        let reader = fx.reader();
        let dirs = [fx.path("ssb")];
        let find = |req: &[Step]| find_product(&raw, req, &dirs, &reader).unwrap();
        // Same answer as upstream.
        assert_eq!(
            find(&[DqInit, Saturation]),
            Some(fx.path("ssb/file_1.fits"))
        );
        // Upstream: file4 / file1 / file5, none at the required state; here: nothing.
        assert_eq!(
            find(&[
                DqInit,
                Saturation,
                Superbias,
                Refpix,
                Ipc,
                DarkCurrent,
                Jump
            ]),
            None
        );
        assert_eq!(find(&[DqInit, Saturation, Refpix]), None);
        assert_eq!(
            find(&[DqInit, Saturation, Superbias, Refpix, Ipc, Jump, Rate]),
            None
        );
        assert_eq!(
            find(&[DqInit, Saturation, Superbias, Refpix, Ipc, Jump]),
            Some(fx.path("ssb/file_5.fits"))
        );
    }

    /// Upstream's steps-to-run test cases: the products planned are those of the
    /// required state; the steps the calibration job runs are the missing ones (see
    /// `calibration`).
    #[test]
    fn spec_steps_to_run_cases_plan_products_to_make() {
        let required = vec![DqInit, Saturation, Superbias, Refpix, DarkCurrent, Jump];
        let rows = vec![
            input_row(
                Path::new("/in/x_uncal.fits"),
                &[Saturation, Refpix, DarkCurrent],
            ),
            input_row(Path::new("/in/y_uncal.fits"), &[DqInit]),
        ];
        let reqs = [StateRequest {
            reflabel: "dark".into(),
            steps: required,
            rows: vec![0, 1],
            save: Vec::new(),
        }];
        let reader = |_: &Path| -> Result<Header, String> { unreachable!("nothing to read") };
        let search = ProductSearch {
            dirs: Vec::new(),
            ssbdir: PathBuf::from("/ssb"),
            reuse: true,
        };
        let plan = plan_inputs(&rows, &reqs, Instrument::NirCam, &search, &reader).unwrap();
        assert!(plan.iter().all(|r| r.source == Source::ToMake));
        assert_eq!(
            plan[0].file,
            Path::new("/ssb/x_dq_init_saturation_superbias_refpix_dark_current_jump.fits")
        );
    }

    fn input_row(path: &Path, completed: &[Step]) -> InputRow {
        let mut r = row(path.to_str().unwrap(), 58000.0, ImageKind::Dark, "NRCB1");
        r.completed = completed.iter().copied().collect();
        r
    }

    #[test]
    fn plan_uses_raw_product_and_shares_between_reflabels() {
        let mut fx = Fixture::new();
        let a = fx.file("in/a_uncal.fits", &[]);
        let b = fx.file("in/b_dq_init.fits", &[DqInit]);
        let prod = fx.file("ssb/a_dq_init.fits", &[DqInit]);
        let rows = vec![input_row(&a, &[]), input_row(&b, &[DqInit])];
        let reqs = vec![
            StateRequest {
                reflabel: "readnoise".into(),
                steps: vec![DqInit],
                rows: vec![0, 1],
                save: Vec::new(),
            },
            StateRequest {
                reflabel: "superbias".into(),
                steps: vec![DqInit],
                rows: vec![0],
                save: Vec::new(),
            },
            StateRequest {
                reflabel: "raw".into(),
                steps: vec![],
                rows: vec![0],
                save: Vec::new(),
            },
        ];
        let reader = fx.reader();
        let plan = plan_inputs(&rows, &reqs, Instrument::NirCam, &fx.search(), &reader).unwrap();
        assert_eq!(plan.len(), 3);
        assert_eq!(plan[0].file, prod);
        assert_eq!(plan[0].source, Source::Product);
        assert_eq!(plan[0].reflabels, vec!["readnoise", "superbias"]);
        assert_eq!(plan[1].file, b);
        assert_eq!(plan[1].source, Source::Raw);
        assert_eq!(plan[2].file, a);
        assert_eq!(plan[2].source, Source::Raw);
        assert_eq!(resolved_file(&plan, 0, &[DqInit]), Some(prod.as_path()));
        assert_eq!(resolved_file(&plan, 0, &[]), Some(a.as_path()));
        assert_eq!(resolved_file(&plan, 1, &[]), None);
    }

    #[test]
    fn plan_plans_missing_products_and_lists_every_extra_input() {
        let mut fx = Fixture::new();
        let a = fx.file("in/a_uncal.fits", &[]);
        let b = fx.file("in/b_uncal.fits", &[DqInit]);
        let c = fx.file("in/c_jump.fits", &[DqInit, Saturation, Jump]);
        let rows = vec![
            input_row(&a, &[]),
            input_row(&b, &[DqInit]),
            input_row(&c, &[DqInit, Saturation, Jump]),
        ];
        let reqs = vec![
            StateRequest {
                reflabel: "readnoise".into(),
                steps: vec![Saturation, DqInit],
                rows: vec![0, 1, 2],
                save: Vec::new(),
            },
            StateRequest {
                reflabel: "superbias".into(),
                steps: vec![DqInit, Saturation],
                rows: vec![1],
                save: Vec::new(),
            },
        ];
        let reader = fx.reader();
        let err = plan_inputs(&rows, &reqs, Instrument::NirCam, &fx.search(), &reader).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(
            err.problems[0].kind,
            StateProblemKind::Extra { steps: vec![Jump] }
        );
        let msg = err.to_string();
        assert!(
            msg.contains(&format!(
                "{} (readnoise): already has jump done",
                c.display()
            )),
            "{msg}"
        );

        // Without the extra input, the missing states are planned in ssbdir, once each.
        let reqs: Vec<StateRequest> = reqs
            .into_iter()
            .map(|mut r| {
                r.rows.retain(|&i| i != 2);
                r
            })
            .collect();
        let plan = plan_inputs(&rows, &reqs, Instrument::NirCam, &fx.search(), &reader).unwrap();
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].file, fx.path("ssb/a_dq_init_saturation.fits"));
        assert_eq!(plan[1].file, fx.path("ssb/b_dq_init_saturation.fits"));
        assert_eq!(plan[1].reflabels, vec!["readnoise", "superbias"]);
        assert!(plan.iter().all(|r| r.source == Source::ToMake));
    }

    #[test]
    fn recalibrate_ignores_existing_products() {
        let mut fx = Fixture::new();
        let a = fx.file("in/a_uncal.fits", &[]);
        fx.file("ssb/a_dq_init.fits", &[DqInit]);
        let rows = vec![input_row(&a, &[])];
        let reqs = vec![StateRequest {
            reflabel: "x".into(),
            steps: vec![DqInit],
            rows: vec![0],
            save: Vec::new(),
        }];
        let reader = fx.reader();
        let mut search = fx.search();
        search.reuse = false;
        let plan = plan_inputs(&rows, &reqs, Instrument::NirCam, &search, &reader).unwrap();
        assert_eq!(plan[0].source, Source::ToMake);
        assert_eq!(plan[0].file, fx.path("ssb/a_dq_init.fits"));
    }
}
