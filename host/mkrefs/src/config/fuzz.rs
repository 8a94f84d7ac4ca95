//! Fuzz targets of the configuration loader (proptest). Users write the YAML, the `-p`,
//! `--pall` and `--pp` values and the environment, so whatever they write must end in
//! settings or in an error that says something, never in a panic. Each case goes through
//! [`super::load`] as `mkrefs run` calls it, then through what the binary does next with the
//! settings (reflabel and parameter resolution, the output and classification options).
//!
//! The number of cases is bounded for the normal test run; `PROPTEST_CASES` raises it (README,
//! "Tests"). Failures are not persisted to files: a minimal failing input becomes a named unit
//! test next to the code it broke.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::settings::{INPUTFILES_KEYS, OUTPUT_KEYS};
use super::value::{Bound, Constraints, ParamKind, ParamSpec, ParamValue};
use super::{CliParam, LoadOptions, Settings};
use crate::inputs::classify::ClassifyRules;
use crate::plan::options::OutputOverrides;

/// `PROPTEST_CASES` when set, else `cases` (chosen so that a target takes 2 to 5 s in a
/// debug build on a 2-core machine); no regression files in the source tree.
fn config(cases: u32) -> ProptestConfig {
    let mut c = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        c.cases = cases;
    }
    c.failure_persistence = None;
    c
}

/// A YAML value as a document would hold it, rendered by [`render`].
#[derive(Clone, Debug)]
enum Y {
    /// Written as it is (plain), so it may be anything YAML reads: numbers, nulls, `$VAR`...
    Plain(String),
    /// Written double-quoted (JSON escaping is valid YAML).
    Quoted(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
    /// `&name value`, rendered in flow style.
    Anchor(String, Box<Y>),
    /// `*name`; an alias to an anchor that is not defined is a YAML error, which is fine.
    Alias(String),
}

/// The keys of the inputfiles and output sections, as the loader knows them.
fn section_keys() -> Vec<&'static str> {
    INPUTFILES_KEYS.iter().chain(OUTPUT_KEYS).copied().collect()
}

const TOP_KEYS: &[&str] = &[
    "instrument",
    "reflabels",
    "default_reflabels",
    "inputfiles",
    "output",
    "DD",
    "FF",
    "DDFF",
    "reffile4ssb",
    "calibration",
    "batch",
    "validation",
    "test1",
    "readnoise",
    "superbias",
    "dark",
    "bpm",
];

/// Scalars that YAML or the settings read specially: nulls, bools, huge and odd numbers,
/// `$` and `${` sequences, regex fragments, unicode. All are valid as plain YAML values.
const SCALARS: &[&str] = &[
    "null",
    "~",
    "None",
    "none",
    "NONE",
    "true",
    "False",
    "yes",
    "0",
    "-1",
    "3",
    "2.5",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "NaN",
    "0x1F",
    "0o17",
    "1_000",
    "99999999999999999999999",
    "-9223372036854775809",
    "9223372036854775807",
    "AUTO",
    "auto",
    "NIRCam",
    "miri",
    "jwst",
    "native",
    "D+",
    "D-F+",
    "DF",
    "dq_init,saturation",
    "all",
    "$HOME",
    "${HOME}",
    "$D/x",
    "${D",
    "${}",
    "${1}",
    "$$",
    "$",
    "a$",
    "${A:-b}",
    "$NOPE",
    "${NOPE}",
    "$EMPTY$EMPTY",
    "$UNI",
    "(.*",
    "\\",
    "a\tb",
    "ünï",
    "日本",
    "🦀",
    "2019-04-01",
    "2019-04-01T00:00:00",
    "..",
    "../x",
    "/",
    "",
];

/// Text that is not a plain YAML scalar where a value goes (mostly written quoted).
const NASTY: &[&str] = &[
    "'",
    "\"",
    "#",
    "- x",
    "a: b",
    "? x",
    "[",
    "]",
    "{",
    "!!str 5",
    "!!int x",
    "!!binary x",
    "!custom y",
    "&",
    "*",
    "|",
    ">",
    "%",
    "@",
    "`",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(TOP_KEYS).prop_map(str::to_string),
        4 => proptest::sample::select(section_keys()).prop_map(str::to_string),
        1 => "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
        1 => "\\PC{0,8}",
    ]
}

/// Plain values YAML reads as scalars, and quoted text.
fn tame_scalar() -> impl Strategy<Value = Y> {
    prop_oneof![
        8 => proptest::sample::select(SCALARS).prop_map(|s| Y::Plain(s.to_string())),
        3 => "[a-zA-Z0-9_$./][a-zA-Z0-9_$.{}/-]{0,15}".prop_map(Y::Plain),
        3 => "\\PC{0,16}".prop_map(Y::Quoted),
        2 => any::<i64>().prop_map(|i| Y::Plain(i.to_string())),
        2 => any::<f64>().prop_map(|x| Y::Plain(format!("{x:e}"))),
        1 => proptest::sample::select(NASTY).prop_map(|s| Y::Quoted(s.to_string())),
    ]
}

/// Also text that breaks a plain scalar, and aliases that may name no anchor.
fn wild_scalar() -> impl Strategy<Value = Y> {
    prop_oneof![
        6 => tame_scalar(),
        1 => proptest::sample::select(NASTY).prop_map(|s| Y::Plain(s.to_string())),
        1 => "[a-c]".prop_map(Y::Alias),
    ]
}

/// A mapping with each key once (YAML refuses duplicates), in the generated order.
fn unique(entries: Vec<(String, Y)>) -> Y {
    let mut out: Vec<(String, Y)> = Vec::new();
    for (k, v) in entries {
        if !out.iter().any(|(o, _)| *o == k) {
            out.push((k, v));
        }
    }
    Y::Map(out)
}

/// Values up to a few levels deep: scalars, lists, mappings with known keys, and (when
/// `anchors`) anchored values.
fn value(scalar: BoxedStrategy<Y>, anchors: bool) -> impl Strategy<Value = Y> {
    scalar.prop_recursive(4, 48, 6, move |inner| {
        let anchored = ("[a-c]", inner.clone()).prop_map(|(a, v)| Y::Anchor(a, Box::new(v)));
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 0..6).prop_map(Y::Seq),
            3 => prop::collection::vec((key(), inner), 0..6).prop_map(unique),
            u32::from(anchors) => anchored,
        ]
    })
}

fn tame_value() -> impl Strategy<Value = Y> {
    value(tame_scalar().boxed(), false)
}

fn wild_value() -> impl Strategy<Value = Y> {
    value(wild_scalar().boxed(), true)
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

fn plain_key(k: &str) -> String {
    let simple = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if simple { k.to_string() } else { quote(k) }
}

/// Flow style; inside `[...]`/`{...}` a plain scalar holding a flow indicator is quoted, as
/// a person would write it (only wild documents break that rule).
fn flow(y: &Y) -> String {
    flow_in(y, false)
}

fn flow_in(y: &Y, nested: bool) -> String {
    match y {
        Y::Plain(s) if nested && s.contains(['[', ']', '{', '}', ',', '#', ':']) => quote(s),
        Y::Plain(s) => s.clone(),
        Y::Quoted(s) => quote(s),
        Y::Seq(items) => {
            let parts: Vec<String> = items.iter().map(|v| flow_in(v, true)).collect();
            format!("[{}]", parts.join(", "))
        }
        Y::Map(entries) => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("{}: {}", plain_key(k), flow_in(v, true)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Y::Anchor(a, v) => format!("&{a} {}", flow_in(v, nested)),
        Y::Alias(a) => format!("*{a}"),
    }
}

/// Block style for mappings and lists of the document, flow style below anchors.
fn render(y: &Y, indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    match y {
        Y::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&format!("{pad}{}:", plain_key(k)));
                block_child(v, indent, out);
            }
        }
        Y::Seq(items) if !items.is_empty() => {
            for v in items {
                out.push_str(&format!("{pad}-"));
                block_child(v, indent, out);
            }
        }
        other => out.push_str(&format!("{pad}{}\n", flow(other))),
    }
}

fn block_child(v: &Y, indent: usize, out: &mut String) {
    match v {
        Y::Map(e) if !e.is_empty() => {
            out.push('\n');
            render(v, indent + 2, out);
        }
        Y::Seq(i) if !i.is_empty() => {
            out.push('\n');
            render(v, indent + 2, out);
        }
        other => out.push_str(&format!(" {}\n", flow(other))),
    }
}

/// A main or extra config: known top-level keys holding sections of known keys, mostly
/// valid YAML (a wild document also has broken scalars and dangling aliases).
fn document() -> impl Strategy<Value = String> {
    prop_oneof![3 => Just(tame_value().boxed()), 1 => Just(wild_value().boxed())].prop_flat_map(
        |value| {
            let section = prop::collection::vec((key(), value.clone()), 0..8).prop_map(unique);
            let entry = prop_oneof![
                3 => (proptest::sample::select(TOP_KEYS).prop_map(str::to_string), section),
                1 => (key(), value),
            ];
            prop::collection::vec(entry, 0..10).prop_map(|entries| {
                let mut out = String::new();
                render(&unique(entries), 0, &mut out);
                out
            })
        },
    )
}

/// A small config as users write one: an instrument, reflabels and their sections with
/// generator parameters, so that loading often succeeds and the parameters get resolved.
fn plausible_document() -> impl Strategy<Value = String> {
    let labels = &[
        "readnoise",
        "superbias",
        "dark",
        "bpm",
        "my-dark",
        "bad label",
    ][..];
    let params = &[
        "clipping_sigma",
        "n_iter",
        "flag",
        "label",
        "names",
        "imtypes",
        "reftype",
    ][..];
    let section = (
        proptest::sample::select(labels),
        prop::collection::vec((proptest::sample::select(params), tame_scalar()), 0..4),
    );
    (
        proptest::sample::select(&["NIRCam", "miri", "FGS", "nirspec", "JWST", "null"][..]),
        prop::collection::vec(proptest::sample::select(labels), 0..3),
        prop::collection::vec(section, 0..3),
    )
        .prop_map(|(instrument, reflabels, sections)| {
            let mut out = format!(
                "instrument: {instrument}\nreflabels: [{}]\n",
                reflabels.join(", ")
            );
            let mut seen: Vec<&str> = Vec::new();
            for (label, entries) in sections {
                if seen.contains(&label) {
                    continue;
                }
                seen.push(label);
                let entries = entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                render(
                    &unique(vec![(label.to_string(), unique(entries))]),
                    0,
                    &mut out,
                );
            }
            out
        })
}

/// `--name` or `--reflabel.name` of a declared parameter (sometimes of none).
fn param_option() -> impl Strategy<Value = String> {
    let names = &["clipping_sigma", "n_iter", "flag", "label", "names", "nope"][..];
    let labels = &["", "readnoise.", "dark.", "bpm.", "other.", "."][..];
    (
        proptest::sample::select(labels),
        proptest::sample::select(names),
    )
        .prop_map(|(l, n)| format!("--{l}{n}"))
}

/// A positional word naming reflabels: one, a comma list, or a reftype alias.
fn label_token() -> impl Strategy<Value = String> {
    let words = &[
        "readnoise",
        "superbias",
        "dark",
        "bpm",
        "mask",
        "my-dark",
        "x",
        ",",
        "",
    ][..];
    prop::collection::vec(proptest::sample::select(words), 1..3).prop_map(|w| w.join(","))
}

/// Text made of the pieces YAML gives meaning to, in any order: mostly invalid documents.
fn yaml_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(
            &[
                ":",
                ": ",
                "- ",
                "\n",
                "  ",
                "\t",
                "&a ",
                "*a",
                "<<: ",
                "? ",
                "{",
                "}",
                "[",
                "]",
                ",",
                "'",
                "\"",
                "#",
                "|",
                ">",
                "---\n",
                "...\n",
                "%YAML 1.2\n",
                "!!",
                "${",
                "$",
                "\\",
                "\u{feff}",
                "\r\n",
                "\0",
            ][..]
        )
        .prop_map(str::to_string),
        key(),
        "\\PC{0,6}",
    ];
    prop::collection::vec(piece, 0..60).prop_map(|p| p.concat())
}

/// Deep nesting, long alias chains and huge numbers: the parser's limits must give errors.
fn extremes() -> impl Strategy<Value = String> {
    prop_oneof![
        (1usize..400).prop_map(|n| format!("a: {}1{}\n", "[".repeat(n), "]".repeat(n))),
        (1usize..300).prop_map(|n| {
            let mut s = String::new();
            for i in 0..n {
                s.push_str(&format!("{}k{i}:\n", " ".repeat(i)));
            }
            s
        }),
        (1usize..12).prop_map(|n| {
            // Each level refers to the previous one ten times ("billion laughs").
            let mut s = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
            for i in 1..n {
                let refs = vec![format!("*l{}", i - 1); 10].join(", ");
                s.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
            }
            s
        }),
        "[0-9]{20,400}".prop_map(|d| format!("test1: {d}\noutput:\n  runIDNdigits: {d}\n")),
        "[0-9]{1,30}".prop_map(|d| format!("DD:\n  max_Delta_MJD: {d}e{d}\n")),
    ]
}

/// A config file's content: structured, soup, extreme, or bytes that are not UTF-8.
fn file_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        8 => plausible_document().prop_map(String::into_bytes),
        8 => document().prop_map(String::into_bytes),
        2 => yaml_soup().prop_map(String::into_bytes),
        1 => extremes().prop_map(String::into_bytes),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

/// A command-line value: the scalars, flow lists and mappings, or anything.
fn raw_value() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => tame_scalar().prop_map(|y| flow(&y)),
        2 => tame_value().prop_map(|y| flow(&y)),
        1 => wild_value().prop_map(|y| flow(&y)),
        1 => yaml_soup(),
    ]
}

/// Everything one `mkrefs` invocation feeds the loader.
#[derive(Clone, Debug)]
struct Case {
    main: Option<Vec<u8>>,
    extras: Vec<Vec<u8>>,
    params: Vec<(String, String)>,
    pall: Vec<(String, String)>,
    pp: Vec<(String, String, String)>,
    cli: Vec<(String, String)>,
    tokens: Vec<String>,
}

/// `-p` keys: mostly the top-level values a config has.
fn top_scalar_key() -> impl Strategy<Value = String> {
    let scalars = &["instrument", "reflabels"][..];
    prop_oneof![6 => proptest::sample::select(scalars).prop_map(str::to_string), 1 => key()]
}

fn case() -> impl Strategy<Value = Case> {
    // Each kind of override is left out half of the time, so that loading often succeeds.
    let some = |n: usize| prop_oneof![Just(0), 0..n + 1];
    (
        prop::option::weighted(0.8, file_bytes()),
        some(2).prop_flat_map(|n| prop::collection::vec(file_bytes(), n)),
        some(2).prop_flat_map(|n| prop::collection::vec((top_scalar_key(), raw_value()), n)),
        some(2).prop_flat_map(|n| prop::collection::vec((key(), raw_value()), n)),
        some(3).prop_flat_map(|n| prop::collection::vec((key(), key(), raw_value()), n)),
        prop::collection::vec((key(), raw_value()), 0..4),
        prop::collection::vec(key(), 0..3),
    )
        .prop_map(|(main, extras, params, pall, pp, cli, tokens)| Case {
            main,
            extras,
            params,
            pall,
            pp,
            cli,
            tokens,
        })
}

/// The variables `$VAR` may name; values hold `$` and unicode, inserted literally.
fn env(name: &str) -> Option<String> {
    match name {
        "HOME" => Some("/home/u".into()),
        "D" => Some("/data/${D}/$$".into()),
        "EMPTY" => Some(String::new()),
        "UNI" => Some("ünï 🦀".into()),
        _ => None,
    }
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("the temporary directory is writable");
    p
}

/// The generators a run could select, with one parameter of each kind.
fn specs() -> Vec<ParamSpec> {
    let spec = |name: &str, kind, default, constraints| ParamSpec {
        name: name.into(),
        kind,
        default,
        help: String::new(),
        constraints,
    };
    let above_zero = Constraints {
        minimum: Some(Bound {
            value: 0.0,
            inclusive: false,
        }),
        ..Constraints::default()
    };
    let choices = Constraints {
        choices: vec!["stack".into(), "ramp".into()],
        ..Constraints::default()
    };
    let none = Constraints::default();
    vec![
        spec(
            "clipping_sigma",
            ParamKind::Float,
            ParamValue::Float(3.0),
            above_zero,
        ),
        spec("n_iter", ParamKind::Int, ParamValue::Int(2), none.clone()),
        spec(
            "flag",
            ParamKind::Bool,
            ParamValue::Bool(false),
            none.clone(),
        ),
        spec("label", ParamKind::String, ParamValue::Null, choices),
        spec("names", ParamKind::List, ParamValue::List(Vec::new()), none),
    ]
}

/// What the binary does with loaded settings before it reads any input.
fn use_settings(settings: &Settings, case: &Case) {
    let _ = settings.tree.to_annotated_yaml();
    let specs = specs();
    let known = [
        ("readnoise", "readnoise"),
        ("superbias", "superbias"),
        ("dark", "dark"),
        ("bpm", "mask"),
    ];
    for t in &case.tokens {
        let _ = super::is_reflabel_token(t, settings, &known);
        let _ = super::suggest_reflabel(t, settings, &known);
    }
    let labels = match super::resolve_reflabels(&case.tokens, settings, &known) {
        Ok(labels) => labels,
        Err(e) => {
            check::<(), _>(Err(e));
            Vec::new()
        }
    };
    let selected: Vec<(&str, &[ParamSpec])> = labels
        .iter()
        .map(|r| (r.as_str(), specs.as_slice()))
        .collect();
    let cli: Vec<CliParam> = case
        .cli
        .iter()
        .map(|(o, raw)| CliParam::from_option(o, raw))
        .collect();
    check(super::route_cli_params(&cli, &selected));
    check(super::check_pall(settings, &selected));
    for (reflabel, specs) in &selected {
        check(super::resolve_params(
            reflabel,
            specs,
            settings.section(reflabel),
            &cli,
        ));
    }
    check(OutputOverrides::default().resolve(settings));
    check(ClassifyRules::from_settings(&settings.inputfiles));
}

/// An error must say something.
fn check<T, E: std::fmt::Display>(r: Result<T, E>) {
    if let Err(e) = r {
        assert!(!e.to_string().trim().is_empty(), "an empty error message");
    }
}

/// Loads one case as `mkrefs run` does.
fn load_case(dir: &Path, case: &Case) {
    let cfgfile = case.main.as_ref().map(|b| write(dir, "main.yaml", b));
    let extra_cfgfiles = case
        .extras
        .iter()
        .enumerate()
        .map(|(i, b)| write(dir, &format!("extra{i}.yaml"), b))
        .collect();
    let opts = LoadOptions {
        cfgfile,
        extra_cfgfiles,
        params: case.params.clone(),
        pall: case.pall.clone(),
        pp: case.pp.clone(),
    };
    match super::load(&opts, &env) {
        Ok(settings) => use_settings(&settings, case),
        Err(e) => check::<(), _>(Err(e)),
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Structured, soup and extreme files with overrides and `$VAR`s.
    #[test]
    fn config_loading_never_panics(case in case()) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        load_case(dir.path(), &case);
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Plausible configs and options that name declared parameters, so that most cases load
    /// and reach reflabel and parameter resolution.
    #[test]
    fn plausible_configs_resolve_or_say_why(
        main in plausible_document(),
        cli in prop::collection::vec((param_option(), raw_value()), 0..4),
        tokens in prop::collection::vec(label_token(), 1..3),
    ) {
        let case = Case { main: Some(main.into_bytes()), extras: Vec::new(), params: Vec::new(),
            pall: Vec::new(), pp: Vec::new(), cli, tokens };
        let dir = tempfile::tempdir().expect("a temporary directory");
        load_case(dir.path(), &case);
    }
}

proptest! {
    #![proptest_config(config(1500))]

    /// Overrides alone, over the embedded default config (no file).
    #[test]
    fn overrides_of_the_embedded_config_never_panic(
        params in prop::collection::vec((top_scalar_key(), raw_value()), 0..4),
        pall in prop::collection::vec((key(), raw_value()), 0..4),
        pp in prop::collection::vec((key(), key(), raw_value()), 0..6),
    ) {
        let case = Case { main: None, extras: Vec::new(), params, pall, pp, cli: Vec::new(),
            tokens: vec!["readnoise,dark".into(), "bpm".into()] };
        let dir = tempfile::tempdir().expect("a temporary directory");
        load_case(dir.path(), &case);
    }
}
