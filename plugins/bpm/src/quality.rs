//! `quality_check`: does the jwst pipeline accept the new mask? Runs its DQInitStep with
//! `override_mask` set to the new file on one raw exposure, in a Python that has the jwst
//! package (`$MKREFS_PYTHON`, else `python3`).
//!
//! How: first `python -c "import jwst"` tells whether the package is there; if not, the check
//! is reported as skipped (job log and summary) and the job still succeeds, since the mask itself
//! is complete. If it is, a short script runs `DQInitStep.call(uncal, override_mask=mask)`, and
//! the check passes when the step ran (`meta.cal_step.dq_init == 'COMPLETE'`) and the resulting
//! PIXELDQ has the uncal's shape and carries the mask's flags on the pixels the mask flags.
//! A failure there is a job error: the file would not work in the pipeline.

use std::path::{Path, PathBuf};
use std::process::Command;

use mkrefs_plugin_api::GeneratorError;

/// The outcome of a quality check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QualityOutcome {
    /// DQInitStep ran with the mask; the text summarises what it did.
    Passed(String),
    /// The jwst package is not importable (or Python is missing); the text says why.
    Skipped(String),
}

/// The Python to use: `$MKREFS_PYTHON`, else `python3`.
pub fn python() -> PathBuf {
    std::env::var_os("MKREFS_PYTHON")
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

const SCRIPT: &str = r#"
import json, sys
import numpy as np
from jwst.dq_init import DQInitStep
from stdatamodels.jwst import datamodels
uncal, mask = sys.argv[1], sys.argv[2]
with datamodels.open(uncal) as model:
    result = DQInitStep.call(model, override_mask=mask)
status = result.meta.cal_step.dq_init
with datamodels.MaskModel(mask) as m:
    ref = np.asarray(m.dq)
pdq = np.asarray(result.pixeldq)
flagged = ref != 0
carried = bool(pdq.shape == ref.shape and np.all((pdq[flagged] & ref[flagged]) == ref[flagged]))
print(json.dumps({"status": status, "shape": list(pdq.shape), "carried": carried,
                  "flagged": int(flagged.sum())}))
"#;

/// Runs the check of `mask` on `uncal` with [`python`].
pub fn run(mask: &Path, uncal: &Path) -> Result<QualityOutcome, GeneratorError> {
    run_with(&python(), mask, uncal)
}

/// Runs the check with the Python interpreter `py`.
pub fn run_with(py: &Path, mask: &Path, uncal: &Path) -> Result<QualityOutcome, GeneratorError> {
    let probe = Command::new(py).args(["-c", "import jwst"]).output();
    match probe {
        Err(e) => {
            return Ok(QualityOutcome::Skipped(format!(
                "quality check skipped: cannot run {} ({e}); set MKREFS_PYTHON to a Python \
                 with the jwst package",
                py.display()
            )));
        }
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            let last = err.lines().last().unwrap_or("").trim().to_string();
            return Ok(QualityOutcome::Skipped(format!(
                "quality check skipped: the jwst package is not importable by {} ({last}); \
                 install jwst there or set MKREFS_PYTHON",
                py.display()
            )));
        }
        Ok(_) => {}
    }
    let out = Command::new(py)
        .arg("-c")
        .arg(SCRIPT)
        .arg(uncal)
        .arg(mask)
        .output()
        .map_err(|e| {
            GeneratorError::io(format!("quality check: cannot run {}: {e}", py.display()))
        })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'));
    let fail = |why: String| {
        GeneratorError::invalid_input(format!(
            "quality check failed: jwst DQInitStep with override_mask={} on {}: {why}",
            mask.display(),
            uncal.display()
        ))
    };
    if !out.status.success() || line.is_none() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        return Err(fail(format!(
            "the step raised: {}",
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        )));
    }
    let v: serde_json::Value = serde_json::from_str(line.unwrap_or("{}"))
        .map_err(|e| fail(format!("unreadable result ({e})")))?;
    if v["status"] != "COMPLETE" {
        return Err(fail(format!(
            "the step did not complete (status {})",
            v["status"]
        )));
    }
    if v["carried"] != true {
        return Err(fail(
            "PIXELDQ does not carry the mask's flags (shape or values differ)".into(),
        ));
    }
    Ok(QualityOutcome::Passed(format!(
        "quality check passed: jwst DQInitStep applied the mask to {} ({} flagged pixels carried \
         into PIXELDQ)",
        uncal.file_name().map_or_else(
            || uncal.display().to_string(),
            |n| n.to_string_lossy().into_owned()
        ),
        v["flagged"]
    )))
}
