//! The Slurm executor through the `mkrefs` binary on a real cluster (README, "Running on a
//! Slurm cluster"): `tests/slurm/cluster.sh start` brings up a single-node one on this machine
//! and exports `SLURM_CONF`; `tests/run.sh` does that and sets `MKREFS_REQUIRE_SLURM=1`, so
//! there the test cannot pass without a cluster. Elsewhere, without `SLURM_CONF`, it says so
//! and passes over.

use std::path::Path;

use mkrefs_e2e::{CalibrationData, mkrefs, run, same_reference_files};

/// Whether a cluster is there to run on.
fn cluster() -> bool {
    let there = std::env::var_os("SLURM_CONF").is_some();
    if !there {
        assert!(
            std::env::var_os("MKREFS_REQUIRE_SLURM").is_none(),
            "MKREFS_REQUIRE_SLURM is set but SLURM_CONF is not: start the cluster with \
             eval \"$(tests/slurm/cluster.sh start)\""
        );
        eprintln!("no SLURM_CONF: the Slurm executor is not tested (tests/slurm/cluster.sh)");
    }
    there
}

fn campaign(dir: &Path, data: &CalibrationData, root: &str, extra: &[&str]) -> mkrefs_e2e::Ran {
    let refs = data.ref_args();
    run(mkrefs(dir)
        .arg("readnoise,superbias,dark,bpm")
        .args(data.uncal())
        .args(refs)
        .args(["--pp", "readnoise", "imtypes", "D"])
        .args(["--outrootdir", root, "--ssbdir", &format!("{root}/ssb")])
        .args(extra))
}

#[test]
fn a_campaign_on_slurm_gives_the_files_of_a_local_run() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = CalibrationData::write(&d.join("data"), (3, 2), 64, 10, 61);
    let local = campaign(d, &data, "local", &[]);
    assert!(local.ok(), "{local:?}");
    let slurm = campaign(d, &data, "slurm", &["--executor", "slurm"]);
    assert!(slurm.ok(), "{slurm:?}");
    assert!(
        slurm
            .stdout
            .contains("15 job(s): 15 ok, 0 skipped, 0 failed"),
        "{}",
        slurm.stdout
    );
    assert!(slurm.stderr.contains("submitted as Slurm job"), "{slurm:?}");
    same_reference_files(&d.join("local/run000"), &d.join("slurm/run000"));
    let run_dir = d.join("slurm/run000");
    let manifest = std::fs::read_to_string(run_dir.join("manifest.json")).unwrap();
    assert!(manifest.contains("\"executor\": \"slurm\""), "{manifest}");
    // Each job's log is its child's stderr, beside it the job's stdout.
    let dark_log = std::fs::read_dir(run_dir.join("dark"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".log"))
        .unwrap();
    assert!(
        std::fs::read_to_string(&dark_log)
            .unwrap()
            .contains("finished in"),
        "{}",
        dark_log.display()
    );
    assert!(dark_log.with_extension("slurm.out").is_file());

    // A rerun submits nothing: every job, calibrations included, is up to date.
    let again = campaign(d, &data, "slurm", &["--executor", "slurm"]);
    assert!(again.ok(), "{again:?}");
    assert!(
        again.stdout.contains("15 job(s): 0 ok, 15 skipped"),
        "{}",
        again.stdout
    );
    assert!(!again.stderr.contains("submitted as"), "{again:?}");
}

#[test]
fn a_failed_job_stops_what_waits_on_it_and_detached_runs_are_reported_by_status() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = CalibrationData::write(&d.join("data"), (2, 0), 32, 4, 62);
    let darks: Vec<String> = data.darks.iter().map(|p| p.display().to_string()).collect();
    // A superbias from one ramp per job fails when it runs (it needs two frames a pixel);
    // Slurm cancels the final stage that waits on it; the readnoise goes on.
    let out = run(mkrefs(d)
        .args([
            "readnoise,superbias",
            "--executor",
            "slurm",
            "--outrootdir",
            "out",
        ])
        .args(&darks)
        .args(["--pp", "superbias", "imtypes", "D"]));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stdout
            .contains("5 job(s): 2 ok, 0 skipped, 2 failed, 1 not run"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("needs at least 2"), "{}", out.stdout);

    // --detach returns at once; status reports the jobs as they end.
    let detached = run(mkrefs(d)
        .args([
            "readnoise",
            "--executor",
            "slurm",
            "--detach",
            "--outrootdir",
            "det",
        ])
        .args(&darks));
    assert!(detached.ok(), "{detached:?}");
    assert!(
        detached
            .stdout
            .contains("2 submitted (see `mkrefs status`)"),
        "{}",
        detached.stdout
    );
    let run_dir = d.join("det/run000");
    let mut status = None;
    for _ in 0..60 {
        let s = run(mkrefs(d).arg("status").arg(&run_dir));
        if s.stdout.contains("0 not ended") {
            status = Some(s);
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    let status = status.expect("the detached jobs end within a minute");
    assert!(status.ok(), "{status:?}");
    assert!(
        status
            .stdout
            .contains("2 Slurm job(s): 0 not ended, 0 failed"),
        "{status:?}"
    );
    assert!(run_dir.join("final/readnoise_nrca1.fits").is_file());
}

/// The nodes of the cluster (`sinfo`).
fn node() -> String {
    let out = std::process::Command::new("sinfo")
        .args(["-h", "-o", "%N"])
        .output()
        .expect("sinfo runs");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Sets the node's state (`down`, or `resume`: refused, and not needed, when Slurm has
/// already taken the node back, as `ReturnToService=2` does once its slurmd answers).
fn scontrol_node(node: &str, state: &str) {
    let mut cmd = std::process::Command::new("scontrol");
    cmd.args([
        "update",
        &format!("nodename={node}"),
        &format!("state={state}"),
    ]);
    if state == "down" {
        cmd.arg("reason=mkrefs-test");
    }
    let ok = cmd.status().expect("scontrol runs").success();
    assert!(ok || state == "resume", "{state}");
}

#[test]
fn a_job_that_loses_its_node_is_submitted_again() {
    if !cluster() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Full-size enough that a calibration runs for a moment.
    let data = CalibrationData::write(&d.join("data"), (2, 0), 1024, 10, 63);
    let refs = data.ref_args();
    let child = mkrefs(d)
        .args(["dark", "--executor", "slurm", "--outrootdir", "out"])
        .args(data.uncal())
        .args(&refs)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // When a job runs, the node goes down under it (Slurm ends it NODE_FAIL), then back.
    let node = node();
    let started = std::time::Instant::now();
    loop {
        let out = std::process::Command::new("squeue")
            .args(["-h", "-t", "running", "-o", "%i"])
            .output()
            .unwrap();
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            break;
        }
        assert!(started.elapsed().as_secs() < 60, "no job ever ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    scontrol_node(&node, "down");
    std::thread::sleep(std::time::Duration::from_secs(2));
    scontrol_node(&node, "resume");
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("ended NODE_FAIL; submitting it again"),
        "{stderr}"
    );
    assert!(stdout.contains("4 job(s): 4 ok"), "{stdout}");
}
