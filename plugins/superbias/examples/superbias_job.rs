//! Runs the superbias generator as a whole process, for timing and peak-RSS measurements:
//!
//! ```text
//! superbias_job OUT.fits IN.fits...   # env THREADS (default 2), PARAMS "k=v,k=v"
//! ```
//!
//! Input data can be made with the readnoise example (`readnoise_job simulate ...`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use mkref_superbias::SuperbiasGenerator;
use mkrefs_plugin_api::abi_stable::{sabi_trait::TD_Opaque, sabi_types::RRef, std_types::RStr};
use mkrefs_plugin_api::{
    HostCallbacks, HostCallbacks_TO, ImageKind, InputImage, Job, LogLevel, Param, ParamValue,
    ReferenceGenerator,
};

struct Stderr;

impl HostCallbacks for Stderr {
    fn log(&self, level: LogLevel, message: RStr<'_>) {
        eprintln!("[{level:?}] {message}");
    }
    fn progress(&self, _stage: RStr<'_>, _done: u64, _total: u64) {}
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
    if args.len() < 2 {
        eprintln!("usage: superbias_job OUT IN...");
        std::process::exit(2);
    }
    let inputs: Vec<PathBuf> = args[1..].iter().map(PathBuf::from).collect();
    run(&SuperbiasGenerator, Path::new(&args[0]), &inputs);
}
