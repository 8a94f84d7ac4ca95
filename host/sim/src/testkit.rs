//! Helpers for the tests of the generators in this workspace: small uncal ramps with
//! a known truth written as real FITS files, a job runner that drives a generator through
//! `ReferenceGenerator::call_algorithm` with a recording host, and the stdatamodels validator
//! (`tests/python/validate_reffile.py` of the mkrefs tree, run by the test venv's Python).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use mkrefs_plugin_api::abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef, std_types::RStr};
use mkrefs_plugin_api::{
    GeneratorError, HostCallbacks, HostCallbacks_TO, ImageKind, InputImage, Job, JobReport,
    LogLevel, PRODUCT_PREFIX, Param, ParamValue, ReferenceGenerator,
};
use serde_json::Value;

use crate::rng::stream;
use mkrefs_support::fits::FitsWriter;
use mkrefs_support::header::HeaderValue;

/// Records what a generator tells the host.
#[derive(Default)]
pub struct Recorder {
    pub lines: Mutex<Vec<(LogLevel, String)>>,
    pub progress: Mutex<Vec<(String, u64, u64)>>,
}

impl HostCallbacks for Recorder {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        self.lines
            .lock()
            .unwrap()
            .push((level, message.to_string()));
    }
    fn progress(&self, stage: RStr<'_>, done: u64, total: u64) {
        self.progress
            .lock()
            .unwrap()
            .push((stage.to_string(), done, total));
    }
}

/// What a job produced.
pub struct Outcome {
    pub result: Result<JobReport, GeneratorError>,
    pub log: Vec<(LogLevel, String)>,
    pub progress: Vec<(String, u64, u64)>,
}

impl Outcome {
    pub fn ok(&self) -> &JobReport {
        match &self.result {
            Ok(r) => r,
            Err(e) => panic!("job failed: {e}\nlog: {:?}", self.log),
        }
    }
    pub fn err(&self) -> &GeneratorError {
        match &self.result {
            Ok(_) => panic!("job succeeded but should have failed; log: {:?}", self.log),
            Err(e) => e,
        }
    }
    pub fn logged(&self, level: LogLevel, needle: &str) -> bool {
        self.log
            .iter()
            .any(|(l, m)| *l == level && m.contains(needle))
    }
}

/// One input of a test job: the file to read, the raw file, and intermediate products
/// (passed as the host passes them, see `Job::product`).
#[derive(Clone, Debug)]
pub struct TestInput {
    pub label: String,
    pub kind: ImageKind,
    pub path: PathBuf,
    pub raw: PathBuf,
    /// (product name, file): `jump`, `fitopt`, `rateints`, ...
    pub products: Vec<(String, PathBuf)>,
}

impl TestInput {
    /// Input `i` (0-based) of a kind, labelled D1.. or F1.., read from and raw at `path`.
    pub fn new(kind: ImageKind, i: usize, path: &Path) -> TestInput {
        let letter = match kind {
            ImageKind::Dark => 'D',
            ImageKind::Flat => 'F',
        };
        TestInput {
            label: format!("{letter}{}", i + 1),
            kind,
            path: path.to_path_buf(),
            raw: path.to_path_buf(),
            products: Vec::new(),
        }
    }
}

/// Runs `generator` on `inputs` (darks D1, D2, ...) writing `output`, with the declared
/// defaults overridden by `overrides`, on 2 threads.
pub fn run_job<G: ReferenceGenerator>(
    generator: &G,
    inputs: &[PathBuf],
    output: &Path,
    overrides: &[(&str, ParamValue)],
) -> Outcome {
    let inputs: Vec<TestInput> = inputs
        .iter()
        .enumerate()
        .map(|(i, p)| TestInput::new(ImageKind::Dark, i, p))
        .collect();
    run_job_with(generator, &inputs, output, overrides)
}

/// [`run_job`] with any inputs: darks and flats, raw files and intermediate products.
pub fn run_job_with<G: ReferenceGenerator>(
    generator: &G,
    inputs: &[TestInput],
    output: &Path,
    overrides: &[(&str, ParamValue)],
) -> Outcome {
    let mut params: Vec<Param> = generator
        .extra_optional_arguments()
        .into_iter()
        .map(|s| Param::new(s.name.as_str(), s.default))
        .collect();
    for (name, value) in overrides {
        let p = params
            .iter_mut()
            .find(|p| p.name.as_str() == *name)
            .unwrap_or_else(|| panic!("no parameter {name}"));
        p.value = value.clone();
    }
    let images: Vec<InputImage> = inputs
        .iter()
        .enumerate()
        .map(|(k, i)| InputImage {
            label: i.label.as_str().into(),
            kind: i.kind,
            path: i.path.to_string_lossy().as_ref().into(),
            raw_path: i.raw.to_string_lossy().as_ref().into(),
            mjd: 60000.0 + k as f64,
            detector: "NRCA1".into(),
            header: Default::default(),
        })
        .collect();
    let extensions: Vec<Param> = inputs
        .iter()
        .flat_map(|i| {
            i.products.iter().map(move |(name, p)| {
                Param::new(
                    &format!("{PRODUCT_PREFIX}{}.{name}", i.label),
                    ParamValue::str(p.to_string_lossy()),
                )
            })
        })
        .collect();
    let recorder = Recorder::default();
    let scratch = output.with_extension("scratch");
    let job = Job {
        reflabel: generator.reflabel().into(),
        reftype: generator.reftype().into(),
        cmd_id: 0,
        output: output.to_string_lossy().as_ref().into(),
        inputs: images.into(),
        params: params.into(),
        scratch_dir: scratch.to_string_lossy().as_ref().into(),
        threads: 2,
        extensions: extensions.into(),
        host: HostCallbacks_TO::from_ptr(RRef::new(&recorder), TD_Opaque),
    };
    let result = generator.call_algorithm(&job);
    drop(job);
    Outcome {
        result,
        log: recorder.lines.into_inner().unwrap(),
        progress: recorder.progress.into_inner().unwrap(),
    }
}

/// A simulated dark exposure: per read `bias + dark·(g+1) + rn·N(0,1)`, rounded to u16, with
/// per-pixel truth maps.
#[derive(Clone, Debug)]
pub struct Sim {
    pub instrument: &'static str,
    pub detector: &'static str,
    pub subarray: &'static str,
    pub substrt: (i64, i64),
    pub fastaxis: i64,
    pub slowaxis: i64,
    pub nints: usize,
    pub ngroups: usize,
    pub ny: usize,
    pub nx: usize,
    /// Per-read noise of every pixel, DN.
    pub readnoise: Vec<f64>,
    /// Bias of every pixel, DN.
    pub bias: Vec<f64>,
    /// Dark signal per group, DN (the first read already holds one group's worth).
    pub dark_per_group: f64,
}

impl Sim {
    /// A NIRCam SUB64P-like 64×64 window with a smooth read-noise map of 4–8 DN and a bias
    /// pattern around 12000 DN.
    pub fn nircam(nints: usize, ngroups: usize) -> Sim {
        Sim::nircam_sized(nints, ngroups, 64, 64, "SUB64P", (1, 1))
    }

    pub fn nircam_sized(
        nints: usize,
        ngroups: usize,
        ny: usize,
        nx: usize,
        subarray: &'static str,
        substrt: (i64, i64),
    ) -> Sim {
        let readnoise = (0..ny * nx)
            .map(|i| 4.0 + 4.0 * ((i % nx) as f64 / nx as f64))
            .collect();
        let bias = (0..ny * nx)
            .map(|i| {
                let (y, x) = ((i / nx) as f64, (i % nx) as f64);
                12_000.0 + 300.0 * (0.1 * x).sin() + 5.0 * y
            })
            .collect();
        Sim {
            instrument: "NIRCAM",
            detector: "NRCA1",
            subarray,
            substrt,
            fastaxis: -1,
            slowaxis: 2,
            nints,
            ngroups,
            ny,
            nx,
            readnoise,
            bias,
            dark_per_group: 2.0,
        }
    }

    /// The variance of a CDS of two reads, including the u16 rounding (1/12 DN² per read).
    pub fn cds_sigma(&self, p: usize) -> f64 {
        (2.0 * (self.readnoise[p].powi(2) + 1.0 / 12.0)).sqrt()
    }

    /// The ramp values `[int][group][y][x]` for seed `seed`.
    pub fn ramp(&self, seed: u64) -> Vec<f64> {
        let npix = self.ny * self.nx;
        let mut out = Vec::with_capacity(self.nints * self.ngroups * npix);
        for i in 0..self.nints {
            for g in 0..self.ngroups {
                let mut rng = stream(seed, &[i as u64, g as u64]);
                for p in 0..npix {
                    let v = self.bias[p]
                        + self.dark_per_group * (g + 1) as f64
                        + self.readnoise[p] * rng.normal();
                    out.push(v.round());
                }
            }
        }
        out
    }

    /// Writes an uncal file (u16 SCI, BZERO 32768) of `ramp(seed)`.
    pub fn write(&self, path: &Path, seed: u64) -> PathBuf {
        let data: Vec<u16> = self
            .ramp(seed)
            .iter()
            .map(|&v| v.clamp(0.0, 65535.0) as u16)
            .collect();
        self.write_data(path, &[self.nints, self.ngroups, self.ny, self.nx], &data);
        path.to_path_buf()
    }

    /// Writes a file with this simulation's primary header and `data` as SCI of `shape`.
    pub fn write_data<T: mkrefs_support::fits::Pixel>(
        &self,
        path: &Path,
        shape: &[usize],
        data: &[T],
    ) {
        let mut w = FitsWriter::create(path).unwrap();
        self.write_primary(&mut w);
        w.write_image::<T>("SCI", shape, data).unwrap();
        w.finish().unwrap();
    }

    pub fn write_primary(&self, w: &mut FitsWriter) {
        let s = |v: &str| HeaderValue::Str(v.to_string());
        let i = HeaderValue::Int;
        let keys = [
            ("TELESCOP", s("JWST")),
            ("INSTRUME", s(self.instrument)),
            ("DETECTOR", s(self.detector)),
            ("SUBARRAY", s(self.subarray)),
            ("SUBSTRT1", i(self.substrt.0)),
            ("SUBSTRT2", i(self.substrt.1)),
            ("SUBSIZE1", i(self.nx as i64)),
            ("SUBSIZE2", i(self.ny as i64)),
            ("FASTAXIS", i(self.fastaxis)),
            ("SLOWAXIS", i(self.slowaxis)),
            ("READPATT", s("RAPID")),
            ("NINTS", i(self.nints as i64)),
            ("NGROUPS", i(self.ngroups as i64)),
            ("NFRAMES", i(1)),
            ("EXP_TYPE", s("NRC_DARK")),
            ("DATE-OBS", s("2024-01-01")),
            ("TIME-OBS", s("00:00:00")),
        ];
        for (k, v) in &keys {
            w.set_primary_key(k, v, "").unwrap();
        }
    }
}

/// The workspace root of the mkrefs tree.
pub fn workspace() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The Python with stdatamodels: `MKREFS_TEST_PYTHON`, else `<workspace>/target/test-venv`.
/// Panics with what to do when neither exists: the validator is part of the tests.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("MKREFS_TEST_PYTHON") {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "MKREFS_TEST_PYTHON={} does not exist",
            p.display()
        );
        return p;
    }
    let venv = workspace().join("target/test-venv/bin/python");
    assert!(
        venv.exists(),
        "no Python with stdatamodels to validate reference files: {} does not exist and \
         MKREFS_TEST_PYTHON is not set; run `bash tests/run.sh` (or \
         `tests/python/ensure-venv.sh target/test-venv`) in the workspace root",
        venv.display()
    );
    venv
}

/// Runs the stdatamodels validator on `paths`: its exit status and one JSON result per file,
/// in order (`ok`, `model`, `error`, `shape`, `sci_median`, ...).
pub fn run_validator(paths: &[PathBuf]) -> (i32, Vec<Value>) {
    let script = workspace().join("tests/python/validate_reffile.py");
    let out = Command::new(python())
        .arg(&script)
        .args(paths)
        .output()
        .expect("cannot run the validator");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let results: Vec<Value> = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}\n{stderr}")))
        .collect();
    assert_eq!(
        results.len(),
        paths.len(),
        "one JSON line per file\nstdout: {stdout}\nstderr: {stderr}"
    );
    (out.status.code().unwrap_or(-1), results)
}

/// Asserts that stdatamodels accepts every file under strict validation; returns the results.
pub fn assert_valid(paths: &[PathBuf]) -> Vec<Value> {
    let (code, results) = run_validator(paths);
    for r in &results {
        assert_eq!(
            r["ok"],
            Value::Bool(true),
            "stdatamodels rejected a file: {r}"
        );
    }
    assert_eq!(code, 0, "validator failed: {results:?}");
    results
}

/// Validates one file (panics unless stdatamodels accepts it); returns its JSON result.
pub fn validate(path: &Path) -> Value {
    assert_valid(&[path.to_path_buf()]).remove(0)
}

/// Runs a Python snippet with `path` as `sys.argv[1]`, returning stdout.
pub fn python_eval(code: &str, path: &Path) -> String {
    python_eval_args(code, [path])
}

/// [`python_eval`] with any arguments (`sys.argv[1:]`).
pub fn python_eval_args<A: AsRef<std::ffi::OsStr>>(
    code: &str,
    args: impl IntoIterator<Item = A>,
) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .expect("cannot run python");
    assert!(
        out.status.success(),
        "python failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The HISTORY card texts of the primary header, read from the raw 80-character cards.
pub fn history_cards(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for card in bytes.chunks(80) {
        let text = String::from_utf8_lossy(card);
        if text.starts_with("END ") && text.trim() == "END" {
            break;
        }
        if let Some(rest) = text.strip_prefix("HISTORY ") {
            out.push(rest.trim_end().to_string());
        }
    }
    out
}

/// Median of finite values.
pub fn median(v: &[f64]) -> f64 {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    f.sort_by(f64::total_cmp);
    let n = f.len();
    if n % 2 == 1 {
        f[n / 2]
    } else {
        0.5 * (f[n / 2 - 1] + f[n / 2])
    }
}

/// Reads a 2-D image extension as f64.
pub fn read_image(path: &Path, hdu: &str) -> (Vec<f64>, usize, usize) {
    let mut r = mkrefs_support::fits::ImageReader::open(path, hdu).unwrap();
    let (ny, nx) = (r.ny(), r.nx());
    (r.read_plane::<f64>(0).unwrap(), ny, nx)
}

/// A simulated data set: `darks` uncal darks of `cfg` and its truth.
pub fn simulated_darks(
    dir: &Path,
    cfg: &crate::SimConfig,
    darks: usize,
) -> (Vec<PathBuf>, crate::Truth) {
    use crate::{Product, ProductSet, Truth, write_dataset};
    let manifest = write_dataset(dir, cfg, darks, 0, ProductSet::NONE).unwrap();
    let files = manifest
        .exposures
        .iter()
        .map(|e| dir.join(e.file(Product::Uncal).unwrap()))
        .collect();
    (files, Truth::read(&dir.join(&manifest.truth)).unwrap())
}

/// The context of a cache written by [`write_crds_cache`].
pub const CRDS_TEST_CONTEXT: &str = "jwst_0001.pmap";

/// One reference rmap of a handmade CRDS cache: its reftype (lower case), its `parkey` tuple
/// and its selector, both in CRDS mapping syntax, e.g.
/// `(('META.INSTRUMENT.DETECTOR',), ('META.OBSERVATION.DATE', 'META.OBSERVATION.TIME'))` and
/// `Match({ ('NRCA1',) : UseAfter({ '2020-01-01 00:00:00' : 'jwst_nircam_mask_0001.fits', }), })`.
pub struct CrdsRmap<'a> {
    pub reftype: &'a str,
    pub parkey: &'a str,
    pub selector: &'a str,
}

/// Writes a handmade local CRDS cache below `root` for one instrument: the context
/// [`CRDS_TEST_CONTEXT`] -> `jwst_<instrument>_0001.imap` -> one `jwst_<instrument>_<reftype>_0001.rmap`
/// per entry of `rmaps`, with real checksums (the test venv's crds writes them:
/// `python -m crds.refactoring.checksum`), `config/jwst/server_config` naming the context, and
/// each `(file, name)` of `references` copied to `references/jwst/<instrument>/<name>`. Returns
/// the environment under which crds uses the cache without a network: `CRDS_PATH`,
/// `CRDS_MODE=local`, a "serverless" `CRDS_SERVER_URL`, `CRDS_CONTEXT`.
pub fn write_crds_cache(
    root: &Path,
    instrument: &str,
    rmaps: &[CrdsRmap<'_>],
    references: &[(&Path, &str)],
) -> Vec<(String, String)> {
    let instrument = instrument.to_ascii_lowercase();
    let upper = instrument.to_ascii_uppercase();
    let mappings = root.join("mappings/jwst");
    let refs = root.join("references/jwst").join(&instrument);
    let config = root.join("config/jwst");
    for d in [&mappings, &refs, &config] {
        std::fs::create_dir_all(d).unwrap();
    }
    let imap = format!("jwst_{instrument}_0001.imap");
    let mut files = Vec::new();
    let mut write = |name: &str, text: String| {
        let path = mappings.join(name);
        std::fs::write(&path, text).unwrap();
        files.push(path);
    };
    write(
        CRDS_TEST_CONTEXT,
        format!(
            "header = {{\n    'derived_from' : 'handmade for mkrefs tests',\n    'mapping' : \
             'PIPELINE',\n    'name' : '{CRDS_TEST_CONTEXT}',\n    'observatory' : 'JWST',\n    \
             'parkey' : ('META.INSTRUMENT.NAME',),\n    'sha1sum' : 'none',\n}}\n\nselector = \
             {{\n    '{upper}' : '{imap}',\n}}\n"
        ),
    );
    let mut entries = String::new();
    for r in rmaps {
        let rmap = format!("jwst_{instrument}_{}_0001.rmap", r.reftype);
        entries.push_str(&format!("    '{}' : '{rmap}',\n", r.reftype));
        write(
            &rmap,
            format!(
                "header = {{\n    'classes' : ('Match', 'UseAfter'),\n    'derived_from' : \
                 'handmade for mkrefs tests',\n    'filekind' : '{}',\n    'instrument' : \
                 '{upper}',\n    'mapping' : 'REFERENCE',\n    'name' : '{rmap}',\n    \
                 'observatory' : 'JWST',\n    'parkey' : {},\n    'sha1sum' : 'none',\n}}\n\n\
                 selector = {}\n",
                r.reftype.to_ascii_uppercase(),
                r.parkey,
                r.selector
            ),
        );
    }
    write(
        &imap,
        format!(
            "header = {{\n    'derived_from' : 'handmade for mkrefs tests',\n    'instrument' : \
             '{upper}',\n    'mapping' : 'INSTRUMENT',\n    'name' : '{imap}',\n    \
             'observatory' : 'JWST',\n    'parkey' : ('REFTYPE',),\n    'sha1sum' : 'none',\n}}\
             \n\nselector = {{\n{entries}}}\n"
        ),
    );
    let out = Command::new(python())
        .args(["-m", "crds.refactoring.checksum"])
        .args(&files)
        .env("CRDS_PATH", root)
        .output()
        .expect("cannot run the test venv's python");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            out.status.success() && !text.contains("'sha1sum' : 'none'"),
            "crds did not write the checksum of {}:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::write(
        config.join("server_config"),
        format!(
            "{{'observatory': 'jwst', 'operational_context': '{CRDS_TEST_CONTEXT}', \
             'last_synced': 'never', 'bad_files_list': [], 'force_remote_mode': False}}\n"
        ),
    )
    .unwrap();
    for (file, name) in references {
        std::fs::copy(file, refs.join(name)).unwrap();
    }
    [
        ("CRDS_PATH", root.display().to_string()),
        ("CRDS_MODE", "local".to_string()),
        (
            "CRDS_SERVER_URL",
            "https://jwst-serverless-mode.stsci.edu".to_string(),
        ),
        ("CRDS_CONTEXT", CRDS_TEST_CONTEXT.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}
