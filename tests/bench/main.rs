//! The mkrefs benchmark: times whole `mkrefs` processes on simulated NIRCam full-frame darks
//! and reports wall time, peak RSS (the largest single process: the host or a job child) and the
//! bytes the run wrote (the files left in its output root).
//!
//! Usage (from the workspace root; see the README):
//!
//! ```text
//! cargo build --release -p mkrefs -p mkrefs-e2e
//! target/release/mkrefs-bench [--runs 5] [--data DIR] [--files 5,20] [--strun PATH]
//!                              [--cases readnoise-stack,readnoise-ramp,superbias,dark,bpm,
//!                                       dark-jwst,bpm-jwst,detector1,detector1-kept,
//!                                       campaign,cluster-local,cluster-slurm]
//! ```
//!
//! `dark-jwst` and `bpm-jwst` run the generators on products the real jwst pipeline made from
//! the simulated uncal files (`--backend jwst` with the simulator's step reference files), once,
//! cached beside the data; they need jwst's `strun` (`--strun`, else the test venv's, which
//! tests/run.sh makes) and are skipped without it.
//!
//! `detector1` times the native calibration engine through `mkrefs run bpm --calibrate-only` on
//! ONE raw dark (the `files` column is the data set it is taken from): uncal through dq_init,
//! saturation, superbias, refpix, linearity, jump and ramp fitting, saving the jump, rateints
//! and fitopt products, with the simulator's step reference files (`--step-references`). The
//! products are run-internal (only what the bpm reads, not synced); `detector1-kept` makes
//! them whole (`--keep-products`), as the jwst pipeline would.
//!
//! `campaign` makes all four reference files from the uncal files alone, N darks and 4 flats,
//! as a user would: the calibrations (with the simulator's step reference files, but the
//! superbias made in the run, `SELF`) and the generators scheduled by mkrefs (its default
//! jobs and threads), the calibrated products written where the run keeps them (run-internal
//! unless products are kept).
//!
//! `cluster-local` and `cluster-slurm` run one campaign of 4 NIRCam detectors x 10 darks at
//! 512x512 (calibration, readnoise per dark, superbias, dark, and the final combination: 100
//! jobs) on the local executor and on the Slurm cluster `SLURM_CONF` names
//! (`tests/slurm/cluster.sh start`), and print the jobs and the wall time per job.
//!
//! It simulates (once, cached in `--data`) 2048x2048 exposures with 2 integrations x 10 groups:
//! N raw darks for readnoise and superbias, and N darks plus 4 flats with their calibrated
//! products (jump, rate, rateints, fitopt) for dark and bpm, for each N of `--files` (5 for the
//! main figures, 20 for the memory-scaling point). Each case runs `--runs` times; it prints the
//! median, min and max wall time, the median peak RSS and the megabytes written. Cases whose
//! generator this mkrefs does not have are skipped.
//! Peak RSS comes from `getrusage(RUSAGE_CHILDREN)` in a measuring child that starts the
//! command and waits for it (all descendants are waited for, so job children count).

mod cluster;
mod measure;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use measure::{measured, median};

struct Case {
    name: &'static str,
    reflabel: &'static str,
    extra: &'static [&'static str],
    /// The data set: calibrated products to simulate beside the uncal files (none for raw
    /// darks), found by mkrefs through output.pipeline_prod_search_dir.
    data: Data,
    /// Use only this many of the data set's exposures.
    only: Option<usize>,
    /// Pass the simulator's step reference files as reffile4ssb.
    step_references: bool,
    /// Let mkrefs choose how many jobs run at a time (the campaign); otherwise `--jobs 1`, so
    /// one job's speed is measured.
    scheduled: bool,
}

#[derive(Clone, Copy)]
struct Data {
    /// Directory name prefix in the data cache.
    name: &'static str,
    flats: usize,
    /// `mkrefs simulate --products` value, empty for none.
    products: &'static str,
    /// Jump and fitopt with only what the bad-pixel search reads (a full-frame fitopt file is
    /// over a gigabyte otherwise).
    lean: bool,
    /// Products made from the uncal files by the real jwst pipeline (`--backend jwst`, with the
    /// simulator's step reference files), once per reflabel, into
    /// `<data set>/ssb-jwst-<reflabel>`; the case's run finds them fresh there and runs only
    /// its generator.
    jwst: bool,
}

const RAW_DARKS: Data = Data {
    name: "darks",
    flats: 0,
    products: "",
    lean: false,
    jwst: false,
};

/// Darks and flats calibrated by jwst (see [`Data::jwst`]).
const JWST_PRODUCTS: Data = Data {
    name: "jwst",
    flats: 4,
    products: "",
    lean: false,
    jwst: true,
};

/// The step reference files `mkrefs simulate --step-references` writes.
const STEP_REFERENCES: &[&str] = &[
    "mask",
    "saturation",
    "linearity",
    "gain",
    "readnoise",
    "superbias",
];

const CASES: &[Case] = &[
    Case {
        name: "readnoise-stack",
        reflabel: "readnoise",
        extra: &["--readnoise.method", "stack"],
        data: RAW_DARKS,
        only: None,
        step_references: false,
        scheduled: false,
    },
    Case {
        name: "readnoise-ramp",
        reflabel: "readnoise",
        extra: &["--readnoise.method", "ramp"],
        data: RAW_DARKS,
        only: None,
        step_references: false,
        scheduled: false,
    },
    Case {
        name: "superbias",
        reflabel: "superbias",
        extra: &[],
        data: RAW_DARKS,
        only: None,
        step_references: false,
        scheduled: false,
    },
    Case {
        name: "dark",
        reflabel: "dark",
        extra: &[],
        data: Data {
            name: "jumps",
            flats: 0,
            products: "jump",
            lean: false,
            jwst: false,
        },
        only: None,
        step_references: false,
        scheduled: false,
    },
    Case {
        name: "bpm",
        reflabel: "bpm",
        extra: &[],
        data: Data {
            name: "bpm",
            flats: 4,
            products: "jump,rate,rateints,fitopt",
            lean: true,
            jwst: false,
        },
        only: None,
        step_references: false,
        scheduled: false,
    },
    Case {
        name: "dark-jwst",
        reflabel: "dark",
        extra: &[],
        data: JWST_PRODUCTS,
        only: None,
        step_references: true,
        scheduled: false,
    },
    Case {
        name: "bpm-jwst",
        reflabel: "bpm",
        extra: &[],
        data: JWST_PRODUCTS,
        only: None,
        step_references: true,
        scheduled: false,
    },
    Case {
        name: "detector1",
        reflabel: "bpm",
        extra: &["--calibrate-only"],
        data: RAW_DARKS,
        only: Some(1),
        step_references: true,
        scheduled: false,
    },
    Case {
        name: "detector1-kept",
        reflabel: "bpm",
        extra: &["--calibrate-only", "--keep-products"],
        data: RAW_DARKS,
        only: Some(1),
        step_references: true,
        scheduled: false,
    },
    Case {
        name: "campaign",
        reflabel: "readnoise,superbias,dark,bpm",
        extra: &["--pp", "reffile4ssb", "superbias", "SELF"],
        data: Data {
            name: "campaign",
            flats: 4,
            products: "",
            lean: false,
            jwst: false,
        },
        only: None,
        step_references: true,
        scheduled: true,
    },
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("measure") {
        return measure(&args[2..]);
    }
    let mut runs = 5usize;
    let mut data = PathBuf::from("target/bench-data");
    let mut cases: Vec<String> = CASES.iter().map(|c| c.name.to_string()).collect();
    let mut counts = vec![5usize, 20];
    let mut strun = default_strun();
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().and_then(|v| v.parse().ok()).unwrap_or(runs),
            "--data" => data = PathBuf::from(it.next().expect("--data DIR")),
            "--strun" => {
                let path = PathBuf::from(it.next().expect("--strun PATH"));
                strun = Some(path.canonicalize().unwrap_or(path));
            }
            "--cases" => {
                cases = it
                    .next()
                    .expect("--cases LIST")
                    .split(',')
                    .map(str::to_string)
                    .collect()
            }
            "--files" => {
                counts = it
                    .next()
                    .expect("--files LIST")
                    .split(',')
                    .map(|v| v.parse().expect("file counts are numbers"))
                    .collect()
            }
            other => {
                eprintln!("unknown argument {other}");
                return ExitCode::from(2);
            }
        }
    }
    let mkrefs = sibling_binary("mkrefs");
    println!(
        "mkrefs benchmark: {} runs per case, NIRCam NRCA1 2048x2048, 2 ints x 10 groups",
        runs
    );
    println!(
        "{:18} {:>5} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "case", "files", "median_s", "min_s", "max_s", "peak_rss_MB", "written_MB"
    );
    let installed = generators(&mkrefs);
    for executor in ["local", "slurm"] {
        if cases.iter().any(|c| c == &format!("cluster-{executor}")) {
            cluster::campaign(&mkrefs, &data, runs, executor);
        }
    }
    for &n in &counts {
        for case in CASES.iter().filter(|c| cases.iter().any(|n| n == c.name)) {
            if !case
                .reflabel
                .split(',')
                .all(|r| installed.iter().any(|g| g == r))
            {
                eprintln!(
                    "skipping {}: this mkrefs has no '{}' generator",
                    case.name, case.reflabel
                );
                continue;
            }
            if case.data.jwst && strun.is_none() {
                eprintln!(
                    "skipping {}: no jwst strun (give --strun, or make the test venv with \
                     tests/python/ensure-venv.sh target/test-venv)",
                    case.name
                );
                continue;
            }
            let dir = data.join(format!("{}{n}", case.data.name));
            let files = simulate(&mkrefs, &dir, n, case.data);
            let jwst = match (&strun, case.data.jwst) {
                (Some(strun), true) => jwst_args(&mkrefs, &dir, &files, strun, case.reflabel),
                _ => Vec::new(),
            };
            let mut walls = Vec::new();
            let mut rss = Vec::new();
            let mut written = 0u64;
            for _ in 0..runs {
                let out = tempfile::tempdir().expect("temp dir");
                let mut cmd: Vec<String> = vec![
                    mkrefs.display().to_string(),
                    "-q".into(),
                    "run".into(),
                    case.reflabel.into(),
                ];
                let used = case.only.unwrap_or(files.len()).min(files.len());
                cmd.extend(files[..used].iter().map(|f| f.display().to_string()));
                if case.step_references {
                    cmd.extend(step_reference_args(&dir));
                }
                cmd.extend(jwst.iter().cloned());
                cmd.extend(case.extra.iter().map(|s| s.to_string()));
                if !case.data.products.is_empty() {
                    cmd.extend([
                        "--pp".into(),
                        "output".into(),
                        "pipeline_prod_search_dir".into(),
                        dir.display().to_string(),
                    ]);
                }
                cmd.extend(["--outrootdir".into(), out.path().display().to_string()]);
                if !case.scheduled {
                    cmd.extend(["--jobs".into(), "1".into()]);
                }
                let (wall, peak) = measured(&cmd);
                walls.push(wall);
                rss.push(peak);
                written = tree_bytes(out.path());
            }
            walls.sort_by(f64::total_cmp);
            rss.sort_by(f64::total_cmp);
            println!(
                "{:18} {:>5} {:>9.2} {:>9.2} {:>9.2} {:>10.0} {:>10.0}",
                case.name,
                n,
                median(&walls),
                walls[0],
                walls[walls.len() - 1],
                median(&rss),
                written as f64 / 1e6
            );
        }
    }
    ExitCode::SUCCESS
}

/// The bytes of the files under `dir`: what a run left in its output root (reference files,
/// logs, job files and the calibrated products it made), i.e. what it wrote. Each file counts
/// once however many names it has (a reflabel with one reference file has it hard-linked into
/// final/, not written twice).
fn tree_bytes(dir: &Path) -> u64 {
    let mut seen = std::collections::HashSet::new();
    tree_bytes_once(dir, &mut seen)
}

fn tree_bytes_once(dir: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0;
    for e in entries.flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => total += tree_bytes_once(&e.path(), seen),
            Ok(t) if t.is_file() => {
                if let Ok(m) = e.metadata()
                    && seen.insert((m.dev(), m.ino()))
                {
                    total += m.len();
                }
            }
            _ => {}
        }
    }
    total
}

/// A binary built next to this one.
fn sibling_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("own path");
    let path = exe.with_file_name(name);
    assert!(
        path.is_file(),
        "{} not found: build it with `cargo build --release -p mkrefs`",
        path.display()
    );
    path
}

/// The reflabels of the generators `mkrefs plugins` lists.
fn generators(mkrefs: &Path) -> Vec<String> {
    let out = Command::new(mkrefs)
        .args(["-q", "plugins"])
        .output()
        .expect("mkrefs plugins runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Simulates `darks` darks and the data set's flats and products into `dir` unless an earlier
/// run did; returns the uncal files.
fn simulate(mkrefs: &Path, dir: &Path, darks: usize, data: Data) -> Vec<PathBuf> {
    let manifest = dir.join("manifest.json");
    let flats = data.flats;
    let n = darks + flats;
    // Data sets cached before step reference files were written are made again.
    if !manifest.is_file() || !dir.join("sim_mask_nrca1.fits").is_file() {
        let t = Instant::now();
        let mut cmd = Command::new(mkrefs);
        cmd.args(["-q", "simulate", "--out"])
            .arg(dir)
            .args(["--darks", &darks.to_string(), "--flats", &flats.to_string()])
            .args([
                "--size",
                "2048",
                "--nints",
                "2",
                "--ngroups",
                "10",
                "--seed",
                "7",
            ]);
        if !data.products.is_empty() {
            cmd.arg(format!("--products={}", data.products));
        }
        if data.lean {
            cmd.arg("--lean");
        }
        // Cheap beside the exposures, and what the detector1 case needs.
        cmd.arg("--step-references");
        let status = cmd.status().expect("mkrefs simulate runs");
        assert!(status.success(), "simulation failed");
        eprintln!(
            "simulated {n} exposures in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        settle_writes();
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("data dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with("_uncal.fits"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        n,
        "expected {n} uncal files in {}",
        dir.display()
    );
    files
}

/// `--pp reffile4ssb <reftype> <file>` for the simulator's step reference files in `dir`.
fn step_reference_args(dir: &Path) -> Vec<String> {
    STEP_REFERENCES
        .iter()
        .flat_map(|reftype| {
            [
                "--pp".to_string(),
                "reffile4ssb".to_string(),
                reftype.to_string(),
                dir.join(format!("sim_{reftype}_nrca1.fits"))
                    .display()
                    .to_string(),
            ]
        })
        .collect()
}

/// The test venv's strun, when it has been made (what tests/run.sh makes).
fn default_strun() -> Option<PathBuf> {
    let venv = std::env::var_os("MKREFS_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target/test-venv/bin"));
    // Absolute: the jobs run in their own directories.
    venv.join("strun").canonicalize().ok()
}

/// The arguments that make a run of `reflabel` use the jwst backend and find the products jwst
/// made from `files` for it in `<dir>/ssb-jwst-<reflabel>`; the products are made first if an
/// earlier run did not (minutes at full frame). Each reflabel has its own: a product records the
/// whole calibration that made it, so a jump product made on the way to ramp fitting (bpm) is
/// not taken as fresh by a run that asks for the jump step only (dark), which makes it again.
fn jwst_args(
    mkrefs: &Path,
    dir: &Path,
    files: &[PathBuf],
    strun: &Path,
    reflabel: &str,
) -> Vec<String> {
    let ssb = dir.join(format!("ssb-jwst-{reflabel}"));
    let args: Vec<String> = [
        "--backend",
        "jwst",
        "--pp",
        "calibration",
        "strun",
        &strun.display().to_string(),
        "--ssbdir",
        &ssb.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let done = ssb.join("made-by-the-benchmark");
    if !done.is_file() {
        let t = Instant::now();
        let status = Command::new(mkrefs)
            .args(["-q", "run", reflabel, "--calibrate-only"])
            .args(files)
            .args(step_reference_args(dir))
            .args(&args)
            .arg("--outrootdir")
            .arg(dir.join(format!("jwst-run-{reflabel}")))
            .stdout(std::process::Stdio::null())
            .status()
            .expect("mkrefs runs");
        assert!(
            status.success(),
            "the jwst calibration of {} failed",
            dir.display()
        );
        std::fs::write(&done, "").expect("marker file");
        eprintln!(
            "made the jwst products for {reflabel} in {:.1} s",
            t.elapsed().as_secs_f64()
        );
        settle_writes();
    }
    args
}

/// Flushes the data just made to disk before anything is timed: gigabytes of dirty pages being
/// written back made the first timed runs after them half as slow again (3.0 s for 1.9 s).
fn settle_writes() {
    // SAFETY: sync takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

/// The measuring child: runs the command, waits, prints "wall_seconds max_rss_kb".
fn measure(cmd: &[String]) -> ExitCode {
    let start = Instant::now();
    // The command's own output must not mix with the figures this process prints.
    let status = Command::new(&cmd[0])
        .args(&cmd[1..])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("benchmarked command starts");
    let wall = start.elapsed().as_secs_f64();
    // SAFETY: getrusage only writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) };
    println!("{wall:.3} {}", usage.ru_maxrss);
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
