//! Detection of the simulated bad pixels by the `bpm` reference file, end to end: the real
//! `mkrefs` binary calibrates the same simulated uncal darks and flats through three chains and
//! makes the mask; each mask is measured against the simulator's truth, class by class
//! (injected, found with the class's own flag, cross-flagged) and on clean pixels (fraction
//! flagged, per flag). The three chains separate what the bpm algorithm misses from what the
//! calibration in front of it costs:
//!
//! 1. `sim-native`: every step's reference file from the truth (mask, saturation, linearity,
//!    gain, readnoise, superbias), the native engine;
//! 2. `sim-jwst`: the same files, the real jwst 3.0.0 pipeline (`--backend jwst`, offline);
//! 3. `self-native`: the native engine with the superbias and readnoise the same run makes from
//!    the same darks (`reffile4ssb ... SELF`), as users without CRDS files run it.
//!
//! Too slow for a debug build (and jwst takes minutes), so it is `#[ignore]`d and tests/run.sh
//! runs it in release:
//! `cargo test --release --locked -p mkrefs-e2e --test detection_chains -- --ignored --nocapture`.
//! The simulated data and jwst's calibrated products are kept under
//! target/detection-chains/<key>/ (a new key when the simulator's output changes), so a second
//! run on the same machine does not run jwst again; the mask itself is always made anew.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mkrefs_e2e::detection::{DetectionTable, flag_name, own_flag};
use mkrefs_e2e::{fits_outputs, mkrefs, python, run, workspace_root};
use mkrefs_sim::{
    DefectClass, Kind, ProductSet, SimConfig, StepReference, Truth, write_dataset,
    write_step_references,
};
use mkrefs_support::fits::ImageReader;

/// Side of the square NRCA1 corner subarray: big enough for a few hundred pixels of each class
/// at [`DEFECT_FRACTION`], small enough for jwst (a full frame takes it ~50 s per exposure).
const SIZE: usize = 512;
const DARKS: usize = 5;
const FLATS: usize = 4;
const NINTS: usize = 2;
/// 40 groups, as the demo at small sizes: a 512x512 frame reads in 2.7 s (a quarter of the full
/// frame's), so at 10 groups only 71 % of the hot pixels stand out and at 20 groups 97 %; at 40
/// all do (sim-native), and jwst takes ~4 min for the 9 exposures.
const NGROUPS: usize = 40;
const SEED: u64 = 2024;
/// Fraction of the science pixels given each class: ~500 pixels a class on 508x508.
const DEFECT_FRACTION: f64 = 2e-3;

/// The simulated data of all three chains.
///
/// SWITCH POINT (the simulator's `SimConfig::realistic()`: 1/f noise, drifts, cosmic rays
/// 1e-3/pixel/group, a read-noise tail): once it lands, `SimConfig::default()` below becomes
/// `SimConfig::realistic()`, and the CURRENT table must be measured again.
fn chain_config() -> SimConfig {
    SimConfig::default()
        .with_square_subarray(SIZE)
        .with_ramp(NINTS, NGROUPS)
        .with_seed(SEED)
        .with_defect_fraction(DEFECT_FRACTION)
}

/// The three calibration chains in front of the bad-pixel search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Chain {
    SimNative,
    SimJwst,
    SelfNative,
}

impl Chain {
    const ALL: [Chain; 3] = [Chain::SimNative, Chain::SimJwst, Chain::SelfNative];

    /// The chains to run: all, or those `MKREFS_DETECTION_CHAINS` names (a comma list of
    /// names), so that work on the bpm can iterate on the fast native chains alone.
    fn selected() -> Vec<Chain> {
        match std::env::var("MKREFS_DETECTION_CHAINS") {
            Ok(list) if !list.trim().is_empty() => {
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                for n in &names {
                    assert!(
                        Chain::ALL.iter().any(|c| c.name() == *n),
                        "MKREFS_DETECTION_CHAINS: unknown chain {n}"
                    );
                }
                Chain::ALL
                    .into_iter()
                    .filter(|c| names.contains(&c.name()))
                    .collect()
            }
            _ => Chain::ALL.to_vec(),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Chain::SimNative => "sim-native",
            Chain::SimJwst => "sim-jwst",
            Chain::SelfNative => "self-native",
        }
    }
}

/// The targets, per class: found with the own flag, cross-flagged, and clean pixels
/// carrying the class's own flag. `on` switches them on per chain and class; the engineer
/// changing the bpm algorithm turns a switch on when its class meets the target.
struct Targets {
    found_min: f64,
    cross_max: f64,
    clean_fp_max: f64,
    on: &'static [(Chain, DefectClass, bool)],
}

const fn off(chain: Chain) -> [(Chain, DefectClass, bool); 9] {
    [
        (chain, DefectClass::Dead, false),
        (chain, DefectClass::LowQe, false),
        (chain, DefectClass::Open, false),
        (chain, DefectClass::AdjOpen, false),
        (chain, DefectClass::Hot, false),
        (chain, DefectClass::Saturated, false),
        (chain, DefectClass::Rc, false),
        (chain, DefectClass::Telegraph, false),
        (chain, DefectClass::LowPedestal, false),
    ]
}

/// All off for now; edit an entry to `true` to assert the target for that chain and class.
const TARGET_SWITCHES: [[(Chain, DefectClass, bool); 9]; 3] = [
    off(Chain::SimNative),
    off(Chain::SimJwst),
    off(Chain::SelfNative),
];

const TARGETS: Targets = Targets {
    found_min: 0.995,
    cross_max: 0.005,
    clean_fp_max: 1e-4,
    on: TARGET_SWITCHES.as_flattened(),
};

/// What the masks achieve today (measured on this data), asserted with a little margin so a
/// regression in the calibration or the bpm shows. Current state; the targets (>= 99.5 %
/// found, <= 0.5 % cross-flagged, <= 1e-4 clean FP per class) are asserted by `TARGETS` once
/// the bpm changes land. Per chain and class: (found at least, cross-flagged at most, clean
/// pixels with the class's own flag at most), as fractions.
#[rustfmt::skip]
const CURRENT: &[(Chain, DefectClass, f64, f64, f64)] = &[
    (Chain::SimNative, DefectClass::Dead, 1.0, 0.0, 0.0),
    (Chain::SimNative, DefectClass::LowQe, 1.0, 0.0, 0.0),
    (Chain::SimNative, DefectClass::Open, 1.0, 0.0, 0.0),
    (Chain::SimNative, DefectClass::AdjOpen, 1.0, 0.0015, 0.0),
    (Chain::SimNative, DefectClass::Hot, 1.0, 0.0, 0.0),
    (Chain::SimNative, DefectClass::Saturated, 1.0, 0.0, 0.0),
    // Every RC pixel is also flagged TELEGRAPH.
    (Chain::SimNative, DefectClass::Rc, 1.0, 1.0, 0.0),
    (Chain::SimNative, DefectClass::Telegraph, 1.0, 0.0097, 3.7e-5),
    (Chain::SimNative, DefectClass::LowPedestal, 1.0, 0.0, 0.0),
    (Chain::SimJwst, DefectClass::Dead, 1.0, 0.0, 0.0),
    (Chain::SimJwst, DefectClass::LowQe, 1.0, 0.0, 0.0),
    (Chain::SimJwst, DefectClass::Open, 1.0, 0.0, 0.0),
    (Chain::SimJwst, DefectClass::AdjOpen, 1.0, 0.0015, 0.0),
    // jwst's products give ~15 % of the hot pixels RC as well (the native engine's none).
    (Chain::SimJwst, DefectClass::Hot, 1.0, 0.1531, 0.0),
    (Chain::SimJwst, DefectClass::Saturated, 1.0, 0.0, 0.0),
    (Chain::SimJwst, DefectClass::Rc, 1.0, 1.0, 0.0),
    (Chain::SimJwst, DefectClass::Telegraph, 1.0, 0.0097, 3.7e-5),
    (Chain::SimJwst, DefectClass::LowPedestal, 1.0, 0.0, 0.0),
    (Chain::SelfNative, DefectClass::Dead, 1.0, 0.0, 0.0),
    (Chain::SelfNative, DefectClass::LowQe, 1.0, 0.0, 0.0),
    (Chain::SelfNative, DefectClass::Open, 0.9981, 0.0019, 0.0),
    (Chain::SelfNative, DefectClass::AdjOpen, 0.9981, 0.0015, 0.0),
    // The superbias made from the same darks holds the charge a hot pixel collects before
    // its first read, so its pedestal comes out low: OTHER_BAD_PIXEL on ~23 %.
    (Chain::SelfNative, DefectClass::Hot, 0.9981, 0.2306, 0.0),
    (Chain::SelfNative, DefectClass::Saturated, 1.0, 0.0, 0.0),
    // The superbias absorbs the RC excess and the low pedestal (both are in every dark's
    // first read), and the readnoise made from the darks is high on telegraph pixels, so
    // their jumps are not detected: these three classes are mostly lost in this chain.
    (Chain::SelfNative, DefectClass::Rc, 0.0, 1.0, 0.0),
    (Chain::SelfNative, DefectClass::Telegraph, 0.0446, 0.0019, 7.0e-5),
    (Chain::SelfNative, DefectClass::LowPedestal, 0.0, 0.0, 0.0),
];

/// Margin of the CURRENT figures: fractions may move this much (absolute) before it fails.
const MARGIN: f64 = 0.01;
/// Margin of the clean false-positive fractions: about 6 of the ~214,000 clean pixels.
const CLEAN_MARGIN: f64 = 3e-5;

/// The simulated exposures, the truth and the steps' reference files (from the truth).
struct ChainData {
    darks: Vec<PathBuf>,
    flats: Vec<PathBuf>,
    truth: PathBuf,
    /// (reftype in lower case, file).
    refs: Vec<(String, PathBuf)>,
}

impl ChainData {
    fn uncal(&self) -> Vec<String> {
        self.darks
            .iter()
            .chain(&self.flats)
            .map(|p| p.display().to_string())
            .collect()
    }
}

/// Simulates into `dir`.
fn simulate(dir: &Path) -> ChainData {
    std::fs::create_dir_all(dir).unwrap();
    let manifest =
        write_dataset(dir, &chain_config(), DARKS, FLATS, ProductSet::NONE).expect("simulates");
    let files = |kind: Kind| -> Vec<PathBuf> {
        manifest
            .of_kind(kind)
            .map(|e| dir.join(&e.files[0].file))
            .collect()
    };
    let (darks, flats) = (files(Kind::Dark), files(Kind::Flat));
    let truth = dir.join(&manifest.truth);
    let refs = write_step_references(
        dir,
        &darks[0],
        &Truth::read(&truth).unwrap(),
        &StepReference::ALL,
    )
    .unwrap()
    .into_iter()
    .map(|(r, p)| (r.to_ascii_lowercase(), p))
    .collect();
    ChainData {
        darks,
        flats,
        truth,
        refs,
    }
}

/// The data kept under target/detection-chains/<key>/data, and that directory's ssb for the
/// jwst chain's products. The key is the hash of the simulated exposures and truth, so a change
/// of the simulator or of [`chain_config`] starts a new directory; the step reference files
/// (which carry the time they were written) are kept with the data, so jwst's products, whose
/// records name them by content, stay up to date across runs.
fn cached_data() -> (ChainData, PathBuf) {
    let base = workspace_root().join("target/detection-chains");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let tmp = base.join(format!("tmp-{}-{stamp}", std::process::id()));
    let fresh = simulate(&tmp.join("data"));
    let mut h = DefaultHasher::new();
    for f in fresh.darks.iter().chain(&fresh.flats).chain([&fresh.truth]) {
        f.file_name().hash(&mut h);
        std::fs::read(f).unwrap().hash(&mut h);
    }
    let dir = base.join(format!("{:016x}", h.finish()));
    if dir.join("done").is_file() {
        std::fs::remove_dir_all(&tmp).unwrap();
    } else {
        std::fs::write(tmp.join("done"), b"").unwrap();
        // Another run may have renamed its copy first; then its copy is used.
        let _ = std::fs::remove_dir_all(&dir);
        if std::fs::rename(&tmp, &dir).is_err() {
            std::fs::remove_dir_all(&tmp).unwrap();
        }
    }
    prune_other_keys(&base, &dir);
    let moved = |p: &Path| dir.join("data").join(p.file_name().unwrap());
    let data = ChainData {
        darks: fresh.darks.iter().map(|p| moved(p)).collect(),
        flats: fresh.flats.iter().map(|p| moved(p)).collect(),
        truth: moved(&fresh.truth),
        refs: fresh
            .refs
            .iter()
            .map(|(r, p)| (r.clone(), moved(p)))
            .collect(),
    };
    (data, dir.join("ssb-jwst"))
}

/// Removes the data of other keys (a few GB each with jwst's ramps): only the current
/// simulator's data can be used again.
fn prune_other_keys(base: &Path, keep: &Path) {
    for e in std::fs::read_dir(base).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let is_key = name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_key && p != keep {
            let _ = std::fs::remove_dir_all(&p);
        }
    }
}

/// `--pp reffile4ssb <reftype> <file|SELF>` for the chain.
fn reference_args(chain: Chain, data: &ChainData) -> Vec<String> {
    let mut args = Vec::new();
    for (reftype, path) in &data.refs {
        let made_here =
            chain == Chain::SelfNative && (reftype == "superbias" || reftype == "readnoise");
        let value = if made_here {
            "SELF".to_string()
        } else {
            path.display().to_string()
        };
        args.extend(["--pp".into(), "reffile4ssb".into(), reftype.clone(), value]);
    }
    args
}

/// What one chain made and how long it took.
struct ChainResult {
    chain: Chain,
    table: DetectionTable,
    wall: Duration,
    /// The job summary line mkrefs printed.
    summary: String,
    /// Median ratio of the readnoise the run made to the truth's READNOISE (SELF chain).
    readnoise_ratio: Option<f64>,
}

/// Runs `mkrefs` for one chain into a fresh output tree and measures its mask.
fn run_chain(chain: Chain, data: &ChainData, jwst_ssb: &Path, truth: &Truth) -> ChainResult {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = mkrefs(dir.path());
    cmd.arg(match chain {
        Chain::SelfNative => "readnoise,superbias,bpm",
        _ => "bpm",
    })
    .args(data.uncal())
    .args(["--outrootdir", "out"])
    .args(reference_args(chain, data));
    if chain == Chain::SimJwst {
        let strun = python().parent().unwrap().join("strun");
        assert!(
            strun.exists(),
            "{} does not exist: the test venv lacks jwst",
            strun.display()
        );
        cmd.args(["--backend", "jwst", "--pp", "calibration", "strun"])
            .arg(&strun)
            .arg("--ssbdir")
            .arg(jwst_ssb);
    }
    let start = Instant::now();
    let out = run(&mut cmd);
    let wall = start.elapsed();
    assert!(out.ok(), "{}: {out:?}", chain.name());
    let made = fits_outputs(&dir.path().join("out"));
    let find = |reflabel: &str| -> PathBuf {
        made.iter()
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{reflabel}.")))
            })
            .unwrap_or_else(|| panic!("{}: no {reflabel} file in {made:?}", chain.name()))
            .clone()
    };
    let mask = read_plane::<u32>(&find("bpm"), "DQ");
    if std::env::var_os("MKREFS_DETECTION_KEEP").is_some() {
        // For looking into a chain's run (logs, products): the output tree is left behind.
        println!("{}: run kept in {}", chain.name(), dir.keep().display());
    }
    let readnoise_ratio = (chain == Chain::SelfNative).then(|| {
        let made = read_plane::<f32>(&find("readnoise"), "SCI");
        median_ratio(&made, &truth.readnoise, &truth.defects)
    });
    let summary = out
        .stdout
        .lines()
        .find(|l| l.contains(" job(s): "))
        .unwrap_or_default()
        .trim()
        .to_string();
    ChainResult {
        chain,
        table: DetectionTable::measure(&mask, &truth.defects, truth.nx),
        wall,
        summary,
        readnoise_ratio,
    }
}

fn read_plane<T: mkrefs_support::fits::Pixel>(path: &Path, hdu: &str) -> Vec<T> {
    ImageReader::open(path, hdu)
        .and_then(|mut r| r.read_plane::<T>(0))
        .unwrap_or_else(|e| panic!("{} [{hdu}]: {e}", path.display()))
}

/// The median of made/truth over the science pixels where both are finite and positive.
fn median_ratio(made: &[f32], truth: &[f32], defects: &[u32]) -> f64 {
    let mut r: Vec<f64> = (0..made.len())
        .filter(|&i| defects[i] & mkrefs_support::dq::REFERENCE_PIXEL == 0)
        .filter(|&i| made[i].is_finite() && truth[i].is_finite() && truth[i] > 0.0)
        .map(|i| f64::from(made[i]) / f64::from(truth[i]))
        .collect();
    assert!(!r.is_empty(), "no pixel to compare the readnoise on");
    r.sort_by(f64::total_cmp);
    r[r.len() / 2]
}

/// Failures of the CURRENT figures and of the switched-on TARGETS, as lines.
fn check(res: &ChainResult) -> Vec<String> {
    let mut failures = Vec::new();
    let chain = res.chain;
    let t = &res.table;
    let mut fail = |what: String| failures.push(format!("{}: {what}", chain.name()));
    for row in &t.rows {
        // A class with few pixels measures nothing; one without a CURRENT row (a new class of
        // the simulator) must be measured and entered.
        if row.injected < 200 {
            fail(format!(
                "{:?}: only {} pixels injected",
                row.class, row.injected
            ));
        }
        if !CURRENT.iter().any(|e| e.0 == chain && e.1 == row.class) {
            fail(format!(
                "{:?}: no CURRENT row; measure it and add one",
                row.class
            ));
        }
    }
    for &(_, class, found, cross, clean) in CURRENT.iter().filter(|e| e.0 == chain) {
        let row = t.row(class);
        let fp = t.clean_fraction(own_flag(class));
        if row.found_fraction() < found - MARGIN {
            fail(format!(
                "{class:?} found {:.4} < current {found} - {MARGIN}",
                row.found_fraction()
            ));
        }
        if row.cross_fraction() > cross + MARGIN {
            fail(format!(
                "{class:?} cross-flagged {:.4} > current {cross} + {MARGIN}",
                row.cross_fraction()
            ));
        }
        if fp > clean + CLEAN_MARGIN {
            fail(format!(
                "{class:?} clean FP {fp:.2e} > current {clean:.2e} + {CLEAN_MARGIN:.0e}"
            ));
        }
    }
    for &(_, class, _) in TARGETS.on.iter().filter(|e| e.0 == chain && e.2) {
        let row = t.row(class);
        let fp = t.clean_fraction(own_flag(class));
        if row.found_fraction() < TARGETS.found_min {
            fail(format!(
                "TARGET {class:?} found {:.4} < {}",
                row.found_fraction(),
                TARGETS.found_min
            ));
        }
        if row.cross_fraction() > TARGETS.cross_max {
            fail(format!(
                "TARGET {class:?} cross-flagged {:.4} > {}",
                row.cross_fraction(),
                TARGETS.cross_max
            ));
        }
        if fp > TARGETS.clean_fp_max {
            fail(format!(
                "TARGET {class:?} clean {} {fp:.2e} > {:.0e}",
                flag_name(own_flag(class)),
                TARGETS.clean_fp_max
            ));
        }
    }
    failures
}

#[test]
#[ignore = "minutes in release (jwst); run by tests/run.sh with --release --ignored"]
fn bpm_detection_through_three_calibration_chains() {
    let (data, jwst_ssb) = cached_data();
    let truth = Truth::read(&data.truth).unwrap();
    println!(
        "data: NRCA1 {SIZE}x{SIZE}, {DARKS} darks + {FLATS} flats, {NINTS} x {NGROUPS} groups, \
         defect fraction {DEFECT_FRACTION} per class, in {}",
        data.truth.parent().unwrap().display()
    );
    let mut failures = Vec::new();
    for chain in Chain::selected() {
        let res = run_chain(chain, &data, &jwst_ssb, &truth);
        println!(
            "{}",
            res.table.render(&format!(
                "## {} (wall {:.1} s; {})",
                chain.name(),
                res.wall.as_secs_f64(),
                res.summary
            ))
        );
        if let Some(r) = res.readnoise_ratio {
            println!("readnoise made by the run: median ratio to the truth's READNOISE {r:.4}");
            if !(0.99..=1.01).contains(&r) {
                failures.push(format!(
                    "{}: readnoise ratio {r:.4} outside 0.99-1.01",
                    chain.name()
                ));
            }
        }
        failures.extend(check(&res));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
