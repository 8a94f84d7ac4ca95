//! From settings, selected generators and input files to the list of jobs: the whole run up
//! to (not including) execution, so a dry run is this plus printing. [`make_plan`] runs the
//! stages in data-flow order, each a function of the stage before.

pub(crate) mod instrument;
pub(crate) mod jobs;
pub(crate) mod options;
pub(crate) mod select;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mkrefs_support::fits::{FitsErrorKind, read_primary_header};
use mkrefs_support::fits_layout::read_layout;
use mkrefs_support::header::Header;

use crate::combine::jobs::add_combine_jobs;
use crate::combine::rule::Method;
use crate::config::{Backend, Settings};
use crate::exec::executor::PreparedJob;
use crate::exec::jobfile::StrunCrds;
use crate::inputs::classify::{ClassifyRules, ImageKind};
use crate::inputs::group::{self, Group, MjdLimits};
use crate::inputs::read::{self, InputKeys, InputRow};
use crate::inputs::{discover, exposure, geometry};
use crate::layout::{RunLayout, absolute};
use crate::plan::instrument::instrument_of;
use crate::plan::jobs::{CalibrationRun, job_for, link_jobs};
use crate::plan::options::RunOptions;
use crate::plan::select::Selected;
use crate::prep::crds::{self, ClientSettings};
use crate::prep::jobs::{self as caljobs, CalibrationContext, CalibrationJob};
use crate::prep::reads::ProductUse;
use crate::prep::references::RefConfig;
use crate::prep::state::{self, ProductSearch, ResolvedInput, StateRequest};
use crate::prep::steps::Instrument;
use crate::registry::Registry;

/// Everything a run will do.
pub(crate) struct RunPlan<'r> {
    pub instrument: Instrument,
    pub layout: RunLayout,
    pub selected: Vec<Selected<'r>>,
    pub rows: Vec<InputRow>,
    /// The header keys collected from every input (`requiredfitskeys`, then
    /// `optionalfitskeys`), in configuration order: the input table's columns.
    pub input_keys: Vec<String>,
    pub skipped_inputs: Vec<PathBuf>,
    pub notes: Vec<String>,
    /// Calibration jobs first, then generator jobs; `after` links them.
    pub jobs: Vec<PreparedJob>,
}

/// Builds the plan. Errors are complete messages naming the file, key or section.
pub(crate) fn make_plan<'r>(
    registry: &'r Registry,
    settings: &Settings,
    opts: &RunOptions,
) -> Result<RunPlan<'r>, String> {
    let words = select::split_words(registry, settings, &opts.items)?;
    let params = select::resolve_params(settings, &words.generators, &opts.params)?;
    let output = opts.output.resolve(settings)?;
    let inputs = read_rows(settings, &words.inputs, &output.outrootdir)?;
    let instrument = instrument_of(settings, &inputs.rows)?;
    let selected = words
        .generators
        .iter()
        .zip(params)
        .map(|((reflabel, entry), params)| {
            select::configure(reflabel, entry, settings, instrument, params)
        })
        .collect::<Result<Vec<_>, String>>()?;
    // Products are whole when the user keeps them, and with the jwst backend (strun writes
    // every product whole).
    let whole = settings.calibration.keep_products
        || opts.keep_products
        || opts.backend.unwrap_or(settings.calibration.backend) == Backend::Jwst;
    let grouped = group_inputs(settings, &selected, &inputs.rows, whole);
    let groups = group::assign_cmd_ids(&grouped.per_reflabel);
    if groups.is_empty() {
        return Err(format!("nothing to do: {}", grouped.notes.join("; ")));
    }
    let layout = RunLayout::resolve(&output);
    let resolved = resolve_inputs(settings, opts, &layout, &inputs.rows, &grouped, instrument)?;
    let (cal_jobs, how) = calibration_jobs(
        settings,
        opts,
        &selected,
        &inputs.rows,
        &resolved,
        instrument,
        &layout,
    )?;
    let gen_jobs = groups
        .iter()
        .map(|g| job_for(g, &selected, &inputs.rows, &resolved, &layout))
        .collect::<Result<Vec<_>, String>>()?;
    let jobs = link_jobs(
        cal_jobs,
        gen_jobs,
        &resolved,
        &how,
        &layout,
        opts.calibrate_only,
    )?;
    // The final stage, unless the run only calibrates.
    let jobs = match opts.calibrate_only {
        true => jobs,
        false => {
            let declared = |reflabel: &str| {
                let rule = selected
                    .iter()
                    .find(|s| s.reflabel == reflabel)
                    .and_then(|s| s.entry.combine.as_ref())?;
                match Method::parse(&rule.method) {
                    Some(m) => Some((m, rule.dq_min)),
                    None => {
                        tracing::warn!(
                            "generator '{reflabel}' declares the combination method '{}', which \
                             is not mean, median or flags; the reftype's default applies",
                            rule.method
                        );
                        None
                    }
                }
            };
            add_combine_jobs(jobs, &settings.combine, &declared, &layout)
        }
    };
    Ok(RunPlan {
        instrument,
        layout,
        selected,
        rows: inputs.rows,
        input_keys: inputs.keys,
        skipped_inputs: inputs.skipped,
        notes: grouped.notes,
        jobs,
    })
}

/// Reads a primary header for the input stage; the FITS error already names the file.
fn header_reader(path: &Path) -> Result<Header, String> {
    read_primary_header(path).map_err(|e| {
        let mut text = e.message.clone();
        if e.kind == FitsErrorKind::OutOfMemory {
            // Said first: without it the message reads like a problem of the file.
            text = format!("out of memory {text}");
        }
        if let Some(key) = &e.key {
            text = format!("key {key}: {text}");
        }
        text
    })
}

/// The input rows, the header keys collected, and the files `basenamepattern` left out.
struct Inputs {
    rows: Vec<InputRow>,
    keys: Vec<String>,
    skipped: Vec<PathBuf>,
}

/// Finds the input files and reads their headers (`inputfiles` section). Searches leave out
/// the output tree below `outrootdir`.
fn read_rows(settings: &Settings, tokens: &[String], outrootdir: &Path) -> Result<Inputs, String> {
    let inf = &settings.inputfiles;
    let output_tree: Vec<PathBuf> = std::fs::canonicalize(absolute(outrootdir))
        .into_iter()
        .collect();
    let paths = discover::expand_inputs(tokens, &output_tree).map_err(|e| e.to_string())?;
    let filtered = discover::filter_basenames(paths, inf.basenamepattern.as_deref())
        .map_err(|e| format!("inputfiles.basenamepattern: {e}"))?;
    if filtered.kept.is_empty() {
        return Err(format!(
            "inputfiles.basenamepattern '{}' left none of the {} input file(s)",
            inf.basenamepattern.as_deref().unwrap_or(""),
            filtered.skipped.len()
        ));
    }
    let keys = InputKeys {
        required: inf.requiredfitskeys.clone(),
        optional: inf.optionalfitskeys.clone(),
        dateobs: inf.dateobs_fitskey.clone(),
        timeobs: inf.timeobs_fitskey.clone(),
        mjdobs: inf.mjdobs_fitskey.clone(),
        classify: ClassifyRules::from_settings(inf)
            .map_err(|e| format!("config section inputfiles: {e}"))?,
    };
    let named = discover::named_files(tokens);
    let inventory = read::read_inputs(&filtered.kept, &keys, &header_reader, &|p| {
        named.contains(p)
    })
    .map_err(|e| e.to_string())?;
    if !inventory.not_exposures.is_empty() {
        let list: Vec<String> = inventory
            .not_exposures
            .iter()
            .map(|(p, why)| format!("{} ({why})", p.display()))
            .collect();
        if inventory.rows.is_empty() {
            return Err(format!(
                "none of the {} file(s) found is an exposure: {}",
                list.len(),
                list.join("; ")
            ));
        }
        tracing::info!(
            "left out {} file(s) found by the search that are not exposures: {}",
            list.len(),
            list.join("; ")
        );
    }
    let given = inventory.rows.len();
    let rows = exposure::merge_exposures(inventory.rows);
    if rows.len() < given {
        tracing::info!(
            "{} of the {given} exposure file(s) are products of exposures also given; each \
             exposure counts once, its raw file or products used as each state needs",
            given - rows.len()
        );
    }
    check_geometry(&rows)?;
    let mut columns: Vec<String> = Vec::new();
    for key in inf.requiredfitskeys.iter().chain(&inf.optionalfitskeys) {
        if !columns.iter().any(|c| c.eq_ignore_ascii_case(key)) {
            columns.push(key.clone());
        }
    }
    Ok(Inputs {
        rows,
        keys: columns,
        skipped: filtered.skipped,
    })
}

/// Every input's image against its detector and window keywords (`inputs::geometry`); all
/// problems of all files in one message.
fn check_geometry(rows: &[InputRow]) -> Result<(), String> {
    let mut problems = Vec::new();
    for row in rows {
        // A file that cannot be read whole fails the jobs that read it, with the reason.
        let (Ok(header), Ok(layout)) = (read_primary_header(&row.path), read_layout(&row.path))
        else {
            continue;
        };
        problems.extend(geometry::check(
            &row.path,
            &header,
            &layout,
            &geometry::profile_frame,
        ));
        problems.extend(geometry::check_readout(&row.path, &header, &layout));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} problem(s) of inputs whose data do not fit their keywords (nothing was run):\n  {}",
            problems.len(),
            problems.join("\n  ")
        ))
    }
}

/// Each generator's groups, the states its inputs must reach, and why inputs were left out.
struct Grouped {
    per_reflabel: Vec<(String, Vec<Group>)>,
    requests: Vec<StateRequest>,
    notes: Vec<String>,
}

/// With `whole`, the requests ask for whole products, whatever extensions the generators name.
fn group_inputs(
    settings: &Settings,
    selected: &[Selected<'_>],
    rows: &[InputRow],
    whole: bool,
) -> Grouped {
    let limits = MjdLimits {
        dd: settings.max_delta_mjd.dd,
        ff: settings.max_delta_mjd.ff,
        ddff: settings.max_delta_mjd.ddff,
    };
    let mut grouped = Grouped {
        per_reflabel: Vec::new(),
        requests: Vec::new(),
        notes: Vec::new(),
    };
    for s in selected {
        let grouping = group::make_groups(rows, s.imtypes, &limits);
        let reflabel = &s.reflabel;
        grouped
            .notes
            .extend(grouping.notes.iter().map(|n| format!("{reflabel}: {n}")));
        if grouping.groups.is_empty() {
            let darks = rows.iter().filter(|r| r.kind == ImageKind::Dark).count();
            grouped.notes.push(format!(
                "{reflabel}: no group can be made with imtypes {} from {darks} dark(s) and {} \
                 flat(s)",
                s.imtypes.name(),
                rows.len() - darks
            ));
        }
        grouped.requests.push(StateRequest {
            reflabel: reflabel.clone(),
            steps: s.steps.clone(),
            rows: group::rows_used(&grouping.groups),
            save: s
                .save
                .iter()
                .map(|u| ProductUse {
                    hdus: u.hdus.clone().filter(|_| !whole),
                    ..u.clone()
                })
                .collect(),
        });
        grouped
            .per_reflabel
            .push((reflabel.clone(), grouping.groups));
    }
    grouped
}

/// Which file each input is read from at each state: found products, or products to make.
fn resolve_inputs(
    settings: &Settings,
    opts: &RunOptions,
    layout: &RunLayout,
    rows: &[InputRow],
    grouped: &Grouped,
    instrument: Instrument,
) -> Result<Vec<ResolvedInput>, String> {
    let mut dirs = vec![layout.ssbdir.clone()];
    dirs.extend(
        settings
            .output
            .pipeline_prod_search_dir
            .iter()
            .map(|d| absolute(Path::new(d))),
    );
    let search = ProductSearch {
        dirs,
        ssbdir: layout.ssbdir.clone(),
        reuse: !opts.recalibrate,
    };
    state::plan_inputs(rows, &grouped.requests, instrument, &search, &header_reader)
        .map_err(|e| e.to_string())
}

/// Calibration jobs for the products the run lacks, and how they run.
fn calibration_jobs<'s>(
    settings: &'s Settings,
    opts: &RunOptions,
    selected: &[Selected<'_>],
    rows: &[InputRow],
    resolved: &[ResolvedInput],
    instrument: Instrument,
    layout: &RunLayout,
) -> Result<(Vec<CalibrationJob>, CalibrationRun<'s>), String> {
    let backend = opts.backend.unwrap_or(settings.calibration.backend);
    let mut references = BTreeMap::new();
    for s in selected {
        let section = settings
            .tree
            .get(&s.reflabel)
            .and_then(|n| n.get("reffile4ssb"));
        let cfg = RefConfig::from_config(settings.tree.get("reffile4ssb"), section)?;
        references.insert(s.reflabel.clone(), cfg);
    }
    let crds = crds_client(settings);
    let crds_configured = crds::configuration(&crds);
    let how = CalibrationRun {
        instrument,
        backend,
        strun: &settings.calibration.strun,
        crds: crds_configured.is_ok().then(|| StrunCrds {
            cache: crds.crds_path.clone(),
        }),
    };
    let jobs = caljobs::plan_jobs(
        rows,
        resolved,
        &CalibrationContext {
            instrument,
            backend,
            references: &references,
            crds,
            crds_configured,
            ssbdir: &layout.ssbdir,
        },
    )?;
    Ok((jobs, how))
}

/// The crds client and cache the configuration names (`calibration` section, `$CRDS_PATH`).
fn crds_client(settings: &Settings) -> ClientSettings {
    let cal = &settings.calibration;
    ClientSettings {
        python: cal
            .python
            .clone()
            .unwrap_or_else(|| crds::default_python(&cal.strun)),
        crds_path: cal
            .crds_path
            .clone()
            .or_else(|| std::env::var("CRDS_PATH").ok().filter(|s| !s.is_empty()))
            .map(|p| absolute(Path::new(&p))),
        env: Vec::new(),
    }
}
