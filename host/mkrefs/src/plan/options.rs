//! What the command line decides about a run, as plain values: the planning stages never see
//! the command-line parser (`commands::run` fills this in from its arguments).

use std::path::PathBuf;

use crate::config::{Backend, CliParam, RunIdSetting, Settings};
use crate::layout::{OutputOptions, RunIdChoice};

/// The options of one run.
#[derive(Clone, Debug, Default)]
pub(crate) struct RunOptions {
    /// Positional words: reflabels and inputs.
    pub items: Vec<String>,
    /// Generator parameters given as `--name value` or `--reflabel.name value`.
    pub params: Vec<CliParam>,
    pub output: OutputOverrides,
    /// `--backend`; `None` takes `calibration.backend`.
    pub backend: Option<Backend>,
    /// Remake calibrated products instead of using existing ones.
    pub recalibrate: bool,
    /// `--keep-products`: every calibrated product whole (or `calibration.keep_products`).
    pub keep_products: bool,
    /// Make the calibrated products only (and the reference files they need).
    pub calibrate_only: bool,
}

/// Command-line values of the `output` section; `None` keeps the configured value.
#[derive(Clone, Debug, Default)]
pub(crate) struct OutputOverrides {
    pub outrootdir: Option<PathBuf>,
    pub outsubdir: Option<String>,
    /// `--runID` as given (`AUTO` or a number).
    pub run_id: Option<String>,
    pub run_id_ndigits: Option<usize>,
    pub new_run_id: bool,
    pub ssbdir: Option<PathBuf>,
    pub skip_run_id_ssbdir: Option<bool>,
    pub addsuffix: Option<String>,
}

impl OutputOverrides {
    /// The output options: config values overridden by the command line. Every name that
    /// becomes a directory or file name inside the output root must stay inside it.
    pub(crate) fn resolve(&self, settings: &Settings) -> Result<OutputOptions, String> {
        let out = &settings.output;
        let run_id = match &self.run_id {
            Some(text) => RunIdChoice::parse(text)?,
            None => match out.run_id {
                RunIdSetting::Auto => RunIdChoice::Auto,
                RunIdSetting::Number(n) => RunIdChoice::Fixed(n),
                RunIdSetting::None => RunIdChoice::None,
            },
        };
        if self.new_run_id && run_id != RunIdChoice::Auto {
            return Err(format!(
                "-n/--newrunID starts a new run after the latest one, which needs runID AUTO, \
                 but the runID is {}; leave -n out, or use --runID AUTO",
                match run_id {
                    RunIdChoice::Fixed(n) => n.to_string(),
                    _ => "empty (no run directory level)".to_string(),
                }
            ));
        }
        let outrootdir = match &self.outrootdir {
            Some(dir) => dir.clone(),
            None if out.outrootdir.trim().is_empty() => {
                return Err(
                    "output.outrootdir is empty: set it in the config or pass --outrootdir DIR"
                        .to_string(),
                );
            }
            None => PathBuf::from(&out.outrootdir),
        };
        let outsubdir = self.outsubdir.clone().or_else(|| out.outsubdir.clone());
        if let Some(sub) = &outsubdir {
            plain_name(sub, "outsubdir")?;
        }
        Ok(OutputOptions {
            outrootdir,
            outsubdir,
            run_id,
            run_id_ndigits: self.run_id_ndigits.unwrap_or(out.run_id_ndigits),
            new_run_id: self.new_run_id,
            ssbdir: self.ssbdir.clone().or_else(|| {
                out.ssbdir
                    .as_ref()
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
            }),
            skip_run_id_ssbdir: self.skip_run_id_ssbdir.unwrap_or(out.skip_runid_ssbdir),
            addsuffix: checked_suffix(self.addsuffix.as_ref().or(out.addsuffix.as_ref()))?,
        })
    }
}

/// `addsuffix` becomes part of file names: one word, no path.
fn checked_suffix(suffix: Option<&String>) -> Result<Option<String>, String> {
    let Some(s) = suffix.map(|s| s.trim()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    plain_name(s, "addsuffix")?;
    Ok(Some(s.to_string()))
}

/// A name mkrefs puts into a path below the output root (outsubdir, addsuffix, a reflabel, a
/// reftype) must not lead out of it: one plain word, no separator, not `.` or `..`.
pub(crate) fn plain_name(name: &str, what: &str) -> Result<(), String> {
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(format!(
            "{what} '{name}' is not a plain name: it becomes a directory or file name inside \
             the output root, so it may not be empty, contain a path separator, or be '.' or \
             '..'; choose a plain name (use --outrootdir to write somewhere else)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_may_become_path_components() {
        for good in ["test1", "bpm", "MASK", "v1.2", "a_b-c"] {
            assert!(plain_name(good, "x").is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "../up", "/abs", "a/b", "a\\b", "nul\0"] {
            let err = plain_name(bad, "reftype of generator g").unwrap_err();
            assert!(
                err.starts_with(&format!(
                    "reftype of generator g '{bad}' is not a plain name"
                )),
                "{err}"
            );
        }
    }
}
