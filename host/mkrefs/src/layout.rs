//! Where a run's files go, and what they are called (UPSTREAM.md, "Output layout").
//!
//! ```text
//! <outrootdir>[/<outsubdir>][/run<NNN>]/                      basedir
//!     <stem>.im.txt          input table        (stem = [outsubdir_]run<NNN>, or "mkrefs")
//!     <stem>.inputim.txt     group table
//!     <stem>.summary.txt     job table of the last execution
//!     <reflabel>/<reflabel>.<stem>.cmd<N>_<reftype>.fits        reference file
//!     <reflabel>/<reflabel>.<stem>.cmd<N>_<reftype>.job.json    job file
//!     <reflabel>/<reflabel>.<stem>.cmd<N>_<reftype>.log         job log
//!     <reflabel>/<reflabel>.<stem>.cmd<N>_<reftype>.report.json job outcome
//!     calibration/<product>.job.json, .log, .report.json   calibration jobs (products in ssbdir)
//!     final/<reftype>_<detector>.fits                 the run's answer per reflabel and detector
//!     combine/<reftype>_<detector>.job.json, .log, .report.json   the jobs that make them
//!     scratch/cmd<N>/, scratch/cal<N>/   per-job temporary files, removed after the job
//! ssbdir: --ssbdir, else output.ssbdir, else <outrootdir>[/<outsubdir>]/ssb when
//!         skip_runID_ssbdir (shared between runs, the default), else <basedir>/ssb.
//! ```
//!
//! Differences from upstream: runID AUTO looks only at directories named exactly
//! `run<digits>`; with no runID there is no trailing `/` or `_`; the reftype in names is the
//! generator's, lower-cased (upstream took the config section's, which could disagree).

use std::path::{Path, PathBuf};

/// How the run ID is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunIdChoice {
    /// No run directory level.
    None,
    /// The latest existing `run<N>` (or 0 when there is none); with `new_run`, latest + 1.
    Auto,
    Fixed(u32),
}

impl RunIdChoice {
    /// Parses a command-line or config value: `AUTO` (any case), digits, or empty/none.
    pub fn parse(text: &str) -> Result<RunIdChoice, String> {
        let t = text.trim();
        if t.is_empty() || t.eq_ignore_ascii_case("none") || t.eq_ignore_ascii_case("null") {
            Ok(RunIdChoice::None)
        } else if t.eq_ignore_ascii_case("auto") {
            Ok(RunIdChoice::Auto)
        } else {
            t.parse::<u32>().map(RunIdChoice::Fixed).map_err(|_| {
                format!("runID '{text}' is not valid: use AUTO, a number, or leave it empty")
            })
        }
    }
}

/// The output settings after config and command line are merged.
#[derive(Debug, Clone)]
pub struct OutputOptions {
    pub outrootdir: PathBuf,
    pub outsubdir: Option<String>,
    pub run_id: RunIdChoice,
    pub run_id_ndigits: usize,
    pub new_run_id: bool,
    pub ssbdir: Option<PathBuf>,
    pub skip_run_id_ssbdir: bool,
    /// `addsuffix`: a word added to reference-file names.
    pub addsuffix: Option<String>,
}

/// The resolved directories and name stem of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunLayout {
    /// `<outrootdir>[/<outsubdir>]`: where the run directories (and by default the ssbdir) are.
    pub root: PathBuf,
    pub basedir: PathBuf,
    pub stem: String,
    pub run_label: Option<String>,
    pub ssbdir: PathBuf,
    pub addsuffix: Option<String>,
}

/// The largest N of the directories `run<N>` in `dir`.
fn latest_run(dir: &Path) -> Option<u32> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let digits = name.strip_prefix("run")?;
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u32>().ok())
                .flatten()
        })
        .max()
}

impl RunLayout {
    pub fn resolve(opts: &OutputOptions) -> RunLayout {
        let mut parent = absolute(&opts.outrootdir);
        if let Some(sub) = opts.outsubdir.as_deref().filter(|s| !s.is_empty()) {
            parent.push(sub);
        }
        let run_number = match opts.run_id {
            RunIdChoice::None => None,
            RunIdChoice::Fixed(n) => Some(n),
            RunIdChoice::Auto => Some(match latest_run(&parent) {
                Some(n) if opts.new_run_id => n + 1,
                Some(n) => n,
                None => 0,
            }),
        };
        let run_label =
            run_number.map(|n| format!("run{n:0width$}", width = opts.run_id_ndigits.max(1)));
        let basedir = match &run_label {
            Some(label) => parent.join(label),
            None => parent.clone(),
        };
        let parts: Vec<&str> = [opts.outsubdir.as_deref(), run_label.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect();
        let stem = if parts.is_empty() {
            "mkrefs".to_string()
        } else {
            parts.join("_")
        };
        let ssbdir = match &opts.ssbdir {
            Some(dir) => absolute(dir),
            None if opts.skip_run_id_ssbdir => parent.join("ssb"),
            None => basedir.join("ssb"),
        };
        RunLayout {
            root: parent.clone(),
            basedir,
            stem,
            run_label,
            ssbdir,
            addsuffix: opts.addsuffix.clone(),
        }
    }

    /// `<basedir>/<reflabel>/<reflabel>.<stem>[.<addsuffix>].cmd<N>_<reftype>` (no
    /// extension).
    pub fn outbasename(&self, reflabel: &str, cmd_id: u32, reftype: &str) -> PathBuf {
        let suffix = self
            .addsuffix
            .as_deref()
            .map(|s| format!(".{s}"))
            .unwrap_or_default();
        self.basedir.join(reflabel).join(format!(
            "{reflabel}.{}{suffix}.cmd{cmd_id}_{}",
            self.stem,
            reftype.to_ascii_lowercase()
        ))
    }

    pub fn input_table(&self) -> PathBuf {
        self.basedir.join(format!("{}.im.txt", self.stem))
    }

    pub fn group_table(&self) -> PathBuf {
        self.basedir.join(format!("{}.inputim.txt", self.stem))
    }

    pub fn summary(&self) -> PathBuf {
        self.basedir.join(format!("{}.summary.txt", self.stem))
    }

    pub fn scratch(&self, cmd_id: u32) -> PathBuf {
        self.basedir.join("scratch").join(format!("cmd{cmd_id}"))
    }

    /// `<basedir>/calibration/<product stem>` (no extension): the job file, log and report of
    /// the calibration job that makes that product (the products themselves go to ssbdir).
    pub fn calibration_basename(&self, product_stem: &str) -> PathBuf {
        self.basedir.join("calibration").join(product_stem)
    }

    pub fn calibration_scratch(&self, cal_id: u32) -> PathBuf {
        self.basedir.join("scratch").join(format!("cal{cal_id}"))
    }

    /// `<basedir>/final/<name>.fits`: the run's answer for one reflabel and detector.
    pub fn final_file(&self, name: &str) -> PathBuf {
        self.basedir.join("final").join(format!("{name}.fits"))
    }

    /// `<basedir>/combine/<name>` (no extension): the job file, log and report of the job that
    /// makes `final/<name>.fits` (kept out of final/, which holds only reference files).
    pub fn combine_basename(&self, name: &str) -> PathBuf {
        self.basedir.join("combine").join(name)
    }

    pub fn combine_scratch(&self, fin_id: u32) -> PathBuf {
        self.basedir.join("scratch").join(format!("fin{fin_id}"))
    }
}

/// Makes a path absolute against the current directory without touching the file system.
pub fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Appends `ext` to a path's file name (`x.cmd0_readnoise` + `fits`).
pub fn with_ext(base: &Path, ext: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(root: &Path) -> OutputOptions {
        OutputOptions {
            addsuffix: None,
            outrootdir: root.to_path_buf(),
            outsubdir: Some("test1".into()),
            run_id: RunIdChoice::Auto,
            run_id_ndigits: 3,
            new_run_id: false,
            ssbdir: None,
            skip_run_id_ssbdir: true,
        }
    }

    #[test]
    fn auto_reuses_the_latest_run_and_n_starts_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        let first = RunLayout::resolve(&o);
        assert_eq!(first.basedir, dir.path().join("test1/run000"));
        assert_eq!(first.stem, "test1_run000");
        assert_eq!(first.ssbdir, dir.path().join("test1/ssb"));
        std::fs::create_dir_all(dir.path().join("test1/run004")).unwrap();
        std::fs::create_dir_all(dir.path().join("test1/run007x")).unwrap();
        std::fs::write(dir.path().join("test1/run009"), "a file, not a run").unwrap();
        assert_eq!(RunLayout::resolve(&o).run_label.as_deref(), Some("run004"));
        o.new_run_id = true;
        assert_eq!(RunLayout::resolve(&o).run_label.as_deref(), Some("run005"));
    }

    #[test]
    fn names_follow_the_documented_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = opts(dir.path());
        o.run_id = RunIdChoice::Fixed(3);
        o.skip_run_id_ssbdir = false;
        let l = RunLayout::resolve(&o);
        assert_eq!(
            l.outbasename("readnoise", 0, "READNOISE"),
            dir.path()
                .join("test1/run003/readnoise/readnoise.test1_run003.cmd0_readnoise")
        );
        assert_eq!(l.ssbdir, dir.path().join("test1/run003/ssb"));
        o.run_id = RunIdChoice::None;
        o.outsubdir = None;
        let l = RunLayout::resolve(&o);
        assert_eq!(l.basedir, dir.path());
        assert_eq!(l.stem, "mkrefs");
    }

    #[test]
    fn run_ids_parse() {
        assert_eq!(RunIdChoice::parse("auto").unwrap(), RunIdChoice::Auto);
        assert_eq!(RunIdChoice::parse("12").unwrap(), RunIdChoice::Fixed(12));
        assert_eq!(RunIdChoice::parse("").unwrap(), RunIdChoice::None);
        assert!(RunIdChoice::parse("run3").is_err());
    }
}
