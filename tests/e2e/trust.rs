//! Runs a careful user can trust, through the `mkrefs` binary: nothing written outside the
//! output root, command-line values checked as the configuration's are.

use std::path::Path;

use mkrefs_e2e::{CalibrationData, all_files, mkrefs, run, same_reference_files};

fn raw_darks(dir: &Path) -> Vec<String> {
    CalibrationData::write(&dir.join("data"), (2, 0), 32, 4, 5).uncal()
}

#[test]
fn names_that_would_lead_out_of_the_output_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let root = dir.path().join("root");
    for (option, value) in [
        ("--outsubdir", "../../escape"),
        ("--outsubdir", "/tmp/elsewhere"),
        ("--outsubdir", "a/b"),
        ("--addsuffix", "../x"),
    ] {
        let out = run(mkrefs(dir.path()).arg("superbias").args(&uncal).args([
            "--outrootdir",
            root.to_str().unwrap(),
            option,
            value,
        ]));
        assert!(!out.ok(), "{option} {value}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("'{value}' is not a plain name")),
            "{option} {value}: {out:?}"
        );
    }
    assert!(
        all_files(dir.path())
            .iter()
            .all(|f| f.starts_with(dir.path().join("data")))
    );
}

#[test]
fn command_line_counts_and_run_ids_are_checked_as_the_configuration_checks_them() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    for (args, says) in [
        (vec!["-j", "0"], "'0' is not a whole number of at least 1"),
        (
            vec!["--threads", "0"],
            "'0' is not a whole number of at least 1",
        ),
        (
            vec!["--runIDNdigits", "0"],
            "'0' is not a number of digits from 1 to 9",
        ),
        (
            vec!["-n", "--runID", "3"],
            "-n/--newrunID starts a new run after the latest one, which needs runID AUTO",
        ),
    ] {
        let out = run(mkrefs(dir.path())
            .args(["superbias", "--outrootdir", "out"])
            .args(&uncal)
            .args(&args));
        assert!(!out.ok(), "{args:?}: {out:?}");
        assert!(out.stderr.contains(says), "{args:?}: {out:?}");
    }
    assert!(!dir.path().join("out").exists());
}

#[test]
fn environment_variables_in_command_line_paths_are_expanded_like_config_values() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let out = run(mkrefs(dir.path())
        .env("MKREFS_TEST_ROOT", dir.path().join("expanded"))
        .args(["superbias", "--outrootdir", "${MKREFS_TEST_ROOT}/out"])
        .args(&uncal));
    assert!(out.ok(), "{out:?}");
    assert!(dir.path().join("expanded/out/run000").is_dir(), "{out:?}");
    let out = run(mkrefs(dir.path())
        .env_remove("MKREFS_NOT_SET")
        .args(["superbias", "--outrootdir", "$MKREFS_NOT_SET/out"])
        .args(&uncal));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("the environment variable $MKREFS_NOT_SET is not set"),
        "{out:?}"
    );
}

#[cfg(unix)]
#[test]
fn an_argument_that_is_not_utf8_is_named_not_a_crash() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"dark_\xff_uncal.fits");
    let out = run(mkrefs(dir.path()).arg("superbias").arg(bad));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("argument 2 (dark_\u{fffd}_uncal.fits) is not valid UTF-8"),
        "{out:?}"
    );
}

#[test]
fn an_output_tree_inside_the_input_directory_is_not_read_back_as_inputs() {
    let dir = tempfile::tempdir().unwrap();
    raw_darks(dir.path());
    let data = dir.path().join("data");
    // Dangling and looping links are passed over (named with -v).
    std::os::unix::fs::symlink(data.join("gone.fits"), data.join("dangling_uncal.fits")).unwrap();
    std::os::unix::fs::symlink(data.join("loop.fits"), data.join("loop.fits")).unwrap();
    let first =
        run(mkrefs(dir.path()).args(["-v", "superbias", "data", "--outrootdir", "data/out"]));
    assert!(first.ok(), "{first:?}");
    assert!(first.stderr.contains("dangling_uncal.fits"), "{first:?}");
    // The rerun finds the first run's superbias under data/out, and leaves it out.
    let second =
        run(mkrefs(dir.path()).args(["-v", "superbias", "data", "--outrootdir", "data/out"]));
    assert!(second.ok(), "{second:?}");
    assert!(
        second.stderr.contains("data/out: it is in the output tree"),
        "{second:?}"
    );
    // The superbias and its copy in final/.
    assert!(second.stdout.contains("2 skipped"), "{second:?}");
    let images = std::fs::read_to_string(data.join("out/run000/run000.im.txt")).unwrap();
    assert_eq!(images.lines().count(), 3, "two darks, no output: {images}");
}

/// 3 darks and 2 flats with the steps' reference files, and the arguments of a `dark,bpm` run
/// from the uncal files (5 calibration jobs, then 2 generator jobs).
fn campaign(dir: &Path) -> Vec<String> {
    let d = CalibrationData::write(&dir.join("data"), (3, 2), 64, 10, 17);
    from_uncal("dark,bpm", &d)
}

/// The arguments of a run of `reflabels` from the data's uncal files, with every step's
/// reference file.
fn from_uncal(reflabels: &str, d: &CalibrationData) -> Vec<String> {
    let mut args: Vec<String> = vec![reflabels.into()];
    args.extend(d.uncal());
    for (reftype, path) in &d.refs {
        args.extend([
            "--pp".into(),
            "reffile4ssb".into(),
            reftype.clone(),
            path.display().to_string(),
        ]);
    }
    args
}

/// Every file below `root` whose name marks it as a temporary.
fn temporaries(root: &Path) -> Vec<std::path::PathBuf> {
    all_files(root)
        .into_iter()
        .filter(|f| f.file_name().unwrap().to_string_lossy().contains(".part-"))
        .collect()
}

#[test]
fn temporaries_of_dead_processes_are_removed_when_a_run_starts() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    // A process that has ended.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    let left = [
        dir.path()
            .join(format!("out/run000/superbias/.superbias.fits.part-{pid}-0")),
        dir.path()
            .join(format!("out/ssb/.x_dq_init.fits.part-{pid}-3")),
    ];
    for f in &left {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, vec![0u8; 4096]).unwrap();
    }
    let out = run(mkrefs(dir.path())
        .args(["superbias", "--outrootdir", "out"])
        .args(&uncal));
    assert!(out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("removed 2 temporary file(s) left by processes that no longer run"),
        "{out:?}"
    );
    assert!(temporaries(dir.path()).is_empty());
}

/// Starts `mkrefs` in a process group of its own.
fn spawn_group(dir: &Path, args: &[String]) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    mkrefs(dir)
        .args(args)
        .process_group(0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigterm_stops_the_jobs_reports_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = campaign(dir.path());
    args.extend(["--outrootdir".into(), "out".into(), "-j".into(), "1".into()]);
    let child = spawn_group(dir.path(), &args);
    // Wait until the first calibration job has started, then stop the run (not its children).
    let logs = dir.path().join("out/run000/calibration");
    let t0 = std::time::Instant::now();
    while !logs.is_dir() && t0.elapsed().as_secs() < 60 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling the child this test started.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("the run was stopped by SIGTERM"),
        "{stdout}\n{stderr}"
    );
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    assert!(
        temporaries(dir.path()).is_empty(),
        "{:?}",
        temporaries(dir.path())
    );
    // Rerun: finishes what was left.
    let again = run(mkrefs(dir.path()).args(&args));
    assert!(again.ok(), "{again:?}");
}

#[test]
fn killing_the_whole_run_at_any_moment_then_rerunning_gives_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let args = campaign(dir.path());
    let with_root = |root: &str| {
        let mut a = args.clone();
        a.extend(["--outrootdir".into(), root.into(), "-j".into(), "2".into()]);
        a
    };
    let clean = run(mkrefs(dir.path()).args(with_root("clean")));
    assert!(clean.ok(), "{clean:?}");
    for (n, ms) in [150u64, 600, 1200, 2500].into_iter().enumerate() {
        let root = format!("killed{n}");
        let child = spawn_group(dir.path(), &with_root(&root));
        std::thread::sleep(std::time::Duration::from_millis(ms));
        // SAFETY: killing the process group this test started (the run and its jobs).
        unsafe {
            libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = child.wait_with_output();
        let again = run(mkrefs(dir.path()).args(with_root(&root)));
        assert!(again.ok(), "after a kill at {ms} ms: {again:?}");
        let root = dir.path().join(&root);
        assert!(temporaries(&root).is_empty(), "{:?}", temporaries(&root));
        same_reference_files(&dir.path().join("clean"), &root);
    }
}

#[test]
fn readout_keywords_that_contradict_the_ramp_are_named_before_anything_runs() {
    use mkrefs_support::fits::{FitsWriter, read_primary_header};
    use mkrefs_support::header::HeaderValue;
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let header = read_primary_header(Path::new(&uncal[0])).unwrap();
    let mut bad = Vec::new();
    for (name, value) in [
        ("ten", HeaderValue::from("ten")),
        ("frac", HeaderValue::Float(2.5)),
        ("huge", HeaderValue::Int(100_000_000)),
    ] {
        let key = if name == "frac" { "NINTS" } else { "NGROUPS" };
        let path = dir.path().join(format!("{name}_uncal.fits"));
        let mut w = FitsWriter::create(&path).unwrap();
        for (k, v) in header.iter() {
            if ["SIMPLE", "BITPIX", "NAXIS", "EXTEND"].contains(&k) {
                continue;
            }
            w.set_primary_key(k, if k == key { &value } else { v }, "")
                .unwrap();
        }
        w.write_image("SCI", &[2, 4, 32, 32], &vec![1000u16; 2 * 4 * 32 * 32])
            .unwrap();
        w.finish().unwrap();
        bad.push(path);
    }
    let out = run(mkrefs(dir.path())
        .args(["readnoise", "--outrootdir", "out"])
        .args(&bad));
    assert!(!out.ok(), "{out:?}");
    for says in [
        "ten_uncal.fits: NGROUPS is 'ten', not a whole number (the SCI data hold 4 groups)",
        "frac_uncal.fits: NINTS is '2.5', not a whole number (the SCI data hold 2 integrations)",
        "huge_uncal.fits: NGROUPS is 100000000 but the SCI data hold 4 groups",
    ] {
        assert!(out.stderr.contains(says), "{says}: {out:?}");
    }
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_job_is_skipped_only_while_what_it_read_is_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let superbias = |extra: &[&str]| {
        run(mkrefs(dir.path())
            .args(["superbias", "--outrootdir", "out"])
            .args(&uncal)
            .args(extra))
    };
    assert!(superbias(&[]).ok());
    let again = superbias(&[]);
    assert!(again.stdout.contains("2 skipped"), "{again:?}");
    // The same file name with other data (another seed), written in place.
    let other = CalibrationData::write(&dir.path().join("other"), (2, 0), 32, 4, 99);
    std::fs::copy(&other.darks[0], &uncal[0]).unwrap();
    let edited = superbias(&[]);
    assert!(edited.ok(), "{edited:?}");
    assert!(edited.stdout.contains("2 ok, 0 skipped"), "{edited:?}");
    assert!(
        edited
            .stderr
            .contains(&format!("made again: {} changed since", uncal[0])),
        "{edited:?}"
    );
    let param = superbias(&["--superbias.clipping_sigma", "4.5"]);
    assert!(
        param
            .stderr
            .contains("made again: parameter clipping_sigma changed"),
        "{param:?}"
    );
}

/// Two darks of 32x32 and the arguments of a `dark` run from them with every step's
/// reference file (two calibration jobs, then one generator job).
fn dark_from_uncal(dir: &Path) -> (Vec<String>, Vec<String>) {
    let d = CalibrationData::write(&dir.join("data"), (2, 0), 32, 4, 5);
    (d.uncal(), from_uncal("dark", &d))
}

fn with(args: &[String], extra: &[&str]) -> Vec<String> {
    let mut a = args.to_vec();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

#[test]
fn other_data_under_the_same_names_remakes_the_calibrated_products() {
    let dir = tempfile::tempdir().unwrap();
    let (uncal, args) = dark_from_uncal(dir.path());
    let first = run(mkrefs(dir.path()).args(with(&args, &["--outrootdir", "out"])));
    assert!(first.ok(), "{first:?}");
    // Other exposures written over the same file names, then a new run (-n) into the same
    // output root, whose ssbdir holds the first data's products.
    let other = CalibrationData::write(&dir.path().join("other"), (2, 0), 32, 4, 99);
    for (from, to) in other.darks.iter().zip(&uncal) {
        std::fs::copy(from, to).unwrap();
    }
    let second = run(mkrefs(dir.path()).args(with(&args, &["--outrootdir", "out", "-n"])));
    assert!(second.ok(), "{second:?}");
    for u in &uncal {
        assert!(
            second
                .stderr
                .contains(&format!("made again: {u} changed since")),
            "{u}: {second:?}"
        );
    }
    assert!(
        second.stdout.contains("4 job(s): 4 ok, 0 skipped"),
        "{second:?}"
    );
    // Equal to a run on the new data with nothing made before.
    let fresh =
        run(mkrefs(dir.path()).args(with(&args, &["--outrootdir", "fresh", "--runID", "1"])));
    assert!(fresh.ok(), "{fresh:?}");
    same_reference_files(
        &dir.path().join("out/run001"),
        &dir.path().join("fresh/run001"),
    );
    // And a rerun with nothing changed reuses everything.
    let again = run(mkrefs(dir.path()).args(with(&args, &["--outrootdir", "out"])));
    assert!(
        again.stdout.contains("4 job(s): 0 ok, 4 skipped"),
        "{again:?}"
    );
}

#[test]
fn a_run_waits_for_another_run_in_its_run_directory_or_stops_with_no_wait() {
    let dir = tempfile::tempdir().unwrap();
    let (_, args) = dark_from_uncal(dir.path());
    let args = with(&args, &["--outrootdir", "out"]);
    // Another process holds the run directory.
    let run_dir = dir.path().join("out/run000");
    std::fs::create_dir_all(&run_dir).unwrap();
    let lock = std::fs::File::create(run_dir.join(".mkrefs.lock")).unwrap();
    lock.lock().unwrap();
    let refused = run(mkrefs(dir.path()).args(with(&args, &["--no-wait"])));
    assert!(!refused.ok(), "{refused:?}");
    assert!(
        refused.stderr.contains(&format!(
            "the run directory {} is in use by",
            run_dir.display()
        )),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("--no-wait"), "{refused:?}");
    assert!(!dir.path().join("out/ssb").exists(), "nothing was made");
    // Without --no-wait it waits until the lock is free, then runs.
    let mut waiting = spawn_group(dir.path(), &args);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(waiting.try_wait().unwrap().is_none(), "it waits");
    drop(lock);
    let out = waiting.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("waiting for it to finish"), "{stderr}");
}

/// The number of calibration jobs of a run's summary with this status.
fn calibrations(stdout: &str, status: &str) -> usize {
    stdout
        .lines()
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            w.get(1) == Some(&"calibrate") && w.get(3) == Some(&status)
        })
        .count()
}

#[test]
fn concurrent_runs_sharing_a_run_directory_or_an_ssbdir_make_each_product_once() {
    let dir = tempfile::tempdir().unwrap();
    let args = campaign(dir.path());
    // Two runs into one run directory, started together: both finish.
    let same = with(&args, &["--outrootdir", "same", "-j", "2"]);
    let (a, b) = (
        spawn_group(dir.path(), &same),
        spawn_group(dir.path(), &same),
    );
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    assert!(temporaries(&dir.path().join("same")).is_empty());
    // Two runs into different roots sharing one ssbdir: each product is made by one of them,
    // and the other finds it up to date.
    let shared = |root: &str| {
        with(
            &args,
            &["--outrootdir", root, "--ssbdir", "shared", "-j", "2"],
        )
    };
    let (a, b) = (
        spawn_group(dir.path(), &shared("a")),
        spawn_group(dir.path(), &shared("b")),
    );
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success() && b.status.success(), "{a:?}\n{b:?}");
    let (sa, sb) = (
        String::from_utf8_lossy(&a.stdout),
        String::from_utf8_lossy(&b.stdout),
    );
    assert_eq!(
        calibrations(&sa, "ok") + calibrations(&sb, "ok"),
        5,
        "{sa}\n{sb}"
    );
    assert_eq!(
        calibrations(&sa, "skipped") + calibrations(&sb, "skipped"),
        5,
        "{sa}\n{sb}"
    );
    same_reference_files(&dir.path().join("a"), &dir.path().join("b"));
}

/// An allocator shim for LD_PRELOAD that refuses cfitsio the I/O buffers it allocates when it
/// opens a file (40 x 2880 bytes), as if memory had run out there.
const NO_CFITSIO_MEMORY: &str = r#"
#include <stddef.h>
extern void *__libc_calloc(size_t, size_t);
void *calloc(size_t n, size_t size) {
    if (n == 40 && size == 2880) return NULL;
    return __libc_calloc(n, size);
}
"#;

#[test]
fn cfitsio_running_out_of_memory_is_named_and_not_called_damage() {
    let dir = tempfile::tempdir().unwrap();
    let uncal = raw_darks(dir.path());
    let source = dir.path().join("shim.c");
    std::fs::write(&source, NO_CFITSIO_MEMORY).unwrap();
    let shim = dir.path().join("libnocfitsiomem.so");
    let built = std::process::Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .args([&shim, &source])
        .status()
        .expect("a C compiler (cc) to build the allocator shim");
    assert!(built.success());
    let out = run(mkrefs(dir.path())
        .env("LD_PRELOAD", &shim)
        .args(["readnoise", "--outrootdir", "out"])
        .args(&uncal));
    assert!(!out.ok(), "{out:?}");
    assert!(
        out.stderr
            .contains("out of memory while opening the file: cfitsio status 113"),
        "{out:?}"
    );
    assert!(out.stderr.contains("the file is not at fault"), "{out:?}");
    assert!(!out.stderr.contains("damaged"), "{out:?}");
}
