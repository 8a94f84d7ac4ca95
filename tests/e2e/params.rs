//! Generator parameters checked against their declared choices and ranges when the run is
//! planned: a bad value stops the run (dry run included) before any job, calibration or
//! generator, starts, and the message says which parameter, where it came from and what is
//! accepted.

use std::path::{Path, PathBuf};

use mkrefs_e2e::{CalibrationData, all_files, mkrefs, run, small_dataset};

fn darks(dir: &Path) -> Vec<String> {
    small_dataset(&dir.join("data"), 2, 0, 64, 4, 21)
        .0
        .iter()
        .map(|p| p.display().to_string())
        .collect()
}

/// The line of the output that starts with the parameter `name`, its words joined by one
/// space.
fn param_line(out: &mkrefs_e2e::Ran, name: &str) -> String {
    out.stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no line for {name}: {out:?}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_bad_choice_stops_the_run_before_any_calibration() {
    let dir = tempfile::tempdir().unwrap();
    let d = CalibrationData::write(&dir.path().join("data"), (2, 1), 32, 4, 22);
    let mut args: Vec<String> = vec!["bpm".into()];
    args.extend(d.uncal());
    for (reftype, path) in &d.refs {
        args.extend(["--pp", "reffile4ssb", reftype].map(String::from));
        args.push(path.display().to_string());
    }
    args.extend(["--outrootdir", "out", "--bpm.dead_search_type", "bogus"].map(String::from));
    let out = run(mkrefs(dir.path()).args(&args));
    assert!(!out.ok(), "{out:?}");
    for word in [
        "--bpm.dead_search_type",
        "'bogus'",
        "one of sigma_rate|absolute_rate",
    ] {
        assert!(out.stderr.contains(word), "{word} missing: {out:?}");
    }
    let written: Vec<PathBuf> = all_files(dir.path())
        .into_iter()
        .filter(|f| !f.starts_with(dir.path().join("data")))
        .collect();
    assert!(
        written.is_empty(),
        "no job may run or be written: {written:?}"
    );
}

#[test]
fn a_misspelt_choice_fails_the_dry_run_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path());
    let out = run(mkrefs(dir.path())
        .args(["-d", "readnoise"])
        .args(&files)
        .args(["--readnoise.method", "rampp"]));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("did you mean 'ramp'?"), "{out:?}");
    assert!(out.stderr.contains("one of stack|ramp"), "{out:?}");
    // Choices ignore case, as the generators read them.
    let fine = run(mkrefs(dir.path())
        .args(["-d", "readnoise"])
        .args(&files)
        .args(["--readnoise.method", "Ramp"]));
    assert!(fine.ok(), "{fine:?}");
}

#[test]
fn an_out_of_range_number_in_a_config_file_names_file_section_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path());
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, "readnoise:\n  max_clipping_iters: 0\n").unwrap();
    let out = run(mkrefs(dir.path())
        .args(["-d", "readnoise"])
        .args(&files)
        .arg("-e")
        .arg(&extra));
    assert!(!out.ok(), "{out:?}");
    for word in [
        "extra.yaml:2",
        "key 'max_clipping_iters' in section 'readnoise'",
        "is 0",
        "a number >= 1",
    ] {
        assert!(out.stderr.contains(word), "{word} missing: {out:?}");
    }
}

#[test]
fn an_unknown_qualified_parameter_gets_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path());
    let out = run(mkrefs(dir.path())
        .args(["-d", "readnoise"])
        .args(&files)
        .args(["--readnoise.methd", "ramp"]));
    assert!(!out.ok(), "{out:?}");
    // Generator parameters are options of the command line, so clap suggests the close one.
    assert!(out.stderr.contains("'--readnoise.methd'"), "{out:?}");
    assert!(
        out.stderr
            .contains("a similar argument exists: '--readnoise.method'"),
        "{out:?}"
    );
}

#[test]
fn describe_shows_choices_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path()).args(["describe", "readnoise"]));
    assert!(out.ok(), "{out:?}");
    let line = |name: &str| param_line(&out, name);
    assert_eq!(line("method"), "method string stack|ramp default \"stack\"");
    assert_eq!(
        line("clipping_sigma"),
        "clipping_sigma float > 0 default 3.0"
    );
    assert_eq!(
        line("max_clipping_iters"),
        "max_clipping_iters int >= 1 default 3"
    );
    let bpm = run(mkrefs(dir.path()).args(["describe", "bpm"]));
    assert!(bpm.ok(), "{bpm:?}");
    assert!(bpm.stdout.contains("in [0, 1]"), "{bpm:?}");
    assert!(
        bpm.stdout
            .contains("accepts: GOOD | DO_NOT_USE | SATURATED"),
        "{bpm:?}"
    );
}

#[test]
fn describe_shows_the_effective_value_of_each_parameter_and_where_it_came_from() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.yaml");
    std::fs::write(&extra, "readnoise:\n  method: ramp\n").unwrap();
    let out = run(mkrefs(dir.path())
        .args([
            "-e",
            "extra.yaml",
            "--pp",
            "readnoise",
            "clipping_sigma",
            "4",
        ])
        .args(["describe", "readnoise"]));
    assert!(out.ok(), "{out:?}");
    // The line below each parameter's header line.
    let effective = |name: &str| {
        let mut lines = out.stdout.lines();
        lines
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no line for {name}: {out:?}"));
        lines.next().unwrap().trim().to_string()
    };
    assert_eq!(effective("method"), "= \"ramp\"  (from extra.yaml:2)");
    assert_eq!(
        effective("clipping_sigma"),
        "= 4.0  (from command line --pp readnoise clipping_sigma)"
    );
    assert_eq!(
        effective("max_clipping_iters"),
        "= 3  (the generator's default)"
    );
    // A value the generator refuses fails describe as it would fail a run.
    let bad = run(mkrefs(dir.path())
        .args(["--pp", "readnoise", "method", "bogus"])
        .args(["describe", "readnoise"]));
    assert!(!bad.ok(), "{bad:?}");
    assert!(bad.stderr.contains("one of stack|ramp"), "{bad:?}");
}

#[test]
fn the_dry_run_shows_each_jobs_resolved_parameters() {
    let dir = tempfile::tempdir().unwrap();
    let files = darks(dir.path());
    let out = run(mkrefs(dir.path())
        .args(["-d", "readnoise"])
        .args(&files)
        .args(["--readnoise.method", "ramp"]));
    assert!(out.ok(), "{out:?}");
    let line = |name: &str| param_line(&out, name);
    assert_eq!(
        line("method"),
        "method = \"ramp\" (from command line --readnoise.method)"
    );
    assert_eq!(
        line("group_diff_type"),
        "group_diff_type = \"independent\" (the generator's default)"
    );
}
