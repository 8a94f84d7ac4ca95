//! Shared helpers of the bpm integration tests: a job runner for darks *and* flats with
//! intermediate products (the support crate's `testkit::run_job` labels every input a dark and
//! passes no products), and small rate files with hand-made content.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use mkref_bpm::BpmGenerator;
use mkrefs_plugin_api::ParamValue;
use mkrefs_sim::testkit::{Outcome, TestInput, run_job_with};
use mkrefs_support::fits::{FitsWriter, ImageReader};
use mkrefs_support::generator::Exported;
use mkrefs_support::header::HeaderValue;

/// The DQ of a written mask and its size `(ny, nx)`.
pub fn read_mask(path: &Path) -> (Vec<u32>, usize, usize) {
    let mut r = ImageReader::open(path, "DQ").unwrap();
    let (ny, nx) = (r.ny(), r.nx());
    (r.read_plane::<u32>(0).unwrap(), ny, nx)
}

/// One input of a test job (the support test kit's).
pub type In = TestInput;

/// Runs the bpm generator on `inputs` with the declared defaults overridden by `overrides`
/// (manual_flag_file is '' unless overridden, so a developer's data directory cannot leak in).
pub fn run_bpm(inputs: &[In], output: &Path, overrides: &[(&str, ParamValue)]) -> Outcome {
    let mut all: Vec<(&str, ParamValue)> = vec![("manual_flag_file", ParamValue::str(""))];
    all.extend(overrides.iter().cloned());
    run_job_with(&Exported(BpmGenerator), inputs, output, &all)
}

/// Header of a hand-made file.
#[derive(Clone, Debug)]
pub struct Hdr {
    pub instrument: &'static str,
    pub detector: &'static str,
    pub subarray: &'static str,
    pub substrt: (i64, i64),
    /// `Some("COMPLETE")` for a slope product.
    pub s_ramp: Option<&'static str>,
}

impl Hdr {
    pub fn nircam(subarray: &'static str, substrt: (i64, i64)) -> Hdr {
        Hdr {
            instrument: "NIRCAM",
            detector: "NRCA1",
            subarray,
            substrt,
            s_ramp: Some("COMPLETE"),
        }
    }
}

/// Writes `data` (shape `shape`, C order) as SCI with `hdr` as the primary header.
pub fn write_sci<T: mkrefs_support::fits::Pixel>(
    path: &Path,
    hdr: &Hdr,
    shape: &[usize],
    data: &[T],
) -> PathBuf {
    let (ny, nx) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let det = mkrefs_support::geometry::detector_info(hdr.detector).unwrap();
    let mut w = FitsWriter::create(path).unwrap();
    let s = |v: &str| HeaderValue::Str(v.to_string());
    let mut keys = vec![
        ("TELESCOP", s("JWST")),
        ("INSTRUME", s(hdr.instrument)),
        ("DETECTOR", s(hdr.detector)),
        ("SUBARRAY", s(hdr.subarray)),
        ("SUBSTRT1", HeaderValue::Int(hdr.substrt.0)),
        ("SUBSTRT2", HeaderValue::Int(hdr.substrt.1)),
        ("SUBSIZE1", HeaderValue::Int(nx as i64)),
        ("SUBSIZE2", HeaderValue::Int(ny as i64)),
        ("FASTAXIS", HeaderValue::Int(det.fastaxis.into())),
        ("SLOWAXIS", HeaderValue::Int(det.slowaxis.into())),
        ("EXP_TYPE", s("NRC_FLAT")),
    ];
    if let Some(r) = hdr.s_ramp {
        keys.push(("S_RAMP", s(r)));
    }
    for (k, v) in &keys {
        w.set_primary_key(k, v, "").unwrap();
    }
    w.write_image::<T>("SCI", shape, data).unwrap();
    w.finish().unwrap();
    path.to_path_buf()
}

/// A flat-field rate image `ny × nx`: `level` times a smooth pattern with a small deterministic
/// pixel-to-pixel scatter (±1 %), so clipped statistics have a non-zero width.
pub fn flat_image(ny: usize, nx: usize, level: f32) -> Vec<f32> {
    (0..ny * nx)
        .map(|i| {
            let (y, x) = ((i / nx) as f32, (i % nx) as f32);
            let scatter = (((i as u64).wrapping_mul(2_654_435_761) >> 7) % 1000) as f32 / 1000.0;
            level
                * (1.0 + 0.05 * (x / nx as f32) + 0.03 * (y / ny as f32))
                * (0.99 + 0.02 * scatter)
        })
        .collect()
}
