//! Helpers shared by the end-to-end tests: the real `mkrefs` binary, the stdatamodels
//! validator, and building plugin crates.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod detection;
pub use detection::DetectionTable;

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ lives in the workspace root")
        .to_path_buf()
}

/// The directory cargo builds into for this test run (`target/debug` or `target/release`).
fn profile_dir() -> PathBuf {
    // The test executable lives in <target>/<profile>/deps/.
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("test executables live in <target>/<profile>/deps")
        .to_path_buf()
}

/// The `mkrefs` binary of this build, built on first use so tests never run a stale one.
pub fn mkrefs_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let profile = profile_dir();
        let release = profile.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(workspace_root())
            .args(["build", "--quiet", "-p", "mkrefs", "--bin", "mkrefs"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo runs");
        assert!(status.success(), "building mkrefs failed");
        let bin = profile.join("mkrefs");
        assert!(bin.is_file(), "no mkrefs binary at {}", bin.display());
        bin
    })
    .clone()
}

/// A command running the real `mkrefs` with a clean environment for config and plugins.
pub fn mkrefs(cwd: &Path) -> Command {
    let mut cmd = Command::new(mkrefs_bin());
    cmd.current_dir(cwd)
        .env_remove("MKREFS_CONFIG")
        .env_remove("JWST_MKREFS_CONFIGFILE")
        .env_remove("MKREFS_PLUGIN_PATH")
        .env("XDG_DATA_HOME", cwd.join("xdg-data"))
        .env("XDG_CACHE_HOME", cwd.join("xdg-cache"))
        .env("NO_COLOR", "1");
    cmd
}

/// Output of a finished command as text, for assertions and failure messages.
pub struct Ran {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.success()
    }
    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

pub fn run(cmd: &mut Command) -> Ran {
    let out: Output = cmd.output().expect("command starts");
    Ran {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub use mkrefs_sim::testkit::{
    assert_valid, history_cards, python, python_eval, python_eval_args, run_validator,
};

/// The target directory shared by every plugin crate the tests build, so their common
/// dependencies compile once.
pub fn plugin_target_dir() -> PathBuf {
    workspace_root().join("target").join("plugin-builds")
}

/// Builds a cdylib crate (release is not needed: debug is faster to build) and returns the
/// path of the library it produced.
pub fn build_cdylib(manifest_dir: &Path, lib_name: &str, extra_args: &[&str]) -> PathBuf {
    let target = plugin_target_dir();
    let ran = run(Command::new(env!("CARGO"))
        .current_dir(manifest_dir)
        .env("CARGO_TARGET_DIR", &target)
        .args(["build", "--quiet", "--lib"])
        .args(extra_args));
    assert!(
        ran.ok(),
        "building {} failed: {ran:?}",
        manifest_dir.display()
    );
    let file = format!(
        "{}{lib_name}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    );
    let path = target.join("debug").join(file);
    assert!(path.is_file(), "no library at {}", path.display());
    path
}

/// Copies a library into a plugin directory under the name mkrefs looks for.
pub fn install_plugin(lib: &Path, plugin_dir: &Path, reflabel: &str) -> PathBuf {
    std::fs::create_dir_all(plugin_dir).unwrap();
    let dest = plugin_dir.join(format!(
        "{}mkref_{reflabel}{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    std::fs::copy(lib, &dest).unwrap();
    dest
}

/// A small simulated NIRCam data set (a `size`×`size` subarray at the detector corner, 2
/// integrations × `ngroups` groups) in `dir`; returns the uncal darks and flats, in order.
pub fn small_dataset(
    dir: &Path,
    darks: usize,
    flats: usize,
    size: usize,
    ngroups: usize,
    seed: u64,
) -> (Vec<PathBuf>, Vec<PathBuf>) {
    use mkrefs_sim::{Kind, ProductSet, SimConfig, write_dataset};
    std::fs::create_dir_all(dir).unwrap();
    let cfg = SimConfig::default()
        .with_square_subarray(size)
        .with_ramp(2, ngroups)
        .with_seed(seed);
    let manifest = write_dataset(dir, &cfg, darks, flats, ProductSet::NONE).expect("simulates");
    let files = |kind: Kind| -> Vec<PathBuf> {
        manifest
            .of_kind(kind)
            .map(|e| dir.join(&e.files[0].file))
            .collect()
    };
    (files(Kind::Dark), files(Kind::Flat))
}

/// Simulated uncal exposures of a `size`x`size` NIRCam subarray at the detector corner (so
/// refpix has reference pixels), with the calibration steps' reference files made from the
/// truth.
pub struct CalibrationData {
    pub darks: Vec<PathBuf>,
    pub flats: Vec<PathBuf>,
    /// (reftype in lower case, file) of every step reference file.
    pub refs: Vec<(String, PathBuf)>,
}

impl CalibrationData {
    /// Writes `darks` darks and `flats` flats of 2 integrations x `ngroups` groups into `dir`.
    pub fn write(
        dir: &Path,
        (darks, flats): (usize, usize),
        size: usize,
        ngroups: usize,
        seed: u64,
    ) -> CalibrationData {
        use mkrefs_sim::{
            Kind, ProductSet, SimConfig, StepReference, Truth, write_dataset, write_step_references,
        };
        std::fs::create_dir_all(dir).unwrap();
        let cfg = SimConfig::default()
            .with_square_subarray(size)
            .with_ramp(2, ngroups)
            .with_seed(seed);
        let manifest = write_dataset(dir, &cfg, darks, flats, ProductSet::NONE).unwrap();
        let files = |kind: Kind| -> Vec<PathBuf> {
            manifest
                .of_kind(kind)
                .map(|e| dir.join(&e.files[0].file))
                .collect()
        };
        let (darks, flats) = (files(Kind::Dark), files(Kind::Flat));
        let example = darks.first().or(flats.first()).expect("an exposure");
        let truth = Truth::read(&dir.join(&manifest.truth)).unwrap();
        let refs = write_step_references(dir, example, &truth, &StepReference::ALL)
            .unwrap()
            .into_iter()
            .map(|(r, p)| (r.to_ascii_lowercase(), p))
            .collect();
        CalibrationData { darks, flats, refs }
    }

    /// The darks, then the flats, as command-line words.
    pub fn uncal(&self) -> Vec<String> {
        self.darks
            .iter()
            .chain(&self.flats)
            .map(|p| p.display().to_string())
            .collect()
    }

    /// `--pp reffile4ssb <reftype> <file>` for every step reference file.
    pub fn ref_args(&self) -> Vec<String> {
        self.refs
            .iter()
            .flat_map(|(reftype, path)| {
                [
                    "--pp".to_string(),
                    "reffile4ssb".to_string(),
                    reftype.clone(),
                    path.display().to_string(),
                ]
            })
            .collect()
    }
}

/// `--pp reffile4ssb <reftype> <file>` for every step reference file `mkrefs simulate
/// --step-references` wrote into `sim_dir` for `detector` (`sim_<reftype>_<detector>.fits`).
pub fn step_reference_args(sim_dir: &Path, detector: &str) -> Vec<String> {
    mkrefs_sim::StepReference::ALL
        .iter()
        .flat_map(|r| {
            let reftype = r.reftype().to_ascii_lowercase();
            let file = sim_dir.join(format!(
                "sim_{reftype}_{}.fits",
                detector.to_ascii_lowercase()
            ));
            assert!(file.is_file(), "{} is missing", file.display());
            [
                "--pp".to_string(),
                "reffile4ssb".to_string(),
                reftype,
                file.display().to_string(),
            ]
        })
        .collect()
}

/// The final stage's files (`final/*.fits`) under a run's output tree, sorted.
pub fn final_outputs(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() && p.file_name().is_some_and(|n| n == "final") {
                    out.extend(
                        std::fs::read_dir(&p)
                            .into_iter()
                            .flatten()
                            .flatten()
                            .map(|e| e.path())
                            .filter(|f| f.extension().is_some_and(|x| x == "fits")),
                    );
                } else if p.is_dir() && p.file_name().is_none_or(|n| n != "ssb") {
                    walk(&p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// The data of every HDU and the header cards of each reference file below `a` and `b`,
/// final files included, compared with astropy (DATE, which is the time of writing, and the
/// checksums that cover it aside).
pub fn same_reference_files(a: &Path, b: &Path) {
    let files = |root: &Path| -> Vec<PathBuf> {
        let mut f = fits_outputs(root);
        f.extend(final_outputs(root));
        f.sort();
        f
    };
    let (fa, fb) = (files(a), files(b));
    assert_eq!(fa.len(), fb.len(), "{fa:?} vs {fb:?}");
    assert!(!fa.is_empty());
    let code = r#"
import sys, numpy as np
from astropy.io import fits
a, b = fits.open(sys.argv[1]), fits.open(sys.argv[2])
assert [h.name for h in a] == [h.name for h in b]
skip = ('DATE', 'CHECKSUM', 'DATASUM')
for x, y in zip(a, b):
    kx = [(k, v) for k, v in x.header.items() if k not in skip]
    ky = [(k, v) for k, v in y.header.items() if k not in skip]
    assert kx == ky, (x.name, set(kx) ^ set(ky))
    if x.data is not None:
        assert np.asarray(x.data).tobytes() == np.asarray(y.data).tobytes(), x.name
print('same')
"#;
    for (x, y) in fa.iter().zip(&fb) {
        let out = std::process::Command::new(python())
            .args(["-c", code])
            .args([x, y])
            .output()
            .unwrap();
        assert!(
            out.status.success() && String::from_utf8_lossy(&out.stdout).contains("same"),
            "{} and {} differ: {}",
            x.display(),
            y.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The reference files (`*.fits`) under a run's output tree, sorted.
pub fn fits_outputs(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    // Calibrated products, and the final stage's copies or combinations
                    // of the reference files (listed by `final_outputs`).
                    if p.file_name().is_some_and(|n| n == "ssb" || n == "final") {
                        continue;
                    }
                    walk(&p, out);
                } else if p.extension().is_some_and(|x| x == "fits") {
                    out.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(root, &mut out);
    out.sort();
    out
}

/// Every file under `root` (for checks that nothing was written).
pub fn all_files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    out.push(p);
                }
            }
        }
    }
    out.sort();
    out
}
