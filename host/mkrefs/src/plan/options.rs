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
    /// The output options: config values overridden by the command line.
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
        Ok(OutputOptions {
            outrootdir,
            outsubdir: self.outsubdir.clone().or_else(|| out.outsubdir.clone()),
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
    if s.contains(['/', '\\']) || s == "." || s == ".." {
        return Err(format!(
            "addsuffix '{s}' is not a file-name word: it is added to reference-file names, so \
             it may not contain a path separator or be '.' or '..'"
        ));
    }
    Ok(Some(s.to_string()))
}
