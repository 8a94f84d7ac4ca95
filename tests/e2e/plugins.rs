//! Drop-in generators: the cargo-generate template, a bundled generator built as a drop-in,
//! misbehaving generators (panic, error, abort) that must fail their own job only, libraries
//! that are not plugins or were built against another plugin-api major version, a library that
//! aborts as it is loaded (tried in a child process, so it costs its own line only), broken
//! libraries named like a bundled generator, and the loader's reason for a library it refuses.

use std::path::{Path, PathBuf};
use std::process::Command;

use mkrefs_e2e::{
    assert_valid, build_cdylib, fits_outputs, install_plugin, mkrefs, run, small_dataset,
    workspace_root,
};

fn strs(paths: &[PathBuf]) -> Vec<String> {
    paths.iter().map(|p| p.display().to_string()).collect()
}

/// Builds the faulty test generator once per test process.
fn faulty_lib() -> PathBuf {
    build_cdylib(
        &workspace_root().join("tests/fixtures/faulty-plugin"),
        "mkref_faulty",
        &[],
    )
}

/// The bytes of a FITS file with the DATE and CHECKSUM cards blanked (they record when the file
/// was made).
fn without_date(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    for card in bytes.chunks_mut(80) {
        // CHECKSUM covers the header, DATE included (its comment also says when).
        if card.starts_with(b"DATE    =") || card.starts_with(b"CHECKSUM=") {
            card.fill(b' ');
        }
    }
    bytes
}

#[test]
fn the_template_renders_builds_and_runs_as_a_drop_in() {
    let dir = tempfile::tempdir().unwrap();
    let generate = Command::new("cargo")
        .arg("generate")
        .arg("--path")
        .arg(workspace_root().join("templates/mkref-plugin"))
        .args(["--name", "my-gain", "--silent", "--vcs", "none"])
        .arg("-d")
        .arg(format!("mkrefs_path={}", workspace_root().display()))
        .arg("--destination")
        .arg(dir.path())
        .output()
        .expect(
            "cargo-generate is needed for this test: `cargo install cargo-generate@0.23.14 \
             --locked` (tests/run.sh does it)",
        );
    assert!(
        generate.status.success(),
        "cargo generate failed: {}",
        String::from_utf8_lossy(&generate.stderr)
    );
    let krate = dir.path().join("my-gain");
    assert!(krate.join("README.md").is_file());
    // Build with the workspace's versions of every dependency.
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    let lib = build_cdylib(&krate, "mkref_my_gain", &[]);
    let plugins = dir.path().join("plugins");
    install_plugin(&lib, &plugins, "my_gain");

    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    assert!(listed.stdout.contains("my_gain"), "{listed:?}");
    assert!(listed.stdout.contains("GAIN"), "{listed:?}");

    let (darks, _) = small_dataset(&dir.path().join("data"), 2, 0, 64, 4, 2);
    let out = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("my_gain")
        .args(strs(&darks))
        .args(["--outrootdir", "out", "--value", "1.5"]));
    assert!(out.ok(), "{out:?}");
    let outputs = fits_outputs(&dir.path().join("out"));
    assert_eq!(outputs.len(), 2, "{outputs:?}");
    let results = assert_valid(&outputs);
    assert_eq!(results[0]["model"], "GainModel");
    assert_eq!(results[0]["sci_median"], 1.5);
    // One file per dark (imtypes D), combined by the rule the template declares (1.2).
    let finals = mkrefs_e2e::final_outputs(&dir.path().join("out"));
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_valid(&finals);
    let history = mkrefs_e2e::history_cards(&finals[0]).join(" ");
    assert!(history.contains("median per pixel"), "{history}");
}

#[test]
fn a_bundled_generator_built_as_a_drop_in_gives_the_same_file() {
    let lib = build_cdylib(
        &workspace_root(),
        "mkref_readnoise",
        &["-p", "mkref-readnoise", "--features", "dropin"],
    );
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&lib, &plugins, "readnoise");
    let (darks, _) = small_dataset(&dir.path().join("data"), 3, 0, 64, 4, 4);

    let bundled = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&darks))
        .args(["--outrootdir", "bundled"]));
    assert!(bundled.ok(), "{bundled:?}");
    let dropin = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("readnoise")
        .args(strs(&darks))
        .args(["--outrootdir", "dropin"]));
    assert!(dropin.ok(), "{dropin:?}");
    assert!(
        dropin
            .stderr
            .contains("replaces the bundled 'readnoise' generator"),
        "{dropin:?}"
    );
    let a = fits_outputs(&dir.path().join("bundled"));
    let b = fits_outputs(&dir.path().join("dropin"));
    assert_eq!((a.len(), b.len()), (1, 1));
    let job = std::fs::read_to_string(b[0].with_extension("job.json")).unwrap();
    assert!(job.contains("libmkref_readnoise"), "the drop-in ran: {job}");
    assert!(
        without_date(&a[0]) == without_date(&b[0]),
        "bundled and drop-in outputs differ beyond DATE"
    );
    // The drop-in's parameter constraints (its own exported symbol) reach the host.
    let described = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["describe", "readnoise"]));
    assert!(described.ok(), "{described:?}");
    assert!(
        described.stdout.contains("libmkref_readnoise"),
        "{described:?}"
    );
    assert!(
        described.stdout.contains("string  stack|ramp  default"),
        "{described:?}"
    );
}

#[test]
fn a_generator_that_panics_errs_or_aborts_fails_its_own_job_only() {
    let lib = faulty_lib();
    for (mode, expect) in [
        ("panic", "panics on purpose"),
        ("error", "fails on purpose"),
        ("abort", "signal 6"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let plugins = dir.path().join("plugins");
        install_plugin(&lib, &plugins, "faulty");
        let (darks, _) = small_dataset(&dir.path().join("data"), 3, 0, 64, 4, 6);
        let victim = darks[1].file_name().unwrap().to_string_lossy().into_owned();
        let out = run(mkrefs(dir.path())
            .arg("--plugin-dir")
            .arg(&plugins)
            .arg("faulty")
            .args(strs(&darks))
            .args(["--outrootdir", "out", "--mode", mode, "--fail_on", &victim]));
        assert!(!out.ok(), "{mode}: {out:?}");
        assert!(
            out.stdout.contains("2 ok, 0 skipped, 1 failed"),
            "{mode}: {out:?}"
        );
        assert!(out.all().contains(expect), "{mode}: {out:?}");
        let outputs = fits_outputs(&dir.path().join("out"));
        assert_eq!(
            outputs.len(),
            2,
            "{mode}: the other jobs keep their outputs"
        );
        assert_valid(&outputs);
        // The manifest lists what was made, says the run is not complete and which job failed.
        let text = std::fs::read_to_string(dir.path().join("out/run000/manifest.json")).unwrap();
        let m: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(m["complete"], false, "{mode}");
        // The failed job, and the final stage that needed it.
        let not_done: Vec<(&str, &str)> = m["jobs_not_done"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["job"].as_str().unwrap(), j["status"].as_str().unwrap()))
            .collect();
        assert_eq!(not_done.len(), 2, "{mode}: {text}");
        assert!(not_done.contains(&("fin1", "not run")), "{mode}: {text}");
        assert_eq!(not_done.iter().filter(|j| j.1 == "FAILED").count(), 1);
        let products = m["products"].as_array().unwrap();
        assert_eq!(products.len(), 2, "{mode}: {text}");
        assert!(products.iter().all(|p| {
            p["library"]
                .as_str()
                .is_some_and(|l| l.contains("libmkref_faulty"))
        }));
    }
}

#[test]
fn broken_libraries_are_reported_in_one_line_and_do_not_stop_others() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&faulty_lib(), &plugins, "faulty");
    std::fs::write(plugins.join("libmkref_garbage.so"), "not a library").unwrap();
    // The workspace build makes the superbias cdylib without its root module.
    let plain = build_cdylib(
        &workspace_root(),
        "mkref_superbias",
        &["-p", "mkref-superbias"],
    );
    install_plugin(&plain, &plugins, "notaplugin");

    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    assert!(listed.stdout.contains("faulty"), "{listed:?}");
    let garbage: Vec<&str> = listed
        .stderr
        .lines()
        .filter(|l| l.contains("garbage"))
        .collect();
    assert_eq!(garbage.len(), 1, "{listed:?}");
    assert!(garbage[0].contains("cannot be opened"), "{listed:?}");
    assert!(
        listed.stderr.contains("is not an mkrefs plugin"),
        "{listed:?}"
    );

    let (darks, _) = small_dataset(&dir.path().join("data"), 1, 0, 64, 4, 8);
    let chosen = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("notaplugin")
        .args(strs(&darks))
        .args(["--outrootdir", "out"]));
    assert!(!chosen.ok(), "{chosen:?}");
    assert!(chosen.stderr.contains("libmkref_notaplugin"), "{chosen:?}");
    let fine = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("faulty")
        .args(strs(&darks))
        .args(["--outrootdir", "out"]));
    assert!(fine.ok(), "{fine:?}");
}

#[test]
fn a_plugin_built_against_another_major_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A copy of the plugin API as a future 2.0.0.
    let api = dir.path().join("plugin-api-2");
    std::fs::create_dir_all(api.join("src")).unwrap();
    for entry in std::fs::read_dir(workspace_root().join("plugin-api/src")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, api.join("src").join(p.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        api.join("Cargo.toml"),
        "[package]\nname = \"mkrefs-plugin-api\"\nversion = \"2.0.0\"\nedition = \"2024\"\n\n\
         [dependencies]\nabi_stable = { version = \"0.11.3\", default-features = false }\n\
         inventory = \"0.3\"\n",
    )
    .unwrap();
    let krate = dir.path().join("future");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::write(
        krate.join("Cargo.toml"),
        format!(
            "[package]\nname = \"mkref-future\"\nversion = \"0.0.0\"\nedition = \"2024\"\n\n\
             [lib]\nname = \"mkref_future\"\ncrate-type = [\"cdylib\"]\n\n\
             [features]\ndefault = [\"dropin\"]\ndropin = []\n\n\
             [dependencies]\nmkrefs-plugin-api = {{ path = \"{}\" }}\n\
             abi_stable = {{ version = \"0.11.3\", default-features = false }}\n\n[workspace]\n",
            api.display()
        ),
    )
    .unwrap();
    std::fs::write(
        krate.join("src/lib.rs"),
        r#"use mkrefs_plugin_api::*;
pub struct Future;
impl ReferenceGenerator for Future {
    fn reflabel(&self) -> String { "future".into() }
    fn reftype(&self) -> String { "GAIN".into() }
    fn extra_optional_arguments(&self) -> Vec<ParamSpec> { Vec::new() }
    fn info(&self) -> GeneratorInfo { GeneratorInfo::default() }
    fn call_algorithm(&self, _job: &Job<'_>) -> Result<JobReport, GeneratorError> {
        Err(GeneratorError::internal("never loaded"))
    }
}
export_generator!(Future);
"#,
    )
    .unwrap();
    std::fs::copy(
        workspace_root().join("Cargo.lock"),
        krate.join("Cargo.lock"),
    )
    .unwrap();
    let lib = build_cdylib(&krate, "mkref_future", &[]);
    let plugins = dir.path().join("plugins");
    install_plugin(&lib, &plugins, "future");
    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    let line: Vec<&str> = listed
        .stderr
        .lines()
        .filter(|l| l.contains("future"))
        .collect();
    assert_eq!(line.len(), 1, "{listed:?}");
    assert!(line[0].contains("2.0.0"), "{listed:?}");
    assert!(line[0].contains("1.2.0"), "{listed:?}");
}

#[test]
fn a_plugin_built_against_plugin_api_1_0_loads_and_runs() {
    // The fixture's plugin-api is a frozen copy of 1.0.0: its generator vtable ends at
    // call_algorithm, so this host (1.2) must take "no constraints" and no combination rule
    // for the missing symbols.
    let lib = build_cdylib(
        &workspace_root().join("tests/fixtures/old-plugin"),
        "mkref_old",
        &[],
    );
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&lib, &plugins, "old");
    let described = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .args(["describe", "old"]));
    assert!(described.ok(), "{described:?}");
    assert!(
        described.stdout.contains("mode  string  default \"copy\""),
        "{described:?}"
    );
    let (darks, _) = small_dataset(&dir.path().join("data"), 1, 0, 64, 4, 9);
    let out = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("old")
        .args(strs(&darks))
        .args(["--outrootdir", "out", "--mode", "anything"]));
    assert!(out.ok(), "{out:?}");
    let outputs = fits_outputs(&dir.path().join("out"));
    assert_eq!(outputs.len(), 1, "{out:?}");
    let job = std::fs::read_to_string(outputs[0].with_extension("job.json")).unwrap();
    assert!(
        job.contains("anything"),
        "the parameter reached the job: {job}"
    );
}

/// Builds the library whose constructor aborts as soon as it is loaded.
fn aborting_lib() -> PathBuf {
    build_cdylib(
        &workspace_root().join("tests/fixtures/aborting-plugin"),
        "mkref_aborting",
        &[],
    )
}

#[test]
fn a_library_that_aborts_when_loaded_costs_only_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    install_plugin(&aborting_lib(), &plugins, "aborting");
    install_plugin(&faulty_lib(), &plugins, "faulty");
    // The per-user directory too: commands that need no generator never look at it.
    install_plugin(
        &aborting_lib(),
        &dir.path().join("xdg-data/mkrefs/plugins"),
        "aborting2",
    );

    let version = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("--version"));
    assert!(version.ok(), "{version:?}");
    assert!(version.stdout.starts_with("mkrefs "), "{version:?}");
    let simulated = run(mkrefs(dir.path())
        .env("MKREFS_PLUGIN_PATH", &plugins)
        .args(["simulate", "--out", "sim", "--darks", "1", "--size", "64"]));
    assert!(simulated.ok(), "{simulated:?}");

    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    assert!(listed.stdout.contains("faulty"), "{listed:?}");
    for name in ["libmkref_aborting.so", "libmkref_aborting2.so"] {
        let lines: Vec<&str> = listed.stderr.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(lines.len(), 1, "{name}: {listed:?}");
        assert!(
            lines[0].contains(&format!("{name}: aborted the process loading it (SIGABRT")),
            "{listed:?}"
        );
        assert!(lines[0].contains("WARN"), "{listed:?}");
    }

    let (darks, _) = small_dataset(&dir.path().join("data"), 1, 0, 64, 4, 10);
    let fine = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("faulty")
        .args(strs(&darks))
        .args(["--outrootdir", "out"]));
    assert!(fine.ok(), "{fine:?}");
    let chosen = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("aborting")
        .args(strs(&darks))
        .args(["--outrootdir", "out2"]));
    assert_eq!(chosen.status.code(), Some(1), "{chosen:?}");
    assert!(
        chosen
            .stderr
            .contains("generator 'aborting': plugin library"),
        "{chosen:?}"
    );
    assert!(chosen.stderr.contains("SIGABRT"), "{chosen:?}");
}

#[test]
fn a_broken_library_named_like_a_bundled_generator_is_reported_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (darks, _) = small_dataset(&dir.path().join("data"), 2, 0, 64, 4, 12);
    // On the per-user path: the bundled readnoise runs, and the log says so.
    let user = dir.path().join("xdg-data/mkrefs/plugins");
    std::fs::create_dir_all(&user).unwrap();
    std::fs::write(user.join("libmkref_readnoise.so"), "not a library").unwrap();
    let out = run(mkrefs(dir.path())
        .arg("readnoise")
        .args(strs(&darks))
        .args(["--outrootdir", "user"]));
    assert!(out.ok(), "{out:?}");
    let line: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("libmkref_readnoise.so"))
        .collect();
    assert_eq!(line.len(), 1, "{out:?}");
    assert!(line[0].contains("WARN"), "{out:?}");
    assert!(
        line[0].contains("failed to load (cannot be opened"),
        "{out:?}"
    );
    assert!(
        line[0].contains("the bundled readnoise runs instead"),
        "{out:?}"
    );
    assert_eq!(fits_outputs(&dir.path().join("user")).len(), 1);
    std::fs::remove_file(user.join("libmkref_readnoise.so")).unwrap();

    // Named with --plugin-dir: the user asked for the replacement, so runs of it fail.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("libmkref_readnoise.so"), "not a library").unwrap();
    let with_dir = |args: &[String]| {
        run(mkrefs(dir.path())
            .arg("--plugin-dir")
            .arg(&plugins)
            .args(args))
    };
    let words = |w: &[&str]| -> Vec<String> { w.iter().map(|s| s.to_string()).collect() };
    let mut args = words(&["readnoise"]);
    args.extend(strs(&darks));
    args.extend(words(&[
        "--outrootdir",
        "explicit",
        "--readnoise.method",
        "stack",
    ]));
    let refused = with_dir(&args);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(refused.stderr.contains("ERROR"), "{refused:?}");
    assert!(
        refused
            .stderr
            .contains("generator 'readnoise': plugin library"),
        "{refused:?}"
    );
    assert!(refused.stderr.contains("--plugin-dir"), "{refused:?}");
    assert!(!dir.path().join("explicit").exists(), "{refused:?}");
    let listed = with_dir(&words(&["plugins"]));
    assert_eq!(listed.status.code(), Some(1), "{listed:?}");
    assert!(
        listed.stdout.contains("not used: its replacement failed"),
        "{listed:?}"
    );
    // Other generators are not affected.
    let mut args = words(&["superbias"]);
    args.extend(strs(&darks));
    args.extend(words(&["--outrootdir", "other"]));
    let other = with_dir(&args);
    assert!(other.ok(), "{other:?}");
}

#[test]
fn a_library_that_cannot_be_opened_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::write(plugins.join("libmkref_garbage.so"), "not a library").unwrap();
    std::os::unix::fs::symlink(
        dir.path().join("nowhere.so"),
        plugins.join("libmkref_gone.so"),
    )
    .unwrap();
    let listed = run(mkrefs(dir.path())
        .arg("--plugin-dir")
        .arg(&plugins)
        .arg("plugins"));
    assert!(listed.ok(), "{listed:?}");
    let line = |name: &str| -> String {
        let found: Vec<&str> = listed.stderr.lines().filter(|l| l.contains(name)).collect();
        assert_eq!(found.len(), 1, "{name}: {listed:?}");
        found[0].to_string()
    };
    let garbage = line("libmkref_garbage.so");
    assert!(!garbage.contains("Could not open library at"), "{garbage}");
    assert!(
        garbage.contains("cannot be opened as a shared library: ")
            && (garbage.contains("invalid ELF header") || garbage.contains("file too short")),
        "{garbage}"
    );
    let gone = line("libmkref_gone.so");
    assert!(gone.contains("No such file or directory"), "{gone}");
}
