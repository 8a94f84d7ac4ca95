//! Tests of the whole configuration path: files, overrides, environment, settings, reflabels
//! and parameters.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::error::ConfigErrorKind;
use super::load::{EMBEDDED_CONFIG, MainConfig, choose_main_config};
use super::params::ResolvedParam;
use super::settings::{ExecutorKind, MaxDeltaMjd};
use super::tree::{Node, NodeValue};
use super::value::{ParamKind, ParamScalar, ParamSpec, ParamValue};
use super::*;

const UPSTREAM_CFG: &str = include_str!("../../../../configs/examples/upstream_mkrefs.cfg");
const MIRI_CFG: &str = include_str!("../../../../configs/examples/miri.yaml");
const NIRISS_CFG: &str = include_str!("../../../../configs/examples/niriss.yaml");

fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name: &str| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }
}

/// A small main config with two reflabel sections that list a parameter.
const MAIN: &str = "\
instrument: NIRCam
reflabels: [readnoise, superbias, dark]
test1: 4
readnoise:
  reftype: readnoise
  imtypes: D+
  clipping_sigma: 1.0
superbias:
  reftype: superbias
  clipping_sigma: 1.5
  reffile4ssb:
    bpmreffile: /a.fits
output:
  outrootdir: /out
";

fn opts_with_main(dir: &Dir, text: &str) -> LoadOptions {
    LoadOptions {
        cfgfile: Some(dir.write("main.yaml", text)),
        ..LoadOptions::default()
    }
}

fn spec(name: &str, kind: ParamKind, default: ParamValue) -> ParamSpec {
    ParamSpec {
        name: name.to_string(),
        kind,
        default,
        help: String::new(),
        constraints: Default::default(),
    }
}

fn readnoise_specs() -> Vec<ParamSpec> {
    vec![
        spec("clipping_sigma", ParamKind::Float, ParamValue::Float(3.0)),
        spec("max_clipping_iters", ParamKind::Int, ParamValue::Int(3)),
        spec("method", ParamKind::String, ParamValue::str("stack")),
        spec("single_value", ParamKind::Bool, ParamValue::Bool(false)),
        spec("author", ParamKind::String, ParamValue::Null),
        spec("readpatt", ParamKind::List, ParamValue::Null),
    ]
}

fn superbias_specs() -> Vec<ParamSpec> {
    vec![
        spec("clipping_sigma", ParamKind::Float, ParamValue::Float(3.0)),
        spec(
            "bad_sigma_threshold",
            ParamKind::Float,
            ParamValue::Float(5.0),
        ),
        spec("author", ParamKind::String, ParamValue::Null),
    ]
}

const KNOWN: &[(&str, &str)] = &[
    ("readnoise", "READNOISE"),
    ("superbias", "SUPERBIAS"),
    ("dark", "DARK"),
    ("bpm", "MASK"),
];

fn value_of<'a>(resolved: &'a [ResolvedParam], name: &str) -> &'a ResolvedParam {
    resolved
        .iter()
        .find(|r| r.param.name.as_str() == name)
        .unwrap()
}

/// Compares values only, ignoring where they came from.
fn same_values(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (NodeValue::List(x), NodeValue::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_values(p, q))
        }
        (NodeValue::Map(x), NodeValue::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| same_values(v, w)))
        }
        (x, y) => x == y,
    }
}

// ---- the shipped configs ----

#[test]
fn embedded_default_loads_and_is_documented_default() {
    let s = load(&LoadOptions::default(), &no_env).unwrap();
    // Taken from the inputs' INSTRUME, so any profiled instrument runs with the default.
    assert_eq!(s.instrument, None);
    assert_eq!(s.reflabels, ["readnoise", "superbias", "dark", "bpm"]);
    assert_eq!(s.default_reflabels["mask"], "bpm");
    assert_eq!(s.default_reflabels["bpm"], "bpm");
    assert_eq!(s.output.outrootdir, "mkrefs_out");
    assert_eq!(s.output.run_id, RunIdSetting::Auto);
    assert_eq!(s.output.run_id_ndigits, 3);
    assert!(s.output.skip_runid_ssbdir);
    assert!(s.output.pipeline_prod_search_dir.is_empty());
    assert_eq!(s.inputfiles.basenamepattern, None);
    assert_eq!(s.inputfiles.mjdobs_fitskey, None);
    assert_eq!(s.inputfiles.dateobs_fitskey, "DATE-END");
    assert!(
        s.inputfiles
            .dark_exp_types
            .contains(&"MIR_DARKMRS".to_string())
    );
    assert!(s.inputfiles.flat_exp_types.contains(&"NRC_LED".to_string()));
    assert_eq!(
        s.max_delta_mjd,
        MaxDeltaMjd {
            dd: Some(2.0),
            ff: Some(2.0),
            ddff: Some(10.0)
        }
    );
    let rn = s.section("readnoise").unwrap();
    assert_eq!(rn.imtypes.as_ref().unwrap().value, "D+");
    // Explicit null: raw inputs, which is not the same as "generator default".
    assert_eq!(rn.ssbsteps.as_ref().unwrap().value, "");
    assert!(rn.params.is_empty());
    let dark = s.section("dark").unwrap();
    assert_eq!(dark.ssbsteps, None);
    assert_eq!(
        s.section("bpm").unwrap().reftype.as_ref().unwrap().value,
        "mask"
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    // Provenance points into the embedded file.
    let src = s.source_of("output.outrootdir").unwrap();
    let line = src.line().unwrap();
    assert!(matches!(src, Provenance::Embedded { .. }));
    assert!(
        EMBEDDED_CONFIG
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("outrootdir: mkrefs_out"),
        "line {line}"
    );
}

#[test]
fn embedded_framework_keys_equal_builtin_defaults() {
    let embedded =
        tree::parse_document(EMBEDDED_CONFIG, &Provenance::Embedded { line: None }).unwrap();
    let defaults = settings::builtin_defaults();
    for section in ["inputfiles", "DD", "FF", "DDFF", "output"] {
        assert!(
            same_values(
                embedded.get(section).unwrap(),
                defaults.get(section).unwrap()
            ),
            "section {section} of configs/mkrefs.yaml differs from the built-in defaults"
        );
    }
}

#[test]
fn upstream_cfg_loads_as_main_config() {
    let dir = Dir::new();
    let opts = opts_with_main(&dir, UPSTREAM_CFG);
    let s = load(&opts, &env_of(&[("JWST_MKREFS_OUTDIR", "/data/out")])).unwrap();
    assert_eq!(s.reflabels, ["bad_pixel_mask", "dark"]);
    assert_eq!(s.output.outrootdir, "/data/out");
    assert_eq!(s.output.outsubdir.as_deref(), Some("test1"));
    assert!(s.output.skip_runid_ssbdir);
    assert!(s.output.pipeline_prod_search_dir.is_empty());
    assert_eq!(s.output.ssbdir, None);
    assert_eq!(
        s.inputfiles.basenamepattern.as_deref(),
        Some(r"(.*)\_uncal\.fits$")
    );
    assert_eq!(s.inputfiles.optionalfitskeys, ["FILTER", "PUPIL"]);
    // Keys the upstream file lacks come from the built-in defaults.
    assert!(!s.inputfiles.dark_exp_types.is_empty());
    assert_eq!(
        s.source_of("inputfiles.dark_exp_types"),
        Some(&Provenance::BuiltinDefault)
    );
    for name in [
        "bad_pixel_mask",
        "dark",
        "example_bpm",
        "rdnoise_nircam",
        "gain_armin",
        "gain_bryan",
    ] {
        assert!(s.sections.contains_key(name), "{name}");
    }
    let bpm = s.section("bad_pixel_mask").unwrap();
    assert_eq!(bpm.ssb_save_steps.as_ref().unwrap().value, "jump, fitopt");
    assert!(bpm.params["max_dead_norm_signal"].is_null());
    assert_eq!(bpm.params["flux_check"].value, NodeValue::Int(45000));
    // `None` is null, so "no intermediate products".
    assert_eq!(
        s.section("dark")
            .unwrap()
            .ssb_save_steps
            .as_ref()
            .unwrap()
            .value,
        ""
    );
    // reffile4ssb is ignored, not a parameter.
    assert!(
        !s.section("gain_armin")
            .unwrap()
            .params
            .contains_key("reffile4ssb")
    );
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(s.default_reflabels["rdnoise"], "rdnoise_nircam");
}

#[test]
fn upstream_cfg_without_its_env_var_names_the_key() {
    let dir = Dir::new();
    let opts = opts_with_main(&dir, UPSTREAM_CFG);
    let err = load(&opts, &no_env).unwrap_err();
    assert!(matches!(err.kind(), ConfigErrorKind::UnsetEnvVar { .. }));
    let msg = err.to_string();
    assert!(msg.contains("output.outrootdir"), "{msg}");
    assert!(msg.contains("$JWST_MKREFS_OUTDIR"), "{msg}");
    assert!(msg.contains("main.yaml:"), "{msg}");
}

#[test]
fn instrument_examples_load() {
    let dir = Dir::new();
    let s = load(&opts_with_main(&dir, MIRI_CFG), &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("MIRI"));
    assert_eq!(s.inputfiles.dark_pattern, None);
    assert!(
        s.inputfiles
            .flat_exp_types
            .iter()
            .all(|t| t.starts_with("MIR_"))
    );
    assert!(!s.sections.contains_key("superbias"));
    let s = load(&opts_with_main(&dir, NIRISS_CFG), &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("NIRISS"));
    assert_eq!(s.inputfiles.flat_exp_types, ["NIS_LAMP"]);
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

// ---- choosing the main config ----

#[test]
fn main_config_precedence() {
    let both = env_of(&[
        ("MKREFS_CONFIG", "/a.yaml"),
        ("JWST_MKREFS_CONFIGFILE", "/b.cfg"),
    ]);
    assert_eq!(
        choose_main_config(Some(Path::new("/c.yaml")), &both),
        MainConfig::File {
            path: "/c.yaml".into(),
            via: String::new()
        }
    );
    assert!(matches!(
        choose_main_config(None, &both),
        MainConfig::File { path, .. } if path == Path::new("/a.yaml")
    ));
    let upstream_only = env_of(&[("MKREFS_CONFIG", " "), ("JWST_MKREFS_CONFIGFILE", "/b.cfg")]);
    assert!(matches!(
        choose_main_config(None, &upstream_only),
        MainConfig::File { path, via } if path == Path::new("/b.cfg") && via.contains("JWST_MKREFS_CONFIGFILE")
    ));
    let empty = env_of(&[("JWST_MKREFS_CONFIGFILE", "")]);
    assert_eq!(choose_main_config(None, &empty), MainConfig::Embedded);
}

#[test]
fn missing_main_config_says_which_variable_named_it() {
    let err = load(
        &LoadOptions::default(),
        &env_of(&[("MKREFS_CONFIG", "/nonexistent/mk.yaml")]),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/mk.yaml"), "{msg}");
    assert!(msg.contains("$MKREFS_CONFIG"), "{msg}");
}

// ---- precedence of overrides ----

#[test]
fn precedence_main_extra_p_pall_pp() {
    let dir = Dir::new();
    let extra = dir.write(
        "extra.yaml",
        "instrument: NIRISS\nreadnoise:\n  clipping_sigma: 2.0\n",
    );
    let mut opts = opts_with_main(&dir, MAIN);

    // main only
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("NIRCam"));
    assert_eq!(
        s.section("readnoise").unwrap().params["clipping_sigma"].value,
        NodeValue::Float(1.0)
    );

    // main < -e
    opts.extra_cfgfiles.push(extra.clone());
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("NIRISS"));
    let cs = &s.section("readnoise").unwrap().params["clipping_sigma"];
    assert_eq!(cs.value, NodeValue::Float(2.0));
    assert_eq!(cs.source.path(), Some(extra.as_path()));
    assert_eq!(cs.source.line(), Some(3));
    // Untouched keys keep their origin.
    assert_eq!(
        s.section("readnoise")
            .unwrap()
            .imtypes
            .as_ref()
            .unwrap()
            .source
            .line(),
        Some(6)
    );

    // -e < -p
    opts.params.push(("instrument".into(), "MIRI".into()));
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("MIRI"));
    assert_eq!(
        s.source_of("instrument"),
        Some(&Provenance::CommandLine("-p instrument".into()))
    );

    // -p < --pall, and -e < --pall in sections
    opts.pall.push(("instrument".into(), "FGS".into()));
    opts.pall.push(("clipping_sigma".into(), "4".into()));
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("FGS"));
    assert_eq!(
        s.section("readnoise").unwrap().params["clipping_sigma"].value,
        NodeValue::Int(4)
    );

    // --pall < --pp
    opts.pp
        .push(("readnoise".into(), "clipping_sigma".into(), "5.5".into()));
    let s = load(&opts, &no_env).unwrap();
    let cs = &s.section("readnoise").unwrap().params["clipping_sigma"];
    assert_eq!(cs.value, NodeValue::Float(5.5));
    assert_eq!(
        cs.source,
        Provenance::CommandLine("--pp readnoise clipping_sigma".into())
    );
    assert_eq!(
        s.section("superbias").unwrap().params["clipping_sigma"].value,
        NodeValue::Int(4)
    );
}

#[test]
fn extra_files_apply_in_order() {
    let dir = Dir::new();
    let e1 = dir.write("e1.yaml", "output:\n  outsubdir: first\n  ssbdir: /ssb1\n");
    let e2 = dir.write("e2.yaml", "output:\n  outsubdir: second\n");
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles = vec![e1, e2];
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.output.outsubdir.as_deref(), Some("second"));
    // Keys the later file does not mention are kept (merged key by key).
    assert_eq!(s.output.ssbdir.as_deref(), Some("/ssb1"));
    assert_eq!(s.output.outrootdir, "/out");
}

#[test]
fn pall_sets_every_section_and_reaches_unlisted_generator_params() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pall.push(("clipping_sigma".into(), "4.5".into()));
    opts.pall.push(("author".into(), "Jane Doe".into()));
    opts.pall.push(("test1".into(), "9".into()));
    let s = load(&opts, &no_env).unwrap();
    for name in ["readnoise", "superbias"] {
        let node = &s.section(name).unwrap().params["clipping_sigma"];
        assert_eq!(node.value, NodeValue::Float(4.5), "{name}");
        assert_eq!(
            node.source,
            Provenance::CommandLine("--pall clipping_sigma".into())
        );
    }
    assert_eq!(s.tree.get("test1").unwrap().value, NodeValue::Int(9));
    // 'author' is in no section: offered to every reflabel section, listed or synthesized.
    for name in ["readnoise", "superbias", "dark"] {
        assert!(
            s.section(name).unwrap().pall.contains_key("author"),
            "{name}"
        );
    }
    let rn = resolve_params("readnoise", &readnoise_specs(), s.section("readnoise"), &[]).unwrap();
    assert_eq!(
        value_of(&rn, "author").param.value,
        ParamValue::str("Jane Doe")
    );
    // A generator that does not declare it simply does not get it.
    let dark_specs = vec![spec(
        "sigma_threshold",
        ParamKind::Float,
        ParamValue::Float(3.0),
    )];
    resolve_params("dark", &dark_specs, s.section("dark"), &[]).unwrap();

    let rs = readnoise_specs();
    let ds = dark_specs.clone();
    let selected: Vec<(&str, &[ParamSpec])> = vec![("readnoise", &rs), ("dark", &ds)];
    check_pall(&s, &selected).unwrap();
}

#[test]
fn pall_errors_when_it_reaches_nothing() {
    let dir = Dir::new();
    // No reflabel sections at all: a key found nowhere is an error at once.
    let mut opts = opts_with_main(&dir, "instrument: NIRCam\n");
    opts.pall.push(("outrotdir".into(), "/x".into()));
    let err = load(&opts, &no_env).unwrap_err();
    assert!(
        matches!(err.kind(), ConfigErrorKind::PallNotFound { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("did you mean 'outrootdir'"),
        "{err}"
    );

    // With reflabel sections, a key that no selected generator declares is reported by
    // check_pall, with a suggestion.
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pall.push(("clipping_sigmaa".into(), "3".into()));
    let s = load(&opts, &no_env).unwrap();
    let rs = readnoise_specs();
    let selected: Vec<(&str, &[ParamSpec])> = vec![("readnoise", &rs)];
    let err = check_pall(&s, &selected).unwrap_err();
    assert!(matches!(err.kind(), ConfigErrorKind::PallUnused { .. }));
    assert!(
        err.to_string().contains("did you mean 'clipping_sigma'"),
        "{err}"
    );
}

// ---- extra-file and override rules ----

#[test]
fn extra_file_unknown_top_level_key_names_file_and_suggests() {
    let dir = Dir::new();
    let extra = dir.write("extra.yaml", "instrumnet: MIRI\n");
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles.push(extra);
    let err = load(&opts, &no_env).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.kind(), ConfigErrorKind::UnknownKey { .. }));
    assert!(msg.contains("extra.yaml:1"), "{msg}");
    assert!(msg.contains("top-level key 'instrumnet'"), "{msg}");
    assert!(msg.contains("did you mean 'instrument'"), "{msg}");
}

#[test]
fn extra_file_unknown_key_in_framework_section() {
    let dir = Dir::new();
    let extra = dir.write("extra.yaml", "output:\n  outrotdir: /x\n");
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles.push(extra);
    let msg = load(&opts, &no_env).unwrap_err().to_string();
    assert!(msg.contains("extra.yaml:2"), "{msg}");
    assert!(msg.contains("key 'outrotdir' in section 'output'"), "{msg}");
    assert!(msg.contains("did you mean 'outrootdir'"), "{msg}");
}

#[test]
fn extra_file_shape_clash_is_an_error() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles
        .push(dir.write("e1.yaml", "output: /somewhere\n"));
    let err = load(&opts, &no_env).unwrap_err();
    assert!(
        matches!(err.kind(), ConfigErrorKind::ShapeClash { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("main.yaml:"), "{err}");

    opts.extra_cfgfiles = vec![dir.write("e2.yaml", "instrument:\n  a: 1\n")];
    assert!(matches!(
        load(&opts, &no_env).unwrap_err().kind(),
        ConfigErrorKind::ShapeClash { .. }
    ));

    opts.extra_cfgfiles = vec![dir.write("e3.yaml", "superbias:\n  reffile4ssb: 5\n")];
    let err = load(&opts, &no_env).unwrap_err();
    assert!(
        err.to_string()
            .contains("key 'reffile4ssb' in section 'superbias'"),
        "{err}"
    );
}

#[test]
fn extra_file_replaces_nested_mappings_whole_and_may_add_generator_params() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles.push(dir.write(
        "extra.yaml",
        "superbias:\n  reffile4ssb:\n    gainreffile: /g.fits\n  bad_sigma_threshold: 4\n",
    ));
    load(&opts, &no_env).unwrap();
    let mut tree = load::read_main(&MainConfig::File {
        path: opts.cfgfile.clone().unwrap(),
        via: String::new(),
    })
    .unwrap();
    load::merge_extra_files(&mut tree, &opts.extra_cfgfiles).unwrap();
    let r4 = tree.get_path("superbias.reffile4ssb").unwrap();
    // Replaced whole, with upstream's key read as the reftype it names.
    assert_eq!(r4.keys().collect::<Vec<_>>(), ["gain"]);
    assert_eq!(
        tree.get_path("superbias.bad_sigma_threshold")
            .unwrap()
            .value,
        NodeValue::Int(4)
    );
    // The main config's other keys in that section are kept.
    assert!(tree.get_path("superbias.clipping_sigma").is_some());
}

#[test]
fn extra_file_can_set_framework_keys_the_main_config_lacks() {
    // An upstream-style main config has no dark_exp_types; the built-in default makes the key
    // exist, so an extra file may change it.
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.extra_cfgfiles
        .push(dir.write("extra.yaml", "inputfiles:\n  dark_exp_types: [nrc_dark]\n"));
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.inputfiles.dark_exp_types, ["NRC_DARK"]);
}

#[test]
fn p_rejects_sections_and_points_to_pp() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.params.push(("output".into(), "/x".into()));
    assert!(matches!(
        load(&opts, &no_env).unwrap_err().kind(),
        ConfigErrorKind::IsSection { .. }
    ));
    let mut opts = opts_with_main(&dir, MAIN);
    opts.params.push(("outrootdir".into(), "/x".into()));
    let msg = load(&opts, &no_env).unwrap_err().to_string();
    assert!(msg.contains("--pp output outrootdir /x"), "{msg}");
}

#[test]
fn pp_rules() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pp
        .push(("outptu".into(), "outrootdir".into(), "/x".into()));
    let msg = load(&opts, &no_env).unwrap_err().to_string();
    assert!(msg.contains("did you mean 'output'"), "{msg}");

    let mut opts = opts_with_main(&dir, MAIN);
    opts.pp
        .push(("output".into(), "outsubdri".into(), "x".into()));
    let msg = load(&opts, &no_env).unwrap_err().to_string();
    assert!(msg.contains("--pp output outsubdri"), "{msg}");
    assert!(msg.contains("did you mean 'outsubdir'"), "{msg}");

    // Reflabel sections take new keys (checked against the generator later).
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pp
        .push(("superbias".into(), "author".into(), "Me".into()));
    opts.pp.push(("output".into(), "runID".into(), "12".into()));
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(
        s.section("superbias").unwrap().params["author"].value,
        NodeValue::Str("Me".into())
    );
    assert_eq!(s.output.run_id, RunIdSetting::Number(12));
}

// ---- None/null and environment ----

#[test]
fn none_means_null_in_files_and_on_the_command_line() {
    let dir = Dir::new();
    let mut opts = opts_with_main(
        &dir,
        "instrument: NIRCam\noutput:\n  outsubdir: None\n  ssbdir: none\n  runID: ~\n",
    );
    opts.params.push(("instrument".into(), "None".into()));
    let s = load(&opts, &no_env).unwrap();
    assert_eq!(s.instrument, None);
    assert_eq!(s.output.outsubdir, None);
    assert_eq!(s.output.ssbdir, None);
    assert_eq!(s.output.run_id, RunIdSetting::None);
}

#[test]
fn env_expansion_everywhere_through_load() {
    let dir = Dir::new();
    let text = "\
reflabels: [readnoise]
output:
  outrootdir: ${ROOT}/out
  outsubdir: cost$$
  pipeline_prod_search_dir: [$ROOT/a, '${SUB}/b']
readnoise:
  readpatt: [$PATT, RAPID]
  reffile4ssb:
    x: $ROOT
";
    let opts = opts_with_main(&dir, text);
    let env = env_of(&[("ROOT", "/data"), ("SUB", "/sub"), ("PATT", "SLOW")]);
    let s = load(&opts, &env).unwrap();
    assert_eq!(s.output.outrootdir, "/data/out");
    assert_eq!(s.output.outsubdir.as_deref(), Some("cost$"));
    assert_eq!(s.output.pipeline_prod_search_dir, ["/data/a", "/sub/b"]);
    match &s.section("readnoise").unwrap().params["readpatt"].value {
        NodeValue::List(items) => assert_eq!(items[0].value, NodeValue::Str("SLOW".into())),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        s.tree.get_path("readnoise.reffile4ssb.x").unwrap().value,
        NodeValue::Str("/data".into())
    );

    // Values given on the command line are expanded too, and an unset one names the option.
    let mut opts = opts_with_main(&dir, text);
    opts.pp
        .push(("output".into(), "ssbdir".into(), "$NOPE/ssb".into()));
    let msg = load(&opts, &env).unwrap_err().to_string();
    assert!(msg.contains("--pp output ssbdir"), "{msg}");
    assert!(msg.contains("output.ssbdir"), "{msg}");
    assert!(msg.contains("$NOPE"), "{msg}");
}

// ---- typed settings ----

#[test]
fn settings_values_are_checked_with_their_origin() {
    let dir = Dir::new();
    let cases: &[(&str, &str)] = &[
        ("instrument: NIRCm\n", "did you mean 'NIRCam'"),
        (
            "inputfiles:\n  dark_pattern: '(DARK'\n",
            "key 'dark_pattern' in section 'inputfiles' is \"(DARK\" (regex parse error: (DARK ^ error: unclosed group)",
        ),
        (
            "output:\n  runID: latest\n",
            "key 'runID' in section 'output'",
        ),
        ("output:\n  runIDNdigits: 0\n", "runIDNdigits"),
        (
            "DD:\n  max_Delta_MJD: -1\n",
            "key 'max_Delta_MJD' in section 'DD'",
        ),
        (
            "output:\n  skip_runID_ssbdir: perhaps\n",
            "skip_runID_ssbdir",
        ),
        (
            "inputfiles:\n  dark_patern: x\n",
            "did you mean 'dark_pattern'",
        ),
        ("output:\n  outrootdir: null\n", "outrootdir"),
        ("reflabels: ['a,b']\n", "reflabels[0]"),
        ("reflabels: [dark]\ndark: 5\n", "reflabel 'dark'"),
        ("output: 3\n", "section 'output'"),
    ];
    for (text, needle) in cases {
        let err = load(&opts_with_main(&dir, text), &no_env).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "{text:?}: {msg}");
        assert!(msg.contains("main.yaml"), "{text:?}: {msg}");
    }
}

#[test]
fn settings_accept_friendly_forms() {
    let dir = Dir::new();
    let text = "\
instrument: miri
reflabels: readnoise, dark
inputfiles:
  requiredfitskeys: INSTRUME
  optionalfitskeys: FILTER, PUPIL
  dark_pattern: null
output:
  runID: '007'
  runIDNdigits: 4
  skip_runID_ssbdir: no
  pipeline_prod_search_dir: /a, /b
DD:
  max_Delta_MJD: null
FF:
  max_Delta_MJD: 3
";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    assert_eq!(s.instrument.as_deref(), Some("miri"));
    assert_eq!(s.reflabels, ["readnoise", "dark"]);
    assert_eq!(s.inputfiles.requiredfitskeys, ["INSTRUME"]);
    assert_eq!(s.inputfiles.optionalfitskeys, ["FILTER", "PUPIL"]);
    assert_eq!(s.inputfiles.dark_pattern, None);
    assert_eq!(s.output.run_id, RunIdSetting::Number(7));
    assert_eq!(s.output.run_id_ndigits, 4);
    assert!(!s.output.skip_runid_ssbdir);
    assert_eq!(s.output.pipeline_prod_search_dir, ["/a", "/b"]);
    assert_eq!(s.max_delta_mjd.dd, None);
    assert_eq!(s.max_delta_mjd.ff, Some(3.0));
    // Sections synthesized for listed reflabels without one.
    assert_eq!(
        s.section("dark").unwrap().source,
        Provenance::BuiltinDefault
    );
}

#[test]
fn empty_framework_sections_take_the_defaults() {
    let dir = Dir::new();
    let text = "default_reflabels:\noutput:\nDD:\n";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    assert!(s.default_reflabels.is_empty());
    assert_eq!(s.output.outrootdir, "mkrefs_out");
    assert_eq!(s.max_delta_mjd.dd, Some(2.0));
}

#[test]
fn suspicious_top_level_keys_are_warnings() {
    let dir = Dir::new();
    let text = "instrumnt: NIRCam\ninputfile:\n  dark_pattern: x\n";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    assert_eq!(s.warnings.len(), 2, "{:?}", s.warnings);
    assert!(s.warnings[0].contains("did you mean 'instrument'"));
    assert!(s.warnings[1].contains("did you mean 'inputfiles'"));
}

// ---- reflabel selection ----

fn default_settings() -> Settings {
    load(&LoadOptions::default(), &no_env).unwrap()
}

fn toks(t: &[&str]) -> Vec<String> {
    t.iter().map(|s| s.to_string()).collect()
}

#[test]
fn reftypes_resolve_through_default_reflabels() {
    let s = default_settings();
    assert_eq!(
        resolve_reflabels(&toks(&["bpm"]), &s, KNOWN).unwrap(),
        ["bpm"]
    );
    assert_eq!(
        resolve_reflabels(&toks(&["MASK"]), &s, KNOWN).unwrap(),
        ["bpm"]
    );
    assert_eq!(
        resolve_reflabels(&toks(&["superbias"]), &s, KNOWN).unwrap(),
        ["superbias"]
    );
}

#[test]
fn comma_lists_and_duplicates() {
    let s = default_settings();
    assert_eq!(
        resolve_reflabels(
            &toks(&["superbias,readnoise", "readnoise", "mask,bpm"]),
            &s,
            KNOWN
        )
        .unwrap(),
        ["superbias", "readnoise", "bpm"]
    );
    assert_eq!(
        resolve_reflabels(&toks(&[" dark , ", "dark"]), &s, KNOWN).unwrap(),
        ["dark"]
    );
}

#[test]
fn unknown_reflabel_suggests_and_lists() {
    let s = default_settings();
    let err = resolve_reflabels(&toks(&["readnoise,raednoise"]), &s, KNOWN).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(
        err.kind(),
        ConfigErrorKind::UnknownReflabel { .. }
    ));
    assert!(msg.contains("'raednoise'"), "{msg}");
    assert!(msg.contains("did you mean 'readnoise'"), "{msg}");
    assert!(msg.contains("readnoise, superbias, dark, bpm"), "{msg}");
}

#[test]
fn reflabel_without_generator_is_reported() {
    let s = default_settings();
    let known = &KNOWN[..2];
    let err = resolve_reflabels(&toks(&["mask"]), &s, known).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err.kind(), ConfigErrorKind::NoGenerator { .. }));
    assert!(msg.contains("'bpm'"), "{msg}");
    assert!(msg.contains("reftype 'mask' in default_reflabels"), "{msg}");
    assert!(msg.contains("readnoise, superbias"), "{msg}");
}

#[test]
fn reftype_of_a_single_generator_works_without_alias() {
    let dir = Dir::new();
    let s = load(&opts_with_main(&dir, "reflabels: []\n"), &no_env).unwrap();
    assert_eq!(
        resolve_reflabels(&toks(&["readnoise", "Mask"]), &s, KNOWN).unwrap(),
        ["readnoise", "bpm"]
    );
    // A generator not listed in the config is still a reflabel.
    assert!(is_reflabel_token("superbias", &s, KNOWN));
}

#[test]
fn reflabel_tokens_versus_files() {
    let s = default_settings();
    assert!(is_reflabel_token("dark", &s, KNOWN));
    assert!(is_reflabel_token("mask", &s, KNOWN));
    assert!(is_reflabel_token("readnoise,raednoise", &s, KNOWN));
    assert!(!is_reflabel_token("raednoise", &s, KNOWN));
    assert!(!is_reflabel_token("/data/dark_uncal.fits", &s, KNOWN));
    assert!(!is_reflabel_token(",", &s, KNOWN));
    assert_eq!(
        suggest_reflabel("raednoise", &s, KNOWN).as_deref(),
        Some("readnoise")
    );
}

// ---- parameters ----

fn cli(reflabel: Option<&str>, name: &str, raw: &str) -> CliParam {
    CliParam {
        reflabel: reflabel.map(String::from),
        name: name.into(),
        raw: raw.into(),
    }
}

#[test]
fn params_default_then_section_then_cli() {
    let dir = Dir::new();
    let s = load(&opts_with_main(&dir, MAIN), &no_env).unwrap();
    let specs = readnoise_specs();
    let section = s.section("readnoise");

    let r = resolve_params("readnoise", &specs, section, &[]).unwrap();
    assert_eq!(r.len(), specs.len());
    assert_eq!(
        value_of(&r, "max_clipping_iters").param.value,
        ParamValue::Int(3)
    );
    assert_eq!(
        value_of(&r, "max_clipping_iters").source,
        Provenance::GeneratorDefault("readnoise".into())
    );
    let cs = value_of(&r, "clipping_sigma");
    assert_eq!(cs.param.value, ParamValue::Float(1.0));
    assert_eq!(cs.source.line(), Some(7));

    let r = resolve_params(
        "readnoise",
        &specs,
        section,
        &[
            cli(None, "clipping_sigma", "2.5"),
            cli(Some("readnoise"), "max_clipping_iters", "7"),
            cli(Some("readnoise"), "max_clipping_iters", "8"),
            // Addressed to another reflabel: not this one's business.
            cli(Some("superbias"), "bad_sigma_threshold", "x"),
        ],
    )
    .unwrap();
    assert_eq!(
        value_of(&r, "clipping_sigma").param.value,
        ParamValue::Float(2.5)
    );
    assert_eq!(
        value_of(&r, "clipping_sigma").source,
        Provenance::CommandLine("--clipping_sigma".into())
    );
    // Last one wins, as with repeated options.
    assert_eq!(
        value_of(&r, "max_clipping_iters").param.value,
        ParamValue::Int(8)
    );
}

#[test]
fn unknown_section_key_names_file_section_and_key() {
    let dir = Dir::new();
    let text = "reflabels: [readnoise]\nreadnoise:\n  imtypes: D+\n  clip_sigma: 3\n";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    let err =
        resolve_params("readnoise", &readnoise_specs(), s.section("readnoise"), &[]).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("main.yaml:4"), "{msg}");
    assert!(
        msg.contains("section 'readnoise', key 'clip_sigma'"),
        "{msg}"
    );
    assert!(msg.contains("did you mean 'clipping_sigma'"), "{msg}");
}

#[test]
fn framework_keys_are_not_parameters() {
    let s = default_settings();
    for name in ["readnoise", "superbias", "dark", "bpm"] {
        let r = resolve_params(name, &superbias_specs(), s.section(name), &[]).unwrap();
        assert!(
            r.iter()
                .all(|p| matches!(p.source, Provenance::GeneratorDefault(_)))
        );
    }
}

fn one(kind: ParamKind, node_yaml: &str) -> Result<ParamValue> {
    let dir = Dir::new();
    let text = format!("reflabels: [g]\ng:\n  p: {node_yaml}\n");
    let s = load(&opts_with_main(&dir, &text), &no_env).unwrap();
    let specs = [spec("p", kind, ParamValue::Null)];
    resolve_params("g", &specs, s.section("g"), &[]).map(|r| r[0].param.value.clone())
}

fn one_cli(kind: ParamKind, raw: &str) -> Result<ParamValue> {
    let specs = [spec("p", kind, ParamValue::Null)];
    resolve_params("g", &specs, None, &[cli(None, "p", raw)]).map(|r| r[0].param.value.clone())
}

fn strs(items: &[&str]) -> ParamValue {
    ParamValue::List(
        items
            .iter()
            .map(|s| ParamScalar::Str((*s).into()))
            .collect::<Vec<_>>(),
    )
}

#[test]
fn kinds_from_config() {
    use ParamKind::*;
    assert_eq!(one(Bool, "true").unwrap(), ParamValue::Bool(true));
    assert_eq!(one(Bool, "yes").unwrap(), ParamValue::Bool(true));
    assert_eq!(one(Bool, "0").unwrap(), ParamValue::Bool(false));
    assert!(one(Bool, "2").is_err());
    assert_eq!(one(Int, "5").unwrap(), ParamValue::Int(5));
    assert_eq!(one(Int, "3.0").unwrap(), ParamValue::Int(3));
    assert_eq!(one(Int, "'12'").unwrap(), ParamValue::Int(12));
    assert!(one(Int, "2.5").is_err());
    assert!(one(Int, "[1]").is_err());
    assert_eq!(one(Float, "2").unwrap(), ParamValue::Float(2.0));
    assert_eq!(one(Float, "5.").unwrap(), ParamValue::Float(5.0));
    assert!(one(Float, "abc").is_err());
    assert_eq!(one(String, "5").unwrap(), ParamValue::str("5"));
    assert_eq!(
        one(String, "2019-04-01 00:00:00").unwrap(),
        ParamValue::str("2019-04-01 00:00:00")
    );
    // Structured values reach a text parameter as JSON (upstream's flag_values mapping).
    assert_eq!(one(String, "[a]").unwrap(), ParamValue::str(r#"["a"]"#));
    assert_eq!(
        one(String, "{a: 1}").unwrap(),
        ParamValue::str(r#"{"a":1}"#)
    );
    assert_eq!(one(List, "[a, b]").unwrap(), strs(&["a", "b"]));
    assert_eq!(one(List, "a").unwrap(), strs(&["a"]));
    assert_eq!(
        one(List, "[1, x]").unwrap(),
        ParamValue::List(vec![ParamScalar::Int(1), ParamScalar::Str("x".into())])
    );
    assert!(one(List, "[a, [b]]").is_err());
    for kind in [Bool, Int, Float, String, List] {
        assert_eq!(one(kind, "None").unwrap(), ParamValue::Null, "{kind}");
        assert_eq!(one(kind, "null").unwrap(), ParamValue::Null, "{kind}");
    }
}

#[test]
fn kinds_from_command_line() {
    use ParamKind::*;
    for (raw, b) in [
        ("true", true),
        ("No", false),
        ("YES", true),
        ("1", true),
        ("0", false),
    ] {
        assert_eq!(one_cli(Bool, raw).unwrap(), ParamValue::Bool(b), "{raw}");
    }
    assert!(one_cli(Bool, "maybe").is_err());
    assert_eq!(one_cli(Int, "42").unwrap(), ParamValue::Int(42));
    assert_eq!(one_cli(Int, "3.0").unwrap(), ParamValue::Int(3));
    assert!(one_cli(Int, "2.5").is_err());
    assert_eq!(one_cli(Float, "1e3").unwrap(), ParamValue::Float(1000.0));
    assert_eq!(
        one_cli(String, "J. Doe").unwrap(),
        ParamValue::str("J. Doe")
    );
    assert_eq!(one_cli(List, "[a, b]").unwrap(), strs(&["a", "b"]));
    assert_eq!(one_cli(List, "a, b,").unwrap(), strs(&["a", "b"]));
    assert_eq!(
        one_cli(List, "1,2").unwrap(),
        ParamValue::List(vec![ParamScalar::Int(1), ParamScalar::Int(2)])
    );
    for kind in [Bool, Int, Float, String, List] {
        assert_eq!(one_cli(kind, "none").unwrap(), ParamValue::Null, "{kind}");
        assert_eq!(one_cli(kind, "").unwrap(), ParamValue::Null, "{kind}");
    }
}

#[test]
fn kind_errors_name_source_and_expected_kind() {
    let msg = one_cli(ParamKind::Int, "2.5").unwrap_err().to_string();
    assert!(msg.contains("command line --p"), "{msg}");
    assert!(msg.contains("an integer"), "{msg}");
    assert!(msg.contains("\"2.5\""), "{msg}");
    let msg = one(ParamKind::Float, "abc").unwrap_err().to_string();
    assert!(msg.contains("main.yaml:3"), "{msg}");
    assert!(msg.contains("key 'p' in section 'g'"), "{msg}");
    assert!(msg.contains("a number"), "{msg}");
}

#[test]
fn pall_and_pp_values_are_kind_checked() {
    let dir = Dir::new();
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pall.push(("clipping_sigma".into(), "many".into()));
    let s = load(&opts, &no_env).unwrap();
    let msg = resolve_params("readnoise", &readnoise_specs(), s.section("readnoise"), &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("--pall clipping_sigma"), "{msg}");
}

#[test]
fn bad_generator_default_is_reported() {
    let specs = [spec("n", ParamKind::Int, ParamValue::str("three"))];
    assert!(
        matches!(resolve_params("g", &specs, None, &[]).map_err(|e| e.to_string()).unwrap_err().as_str(), m if m.contains("bug in the generator")
        )
    );
    // An integer default for a float parameter is fine.
    let specs = [spec("x", ParamKind::Float, ParamValue::Int(3))];
    resolve_params("g", &specs, None, &[]).unwrap();
}

// ---- routing command-line parameters ----

#[test]
fn routing_unique_scoped_ambiguous_and_unknown() {
    let rs = readnoise_specs();
    let ss = superbias_specs();
    let selected: Vec<(&str, &[ParamSpec])> = vec![("readnoise", &rs), ("superbias", &ss)];

    let routed = route_cli_params(
        &[
            cli(None, "method", "ramp"),
            cli(None, "bad_sigma_threshold", "4"),
            cli(Some("superbias"), "author", "A"),
            cli(Some("readnoise"), "author", "B"),
        ],
        &selected,
    )
    .unwrap();
    let who: Vec<&str> = routed.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(who, ["readnoise", "superbias", "superbias", "readnoise"]);

    let err = route_cli_params(&[cli(None, "author", "A")], &selected).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ambiguous: --author is a parameter of readnoise and superbias; use --readnoise.author or --superbias.author"
    );

    let msg = route_cli_params(&[cli(None, "clipping_sigm", "1")], &selected)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("did you mean 'clipping_sigma'"), "{msg}");
    assert!(msg.contains("command line --clipping_sigm"), "{msg}");

    let err = route_cli_params(&[cli(Some("dark"), "author", "A")], &selected).unwrap_err();
    assert!(
        matches!(err.kind(), ConfigErrorKind::ReflabelNotSelected { .. }),
        "{err}"
    );

    let msg = route_cli_params(&[cli(Some("superbias"), "method", "x")], &selected)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("generator 'superbias' declares no parameter 'method'"),
        "{msg}"
    );

    // Routed parameters resolve per reflabel.
    let mine: Vec<CliParam> = routed
        .iter()
        .filter(|(r, _)| r == "superbias")
        .map(|(_, c)| c.clone())
        .collect();
    let r = resolve_params("superbias", &ss, None, &mine).unwrap();
    assert_eq!(
        value_of(&r, "bad_sigma_threshold").param.value,
        ParamValue::Float(4.0)
    );
    assert_eq!(value_of(&r, "author").param.value, ParamValue::str("A"));
}

#[test]
fn cli_param_from_option_text() {
    assert_eq!(
        CliParam::from_option("--readnoise.method", "stack"),
        cli(Some("readnoise"), "method", "stack")
    );
    assert_eq!(
        CliParam::from_option("--method", "x"),
        cli(None, "method", "x")
    );
    assert_eq!(cli(Some("a"), "b", "").option(), "--a.b");
}

#[test]
fn a_mapping_reaches_a_text_parameter_as_json() {
    let dir = Dir::new();
    let text = "bpm:\n  reftype: mask\n  flag_values:\n    hot: [HOT]\n    rc: [RC, DO_NOT_USE]\n";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    let specs = vec![spec(
        "flag_values",
        ParamKind::String,
        ParamValue::str("{}"),
    )];
    let r = resolve_params("bpm", &specs, s.section("bpm"), &[]).unwrap();
    let json = value_of(&r, "flag_values").param.value.clone();
    let ParamValue::Str(json) = json else {
        panic!("flag_values reaches the generator as text: {json:?}")
    };
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(parsed["hot"][0], "HOT");
    assert_eq!(parsed["rc"][1], "DO_NOT_USE");
}

// ---- choices and ranges ----

fn method_spec() -> ParamSpec {
    ParamSpec {
        constraints: super::value::Constraints {
            choices: vec!["stack".into(), "ramp".into()],
            not_null: true,
            ..Default::default()
        },
        ..spec("method", ParamKind::String, ParamValue::str("stack"))
    }
}

fn sigma_spec() -> ParamSpec {
    ParamSpec {
        constraints: super::value::Constraints {
            minimum: Some(super::value::Bound {
                value: 0.0,
                inclusive: false,
            }),
            ..Default::default()
        },
        ..spec("clipping_sigma", ParamKind::Float, ParamValue::Float(3.0))
    }
}

#[test]
fn a_command_line_choice_is_checked_with_a_suggestion() {
    let specs = [method_spec()];
    let msg = resolve_params("readnoise", &specs, None, &[cli(None, "method", "rampp")])
        .unwrap_err()
        .to_string();
    assert_eq!(
        msg,
        "command line --method: the value is 'rampp', expected one of stack|ramp (parameter \
         'method' of generator 'readnoise'); did you mean 'ramp'?"
    );
    let r = resolve_params("readnoise", &specs, None, &[cli(None, "method", "RAMP")]).unwrap();
    assert_eq!(r[0].param.value, ParamValue::str("RAMP"));
    let msg = resolve_params("readnoise", &specs, None, &[cli(None, "method", "")])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("is null, expected a value: stack|ramp"),
        "{msg}"
    );
}

#[test]
fn a_config_value_out_of_range_names_file_line_and_section() {
    let dir = Dir::new();
    let s = load(&opts_with_main(&dir, MAIN), &no_env).unwrap();
    // MAIN sets readnoise.clipping_sigma: 1.0, which is fine.
    resolve_params("readnoise", &[sigma_spec()], s.section("readnoise"), &[]).unwrap();
    let text = MAIN.replace("clipping_sigma: 1.0", "clipping_sigma: -2");
    let s = load(&opts_with_main(&dir, &text), &no_env).unwrap();
    let msg = resolve_params("readnoise", &[sigma_spec()], s.section("readnoise"), &[])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("main.yaml:7: key 'clipping_sigma' in section 'readnoise'"),
        "{msg}"
    );
    assert!(msg.contains("is -2.0, expected a number > 0"), "{msg}");
    // --pall reaches the same check.
    let mut opts = opts_with_main(&dir, MAIN);
    opts.pall.push(("clipping_sigma".into(), "0".into()));
    let s = load(&opts, &no_env).unwrap();
    let msg = resolve_params("superbias", &[sigma_spec()], s.section("superbias"), &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("--pall clipping_sigma"), "{msg}");
}

#[test]
fn a_default_outside_its_own_constraints_is_a_generator_bug() {
    let mut bad = method_spec();
    bad.default = ParamValue::str("fast");
    let msg = resolve_params("g", &[bad], None, &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("bug in the generator"), "{msg}");
    assert!(msg.contains("one of stack|ramp"), "{msg}");
}

#[test]
fn null_is_the_none_choice_of_a_parameter_that_has_one() {
    let mut norm = method_spec();
    norm.constraints.choices = vec!["smoothed".into(), "none".into()];
    norm.default = ParamValue::str("smoothed");
    let r = resolve_params("bpm", &[norm], None, &[cli(None, "method", "none")]).unwrap();
    assert_eq!(r[0].param.value, ParamValue::str("none"));
}

#[test]
fn executor_and_combine_sections_read_with_overrides_and_shorthands() {
    let dir = Dir::new();
    let text = "executor:\n  kind: slurm\n  partition: short\n  mem: 2G\n  retries: 2\n  \
                extra_args: [--constraint=ib]\n  overrides:\n    bpm: {mem: 8G, retry_mem: 16G, time: \"1:00:00\"}\n\
                combine: false\n";
    let s = load(&opts_with_main(&dir, text), &no_env).unwrap();
    assert_eq!(s.executor.kind, ExecutorKind::Slurm);
    assert_eq!(s.executor.retries, 2);
    let bpm = s.executor.batch.with(&s.executor.overrides["bpm"]);
    assert_eq!(
        (
            bpm.partition.as_deref(),
            bpm.mem.as_deref(),
            bpm.time.as_deref()
        ),
        (Some("short"), Some("8G"), Some("1:00:00"))
    );
    assert_eq!(bpm.extra_args, ["--constraint=ib"]);
    assert_eq!(bpm.retry_mem.as_deref(), Some("16G"));
    assert_eq!(s.executor.batch.retry_mem, None);
    assert!(!s.combine.enabled);
    assert_eq!(s.combine.clip_sigma, 3.0);

    for (bad, says) in [
        ("executor:\n  kind: condor\n", "expected local or slurm"),
        ("executor:\n  overrides:\n    bpm: {memory: 8G}\n", "memory"),
        (
            "combine:\n  method: mode\n",
            "key 'method' in section 'combine'",
        ),
        (
            "combine:\n  dq_min: 0\n",
            "key 'dq_min' in section 'combine'",
        ),
    ] {
        let e = load(&opts_with_main(&dir, bad), &no_env)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
