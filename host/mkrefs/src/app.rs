//! Entry point: parse the command line, set up logging, dispatch to a command.

use std::process::ExitCode;

use crate::cli::{self, Cli, Commands};
use crate::commands;
use crate::logging;
use crate::registry::{Registry, plugin_search_path};

pub fn main() -> ExitCode {
    restore_sigpipe();
    let argv = match utf8_arguments() {
        Ok(argv) => argv,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::from(2);
        }
    };
    // Generators are discovered first: their parameters are options of `run`.
    let plugin_dirs = plugin_search_path(&cli::prescan_plugin_dirs(&argv));
    let registry = Registry::discover(&plugin_dirs);
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
    let is_child = matches!(command, Commands::RunJob(_) | Commands::RunCalibration(_));
    logging::init(logging::level(global.verbose, global.quiet), is_child);
    if !is_child {
        for w in registry.warnings() {
            tracing::warn!("{w}");
        }
        for b in registry.broken() {
            tracing::warn!("skipping plugin library {}: {}", b.path.display(), b.reason);
            if !b.detail.is_empty() {
                tracing::debug!("{}", b.detail);
            }
        }
    }
    let result = match command {
        Commands::Plugins => commands::plugins::run(&registry, &plugin_dirs),
        Commands::Describe { reflabel } => commands::describe::run(&registry, &global, &reflabel),
        Commands::Run(args) => commands::run::run(&registry, &global, &args, &params),
        Commands::Demo(args) => commands::demo::run(&registry, &global, &args),
        Commands::Simulate(args) => commands::simulate::run(&args),
        Commands::RunJob(args) => {
            return ExitCode::from(
                crate::child::generate::run_job(&args.job_file, args.threads) as u8,
            );
        }
        Commands::RunCalibration(args) => {
            return ExitCode::from(crate::child::calibrate::run_calibration(
                &args.job_file,
                args.threads,
            ) as u8);
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
