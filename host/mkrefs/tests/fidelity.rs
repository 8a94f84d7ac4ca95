//! Fidelity of the native detector1 engine (`mkrefs-detector1`) to the jwst pipeline
//! (jwst 3.0.0 / stcal 1.20.0 of the test venv), step by step, on the same simulated exposure
//! with the same reference files.
//!
//! **The exposures.** NIRCam NRCA1, SUBGRISM64: 2048 columns × 64 rows at the bottom of the
//! detector, read through 4 outputs (NOUTPUTS = 4), 2 integrations of 10 groups: a flat field
//! (about 1000 DN/s, so ramps reach several thousand DN and the linearity correction matters)
//! and a dark (where the jump search works on differences scattered around zero), each with
//! the simulator's default defect classes, cosmic rays in about 0.5 % of the pixels per
//! integration, and per-group drifts (an offset per amplifier and column parity and a wave
//! along the rows) on every pixel, reference pixels included. Why this window: jwst corrects
//! a subarray read through 4 outputs with its *full-frame* reference-pixel algorithm
//! (`NIRDataset.do_corrections`: per-amplifier odd/even means of the bottom reference rows,
//! then the running median of the left and right reference columns), which is the path that
//! matters for calibration data (darks and flats are mostly full frame); it has both kinds of
//! reference pixels, and at 1/32 of the full frame jwst runs all steps in about 7 s where a
//! 2048×2048 exposure takes 70-95 s. The reference files (see `common::write_references`)
//! make saturation mid-ramp, NO_SAT_CHECK, UNRELIABLE_BIAS, NO_LIN_CORR and HOT flags, a
//! cubic non-linearity and a frame-resolved dark.
//!
//! **The comparison.** jwst runs dq_init → ramp_fit with each step's result saved
//! (`tests/python/jwst_detector1_steps.py`, offline: `jwst_backend::offline_environment`).
//! Each native step then runs on jwst's product of the step before it (a partially calibrated
//! input is continued, not redone), so every step is compared on identical input and a
//! difference is that step's own. Separately, the native engine runs the whole chain from the
//! uncal file, and its rate is compared with jwst's (differences would accumulate there).
//!
//! **Targets** (issue "Fidelity to the pipeline"): dq_init, saturation, superbias, linearity
//! and dark_current equal to float32 rounding (SCI within 2 units in the last place of
//! float32, every PIXELDQ and GROUPDQ value identical); refpix within 0.01 DN median absolute
//! difference; JUMP_DET flags agreeing on at least 99.9 % of the pixel-groups; the rate within
//! 1 % of its uncertainty (jwst's ERR) for at least 99.9 % of the pixels (pixels both sides
//! leave NaN agree), step by step and for the whole chain. The test prints the measured table
//! and asserts every row.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Exposure, ExposureSpec, make_exposure, run_offline, subgrism64};
use mkrefs_detector1::pipeline::{Outputs, References, StepName, StepParams, calibrate_with};
use mkrefs_detector1::ramp::Ramp;
use mkrefs_sim::{Kind, SimConfig};
use mkrefs_support::dq;
use mkrefs_support::fits::ImageReader;

/// The steps compared, in order, with their jwst names.
const STEPS: [StepName; 8] = [
    StepName::DqInit,
    StepName::Saturation,
    StepName::Superbias,
    StepName::Refpix,
    StepName::Linearity,
    StepName::DarkCurrent,
    StepName::Jump,
    StepName::Rate,
];

fn config() -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_subarray(subgrism64())
        .with_ramp(2, 10)
        .with_seed(2024);
    cfg.flat_illumination = 1000.0;
    cfg.cosmic_ray_rate = 1.5e-3;
    cfg
}

/// One row of the table.
struct Row {
    step: &'static str,
    metric: String,
    measured: String,
    target: String,
    ok: bool,
}

/// Units in the last place of float32 between `a` and `b` (0 for equal values and for two
/// NaNs; infinite when only one is NaN).
fn ulps(a: f32, b: f32) -> f64 {
    if a.is_nan() || b.is_nan() {
        return if a.is_nan() && b.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if a == b {
        return 0.0;
    }
    let scale = a.abs().max(b.abs());
    let ulp = f64::from(f32::EPSILON) * f64::from(scale).max(f64::from(f32::MIN_POSITIVE));
    f64::from((a - b).abs()) / ulp
}

fn count_diff<T: PartialEq>(a: &[T], b: &[T]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x != y).count()
}

/// The rows of a step that must agree to float32 rounding.
fn exact_rows(step: &'static str, native: &Ramp, jwst: &Ramp, rows: &mut Vec<Row>) {
    let max_ulps = native
        .sci
        .iter()
        .zip(&jwst.sci)
        .map(|(&a, &b)| ulps(a, b))
        .fold(0.0, f64::max);
    rows.push(Row {
        step,
        metric: "SCI max difference (float32 ulp)".into(),
        measured: format!("{max_ulps:.2}"),
        target: "<= 2".into(),
        ok: max_ulps <= 2.0,
    });
    for (name, diff, total) in [
        (
            "PIXELDQ",
            count_diff(&native.pixeldq, &jwst.pixeldq),
            jwst.pixeldq.len(),
        ),
        (
            "GROUPDQ",
            count_diff(&native.groupdq, &jwst.groupdq),
            jwst.groupdq.len(),
        ),
    ] {
        rows.push(Row {
            step,
            metric: format!("{name} values differing"),
            measured: format!("{diff} of {total}"),
            target: "0".into(),
            ok: diff == 0,
        });
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

fn plane(path: &Path, hdu: &str) -> Vec<f32> {
    ImageReader::open(path, hdu)
        .and_then(|mut r| r.read_plane::<f32>(0))
        .unwrap_or_else(|e| panic!("{}[{hdu}]: {e}", path.display()))
}

/// The fraction of pixels whose rates agree within 1 % of jwst's ERR (both NaN agree).
fn rate_agreement(native: &Path, jwst: &Path) -> (f64, usize, f64) {
    let (a, b, err) = (plane(native, "SCI"), plane(jwst, "SCI"), plane(jwst, "ERR"));
    let mut agree = 0usize;
    let mut worst = 0f64;
    for i in 0..b.len() {
        let ok = if a[i].is_nan() || b[i].is_nan() {
            a[i].is_nan() && b[i].is_nan()
        } else {
            let rel = f64::from((a[i] - b[i]).abs()) / f64::from(err[i]);
            worst = worst.max(rel);
            rel <= 0.01 || a[i] == b[i]
        };
        agree += usize::from(ok);
    }
    (agree as f64 / b.len() as f64, b.len() - agree, worst)
}

fn native_refs(r: &common::RefFiles) -> References {
    References {
        mask: Some(r.mask.clone()),
        saturation: Some(r.saturation.clone()),
        superbias: Some(r.superbias.clone()),
        linearity: Some(r.linearity.clone()),
        dark: Some(r.dark.clone()),
        readnoise: Some(r.readnoise.clone()),
        gain: Some(r.gain.clone()),
    }
}

/// jwst's product of `step` (its name in `jwst_detector1_steps.py`).
fn jwst_product(dir: &Path, step: StepName) -> PathBuf {
    dir.join(format!("{}.fits", step.pipeline_name()))
}

#[test]
fn native_engine_agrees_with_the_jwst_pipeline_step_by_step_on_a_flat() {
    compare(Kind::Flat);
}

#[test]
fn native_engine_agrees_with_the_jwst_pipeline_step_by_step_on_a_dark() {
    compare(Kind::Dark);
}

/// Runs both sides on one simulated exposure of `kind`, prints the table, asserts every row.
fn compare(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    // MKREFS_FIDELITY_KEEP=1 keeps the files (printed) to study a disagreement.
    let dir = &if std::env::var_os("MKREFS_FIDELITY_KEEP").is_some() {
        let d = tmp.keep();
        eprintln!("fidelity test files kept in {}", d.display());
        d
    } else {
        tmp.path().to_path_buf()
    };
    let exp = make_exposure(
        dir,
        &ExposureSpec {
            cfg: config(),
            kind,
            drift: 4.0,
        },
    );
    let jdir = dir.join("jwst");
    let ndir = dir.join("native");
    std::fs::create_dir_all(&ndir).unwrap();
    let jwst_seconds = run_jwst_steps(&exp, &jdir, &dir.join("scratch"));
    let refs = native_refs(&exp.refs);
    let mut rows = Vec::new();
    let mut native_seconds = 0.0;
    for (k, &step) in STEPS.iter().enumerate() {
        let input = if k == 0 {
            exp.uncal.clone()
        } else {
            jwst_product(&jdir, STEPS[k - 1])
        };
        let native = ndir.join(format!("{}.fits", step.pipeline_name()));
        let t = std::time::Instant::now();
        let params = StepParams::default();
        let done = calibrate_with(&input, &STEPS[..=k], &[], &refs, &outputs(&native), &params)
            .unwrap_or_else(|e| panic!("native {step} on {}: {e}", input.display()));
        native_seconds += t.elapsed().as_secs_f64();
        assert_eq!(done.ran, [step], "native ran only {step} on jwst's product");
        rows.extend(step_rows(step, &native, &jwst_product(&jdir, step)));
    }
    // The whole chain natively from the uncal file.
    let chained = ndir.join("chain_rate.fits");
    let t = std::time::Instant::now();
    calibrate_with(
        &exp.uncal,
        &STEPS,
        &[],
        &refs,
        &outputs(&chained),
        &StepParams::default(),
    )
    .expect("native chain");
    let chain_seconds = t.elapsed().as_secs_f64();
    rows.push(rate_row(
        "chain",
        "uncal→rate: |rate diff| <= 1% of ERR",
        &chained,
        &jwst_product(&jdir, StepName::Rate),
    ));
    eprintln!(
        "\nnative engine vs jwst 3.0.0 on a {kind:?} of {}x{} ({} ints x {} groups); jwst {jwst_seconds:.1} s \
         (all steps, with saving), native {native_seconds:.1} s step by step, \
         {chain_seconds:.1} s chained\n",
        exp.truth.nx, exp.truth.ny, exp.cfg.nints, exp.cfg.ngroups
    );
    print_and_check(&rows);
}

/// Runs every step of [`STEPS`] with jwst on the uncal file, saving each product in `jdir`;
/// returns the seconds it took.
fn run_jwst_steps(exp: &Exposure, jdir: &Path, scratch: &Path) -> f64 {
    let started = std::time::Instant::now();
    let mut cmd = Command::new(common::python());
    cmd.arg(mkrefs_sim::testkit::workspace().join("tests/python/jwst_detector1_steps.py"))
        .arg(&exp.uncal)
        .arg(jdir)
        .arg(
            STEPS
                .iter()
                .map(|s| s.pipeline_name())
                .collect::<Vec<_>>()
                .join(","),
        );
    for (reftype, file) in exp.refs.pairs() {
        cmd.arg(format!("{reftype}={}", file.display()));
    }
    let out = run_offline(cmd, scratch);
    eprintln!("{}", String::from_utf8_lossy(&out.stdout));
    started.elapsed().as_secs_f64()
}

fn outputs(final_product: &Path) -> Outputs {
    Outputs {
        final_product: final_product.to_path_buf(),
        ..Default::default()
    }
}

/// The rows measuring one step: native's product against jwst's.
fn step_rows(step: StepName, native_file: &Path, jwst_file: &Path) -> Vec<Row> {
    let name = step.pipeline_name();
    if step == StepName::Rate {
        let metric = "pixels with |rate diff| <= 1% of ERR";
        return vec![rate_row(name, metric, native_file, jwst_file)];
    }
    let native = Ramp::read(native_file).unwrap();
    let jwst = Ramp::read(jwst_file).unwrap();
    assert_eq!(
        (native.nints, native.ngroups, native.ny, native.nx),
        (jwst.nints, jwst.ngroups, jwst.ny, jwst.nx)
    );
    let mut rows = Vec::new();
    match step {
        StepName::Refpix => refpix_rows(name, &native, &jwst, &mut rows),
        StepName::Jump => rows.push(jump_row(name, &native, &jwst)),
        _ => exact_rows(name, &native, &jwst, &mut rows),
    }
    rows
}

fn rate_row(step: &'static str, metric: &str, native: &Path, jwst: &Path) -> Row {
    let (frac, n_bad, worst) = rate_agreement(native, jwst);
    Row {
        step,
        metric: metric.into(),
        measured: format!(
            "{:.4}% ({n_bad} outside; worst {worst:.3} ERR)",
            100.0 * frac
        ),
        target: ">= 99.9%".into(),
        ok: frac >= 0.999,
    }
}

/// refpix works in floating point on different sums than jwst: SCI within 0.01 DN, DQ equal.
fn refpix_rows(step: &'static str, native: &Ramp, jwst: &Ramp, rows: &mut Vec<Row>) {
    let d: Vec<f64> = native
        .sci
        .iter()
        .zip(&jwst.sci)
        .map(|(&a, &b)| f64::from((a - b).abs()))
        .collect();
    let max = d.iter().copied().fold(0.0, f64::max);
    let med = median(d);
    rows.push(Row {
        step,
        metric: "SCI median |difference| (DN)".into(),
        measured: format!("{med:.5} (max {max:.4})"),
        target: "<= 0.01".into(),
        ok: med <= 0.01,
    });
    let dq_diff =
        count_diff(&native.pixeldq, &jwst.pixeldq) + count_diff(&native.groupdq, &jwst.groupdq);
    rows.push(Row {
        step,
        metric: "DQ values differing".into(),
        measured: format!("{dq_diff}"),
        target: "0".into(),
        ok: dq_diff == 0,
    });
}

fn jump_row(step: &'static str, native: &Ramp, jwst: &Ramp) -> Row {
    let j = dq::JUMP_DET as u8;
    let agree = native
        .groupdq
        .iter()
        .zip(&jwst.groupdq)
        .filter(|(a, b)| (**a & j) == (**b & j))
        .count();
    let total = jwst.groupdq.len();
    let frac = agree as f64 / total as f64;
    let flagged = |r: &Ramp| r.groupdq.iter().filter(|q| **q & j != 0).count();
    Row {
        step,
        metric: "pixel-groups with equal JUMP_DET".into(),
        measured: format!(
            "{:.4}% (native {} / jwst {} flagged, {} differ)",
            100.0 * frac,
            flagged(native),
            flagged(jwst),
            total - agree
        ),
        target: ">= 99.9%".into(),
        ok: frac >= 0.999,
    }
}

fn print_and_check(rows: &[Row]) {
    eprintln!(
        "{:<13} {:<40} {:<48} {:<10} ok",
        "step", "metric", "measured", "target"
    );
    for r in rows {
        eprintln!(
            "{:<13} {:<40} {:<48} {:<10} {}",
            r.step,
            r.metric,
            r.measured,
            r.target,
            if r.ok { "yes" } else { "NO" }
        );
    }
    let failed: Vec<String> = rows
        .iter()
        .filter(|r| !r.ok)
        .map(|r| {
            format!(
                "{} {}: {} (target {})",
                r.step, r.metric, r.measured, r.target
            )
        })
        .collect();
    assert!(failed.is_empty(), "targets missed:\n{}", failed.join("\n"));
}
