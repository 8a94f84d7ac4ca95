//! The dark generator end to end: simulated jump-step ramps with a known dark current in, DARK
//! files that stdatamodels accepts and whose per-pixel rates match the truth out.

use std::path::{Path, PathBuf};

use mkref_dark::compute::{FEW_VALUES, NO_VALUE};
use mkref_dark::{DarkGenerator, counts_path};
use mkrefs_plugin_api::{ErrorKind, LogLevel, ParamValue};
use mkrefs_sim::testkit::*;
use mkrefs_sim::{
    DefectFractions, Product, ProductSet, SATURATED_IN_ALL_GROUPS, SimConfig, Truth, write_dataset,
};
use mkrefs_support::fits::{FitsWriter, ImageReader, read_primary_header};
use mkrefs_support::generator::Exported;
use mkrefs_support::geometry::Subarray;
use tempfile::TempDir;

/// Writes `darks` exposures of `cfg` with their jump products into `dir`; returns the jump
/// files and the truth.
fn jump_files(dir: &Path, cfg: &SimConfig, darks: usize) -> (Vec<PathBuf>, Truth) {
    std::fs::create_dir_all(dir).unwrap();
    let products = ProductSet {
        jump: true,
        ..ProductSet::NONE
    };
    let m = write_dataset(dir, cfg, darks, 0, products).unwrap();
    let files = m
        .exposures
        .iter()
        .map(|e| dir.join(e.file(Product::Jump).unwrap()))
        .collect();
    (files, Truth::read(&dir.join(&m.truth)).unwrap())
}

/// A 64×64 NIRCam window with a dark current well above the read noise per integration, long
/// frames and many cosmic rays, so both the rates and the jump exclusion are tested.
fn bright_config(ngroups: usize) -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_square_subarray(64)
        .with_ramp(2, ngroups)
        .without_defects()
        .with_seed(11);
    cfg.tframe = Some(10.0);
    cfg.dark_current = 1.0;
    cfg.cosmic_ray_rate = 2e-3;
    cfg
}

/// All planes of a 3-D or 4-D image, flattened.
fn read_cube(path: &Path, hdu: &str) -> (Vec<f64>, Vec<usize>) {
    let mut r = ImageReader::open(path, hdu).unwrap();
    let shape = r.shape().to_vec();
    let mut out = Vec::new();
    for p in 0..r.n_planes() {
        out.extend(r.read_plane::<f64>(p).unwrap());
    }
    (out, shape)
}

/// Per-pixel z-scores of the slope of SCI over groups against the truth `DARK × TGROUP`.
///
/// The slope is the least-squares fit over groups g = 0..G-1 with weights w_g = (g - ḡ)/Sxx.
/// Its variance for the mean of n integrations is (read + Poisson)/n: read noise is independent
/// per group, σ_r² = rn²/2 + 1/12 (one read, plus the u16 rounding), giving σ_r² Σ w_g²; the
/// dark charge is a random walk whose increments between groups (variance DARK·TGROUP/gain, in
/// DN²) each shift every later group, giving DARK·TGROUP/gain · Σ_f (Σ_{g≥f} w_g)². n is the
/// smallest count of values used over the pixel's groups (conservative where a jump removed
/// integrations); `scale` widens σ for the median.
fn slope_z(out: &Path, truth: &Truth, tgroup: f64, gain: f64, scale: f64) -> Vec<f64> {
    let (sci, shape) = read_cube(out, "SCI");
    let (counts, _) = read_cube(&counts_path(out), "COUNTS");
    let g_n = shape[shape.len() - 3];
    let plane = truth.ny * truth.nx;
    let gbar = (g_n as f64 - 1.0) / 2.0;
    let sxx: f64 = (0..g_n).map(|g| (g as f64 - gbar).powi(2)).sum();
    let w: Vec<f64> = (0..g_n).map(|g| (g as f64 - gbar) / sxx).collect();
    let sum_w2: f64 = w.iter().map(|x| x * x).sum();
    let walk: f64 = (0..g_n).map(|f| w[f..].iter().sum::<f64>().powi(2)).sum();
    (0..plane)
        .map(|p| {
            let slope: f64 = (0..g_n).map(|g| w[g] * sci[g * plane + p]).sum();
            let expected = f64::from(truth.dark[p]) * tgroup;
            let rn = f64::from(truth.readnoise[p]);
            let n = (0..g_n)
                .map(|g| counts[g * plane + p])
                .fold(f64::INFINITY, f64::min);
            let var = (rn * rn / 2.0 + 1.0 / 12.0) * sum_w2 + expected / gain * walk;
            (slope - expected) / (scale * (var / n).sqrt())
        })
        .collect()
}

fn check_z(z: &[f64], std_range: (f64, f64)) {
    let n = z.len() as f64;
    let mean = z.iter().sum::<f64>() / n;
    let std = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    let max = z.iter().fold(0f64, |a, v| a.max(v.abs()));
    // 4096 pixels: the mean of z has a standard error of 0.016.
    assert!(mean.abs() < 0.08, "mean z {mean}");
    assert!(std > std_range.0 && std < std_range.1, "std z {std}");
    assert!(max < 6.0, "max |z| {max}");
}

fn tgroup(path: &Path) -> f64 {
    read_primary_header(path)
        .unwrap()
        .get_f64("TGROUP")
        .unwrap()
}

#[test]
fn rates_match_the_truth_and_the_file_validates() {
    let dir = TempDir::new().unwrap();
    let cfg = bright_config(8);
    let (inputs, truth) = jump_files(&dir.path().join("in"), &cfg, 6);
    let out = dir.path().join("dark.fits");
    let o = run_job(
        &Exported(DarkGenerator),
        &inputs,
        &out,
        &[
            ("counts_file", ParamValue::Bool(true)),
            ("pedigree", ParamValue::str("SIMULATION")),
        ],
    );
    let report = o.ok();
    assert!(
        report.summary.contains("12 integrations"),
        "{}",
        report.summary
    );
    let counts = counts_path(&out);
    assert_eq!(
        report
            .extra_outputs
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>(),
        [counts.to_string_lossy().into_owned()]
    );
    assert!(o.logged(LogLevel::Info, "JUMP_DET"));

    let z = slope_z(&out, &truth, tgroup(&inputs[0]), cfg.gain, 1.0);
    check_z(&z, (0.85, 1.1));

    // Jumps did remove values: some counts are below 12, none above, and group 0 (before any
    // hit is possible) keeps all 12 wherever the clip kept them.
    let (c, shape) = read_cube(&counts, "COUNTS");
    assert_eq!(shape, [8, 64, 64]);
    assert!(c.iter().all(|&v| v <= 12.0));
    let plane = 64 * 64;
    let late_low = c[7 * plane..].iter().filter(|&&v| v < 11.0).count();
    assert!(
        late_low > 100,
        "{late_low} pixels lost values in the last group"
    );

    let r = validate(&out);
    assert_eq!(r["model"], "DarkModel");
    let py = python_eval(
        "import sys\n\
         from stdatamodels.jwst import datamodels\n\
         m = datamodels.DarkModel(sys.argv[1])\n\
         e = m.meta.exposure\n\
         print(m.data.shape, m.err.shape, m.dq.shape, m.data.dtype.name, m.dq.dtype.name)\n\
         print(e.type, e.noutputs, e.readpatt, e.ngroups, e.nframes, e.groupgap)\n\
         print(m.meta.reftype, m.meta.instrument.detector, m.meta.subarray.name, \
         m.meta.pedigree, m.meta.useafter)\n\
         print(m.meta.description)\n\
         print([(int(r['BIT']), str(r['NAME'])) for r in m.dq_def])\n",
        &out,
    );
    let lines: Vec<&str> = py.lines().collect();
    assert_eq!(lines[0], "(8, 64, 64) (8, 64, 64) (64, 64) float32 uint32");
    assert_eq!(lines[1], "NRC_DARK 1 RAPID 8 1 0");
    assert_eq!(lines[2], "DARK NRCA1 SUB64P SIMULATION 2000-01-01T00:00:00");
    assert_eq!(lines[3], "Dark current per group (mkrefs)");
    assert_eq!(lines[4], "[(0, 'DO_NOT_USE'), (23, 'UNRELIABLE_DARK')]");
    let history = history_cards(&out).join("");
    for i in &inputs {
        let name = i.file_name().unwrap().to_string_lossy().into_owned();
        assert!(history.contains(&name), "{name} not in {history}");
    }
    // ERR is the error of the mean: about the single-read noise / sqrt(12) for ordinary pixels.
    let (err, _) = read_cube(&out, "ERR");
    let ratio = median(
        &(0..plane)
            .map(|p| err[p] / (f64::from(truth.readnoise[p]) / 2f64.sqrt() / 12f64.sqrt()))
            .collect::<Vec<_>>(),
    );
    assert!(ratio > 0.85 && ratio < 1.1, "ERR ratio {ratio}");
}

#[test]
fn jumps_are_excluded_without_clipping_and_the_median_works() {
    let dir = TempDir::new().unwrap();
    let cfg = bright_config(6);
    let (inputs, truth) = jump_files(&dir.path().join("in"), &cfg, 5);
    let tg = tgroup(&inputs[0]);
    // Without the clip only the JUMP_DET exclusion keeps the cosmic rays (100-5000 DN, in
    // about 15% of the integrations) out of the means.
    let out = dir.path().join("noclip.fits");
    run_job(
        &Exported(DarkGenerator),
        &inputs,
        &out,
        &[
            ("counts_file", ParamValue::Bool(true)),
            ("sigma_clip_inputs", ParamValue::Bool(false)),
        ],
    )
    .ok();
    check_z(&slope_z(&out, &truth, tg, cfg.gain, 1.0), (0.85, 1.1));

    // The median of 10 values is noisier than the mean (sqrt(pi/2) asymptotically, a little
    // less for 10), and its ERR carries that factor.
    let med = dir.path().join("median.fits");
    run_job(
        &Exported(DarkGenerator),
        &inputs,
        &med,
        &[
            ("counts_file", ParamValue::Bool(true)),
            ("statistic", ParamValue::str("median")),
        ],
    )
    .ok();
    check_z(
        &slope_z(
            &med,
            &truth,
            tg,
            cfg.gain,
            (std::f64::consts::PI / 2.0).sqrt(),
        ),
        (0.75, 1.05),
    );
    let scat = dir.path().join("scatter.fits");
    run_job(
        &Exported(DarkGenerator),
        &inputs,
        &scat,
        &[("err_type", ParamValue::str("scatter"))],
    )
    .ok();
    let (e_mean, _) = read_cube(&out, "ERR");
    let (e_scatter, _) = read_cube(&scat, "ERR");
    let (n, _) = read_cube(&counts_path(&out), "COUNTS");
    // Clipped and unclipped runs keep the same values for almost every cell.
    let r = median(
        &e_scatter
            .iter()
            .zip(&e_mean)
            .zip(&n)
            .map(|((s, e), n)| s / (e * n.sqrt()))
            .collect::<Vec<_>>(),
    );
    assert!((r - 1.0).abs() < 0.02, "scatter / (err sqrt(n)) = {r}");
}

#[test]
fn saturated_pixels_are_flagged_and_zero() {
    let dir = TempDir::new().unwrap();
    let mut cfg = SimConfig::default()
        .with_square_subarray(32)
        .with_ramp(1, 4)
        .without_cosmic_rays();
    cfg.defects = DefectFractions {
        saturated: 0.02,
        ..DefectFractions::uniform(0.0)
    };
    let (inputs, truth) = jump_files(&dir.path().join("in"), &cfg, 3);
    let out = dir.path().join("sat.fits");
    let o = run_job(&Exported(DarkGenerator), &inputs, &out, &[]);
    o.ok();
    assert!(o.logged(LogLevel::Warn, "no usable value"));
    let (sci, _) = read_cube(&out, "SCI");
    let (dq, ..) = read_image(&out, "DQ");
    let saturated: Vec<usize> = (0..32 * 32)
        .filter(|&p| truth.defects[p] & SATURATED_IN_ALL_GROUPS == SATURATED_IN_ALL_GROUPS)
        .collect();
    assert!(saturated.len() >= 10, "{}", saturated.len());
    for p in 0..32 * 32 {
        if saturated.contains(&p) {
            assert_eq!(dq[p] as u32, NO_VALUE, "pixel {p}");
            assert!((0..4).all(|g| sci[g * 1024 + p] == 0.0));
        } else {
            assert_eq!(dq[p], 0.0, "pixel {p}");
        }
    }
    validate(&out);
}

#[test]
fn miri_writes_a_two_integration_dark_miri_model() {
    let dir = TempDir::new().unwrap();
    let cfg = SimConfig::default()
        .with_detector("MIRIMAGE")
        .with_square_subarray(32)
        .with_ramp(2, 5);
    let (inputs, _) = jump_files(&dir.path().join("in"), &cfg, 3);
    let out = dir.path().join("miri.fits");
    run_job(&Exported(DarkGenerator), &inputs, &out, &[]).ok();
    let r = validate(&out);
    assert_eq!(r["model"], "DarkMIRIModel");
    let py = python_eval(
        "import sys\n\
         from stdatamodels.jwst import datamodels\n\
         m = datamodels.DarkMIRIModel(sys.argv[1])\n\
         print(m.data.shape, m.err.shape, m.dq.shape, m.meta.exposure.type, \
         m.meta.exposure.readpatt)\n",
        &out,
    );
    assert_eq!(
        py.trim(),
        "(2, 5, 32, 32) (2, 5, 32, 32) (2, 1, 32, 32) MIR_DARKIMG RAPID"
    );
    // The MIRI products keep the bias: SCI is bias plus dark signal, in both integrations.
    let (sci, _) = read_cube(&out, "SCI");
    let m0 = median(&sci[..5 * 1024]);
    let m1 = median(&sci[5 * 1024..]);
    assert!((m0 - m1).abs() < 5.0 && m0 > 5000.0, "{m0} {m1}");

    // One exposure of 3 integrations gives 1 first and 2 later ones: one pooled integration.
    let cfg3 = cfg.clone().with_ramp(3, 5);
    let (one, _) = jump_files(&dir.path().join("one"), &cfg3, 1);
    let out1 = dir.path().join("miri1.fits");
    let o = run_job(&Exported(DarkGenerator), &one, &out1, &[]);
    o.ok();
    assert!(o.logged(LogLevel::Warn, "one integration pooling all 3"));
    let (_, shape) = read_cube(&out1, "SCI");
    assert_eq!(shape, [1, 5, 32, 32]);
    validate(&out1);
}

fn small(detector: &str) -> SimConfig {
    SimConfig::default()
        .with_detector(detector)
        .with_square_subarray(32)
        .with_ramp(1, 3)
}

fn assert_error(o: &Outcome, kind: ErrorKind, needles: &[&str]) {
    let e = o.err();
    assert_eq!(e.kind, kind, "{e}");
    for n in needles {
        assert!(e.message.contains(n), "{n:?} not in: {}", e.message);
    }
}

#[test]
fn inputs_from_different_detectors_or_subarrays_are_rejected() {
    let dir = TempDir::new().unwrap();
    let (a, _) = jump_files(&dir.path().join("a"), &small("NRCA1"), 1);
    let (b, _) = jump_files(&dir.path().join("b"), &small("NRCA2"), 1);
    let out = dir.path().join("never.fits");
    let inputs = [a[0].clone(), b[0].clone()];
    let o = run_job(&Exported(DarkGenerator), &inputs, &out, &[]);
    let (na, nb) = (a[0].display().to_string(), b[0].display().to_string());
    assert_error(&o, ErrorKind::INVALID_INPUT, &["DETECTOR", &na, &nb]);

    let moved = small("NRCA1").with_subarray(Subarray {
        name: "GENERIC".into(),
        xstart: 101,
        ystart: 1,
        nx: 32,
        ny: 32,
    });
    let (c, _) = jump_files(&dir.path().join("c"), &moved, 1);
    let o = run_job(
        &Exported(DarkGenerator),
        &[a[0].clone(), c[0].clone()],
        &out,
        &[],
    );
    let nc = c[0].display().to_string();
    assert_error(&o, ErrorKind::INVALID_INPUT, &["SUBSTRT1", &na, &nc]);
    assert!(!out.exists());
}

#[test]
fn a_rate_file_is_rejected() {
    let dir = TempDir::new().unwrap();
    let set = ProductSet {
        jump: true,
        rate: true,
        ..ProductSet::NONE
    };
    let m = write_dataset(dir.path(), &small("NRCA1"), 2, 0, set).unwrap();
    let rate = dir.path().join(m.exposures[1].file(Product::Rate).unwrap());
    let jump = dir.path().join(m.exposures[0].file(Product::Jump).unwrap());
    let o = run_job(
        &Exported(DarkGenerator),
        &[jump, rate.clone()],
        &dir.path().join("x.fits"),
        &[],
    );
    assert_error(
        &o,
        ErrorKind::INVALID_INPUT,
        &[
            &rate.display().to_string(),
            "2 dimension(s)",
            "not a rate image",
        ],
    );
}

#[test]
fn a_ramp_without_groupdq_is_rejected() {
    let dir = TempDir::new().unwrap();
    // The test kit's uncal files have only SCI.
    let sim = Sim::nircam(2, 3);
    let a = sim.write(&dir.path().join("a_uncal.fits"), 1);
    let b = sim.write(&dir.path().join("b_uncal.fits"), 2);
    let o = run_job(
        &Exported(DarkGenerator),
        &[a.clone(), b],
        &dir.path().join("x.fits"),
        &[],
    );
    assert_error(
        &o,
        ErrorKind::INVALID_INPUT,
        &[&a.display().to_string(), "no GROUPDQ", "jump"],
    );
}

#[test]
fn too_few_integrations_are_rejected_with_the_number_needed() {
    let dir = TempDir::new().unwrap();
    let (one, _) = jump_files(dir.path(), &small("NRCA1"), 1);
    let o = run_job(
        &Exported(DarkGenerator),
        &one,
        &dir.path().join("x.fits"),
        &[],
    );
    assert_error(
        &o,
        ErrorKind::INVALID_INPUT,
        &[
            &one[0].display().to_string(),
            "1 integration(s)",
            "at least 2",
        ],
    );
}

#[test]
fn a_nan_filled_input_is_rejected_and_no_file_is_left() {
    let dir = TempDir::new().unwrap();
    let (files, _) = jump_files(dir.path(), &small("NRCA1"), 3);
    // The same exposure with every SCI value NaN: its header, a NaN SCI and a clean GROUPDQ.
    let nan = dir.path().join("nan_jump.fits");
    {
        let header = read_primary_header(&files[1]).unwrap();
        let structural = ["SIMPLE", "BITPIX", "NAXIS", "EXTEND"];
        let mut w = FitsWriter::create(&nan).unwrap();
        for (k, v) in header.iter().filter(|(k, _)| !structural.contains(k)) {
            w.set_primary_key(k, v, "").unwrap();
        }
        let shape = [1, 3, 32, 32];
        w.write_image::<f32>("SCI", &shape, &[f32::NAN; 3 * 32 * 32])
            .unwrap();
        w.write_image::<u8>("GROUPDQ", &shape, &[0; 3 * 32 * 32])
            .unwrap();
        w.finish().unwrap();
    }
    let files = [files[0].clone(), nan, files[2].clone()];
    let out = dir.path().join("x.fits");
    let o = run_job(&Exported(DarkGenerator), &files, &out, &[]);
    assert_error(
        &o,
        ErrorKind::INVALID_INPUT,
        &[&files[1].display().to_string(), "NaN-filled"],
    );
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".part-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn few_values_are_flagged_unreliable() {
    let dir = TempDir::new().unwrap();
    // 2 integrations in all and many cosmic rays: a pixel hit in one integration keeps a single
    // value in its later groups.
    let mut cfg = small("NRCA1").with_ramp(2, 6);
    cfg.tframe = Some(10.0);
    cfg.cosmic_ray_rate = 5e-3;
    let (one, _) = jump_files(dir.path(), &cfg, 1);
    let out = dir.path().join("few.fits");
    let o = run_job(
        &Exported(DarkGenerator),
        &one,
        &out,
        &[("counts_file", ParamValue::Bool(true))],
    );
    o.ok();
    let (dq, ..) = read_image(&out, "DQ");
    let (c, _) = read_cube(&counts_path(&out), "COUNTS");
    for p in 0..32 * 32 {
        let min = (0..6)
            .map(|g| c[g * 1024 + p])
            .fold(f64::INFINITY, f64::min);
        let want = match min as usize {
            0 => NO_VALUE,
            1 => FEW_VALUES,
            _ => 0,
        };
        assert_eq!(dq[p] as u32, want, "pixel {p}, min count {min}");
    }
    assert!(dq.iter().filter(|&&d| d as u32 == FEW_VALUES).count() > 20);
    assert!(o.logged(LogLevel::Info, "UNRELIABLE_DARK"));
    validate(&out);
}

#[test]
fn describe_and_parameters() {
    use mkrefs_plugin_api::ReferenceGenerator;
    let info = Exported(DarkGenerator).info();
    assert_eq!(info.default_imtypes.as_str(), "D+");
    assert_eq!(
        info.default_ssbsteps.as_str(),
        "dq_init, saturation, superbias, refpix, linearity, jump"
    );
    for needle in [
        "Default statistic: mean",
        "ERR",
        "UNRELIABLE_DARK",
        "MIR_DARKIMG",
        "NOUTPUTS",
    ] {
        assert!(info.description.contains(needle), "{needle}");
    }
    // A bad statistic is a parameter error before anything is read.
    let o = run_job(
        &Exported(DarkGenerator),
        &[PathBuf::from("/nonexistent.fits")],
        Path::new("/tmp/x.fits"),
        &[("statistic", ParamValue::str("mode"))],
    );
    assert_error(&o, ErrorKind::INVALID_PARAMETER, &["statistic", "mode"]);
}
