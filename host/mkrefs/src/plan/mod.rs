//! From settings, selected generators and input files to the list of jobs: the whole run up
//! to (not including) execution, so a dry run is this plus printing.

use std::path::{Path, PathBuf};

use mkrefs_plugin_api::Param;
use mkrefs_support::fits::read_primary_header;
use mkrefs_support::header::Header;

use crate::cli::RunArgs;
use crate::config::{self, Backend, CliParam, Settings};
use crate::exec::executor::{PreparedJob, Work};
use crate::exec::jobfile::{
    CalibrationSpec, JOB_FORMAT, JobInput, JobParam, JobProduct, JobSpec, SavedProduct,
    StepReference, StrunCrds,
};
use crate::inputs::classify::ClassifyRules;
use crate::inputs::group::{self, CmdGroup, Group, ImTypes, MjdLimits};
use crate::inputs::read::{self, InputKeys, InputRow};
use crate::layout::{OutputOptions, RunIdChoice, RunLayout, absolute, with_ext};
use crate::prep::jobs::{self, CalibrationContext, CalibrationJob, RefChoice};
use crate::prep::references::RefConfig;
use crate::prep::state::{self, ProductSearch, ResolvedInput, StateRequest};
use crate::prep::steps::{self, Instrument, SaveProduct, Step};
use crate::registry::{Entry, Registry};

/// One selected generator and how the config and command line set it up.
pub struct Selected<'r> {
    pub reflabel: String,
    pub entry: &'r Entry,
    pub imtypes: ImTypes,
    pub steps: Vec<Step>,
    /// Intermediate products of each input the generator also reads (`ssb_save_steps`).
    pub save: Vec<SaveProduct>,
    pub params: Vec<Param>,
}

/// Everything a run will do.
pub struct RunPlan<'r> {
    pub instrument: Instrument,
    pub layout: RunLayout,
    pub selected: Vec<Selected<'r>>,
    pub rows: Vec<InputRow>,
    pub skipped_inputs: Vec<PathBuf>,
    pub groups: Vec<CmdGroup>,
    pub notes: Vec<String>,
    pub resolved: Vec<ResolvedInput>,
    pub backend: Backend,
    /// Calibration jobs first, then generator jobs; `after` links them.
    pub jobs: Vec<PreparedJob>,
}

/// Reads a primary header for the input stage; the FITS error already names the file.
fn header_reader(path: &Path) -> Result<Header, String> {
    read_primary_header(path).map_err(|e| {
        let mut text = e.message.clone();
        if let Some(key) = &e.key {
            text = format!("key {key}: {text}");
        }
        text
    })
}

fn config_error(e: config::ConfigError) -> String {
    e.to_string()
}

/// The output options: config values overridden by the command line.
pub fn output_options(settings: &Settings, args: &RunArgs) -> Result<OutputOptions, String> {
    let out = &settings.output;
    let run_id = match &args.run_id {
        Some(text) => RunIdChoice::parse(text)?,
        None => match out.run_id {
            config::RunIdSetting::Auto => RunIdChoice::Auto,
            config::RunIdSetting::Number(n) => RunIdChoice::Fixed(n),
            config::RunIdSetting::None => RunIdChoice::None,
        },
    };
    let outrootdir = match &args.outrootdir {
        Some(dir) => dir.clone(),
        None if out.outrootdir.trim().is_empty() => {
            return Err(
                "output.outrootdir is empty: set it in the config or pass --outrootdir DIR"
                    .to_string(),
            );
        }
        None => PathBuf::from(&out.outrootdir),
    };
    Ok(OutputOptions {
        outrootdir,
        outsubdir: args.outsubdir.clone().or_else(|| out.outsubdir.clone()),
        run_id,
        run_id_ndigits: args.run_id_ndigits.unwrap_or(out.run_id_ndigits),
        new_run_id: args.new_run_id,
        ssbdir: args.ssbdir.clone().or_else(|| {
            out.ssbdir
                .as_ref()
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
        }),
        skip_run_id_ssbdir: args.skip_run_id_ssbdir.unwrap_or(out.skip_runid_ssbdir),
    })
}

/// The instrument: from the config, else from the inputs; every input must agree.
fn instrument_of(settings: &Settings, rows: &[InputRow]) -> Result<Instrument, String> {
    let configured = match &settings.instrument {
        Some(name) => {
            Some(steps::parse_instrument(name).map_err(|e| format!("config key instrument: {e}"))?)
        }
        None => None,
    };
    let mut found: Option<(Instrument, &Path)> = None;
    let mut problems = Vec::new();
    for row in rows {
        let Some(name) = row.header.get_str("INSTRUME") else {
            continue;
        };
        let Ok(inst) = steps::parse_instrument(name) else {
            problems.push(format!(
                "{}: INSTRUME '{name}' is not a JWST instrument",
                row.path.display()
            ));
            continue;
        };
        if let Some(want) = configured {
            if inst != want {
                problems.push(format!(
                    "{}: INSTRUME is {inst}, but the config says instrument: {want}; set \
                     `instrument` (or -p instrument {inst}) or leave the file out",
                    row.path.display()
                ));
            }
        } else if let Some((first, first_path)) = found {
            if inst != first {
                problems.push(format!(
                    "{} is {inst} but {} is {first}: one run handles one instrument",
                    row.path.display(),
                    first_path.display()
                ));
            }
        } else {
            found = Some((inst, &row.path));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    configured.or(found.map(|f| f.0)).ok_or_else(|| {
        "cannot tell the instrument: set `instrument` in the config (or -p instrument NAME)"
            .to_string()
    })
}

/// Builds the plan. Errors are complete messages naming the file, key or section.
pub fn make_plan<'r>(
    registry: &'r Registry,
    settings: &Settings,
    args: &RunArgs,
    cli_params: &[CliParam],
) -> Result<RunPlan<'r>, String> {
    // Reflabels and inputs share the positional words.
    let mut known: Vec<(&str, &str)> = registry
        .entries()
        .iter()
        .map(|e| (e.reflabel.as_str(), e.reftype.as_str()))
        .collect();
    known.extend(registry.broken().iter().map(|b| (b.reflabel.as_str(), "")));
    let (label_tokens, input_tokens): (Vec<String>, Vec<String>) = args
        .items
        .iter()
        .cloned()
        .partition(|t| config::is_reflabel_token(t, settings, &known));
    if label_tokens.is_empty() {
        let available: Vec<&str> = registry
            .entries()
            .iter()
            .map(|e| e.reflabel.as_str())
            .collect();
        let hint = input_tokens
            .iter()
            .find_map(|t| config::suggest_reflabel(t, settings, &known))
            .map(|s| format!(" ({s})"))
            .unwrap_or_default();
        return Err(format!(
            "no reflabel given{hint}: name what to make before the input files, e.g. `mkrefs run \
             readnoise *_uncal.fits`; available: {}",
            available.join(", ")
        ));
    }
    let reflabels =
        config::resolve_reflabels(&label_tokens, settings, &known).map_err(config_error)?;
    let mut entries = Vec::new();
    for r in &reflabels {
        entries.push((r.clone(), registry.get(r)?));
    }

    // Generator parameters: default < config section < command line.
    let selected_specs: Vec<(&str, &[mkrefs_plugin_api::ParamSpec])> = entries
        .iter()
        .map(|(r, e)| (r.as_str(), e.params.as_slice()))
        .collect();
    let routed = config::route_cli_params(cli_params, &selected_specs).map_err(config_error)?;
    config::check_pall(settings, &selected_specs).map_err(config_error)?;

    // Inputs.
    if input_tokens.is_empty() {
        return Err(
            "no input files given: add files, directories or glob patterns after the \
                    reflabel"
                .to_string(),
        );
    }
    let paths = read::expand_inputs(&input_tokens).map_err(|e| e.to_string())?;
    let filtered = read::filter_basenames(paths, settings.inputfiles.basenamepattern.as_deref())
        .map_err(|e| format!("inputfiles.basenamepattern: {e}"))?;
    if filtered.kept.is_empty() {
        return Err(format!(
            "inputfiles.basenamepattern '{}' left none of the {} input file(s)",
            settings.inputfiles.basenamepattern.as_deref().unwrap_or(""),
            filtered.skipped.len()
        ));
    }
    let inf = &settings.inputfiles;
    let classify = ClassifyRules::new(
        inf.dark_pattern.as_deref(),
        inf.flat_pattern.as_deref(),
        &inf.dark_exp_types,
        &inf.flat_exp_types,
    )
    .map_err(|e| format!("config section inputfiles: {e}"))?;
    let keys = InputKeys {
        required: inf.requiredfitskeys.clone(),
        optional: inf.optionalfitskeys.clone(),
        dateobs: inf.dateobs_fitskey.clone(),
        timeobs: inf.timeobs_fitskey.clone(),
        mjdobs: inf.mjdobs_fitskey.clone(),
        classify,
    };
    let rows =
        read::read_inputs(&filtered.kept, &keys, &header_reader).map_err(|e| e.to_string())?;
    let instrument = instrument_of(settings, &rows)?;

    // Per generator: grouping, calibration state and parameters.
    let limits = MjdLimits {
        dd: settings.max_delta_mjd.dd,
        ff: settings.max_delta_mjd.ff,
        ddff: settings.max_delta_mjd.ddff,
    };
    let mut selected = Vec::new();
    let mut per_reflabel: Vec<(String, Vec<Group>)> = Vec::new();
    let mut notes = Vec::new();
    let mut requests = Vec::new();
    for (reflabel, entry) in &entries {
        let section = settings.section(reflabel);
        let where_ = |key: &str, src: Option<&config::Provenance>| match src {
            Some(p) => format!("{p}: section {reflabel}, key {key}"),
            None => format!("generator {reflabel}'s default {key}"),
        };
        let imtypes_src = section.and_then(|s| s.imtypes.as_ref());
        let imtypes_text = imtypes_src
            .map(|s| s.value.clone())
            .unwrap_or_else(|| entry.info.default_imtypes.to_string());
        let imtypes = ImTypes::parse(&imtypes_text)
            .map_err(|e| format!("{}: {e}", where_("imtypes", imtypes_src.map(|s| &s.source))))?;
        let steps_src = section.and_then(|s| s.ssbsteps.as_ref());
        let steps_text = steps_src
            .map(|s| s.value.clone())
            .unwrap_or_else(|| entry.info.default_ssbsteps.to_string());
        let steps = steps::expand_ssbsteps(Some(&steps_text), instrument)
            .map_err(|e| format!("{}: {e}", where_("ssbsteps", steps_src.map(|s| &s.source))))?;
        let save_src = section.and_then(|s| s.ssb_save_steps.as_ref());
        let save_text = save_src
            .map(|s| s.value.clone())
            .unwrap_or_else(|| entry.info.default_ssb_save_steps.to_string());
        let save = steps::parse_save_steps(Some(&save_text), instrument).map_err(|e| {
            format!(
                "{}: {e}",
                where_("ssb_save_steps", save_src.map(|s| &s.source))
            )
        })?;
        for p in &save {
            if !steps.contains(&p.producing_step()) {
                return Err(format!(
                    "{}: '{p}' is made by the {} step, which ssbsteps ({}) does not include; \
                     add it to ssbsteps or remove '{p}'",
                    where_("ssb_save_steps", save_src.map(|s| &s.source)),
                    p.producing_step().name(),
                    steps::join_steps(&steps)
                ));
            }
        }
        if let Some(rt) = section.and_then(|s| s.reftype.as_ref()) {
            let alias = settings
                .default_reflabels
                .get(&rt.value.to_ascii_lowercase())
                .is_some_and(|r| r == reflabel);
            if !rt.value.eq_ignore_ascii_case(&entry.reftype) && !alias {
                tracing::warn!(
                    "{}: section {reflabel} says reftype '{}', but the generator writes {}; the \
                     file names use {}",
                    rt.source,
                    rt.value,
                    entry.reftype,
                    entry.reftype.to_ascii_lowercase()
                );
            }
        }
        let cli: Vec<CliParam> = routed
            .iter()
            .filter(|(r, _)| r == reflabel)
            .map(|(_, p)| p.clone())
            .collect();
        let params = config::resolve_params(reflabel, &entry.params, section, &cli)
            .map_err(config_error)?
            .into_iter()
            .map(|r| r.param)
            .collect();
        let grouping = group::make_groups(&rows, imtypes, &limits);
        notes.extend(grouping.notes.iter().map(|n| format!("{reflabel}: {n}")));
        if grouping.groups.is_empty() {
            let darks = rows
                .iter()
                .filter(|r| r.kind == mkrefs_plugin_api::ImageKind::Dark)
                .count();
            notes.push(format!(
                "{reflabel}: no group can be made with imtypes {} from {darks} dark(s) and {} \
                 flat(s)",
                imtypes.name(),
                rows.len() - darks
            ));
        }
        requests.push(StateRequest {
            reflabel: reflabel.clone(),
            steps: steps.clone(),
            rows: group::rows_used(&grouping.groups),
            save: save.clone(),
        });
        per_reflabel.push((reflabel.clone(), grouping.groups));
        selected.push(Selected {
            reflabel: reflabel.clone(),
            entry,
            imtypes,
            steps,
            save,
            params,
        });
    }
    let groups = group::assign_cmd_ids(&per_reflabel);
    if groups.is_empty() {
        return Err(format!("nothing to do: {}", notes.join("; ")));
    }

    // Where things go, and which file each input is read from.
    let layout = RunLayout::resolve(&output_options(settings, args)?);
    let mut search_dirs = vec![layout.ssbdir.clone()];
    search_dirs.extend(
        settings
            .output
            .pipeline_prod_search_dir
            .iter()
            .map(|d| absolute(Path::new(d))),
    );
    let search = ProductSearch {
        dirs: search_dirs,
        ssbdir: layout.ssbdir.clone(),
        reuse: !args.recalibrate,
    };
    let resolved = state::plan_inputs(&rows, &requests, instrument, &search, &header_reader)
        .map_err(|e| e.to_string())?;

    // Calibration jobs for what is missing.
    let backend = match &args.backend {
        Some(text) => Backend::parse(text).ok_or_else(|| {
            format!("--backend {text}: the calibration backend is native or jwst")
        })?,
        None => settings.calibration.backend,
    };
    let mut ref_configs = std::collections::BTreeMap::new();
    for s in &selected {
        let section = settings
            .tree
            .get(&s.reflabel)
            .and_then(|n| n.get("reffile4ssb"));
        let cfg = RefConfig::from_config(settings.tree.get("reffile4ssb"), section)?;
        ref_configs.insert(s.reflabel.clone(), cfg);
    }
    let crds_path = settings
        .calibration
        .crds_path
        .clone()
        .or_else(|| std::env::var("CRDS_PATH").ok().filter(|s| !s.is_empty()))
        .map(|p| absolute(Path::new(&p)));
    let crds = crate::prep::crds::ClientSettings {
        python: settings
            .calibration
            .python
            .clone()
            .unwrap_or_else(|| crate::prep::crds::default_python(&settings.calibration.strun)),
        crds_path,
        env: Vec::new(),
    };
    let crds_configured = crate::prep::crds::configuration(&crds);
    let strun_crds = crds_configured.is_ok().then(|| StrunCrds {
        cache: crds.crds_path.clone(),
    });
    let cal_jobs = jobs::plan_jobs(
        &rows,
        &resolved,
        &CalibrationContext {
            instrument,
            backend,
            references: &ref_configs,
            crds,
            crds_configured,
            ssbdir: &layout.ssbdir,
        },
    )?;

    let gen_jobs = groups
        .iter()
        .map(|g| job_for(g, &selected, &rows, &resolved, &layout))
        .collect::<Result<Vec<_>, String>>()?;
    let jobs = link_jobs(
        cal_jobs,
        gen_jobs,
        &resolved,
        instrument,
        &JwstRun {
            backend,
            strun: &settings.calibration.strun,
            crds: strun_crds,
        },
        &layout,
        args.calibrate_only,
    )?;
    Ok(RunPlan {
        instrument,
        layout,
        selected,
        rows,
        skipped_inputs: filtered.skipped,
        groups,
        notes,
        resolved,
        backend,
        jobs,
    })
}

/// How calibration jobs run: the backend and, for jwst, its program and CRDS.
struct JwstRun<'a> {
    backend: Backend,
    strun: &'a str,
    crds: Option<StrunCrds>,
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
fn link_jobs(
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
    let mut maker = std::collections::HashMap::new();
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
    let mut needed_generators = std::collections::BTreeSet::new();
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
        let new_index: std::collections::HashMap<usize, usize> =
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

fn job_for(
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
                    .map(|(k, v)| JobParam::new(k, &v.to_param()))
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
