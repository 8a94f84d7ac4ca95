//! `mkrefs config template`: a complete configuration with the values in effect, which loads
//! back with -c to the same settings (the same plan, the same parameters) and writes the same
//! template again.

use std::path::Path;

use mkrefs_e2e::{mkrefs, run, small_dataset};

fn template(dir: &Path, args: &[&str]) -> String {
    let out = run(mkrefs(dir).args(args).args(["config", "template"]));
    assert!(out.ok(), "{out:?}");
    out.stdout
}

#[test]
fn the_default_template_round_trips_and_documents_every_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let first = template(dir.path(), &[]);
    std::fs::write(dir.path().join("t.yaml"), &first).unwrap();
    assert_eq!(template(dir.path(), &["-c", "t.yaml"]), first);
    // Every framework section and every bundled generator's section, every parameter with
    // its help line.
    for key in [
        "\ninstrument: null\n",
        "\ninputfiles:\n",
        "\noutput:\n",
        "\ncalibration:\n",
        "\ncombine:\n",
        "\nexecutor:\n",
        "\nbpm:\n",
        "\ndark:\n",
        "\nreadnoise:\n",
        "\nsuperbias:\n",
        "  # Maximum number of clipping iterations. (int, accepts >= 1; default 3)\n  \
         max_clipping_iters: 3\n",
    ] {
        assert!(first.contains(key), "{key:?} missing:\n{first}");
    }
    let describe = run(mkrefs(dir.path()).args(["describe", "readnoise"]));
    let names = describe
        .stdout
        .lines()
        .skip_while(|l| !l.starts_with("Parameters"))
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect::<Vec<_>>();
    assert!(names.len() > 10, "{describe:?}");
    let section = first.split("\nreadnoise:\n").nth(1).unwrap();
    for name in names {
        assert!(
            section.contains(&format!("\n  {name}: ")),
            "{name} missing from the readnoise section"
        );
    }
}

#[test]
fn a_template_keeps_the_values_in_effect_and_plans_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<String> = small_dataset(&dir.path().join("data"), 2, 0, 64, 4, 31)
        .0
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    std::fs::write(
        dir.path().join("mine.yaml"),
        "readnoise:\n  method: ramp\n  reffile4ssb: {superbias: null}\n",
    )
    .unwrap();
    let args = [
        "-e",
        "mine.yaml",
        "--pp",
        "readnoise",
        "clipping_sigma",
        "4",
        "--pp",
        "output",
        "outrootdir",
        "out$$dir",
        "--pp",
        "default_reflabels",
        "noise",
        "readnoise",
    ];
    let text = template(dir.path(), &args);
    assert!(text.contains("\n  method: ramp\n"), "{text}");
    assert!(text.contains("\n  clipping_sigma: 4.0\n"), "{text}");
    // A literal $ is written so that loading does not expand it.
    assert!(text.contains("\n  outrootdir: out$$dir\n"), "{text}");
    assert!(text.contains("\n  noise: readnoise\n"), "{text}");
    // A reflabel section's reffile4ssb mapping is kept.
    assert!(
        text.contains("\n  reffile4ssb: {superbias: null}\n"),
        "{text}"
    );
    std::fs::write(dir.path().join("full.yaml"), &text).unwrap();
    assert_eq!(template(dir.path(), &["-c", "full.yaml"]), text);
    // The same plan and parameters (their provenance aside), through the added alias.
    let plan = |cfg: &[&str], word: &str| {
        let out = run(mkrefs(dir.path()).args(cfg).args(["-d", word]).args(&files));
        assert!(out.ok(), "{out:?}");
        out.stdout
            .lines()
            .map(|l| l.split("  (").next().unwrap().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let direct = plan(&args, "noise");
    assert!(direct.contains("out$dir"), "{direct}");
    assert_eq!(plan(&["-c", "full.yaml"], "noise"), direct);
}

#[test]
fn a_template_of_named_generators_goes_to_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(mkrefs(dir.path()).args(["config", "template", "mask", "-o", "bpm.yaml"]));
    assert!(out.ok(), "{out:?}");
    let text = std::fs::read_to_string(dir.path().join("bpm.yaml")).unwrap();
    assert!(
        text.contains("\nbpm:\n  reftype: mask\n  imtypes: DF+\n"),
        "{text}"
    );
    assert!(text.contains("\n  max_jump_limit: 10\n"), "{text}");
    let unknown = run(mkrefs(dir.path()).args(["config", "template", "nosuch"]));
    assert!(!unknown.ok(), "{unknown:?}");
    assert!(unknown.stderr.contains("nosuch"), "{unknown:?}");
}
