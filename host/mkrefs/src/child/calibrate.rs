//! `mkrefs run-calibration JOBFILE`: one exposure brought to its state in its own process, by
//! the native engine or the jwst pipeline.
//!
//! Nothing half-written carries a final name: the native engine writes each product under a
//! temporary name and renames it when complete; strun writes into a work directory beside the
//! products, and they are moved to their names only after it succeeded.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use mkrefs_detector1::form::Form;
use mkrefs_detector1::pipeline::{Outputs, References, SaveAt, StepParams, calibrate_with};

use crate::child::{Done, JobIdentity, create_parent, finish, limit_threads};
use crate::exec::jobfile::{CalibrationSpec, JobFile};
use crate::prep::jwst::{self, StrunJob};
use crate::prep::steps::{self, SaveProduct, Step};

/// Runs the calibration job and returns the process exit status.
pub(crate) fn run_calibration(job_file: &Path, threads: usize) -> i32 {
    let spec = match CalibrationSpec::read(job_file) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return 2;
        }
    };
    limit_threads(threads);
    tracing::info!(
        "calibration cal{} of {} ({}): {} with the {} backend",
        spec.cal_id,
        spec.raw.display(),
        spec.detector,
        spec.run.join(", "),
        spec.backend
    );
    for r in &spec.references {
        tracing::info!("  {} reads {} {}", r.step, r.reftype, r.path.display());
    }
    let identity = JobIdentity {
        id: spec.cal_id,
        label: "calibrate",
        output: &spec.final_product,
        report: &spec.report,
        scratch_dir: &spec.scratch_dir,
    };
    finish(&identity, || {
        let summary = match spec.backend.as_str() {
            "native" => run_native(&spec),
            "jwst" => run_jwst(&spec),
            other => Err(format!("unknown calibration backend '{other}'")),
        }?;
        Ok(Done {
            extra_outputs: spec.saves.iter().map(|s| s.path.clone()).collect(),
            summary,
        })
    })
}

fn parse_steps(names: &[String]) -> Result<Vec<Step>, String> {
    names
        .iter()
        .map(|n| Step::from_name(n).ok_or_else(|| format!("unknown step '{n}' in the job file")))
        .collect()
}

fn parse_save(name: &str) -> Result<SaveProduct, String> {
    steps::SaveProduct::parse(name)
        .ok_or_else(|| format!("unknown product '{name}' in the job file"))
}

fn run_native(spec: &CalibrationSpec) -> Result<String, String> {
    let state = parse_steps(&spec.state)?;
    let mut refs = References::default();
    for r in &spec.references {
        let slot = match r.reftype.to_ascii_uppercase().as_str() {
            "MASK" => &mut refs.mask,
            "SATURATION" => &mut refs.saturation,
            "SUPERBIAS" => &mut refs.superbias,
            "LINEARITY" => &mut refs.linearity,
            "DARK" => &mut refs.dark,
            "READNOISE" => &mut refs.readnoise,
            "GAIN" => &mut refs.gain,
            other => {
                return Err(format!(
                    "step {} has a {other} reference file, which the native engine does not read",
                    r.step
                ));
            }
        };
        *slot = Some(r.path.clone());
    }
    let mut saved = BTreeMap::new();
    let mut save = Vec::new();
    let mut forms = BTreeMap::new();
    let form = |hdus: &Option<Vec<String>>| match hdus {
        Some(names) => Form::Only(names.iter().cloned().collect()),
        None => Form::Full,
    };
    forms.insert(spec.final_product.clone(), form(&spec.final_hdus));
    for s in &spec.saves {
        let at = match parse_save(&s.product)? {
            SaveProduct::Step(step) => SaveAt::Step(step),
            SaveProduct::Rateints => SaveAt::Rateints,
            SaveProduct::Fitopt => SaveAt::Fitopt,
        };
        create_parent(&s.path)?;
        forms.insert(s.path.clone(), form(&s.hdus));
        saved.insert(at, s.path.clone());
        save.push(at);
    }
    create_parent(&spec.final_product)?;
    let outputs = Outputs {
        final_product: spec.final_product.clone(),
        saved,
        forms,
    };
    let done = calibrate_with(
        &spec.input,
        &state,
        &save,
        &refs,
        &outputs,
        &StepParams::default(),
    )
    .map_err(|e| format!("{}: {e}", spec.input.display()))?;
    let mut summary = format!(
        "ran {}",
        done.ran
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !done.skipped.is_empty() {
        summary.push_str(&format!(
            " ({} skipped themselves)",
            done.skipped
                .iter()
                .map(|s| s.name())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(j) = &done.jump {
        summary.push_str(&format!("; jump: {j:?}"));
    }
    let phases: Vec<String> = done
        .timings
        .iter()
        .map(|(what, s)| format!("{what} {s:.2} s"))
        .collect();
    tracing::info!("time spent: {}", phases.join(", "));
    Ok(summary)
}

/// The file name without `.fits`.
fn stem_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    name.strip_suffix(".fits").unwrap_or(&name).to_string()
}

fn run_jwst(spec: &CalibrationSpec) -> Result<String, String> {
    let run = parse_steps(&spec.run)?;
    let instrument = steps::parse_instrument(&spec.instrument)?;
    let output_dir = spec
        .final_product
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut save = Vec::new();
    for s in &spec.saves {
        if s.path.parent() != Some(output_dir.as_path()) {
            return Err(format!(
                "the jwst backend writes every product of a job into one directory, but {} is \
                 not beside {}",
                s.path.display(),
                spec.final_product.display()
            ));
        }
        save.push((parse_save(&s.product)?, stem_of(&s.path)));
    }
    let mut overrides = Vec::new();
    for r in &spec.references {
        let step = Step::from_name(&r.step)
            .ok_or_else(|| format!("unknown step '{}' in the job file", r.step))?;
        overrides.push((step, r.reftype.to_ascii_lowercase(), r.path.clone()));
    }
    let job = StrunJob {
        instrument,
        input: spec.input.clone(),
        run,
        output_dir,
        final_name: stem_of(&spec.final_product),
        save,
        overrides,
    };
    let mut argv = jwst::strun_argv(&job)?;
    let program = spec.strun.clone().unwrap_or_else(|| "strun".to_string());
    argv[0] = program.clone();
    let work = jwst::strun_work_dir(&job);
    // A work directory left by an interrupted run holds nothing anybody asked for.
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| {
        format!(
            "cannot create strun's work directory {}: {e}",
            work.display()
        )
    })?;
    let environment = strun_environment(spec)?;
    tracing::info!("running {}", argv.join(" "));
    let status = Command::new(&program)
        .args(&argv[1..])
        .envs(environment)
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .status();
    let outcome = match status {
        Err(e) => Err(format!(
            "cannot run the jwst pipeline's strun ('{program}'): {e}; install the jwst \
             package (pip install jwst) or set calibration.strun to its path"
        )),
        Ok(status) if !status.success() => Err(format!(
            "strun failed ({status}) on {}; the pipeline's messages are in this job's log",
            spec.input.display()
        )),
        Ok(_) => jwst::collect_strun_outputs(&job),
    };
    match outcome {
        Ok(moved) => Ok(format!(
            "strun made {}",
            moved
                .iter()
                .map(|t| t.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Err(e) => {
            // Nothing of a failed run is kept beside the products (its messages are in the log).
            let _ = std::fs::remove_dir_all(&work);
            Err(e)
        }
    }
}

/// The environment strun runs in. With a CRDS configured for the run (the plan decided, see
/// `crds::configuration`), the user's CRDS settings are kept, the cache passed as
/// `CRDS_PATH`, and only the step-parameter lookup switched off (mkrefs' argument vector
/// decides every step); otherwise [`jwst::offline_environment`], which needs neither
/// network nor cache (the plan made sure every reference file is an override then).
fn strun_environment(
    spec: &CalibrationSpec,
) -> Result<Vec<(std::ffi::OsString, std::ffi::OsString)>, String> {
    let Some(crds) = &spec.crds else {
        tracing::info!(
            "CRDS: none configured, running strun offline with every reference file given \
             as an override"
        );
        return jwst::offline_environment(&spec.scratch_dir).map_err(|e| e.to_string());
    };
    let mut env = vec![("STPIPE_DISABLE_CRDS_STEPPARS".into(), "True".into())];
    if let Some(cache) = &crds.cache {
        tracing::info!("CRDS: using the cache in {}", cache.display());
        env.push(("CRDS_PATH".into(), cache.clone().into_os_string()));
    } else {
        tracing::info!("CRDS: using the server in CRDS_SERVER_URL and crds' default cache");
    }
    Ok(env)
}
