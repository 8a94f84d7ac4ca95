//! The superbias generator end to end: simulated uncal ramps with a known bias in, a SUPERBIAS
//! file whose flags survive stdatamodels out.

use mkref_superbias::{FLAGGED, SuperbiasGenerator};
use mkrefs_plugin_api::{ErrorKind, LogLevel, ParamValue};
use mkrefs_sim::testkit::*;
use mkrefs_support::generator::Exported;
use tempfile::TempDir;

fn write_set(dir: &TempDir, sim: &Sim, n: usize, tag: &str) -> Vec<std::path::PathBuf> {
    (0..n)
        .map(|i| {
            sim.write(
                &dir.path().join(format!("{tag}_{i}_uncal.fits")),
                200 + i as u64,
            )
        })
        .collect()
}

/// The true value of group 0: the bias plus one group of dark signal.
fn truth(sim: &Sim, p: usize) -> f64 {
    sim.bias[p] + sim.dark_per_group
}

#[test]
fn recovers_the_bias_within_the_error_of_the_mean_and_flags_noisy_pixels() {
    let dir = TempDir::new().unwrap();
    let mut sim = Sim::nircam(2, 3);
    // Three pixels with 15x the noise.
    let noisy = [64 * 10 + 10, 64 * 30 + 50, 64 * 63];
    for &p in &noisy {
        sim.readnoise[p] *= 15.0;
    }
    let inputs = write_set(&dir, &sim, 8, "dark");
    let out = dir.path().join("superbias.fits");
    let o = run_job(&Exported(SuperbiasGenerator), &inputs, &out, &[]);
    let report = o.ok();
    assert!(report.summary.contains("8 frame(s)"), "{}", report.summary);

    let (sci, ny, nx) = read_image(&out, "SCI");
    let (err, ..) = read_image(&out, "ERR");
    let (dq, ..) = read_image(&out, "DQ");
    assert_eq!((ny, nx), (64, 64));
    // z = (SCI - truth) / ERR over the ordinary pixels: ERR is the error of the mean, so |z|
    // has a median near 0.67 (a little more: the std of 8 values is biased low) and rarely
    // exceeds 4.
    let z: Vec<f64> = (0..ny * nx)
        .filter(|p| !noisy.contains(p))
        .map(|p| ((sci[p] - truth(&sim, p)) / err[p]).abs())
        .collect();
    let mz = median(&z);
    assert!(mz > 0.55 && mz < 0.95, "median |z| {mz}");
    let outliers = z.iter().filter(|&&v| v > 4.0).count();
    assert!(outliers < z.len() / 100, "{outliers} pixels beyond 4 sigma");
    // ERR of an ordinary pixel is about readnoise / sqrt(8).
    let ratio = median(
        &(0..ny * nx)
            .filter(|p| !noisy.contains(p))
            .map(|p| err[p] / (sim.readnoise[p] / 8f64.sqrt()))
            .collect::<Vec<_>>(),
    );
    assert!((ratio - 0.9).abs() < 0.1, "ERR / (rn/sqrt(8)) = {ratio}");

    for &p in &noisy {
        assert_eq!(dq[p], f64::from(FLAGGED), "pixel {p}");
    }
    let flagged = dq.iter().filter(|&&d| d != 0.0).count();
    assert!((3..=8).contains(&flagged), "{flagged} flagged");
    assert!(o.logged(LogLevel::Info, "UNRELIABLE_BIAS"));

    validate(&out);
    // The flags survive stdatamodels: loading gives the standard values and the DQ_DEF rows.
    let py = python_eval(
        "import sys\n\
         from stdatamodels.jwst import datamodels\n\
         m = datamodels.SuperBiasModel(sys.argv[1])\n\
         print(sorted(int(v) for v in set(m.dq.flat)))\n\
         print([(int(r['BIT']), int(r['VALUE']), str(r['NAME'])) for r in m.dq_def])\n\
         print(m.dq.dtype.name, m.data.dtype.name, m.err.dtype.name, m.meta.instrument.detector, \
         m.meta.exposure.readpatt)\n",
        &out,
    );
    let lines: Vec<&str> = py.lines().collect();
    assert_eq!(lines[0], "[0, 4194305]");
    assert_eq!(
        lines[1],
        "[(0, 1, 'DO_NOT_USE'), (22, 4194304, 'UNRELIABLE_BIAS')]"
    );
    assert_eq!(lines[2], "uint32 float32 float32 NRCA1 ANY");
    let history = history_cards(&out).join("\n");
    assert!(history.contains("dark_7_uncal.fits"), "{history}");
}

#[test]
fn first_integration_by_default_all_on_request_and_scatter_err() {
    let dir = TempDir::new().unwrap();
    let mut sim = Sim::nircam(3, 2);
    sim.readnoise.fill(6.0);
    let inputs = write_set(&dir, &sim, 4, "dark");
    let run = |name: &str, params: &[(&str, ParamValue)]| {
        let out = dir.path().join(name);
        let o = run_job(&Exported(SuperbiasGenerator), &inputs, &out, params);
        o.ok();
        (read_image(&out, "SCI").0, read_image(&out, "ERR").0)
    };
    let (first_sci, first_err) = run("first.fits", &[]);
    let (all_sci, all_err) = run("all.fits", &[("integrations", ParamValue::str("all"))]);
    let (_, scatter) = run("scatter.fits", &[("err_type", ParamValue::str("scatter"))]);
    // 4 frames vs 12 frames: the error of the mean shrinks by about sqrt(3).
    let r = median(&all_err) / median(&first_err);
    assert!((r - 1.0 / 3f64.sqrt()).abs() < 0.12, "ERR ratio {r}");
    assert_ne!(first_sci, all_sci);
    // Scatter: the single-frame noise (biased low for 4 values), sqrt(4) times the error of the mean.
    let rs = median(&scatter) / median(&first_err);
    assert!((rs - 2.0).abs() < 0.1, "scatter / err {rs}");
    assert!(median(&scatter) > 4.0 && median(&scatter) < 6.5);
}

#[test]
fn subarray_input_validates() {
    let dir = TempDir::new().unwrap();
    let sim = Sim::nircam_sized(1, 2, 40, 48, "GENERIC", (101, 201));
    let inputs = write_set(&dir, &sim, 3, "sub");
    let out = dir.path().join("sub.fits");
    run_job(
        &Exported(SuperbiasGenerator),
        &inputs,
        &out,
        &[("subarray", ParamValue::str("generic"))],
    )
    .ok();
    let keys = python_eval(
        "import sys; from astropy.io import fits; h=fits.open(sys.argv[1])[0].header; \
         print(h['SUBARRAY'], h['SUBSTRT1'], h['SUBSTRT2'], h['SUBSIZE1'], h['SUBSIZE2'], \
         h['DATAMODL'])",
        &out,
    );
    assert_eq!(keys.trim(), "GENERIC 101 201 48 40 SuperBiasModel");
    validate(&out);
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = TempDir::new().unwrap();
    let sim = Sim::nircam(1, 2);
    let good = write_set(&dir, &sim, 2, "good");
    let out = dir.path().join("never.fits");

    // One frame per pixel is not enough.
    let o = run_job(&Exported(SuperbiasGenerator), &good[..1], &out, &[]);
    assert_eq!(o.err().kind, ErrorKind::INVALID_INPUT);
    assert!(o.err().message.contains("at least 2"), "{}", o.err());

    // Different size, both files named.
    let small = Sim::nircam_sized(1, 2, 64, 32, "SUB64P", (1, 1))
        .write(&dir.path().join("narrow_uncal.fits"), 3);
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &[good[0].clone(), small],
        &out,
        &[],
    );
    assert!(
        o.err().message.contains("good_0_uncal.fits") && o.err().message.contains("narrow_uncal"),
        "{}",
        o.err()
    );

    // Different subarray start.
    let mut moved = sim.clone();
    moved.substrt = (5, 1);
    let moved = moved.write(&dir.path().join("moved_uncal.fits"), 4);
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &[good[0].clone(), moved],
        &out,
        &[],
    );
    assert!(o.err().message.contains("SUBSTRT1"), "{}", o.err());

    // NaN-filled group 0.
    let nan = dir.path().join("nan.fits");
    sim.write_data(&nan, &[1, 2, 64, 64], &vec![f32::NAN; 2 * 4096]);
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &[good[0].clone(), good[1].clone(), nan],
        &out,
        &[],
    );
    assert!(o.err().message.contains("nan.fits"), "{}", o.err());

    // 2-D SCI.
    let img = dir.path().join("image.fits");
    sim.write_data(&img, &[64, 64], &vec![0.0f32; 4096]);
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &[img, good[0].clone()],
        &out,
        &[],
    );
    assert!(o.err().message.contains("4-D"), "{}", o.err());

    // Parameters.
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &good,
        &out,
        &[("integrations", ParamValue::str("second"))],
    );
    assert_eq!(o.err().kind, ErrorKind::INVALID_PARAMETER);
    let o = run_job(
        &Exported(SuperbiasGenerator),
        &good,
        &out,
        &[("pedigree", ParamValue::str("SOMETIMES"))],
    );
    assert!(o.err().message.contains("PEDIGREE"), "{}", o.err());
    assert!(!out.exists());
}

#[test]
fn recovers_the_simulator_truth_and_flags_telegraph_pixels() {
    use mkrefs_sim::SimConfig;
    use mkrefs_support::dq::{REFERENCE_PIXEL, TELEGRAPH};
    let dir = TempDir::new().unwrap();
    let cfg = SimConfig::default()
        .with_square_subarray(64)
        .with_ramp(1, 3)
        .with_defect_fraction(0.01)
        .with_seed(21);
    let (inputs, truth) = simulated_darks(dir.path(), &cfg, 8);
    let out = dir.path().join("superbias.fits");
    run_job(&Exported(SuperbiasGenerator), &inputs, &out, &[]).ok();
    let (sci, ny, nx) = read_image(&out, "SCI");
    let (err, ..) = read_image(&out, "ERR");
    let (dq, ..) = read_image(&out, "DQ");
    assert_eq!((ny, nx), (truth.ny, truth.nx));
    // Group 0 holds the bias plus one frame of dark current.
    let tframe = cfg.frame_time().unwrap();
    let clean: Vec<usize> = (0..ny * nx)
        .filter(|&p| truth.defects[p] & !REFERENCE_PIXEL == 0)
        .collect();
    let z: Vec<f64> = clean
        .iter()
        .map(|&p| {
            let expected = f64::from(truth.bias[p]) + f64::from(truth.dark[p]) * tframe;
            ((sci[p] - expected) / err[p]).abs()
        })
        .collect();
    let mz = median(&z);
    assert!(mz > 0.55 && mz < 0.95, "median |z| {mz}");
    assert!(z.iter().filter(|&&v| v > 4.0).count() < z.len() / 50);
    // Telegraph pixels jump by 60-200 DN between exposures: their group-0 scatter is far above
    // the read noise, so nearly all are flagged; clean pixels almost never are.
    let tele: Vec<usize> = (0..ny * nx)
        .filter(|&p| truth.defects[p] & TELEGRAPH != 0)
        .collect();
    assert!(tele.len() >= 10, "{} telegraph pixels", tele.len());
    let flagged_tele = tele.iter().filter(|&&p| dq[p] != 0.0).count();
    assert!(
        flagged_tele * 10 >= tele.len() * 9,
        "{flagged_tele} of {}",
        tele.len()
    );
    let flagged_clean = clean.iter().filter(|&&p| dq[p] != 0.0).count();
    assert!(
        flagged_clean * 200 < clean.len(),
        "{flagged_clean} clean pixels flagged"
    );
    validate(&out);
}
