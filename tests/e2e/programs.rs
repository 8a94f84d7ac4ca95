//! Generator programs (`mkref_<reflabel>[.py]` on the plugin path, README "Generators in any
//! language"): the Python template generator is found, described and run by the real binary
//! with the test venv's Python and makes a GAIN file stdatamodels accepts; a failing or lying
//! program fails its job without leaving a file under the output's name; one that cannot
//! describe itself is reported and refused when selected.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use mkrefs_e2e::{all_files, mkrefs, run, small_dataset, workspace_root};
use mkrefs_sim::testkit::{python, validate};

/// The Python template's generator, copied into `dir/plugins`.
fn install_template(dir: &Path) -> PathBuf {
    let plugins = dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    let to = plugins.join("mkref_gain.py");
    std::fs::copy(
        workspace_root().join("templates/mkref-python/mkref_gain.py"),
        &to,
    )
    .unwrap();
    plugins
}

fn script(plugins: &Path, name: &str, body: &str) {
    std::fs::create_dir_all(plugins).unwrap();
    let path = plugins.join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn strings(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn the_python_template_is_listed_described_and_makes_a_valid_gain_file() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = install_template(dir.path());
    let (darks, flats) = small_dataset(&dir.path().join("data"), 2, 2, 128, 5, 41);
    let with_python = |cmd: &mut std::process::Command| {
        cmd.env("MKREFS_PYTHON", python())
            .arg("--plugin-dir")
            .arg(&plugins);
    };

    let mut listed = mkrefs(dir.path());
    with_python(&mut listed);
    let listed = run(listed.arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    let line = listed
        .stdout
        .lines()
        .find(|l| l.starts_with("gain "))
        .unwrap_or_else(|| panic!("gain not listed: {listed:?}"));
    assert!(
        line.contains("GAIN") && line.contains("mkref_gain.py (run with"),
        "{line}"
    );

    let mut described = mkrefs(dir.path());
    with_python(&mut described);
    let described = run(described.args(["describe", "gain"]));
    assert!(described.ok(), "{described:?}");
    assert!(
        described
            .stdout
            .contains("statistic    string  mean|median  default \"median\""),
        "{described:?}"
    );
    assert!(
        described.stdout.contains("Final combination: median"),
        "{described:?}"
    );

    // The declared range is checked before anything runs.
    let mut refused = mkrefs(dir.path());
    with_python(&mut refused);
    let refused = run(refused
        .args(["gain", "--gain.box_size", "4", "--outrootdir", "out"])
        .args(strings(&darks))
        .args(strings(&flats)));
    assert!(!refused.ok(), "{refused:?}");
    assert!(
        refused.stderr.contains("expected a number >= 8"),
        "{refused:?}"
    );
    assert!(!dir.path().join("out").exists());

    let mut made = mkrefs(dir.path());
    with_python(&mut made);
    let made = run(made
        .args(["gain", "--gain.box_size", "32", "--outrootdir", "out"])
        .args(strings(&darks))
        .args(strings(&flats)));
    assert!(made.ok(), "{made:?}");
    let output = dir
        .path()
        .join("out/run000/gain/gain.run000.cmd0_gain.fits");
    let result = validate(&output);
    assert_eq!(result["model"], "GainModel", "{result}");
    // The simulator's gain is 2 e-/DN; 2 flats of 128x128 pixels measure it to a few %.
    let gain = result["sci_median"].as_f64().unwrap();
    assert!((gain - 2.0).abs() < 0.1, "gain {gain}");
    validate(&dir.path().join("out/run000/final/gain_nrca1.fits"));

    // Up to date on a rerun; the program's file is part of what the job is made from.
    let mut again = mkrefs(dir.path());
    with_python(&mut again);
    let again = run(again
        .args(["gain", "--gain.box_size", "32", "--outrootdir", "out"])
        .args(strings(&darks))
        .args(strings(&flats)));
    assert!(again.stdout.contains("0 ok, 2 skipped"), "{again:?}");
}

#[test]
fn a_failing_program_leaves_no_file_under_the_outputs_name() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    let describe = r#"{"mkrefs_generator": 1, "reflabel": "half", "reftype": "GAIN",
        "info": {"version": "0.1", "default_imtypes": "D+"}}"#;
    // Writes half a file where it was told, then dies.
    script(
        &plugins,
        "mkref_half",
        &format!(
            "#!/bin/sh\nif [ \"$1\" = describe ]; then echo '{describe}'; exit 0; fi\n\
             out=$(sed -n 's/.*\"output\": \"\\(.*\\)\".*/\\1/p' \"$2\")\n\
             printf 'SIMPLE  =' > \"$out\"\necho 'ran out of luck' >&2\nexit 3\n"
        ),
    );
    let (darks, _) = small_dataset(&dir.path().join("data"), 1, 0, 32, 3, 42);
    let out = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["half", "--outrootdir", "out"])
        .args(strings(&darks)));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stdout.contains("failed (exit status: 3)"), "{out:?}");
    let written: Vec<PathBuf> = all_files(&dir.path().join("out"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("cmd0_gain.fits"))
        .collect();
    assert!(written.is_empty(), "{written:?}");
    let log = std::fs::read_to_string(dir.path().join("out/run000/half/half.run000.cmd0_gain.log"))
        .unwrap();
    assert!(log.contains("ran out of luck"), "{log}");
}

#[test]
fn a_program_that_cannot_describe_itself_is_reported_and_refused() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    script(&plugins, "mkref_mute", "#!/bin/sh\necho 'not json'\n");
    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(
        listed.stderr.contains("skipping generator program")
            && listed.stderr.contains("did not print a valid description"),
        "{listed:?}"
    );
    let (darks, _) = small_dataset(&dir.path().join("data"), 1, 0, 32, 3, 43);
    let out = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["mute", "--outrootdir", "out"])
        .args(strings(&darks)));
    assert!(!out.ok(), "{out:?}");
    assert!(out.stderr.contains("generator program"), "{out:?}");
}
