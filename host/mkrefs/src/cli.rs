//! The command line: static options through clap's derive API, plus one option per generator
//! parameter added at run time (`--<name>` and `--<reflabel>.<name>`), so `--help` lists them
//! and typos are caught by clap.

use std::path::PathBuf;

use clap::{
    Arg, ArgAction, ArgMatches, Args, Command, CommandFactory, FromArgMatches, Parser, Subcommand,
};

use crate::config::CliParam;
use crate::config::error::suggest;
use crate::registry::Registry;

/// Turns raw JWST detector exposures into calibration reference files.
#[derive(Parser, Debug)]
#[command(name = "mkrefs", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOptions,
    #[command(subcommand)]
    pub command: Commands,
}

/// Options every subcommand accepts.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOptions {
    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = ArgAction::Count, global = true, env = "MKREFS_VERBOSE")]
    pub verbose: u8,
    /// Less log output (-q warnings only, -qq errors only).
    #[arg(short, long, action = ArgAction::Count, global = true, conflicts_with = "verbose", env = "MKREFS_QUIET")]
    pub quiet: u8,
    /// Main configuration file (default: $MKREFS_CONFIG, $JWST_MKREFS_CONFIGFILE, else the
    /// built-in configs/mkrefs.yaml).
    #[arg(short = 'c', long = "cfgfile", global = true, value_name = "FILE")]
    pub cfgfile: Option<PathBuf>,
    /// Extra configuration file merged over the main one (repeatable, applied in order).
    #[arg(
        short = 'e',
        long = "extracfgfile",
        global = true,
        value_name = "FILE",
        env = "MKREFS_EXTRACFGFILE"
    )]
    pub extracfgfile: Vec<PathBuf>,
    /// Set a top-level configuration key: -p KEY VALUE (repeatable).
    #[arg(short = 'p', long = "params", global = true, num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    pub params: Vec<String>,
    /// Set a key at top level and in every section that has it: --pall KEY VALUE.
    #[arg(long = "pall", global = true, num_args = 2, value_names = ["KEY", "VALUE"], action = ArgAction::Append)]
    pub pall: Vec<String>,
    /// Set a key in one section: --pp SECTION KEY VALUE.
    #[arg(long = "pp", global = true, num_args = 3, value_names = ["SECTION", "KEY", "VALUE"], action = ArgAction::Append)]
    pub pp: Vec<String>,
    /// Directory searched for drop-in generator libraries (repeatable; searched before
    /// $MKREFS_PLUGIN_PATH and the per-user plugin directory).
    #[arg(
        long = "plugin-dir",
        global = true,
        value_name = "DIR",
        env = "MKREFS_PLUGIN_DIR"
    )]
    pub plugin_dir: Vec<PathBuf>,
}

impl GlobalOptions {
    pub fn params_pairs(&self) -> Vec<(String, String)> {
        pairs(&self.params)
    }
    pub fn pall_pairs(&self) -> Vec<(String, String)> {
        pairs(&self.pall)
    }
    pub fn pp_triples(&self) -> Vec<(String, String, String)> {
        self.pp
            .chunks_exact(3)
            .map(|c| (c[0].clone(), c[1].clone(), c[2].clone()))
            .collect()
    }
}

fn pairs(flat: &[String]) -> Vec<(String, String)> {
    flat.chunks_exact(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect()
}

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Make reference files: mkrefs run REFLABEL[,REFLABEL...] FILE|DIR|GLOB... [options].
    /// `run` may be left out: `mkrefs readnoise *.fits` is the same.
    Run(RunArgs),
    /// List every generator: reflabel, reftype, version, bundled or library path.
    Plugins,
    /// Describe a generator and every parameter it accepts, with the value in effect (after
    /// -c, -e, -p, --pall, --pp) and where that value came from.
    Describe {
        /// The reflabel (or a reftype configured in default_reflabels).
        reflabel: String,
    },
    /// Configuration files: `mkrefs config template [REFLABEL...]`.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Simulate a small NIRCam data set and make all four bundled reference files from it.
    Demo(DemoArgs),
    /// Write simulated JWST exposures (uncal ramps and calibrated products) for trying
    /// mkrefs, for tests and for benchmarks.
    Simulate(SimulateArgs),
    /// Remove the run-internal calibrated products (only the extensions the generators read,
    /// in <ssbdir>/mkrefs-internal) below the output root and the ssbdir.
    Clean(CleanArgs),
    /// How the Slurm jobs of a run directory stand (a run submitted with --detach).
    Status {
        /// The run directory (<outrootdir>[/<outsubdir>]/run<NNN>).
        run_dir: PathBuf,
    },
    /// Run one job file in this process (what `mkrefs run` starts for each job).
    #[command(hide = true)]
    RunJob(RunJobArgs),
    /// Run one calibration job file in this process (what `mkrefs run` starts for each input
    /// that must be calibrated first).
    #[command(hide = true)]
    RunCalibration(RunJobArgs),
    /// Run one combine job file in this process (what `mkrefs run` starts for each reflabel
    /// and detector of the final stage).
    #[command(hide = true)]
    RunCombine(RunJobArgs),
    /// Load one drop-in library in this process and print what it provides (what mkrefs
    /// starts for each drop-in before loading it, so a library that crashes costs only this).
    #[command(hide = true)]
    ProbePlugin {
        /// The library file.
        library: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Write a complete, commented configuration: every framework key and every parameter of
    /// the named generators (default: all), with help, defaults and the values in effect
    /// (after -c, -e, -p, --pall, --pp). It loads back unchanged with -c.
    Template {
        /// Reflabels or reftypes (default: every installed generator).
        #[arg(value_name = "REFLABEL")]
        reflabels: Vec<String>,
        /// Write to this file instead of standard output.
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            env = "MKREFS_CONFIG_TEMPLATE_OUTPUT"
        )]
        output: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunArgs {
    /// Reflabels (or reftypes, or comma lists of them) followed by input files, directories
    /// or glob patterns, in any order.
    #[arg(required = true, value_name = "REFLABEL|FILE")]
    pub items: Vec<String>,
    /// Root of the output tree (overrides output.outrootdir).
    #[arg(long = "outrootdir", value_name = "DIR", env = "MKREFS_OUTROOTDIR")]
    pub outrootdir: Option<PathBuf>,
    /// Subdirectory of the root (overrides output.outsubdir).
    #[arg(long = "outsubdir", value_name = "NAME", env = "MKREFS_OUTSUBDIR")]
    pub outsubdir: Option<String>,
    /// Run ID: AUTO (reuse the latest run, or 0), or a number (overrides output.runID).
    #[arg(
        long = "runID",
        alias = "run-id",
        value_name = "ID",
        env = "MKREFS_RUNID"
    )]
    pub run_id: Option<String>,
    /// Digits of the zero-padded run ID (overrides output.runIDNdigits).
    #[arg(long = "runIDNdigits", alias = "run-id-ndigits", value_name = "N",
          value_parser = run_id_digits, env = "MKREFS_RUNIDNDIGITS")]
    pub run_id_ndigits: Option<usize>,
    /// With runID AUTO: start a new run (latest + 1) instead of reusing the latest.
    #[arg(
        short = 'n',
        long = "newrunID",
        alias = "new-run-id",
        env = "MKREFS_NEWRUNID"
    )]
    pub new_run_id: bool,
    /// Directory for calibrated products (overrides output.ssbdir).
    #[arg(long = "ssbdir", value_name = "DIR", env = "MKREFS_SSBDIR")]
    pub ssbdir: Option<PathBuf>,
    /// Share the ssbdir between runs (true) or keep it inside the run directory (false); alone,
    /// as upstream's switch, it means true.
    #[arg(long = "skip_runID_ssbdir", value_name = "BOOL", num_args = 0..=1,
          require_equals = true, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new(), env = "MKREFS_SKIP_RUNID_SSBDIR")]
    pub skip_run_id_ssbdir: Option<bool>,
    /// A word added to reference-file names: <reflabel>.<stem>.<WORD>.cmd<N>_<reftype>.fits
    /// (overrides output.addsuffix).
    #[arg(long = "addsuffix", value_name = "WORD", env = "MKREFS_ADDSUFFIX")]
    pub addsuffix: Option<String>,
    /// Run at most N calibration jobs; the others, and the jobs that need them, are held back
    /// for a later run (upstream's --maxNstrun).
    #[arg(long = "maxNstrun", value_name = "N", env = "MKREFS_MAXNSTRUN")]
    pub max_calibrations: Option<usize>,
    /// Run at most N generator jobs; the others are held back for a later run.
    #[arg(long = "maxNref", value_name = "N", env = "MKREFS_MAXNREF")]
    pub max_generators: Option<usize>,
    /// Upstream's debug mode skipped the pipeline runs; here it shows the plan and runs
    /// nothing, as --dry-run (upstream touched empty products, which would then look made).
    #[arg(short = 'd', long = "debug", action = ArgAction::Count, env = "MKREFS_DEBUG")]
    pub debug: u8,
    /// Upstream's batch mode: the same as --executor slurm.
    #[arg(short = 'b', long = "batchmode", env = "MKREFS_BATCHMODE")]
    pub batchmode: bool,
    /// Where the jobs run: local (child processes here) or slurm (one sbatch job each);
    /// overrides executor.kind.
    #[arg(long = "executor", value_name = "KIND", env = "MKREFS_EXECUTOR")]
    pub executor: Option<String>,
    /// With the slurm executor: return once the jobs are submitted; `mkrefs status RUNDIR`
    /// reports how they end.
    #[arg(long = "detach", env = "MKREFS_DETACH")]
    pub detach: bool,
    /// Jobs run at the same time (default: the number of cores).
    #[arg(short = 'j', long = "jobs", value_name = "N", value_parser = at_least_one, env = "MKREFS_JOBS")]
    pub jobs: Option<usize>,
    /// Threads each job may use (default: cores / jobs, at least 1).
    #[arg(long = "threads", value_name = "N", value_parser = at_least_one, env = "MKREFS_THREADS")]
    pub threads: Option<usize>,
    /// Redo generator jobs whose output is up to date.
    #[arg(long = "force", alias = "force_redo_ref", env = "MKREFS_FORCE")]
    pub force: bool,
    /// When another run holds the run directory or a calibrated product this run needs, stop
    /// instead of waiting for it to finish.
    #[arg(long = "no-wait", env = "MKREFS_NO_WAIT")]
    pub no_wait: bool,
    /// Print the inputs, groups and jobs, and write nothing.
    #[arg(long = "dry-run", alias = "onlyshow", env = "MKREFS_DRY_RUN")]
    pub dry_run: bool,
    /// Backend of the calibration steps: native or jwst (overrides calibration.backend).
    #[arg(long = "backend", value_name = "NAME", env = "MKREFS_BACKEND")]
    pub backend: Option<String>,
    /// Remake the calibrated products this run needs even if those in ssbdir are up to date
    /// (products in output.pipeline_prod_search_dir are not used either).
    #[arg(
        long = "recalibrate",
        alias = "force_redo_strun",
        env = "MKREFS_RECALIBRATE"
    )]
    pub recalibrate: bool,
    /// Write every calibrated product whole and synced, as the jwst pipeline would, instead of
    /// run-internal products with only what the generators read (calibration.keep_products).
    #[arg(long = "keep-products", env = "MKREFS_KEEP_PRODUCTS")]
    pub keep_products: bool,
    /// Only bring the inputs to their calibration states (the products in ssbdir); make no
    /// reference file.
    #[arg(long = "calibrate-only", env = "MKREFS_CALIBRATE_ONLY")]
    pub calibrate_only: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct CleanArgs {
    /// Root of the output tree (overrides output.outrootdir).
    #[arg(long = "outrootdir", value_name = "DIR", env = "MKREFS_OUTROOTDIR")]
    pub outrootdir: Option<PathBuf>,
    /// Subdirectory of the root (overrides output.outsubdir).
    #[arg(long = "outsubdir", value_name = "NAME", env = "MKREFS_OUTSUBDIR")]
    pub outsubdir: Option<String>,
    /// Directory of calibrated products (overrides output.ssbdir).
    #[arg(long = "ssbdir", value_name = "DIR", env = "MKREFS_SSBDIR")]
    pub ssbdir: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Where the simulated data and the run go.
    #[arg(long, default_value = "mkrefs-demo", env = "MKREFS_DEMO_DIR")]
    pub dir: PathBuf,
    /// Frame size in pixels: a square NIRCam subarray at the detector corner (320 is SUB320).
    #[arg(long, default_value_t = 320, env = "MKREFS_DEMO_SIZE")]
    pub size: usize,
    /// Number of dark exposures.
    #[arg(long, default_value_t = 5, env = "MKREFS_DEMO_DARKS")]
    pub darks: usize,
    /// Number of flat exposures (for the bad-pixel mask).
    #[arg(long, default_value_t = 4, env = "MKREFS_DEMO_FLATS")]
    pub flats: usize,
    /// Jobs run at the same time.
    #[arg(short = 'j', long = "jobs", value_parser = at_least_one, env = "MKREFS_JOBS")]
    pub jobs: Option<usize>,
}

/// A count of at least 1 (jobs, threads), as the configuration's counts are checked.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a whole number of at least 1")),
    }
}

/// runIDNdigits: 1 to 9, as output.runIDNdigits in the configuration.
fn run_id_digits(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=9).contains(&n) => Ok(n),
        _ => Err(format!("'{text}' is not a number of digits from 1 to 9")),
    }
}

#[derive(Args, Debug, Clone)]
pub struct SimulateArgs {
    /// Output directory for the exposures and the truth file.
    #[arg(long, value_name = "DIR", env = "MKREFS_SIMULATE_OUT")]
    pub out: PathBuf,
    /// Number of dark exposures.
    #[arg(long, default_value_t = 5, env = "MKREFS_SIMULATE_DARKS")]
    pub darks: usize,
    /// Number of flat exposures.
    #[arg(long, default_value_t = 0, env = "MKREFS_SIMULATE_FLATS")]
    pub flats: usize,
    /// Frame size in pixels: the detector's full size (the default: 2048 for NIRCam, 4096 for
    /// IRIS1, from its instrument profile) is the full frame; smaller sizes are a square
    /// subarray at the detector corner (NIRCam names: SUB640, SUB320, SUB160, SUB64P).
    #[arg(long, env = "MKREFS_SIMULATE_SIZE")]
    pub size: Option<usize>,
    #[arg(long, default_value_t = 2, env = "MKREFS_SIMULATE_NINTS")]
    pub nints: usize,
    #[arg(long, default_value_t = 10, env = "MKREFS_SIMULATE_NGROUPS")]
    pub ngroups: usize,
    /// A DETECTOR value of any instrument profile (NRCA1, NRS1, MIRIMAGE, IRIS1, ...).
    #[arg(long, default_value = "NRCA1", env = "MKREFS_SIMULATE_DETECTOR")]
    pub detector: String,
    #[arg(long, default_value_t = 1, env = "MKREFS_SIMULATE_SEED")]
    pub seed: u64,
    /// Also write calibrated products synthesized from the truth: a comma list of jump, rate,
    /// rateints, fitopt, or `all` (the default when the option has no value).
    #[arg(long, value_name = "LIST", num_args = 0..=1, default_missing_value = "all", value_delimiter = ',', env = "MKREFS_SIMULATE_PRODUCTS")]
    pub products: Vec<String>,
    /// Write fitopt products with only what the bad-pixel search reads (PEDESTAL): much smaller
    /// for full frames, but not valid datamodels.
    #[arg(long, env = "MKREFS_SIMULATE_LEAN")]
    pub lean: bool,
    /// Also write the reference files the calibration steps read (mask, saturation,
    /// linearity, gain, readnoise, superbias: `sim_<reftype>_<detector>.fits`), from the truth,
    /// for running `mkrefs` on the uncal files with `reffile4ssb`.
    #[arg(long = "step-references", env = "MKREFS_SIMULATE_STEP_REFERENCES")]
    pub step_references: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RunJobArgs {
    /// The job file written by `mkrefs run`.
    pub job_file: PathBuf,
    /// Threads the generator may use.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Started by a batch system: stamp the job file, lock and record the products here (the
    /// submitting mkrefs is not there to).
    #[arg(long)]
    pub batch: bool,
}

const SUBCOMMANDS: &[&str] = &[
    "run",
    "plugins",
    "describe",
    "config",
    "demo",
    "simulate",
    "clean",
    "status",
    "run-job",
    "run-calibration",
    "run-combine",
    "probe-plugin",
    "help",
];

/// True if the command line's subcommand needs the generators: their parameters are options
/// of `run`, and `plugins`, `describe` and `demo` show or use them. Every other command
/// (`--version`, `simulate`, the job children, ...) runs without looking at a drop-in, so a
/// broken library cannot stop it.
pub fn needs_generators(argv: &[String]) -> bool {
    let argv = normalize_argv(argv.to_vec(), &Cli::command());
    let values = option_values(&Cli::command());
    let mut skip = 0usize;
    for arg in argv.iter().skip(1) {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if arg == "--" {
            return false;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            if !arg.contains('=') {
                skip = values.get(arg.as_str()).copied().unwrap_or(0);
            }
            continue;
        }
        return matches!(
            arg.as_str(),
            "run" | "plugins" | "describe" | "config" | "demo" | "help"
        );
    }
    false
}

/// Puts `run` right after the program name when the command makes reference files: when the
/// first positional word is `run`, or not a subcommand at all (upstream's `mkrefs readnoise
/// files...`). Every option then parses wherever it stands, before or after the words, as
/// upstream's parser took them (`mkrefs --outrootdir X superbias files`). `cmd` is the full
/// parser: it tells which options take values, so a value is never taken for a word.
pub fn normalize_argv(argv: Vec<String>, cmd: &Command) -> Vec<String> {
    let argv = join_optional_values(argv);
    let values = option_values(cmd);
    let mut skip = 0usize;
    for (i, arg) in argv.iter().enumerate().skip(1) {
        if skip > 0 {
            skip -= 1;
            continue;
        }
        if arg == "--" {
            break;
        }
        if arg.starts_with('-') && arg.len() > 1 {
            if !arg.contains('=') {
                skip = values.get(arg.as_str()).copied().unwrap_or(0);
            }
            continue;
        }
        if arg != "run" && SUBCOMMANDS.contains(&arg.as_str()) {
            return argv;
        }
        let mut out = Vec::with_capacity(argv.len() + 1);
        out.push(argv[0].clone());
        out.push("run".to_string());
        out.extend(
            argv.iter()
                .enumerate()
                .skip(1)
                .filter(|(j, a)| !(*j == i && *a == "run"))
                .map(|(_, a)| a.clone()),
        );
        return out;
    }
    argv
}

/// `--skip_runID_ssbdir` is a switch upstream and takes an optional `=BOOL` here; a separate
/// bool word after it (`--skip_runID_ssbdir false`, mkrefs' earlier form) is joined to it.
fn join_optional_values(argv: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter().peekable();
    while let Some(arg) = it.next() {
        let is_bool = |w: &String| {
            matches!(
                w.to_ascii_lowercase().as_str(),
                "true" | "false" | "yes" | "no" | "y" | "n" | "t" | "f" | "on" | "off" | "1" | "0"
            )
        };
        if arg == "--skip_runID_ssbdir" && it.peek().is_some_and(is_bool) {
            let value = it.next().unwrap_or_default();
            out.push(format!("{arg}={value}"));
        } else {
            out.push(arg);
        }
    }
    out
}

/// How many words each option of the program and of `run` takes as its value (`--pp` 3, `-p`
/// 2, `--outrootdir` 1, flags 0), by every spelling (`-c`, `--cfgfile`).
fn option_values(cmd: &Command) -> std::collections::HashMap<String, usize> {
    let mut cmd = cmd.clone();
    cmd.build();
    let run = cmd.find_subcommand("run").cloned();
    let mut out = std::collections::HashMap::new();
    for arg in cmd
        .get_arguments()
        .chain(run.iter().flat_map(|r| r.get_arguments()))
    {
        let n = if arg.get_action().takes_values() {
            arg.get_num_args().map_or(1, |r| r.min_values())
        } else {
            0
        };
        for long in arg.get_long_and_visible_aliases().into_iter().flatten() {
            out.insert(format!("--{long}"), n);
        }
        if let Some(aliases) = arg.get_all_aliases() {
            for long in aliases {
                out.insert(format!("--{long}"), n);
            }
        }
        if let Some(short) = arg.get_short() {
            out.insert(format!("-{short}"), n);
        }
    }
    out
}

/// The drop-in directories named on the command line, found before clap runs (the
/// generators must be discovered to build the full parser).
pub fn prescan_plugin_dirs(argv: &[String]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        if arg == "--plugin-dir" {
            if let Some(v) = it.next() {
                dirs.push(PathBuf::from(v));
            }
        } else if let Some(v) = arg.strip_prefix("--plugin-dir=") {
            dirs.push(PathBuf::from(v));
        }
    }
    dirs
}

/// The `-c/--cfgfile` of the command line, read before the full parse (as
/// [`prescan_plugin_dirs`]) for what discovery needs from the configuration.
pub fn prescan_cfgfile(argv: &[String]) -> Option<PathBuf> {
    let mut found = None;
    let mut it = argv.iter().skip(1);
    while let Some(arg) = it.next() {
        if arg == "--" {
            break;
        }
        if arg == "-c" || arg == "--cfgfile" {
            found = it.next().map(PathBuf::from);
        } else if let Some(v) = arg.strip_prefix("--cfgfile=") {
            found = Some(PathBuf::from(v));
        } else if let Some(v) = arg.strip_prefix("-c").filter(|v| !v.is_empty()) {
            found = Some(PathBuf::from(v.strip_prefix('=').unwrap_or(v)));
        }
    }
    found
}

fn param_arg_id(reflabel: Option<&str>, name: &str) -> String {
    match reflabel {
        Some(r) => format!("param:{r}.{name}"),
        None => format!("param:{name}"),
    }
}

/// Builds the full parser: the derived options plus every generator parameter on `run`.
pub fn command(registry: &Registry) -> Command {
    let cmd = Cli::command();
    cmd.mut_subcommand("run", |mut run| {
        let builtin: Vec<String> = run
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .chain(
                Cli::command()
                    .get_arguments()
                    .filter_map(|a| a.get_long().map(str::to_string)),
            )
            .collect();
        let mut plain_names: Vec<(String, String)> = Vec::new();
        for entry in registry.entries() {
            for spec in &entry.params {
                let name = spec.name.as_str();
                let long = format!("{}.{name}", entry.reflabel);
                run = run.arg(
                    Arg::new(param_arg_id(Some(&entry.reflabel), name))
                        .long(long)
                        .value_name(spec.kind.name().to_uppercase())
                        .num_args(1)
                        .allow_hyphen_values(true)
                        .hide(true)
                        .help(format!("{} ({})", spec.help, entry.reflabel)),
                );
                match plain_names.iter_mut().find(|(n, _)| n == name) {
                    Some((_, owners)) => {
                        owners.push_str(", ");
                        owners.push_str(&entry.reflabel);
                    }
                    None => plain_names.push((name.to_string(), entry.reflabel.clone())),
                }
            }
        }
        for (name, owners) in plain_names {
            if builtin.contains(&name) {
                continue; // reachable as --<reflabel>.<name> only
            }
            run = run.arg(
                Arg::new(param_arg_id(None, &name))
                    .long(name.clone())
                    .value_name("VALUE")
                    .num_args(1)
                    .allow_hyphen_values(true)
                    .help_heading("Generator parameters (also as --<reflabel>.<name>)")
                    .help(format!("Parameter of {owners}; see `mkrefs describe`")),
            );
        }
        run
    })
}

/// Parses the command line into the derived options and the generator parameters.
pub fn parse(argv: Vec<String>, registry: &Registry) -> Result<(Cli, Vec<CliParam>), clap::Error> {
    let mut cmd = command(registry);
    let argv = normalize_argv(argv, &cmd);
    if argv.get(1).is_some_and(|a| a == "run")
        && let Some(message) = unknown_reflabel_option(&argv, registry)
    {
        return Err(cmd.error(clap::error::ErrorKind::UnknownArgument, message));
    }
    let matches = cmd.try_get_matches_from(argv)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let params = match matches.subcommand() {
        Some(("run", sub)) => param_args(sub),
        _ => Vec::new(),
    };
    Ok((cli, params))
}

/// A `--<reflabel>.<name>` option whose reflabel no generator has. clap would call it an
/// unexpected argument at best; this names the reflabel and the closest one.
fn unknown_reflabel_option(argv: &[String], registry: &Registry) -> Option<String> {
    let labels: Vec<&str> = registry
        .entries()
        .iter()
        .map(|e| e.reflabel.as_str())
        .chain(registry.broken().iter().map(|b| b.reflabel.as_str()))
        .collect();
    for arg in argv.iter().skip(1).take_while(|a| *a != "--") {
        let Some(option) = arg.strip_prefix("--") else {
            continue;
        };
        let option = option.split('=').next().unwrap_or(option);
        let Some((reflabel, name)) = option.split_once('.') else {
            continue;
        };
        if reflabel.is_empty() || name.is_empty() || labels.contains(&reflabel) {
            continue;
        }
        let hint = match suggest(reflabel, labels.iter().copied()) {
            Some(s) => format!(" (did you mean '{s}'? then --{s}.{name})"),
            None => format!("; generators: {}", labels.join(", ")),
        };
        return Some(format!(
            "unknown option --{option}: no generator has the reflabel '{reflabel}'{hint}; \
             generator parameters are --<reflabel>.<name> (see `mkrefs describe <reflabel>`)"
        ));
    }
    None
}

fn param_args(matches: &ArgMatches) -> Vec<CliParam> {
    let mut out = Vec::new();
    for id in matches.ids() {
        let id = id.as_str();
        let Some(key) = id.strip_prefix("param:") else {
            continue;
        };
        let Ok(Some(value)) = matches.try_get_one::<String>(id) else {
            continue;
        };
        out.push(CliParam::from_option(key, value));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README, Commands: every option of every user-facing command can come from the
    /// environment, except those taking several words (-p, --pall, --pp) and -c, which has
    /// MKREFS_CONFIG.
    #[test]
    fn every_option_has_an_environment_variable() {
        fn walk(cmd: &Command, missing: &mut Vec<String>) {
            for a in cmd.get_arguments() {
                let Some(long) = a.get_long() else { continue };
                let exempt = ["params", "pall", "pp", "cfgfile", "help", "version"];
                if a.get_env().is_none() && !exempt.contains(&long) && !a.is_hide_set() {
                    missing.push(format!("{} --{long}", cmd.get_name()));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "options without env: {missing:?}");
    }

    fn v(words: &[&str]) -> Vec<String> {
        words.iter().map(|s| s.to_string()).collect()
    }

    fn normalized(words: &[&str]) -> Vec<String> {
        normalize_argv(v(words), &Cli::command())
    }

    #[test]
    fn run_comes_first_so_options_may_stand_anywhere() {
        assert_eq!(
            normalized(&["mkrefs", "-c", "x.yaml", "readnoise", "a.fits"]),
            v(&["mkrefs", "run", "-c", "x.yaml", "readnoise", "a.fits"])
        );
        assert_eq!(
            normalized(&["mkrefs", "-p", "k", "v", "readnoise"]),
            v(&["mkrefs", "run", "-p", "k", "v", "readnoise"])
        );
        // A run option before the reflabel, and its value that names a subcommand.
        assert_eq!(
            normalized(&["mkrefs", "--outrootdir", "demo", "superbias", "a.fits"]),
            v(&[
                "mkrefs",
                "run",
                "--outrootdir",
                "demo",
                "superbias",
                "a.fits"
            ])
        );
        assert_eq!(
            normalized(&["mkrefs", "-q", "run", "superbias", "--force", "a.fits"]),
            v(&["mkrefs", "run", "-q", "superbias", "--force", "a.fits"])
        );
        assert_eq!(
            normalized(&["mkrefs", "plugins"]),
            v(&["mkrefs", "plugins"])
        );
        assert_eq!(
            normalized(&["mkrefs", "-v", "describe", "dark"]),
            v(&["mkrefs", "-v", "describe", "dark"])
        );
        assert_eq!(normalized(&["mkrefs", "-v"]), v(&["mkrefs", "-v"]));
    }

    #[test]
    fn only_commands_that_use_generators_load_them() {
        for words in [
            &["mkrefs", "readnoise", "a.fits"][..],
            &["mkrefs", "-c", "x.yaml", "run", "readnoise"],
            &["mkrefs", "--plugin-dir", "/p", "plugins"],
            &["mkrefs", "describe", "dark"],
            &["mkrefs", "help", "run"],
        ] {
            assert!(needs_generators(&v(words)), "{words:?}");
        }
        for words in [
            &["mkrefs", "--version"][..],
            &["mkrefs"],
            &["mkrefs", "--plugin-dir", "/p", "simulate", "--out", "x"],
            &["mkrefs", "run-job", "j.json"],
            &["mkrefs", "probe-plugin", "/p/libmkref_x.so"],
        ] {
            assert!(!needs_generators(&v(words)), "{words:?}");
        }
    }

    #[test]
    fn plugin_dirs_are_found_before_parsing() {
        assert_eq!(
            prescan_plugin_dirs(&v(&[
                "mkrefs",
                "--plugin-dir",
                "/a",
                "run",
                "--plugin-dir=/b"
            ])),
            vec![PathBuf::from("/a"), PathBuf::from("/b")]
        );
    }
}
