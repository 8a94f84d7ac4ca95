//! Runs a careful user can trust, through the `mkrefs` binary: nothing written outside the
//! output root, command-line values checked as the configuration's are.

use std::path::Path;

use mkrefs_e2e::{CalibrationData, all_files, mkrefs, run};

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
    assert!(second.stdout.contains("1 skipped"), "{second:?}");
    let images = std::fs::read_to_string(data.join("out/run000/run000.im.txt")).unwrap();
    assert_eq!(images.lines().count(), 3, "two darks, no output: {images}");
}
