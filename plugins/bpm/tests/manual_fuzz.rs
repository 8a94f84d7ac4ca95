//! Fuzz targets (proptest) of the text a person writes for the bpm generator: manual flag
//! tables (`manual::parse`, then `manual::to_map` as a run maps them into its window) and the
//! `flag_values` parameter (`params::parse_flag_values`). Whatever the text, the result is
//! entries or an error naming the problem, never a panic.
//!
//! The number of cases is bounded for the normal test run; `PROPTEST_CASES` raises it (README,
//! "Tests"). Failures are not persisted to files: a minimal failing input becomes a unit test in
//! the module it broke.

use mkref_bpm::manual::{self, ManualEntry};
use mkref_bpm::params::parse_flag_values;
use mkrefs_plugin_api::GeneratorError;
use proptest::prelude::*;

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

const FLAGS: &[&str] = &[
    "DEAD",
    "dead",
    "Hot",
    "LOW_QE",
    "OPEN",
    "ADJ_OPEN",
    "UNRELIABLE_SLOPE",
    "DO_NOT_USE",
    "OTHER_BAD_PIXEL",
    "REFERENCE_PIXEL",
    "GOOD",
    "good",
    "WONKY",
    "DEAD,HOT",
    "DÉAD",
    "",
];

/// Numbers around the frame size and at the limits of the integer types.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "+3",
    "007",
    "63",
    "64",
    "65",
    "2047",
    "2048",
    "4294967295",
    "4294967296",
    "9223372036854775807",
    "18446744073709551614",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e3",
    "1.5",
    "0x10",
    "١٢",
    "NaN",
    "",
];

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(NUMBERS).prop_map(str::to_string),
        2 => (0usize..80).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        1 => any::<i64>().prop_map(|n| n.to_string()),
    ]
}

/// One coordinate cell: a number or a range `a:b` with either end left out, or odd text.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => number(),
        3 => (number(), number()).prop_map(|(a, b)| format!("{a}:{b}")),
        1 => number().prop_map(|a| format!("{a}:")),
        1 => number().prop_map(|b| format!(":{b}")),
        1 => Just(":".to_string()),
        1 => (number(), number(), number()).prop_map(|(a, b, c)| format!("{a}:{b}:{c}")),
        1 => "\\PC{0,6}",
    ]
}

fn flag() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(FLAGS).prop_map(str::to_string),
        1 => "[A-Za-z_]{0,12}",
        1 => "\\PC{0,8}",
    ]
}

/// Blanks between cells: spaces, tabs and other Unicode white space.
fn sep() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => Just(" ".to_string()),
        1 => Just("\t".to_string()),
        1 => Just("   ".to_string()),
        1 => proptest::sample::select(&["\u{a0}", "\u{3000}", "\u{2003}", "\u{85}"][..])
            .prop_map(str::to_string),
    ]
}

/// The header line: the three names in any order and case, sometimes one missing or extra.
fn header() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        proptest::sample::select(&["x", "y", "flag", "X", "Y", "FLAG", "flags", "z", "ü"][..])
            .prop_map(str::to_string),
    ];
    prop_oneof![
        4 => Just(vec!["x".to_string(), "y".into(), "flag".into()]).prop_shuffle(),
        1 => prop::collection::vec(name, 0..5),
    ]
    .prop_map(|names| names.join(" "))
}

/// A data row: usually three cells in some order, sometimes two or four, or a comment.
fn row() -> impl Strategy<Value = String> {
    let cells = prop_oneof![
        6 => (cell(), cell(), flag()).prop_map(|(x, y, f)| vec![x, y, f]),
        1 => prop::collection::vec(prop_oneof![cell(), flag()], 0..5),
    ];
    prop_oneof![
        8 => (cells, sep(), sep()).prop_map(|(c, a, b)| {
            let mut s = String::from(if a == " " { "" } else { " " });
            s.push_str(&c.join(&a));
            s.push_str(&b);
            s
        }),
        1 => "#\\PC{0,10}",
        1 => Just(String::new()),
    ]
}

/// A whole table: comments, a header line, rows; or arbitrary text.
fn table() -> impl Strategy<Value = String> {
    let structured = (
        prop::collection::vec("#\\PC{0,10}", 0..3),
        header(),
        prop::collection::vec(row(), 0..12),
        prop_oneof![Just("\n"), Just("\r\n")],
    )
        .prop_map(|(comments, head, rows, nl)| {
            let mut lines = comments;
            lines.push(head);
            lines.extend(rows);
            lines.join(nl)
        });
    prop_oneof![
        8 => structured,
        1 => "\\PC{0,200}",
        1 => prop::collection::vec(any::<char>(), 0..100).prop_map(|c| c.into_iter().collect()),
    ]
}

/// An error must say what is wrong.
fn check_error(e: &GeneratorError) {
    assert!(!e.message.trim().is_empty(), "an empty error message");
}

/// Every entry lies inside the frame, and maps into any window without going out of it.
fn check_entries(entries: &[ManualEntry], ny: usize, nx: usize, window: (usize, usize)) {
    for e in entries {
        assert!(e.xs.start < e.xs.end && e.xs.end <= nx, "{e:?}");
        assert!(e.ys.start < e.ys.end && e.ys.end <= ny, "{e:?}");
    }
    let (y0, x0) = window;
    let (sub_ny, sub_nx) = (ny.min(16), nx.min(16));
    let map = manual::to_map(entries, y0.min(ny), x0.min(nx), sub_ny, sub_nx);
    assert_eq!(map.len(), sub_ny * sub_nx);
}

/// A `flag_values` text: a JSON object of class to mnemonics, mostly well-formed.
fn flag_values_text() -> impl Strategy<Value = String> {
    let class = prop_oneof![
        proptest::sample::select(&["hot", "rc", "low_pedestal", "high_cr", " HOT ", "x", ""][..])
            .prop_map(str::to_string),
        "\\PC{0,6}",
    ];
    let item = prop_oneof![
        4 => flag().prop_map(serde_json::Value::String),
        1 => any::<i64>().prop_map(serde_json::Value::from),
        1 => Just(serde_json::Value::Null),
    ];
    let value = prop_oneof![
        3 => prop::collection::vec(item.clone(), 0..3).prop_map(serde_json::Value::Array),
        1 => item,
    ];
    let object = prop::collection::btree_map(class, value, 0..6).prop_map(|m| {
        serde_json::Value::Object(m.into_iter().collect::<serde_json::Map<_, _>>()).to_string()
    });
    prop_oneof![
        6 => object,
        1 => "\\PC{0,40}",
        1 => (1usize..300).prop_map(|n| format!("{}{}", "[".repeat(n), "]".repeat(n))),
    ]
}

proptest! {
    #![proptest_config(config(20000))]

    #[test]
    fn manual_tables_parse_or_say_why(
        text in table(),
        ny in 1usize..3000,
        nx in 1usize..3000,
        window in (0usize..3000, 0usize..3000),
        do_not_use in prop::collection::vec(flag(), 0..3),
    ) {
        match manual::parse(&text, "fuzz.txt", ny, nx, &do_not_use) {
            Ok(entries) => check_entries(&entries, ny, nx, window),
            Err(e) => check_error(&e),
        }
    }
}

proptest! {
    #![proptest_config(config(20000))]

    #[test]
    fn flag_values_parse_or_say_why(text in flag_values_text()) {
        if let Err(e) = parse_flag_values(&text) {
            check_error(&e);
        }
    }
}
