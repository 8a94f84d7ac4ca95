//! The jwst backend against the real `strun` of the test venv (jwst 3.0.0): an argument vector
//! from `jwst_backend::strun_argv`, run with `offline_environment` (no CRDS server, no cache),
//! on a small simulated uncal exposure with override reference files, makes the final and the
//! intermediate products under the names mkrefs asked for, with the S_* keywords of the steps
//! it ran, the reference files it was given, and nothing else.

mod common;

use std::path::Path;
use std::process::Command;

use common::{ExposureSpec, make_exposure, run_offline, venv_program};
use mkrefs::prep::jwst::{
    StrunJob, collect_strun_outputs, step_reftypes, strun_argv, strun_work_dir,
};
use mkrefs::prep::steps::{Instrument, SaveProduct, Step};
use mkrefs_sim::{Kind, SimConfig};
use mkrefs_support::fits::{hdu_names, read_primary_header};
use mkrefs_support::header::Header;

/// A 64x64 NRCA1 corner subarray (SUB64P, with reference pixels), one integration of 6 groups:
/// small, so strun takes seconds.
fn small() -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_square_subarray(64)
        .with_ramp(1, 6)
        .with_seed(11);
    cfg.cosmic_ray_rate = 2e-3;
    cfg
}

fn header(path: &Path) -> Header {
    read_primary_header(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assert_state(path: &Path, complete: &[&str], absent_or_skipped: &[&str]) -> Header {
    let h = header(path);
    for k in complete {
        assert_eq!(h.get_str(k), Some("COMPLETE"), "{}: {k}", path.display());
    }
    for k in absent_or_skipped {
        assert!(
            matches!(h.get_str(k), None | Some("SKIPPED")),
            "{}: {k} = {:?}",
            path.display(),
            h.get_str(k)
        );
    }
    h
}

#[test]
fn strun_runs_the_argv_offline_and_writes_the_named_products() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let exp = make_exposure(
        dir,
        &ExposureSpec {
            cfg: small(),
            kind: Kind::Dark,
            drift: 0.0,
        },
    );
    let out = dir.join("ssb dir"); // a space: the argv needs no quoting
    std::fs::create_dir_all(&out).unwrap();
    use Step::*;
    let run = vec![
        DqInit,
        Saturation,
        Superbias,
        Refpix,
        Linearity,
        DarkCurrent,
        Jump,
        Rate,
    ];
    let file_of = |reftype: &str| {
        exp.refs
            .pairs()
            .into_iter()
            .find(|(r, _)| *r == reftype)
            .map(|(_, p)| p.to_path_buf())
            .unwrap()
    };
    let mut overrides = Vec::new();
    for &s in &run {
        for r in step_reftypes(s) {
            overrides.push((s, r.to_string(), file_of(r)));
        }
    }
    let job = StrunJob {
        instrument: Instrument::NirCam,
        input: exp.uncal.clone(),
        run,
        output_dir: out.clone(),
        final_name: "exp_rate".into(),
        save: vec![
            (SaveProduct::Step(Linearity), "exp_linearity".into()),
            (SaveProduct::Step(Jump), "exp_jump".into()),
            (SaveProduct::Rateints, "exp_rateints".into()),
            (SaveProduct::Fitopt, "exp_fitopt".into()),
        ],
        overrides,
    };
    let argv = strun_argv(&job).unwrap();
    std::fs::create_dir_all(strun_work_dir(&job)).unwrap();
    let mut cmd = Command::new(venv_program(&argv[0]));
    cmd.args(&argv[1..]).current_dir(dir);
    run_offline(cmd, &dir.join("scratch"));
    let moved = collect_strun_outputs(&job).unwrap();
    assert_eq!(moved.len(), 5, "{moved:?}");

    let mut made: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    made.sort();
    assert_eq!(
        made,
        [
            "exp_fitopt.fits",
            "exp_jump.fits",
            "exp_linearity.fits",
            "exp_rate.fits",
            "exp_rateints.fits"
        ],
        "products in {}",
        out.display()
    );
    let p = |n: &str| out.join(format!("{n}.fits"));
    let before_lin = ["S_DQINIT", "S_SATURA", "S_SUPERB", "S_REFPIX", "S_LINEAR"];
    assert_state(
        &p("exp_linearity"),
        &before_lin,
        &["S_DARK", "S_JUMP", "S_RAMP"],
    );
    let all: Vec<&str> = before_lin
        .iter()
        .copied()
        .chain(["S_DARK", "S_JUMP"])
        .collect();
    let j = assert_state(&p("exp_jump"), &all, &["S_RAMP"]);
    assert_eq!(j.get_str("DATAMODL"), Some("RampModel"));
    let all_rate: Vec<&str> = all.iter().copied().chain(["S_RAMP"]).collect();
    // Steps mkrefs did not ask for did not run.
    let not_run = [
        "S_IPC", "S_PERSIS", "S_CHGMIG", "S_GANSCL", "S_GRPSCL", "S_RESET",
    ];
    let rate = assert_state(&p("exp_rate"), &all_rate, &not_run);
    assert_eq!(rate.get_str("DATAMODL"), Some("ImageModel"));
    let ri = assert_state(&p("exp_rateints"), &all_rate, &not_run);
    assert_eq!(ri.get_str("DATAMODL"), Some("CubeModel"));
    assert!(
        hdu_names(&p("exp_fitopt"))
            .unwrap()
            .iter()
            .any(|h| h == "PEDESTAL"),
        "fitopt has PEDESTAL"
    );
    // The override files are recorded, and the context is the offline one.
    for (k, f) in [
        ("R_MASK", "mask.fits"),
        ("R_SATURA", "saturation.fits"),
        ("R_SUPERB", "superbias.fits"),
        ("R_LINEAR", "linearity.fits"),
        ("R_DARK", "dark.fits"),
        ("R_READNO", "readnoise.fits"),
        ("R_GAIN", "gain.fits"),
    ] {
        let v = rate.get_str(k).unwrap_or_default();
        assert!(v.ends_with(f), "{k} = {v:?}");
    }
    assert_eq!(
        rate.get_str("CRDS_CTX"),
        Some(mkrefs::prep::jwst::OFFLINE_CONTEXT)
    );
}
