//! The command line on bad input: every error is short, names what and where, and exits
//! non-zero; nothing is run when the inputs or the configuration are wrong.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{mkrefs, run, small_dataset};
use mkrefs_support::fits::{FitsWriter, read_primary_header};
use mkrefs_support::header::HeaderValue;

fn darks(dir: &Path, n: usize) -> Vec<PathBuf> {
    small_dataset(&dir.join("data"), n, 0, 64, 4, 3).0
}

fn strs(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// Writes a FITS file with the primary header of `like` minus `drop_key`, and a SCI image of
/// the given shape.
fn fits_like(like: &Path, out: &Path, drop_key: Option<&str>, shape: &[usize]) {
    let header = read_primary_header(like).unwrap();
    let mut w = FitsWriter::create(out).unwrap();
    for (k, v) in header.iter() {
        if Some(k) == drop_key || ["SIMPLE", "BITPIX", "NAXIS", "EXTEND"].contains(&k) {
            continue;
        }
        w.set_primary_key(k, v, "").unwrap();
    }
    let n: usize = shape.iter().product();
    w.write_image("SCI", shape, &vec![1000.0f32; n]).unwrap();
    w.finish().unwrap();
}

#[test]
fn plugins_lists_the_bundled_generators() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path()).arg("plugins"));
    assert!(out.ok(), "{out:?}");
    for word in [
        "readnoise",
        "READNOISE",
        "superbias",
        "SUPERBIAS",
        "bundled",
    ] {
        assert!(out.stdout.contains(word), "{word} missing: {out:?}");
    }
}

#[test]
fn describe_prints_every_parameter_with_kind_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path()).args(["describe", "readnoise"]));
    assert!(out.ok(), "{out:?}");
    for word in [
        "method",
        "group_diff_type",
        "clipping_sigma",
        "float",
        "default 3.0",
        "single_value",
        "bool",
    ] {
        assert!(out.stdout.contains(word), "{word} missing: {out:?}");
    }
    // A reftype configured in default_reflabels names its generator.
    let alias = run(mkrefs(dir.path()).args(["describe", "SUPERBIAS"]));
    assert!(alias.ok(), "{alias:?}");
    assert!(alias.stdout.contains("bad_sigma_threshold"), "{alias:?}");
    let unknown = run(mkrefs(dir.path()).args(["describe", "readnoize"]));
    assert!(!unknown.ok());
    assert!(
        unknown.stderr.contains("no generator 'readnoize'"),
        "{unknown:?}"
    );
    assert!(
        unknown.stderr.contains("did you mean 'readnoise'"),
        "{unknown:?}"
    );
}

#[test]
fn unknown_reflabel_and_missing_files_stop_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 1);
    let out = run(mkrefs(dir.path()).arg("readnoize").args(strs(&files)));
    assert!(!out.ok());
    assert!(out.stderr.contains("no reflabel given"), "{out:?}");
    assert!(out.stderr.contains("readnoise"), "{out:?}");

    let out = run(mkrefs(dir.path()).args(["readnoise", "/no/such/file_uncal.fits"]));
    assert!(!out.ok());
    assert!(out.stderr.contains("/no/such/file_uncal.fits"), "{out:?}");
    assert!(
        !dir.path().join("mkrefs_out").exists(),
        "nothing may be written"
    );
}

#[test]
fn a_file_that_is_not_fits_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let bogus = dir.path().join("notes_uncal.fits");
    std::fs::write(&bogus, "this is not a FITS file\n").unwrap();
    let out = run(mkrefs(dir.path()).arg("readnoise").arg(&bogus));
    assert!(!out.ok());
    assert!(out.stderr.contains("notes_uncal.fits"), "{out:?}");
    assert!(out.stderr.to_lowercase().contains("fits"), "{out:?}");
    assert!(!dir.path().join("mkrefs_out").exists());
}

#[test]
fn a_missing_required_header_key_names_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 1);
    let broken = dir.path().join("nodetector_uncal.fits");
    fits_like(&files[0], &broken, Some("NGROUPS"), &[1, 2, 8, 8]);
    let out = run(mkrefs(dir.path()).arg("readnoise").arg(&broken));
    assert!(!out.ok());
    assert!(out.stderr.contains("nodetector_uncal.fits"), "{out:?}");
    assert!(out.stderr.contains("NGROUPS"), "{out:?}");
}

#[test]
fn truncated_and_wrongly_shaped_inputs_fail_their_job_only() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 2);
    // Truncate the data of the second file: its header still reads, its pixels do not.
    let len = std::fs::metadata(&files[1]).unwrap().len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&files[1])
        .unwrap();
    f.set_len(len / 2).unwrap();
    let out = run(mkrefs(dir.path())
        .arg("superbias")
        .args(strs(&files))
        .args(["--outrootdir", "out"]));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("FAILED"), "{out:?}");
    assert!(
        out.all().contains("truncated") || out.all().contains("end of file"),
        "{out:?}"
    );
    assert!(
        mkrefs_e2e::fits_outputs(&dir.path().join("out")).is_empty(),
        "a failed job leaves no file with a final name"
    );

    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 1);
    let flat = dir.path().join("flat2d_uncal.fits");
    fits_like(&files[0], &flat, None, &[64, 64]);
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .arg(&flat)
        .args(["--outrootdir", "out"]));
    assert!(!out.ok(), "{out:?}");
    assert!(out.all().contains("flat2d_uncal.fits"), "{out:?}");
    assert!(
        out.all().contains("4-D") || out.all().contains("dimension"),
        "{out:?}"
    );
}

#[test]
fn parameters_are_checked_by_name_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 2);
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&files))
        .args(["--readnoise.bogus", "3"]));
    assert!(!out.ok());
    assert!(out.stderr.contains("--readnoise.bogus"), "{out:?}");

    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&files))
        .args(["--clipping_sigma", "abc"]));
    assert!(!out.ok());
    assert!(out.stderr.contains("clipping_sigma"), "{out:?}");
    assert!(out.stderr.contains("expected a number"), "{out:?}");

    let out = run(mkrefs(dir.path())
        .arg("readnoise,superbias")
        .args(strs(&files))
        .args(["--clipping_sigma", "4"]));
    assert!(!out.ok());
    assert!(out.stderr.contains("ambiguous"), "{out:?}");
    assert!(out.stderr.contains("--readnoise.clipping_sigma"), "{out:?}");

    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, "readnoise:\n  clipping_sigam: 4\n").unwrap();
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&files))
        .arg("-e")
        .arg(&extra));
    assert!(!out.ok());
    assert!(out.stderr.contains("extra.yaml"), "{out:?}");
    assert!(out.stderr.contains("clipping_sigam"), "{out:?}");
    assert!(out.stderr.contains("clipping_sigma"), "{out:?}");
}

#[test]
fn an_unset_environment_variable_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 2);
    let out = run(mkrefs(dir.path())
        .env_remove("MKREFS_TEST_NOT_SET")
        .arg("readnoise")
        .args(strs(&files))
        .args(["-p", "instrument", "$MKREFS_TEST_NOT_SET"]));
    assert!(!out.ok());
    assert!(out.stderr.contains("MKREFS_TEST_NOT_SET"), "{out:?}");
    assert!(out.stderr.contains("instrument"), "{out:?}");
}

#[test]
fn an_unwritable_output_directory_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 2);
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, "not a directory").unwrap();
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&files))
        .arg("--outrootdir")
        .arg(blocker.join("out")));
    assert!(!out.ok());
    assert!(out.stderr.contains("cannot create"), "{out:?}");
    assert!(out.stderr.contains("a-file"), "{out:?}");
}

#[test]
fn calibration_without_reference_files_lists_every_file_before_running() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 2);
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&files))
        .args(["--pp", "readnoise", "ssbsteps", "dq_init, saturation"]));
    assert!(!out.ok());
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(out.stderr.contains(&name), "{name} missing: {out:?}");
    }
    assert!(out.stderr.contains("reffile4ssb.mask"), "{out:?}");
    assert!(
        !dir.path().join("mkrefs_out").exists(),
        "nothing may be written"
    );
}

#[test]
fn header_values_keep_their_types() {
    // Guard for the fixtures above: the simulator writes integer keys as integers.
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path(), 1);
    let h = read_primary_header(&files[0]).unwrap();
    assert!(matches!(h.get("NGROUPS"), Some(HeaderValue::Int(4))));
}

#[test]
fn an_unreadable_subdirectory_of_an_input_directory_is_named() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    darks(dir.path(), 1);
    let data = dir.path().join("data");
    let locked = data.join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let mut cmd = mkrefs(dir.path());
    cmd.args(["readnoise", "data", "--dry-run"]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // root reads any directory: run mkrefs as `nobody`, for whom mode 000 is a barrier.
        for p in [dir.path(), &data] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        cmd.uid(65534).gid(65534);
    }
    let out = run(&mut cmd);
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(!out.ok(), "{out:?}");
    // The locked directory is named, as the search reached it (the token was `data`).
    assert!(
        out.stderr
            .contains("searching directory data: cannot read directory data/locked: "),
        "{out:?}"
    );
    assert!(out.stderr.contains("Permission denied"), "{out:?}");
    assert!(out.stderr.contains("chmod u+rx"), "{out:?}");
}

#[test]
fn a_misspelt_reflabel_is_named_wherever_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let files = strs(&darks(dir.path(), 1));
    let check = |out: &mkrefs_e2e::Ran, what: &str| {
        assert!(!out.ok(), "{what}: {out:?}");
        assert!(out.stderr.contains("'readnoyse'"), "{what}: {out:?}");
        assert!(
            out.stderr.contains("did you mean 'readnoise'")
                || out.stderr.contains("did you mean the reflabel 'readnoise'"),
            "{what}: {out:?}"
        );
    };
    let alone = run(mkrefs(dir.path()).args(["run", "readnoyse"]).args(&files));
    check(&alone, "the only reflabel");
    let second = run(mkrefs(dir.path())
        .args(["run", "superbias", "readnoyse"])
        .args(&files));
    check(&second, "a second reflabel word");
    let listed = run(mkrefs(dir.path())
        .args(["run", "superbias,readnoyse"])
        .args(&files));
    check(&listed, "a comma list");
    let option = run(mkrefs(dir.path())
        .args(["run", "readnoise"])
        .args(&files)
        .args(["--readnoyse.method", "stack"]));
    check(&option, "an option");
    assert!(option.stderr.contains("--readnoise.method"), "{option:?}");

    let section = dir.path().join("section.yaml");
    std::fs::write(&section, "readnoyse:\n  method: stack\n").unwrap();
    let out = run(mkrefs(dir.path())
        .args(["run", "readnoise", "--dry-run", "-e"])
        .arg(&section)
        .args(&files));
    check(&out, "a config section");
    assert!(out.stderr.contains("section.yaml"), "{out:?}");

    let list = dir.path().join("list.yaml");
    std::fs::write(
        &list,
        "reflabels: [readnoise, readnoyse]\ndefault_reflabels:\n  NOISE: readnoyse\n",
    )
    .unwrap();
    let selected = run(mkrefs(dir.path())
        .args(["run", "readnoyse", "--dry-run", "-e"])
        .arg(&list)
        .args(&files));
    check(&selected, "a reflabels entry");
    let alias = run(mkrefs(dir.path())
        .args(["run", "NOISE", "--dry-run", "-e"])
        .arg(&list)
        .args(&files));
    check(&alias, "a default_reflabels target");
    // Not selected: the run goes on, and the log names both.
    let fine = run(mkrefs(dir.path())
        .args(["run", "readnoise", "--dry-run", "-e"])
        .arg(&list)
        .args(&files));
    assert!(fine.ok(), "{fine:?}");
    let warned: Vec<&str> = fine
        .stderr
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("'readnoyse'"))
        .collect();
    assert_eq!(warned.len(), 2, "{fine:?}");
    assert!(
        warned
            .iter()
            .all(|l| l.contains("did you mean 'readnoise'")),
        "{fine:?}"
    );
}

#[test]
fn every_option_has_an_environment_variable_and_the_command_line_wins() {
    let dir = tempfile::tempdir().unwrap();
    let files = strs(&darks(dir.path(), 2));
    let help = run(mkrefs(dir.path()).args(["run", "--help"]));
    for env in [
        "MKREFS_OUTROOTDIR=",
        "MKREFS_JOBS=",
        "MKREFS_EXECUTOR=",
        "MKREFS_VERBOSE=",
    ] {
        assert!(help.stdout.contains(env), "{env}: {}", help.stdout);
    }
    // Options from the environment: the output root, a dry run, quiet logs.
    let from_env = run(mkrefs(dir.path())
        .env("MKREFS_OUTROOTDIR", "from-env")
        .env("MKREFS_DRY_RUN", "true")
        .env("MKREFS_QUIET", "1")
        .arg("superbias")
        .args(&files));
    assert!(from_env.ok(), "{from_env:?}");
    assert!(
        from_env.stdout.contains("from-env/run000"),
        "{}",
        from_env.stdout
    );
    assert!(!from_env.stderr.contains("INFO"), "{}", from_env.stderr);
    assert!(
        !dir.path().join("from-env").exists(),
        "a dry run writes nothing"
    );
    // The command line wins over the environment; a false flag is off.
    let both = run(mkrefs(dir.path())
        .env("MKREFS_OUTROOTDIR", "from-env")
        .env("MKREFS_DRY_RUN", "false")
        .args(["superbias", "--outrootdir", "from-line"])
        .args(&files));
    assert!(both.ok(), "{both:?}");
    assert!(dir.path().join("from-line/run000").is_dir());
    assert!(!dir.path().join("from-env").exists());
}
