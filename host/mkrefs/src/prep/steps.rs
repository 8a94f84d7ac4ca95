//! The calwebb_detector1 steps per instrument and the `ssbsteps` syntax (UPSTREAM.md,
//! "Calibration state"); `ssb_save_steps` is read by `prep::reads`.
//!
//! Differences from upstream, on purpose:
//! - `X+` works (upstream calls a removed function): it means "calibrated up to and including X,
//!   then ramp-fitted" (see [`expand_ssbsteps`]).
//! - `X-` and `X+` may be items of a comma list (`refpix-, jump`); upstream only allowed a
//!   whole value ending in `-`.
//! - Null, empty and the string `none` all mean "no steps" (the raw input); upstream crashed on
//!   null and rejected the empty string.
//! - `ramp_fit` is accepted wherever `rate` is.

use std::collections::BTreeSet;
use std::fmt;

pub use mkrefs_support::geometry::Instrument;

/// Parses a configured instrument name, case-insensitively (upstream lower-cases it).
pub fn parse_instrument(s: &str) -> Result<Instrument, String> {
    Instrument::from_header(s.trim()).ok_or_else(|| {
        format!(
            "'{s}' is not an instrument of any profile: use one of {} (README, Instrument \
             profiles)",
            Instrument::known_names()
        )
    })
}

pub use mkrefs_support::pipeline_steps::Step;

/// The steps, without duplicates, in the instrument's pipeline order. Steps the instrument does
/// not run (possible only from odd headers) come last, in [`Step`] order.
pub fn in_pipeline_order(
    steps: impl IntoIterator<Item = Step>,
    instrument: Instrument,
) -> Vec<Step> {
    let mut steps: Vec<Step> = steps
        .into_iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    steps.sort_by_key(|s| (instrument.position(*s).unwrap_or(usize::MAX), *s));
    steps
}

/// `a, b, c` for messages.
pub fn join_steps(steps: &[Step]) -> String {
    steps
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// True for the values that mean "nothing": null, empty, and the YAML-gotcha string `None`.
pub(crate) fn is_none_spec(spec: Option<&str>) -> bool {
    match spec {
        None => true,
        Some(s) => {
            let s = s.trim();
            s.is_empty() || s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("null")
        }
    }
}

/// Expands an `ssbsteps` value into the required steps, in pipeline order.
///
/// The value is a comma list; each item is one of
/// - a step name (case-insensitive; `ramp_fit` = `rate`);
/// - `X-`: every step from the start of the pipeline **up to and including** X (upstream's meaning
///   since PR #27; it includes group_scale and ipc);
/// - `X+`: `X-` **plus the ramp fit** (`jump` and `rate`): slopes of data calibrated only up to
///   X. This is what bad-pixel and noise work on darks needs, e.g. NIRCam `linearity+` gives rate
///   files without persistence or dark subtraction. `jump+` and `rate+` equal `rate-`.
///
/// Items are combined as a set, so order and repeats do not matter. Null, empty or `none` means
/// no steps: the raw exposure.
pub fn expand_ssbsteps(spec: Option<&str>, instrument: Instrument) -> Result<Vec<Step>, String> {
    if is_none_spec(spec) {
        return Ok(Vec::new());
    }
    let spec = spec.unwrap_or_default();
    let mut steps = BTreeSet::new();
    for raw_item in spec.split(',') {
        let item = raw_item.trim();
        if item.is_empty() {
            return Err(format!(
                "ssbsteps '{spec}' has an empty item: separate step names with single commas"
            ));
        }
        let (name, shorthand) = match item.as_bytes()[item.len() - 1] {
            b'-' => (item[..item.len() - 1].trim(), Some('-')),
            b'+' => (item[..item.len() - 1].trim(), Some('+')),
            _ => (item, None),
        };
        let step = instrument_step(name, instrument, "ssbsteps", spec)?;
        match shorthand {
            None => {
                steps.insert(step);
            }
            Some(sign) => {
                // instrument_step guarantees the step is in the list.
                let end = instrument.position(step).unwrap_or(0);
                steps.extend(instrument.steps()[..=end].iter().copied());
                if sign == '+' {
                    steps.insert(Step::Jump);
                    steps.insert(Step::Rate);
                }
            }
        }
    }
    Ok(in_pipeline_order(steps, instrument))
}

/// Looks a name up among the instrument's steps, with a did-you-mean on failure.
fn instrument_step(
    name: &str,
    instrument: Instrument,
    what: &str,
    spec: &str,
) -> Result<Step, String> {
    match Step::from_name(name) {
        Some(step) if instrument.position(step).is_some() => Ok(step),
        Some(step) => Err(format!(
            "{what} '{spec}': {step} is not a {instrument} pipeline step; the {instrument} steps are: {}",
            instrument.step_names()
        )),
        None => {
            let mut candidates: Vec<&str> = instrument.steps().iter().map(|s| s.name()).collect();
            candidates.push("ramp_fit");
            Err(format!(
                "{what} '{spec}': unknown pipeline step '{name}'{}; the {instrument} steps are: {}",
                did_you_mean(name, &candidates),
                instrument.step_names()
            ))
        }
    }
}

/// ` (did you mean 'x'?)` when a candidate is close, else empty.
pub(crate) fn did_you_mean(name: &str, candidates: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(&lower, c), *c))
        .min();
    match best {
        Some((dist, c)) if dist <= (c.len() / 3).max(2) => format!(" (did you mean '{c}'?)"),
        _ => String::new(),
    }
}

/// An intermediate product to keep (`ssb_save_steps`): the output of a step, or one of ramp
/// fitting's side products.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SaveProduct {
    /// The output of this step (`rate`: the slope image).
    Step(Step),
    /// Per-integration slopes, made by ramp fitting.
    Rateints,
    /// The optional ramp-fit outputs (pedestal, ...), made by ramp fitting.
    Fitopt,
}

impl SaveProduct {
    /// The step that writes this product.
    pub fn producing_step(self) -> Step {
        match self {
            SaveProduct::Step(s) => s,
            SaveProduct::Rateints | SaveProduct::Fitopt => Step::Rate,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaveProduct::Step(s) => s.name(),
            SaveProduct::Rateints => "rateints",
            SaveProduct::Fitopt => "fitopt",
        }
    }

    /// The inverse of [`SaveProduct::name`] (any case; `ramp_fit` is `rate`).
    pub fn parse(name: &str) -> Option<SaveProduct> {
        match name.trim().to_ascii_lowercase().as_str() {
            "rateints" => Some(SaveProduct::Rateints),
            "fitopt" => Some(SaveProduct::Fitopt),
            other => Step::from_name(other).map(SaveProduct::Step),
        }
    }
}

impl fmt::Display for SaveProduct {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl SaveProduct {
    /// Parses one `ssb_save_steps` product name (a step of the instrument, `fitopt` or
    /// `rateints`); `spec` is the whole value, for the message.
    pub(crate) fn parse_item(
        item: &str,
        spec: &str,
        instrument: Instrument,
    ) -> Result<SaveProduct, String> {
        if item.eq_ignore_ascii_case("fitopt") {
            return Ok(SaveProduct::Fitopt);
        }
        if item.eq_ignore_ascii_case("rateints") {
            return Ok(SaveProduct::Rateints);
        }
        match Step::from_name(item) {
            Some(step) if instrument.position(step).is_some() => Ok(SaveProduct::Step(step)),
            _ => {
                let mut candidates: Vec<&str> =
                    instrument.steps().iter().map(|s| s.name()).collect();
                candidates.extend(["ramp_fit", "fitopt", "rateints"]);
                Err(format!(
                    "ssb_save_steps '{spec}': unknown product '{item}'{}; use {instrument} step names ({}) or fitopt, rateints",
                    did_you_mean(item, &candidates),
                    instrument.step_names()
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    #[test]
    fn step_lists_per_instrument() {
        assert_eq!(Instrument::NirCam.steps().len(), 11);
        assert_eq!(Instrument::NirIss.steps(), Instrument::NirCam.steps());
        assert_eq!(Instrument::Fgs.steps(), Instrument::NirCam.steps());
        assert_eq!(Instrument::NirSpec.steps().len(), 10);
        assert!(!Instrument::NirSpec.steps().contains(&Persistence));
        let miri = Instrument::Miri.steps();
        assert_eq!(miri.len(), 14);
        assert!(!miri.contains(&Superbias) && !miri.contains(&Persistence));
        assert!(
            Instrument::Miri.position(Refpix).unwrap()
                > Instrument::Miri.position(DarkCurrent).unwrap()
        );
        assert_eq!(miri.last(), Some(&Rate));
        // jwst 3.0.0's Detector1Pipeline order for MIRI, up to ramp fitting.
        assert_eq!(
            miri,
            [
                GroupScale,
                DqInit,
                Emicorr,
                Saturation,
                Ipc,
                FirstFrame,
                LastFrame,
                Reset,
                Linearity,
                Rscd,
                DarkCurrent,
                Refpix,
                Jump,
                Rate
            ]
        );
        assert!(!Instrument::NirCam.steps().contains(&Emicorr));
        assert!(!Instrument::NirSpec.steps().contains(&Reset));
    }

    #[test]
    fn instrument_parse_is_case_insensitive() {
        assert_eq!(parse_instrument("nircam"), Ok(Instrument::NirCam));
        assert_eq!(parse_instrument(" MIRI "), Ok(Instrument::Miri));
        let err = parse_instrument("nircma").unwrap_err();
        assert!(err.contains("NIRCam, NIRISS, NIRSpec, MIRI, FGS"), "{err}");
    }

    #[test]
    fn keywords_match_spec_map() {
        let expected = [
            ("S_GRPSCL", GroupScale),
            ("S_DQINIT", DqInit),
            ("S_SATURA", Saturation),
            ("S_REFPIX", Refpix),
            ("S_SUPERB", Superbias),
            ("S_IPC", Ipc),
            ("S_PERSIS", Persistence),
            ("S_DARK", DarkCurrent),
            ("S_LINEAR", Linearity),
            ("S_FRSTFR", FirstFrame),
            ("S_LASTFR", LastFrame),
            ("S_RSCD", Rscd),
            ("S_MIREMI", Emicorr),
            ("S_RESET", Reset),
            ("S_JUMP", Jump),
            ("S_RAMP", Rate),
        ];
        for (kw, step) in expected {
            assert_eq!(step.keyword(), kw);
        }
        assert_eq!(Rate.pipeline_name(), "ramp_fit");
        assert_eq!(Step::from_name("RAMP_FIT"), Some(Rate));
        assert_eq!(Step::from_name("Dq_Init"), Some(DqInit));
    }

    #[test]
    fn list_in_any_order_comes_back_in_pipeline_order() {
        let got = expand_ssbsteps(
            Some("jump, DQ_INIT,saturation , dq_init"),
            Instrument::NirCam,
        );
        assert_eq!(got, Ok(vec![DqInit, Saturation, Jump]));
        // The mkrefs.cfg dark section.
        let got = expand_ssbsteps(
            Some("dq_init, saturation, superbias, refpix, linearity, jump"),
            Instrument::NirCam,
        );
        assert_eq!(
            got,
            Ok(vec![DqInit, Saturation, Superbias, Refpix, Linearity, Jump])
        );
        // MIRI order: refpix after dark_current.
        let got = expand_ssbsteps(Some("refpix, dark_current, ramp_fit"), Instrument::Miri);
        assert_eq!(got, Ok(vec![DarkCurrent, Refpix, Rate]));
    }

    #[test]
    fn minus_means_up_to_and_including() {
        // Upstream's documented example.
        assert_eq!(
            expand_ssbsteps(Some("refpix-"), Instrument::NirCam),
            Ok(vec![GroupScale, DqInit, Saturation, Ipc, Superbias, Refpix])
        );
        assert_eq!(
            expand_ssbsteps(Some("rate-"), Instrument::NirCam).unwrap(),
            Instrument::NirCam.steps()
        );
        assert_eq!(
            expand_ssbsteps(Some("ramp_fit-"), Instrument::NirSpec).unwrap(),
            Instrument::NirSpec.steps()
        );
        // MIRI refpix- includes dark_current, which runs before refpix there.
        assert_eq!(
            expand_ssbsteps(Some("refpix-"), Instrument::Miri).unwrap(),
            &Instrument::Miri.steps()[..12]
        );
        assert_eq!(
            expand_ssbsteps(Some("DQ_INIT-"), Instrument::NirCam),
            Ok(vec![GroupScale, DqInit])
        );
    }

    #[test]
    fn plus_means_up_to_x_then_ramp_fit() {
        assert_eq!(
            expand_ssbsteps(Some("linearity+"), Instrument::NirCam),
            Ok(vec![
                GroupScale, DqInit, Saturation, Ipc, Superbias, Refpix, Linearity, Jump, Rate
            ])
        );
        assert_eq!(
            expand_ssbsteps(Some("saturation+"), Instrument::Miri),
            Ok(vec![GroupScale, DqInit, Emicorr, Saturation, Jump, Rate])
        );
        assert_eq!(
            expand_ssbsteps(Some("jump+"), Instrument::NirCam),
            expand_ssbsteps(Some("rate-"), Instrument::NirCam)
        );
        assert_ne!(
            expand_ssbsteps(Some("refpix+"), Instrument::NirCam),
            expand_ssbsteps(Some("refpix-"), Instrument::NirCam)
        );
    }

    #[test]
    fn shorthands_combine_with_names() {
        assert_eq!(
            expand_ssbsteps(Some("dq_init-, jump"), Instrument::NirCam),
            Ok(vec![GroupScale, DqInit, Jump])
        );
    }

    #[test]
    fn none_means_raw() {
        for spec in [
            None,
            Some(""),
            Some("  "),
            Some("None"),
            Some("none"),
            Some("null"),
        ] {
            assert_eq!(
                expand_ssbsteps(spec, Instrument::NirCam),
                Ok(vec![]),
                "{spec:?}"
            );
        }
    }

    #[test]
    fn unknown_steps_are_named_with_suggestion() {
        let err = expand_ssbsteps(Some("dq_init, saturaton"), Instrument::NirCam).unwrap_err();
        assert!(err.contains("'saturaton'"), "{err}");
        assert!(err.contains("did you mean 'saturation'"), "{err}");
        assert!(err.contains("group_scale, dq_init"), "{err}");
        // upstream's stale MIRI config used `slope-`.
        let err = expand_ssbsteps(Some("slope-"), Instrument::Miri).unwrap_err();
        assert!(err.contains("'slope'"), "{err}");
        // A real step, wrong instrument.
        let err = expand_ssbsteps(Some("superbias"), Instrument::Miri).unwrap_err();
        assert!(
            err.contains("superbias is not a MIRI pipeline step"),
            "{err}"
        );
        let err = expand_ssbsteps(Some("firstframe-"), Instrument::NirCam).unwrap_err();
        assert!(err.contains("firstframe is not a NIRCAM"), "{err}");
        let err = expand_ssbsteps(Some("dq_init,,jump"), Instrument::NirCam).unwrap_err();
        assert!(err.contains("empty item"), "{err}");
        assert!(expand_ssbsteps(Some("-"), Instrument::NirCam).is_err());
    }

    #[test]
    fn pipeline_order_puts_foreign_steps_last() {
        assert_eq!(
            in_pipeline_order([Rate, Superbias, DqInit, Superbias], Instrument::Miri),
            vec![DqInit, Rate, Superbias]
        );
    }
}
