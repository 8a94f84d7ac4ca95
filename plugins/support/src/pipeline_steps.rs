//! The calwebb_detector1 steps: names, S_* status keywords and each instrument's order. One
//! place for what the host (ssbsteps, product states) and the native engine both need.

use std::fmt;

/// One calwebb_detector1 step. The derived order is upstream's documentation order
/// (`PIPE_STEPS`), with the MIRI steps upstream did not know (emicorr, reset) placed where MIRI
/// runs them; use [`crate::geometry::Instrument::steps`] (from the instrument's profile) for an instrument's real order (MIRI runs refpix after
/// dark_current).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    GroupScale,
    DqInit,
    /// MIRI electromagnetic-interference correction (jwst `EmiCorrStep`, MIRI only).
    Emicorr,
    Saturation,
    Ipc,
    FirstFrame,
    LastFrame,
    /// MIRI reset anomaly correction (jwst `ResetStep`, MIRI only).
    Reset,
    Superbias,
    Refpix,
    Linearity,
    Persistence,
    Rscd,
    DarkCurrent,
    Jump,
    /// Ramp fitting (`ramp_fit` in the jwst pipeline).
    Rate,
}

impl Step {
    pub const ALL: [Step; 16] = [
        Step::GroupScale,
        Step::DqInit,
        Step::Emicorr,
        Step::Saturation,
        Step::Ipc,
        Step::FirstFrame,
        Step::LastFrame,
        Step::Reset,
        Step::Superbias,
        Step::Refpix,
        Step::Linearity,
        Step::Persistence,
        Step::Rscd,
        Step::DarkCurrent,
        Step::Jump,
        Step::Rate,
    ];

    /// The name used in `ssbsteps` and in product names (`rate` for ramp fitting).
    pub fn name(self) -> &'static str {
        match self {
            Step::GroupScale => "group_scale",
            Step::DqInit => "dq_init",
            Step::Emicorr => "emicorr",
            Step::Saturation => "saturation",
            Step::Ipc => "ipc",
            Step::FirstFrame => "firstframe",
            Step::LastFrame => "lastframe",
            Step::Reset => "reset",
            Step::Superbias => "superbias",
            Step::Refpix => "refpix",
            Step::Linearity => "linearity",
            Step::Persistence => "persistence",
            Step::Rscd => "rscd",
            Step::DarkCurrent => "dark_current",
            Step::Jump => "jump",
            Step::Rate => "rate",
        }
    }

    /// The step's name in the jwst pipeline (`strun ... --steps.<name>.skip=True`).
    pub fn pipeline_name(self) -> &'static str {
        match self {
            Step::Rate => "ramp_fit",
            other => other.name(),
        }
    }

    /// The primary-header keyword whose value `COMPLETE` says the step was done (emicorr
    /// and reset as stdatamodels' `meta.cal_step` schema names them).
    pub fn keyword(self) -> &'static str {
        match self {
            Step::GroupScale => "S_GRPSCL",
            Step::DqInit => "S_DQINIT",
            Step::Emicorr => "S_MIREMI",
            Step::Saturation => "S_SATURA",
            Step::Ipc => "S_IPC",
            Step::FirstFrame => "S_FRSTFR",
            Step::LastFrame => "S_LASTFR",
            Step::Reset => "S_RESET",
            Step::Superbias => "S_SUPERB",
            Step::Refpix => "S_REFPIX",
            Step::Linearity => "S_LINEAR",
            Step::Persistence => "S_PERSIS",
            Step::Rscd => "S_RSCD",
            Step::DarkCurrent => "S_DARK",
            Step::Jump => "S_JUMP",
            Step::Rate => "S_RAMP",
        }
    }

    /// Case-insensitive; `ramp_fit` is an alias of `rate`.
    pub fn from_name(name: &str) -> Option<Step> {
        let name = name.trim();
        if name.eq_ignore_ascii_case("ramp_fit") {
            return Some(Step::Rate);
        }
        Step::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
