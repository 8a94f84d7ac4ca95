//! Configuration: YAML files with the keys of upstream's `mkrefs.cfg`, command-line overrides,
//! environment expansion, typed settings, reflabel selection and generator parameters.
//!
//! Order of operations (later wins), as upstream (UPSTREAM.md, "Configuration") but without its bugs:
//!
//! 1. the main config: `-c`, else `$MKREFS_CONFIG`, else `$JWST_MKREFS_CONFIGFILE`, else the
//!    embedded `configs/mkrefs.yaml`; framework keys it lacks come from built-in defaults, so
//!    an upstream `mkrefs.cfg` loads as it is;
//! 2. each `-e` file in order ([`load::merge_extra`] has the rules);
//! 3. every `-p key value`, then every `--pall key value`, then every `--pp section key value`;
//! 4. `$NAME`/`${NAME}` expansion over every string, lists included ([`envsubst`]).
//!
//! In files and on the command line, `None`/`none` mean null like `null` and `~` (upstream's
//! PyYAML read `None` as the string "None", which each consumer then special-cased).
//!
//! Generator parameters are resolved per reflabel afterwards by [`resolve_params`]: generator
//! default < config section < command line.

pub(crate) mod aliases;
pub(crate) mod constraints;
pub(crate) mod early;
pub(crate) mod envsubst;
pub(crate) mod error;
pub(crate) mod load;
pub(crate) mod overrides;
pub(crate) mod params;
pub(crate) mod provenance;
pub(crate) mod reflabels;
pub(crate) mod settings;
pub(crate) mod tree;
pub(crate) mod value;

use std::path::PathBuf;

pub(crate) use error::Result;
pub(crate) use params::{CliParam, check_pall, resolve_params, route_cli_params};
pub(crate) use provenance::Provenance;
pub(crate) use reflabels::{
    check_config_reflabels, is_reflabel_token, resolve_reflabels, suggest_reflabel,
};
pub(crate) use settings::{Backend, RunIdSetting, Settings};

/// The configuration-related command-line options, as parsed by the CLI.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// `-c/--cfgfile`.
    pub cfgfile: Option<PathBuf>,
    /// `-e/--extracfgfile`, in command-line order.
    pub extra_cfgfiles: Vec<PathBuf>,
    /// `-p key value`, in order.
    pub params: Vec<(String, String)>,
    /// `--pall key value`, in order.
    pub pall: Vec<(String, String)>,
    /// `--pp section key value`, in order.
    pub pp: Vec<(String, String, String)>,
}

/// Reads the process environment; tests pass their own lookup instead.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Loads, merges, overrides and expands the configuration and reads the typed settings.
pub fn load(opts: &LoadOptions, env: &dyn Fn(&str) -> Option<String>) -> Result<Settings> {
    let main = load::choose_main_config(opts.cfgfile.as_deref(), env);
    let mut tree = load::read_main(&main)?;
    load::merge_extra_files(&mut tree, &opts.extra_cfgfiles)?;
    for (key, raw) in &opts.params {
        overrides::apply_param(&mut tree, key, raw)?;
    }
    let mut pall = Vec::with_capacity(opts.pall.len());
    for (key, raw) in &opts.pall {
        pall.push(overrides::apply_pall(&mut tree, key, raw)?);
    }
    for (section, key, raw) in &opts.pp {
        overrides::apply_pp(&mut tree, section, key, raw)?;
    }
    envsubst::expand_tree(&mut tree, "", env)?;
    for p in &mut pall {
        envsubst::expand_tree(&mut p.value, &format!("--pall {}", p.key), env)?;
    }
    Settings::from_tree(tree, pall)
}

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod tests;
