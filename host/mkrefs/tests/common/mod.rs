//! What the tests against the real jwst package share: a simulated NIRCam exposure with
//! reference files for every detector1 step written in the jwst formats, the venv's `strun` and
//! Python, and the offline CRDS environment of `mkrefs::prep::jwst::offline_environment`.
//!
//! The reference files are not the simulator's truth copied out: each has structure the steps
//! must handle (pixels that saturate mid-ramp, pixels without a saturation check, a non-linear
//! correction, DQ flags to propagate), so that comparing two implementations of a step on them
//! means something.

#![allow(dead_code)] // each test binary uses a different part

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use mkrefs_sim::rng::stream;
use mkrefs_sim::{Kind, SimConfig, Truth, write_uncal};
use mkrefs_support::dq;
use mkrefs_support::fits::{FitsWriter, ImageReader, Pixel, read_primary_header};
use mkrefs_support::geometry::Subarray;
use mkrefs_support::header::HeaderValue;

/// The Python of the test venv (with jwst), as the validator tests find it.
pub fn python() -> PathBuf {
    mkrefs_sim::testkit::python()
}

/// A program of the test venv's bin directory (`strun`), beside [`python`].
pub fn venv_program(name: &str) -> PathBuf {
    let py = python();
    let bin = py.parent().expect("the venv python has a directory");
    let p = bin.join(name);
    assert!(
        p.exists(),
        "{} does not exist: the test venv lacks jwst; run `bash tests/run.sh` or \
         `tests/python/ensure-venv.sh target/test-venv` in the workspace root",
        p.display()
    );
    p
}

/// The offline environment for jwst processes, with its CRDS configuration under `scratch`.
pub fn offline_env(scratch: &Path) -> Vec<(OsString, OsString)> {
    mkrefs::prep::jwst::offline_environment(scratch).expect("offline CRDS configuration")
}

/// The reference file of each reftype, as jwst step overrides and the native engine take them.
#[derive(Clone, Debug)]
pub struct RefFiles {
    pub mask: PathBuf,
    pub saturation: PathBuf,
    pub superbias: PathBuf,
    pub linearity: PathBuf,
    pub dark: PathBuf,
    pub readnoise: PathBuf,
    pub gain: PathBuf,
}

impl RefFiles {
    /// `(reftype, file)` for every file, lower-case reftypes as in `override_<reftype>`.
    pub fn pairs(&self) -> Vec<(&'static str, &Path)> {
        vec![
            ("mask", &self.mask),
            ("saturation", &self.saturation),
            ("superbias", &self.superbias),
            ("linearity", &self.linearity),
            ("dark", &self.dark),
            ("readnoise", &self.readnoise),
            ("gain", &self.gain),
        ]
    }
}

/// A simulated exposure and its reference files.
pub struct Exposure {
    pub cfg: SimConfig,
    pub truth: Truth,
    pub uncal: PathBuf,
    pub refs: RefFiles,
}

/// What to simulate beyond the simulator's config.
pub struct ExposureSpec {
    pub cfg: SimConfig,
    pub kind: Kind,
    /// σ (DN) of an offset added to every pixel of one group, amplifier and column parity, and
    /// amplitude (DN) of a slow per-row wave added to whole rows: the drifts the reference
    /// pixels track (0 for none).
    pub drift: f64,
}

/// NIRCam SUBGRISM64 (2048 columns × 64 rows at the bottom of NRCA1, read through 4 outputs):
/// the window of the fidelity test (see there why).
pub fn subgrism64() -> Subarray {
    Subarray {
        name: "SUBGRISM64".into(),
        xstart: 1,
        ystart: 1,
        nx: 2048,
        ny: 64,
    }
}

/// Writes the uncal exposure (with the drifts) and every reference file into `dir`.
pub fn make_exposure(dir: &Path, spec: &ExposureSpec) -> Exposure {
    let cfg = spec.cfg.clone();
    let truth = Truth::generate(&cfg).expect("simulator config");
    let uncal = dir.join("exp_uncal.fits");
    if spec.drift > 0.0 {
        let clean = dir.join("exp_nodrift_uncal.fits");
        write_uncal(&clean, &cfg, &truth, spec.kind, 0).expect("write uncal");
        add_drift(&clean, &uncal, &cfg, spec.drift);
        std::fs::remove_file(&clean).unwrap();
    } else {
        write_uncal(&uncal, &cfg, &truth, spec.kind, 0).expect("write uncal");
    }
    let refs = write_references(dir, &cfg, &truth);
    Exposure {
        cfg,
        truth,
        uncal,
        refs,
    }
}

/// Copies the uncal file `src` to `dst` adding, to every group, an offset per amplifier
/// (512-column stripe of the full frame) and column parity and a slow wave along the rows, as
/// 1/f noise and amplifier drifts put into real ramps; reference pixels get them too, which is
/// what lets the refpix step take them out again. Values stay integers (the uncal SCI is
/// uint16).
fn add_drift(src: &Path, dst: &Path, cfg: &SimConfig, sigma: f64) {
    let header = read_primary_header(src).unwrap();
    let mut r = ImageReader::open(src, "SCI").unwrap();
    let shape = r.shape().to_vec();
    let (ny, nx) = (shape[2], shape[3]);
    let planes = shape[0] * shape[1];
    let x0 = cfg.subarray.as_ref().map_or(0, |s| s.xstart - 1);
    let mut sci: Vec<u16> = Vec::with_capacity(planes * ny * nx);
    for k in 0..planes {
        let plane = r.read_plane::<u16>(k).unwrap();
        let mut rng = stream(cfg.seed, &[0xd41f7, k as u64]);
        let offsets: Vec<f64> = (0..8).map(|_| sigma * rng.normal()).collect();
        let phase = std::f64::consts::TAU * rng.uniform();
        let period = 20.0 + 40.0 * rng.uniform();
        for y in 0..ny {
            let wave = sigma * (std::f64::consts::TAU * y as f64 / period + phase).sin();
            for x in 0..nx {
                let fx = x0 + x;
                let off = offsets[(fx / 512).min(3) * 2 + fx % 2] + wave;
                let v = f64::from(plane[y * nx + x]) + off.round();
                sci.push(v.clamp(0.0, 65535.0) as u16);
            }
        }
    }
    let pixeldq = ImageReader::open(src, "PIXELDQ")
        .unwrap()
        .read_plane::<u32>(0)
        .unwrap();
    let mut gdq = vec![0u8; planes * ny * nx];
    let mut g = ImageReader::open(src, "GROUPDQ").unwrap();
    for (k, out) in gdq.chunks_exact_mut(ny * nx).enumerate() {
        g.read_rows(k, 0, ny, out).unwrap();
    }
    let mut w = FitsWriter::create(dst).unwrap();
    for (k, v) in header.iter() {
        if matches!(k, "SIMPLE" | "BITPIX" | "EXTEND") || k.starts_with("NAXIS") {
            continue;
        }
        w.set_primary_key(k, v, "").unwrap();
    }
    w.set_primary_key(
        "FILENAME",
        &HeaderValue::Str(dst.file_name().unwrap().to_string_lossy().into()),
        "",
    )
    .unwrap();
    w.write_image("SCI", &shape, &sci).unwrap();
    w.write_image("PIXELDQ", &[ny, nx], &pixeldq).unwrap();
    w.write_image("GROUPDQ", &shape, &gdq).unwrap();
    w.write_asdf_extension().unwrap();
    w.finish().unwrap();
}

/// One reference file of `reftype` for the exposure's window, with the keywords jwst and the
/// native engine select and check it by.
fn write_ref<T: Pixel>(
    path: &Path,
    cfg: &SimConfig,
    reftype: &str,
    images: &[(&str, Vec<usize>, Vec<T>)],
    dq: Option<Vec<u32>>,
    extra: &[(&str, HeaderValue)],
) {
    let sub = cfg.subarray.clone().expect("the tests simulate a subarray");
    let s = |v: &str| HeaderValue::Str(v.to_string());
    let i = |v: usize| HeaderValue::Int(v as i64);
    let mut w = FitsWriter::create(path).unwrap();
    let keys = [
        ("TELESCOP", s("JWST")),
        ("INSTRUME", s("NIRCAM")),
        ("DETECTOR", s(&cfg.detector)),
        ("REFTYPE", s(reftype)),
        ("DATAMODL", s(datamodel(reftype))),
        ("AUTHOR", s("mkrefs tests")),
        (
            "DESCRIP",
            s("simulated reference file for the jwst comparison tests"),
        ),
        ("PEDIGREE", s("DUMMY")),
        ("USEAFTER", s("2020-01-01T00:00:00")),
        ("READPATT", s("ANY")),
        ("SUBARRAY", s(&sub.name)),
        ("SUBSTRT1", i(sub.xstart)),
        ("SUBSTRT2", i(sub.ystart)),
        ("SUBSIZE1", i(sub.nx)),
        ("SUBSIZE2", i(sub.ny)),
        ("FASTAXIS", HeaderValue::Int(-1)),
        ("SLOWAXIS", HeaderValue::Int(2)),
    ];
    for (k, v) in keys.iter().chain(extra) {
        w.set_primary_key(k, v, "").unwrap();
    }
    for (name, shape, data) in images {
        w.write_image(name, shape, data).unwrap();
    }
    if let Some(dq) = dq {
        w.write_image("DQ", &[sub.ny, sub.nx], &dq).unwrap();
    }
    w.finish().unwrap();
}

fn datamodel(reftype: &str) -> &'static str {
    match reftype {
        "MASK" => "MaskModel",
        "SATURATION" => "SaturationModel",
        "SUPERBIAS" => "SuperBiasModel",
        "LINEARITY" => "LinearityModel",
        "DARK" => "DarkModel",
        "READNOISE" => "ReadnoiseModel",
        _ => "GainModel",
    }
}

/// The reference files: MASK from the truth's defects (reference pixels as REFERENCE_PIXEL);
/// SATURATION at bias + 40000 DN except 3 % of pixels at bias + 300..4300 DN (they saturate
/// in flats or with a cosmic ray) and 0.5 % with NO_SAT_CHECK; SUPERBIAS the true bias with 1 %
/// UNRELIABLE_BIAS; LINEARITY a cubic with per-pixel quadratic and cubic terms of realistic
/// size (about 1 % at 10000 DN) and 0.5 % NO_LIN_CORR; DARK the true dark current per frame
/// plus a per-pixel offset (frame-resolved: NFRAMES = 1, GROUPGAP = 0) with 0.5 % HOT;
/// READNOISE and GAIN the truth.
pub fn write_references(dir: &Path, cfg: &SimConfig, truth: &Truth) -> RefFiles {
    let (ny, nx) = (truth.ny, truth.nx);
    let n = ny * nx;
    let p = |name: &str| dir.join(name);
    let mut rng = stream(cfg.seed, &[0x4ef5]);
    let mut pick =
        |fraction: f64| -> Vec<bool> { (0..n).map(|_| rng.uniform() < fraction).collect() };
    let refpix: Vec<bool> = truth
        .defects
        .iter()
        .map(|&d| d & dq::REFERENCE_PIXEL != 0)
        .collect();

    write_ref::<f32>(
        &p("mask.fits"),
        cfg,
        "MASK",
        &[],
        Some(truth.defects.clone()),
        &[],
    );

    let low = pick(0.03);
    let nosat = pick(0.005);
    let mut rng2 = stream(cfg.seed, &[0x5a7]);
    let sat: Vec<f32> = (0..n)
        .map(|i| {
            let headroom = if low[i] {
                300.0 + 4000.0 * rng2.uniform()
            } else {
                40_000.0
            };
            (f64::from(truth.bias[i]) + headroom).min(65_000.0) as f32
        })
        .collect();
    let sat_dq: Vec<u32> = (0..n)
        .map(|i| if nosat[i] { dq::NO_SAT_CHECK } else { 0 })
        .collect();
    write_ref(
        &p("saturation.fits"),
        cfg,
        "SATURATION",
        &[("SCI", vec![ny, nx], sat)],
        Some(sat_dq),
        &[],
    );

    let unreliable = pick(0.01);
    let bias_dq: Vec<u32> = (0..n)
        .map(|i| {
            if unreliable[i] {
                dq::UNRELIABLE_BIAS
            } else {
                0
            }
        })
        .collect();
    write_ref(
        &p("superbias.fits"),
        cfg,
        "SUPERBIAS",
        &[("SCI", vec![ny, nx], truth.bias.clone())],
        Some(bias_dq),
        &[],
    );

    let nolin = pick(0.005);
    let mut coeffs = vec![0f32; 4 * n];
    let mut rng3 = stream(cfg.seed, &[0x11e]);
    for i in 0..n {
        coeffs[n + i] = 1.0;
        coeffs[2 * n + i] = (1.0e-6 * (1.0 + 0.2 * rng3.normal())) as f32;
        coeffs[3 * n + i] = (-2.0e-11 * (1.0 + 0.2 * rng3.normal())) as f32;
    }
    let lin_dq: Vec<u32> = (0..n)
        .map(|i| if nolin[i] { dq::NO_LIN_CORR } else { 0 })
        .collect();
    write_ref(
        &p("linearity.fits"),
        cfg,
        "LINEARITY",
        &[("COEFFS", vec![4, ny, nx], coeffs)],
        Some(lin_dq),
        &[],
    );

    let hot = pick(0.005);
    let frames = cfg.ngroups * (cfg.nframes + cfg.groupgap) + 2;
    let tframe = cfg.frame_time().unwrap();
    let mut rng4 = stream(cfg.seed, &[0xda7c]);
    let offset: Vec<f64> = (0..n)
        .map(|i| if refpix[i] { 0.0 } else { 0.5 * rng4.normal() })
        .collect();
    let dark: Vec<f32> = (0..frames * n)
        .map(|k| {
            let (f, i) = (k / n, k % n);
            (f64::from(truth.dark[i]) * tframe * (f + 1) as f64 + offset[i]) as f32
        })
        .collect();
    let dark_dq: Vec<u32> = (0..n).map(|i| if hot[i] { dq::HOT } else { 0 }).collect();
    write_ref(
        &p("dark.fits"),
        cfg,
        "DARK",
        &[("SCI", vec![frames, ny, nx], dark)],
        Some(dark_dq),
        &[
            ("NFRAMES", HeaderValue::Int(1)),
            ("GROUPGAP", HeaderValue::Int(0)),
            ("NGROUPS", HeaderValue::Int(frames as i64)),
            ("NOUTPUTS", HeaderValue::Int(4)),
        ],
    );

    write_ref(
        &p("readnoise.fits"),
        cfg,
        "READNOISE",
        &[("SCI", vec![ny, nx], truth.readnoise.clone())],
        None,
        &[],
    );
    write_ref(
        &p("gain.fits"),
        cfg,
        "GAIN",
        &[("SCI", vec![ny, nx], vec![truth.gain as f32; n])],
        None,
        &[],
    );
    RefFiles {
        mask: p("mask.fits"),
        saturation: p("saturation.fits"),
        superbias: p("superbias.fits"),
        linearity: p("linearity.fits"),
        dark: p("dark.fits"),
        readnoise: p("readnoise.fits"),
        gain: p("gain.fits"),
    }
}

/// Runs `cmd` with the offline environment, failing the test with its output if it fails.
pub fn run_offline(mut cmd: Command, scratch: &Path) -> std::process::Output {
    for (k, v) in offline_env(scratch) {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("cannot start the jwst process");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
