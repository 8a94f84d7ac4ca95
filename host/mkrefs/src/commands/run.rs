//! `mkrefs run`: settings, plan, (dry run or) execution, summary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::atomic;
use crate::cli::{GlobalOptions, RunArgs};
use crate::commands::tables;
use crate::config::envsubst::{self, ExpandError};
use crate::config::settings::ExecutorKind;
use crate::config::{self, Backend, CliParam, LoadOptions, Settings};
use crate::exec::cores::Cores;
use crate::exec::executor::{self, ExecOptions, JobStatus};
use crate::exec::interrupt;
use crate::exec::lock::{self, Lock};
use crate::exec::manifest;
use crate::exec::slurm::{self, SlurmRun};
use crate::inputs::fingerprint::{self, Fingerprints};
use crate::plan::options::{OutputOverrides, RunOptions};
use crate::plan::{self, RunPlan};
use crate::registry::Registry;

/// Loads the configuration the global options name.
pub fn load_settings(global: &GlobalOptions) -> Result<Settings, String> {
    let opts = LoadOptions {
        cfgfile: global.cfgfile.clone(),
        extra_cfgfiles: global.extracfgfile.clone(),
        params: global.params_pairs(),
        pall: global.pall_pairs(),
        pp: global.pp_triples(),
    };
    let settings = config::load(&opts, &config::process_env).map_err(|e| e.to_string())?;
    for w in &settings.warnings {
        tracing::warn!("{w}");
    }
    // Profiles are read before the command line (config::early), from the main file only.
    let early = config::early::read(opts.cfgfile.as_deref(), &config::process_env);
    let configured: Vec<std::path::PathBuf> = settings
        .profiles
        .iter()
        .map(std::path::PathBuf::from)
        .collect();
    if configured != early.profiles {
        tracing::warn!(
            "profiles {:?} come from -e, -p or --pp, which are read after the instrument \
             profiles; they are not used: put them in the main configuration (-c) or in \
             $MKREFS_PROFILE_PATH",
            settings.profiles
        );
    }
    Ok(settings)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Verbosity of the job children. Their output goes only to the job logs, so `-q` (meant for
/// the terminal) does not thin the logs; `-v` makes them more detailed.
fn child_flags(global: &GlobalOptions) -> Vec<String> {
    if global.verbose > 0 {
        vec![format!("-{}", "v".repeat(global.verbose as usize))]
    } else {
        Vec::new()
    }
}

pub fn run(
    registry: &Registry,
    global: &GlobalOptions,
    args: &RunArgs,
    cli_params: &[CliParam],
) -> Result<ExitCode, String> {
    let settings = load_settings(global)?;
    let executor = match (&args.executor, args.batchmode) {
        (Some(text), _) => ExecutorKind::parse(text)
            .ok_or_else(|| format!("--executor {text}: the executor is local or slurm"))?,
        (None, true) => ExecutorKind::Slurm,
        (None, false) => settings.executor.kind,
    };
    if args.detach && executor != ExecutorKind::Slurm {
        return Err(
            "--detach: only the slurm executor leaves jobs running after mkrefs returns; add \
             --executor slurm, or leave --detach out"
                .to_string(),
        );
    }
    let plan = plan::make_plan(registry, &settings, &run_options(args, cli_params)?)?;
    for note in &plan.notes {
        tracing::info!("{note}");
    }
    if !plan.skipped_inputs.is_empty() {
        tracing::info!(
            "inputfiles.basenamepattern left out {} file(s)",
            plan.skipped_inputs.len()
        );
    }
    if args.debug > 0 {
        tracing::info!(
            "-d/--debug: showing the plan and running nothing (upstream's debug mode skipped \
             the pipeline runs)"
        );
    }
    if args.dry_run || args.debug > 0 {
        print_dry_run(&plan);
        return Ok(ExitCode::SUCCESS);
    }
    let _run_lock = prepare_run_dir(&plan, args.no_wait)?;
    let outputs = [plan.layout.basedir.clone(), plan.layout.ssbdir.clone()];
    let stale = interrupt::remove_temporaries(&outputs);
    if !stale.is_empty() {
        tracing::info!(
            "removed {} temporary file(s) left by processes that no longer run: {}",
            stale.len(),
            stale
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    interrupt::install();
    let fingerprints = Arc::new(Fingerprints::in_dir(
        &fingerprint::cache_dir().unwrap_or_else(|| plan.layout.root.clone()),
    ));
    let jobs = args.jobs.unwrap_or_else(cores).max(1);
    let threads = args
        .threads
        .unwrap_or_else(|| (cores() / jobs.min(plan.jobs.len()).max(1)).max(1));
    tracing::info!(
        "{} job(s) in {} ({} at a time, {} thread(s) each{})",
        plan.jobs.len(),
        plan.layout.basedir.display(),
        jobs,
        threads,
        if args.threads.is_none() {
            ", more while cores are free"
        } else {
            ""
        }
    );
    let exec_options = ExecOptions {
        jobs,
        cores: Cores {
            total: cores(),
            per_job: threads,
            adaptive: args.threads.is_none(),
        },
        memory: crate::exec::cores::available_memory(),
        force: args.force,
        child_flags: child_flags(global),
        max_calibrations: args.max_calibrations,
        max_generators: args.max_generators,
        fingerprints: Arc::clone(&fingerprints),
        recalibrate: args.recalibrate,
        no_wait: args.no_wait,
    };
    let results = match executor {
        ExecutorKind::Local => executor::execute(plan.jobs.clone(), &exec_options),
        ExecutorKind::Slurm => slurm::execute(
            &plan.jobs,
            &exec_options,
            &SlurmRun {
                settings: &settings.executor,
                run_dir: &plan.layout.basedir,
                run_name: &plan.layout.stem,
                detach: args.detach,
                threads,
            },
        ),
    };

    let summary = tables::summary_table(&results);
    print!("{summary}");
    atomic::write(&plan.layout.summary(), summary.as_bytes())?;
    if let Some(signal) = interrupt::received() {
        // The children are gone: what they were writing is of no use.
        let left = interrupt::remove_temporaries(&outputs);
        tracing::warn!(
            "stopped by {}; removed {} temporary file(s); run the same command again to \
             finish (what finished is kept)",
            interrupt::signal_name(signal),
            left.len()
        );
        return Ok(ExitCode::from((128 + signal) as u8));
    }
    let manifest = manifest::write(
        &plan.layout.basedir,
        &plan.jobs,
        &results,
        executor.name(),
        &fingerprints,
    );
    if let Err(e) = fingerprints.save() {
        tracing::warn!("{e} (the next run hashes its inputs again)");
    }
    let manifest = manifest?;
    tracing::info!("manifest of the run's products: {}", manifest.display());
    // Jobs held back by --maxNstrun/--maxNref are left for a later run, not failures.
    let failed = results.iter().any(|r| {
        !r.status.succeeded() && !matches!(r.status, JobStatus::Held(_) | JobStatus::Submitted(_))
    });
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `$NAME` and `${NAME}` in a command-line value, expanded as in configuration values.
pub(crate) fn expand(option: &str, value: &str) -> Result<String, String> {
    envsubst::expand_str(value, &config::process_env).map_err(|e| match e {
        ExpandError::Unset(var) => format!(
            "{option} {value}: the environment variable ${var} is not set; set it, or write $$ \
             for a literal '$'"
        ),
        ExpandError::Syntax(message) => format!("{option} {value}: {message}"),
    })
}

/// What the command line decides about the run, for the planning stages.
fn run_options(args: &RunArgs, cli_params: &[CliParam]) -> Result<RunOptions, String> {
    let backend = match &args.backend {
        Some(text) => Some(Backend::parse(text).ok_or_else(|| {
            format!("--backend {text}: the calibration backend is native or jwst")
        })?),
        None => None,
    };
    let path = |option: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
        p.as_ref()
            .map(|p| expand(option, &p.to_string_lossy()).map(PathBuf::from))
            .transpose()
    };
    let text = |option: &str, t: &Option<String>| -> Result<Option<String>, String> {
        t.as_ref().map(|t| expand(option, t)).transpose()
    };
    Ok(RunOptions {
        items: args.items.clone(),
        params: cli_params.to_vec(),
        output: OutputOverrides {
            outrootdir: path("--outrootdir", &args.outrootdir)?,
            outsubdir: text("--outsubdir", &args.outsubdir)?,
            run_id: args.run_id.clone(),
            run_id_ndigits: args.run_id_ndigits,
            new_run_id: args.new_run_id,
            ssbdir: path("--ssbdir", &args.ssbdir)?,
            skip_run_id_ssbdir: args.skip_run_id_ssbdir,
            addsuffix: text("--addsuffix", &args.addsuffix)?,
        },
        backend,
        recalibrate: args.recalibrate,
        keep_products: args.keep_products,
        calibrate_only: args.calibrate_only,
    })
}

fn print_dry_run(plan: &RunPlan<'_>) {
    println!("Dry run: nothing is written.");
    println!("Run directory: {}", plan.layout.basedir.display());
    println!(
        "Calibrated products (ssbdir): {}",
        plan.layout.ssbdir.display()
    );
    println!("Instrument: {}", plan.instrument);
    for s in &plan.selected {
        let steps = if s.steps.is_empty() {
            "raw inputs".to_string()
        } else {
            crate::prep::steps::join_steps(&s.steps)
        };
        println!(
            "Generator {} ({}, {}): imtypes {}, inputs at state: {steps}",
            s.reflabel,
            s.entry.reftype,
            s.entry.origin.describe(),
            s.imtypes.name()
        );
        let width = s.params.iter().map(|p| p.param.name.len()).max();
        for p in &s.params {
            println!(
                "    {:width$} {}",
                p.param.name,
                crate::commands::describe::effective_line(p),
                width = width.unwrap_or(0)
            );
        }
    }
    println!("\nInputs:\n{}", tables::input_table(plan));
    println!("Groups:\n{}", tables::group_table(plan));
    println!("Jobs:\n{}", tables::job_table(plan));
    println!(
        "(When the run executes, a job whose outputs exist and are proven up to date is \
         skipped; see Reruns in the README.)"
    );
}

/// Creates and locks the run directory (a run already using it is waited for, or with
/// `no_wait` refused) and writes the input and group tables. A run directory made from other
/// inputs is not reused (its outputs would be mixed up with this run's).
fn prepare_run_dir(plan: &RunPlan<'_>, no_wait: bool) -> Result<Lock, String> {
    let layout = &plan.layout;
    std::fs::create_dir_all(&layout.basedir).map_err(|e| {
        format!(
            "cannot create the run directory {}: {e}; check permissions or choose another \
             place with --outrootdir",
            layout.basedir.display()
        )
    })?;
    let what = format!("the run directory {}", layout.basedir.display());
    let lock = lock::acquire(&layout.basedir.join(".mkrefs.lock"), &what, no_wait)?;
    let inputs = tables::input_table(plan);
    if let Ok(old) = std::fs::read_to_string(layout.input_table())
        && old != inputs
    {
        return Err(format!(
            "{} was made from other input files ({}); start a new run with -n/--newrunID, \
             choose one with --runID N, or remove that directory",
            layout.basedir.display(),
            layout.input_table().display()
        ));
    }
    atomic::write(&layout.input_table(), inputs.as_bytes())?;
    atomic::write(&layout.group_table(), tables::group_table(plan).as_bytes())?;
    Ok(lock)
}
