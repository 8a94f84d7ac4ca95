//! Runs the readnoise generator as a whole process, for timing and peak-RSS measurements:
//!
//! ```text
//! readnoise_job simulate DIR NFILES NINTS NGROUPS NY NX   # writes DIR/dark_<i>_uncal.fits (NIRCam NRCA1)
//! readnoise_job run OUT.fits IN.fits...                    # env THREADS (default 2), PARAMS "k=v,k=v"
//! ```
//!
//! The simulated reads are `bias + 2·(g+1) + rn·N(0,1)` rounded to u16 with rn between 4 and 8
//! DN; the same data serve the superbias example.

use std::path::{Path, PathBuf};
use std::time::Instant;

use mkref_readnoise::ReadnoiseGenerator;
use mkrefs_plugin_api::abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef, std_types::RStr};
use mkrefs_plugin_api::{
    HostCallbacks, HostCallbacks_TO, ImageKind, InputImage, Job, LogLevel, Param, ParamValue,
    ReferenceGenerator,
};
use mkrefs_support::fits::FitsWriter;
use mkrefs_support::header::HeaderValue;
use mkrefs_support::rng::stream;
use rayon::prelude::*;

struct Stderr;

impl HostCallbacks for Stderr {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        eprintln!("[{level:?}] {message}");
    }
    fn progress(&self, _stage: RStr<'_>, _done: u64, _total: u64) {}
}

fn simulate(dir: &Path, nfiles: usize, nints: usize, ngroups: usize, ny: usize, nx: usize) {
    std::fs::create_dir_all(dir).unwrap();
    for f in 0..nfiles {
        let npix = ny * nx;
        let mut data = vec![0u16; nints * ngroups * npix];
        data.par_chunks_mut(nx).enumerate().for_each(|(row, out)| {
            let (plane, y) = (row / ny, row % ny);
            let g = plane % ngroups;
            let mut rng = stream(f as u64, &[plane as u64, y as u64]);
            for (x, v) in out.iter_mut().enumerate() {
                let rn = 4.0 + 4.0 * x as f64 / nx as f64;
                let bias = 12_000.0 + 300.0 * (0.1 * x as f64).sin() + 0.5 * y as f64;
                *v = (bias + 2.0 * (g + 1) as f64 + rn * rng.normal()).round() as u16;
            }
        });
        let path = dir.join(format!("dark_{f}_uncal.fits"));
        let mut w = FitsWriter::create(&path).unwrap();
        let s = |v: &str| HeaderValue::Str(v.into());
        for (k, v) in [
            ("TELESCOP", s("JWST")),
            ("INSTRUME", s("NIRCAM")),
            ("DETECTOR", s("NRCA1")),
            (
                "SUBARRAY",
                s(if ny == 2048 && nx == 2048 {
                    "FULL"
                } else {
                    "GENERIC"
                }),
            ),
            ("SUBSTRT1", HeaderValue::Int(1)),
            ("SUBSTRT2", HeaderValue::Int(1)),
            ("FASTAXIS", HeaderValue::Int(-1)),
            ("SLOWAXIS", HeaderValue::Int(2)),
            ("READPATT", s("RAPID")),
            ("NINTS", HeaderValue::Int(nints as i64)),
            ("NGROUPS", HeaderValue::Int(ngroups as i64)),
        ] {
            w.set_primary_key(k, &v, "").unwrap();
        }
        w.write_image::<u16>("SCI", &[nints, ngroups, ny, nx], &data)
            .unwrap();
        w.finish().unwrap();
        println!("{}", path.display());
    }
}

/// Runs `generator` on `inputs`; parameters from env `PARAMS` (`k=v,k=v`; numbers, true/false,
/// else strings), threads from env `THREADS`.
pub fn run<G: ReferenceGenerator>(generator: &G, output: &Path, inputs: &[PathBuf]) {
    let mut params: Vec<Param> = generator
        .extra_optional_arguments()
        .into_iter()
        .map(|s| Param::new(s.name.as_str(), s.default))
        .collect();
    if let Ok(text) = std::env::var("PARAMS") {
        for kv in text.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv.split_once('=').expect("PARAMS items are k=v");
            let value = if let Ok(i) = v.parse::<i64>() {
                ParamValue::Int(i)
            } else if let Ok(x) = v.parse::<f64>() {
                ParamValue::Float(x)
            } else if let Ok(b) = v.parse::<bool>() {
                ParamValue::Bool(b)
            } else {
                ParamValue::str(v)
            };
            let p = params
                .iter_mut()
                .find(|p| p.name.as_str() == k)
                .unwrap_or_else(|| panic!("no parameter {k}"));
            p.value = value;
        }
    }
    let threads: u32 = std::env::var("THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(2);
    let host = Stderr;
    let job = Job {
        reflabel: generator.reflabel().into(),
        reftype: generator.reftype().into(),
        cmd_id: 0,
        output: output.to_string_lossy().as_ref().into(),
        inputs: inputs
            .iter()
            .enumerate()
            .map(|(i, p)| InputImage {
                label: format!("D{}", i + 1).into(),
                kind: ImageKind::Dark,
                path: p.to_string_lossy().as_ref().into(),
                raw_path: p.to_string_lossy().as_ref().into(),
                mjd: 60000.0,
                detector: "NRCA1".into(),
                header: Default::default(),
            })
            .collect(),
        params: params.into(),
        scratch_dir: std::env::temp_dir().to_string_lossy().as_ref().into(),
        threads,
        extensions: Default::default(),
        host: HostCallbacks_TO::from_ptr(RRef::new(&host), TD_Opaque),
    };
    let t = Instant::now();
    match generator.call_algorithm(&job) {
        Ok(r) => println!("{} in {:.2} s", r.summary, t.elapsed().as_secs_f64()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("simulate") if args.len() == 7 => {
            let n = |i: usize| args[i].parse::<usize>().expect("a number");
            simulate(Path::new(&args[1]), n(2), n(3), n(4), n(5), n(6));
        }
        Some("run") if args.len() >= 3 => {
            let inputs: Vec<PathBuf> = args[2..].iter().map(PathBuf::from).collect();
            run(&ReadnoiseGenerator, Path::new(&args[1]), &inputs);
        }
        _ => {
            eprintln!(
                "usage: readnoise_job simulate DIR NFILES NINTS NGROUPS NY NX | readnoise_job run OUT IN..."
            );
            std::process::exit(2);
        }
    }
}
