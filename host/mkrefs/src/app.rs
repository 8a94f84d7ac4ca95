//! Entry point: parse the command line, set up logging, dispatch to a command.

use std::process::ExitCode;

use crate::cli::{self, Cli, Commands, RunJobArgs};
use crate::commands;
use crate::config::early;
use crate::exec::batch::{self, Kind};
use crate::logging;
use crate::registry::executable::python_for_scripts;
use crate::registry::{Fallback, Registry, plugin_search_path};

pub fn main() -> ExitCode {
    restore_sigpipe();
    let argv = match utf8_arguments() {
        Ok(argv) => argv,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    // Generators are discovered before the full parse (their parameters are options of
    // `run`), but only for the commands that use them: `--version`, `simulate` and the job
    // children never load a drop-in.
    let cli_dirs = cli::prescan_plugin_dirs(&argv);
    let plugin_dirs = plugin_search_path(&cli_dirs);
    let early = early::read(
        cli::prescan_cfgfile(&argv).as_deref(),
        &crate::config::process_env,
    );
    add_profile_path(&early.profiles, &plugin_dirs);
    let registry = if cli::needs_generators(&argv) {
        let python = python_for_scripts(early.python.as_deref());
        Registry::discover(&plugin_dirs, &cli_dirs, &python)
    } else {
        Registry::empty()
    };
    let (cli, params) = match cli::parse(argv, &registry) {
        Ok(parsed) => parsed,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let Cli { global, command } = cli;
    let is_child = matches!(
        command,
        Commands::RunJob(_)
            | Commands::RunCalibration(_)
            | Commands::RunCombine(_)
            | Commands::ProbePlugin { .. }
    );
    logging::init(logging::level(global.verbose, global.quiet), is_child);
    report_discovery(&registry);
    let result = match command {
        Commands::Plugins => commands::plugins::run(&registry, &plugin_dirs),
        Commands::Describe { reflabel } => commands::describe::run(&registry, &global, &reflabel),
        Commands::Config(cli::ConfigCommand::Template { reflabels, output }) => {
            commands::template::run(&registry, &global, &reflabels, output.as_deref())
        }
        Commands::Run(args) => commands::run::run(&registry, &global, &args, &params),
        Commands::Demo(args) => commands::demo::run(&registry, &global, &args),
        Commands::Simulate(args) => commands::simulate::run(&args),
        Commands::Clean(args) => commands::clean::run(&global, &args),
        Commands::Status { run_dir } => commands::status::run(&run_dir),
        Commands::RunJob(args) => {
            return in_batch(&args, Kind::Generate, || {
                crate::child::generate::run_job(&args.job_file, args.threads)
            });
        }
        Commands::RunCalibration(args) => {
            return in_batch(&args, Kind::Calibrate, || {
                crate::child::calibrate::run_calibration(&args.job_file, args.threads)
            });
        }
        Commands::RunCombine(args) => {
            return in_batch(&args, Kind::Combine, || {
                crate::child::combine::run_combine(&args.job_file)
            });
        }
        Commands::ProbePlugin { library } => {
            return ExitCode::from(crate::child::probe_library(&library) as u8);
        }
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

/// Adds the configuration's `profiles` and the plugin directories to `$MKREFS_PROFILE_PATH`,
/// so those instrument profiles are read, here and in every job child (which inherit the
/// variable). Relative paths are made absolute: children may start elsewhere.
fn add_profile_path(configured: &[std::path::PathBuf], plugin_dirs: &[std::path::PathBuf]) {
    use mkrefs_support::profile::PROFILE_PATH_VAR;
    let mut path: Vec<std::path::PathBuf> = std::env::var_os(PROFILE_PATH_VAR)
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for p in configured.iter().chain(plugin_dirs) {
        let p = std::path::absolute(p).unwrap_or_else(|_| p.clone());
        if !path.contains(&p) {
            path.push(p);
        }
    }
    if let Ok(joined) = std::env::join_paths(&path) {
        // SAFETY: called at the start of main, before any thread is started.
        unsafe { std::env::set_var(PROFILE_PATH_VAR, joined) };
    }
}

/// Logs what discovering the generators found wrong: a library that was meant to replace a
/// bundled generator and failed is an error, the rest warnings.
fn report_discovery(registry: &Registry) {
    for w in mkrefs_support::profile::profile_warnings() {
        tracing::warn!("{w}");
    }
    for w in registry.warnings() {
        tracing::warn!("{w}");
    }
    for b in registry.broken() {
        if b.fallback == Fallback::Refused {
            tracing::error!("{}", b.message());
        } else {
            tracing::warn!("{}", b.message());
        }
        if !b.detail.is_empty() {
            tracing::debug!("{}", b.detail);
        }
    }
}

/// The command line as text. Every argument mkrefs takes is a name, a number or a path it
/// writes into messages and job files, so one that is not UTF-8 is refused, naming it.
fn utf8_arguments() -> Result<Vec<String>, String> {
    std::env::args_os()
        .enumerate()
        .map(|(i, a)| {
            a.into_string().map_err(|bad| {
                format!(
                    "argument {i} ({}) is not valid UTF-8; rename the file or directory, or \
                     give it through a symbolic link with a UTF-8 name",
                    bad.to_string_lossy()
                )
            })
        })
        .collect()
}

/// Rust ignores SIGPIPE, which turns `mkrefs describe x | head` into a panic on the closed
/// pipe; a command-line tool should just stop, as other Unix tools do.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Runs a job child; with `--batch`, with the steps the submitting host would take around it
/// ([`crate::exec::batch`]).
fn in_batch(args: &RunJobArgs, kind: Kind, run: impl FnOnce() -> i32) -> ExitCode {
    if !args.batch {
        return ExitCode::from(run() as u8);
    }
    let (job, _locks) = match batch::prepare(&args.job_file, kind) {
        Ok(prepared) => prepared,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let code = run();
    if code == 0
        && let Err(e) = batch::complete(&job)
    {
        tracing::error!("{e}");
        return ExitCode::from(1);
    }
    ExitCode::from(code as u8)
}
