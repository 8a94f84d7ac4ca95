//! The instrument of a run: its pipeline steps and product names depend on it.

use std::path::Path;

use crate::config::Settings;
use crate::inputs::read::InputRow;
use crate::prep::steps::{self, Instrument};

/// The instrument: from the config, else from the inputs; every input must agree.
pub(crate) fn instrument_of(settings: &Settings, rows: &[InputRow]) -> Result<Instrument, String> {
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
                "{}: INSTRUME '{name}' is not an instrument of any profile ({}); add a profile \
                 for it (README, Instrument profiles)",
                row.path.display(),
                Instrument::known_names()
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
