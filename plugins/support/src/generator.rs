//! What every generator's glue to the host would repeat, written once: a generator implements
//! [`Generator`] with plain Rust types, and [`Exported`] makes it the ABI's
//! `ReferenceGenerator` (the orphan rule forbids a blanket implementation):
//!
//! ```ignore
//! mkrefs_plugin_api::export_generator!(Exported(MyGenerator));
//! ```

use std::path::PathBuf;

use mkrefs_plugin_api::{
    CombineRule, GeneratorError, GeneratorInfo, Job, JobReport, ParamBound, ParamConstraints,
    ParamKind, ParamScalar, ParamSpec, ParamValue, ReferenceGenerator,
};

use crate::job::JobView;
use crate::params::{Bound, Declare, Kind, Scalar, Spec, Value, specs};

/// A reference-file generator.
pub trait Generator: Send + Sync + 'static {
    /// The label users select it by (`readnoise`, ...); also its configuration section.
    const REFLABEL: &'static str;
    /// The CRDS reference type it writes (`READNOISE`, `MASK`, ...).
    const REFTYPE: &'static str;
    /// What `mkrefs describe` prints: the algorithm and its differences from upstream.
    const DESCRIPTION: &'static str;
    /// The generator's own version: `env!("CARGO_PKG_VERSION")` in its crate.
    const VERSION: &'static str;
    /// Grouping when the configuration gives none (`D`, `D+`, `DF+`, ...).
    const DEFAULT_IMTYPES: &'static str;
    /// Calibration state of the inputs when the configuration gives none (`ssbsteps` syntax).
    const DEFAULT_SSBSTEPS: &'static str = "";
    /// Intermediate products to keep when the configuration gives none (`ssb_save_steps`).
    const DEFAULT_SSB_SAVE_STEPS: &'static str = "";
    /// How its files of one detector combine in the final stage: `mean`, `median` or `flags`
    /// (only DQ), with the inputs a DQ flag must be set in (0: the host's default); `None`:
    /// the host's rule for the reftype (README of mkrefs, "The final combination").
    const COMBINE: Option<(&'static str, u32)> = None;
    /// Every parameter, in the order `mkrefs describe` lists them.
    const PARAMS: &'static [&'static dyn Declare];

    /// Makes the reference file `job.output` from `job.inputs`.
    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError>;
}

/// What a successful job reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// One line for the run summary, e.g. "median readnoise 10.2 DN".
    pub summary: String,
    /// Files written besides the reference file (plots, diagnostics).
    pub extra_outputs: Vec<PathBuf>,
}

/// A [`Generator`] as the host sees it: what `export_generator!` exports.
#[derive(Clone, Copy, Debug, Default)]
pub struct Exported<G>(pub G);

impl<G: Generator> ReferenceGenerator for Exported<G> {
    fn reflabel(&self) -> String {
        G::REFLABEL.to_string()
    }

    fn reftype(&self) -> String {
        G::REFTYPE.to_string()
    }

    fn extra_optional_arguments(&self) -> Vec<ParamSpec> {
        specs(G::PARAMS).into_iter().map(param_spec).collect()
    }

    fn combine_rule(&self) -> Option<CombineRule> {
        G::COMBINE.map(|(method, dq_min)| CombineRule {
            method: method.into(),
            dq_min,
        })
    }

    fn param_constraints(&self) -> Vec<ParamConstraints> {
        specs(G::PARAMS)
            .into_iter()
            .filter(|s| !s.constraints.is_empty())
            .map(|s| param_constraints(&s))
            .collect()
    }

    fn info(&self) -> GeneratorInfo {
        GeneratorInfo {
            description: G::DESCRIPTION.into(),
            version: G::VERSION.into(),
            default_imtypes: G::DEFAULT_IMTYPES.into(),
            default_ssbsteps: G::DEFAULT_SSBSTEPS.into(),
            default_ssb_save_steps: G::DEFAULT_SSB_SAVE_STEPS.into(),
        }
    }

    fn call_algorithm(&self, job: &Job<'_>) -> Result<JobReport, GeneratorError> {
        let report = self.0.run(&JobView::new(job))?;
        Ok(JobReport {
            extra_outputs: report
                .extra_outputs
                .iter()
                .map(|p| p.to_string_lossy().as_ref().into())
                .collect::<Vec<_>>()
                .into(),
            summary: report.summary.into(),
        })
    }
}

fn param_spec(s: Spec) -> ParamSpec {
    let kind = match s.kind {
        Kind::Bool => ParamKind::Bool,
        Kind::Int => ParamKind::Int,
        Kind::Float => ParamKind::Float,
        Kind::String => ParamKind::String,
        Kind::List => ParamKind::List,
    };
    let default = match s.default {
        Value::Null => ParamValue::Null,
        Value::Bool(b) => ParamValue::Bool(b),
        Value::Int(i) => ParamValue::Int(i),
        Value::Float(x) => ParamValue::Float(x),
        Value::Str(v) => ParamValue::str(v),
        Value::List(items) => ParamValue::List(
            items
                .into_iter()
                .map(|v| match v {
                    Scalar::Bool(b) => ParamScalar::Bool(b),
                    Scalar::Int(i) => ParamScalar::Int(i),
                    Scalar::Float(x) => ParamScalar::Float(x),
                    Scalar::Str(v) => ParamScalar::Str(v.into()),
                })
                .collect::<Vec<_>>()
                .into(),
        ),
    };
    ParamSpec::new(s.name, kind, default, &s.help)
}

fn param_constraints(s: &Spec) -> ParamConstraints {
    let bound = |b: Option<Bound>| {
        b.map(|b| ParamBound {
            value: b.value,
            inclusive: b.inclusive,
        })
        .into()
    };
    ParamConstraints {
        choices: s.constraints.choices.iter().map(|c| (*c).into()).collect(),
        minimum: bound(s.constraints.minimum),
        maximum: bound(s.constraints.maximum),
        not_null: s.constraints.not_null,
        ..ParamConstraints::new(s.name)
    }
}
