//! What a job child and the executor tell each other, besides the job file: log lines go to
//! the child's stderr (the executor sends them to the job's log file), progress to its stdout
//! as lines `@@mkrefs-progress <done> <total> <stage>`, and the outcome to the report file the
//! job file names, plus the exit status (0 = success).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic;

/// The prefix of progress lines on a child's stdout.
pub const PROGRESS_PREFIX: &str = "@@mkrefs-progress ";

/// What a job child writes when it ends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct JobReportFile {
    /// The job's number (`cmd<N>` or `cal<N>`).
    pub cmd_id: u32,
    /// The reflabel, or `calibrate`.
    pub reflabel: String,
    pub ok: bool,
    pub error: Option<String>,
    pub seconds: f64,
    pub output: PathBuf,
    pub extra_outputs: Vec<PathBuf>,
    pub summary: String,
}

impl JobReportFile {
    /// Writes the report under a temporary name and renames it, so the executor never reads
    /// half of one.
    pub fn write(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_string_pretty(self).expect("reports always serialize");
        atomic::write(path, text.as_bytes())
    }

    /// The report at `path`, if there is a complete one.
    pub fn read(path: &Path) -> Option<JobReportFile> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str(&text).ok()
    }
}
