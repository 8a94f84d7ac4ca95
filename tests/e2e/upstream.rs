//! What users already have, through the `mkrefs` binary: upstream jwst_reffiles configuration
//! files and the keys they use.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, mkrefs, run, workspace_root};
use mkrefs_support::fits::{FitsWriter, read_primary_header};
use mkrefs_support::header::HeaderValue;

/// Three uncal darks of a 64x64 NIRCam subarray and every step reference file, by reftype.
fn darks(dir: &Path) -> (Vec<String>, Vec<(String, PathBuf)>) {
    let d = CalibrationData::write(dir, (3, 0), 64, 6, 71);
    (d.uncal(), d.refs)
}

/// A `reffile4ssb` mapping with upstream's keys (`bpm`, `rdnoise`, `gainreffile`) where they
/// have one, indented by `indent`.
fn upstream_reffile4ssb(refs: &[(String, PathBuf)], indent: &str) -> String {
    let mut text = "reffile4ssb:\n".to_string();
    for (reftype, path) in refs {
        let key = match reftype.as_str() {
            "mask" => "bpm",
            "readnoise" => "rdnoise",
            "gain" => "gainreffile",
            other => other,
        };
        text.push_str(&format!("{indent}{key}: {}\n", path.display()));
    }
    text
}

/// The upstream example configuration with its `reffile4ssb` section replaced by `section`.
fn upstream_config(section: &str) -> String {
    let text =
        std::fs::read_to_string(workspace_root().join("configs/examples/upstream_mkrefs.cfg"))
            .unwrap();
    let start = text
        .find("\nreffile4ssb:")
        .expect("the example has reffile4ssb")
        + 1;
    let end = start + text[start..].find("\n\n").unwrap() + 1;
    format!("{}{section}{}", &text[..start], &text[end..])
}

fn dry_run(dir: &Path, config_args: &[String], uncal: &[String]) -> mkrefs_e2e::Ran {
    run(mkrefs(dir)
        .env("JWST_MKREFS_OUTDIR", dir.join("out"))
        .args(config_args)
        .arg("dark")
        .args(uncal)
        .arg("--dry-run"))
}

#[test]
fn upstream_reffile4ssb_keys_reach_the_steps_from_the_main_file() {
    let dir = tempfile::tempdir().unwrap();
    let (uncal, refs) = darks(&dir.path().join("data"));
    let cfg = dir.path().join("mkrefs.cfg");
    std::fs::write(&cfg, upstream_config(&upstream_reffile4ssb(&refs, "   "))).unwrap();
    let out = dry_run(
        dir.path(),
        &["-c".into(), cfg.display().to_string()],
        &uncal,
    );
    assert!(out.ok(), "{out:?}");
    // One calibration job per dark, reading the files the upstream keys named.
    assert_eq!(out.stdout.matches(" calibrate ").count(), 3, "{out:?}");
}

#[test]
fn upstream_reffile4ssb_keys_work_in_an_extra_file() {
    let dir = tempfile::tempdir().unwrap();
    let (uncal, refs) = darks(&dir.path().join("data"));
    let extra = dir.path().join("refs.yaml");
    std::fs::write(&extra, upstream_reffile4ssb(&refs, "  ")).unwrap();
    let out = dry_run(
        dir.path(),
        &["-e".into(), extra.display().to_string()],
        &uncal,
    );
    assert!(out.ok(), "{out:?}");
    assert_eq!(out.stdout.matches(" calibrate ").count(), 3, "{out:?}");
}

#[test]
fn an_upstream_key_and_its_new_name_together_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (uncal, refs) = darks(&dir.path().join("data"));
    let mask = &refs.iter().find(|(r, _)| r == "mask").unwrap().1;
    let extra = dir.path().join("refs.yaml");
    std::fs::write(
        &extra,
        format!(
            "reffile4ssb:\n  bpm: {}\n  mask: {}\n",
            mask.display(),
            mask.display()
        ),
    )
    .unwrap();
    let out = dry_run(
        dir.path(),
        &["-e".into(), extra.display().to_string()],
        &uncal,
    );
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}:3: reffile4ssb.mask and reffile4ssb.bpm both name the MASK reference file; keep \
             one of them",
            extra.display()
        )),
        "{out:?}"
    );
}

/// Raw darks for readnoise and superbias (no calibration needed).
fn raw_darks(dir: &Path) -> Vec<String> {
    darks(&dir.join("data")).0
}

#[test]
fn options_may_come_before_the_reflabel_as_upstream_took_them() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "-q", "--runID", "7"])
        .arg("superbias")
        .args(&uncal)
        .args(["--skip_runID_ssbdir", "--addsuffix", "bla"]));
    assert!(out.ok(), "{out:?}");
    let made = dir
        .path()
        .join("out/run007/superbias/superbias.run007.bla.cmd0_superbias.fits");
    assert!(made.is_file(), "{out:?}");
}

#[test]
fn upstream_run_limits_hold_jobs_back_for_a_later_run() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let first = run(mkrefs(dir.path())
        .args([
            "--outrootdir",
            "out",
            "--maxNref",
            "1",
            "readnoise,superbias",
        ])
        .args(&uncal));
    assert!(first.ok(), "held-back jobs are not failures: {first:?}");
    assert!(
        first
            .stdout
            .contains("4 job(s): 2 ok, 0 skipped, 0 failed, 2 held back for a later run"),
        "{first:?}"
    );
    assert!(
        first.stdout.contains("held back: --maxNref 1 reached"),
        "{first:?}"
    );
    // The next run makes the other one and skips the first.
    let second = run(mkrefs(dir.path())
        .args([
            "--outrootdir",
            "out",
            "--maxNref",
            "1",
            "readnoise,superbias",
        ])
        .args(&uncal));
    assert!(
        second
            .stdout
            .contains("4 job(s): 2 ok, 2 skipped, 0 failed"),
        "{second:?}"
    );
}

#[test]
fn upstream_debug_shows_the_plan_and_batch_mode_is_the_slurm_executor() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let debug = run(mkrefs(dir.path())
        .args(["-d", "--outrootdir", "out", "superbias"])
        .args(&uncal));
    assert!(debug.ok(), "{debug:?}");
    assert!(
        debug.stdout.contains("Dry run: nothing is written."),
        "{debug:?}"
    );
    assert!(!dir.path().join("out").exists(), "{debug:?}");
    // -b is the Slurm executor; --detach without it is refused before anything is made.
    let detach = run(mkrefs(dir.path())
        .args([
            "-b",
            "--executor",
            "local",
            "--detach",
            "--outrootdir",
            "out",
            "superbias",
        ])
        .args(&uncal));
    assert!(!detach.ok(), "{detach:?}");
    assert!(
        detach
            .stderr
            .contains("--detach: only the slurm executor leaves jobs running"),
        "{detach:?}"
    );
    assert!(!dir.path().join("out").exists(), "{detach:?}");
    // Without a cluster, sbatch's refusal names what to set.
    let batch = run(mkrefs(dir.path())
        .env("SLURM_CONF", dir.path().join("no-such-slurm.conf"))
        .env("PATH", "/nonexistent")
        .args(["-b", "--outrootdir", "out", "superbias"])
        .args(&uncal));
    assert!(!batch.ok(), "{batch:?}");
    assert!(batch.stdout.contains("cannot run sbatch"), "{batch:?}");
}

#[test]
fn the_run_tables_carry_the_header_keys_and_states_as_upstream_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "superbias"])
        .args(&uncal));
    assert!(out.ok(), "{out:?}");
    let run_dir = dir.path().join("out/run000");
    let images = std::fs::read_to_string(run_dir.join("run000.im.txt")).unwrap();
    let header: Vec<&str> = images.lines().next().unwrap().split_whitespace().collect();
    // The configured requiredfitskeys and optionalfitskeys, each a column.
    for key in [
        "INSTRUME", "NGROUPS", "NINTS", "TGROUP", "SUBARRAY", "FILTER", "READPATT",
    ] {
        assert!(header.contains(&key), "{images}");
    }
    let row: Vec<&str> = images.lines().nth(1).unwrap().split_whitespace().collect();
    let col = |k: &str| row[header.iter().position(|h| *h == k).unwrap() - 1];
    assert_eq!(col("INSTRUME"), "NIRCAM", "{images}");
    assert_eq!(col("NGROUPS"), "6", "{images}");
    let groups = std::fs::read_to_string(run_dir.join("run000.inputim.txt")).unwrap();
    let header: Vec<&str> = groups.lines().next().unwrap().split_whitespace().collect();
    assert!(header.contains(&"ssbsteps"), "{groups}");
    assert!(header.contains(&"ssb_save_steps"), "{groups}");
    let row: Vec<&str> = groups.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(
        row[header.iter().position(|h| *h == "ssbsteps").unwrap() - 1],
        "None",
        "superbias reads raw darks: {groups}"
    );
}

#[test]
fn a_simulated_folder_runs_as_a_directory_and_its_truth_is_no_input() {
    let dir = tempfile::tempdir().unwrap();
    darks(&dir.path().join("data"));
    let out = run(mkrefs(dir.path()).args(["--outrootdir", "out", "readnoise", "data"]));
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("file(s) found by the search that are not exposures"),
        "{out:?}"
    );
    assert!(
        out.stderr.contains("truth.fits (neither EXP_TYPE"),
        "{out:?}"
    );
    // Given by name, the truth is an error naming it.
    let named =
        run(mkrefs(dir.path()).args(["--outrootdir", "out2", "readnoise", "data/truth.fits"]));
    assert!(!named.ok(), "{named:?}");
    assert!(
        named
            .stderr
            .contains("truth.fits: not an exposure (neither EXP_TYPE nor DATE-END"),
        "{named:?}"
    );
}

/// A copy of `like`'s primary header with `keys` changed, and a SCI cube of `shape`.
fn relabelled(like: &Path, out: &Path, keys: &[(&str, HeaderValue)], shape: &[usize]) {
    let header = read_primary_header(like).unwrap();
    let mut w = FitsWriter::create(out).unwrap();
    for (k, v) in header.iter() {
        if ["SIMPLE", "BITPIX", "NAXIS", "EXTEND"].contains(&k) {
            continue;
        }
        let v = keys
            .iter()
            .find(|(key, _)| *key == k)
            .map_or(v, |(_, new)| new);
        w.set_primary_key(k, v, "").unwrap();
    }
    let n: usize = shape.iter().product();
    w.write_image("SCI", shape, &vec![1000u16; n]).unwrap();
    w.finish().unwrap();
}

#[test]
fn an_image_that_does_not_fit_its_detector_stops_the_plan_naming_the_keywords() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    // 4096 pixels wide, labelled a full frame of the 2048-pixel NRCA1.
    let wide = dir.path().join("wide_uncal.fits");
    let full = [
        ("SUBARRAY", HeaderValue::from("FULL")),
        ("SUBSIZE1", HeaderValue::Int(4096)),
        ("SUBSIZE2", HeaderValue::Int(8)),
    ];
    relabelled(Path::new(&uncal[0]), &wide, &full, &[2, 2, 8, 4096]);
    let out = run(mkrefs(dir.path())
        .args(["--outrootdir", "out", "readnoise,superbias"])
        .arg(&wide)
        .args(&uncal[1..]));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr.contains(&format!(
            "{}: the SCI image is 4096x8, larger than the 2048x2048 frame of DETECTOR NRCA1",
            wide.display()
        )),
        "{out:?}"
    );
    assert!(!dir.path().join("out").exists(), "nothing runs: {out:?}");
}

#[test]
fn a_calibration_limit_holds_back_the_rest_and_the_jobs_that_need_them() {
    let dir = tempfile::tempdir().unwrap();
    let (uncal, refs) = darks(&dir.path().join("data"));
    let mut args: Vec<String> = vec!["--outrootdir".into(), "out".into(), "dark".into()];
    args.extend(uncal);
    for (reftype, path) in &refs {
        args.extend([
            "--pp".into(),
            "reffile4ssb".into(),
            reftype.clone(),
            path.display().to_string(),
        ]);
    }
    args.extend(["--maxNstrun".into(), "1".into(), "-j".into(), "1".into()]);
    let out = run(mkrefs(dir.path()).args(&args));
    assert!(out.ok(), "held-back jobs are not failures: {out:?}");
    assert!(
        out.stdout
            .contains("5 job(s): 1 ok, 0 skipped, 0 failed, 4 held back for a later run"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains("held back: --maxNstrun 1 reached"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("cmd0 dark NRCA1 held back: it needs cal"),
        "{out:?}"
    );
}
