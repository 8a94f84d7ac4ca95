//! The one place where a job meets the plugin ABI: the job file's plain values become the
//! ABI's job, the generator is found (bundled or drop-in) and called, and its report comes
//! back as plain values. Also the probe child, which only loads a drop-in.

use std::io::Write;

use abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef, std_types::RStr};
use mkrefs_plugin_api as abi;
use mkrefs_plugin_api::{
    GeneratorBox, HostCallbacks, HostCallbacks_TO, Job, LogLevel, PRODUCT_PREFIX,
    bundled_generators, load_library,
};
use serde_json::Value;

use crate::exec::jobfile::{JobParam, JobSpec};
use crate::exec::probe::ProbeReport;
use crate::exec::protocol::PROGRESS_PREFIX;

/// What a generator reported about a finished job.
pub(crate) struct GeneratorReport {
    pub summary: String,
    pub extra_outputs: Vec<String>,
}

/// The host side of the callbacks: log lines through `tracing` (the executor puts the child's
/// stderr into the job's log), progress as protocol lines on stdout.
struct ChildHost;

impl HostCallbacks for ChildHost {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        let message = message.as_str();
        match level {
            LogLevel::Error => tracing::error!(target: "generator", "{message}"),
            LogLevel::Warn => tracing::warn!(target: "generator", "{message}"),
            LogLevel::Info => tracing::info!(target: "generator", "{message}"),
            LogLevel::Debug => tracing::debug!(target: "generator", "{message}"),
            LogLevel::Trace => tracing::trace!(target: "generator", "{message}"),
        }
    }

    fn progress(&self, stage: RStr<'_>, done: u64, total: u64) {
        let mut out = std::io::stdout().lock();
        let stage = stage.as_str().replace('\n', " ");
        let _ = writeln!(out, "{PROGRESS_PREFIX}{done} {total} {stage}");
        let _ = out.flush();
    }
}

/// `mkrefs probe-plugin LIB`: loads the library, creates its generator and reads its parameter
/// constraints, so that one that aborts or crashes while loading costs this process only (see
/// `exec::probe`). Prints the report line; the exit status is 0 whenever the report was
/// printed.
pub(crate) fn probe_library(path: &std::path::Path) -> i32 {
    // The parameter constraints are read too: the host reads them after loading.
    let loaded = load_library(path).and_then(|g| abi::library_constraints(path).map(|_| g));
    let report = match loaded {
        Ok(g) => ProbeReport::Loaded {
            reflabel: g.reflabel().into(),
            reftype: g.reftype().into(),
        },
        Err(e) => ProbeReport::Refused {
            reason: e.to_string(),
            detail: match &e {
                abi::LoadError::Library { detail, .. } => detail.clone(),
                abi::LoadError::Constructor(c) => c.to_string(),
            },
        },
    };
    let mut out = std::io::stdout().lock();
    let written = writeln!(out, "{}", report.line()).and_then(|()| out.flush());
    if written.is_ok() { 0 } else { 2 }
}

/// The generator the job names: its drop-in library, or the bundled one of that reflabel.
fn find_generator(spec: &JobSpec) -> Result<GeneratorBox, String> {
    if let Some(lib) = &spec.library {
        return load_library(lib).map_err(|e| format!("library {} {e}", lib.display()));
    }
    for made in bundled_generators() {
        let g = made.map_err(|e| format!("a bundled generator could not be created: {e}"))?;
        if g.reflabel().as_str() == spec.reflabel {
            return Ok(g);
        }
    }
    Err(format!(
        "this mkrefs has no bundled generator '{}'",
        spec.reflabel
    ))
}

/// Calls the job's generator on the job.
pub(crate) fn call_generator(spec: &JobSpec, threads: usize) -> Result<GeneratorReport, String> {
    let generator = find_generator(spec)?;
    let host = ChildHost;
    let job = Job {
        reflabel: spec.reflabel.as_str().into(),
        reftype: spec.reftype.as_str().into(),
        cmd_id: spec.cmd_id,
        output: spec.output.to_string_lossy().as_ref().into(),
        inputs: inputs(spec)?.into(),
        params: spec.params.iter().map(param).collect::<Vec<_>>().into(),
        scratch_dir: spec.scratch_dir.to_string_lossy().as_ref().into(),
        threads: threads.max(1) as u32,
        extensions: extensions(spec).into(),
        host: HostCallbacks_TO::from_ptr(RRef::new(&host), TD_Opaque),
    };
    let report = generator
        .call_algorithm(&job)
        .into_result()
        .map_err(|e| e.to_string())?;
    Ok(GeneratorReport {
        summary: report.summary.to_string(),
        extra_outputs: report.extra_outputs.iter().map(|s| s.to_string()).collect(),
    })
}

fn inputs(spec: &JobSpec) -> Result<Vec<abi::InputImage>, String> {
    spec.inputs
        .iter()
        .map(|i| {
            let kind = match i.kind.as_str() {
                "dark" => abi::ImageKind::Dark,
                "flat" => abi::ImageKind::Flat,
                other => return Err(format!("input {} has unknown kind '{other}'", i.label)),
            };
            Ok(abi::InputImage {
                label: i.label.as_str().into(),
                kind,
                path: i.path.to_string_lossy().as_ref().into(),
                raw_path: i.raw_path.to_string_lossy().as_ref().into(),
                mjd: i.mjd,
                detector: i.detector.as_str().into(),
                header: i.header.iter().map(param).collect::<Vec<_>>().into(),
            })
        })
        .collect()
}

/// The products as job extensions named `product.<label>.<product>` (see `Job::product`).
fn extensions(spec: &JobSpec) -> Vec<abi::Param> {
    spec.products
        .iter()
        .map(|p| {
            abi::Param::new(
                &format!("{PRODUCT_PREFIX}{}.{}", p.label, p.product),
                abi::ParamValue::str(p.path.to_string_lossy().into_owned()),
            )
        })
        .collect()
}

fn param(p: &JobParam) -> abi::Param {
    abi::Param::new(&p.name, value(&p.value))
}

fn value(v: &Value) -> abi::ParamValue {
    match v {
        Value::Null => abi::ParamValue::Null,
        Value::Bool(b) => abi::ParamValue::Bool(*b),
        Value::Number(n) if n.is_i64() => abi::ParamValue::Int(n.as_i64().unwrap_or_default()),
        Value::Number(n) => abi::ParamValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => abi::ParamValue::str(s.clone()),
        Value::Array(items) => abi::ParamValue::List(items.iter().map(scalar).collect()),
        Value::Object(_) => abi::ParamValue::str(v.to_string()),
    }
}

fn scalar(v: &Value) -> abi::ParamScalar {
    match v {
        Value::Bool(b) => abi::ParamScalar::Bool(*b),
        Value::Number(n) if n.is_i64() => abi::ParamScalar::Int(n.as_i64().unwrap_or_default()),
        Value::Number(n) => abi::ParamScalar::Float(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => abi::ParamScalar::Str(s.as_str().into()),
        other => abi::ParamScalar::Str(other.to_string().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{ParamScalar, ParamValue};

    #[test]
    fn parameter_values_reach_the_generator_as_resolved() {
        let cases = [
            (ParamValue::Null, abi::ParamValue::Null),
            (ParamValue::Bool(true), abi::ParamValue::Bool(true)),
            (ParamValue::Int(-3), abi::ParamValue::Int(-3)),
            (ParamValue::Float(3.0), abi::ParamValue::Float(3.0)),
            (ParamValue::Float(2.5), abi::ParamValue::Float(2.5)),
            (ParamValue::str("stack"), abi::ParamValue::str("stack")),
            (
                ParamValue::List(vec![
                    ParamScalar::Str("HOT".into()),
                    ParamScalar::Int(2),
                    ParamScalar::Float(0.5),
                ]),
                abi::ParamValue::List(
                    vec![
                        abi::ParamScalar::Str("HOT".into()),
                        abi::ParamScalar::Int(2),
                        abi::ParamScalar::Float(0.5),
                    ]
                    .into(),
                ),
            ),
        ];
        for (host, want) in cases {
            // Through the job file's text, as the child reads it.
            let json = serde_json::to_string(&JobParam::new("x", &host)).unwrap();
            let back: JobParam = serde_json::from_str(&json).unwrap();
            assert_eq!(param(&back).value, want, "through {json}");
        }
    }
}
