//! Typed settings read from the merged tree, and the schema of the framework keys.
//!
//! Only the framework's own keys are typed here. Generator parameters stay as tree nodes in
//! [`ReflabelSection::params`] until [`super::resolve_params`] checks them against what the
//! generator declares, because only the generator knows their kinds.

use std::collections::BTreeMap;

use mkrefs_support::geometry::Instrument;
use regex::Regex;

use super::error::{ConfigError, ConfigErrorKind, Result, did_you_mean, suggest};
use super::provenance::Provenance;
use super::tree::{Node, NodeValue, parse_document};

/// Top-level keys whose mapping is read by the framework (or accepted and ignored); any other
/// mapping-valued top-level key is a reflabel section.
pub const FRAMEWORK_SECTIONS: &[&str] = &[
    "inputfiles",
    "output",
    "DD",
    "FF",
    "DDFF",
    "default_reflabels",
    "batch",
    "reffile4ssb",
    "validation",
    "calibration",
    "combine",
    "executor",
];

/// Upstream top-level keys that load without error but mean nothing here: upstream never read
/// them either (UPSTREAM.md, "Configuration").
pub const IGNORED_TOP_LEVEL: &[&str] = &[
    "reftypes",
    "test4datamodel",
    "test4ssb",
    "test1",
    "test2",
    "batch",
    "validation",
];

const TOP_LEVEL_SCALARS: &[&str] = &["instrument", "reflabels", "profiles"];

pub(super) const INPUTFILES_KEYS: &[&str] = &[
    "dark_pattern",
    "flat_pattern",
    "basenamepattern",
    "dateobs_fitskey",
    "timeobs_fitskey",
    "mjdobs_fitskey",
    "requiredfitskeys",
    "optionalfitskeys",
    "dark_exp_types",
    "flat_exp_types",
];

pub(super) const OUTPUT_KEYS: &[&str] = &[
    "outrootdir",
    "outsubdir",
    "runID",
    "runIDNdigits",
    "ssbdir",
    "skip_runID_ssbdir",
    "pipeline_prod_search_dir",
    "addsuffix",
];

/// Upstream `output` keys that load but are ignored: job logs are always captured, so the four
/// log flags have nothing to switch; `imdates2subdir` belonged to the old `mkref.py`.
pub const IGNORED_OUTPUT_KEYS: &[&str] = &[
    "ssblogFlag",
    "ssberrorlogFlag",
    "reflogFlag",
    "referrorlogFlag",
    "imdates2subdir",
];

const MJD_SECTION_KEYS: &[&str] = &["max_Delta_MJD"];

/// Keys of a reflabel section that the framework reads; everything else is a generator
/// parameter.
pub const SECTION_FRAMEWORK_KEYS: &[&str] = &["reftype", "imtypes", "ssbsteps", "ssb_save_steps"];

/// Keys of a reflabel section that are not generator parameters: the section's own
/// `reffile4ssb` (reference files for its inputs' calibration, read by
/// `reference_files::RefConfig`).
pub const SECTION_IGNORED_KEYS: &[&str] = &["reffile4ssb"];

const CALIBRATION_KEYS: &[&str] = &["backend", "strun", "crds_path", "python", "keep_products"];

const COMBINE_KEYS: &[&str] = &["enabled", "method", "clip_sigma", "dq_min"];

const EXECUTOR_KEYS: &[&str] = &[
    "kind",
    "partition",
    "account",
    "qos",
    "time",
    "mem",
    "cpus_per_task",
    "extra_args",
    "retry_mem",
    "retries",
    "overrides",
];

/// The keys an `executor.overrides.<name>` mapping may set.
const EXECUTOR_OVERRIDE_KEYS: &[&str] = &[
    "partition",
    "account",
    "qos",
    "time",
    "mem",
    "retry_mem",
    "cpus_per_task",
    "extra_args",
];

/// The combination methods `combine.method` accepts.
pub const COMBINE_METHODS: &[&str] = &["mean", "median"];

/// Values for framework keys the main config leaves out, so an upstream `mkrefs.cfg` (which
/// lacks the newer keys) loads, and so `-e`/`-p`/`--pp` can set them. Kept equal to the
/// framework part of `configs/mkrefs.yaml` by a test.
pub(crate) const BUILTIN_DEFAULTS: &str = r#"
instrument: null
profiles: []
reflabels: []
default_reflabels: {}
inputfiles:
  dark_pattern: Bias|Dark|BIAS|DARK|ZERO
  flat_pattern: GAIN|LIN
  basenamepattern: null
  dateobs_fitskey: DATE-END
  timeobs_fitskey: TIME-END
  mjdobs_fitskey: null
  requiredfitskeys: [INSTRUME, DETECTOR, NGROUPS, NINTS, TGROUP, SUBARRAY]
  optionalfitskeys: [FILTER, PUPIL, EXP_TYPE, READPATT]
  dark_exp_types: [NRC_DARK, NIS_DARK, NRS_DARK, MIR_DARKALL, MIR_DARKIMG, MIR_DARKMRS, MIR_DARK, FGS_DARK]
  flat_exp_types: [NRC_FLAT, NRC_LED, NIS_LAMP, NRS_LAMP, NRS_AUTOFLAT, MIR_FLATALL, MIR_FLATIMAGE, MIR_FLATIMAGE-EXT, MIR_FLATMRS, MIR_FLATMRS-EXT, FGS_INTFLAT, FGS_SKYFLAT]
DD:
  max_Delta_MJD: 2.0
FF:
  max_Delta_MJD: 2.0
DDFF:
  max_Delta_MJD: 10.0
output:
  outrootdir: mkrefs_out
  outsubdir: null
  runID: AUTO
  runIDNdigits: 3
  ssbdir: null
  skip_runID_ssbdir: true
  pipeline_prod_search_dir: []
  addsuffix: null
reffile4ssb:
  mask: null
  saturation: null
  superbias: null
  linearity: null
  dark: null
  readnoise: null
  gain: null
calibration:
  backend: native
  strun: strun
  crds_path: null
  python: null
  keep_products: false
combine:
  enabled: true
  method: null
  clip_sigma: 3.0
  dq_min: null
executor:
  kind: local
  partition: null
  account: null
  qos: null
  time: null
  mem: null
  cpus_per_task: null
  extra_args: []
  retry_mem: null
  retries: 1
  overrides: {}
"#;

/// The built-in defaults as a tree (provenance "built-in default").
pub(crate) fn builtin_defaults() -> Node {
    parse_document(BUILTIN_DEFAULTS, &Provenance::BuiltinDefault)
        .expect("the built-in defaults are valid YAML")
}

/// True if `name` is a top-level section the framework owns rather than a reflabel section.
pub fn is_framework_section(name: &str) -> bool {
    FRAMEWORK_SECTIONS.contains(&name)
}

/// A value with the place it was set, for errors found after loading (a bad `imtypes`, ...).
#[derive(Clone, Debug, PartialEq)]
pub struct Sourced<T> {
    pub value: T,
    pub source: Provenance,
}

/// Everything the framework reads from the configuration, typed and checked.
#[derive(Clone, Debug)]
pub struct Settings {
    /// As written (an instrument of a profile, case-insensitively); `None` if unset.
    pub instrument: Option<String>,
    /// More instrument profiles (files or directories), read before anything else from the
    /// main configuration ([`super::early`]); kept here for `config template`.
    pub profiles: Vec<String>,
    /// Reflabels a positional token may name (besides installed generators).
    pub reflabels: Vec<String>,
    /// Lower-cased reftype → reflabel, so `mkrefs mask ...` runs the configured reflabel.
    pub default_reflabels: BTreeMap<String, String>,
    pub inputfiles: InputFilesSettings,
    pub max_delta_mjd: MaxDeltaMjd,
    pub output: OutputSettings,
    pub calibration: CalibrationSettings,
    pub combine: CombineSettings,
    pub executor: ExecutorSettings,
    /// Every reflabel section: each mapping-valued top-level key that is not a framework
    /// section, plus an empty one for each `reflabels` entry without a section.
    pub sections: BTreeMap<String, ReflabelSection>,
    /// `--pall` values, to be offered to every selected generator that declares the key.
    pub pall: Vec<PallParam>,
    /// Suspicious but harmless things (an unknown top-level scalar, a section named like a
    /// misspelt framework section), to be logged by the caller.
    pub warnings: Vec<String>,
    /// The merged, expanded tree, for provenance look-ups and dumps.
    pub tree: Node,
}

/// The `inputfiles` section (UPSTREAM.md, "Input files").
#[derive(Clone, Debug, PartialEq)]
pub struct InputFilesSettings {
    /// Regex searched in the basename; a match means dark. `None`: do not classify by name.
    pub dark_pattern: Option<String>,
    /// Regex searched in the basename (after `dark_pattern`); a match means flat.
    pub flat_pattern: Option<String>,
    /// Regex searched in the absolute path; non-matching inputs are skipped. `None`: keep all.
    pub basenamepattern: Option<String>,
    pub dateobs_fitskey: String,
    pub timeobs_fitskey: Option<String>,
    pub mjdobs_fitskey: Option<String>,
    pub requiredfitskeys: Vec<String>,
    pub optionalfitskeys: Vec<String>,
    /// EXP_TYPE values that make an input a dark (upper-case).
    pub dark_exp_types: Vec<String>,
    /// EXP_TYPE values that make an input a flat (upper-case).
    pub flat_exp_types: Vec<String>,
}

/// `DD`/`FF`/`DDFF` `max_Delta_MJD` in days; `None` means no limit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxDeltaMjd {
    pub dd: Option<f64>,
    pub ff: Option<f64>,
    pub ddff: Option<f64>,
}

/// `output.runID`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunIdSetting {
    /// `AUTO` (any case): reuse or continue the highest existing run number.
    Auto,
    Number(u32),
    /// null or empty: no run directory level.
    None,
}

/// The `output` section (UPSTREAM.md, "Output layout").
#[derive(Clone, Debug, PartialEq)]
pub struct OutputSettings {
    pub outrootdir: String,
    pub outsubdir: Option<String>,
    pub run_id: RunIdSetting,
    pub run_id_ndigits: usize,
    pub ssbdir: Option<String>,
    pub skip_runid_ssbdir: bool,
    /// Extra directories searched for pipeline products (a list, or one comma-separated
    /// string, as upstream's docs promised).
    pub pipeline_prod_search_dir: Vec<String>,
    /// Added to reference-file names (`<reflabel>.<stem>.<addsuffix>.cmd<N>_<reftype>`).
    pub addsuffix: Option<String>,
}

/// Which program runs the calibration steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// mkrefs' own detector1 engine (no Python).
    Native,
    /// The jwst package's calwebb_detector1 through `strun`.
    Jwst,
}

impl Backend {
    pub fn parse(text: &str) -> Option<Backend> {
        match text.trim().to_ascii_lowercase().as_str() {
            "native" => Some(Backend::Native),
            "jwst" | "strun" => Some(Backend::Jwst),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Native => "native",
            Backend::Jwst => "jwst",
        }
    }
}

/// The `calibration` section: how inputs are brought to the state the generators need.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationSettings {
    pub backend: Backend,
    /// The `strun` program of the jwst backend (a name looked up in PATH, or a path).
    pub strun: String,
    /// The local CRDS cache for `reffile4ssb` values `CRDS`; `None`: `$CRDS_PATH`.
    pub crds_path: Option<String>,
    /// The Python whose crds client chooses `reffile4ssb` values `CRDS`; `None`: the `python`
    /// beside `strun`, else `python3` (`crds::default_python`).
    pub python: Option<String>,
    /// Write every calibrated product whole and synced, as jwst would, even those only this
    /// run's generators read (README, "Run-internal products").
    pub keep_products: bool,
}

/// The `combine` section: the final stage, which combines the individual reference files of a
/// reflabel and detector into `final/` (README, "The final combination").
#[derive(Clone, Debug, PartialEq)]
pub struct CombineSettings {
    /// `combine: false` (or `enabled: false`) leaves `final/` out.
    pub enabled: bool,
    /// `mean` or `median` (sigma-clipped) for every reftype combined pixel by pixel; `None`:
    /// each reftype's own rule.
    pub method: Option<String>,
    pub clip_sigma: f64,
    /// In how many inputs a DQ flag must be set to be kept; `None`: each reftype's own rule.
    pub dq_min: Option<u32>,
}

/// Where jobs run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExecutorKind {
    /// Child processes on this machine.
    Local,
    /// One Slurm batch job per job (README, "Running on a Slurm cluster").
    Slurm,
}

impl ExecutorKind {
    pub fn parse(text: &str) -> Option<ExecutorKind> {
        match text.trim().to_ascii_lowercase().as_str() {
            "local" => Some(ExecutorKind::Local),
            "slurm" => Some(ExecutorKind::Slurm),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExecutorKind::Local => "local",
            ExecutorKind::Slurm => "slurm",
        }
    }
}

/// The sbatch options of a job (every one optional: the cluster's defaults apply).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchOptions {
    pub partition: Option<String>,
    pub account: Option<String>,
    pub qos: Option<String>,
    /// `--time`, as sbatch takes it (`30`, `1:00:00`, `1-0`).
    pub time: Option<String>,
    /// `--mem`, as sbatch takes it (`4G`, `16000M`).
    pub mem: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// More sbatch arguments, each passed as one argument (no shell).
    pub extra_args: Vec<String>,
    /// `--mem` for a job submitted again after it ran out of memory (OUT_OF_MEMORY); without
    /// it such a job is not submitted again.
    pub retry_mem: Option<String>,
}

impl BatchOptions {
    /// These options with `over`'s set fields in their place (extra arguments appended).
    pub fn with(&self, over: &BatchOptions) -> BatchOptions {
        let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
        BatchOptions {
            partition: pick(&self.partition, &over.partition),
            account: pick(&self.account, &over.account),
            qos: pick(&self.qos, &over.qos),
            time: pick(&self.time, &over.time),
            mem: pick(&self.mem, &over.mem),
            retry_mem: pick(&self.retry_mem, &over.retry_mem),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            extra_args: self
                .extra_args
                .iter()
                .chain(&over.extra_args)
                .cloned()
                .collect(),
        }
    }
}

/// The `executor` section.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutorSettings {
    pub kind: ExecutorKind,
    /// For every job.
    pub batch: BatchOptions,
    /// Resubmissions of a job that failed for its node (NODE_FAIL, PREEMPTED, BOOT_FAIL), or
    /// ran out of memory where `retry_mem` is configured, not of one that failed on its data.
    pub retries: u32,
    /// Per reflabel, or `calibrate` / `combine` for those jobs: options in place of the
    /// section's.
    pub overrides: BTreeMap<String, BatchOptions>,
}

/// One reflabel section.
#[derive(Clone, Debug, PartialEq)]
pub struct ReflabelSection {
    pub name: String,
    /// Where the section starts (its key), or "built-in default" if synthesized.
    pub source: Provenance,
    /// `None`: take the generator's reftype.
    pub reftype: Option<Sourced<String>>,
    /// `None`: take the generator's default grouping.
    pub imtypes: Option<Sourced<String>>,
    /// `None`: key absent, take the generator's default. `Some("")`: the config said null or
    /// empty, meaning raw inputs as given (no pipeline steps).
    pub ssbsteps: Option<Sourced<String>>,
    /// As `ssbsteps`; `Some("")` means save no intermediate products.
    pub ssb_save_steps: Option<Sourced<String>>,
    /// Every other key: a generator parameter, checked by `resolve_params`.
    pub params: BTreeMap<String, Node>,
    /// `--pall` values for keys this section does not list; used only if the generator
    /// declares them.
    pub pall: BTreeMap<String, Node>,
}

/// One `--pall key value`.
#[derive(Clone, Debug, PartialEq)]
pub struct PallParam {
    pub key: String,
    pub value: Node,
    /// Whether some top-level key or section of the config had the key (and got the value).
    pub found_in_config: bool,
}

impl Settings {
    /// Where the value at `section.key` (or a top-level key) came from.
    pub fn source_of(&self, path: &str) -> Option<&Provenance> {
        self.tree.get_path(path).map(|n| &n.source)
    }

    /// The section for `reflabel`, if any.
    pub fn section(&self, reflabel: &str) -> Option<&ReflabelSection> {
        self.sections.get(reflabel)
    }

    /// Reads typed settings from a merged, expanded tree.
    pub fn from_tree(tree: Node, pall: Vec<PallParam>) -> Result<Settings> {
        let mut warnings = Vec::new();
        let instrument = match tree.get("instrument") {
            Some(n) => opt_string(n, "instrument")?,
            None => None,
        };
        if let Some(inst) = &instrument
            && Instrument::from_header(inst).is_none()
        {
            let n = &tree.get("instrument").expect("just read");
            let known = Instrument::known_names();
            return Err(ConfigError::from(ConfigErrorKind::InvalidValue {
                origin: n.source.clone(),
                key_path: "instrument".into(),
                expected: format!("one of {known} (the instrument profiles)"),
                found: n.shape(),
                hint: suggest(inst, known.split(", "))
                    .map(|s| format!("did you mean '{s}'?"))
                    .unwrap_or_default(),
            }));
        }

        let profiles = match tree.get("profiles") {
            Some(n) => string_list(n, "profiles")?,
            None => Vec::new(),
        };
        let reflabels = match tree.get("reflabels") {
            Some(n) => string_list(n, "reflabels")?,
            None => Vec::new(),
        };
        for (i, r) in reflabels.iter().enumerate() {
            check_reflabel_name(
                r,
                &tree.get("reflabels").expect("just read").source,
                &format!("reflabels[{i}]"),
            )?;
        }
        check_top_level(&tree, &reflabels, &mut warnings);

        let mut default_reflabels = BTreeMap::new();
        if let Some(n) = tree.get("default_reflabels") {
            let n = section_node(n, "default_reflabels")?;
            for (reftype, target) in n.entries() {
                let path = format!("default_reflabels.{reftype}");
                let Some(target_name) = opt_string(target, &path)? else {
                    return Err(invalid(target, &path, "a reflabel name", ""));
                };
                default_reflabels.insert(reftype.to_ascii_lowercase(), target_name);
            }
        }

        let inputfiles = read_inputfiles(get_section(&tree, "inputfiles")?)?;
        let max_delta_mjd = MaxDeltaMjd {
            dd: read_mjd(get_section(&tree, "DD")?, "DD")?,
            ff: read_mjd(get_section(&tree, "FF")?, "FF")?,
            ddff: read_mjd(get_section(&tree, "DDFF")?, "DDFF")?,
        };
        let output = read_output(get_section(&tree, "output")?)?;
        let calibration = read_calibration(get_section(&tree, "calibration")?)?;
        let combine = read_combine(&tree)?;
        let executor = read_executor(get_section(&tree, "executor")?)?;

        let mut sections = BTreeMap::new();
        for (name, node) in tree.entries() {
            if is_framework_section(name) {
                continue;
            }
            if !node.is_map() {
                if reflabels.contains(name) && !node.is_null() {
                    return Err(ConfigError::from(ConfigErrorKind::NotAMapping {
                        origin: node.source.clone(),
                        what: format!("the section of reflabel '{name}'"),
                        found: node.shape(),
                    }));
                }
                continue;
            }
            if !reflabels.contains(name)
                && let Some(s) = suggest(name, FRAMEWORK_SECTIONS.iter().copied())
            {
                warnings.push(format!(
                    "{}: section '{name}' is not a framework section and not in reflabels; treated as a reflabel section (did you mean '{s}'?)",
                    node.source
                ));
            }
            sections.insert(name.clone(), read_section(name, node)?);
        }
        for r in &reflabels {
            if !sections.contains_key(r) {
                sections.insert(r.clone(), empty_section(r));
            }
        }
        for p in &pall {
            for section in sections.values_mut() {
                if !section.params.contains_key(&p.key)
                    && !SECTION_FRAMEWORK_KEYS.contains(&p.key.as_str())
                {
                    section.pall.insert(p.key.clone(), p.value.clone());
                }
            }
        }

        Ok(Settings {
            instrument,
            profiles,
            reflabels,
            default_reflabels,
            inputfiles,
            max_delta_mjd,
            output,
            calibration,
            combine,
            executor,
            sections,
            pall,
            warnings,
            tree,
        })
    }
}

fn empty_section(name: &str) -> ReflabelSection {
    ReflabelSection {
        name: name.to_string(),
        source: Provenance::BuiltinDefault,
        reftype: None,
        imtypes: None,
        ssbsteps: None,
        ssb_save_steps: None,
        params: BTreeMap::new(),
        pall: BTreeMap::new(),
    }
}

/// Reflabels appear in options (`--<reflabel>.<name>`), comma lists and file names.
fn check_reflabel_name(name: &str, origin: &Provenance, path: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::from(ConfigErrorKind::InvalidValue {
            origin: origin.clone(),
            key_path: path.into(),
            expected: "a reflabel made of letters, digits, '_' and '-'".into(),
            found: format!("{name:?}"),
            hint: "a comma or a dot would clash with comma lists and --<reflabel>.<name> options"
                .into(),
        }))
    }
}

fn check_top_level(tree: &Node, reflabels: &[String], warnings: &mut Vec<String>) {
    for (key, node) in tree.entries() {
        let k = key.as_str();
        if node.is_map()
            || TOP_LEVEL_SCALARS.contains(&k)
            || IGNORED_TOP_LEVEL.contains(&k)
            // A framework section given as a scalar is reported when the section is read.
            || is_framework_section(k)
            || reflabels.iter().any(|r| r == k)
        {
            continue;
        }
        let known = TOP_LEVEL_SCALARS.iter().chain(IGNORED_TOP_LEVEL).copied();
        warnings.push(format!(
            "{}: top-level key '{key}' is not used by mkrefs and is ignored{}",
            node.source,
            did_you_mean(&suggest(key, known))
        ));
    }
}

fn invalid(node: &Node, path: &str, expected: &str, hint: &str) -> ConfigError {
    ConfigError::from(ConfigErrorKind::InvalidValue {
        origin: node.source.clone(),
        key_path: path.to_string(),
        expected: expected.to_string(),
        found: node.shape(),
        hint: hint.to_string(),
    })
}

fn get_section<'a>(tree: &'a Node, name: &str) -> Result<&'a Node> {
    match tree.get(name) {
        Some(n) => section_node(n, name),
        // The loader fills every framework section from the built-in defaults.
        None => Err(ConfigError::from(ConfigErrorKind::NotAMapping {
            origin: tree.source.clone(),
            what: format!("section '{name}'"),
            found: "nothing".into(),
        })),
    }
}

fn section_node<'a>(n: &'a Node, name: &str) -> Result<&'a Node> {
    if n.is_map() {
        Ok(n)
    } else {
        Err(ConfigError::from(ConfigErrorKind::NotAMapping {
            origin: n.source.clone(),
            what: format!("section '{name}'"),
            found: n.shape(),
        }))
    }
}

/// Rejects keys the framework does not know in one of its sections, with a suggestion.
fn check_keys(section: &Node, name: &str, known: &[&str], ignored: &[&str]) -> Result<()> {
    for (key, node) in section.entries() {
        if known.contains(&key.as_str()) || ignored.contains(&key.as_str()) {
            continue;
        }
        return Err(ConfigError::from(ConfigErrorKind::UnknownKey {
            origin: node.source.clone(),
            section: Some(name.to_string()),
            key: key.clone(),
            suggestion: suggest(key, known.iter().chain(ignored).copied()),
            known: known.iter().map(|s| s.to_string()).collect(),
            hint: "remove it or fix its spelling".into(),
        }));
    }
    Ok(())
}

fn scalar_text(node: &Node) -> Option<String> {
    match &node.value {
        NodeValue::Str(s) => Some(s.clone()),
        NodeValue::Int(i) => Some(i.to_string()),
        NodeValue::Float(x) => Some(format!("{x:?}")),
        NodeValue::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A string, with numbers taken as their text; null and "" are `None`.
fn opt_string(node: &Node, path: &str) -> Result<Option<String>> {
    match &node.value {
        NodeValue::Null => Ok(None),
        NodeValue::Str(s) if s.trim().is_empty() => Ok(None),
        _ => scalar_text(node)
            .map(Some)
            .ok_or_else(|| invalid(node, path, "a single value", "")),
    }
}

/// A list of strings: a YAML list, one comma-separated string, or null for none. A single
/// string is split on commas rather than iterated per character (an upstream bug).
fn string_list(node: &Node, path: &str) -> Result<Vec<String>> {
    match &node.value {
        NodeValue::Null => Ok(Vec::new()),
        NodeValue::List(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                scalar_text(item)
                    .map(|s| s.trim().to_string())
                    .ok_or_else(|| invalid(item, &format!("{path}[{i}]"), "a plain value", ""))
            })
            .collect(),
        _ => match scalar_text(node) {
            Some(s) => Ok(s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()),
            None => Err(invalid(
                node,
                path,
                "a list or a comma-separated string",
                "",
            )),
        },
    }
}

fn check_regex(node: &Node, path: &str, value: &Option<String>) -> Result<()> {
    if let Some(p) = value
        && let Err(e) = Regex::new(p)
    {
        return Err(ConfigError::from(ConfigErrorKind::InvalidValue {
            origin: node.source.clone(),
            key_path: path.to_string(),
            expected: "a valid regular expression".into(),
            found: format!(
                "{p:?} ({})",
                e.to_string()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            hint: String::new(),
        }));
    }
    Ok(())
}

fn req<'a>(section: &'a Node, name: &str, key: &str) -> Result<&'a Node> {
    section.get(key).ok_or_else(|| {
        ConfigError::from(ConfigErrorKind::NotAMapping {
            origin: section.source.clone(),
            what: format!("section '{name}' (missing key '{key}')"),
            found: "no such key".into(),
        })
    })
}

fn read_inputfiles(sec: &Node) -> Result<InputFilesSettings> {
    const S: &str = "inputfiles";
    check_keys(sec, S, INPUTFILES_KEYS, &[])?;
    let s = |key: &str| -> Result<Option<String>> {
        opt_string(req(sec, S, key)?, &format!("{S}.{key}"))
    };
    let l = |key: &str| -> Result<Vec<String>> {
        string_list(req(sec, S, key)?, &format!("{S}.{key}"))
    };
    let dark_pattern = s("dark_pattern")?;
    let flat_pattern = s("flat_pattern")?;
    let basenamepattern = s("basenamepattern")?;
    for (key, v) in [
        ("dark_pattern", &dark_pattern),
        ("flat_pattern", &flat_pattern),
        ("basenamepattern", &basenamepattern),
    ] {
        check_regex(req(sec, S, key)?, &format!("{S}.{key}"), v)?;
    }
    let dateobs_fitskey = s("dateobs_fitskey")?.ok_or_else(|| {
        invalid(
            sec.get("dateobs_fitskey").expect("checked by req"),
            "inputfiles.dateobs_fitskey",
            "a FITS keyword (e.g. DATE-END)",
            "the MJD of every input is computed from it",
        )
    })?;
    let upper = |v: Vec<String>| v.into_iter().map(|s| s.to_ascii_uppercase()).collect();
    Ok(InputFilesSettings {
        dark_pattern,
        flat_pattern,
        basenamepattern,
        dateobs_fitskey,
        timeobs_fitskey: s("timeobs_fitskey")?,
        mjdobs_fitskey: s("mjdobs_fitskey")?,
        requiredfitskeys: l("requiredfitskeys")?,
        optionalfitskeys: l("optionalfitskeys")?,
        dark_exp_types: upper(l("dark_exp_types")?),
        flat_exp_types: upper(l("flat_exp_types")?),
    })
}

fn read_mjd(sec: &Node, name: &str) -> Result<Option<f64>> {
    check_keys(sec, name, MJD_SECTION_KEYS, &[])?;
    let node = req(sec, name, "max_Delta_MJD")?;
    let path = format!("{name}.max_Delta_MJD");
    let v = match &node.value {
        NodeValue::Null => return Ok(None),
        NodeValue::Int(i) => *i as f64,
        NodeValue::Float(x) => *x,
        NodeValue::Str(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| invalid(node, &path, "a number of days, or null for no limit", ""))?,
        _ => {
            return Err(invalid(
                node,
                &path,
                "a number of days, or null for no limit",
                "",
            ));
        }
    };
    if v.is_nan() || v < 0.0 {
        return Err(invalid(node, &path, "a non-negative number of days", ""));
    }
    Ok(Some(v))
}

fn read_bool(node: &Node, path: &str) -> Result<bool> {
    match &node.value {
        NodeValue::Bool(b) => Ok(*b),
        NodeValue::Str(s) => {
            parse_bool_text(s).ok_or_else(|| invalid(node, path, "true or false", ""))
        }
        _ => Err(invalid(node, path, "true or false", "")),
    }
}

/// Booleans as text: what YAML 1.1 (and so upstream's PyYAML) and shell users write.
pub(crate) fn parse_bool_text(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

fn read_calibration(sec: &Node) -> Result<CalibrationSettings> {
    const S: &str = "calibration";
    check_keys(sec, S, CALIBRATION_KEYS, &[])?;
    let backend_node = req(sec, S, "backend")?;
    let backend = opt_string(backend_node, "calibration.backend")?
        .as_deref()
        .and_then(Backend::parse)
        .ok_or_else(|| {
            invalid(
                backend_node,
                "calibration.backend",
                "native or jwst",
                "native runs mkrefs' own steps; jwst runs the jwst package's strun",
            )
        })?;
    let strun_node = req(sec, S, "strun")?;
    let strun = opt_string(strun_node, "calibration.strun")?
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            invalid(
                strun_node,
                "calibration.strun",
                "the strun program (a name in PATH or a path)",
                "",
            )
        })?;
    let crds_path = opt_string(req(sec, S, "crds_path")?, "calibration.crds_path")?
        .filter(|s| !s.trim().is_empty());
    let python =
        opt_string(req(sec, S, "python")?, "calibration.python")?.filter(|s| !s.trim().is_empty());
    let keep_products = read_bool(req(sec, S, "keep_products")?, "calibration.keep_products")?;
    Ok(CalibrationSettings {
        backend,
        strun,
        crds_path,
        python,
        keep_products,
    })
}

/// The sbatch options of a mapping (`executor`, or one of its overrides).
fn read_batch_options(sec: &Node, path: &str) -> Result<BatchOptions> {
    let text = |key: &str| -> Result<Option<String>> {
        match sec.get(key) {
            Some(n) => match &n.value {
                NodeValue::Int(i) => Ok(Some(i.to_string())),
                _ => opt_string(n, &format!("{path}.{key}")),
            },
            None => Ok(None),
        }
    };
    let cpus_per_task = match sec.get("cpus_per_task") {
        None => None,
        Some(n) => match &n.value {
            NodeValue::Null => None,
            NodeValue::Int(i) if *i >= 1 => Some(u32::try_from(*i).unwrap_or(u32::MAX)),
            _ => {
                return Err(invalid(
                    n,
                    &format!("{path}.cpus_per_task"),
                    "a number of CPUs >= 1, or null for the job's threads",
                    "",
                ));
            }
        },
    };
    let extra_args = match sec.get("extra_args") {
        Some(n) => string_list(n, &format!("{path}.extra_args"))?,
        None => Vec::new(),
    };
    Ok(BatchOptions {
        partition: text("partition")?,
        account: text("account")?,
        qos: text("qos")?,
        time: text("time")?,
        mem: text("mem")?,
        retry_mem: text("retry_mem")?,
        cpus_per_task,
        extra_args,
    })
}

fn read_executor(sec: &Node) -> Result<ExecutorSettings> {
    const S: &str = "executor";
    check_keys(sec, S, EXECUTOR_KEYS, &[])?;
    let kind_node = req(sec, S, "kind")?;
    let kind = opt_string(kind_node, "executor.kind")?
        .as_deref()
        .and_then(ExecutorKind::parse)
        .ok_or_else(|| {
            invalid(
                kind_node,
                "executor.kind",
                "local or slurm",
                "local runs the jobs on this machine; slurm submits each with sbatch",
            )
        })?;
    let retries_node = req(sec, S, "retries")?;
    let retries = match &retries_node.value {
        NodeValue::Int(i) if *i >= 0 => u32::try_from(*i).unwrap_or(u32::MAX),
        NodeValue::Null => 0,
        _ => {
            return Err(invalid(
                retries_node,
                "executor.retries",
                "a count >= 0",
                "how often a job that failed for its node is submitted again",
            ));
        }
    };
    let mut overrides = BTreeMap::new();
    let over = req(sec, S, "overrides")?;
    if !over.is_null() {
        let over = section_node(over, "executor.overrides")?;
        for (name, node) in over.entries() {
            let path = format!("executor.overrides.{name}");
            let node = section_node(node, &path)?;
            check_keys(node, &path, EXECUTOR_OVERRIDE_KEYS, &[])?;
            overrides.insert(name.clone(), read_batch_options(node, &path)?);
        }
    }
    Ok(ExecutorSettings {
        kind,
        batch: read_batch_options(sec, S)?,
        retries,
        overrides,
    })
}

/// `combine:` as a section, or `combine: false`/`true` alone (the rest as built in).
fn read_combine(tree: &Node) -> Result<CombineSettings> {
    const S: &str = "combine";
    let node = tree.get(S).ok_or_else(|| {
        ConfigError::from(ConfigErrorKind::NotAMapping {
            origin: tree.source.clone(),
            what: format!("section '{S}'"),
            found: "nothing".into(),
        })
    })?;
    if !node.is_map() {
        let defaults = builtin_defaults();
        let mut settings = read_combine(&defaults)?;
        settings.enabled = read_bool(node, "combine")?;
        return Ok(settings);
    }
    check_keys(node, S, COMBINE_KEYS, &[])?;
    let method_node = req(node, S, "method")?;
    let method = opt_string(method_node, "combine.method")?
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty());
    if let Some(m) = &method
        && !COMBINE_METHODS.contains(&m.as_str())
    {
        return Err(invalid(
            method_node,
            "combine.method",
            "mean or median (sigma-clipped), or null for each reftype's own rule",
            "",
        ));
    }
    let clip_node = req(node, S, "clip_sigma")?;
    let clip_sigma = match &clip_node.value {
        NodeValue::Int(i) => *i as f64,
        NodeValue::Float(x) => *x,
        NodeValue::Str(t) => t.trim().parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    };
    if !(clip_sigma.is_finite() && clip_sigma > 0.0) {
        return Err(invalid(
            clip_node,
            "combine.clip_sigma",
            "a number of standard deviations > 0",
            "values further than this from a pixel's median are left out",
        ));
    }
    let dq_node = req(node, S, "dq_min")?;
    let dq_min = match &dq_node.value {
        NodeValue::Null => None,
        NodeValue::Int(i) if *i >= 1 => Some(u32::try_from(*i).unwrap_or(u32::MAX)),
        NodeValue::Str(t) if t.trim().parse::<u32>().is_ok_and(|n| n >= 1) => t.trim().parse().ok(),
        _ => {
            return Err(invalid(
                dq_node,
                "combine.dq_min",
                "a count of inputs >= 1, or null for each reftype's own rule",
                "",
            ));
        }
    };
    Ok(CombineSettings {
        enabled: read_bool(req(node, S, "enabled")?, "combine.enabled")?,
        method,
        clip_sigma,
        dq_min,
    })
}

fn read_output(sec: &Node) -> Result<OutputSettings> {
    const S: &str = "output";
    check_keys(sec, S, OUTPUT_KEYS, IGNORED_OUTPUT_KEYS)?;
    let s = |key: &str| -> Result<Option<String>> {
        opt_string(req(sec, S, key)?, &format!("{S}.{key}"))
    };
    let outrootdir = s("outrootdir")?.ok_or_else(|| {
        invalid(
            sec.get("outrootdir").expect("checked by req"),
            "output.outrootdir",
            "a directory",
            "use . for the current directory",
        )
    })?;
    let run_node = req(sec, S, "runID")?;
    let run_id = match &run_node.value {
        NodeValue::Null => RunIdSetting::None,
        NodeValue::Int(i) => u32::try_from(*i)
            .map(RunIdSetting::Number)
            .map_err(|_| invalid(run_node, "output.runID", "AUTO, a run number or null", ""))?,
        NodeValue::Str(t) if t.trim().is_empty() => RunIdSetting::None,
        NodeValue::Str(t) if t.trim().eq_ignore_ascii_case("auto") => RunIdSetting::Auto,
        NodeValue::Str(t) => t
            .trim()
            .parse::<u32>()
            .map(RunIdSetting::Number)
            .map_err(|_| invalid(run_node, "output.runID", "AUTO, a run number or null", ""))?,
        _ => {
            return Err(invalid(
                run_node,
                "output.runID",
                "AUTO, a run number or null",
                "",
            ));
        }
    };
    let nd_node = req(sec, S, "runIDNdigits")?;
    let nd = match &nd_node.value {
        NodeValue::Int(i) => Some(*i),
        NodeValue::Str(t) => t.trim().parse::<i64>().ok(),
        _ => None,
    };
    let run_id_ndigits = match nd {
        Some(n) if (1..=9).contains(&n) => n as usize,
        _ => {
            return Err(invalid(
                nd_node,
                "output.runIDNdigits",
                "a number of digits from 1 to 9",
                "",
            ));
        }
    };
    Ok(OutputSettings {
        outrootdir,
        outsubdir: s("outsubdir")?,
        run_id,
        run_id_ndigits,
        ssbdir: s("ssbdir")?,
        skip_runid_ssbdir: read_bool(
            req(sec, S, "skip_runID_ssbdir")?,
            "output.skip_runID_ssbdir",
        )?,
        pipeline_prod_search_dir: string_list(
            req(sec, S, "pipeline_prod_search_dir")?,
            "output.pipeline_prod_search_dir",
        )?,
        addsuffix: s("addsuffix")?.filter(|v| !v.trim().is_empty()),
    })
}

/// `ssbsteps`/`ssb_save_steps`: null or empty is "none" (`Some("")`), a list is joined.
fn steps_value(node: &Node, path: &str) -> Result<Sourced<String>> {
    let value = match &node.value {
        NodeValue::Null => String::new(),
        NodeValue::List(_) => string_list(node, path)?.join(", "),
        _ => scalar_text(node)
            .map(|s| s.trim().to_string())
            .ok_or_else(|| invalid(node, path, "a comma-separated list of steps", ""))?,
    };
    Ok(Sourced {
        value,
        source: node.source.clone(),
    })
}

fn read_section(name: &str, node: &Node) -> Result<ReflabelSection> {
    let mut section = empty_section(name);
    section.source = node.source.clone();
    for (key, child) in node.entries() {
        let path = format!("{name}.{key}");
        match key.as_str() {
            "reftype" | "imtypes" => {
                let v = opt_string(child, &path)?.map(|value| Sourced {
                    value,
                    source: child.source.clone(),
                });
                if key == "reftype" {
                    section.reftype = v;
                } else {
                    section.imtypes = v;
                }
            }
            "ssbsteps" => section.ssbsteps = Some(steps_value(child, &path)?),
            "ssb_save_steps" => section.ssb_save_steps = Some(steps_value(child, &path)?),
            k if SECTION_IGNORED_KEYS.contains(&k) => {}
            _ => {
                section.params.insert(key.clone(), child.clone());
            }
        }
    }
    Ok(section)
}
