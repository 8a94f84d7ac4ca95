//! Fuzz target (proptest) of the input stage: exposure files whose primary header holds the
//! keys mkrefs classifies by (DETECTOR, EXP_TYPE, the date keys, NGROUPS, the window keys, the
//! step keywords) with good and bad values, a SCI extension whose axes may lie, and cut or
//! overwritten bytes. They go through what `plan` does with each input: the header read,
//! [`read_inputs`] with the default configuration's keys and rules, the merge of an exposure's
//! files and the checks of the data against the keywords. Never a panic; errors say something.
//!
//! The number of cases is bounded for the normal test run; `PROPTEST_CASES` raises it (README,
//! "Tests"). Failures are not persisted to files: a minimal failing input becomes a named unit
//! test next to the code it broke.

use std::path::{Path, PathBuf};

use mkrefs_support::fits::read_primary_header;
use mkrefs_support::fits_layout::read_layout;
use mkrefs_support::header::Header;
use proptest::prelude::*;

use crate::inputs::classify::ClassifyRules;
use crate::inputs::exposure::merge_exposures;
use crate::inputs::geometry;
use crate::inputs::read::{InputKeys, completed_steps, read_inputs};

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

const BLOCK: usize = 2880;

/// The keys the input stage reads, each with good and bad values.
const KEYS: &[(&str, &[&str])] = &[
    (
        "DETECTOR",
        &[
            "'NRCA1'",
            "'NRCBLONG'",
            "'MIRIMAGE'",
            "''",
            "'??'",
            "3",
            "T",
        ],
    ),
    (
        "EXP_TYPE",
        &[
            "'NRC_DARK'",
            "'NRC_FLAT'",
            "'nrc_led '",
            "'SCIENCE'",
            "''",
            "1e400",
        ],
    ),
    (
        "DATE-END",
        &[
            "'2022-06-01'",
            "'2022-06-01T10:00:00.5'",
            "'2022-13-45'",
            "'yesterday'",
            "1",
        ],
    ),
    (
        "TIME-END",
        &[
            "'10:11:12.5'",
            "'23:59:60'",
            "'25:00:00'",
            "'10:11'",
            "NaN",
            "'ü'",
        ],
    ),
    ("EXPEND", &["59000.5", "NaN", "1e400", "'59000'", "-1e308"]),
    (
        "NGROUPS",
        &[
            "10",
            "'ten'",
            "1e400",
            "NaN",
            "-3",
            "2.5",
            "9223372036854775807",
        ],
    ),
    (
        "NINTS",
        &["1", "0", "'one'", "1.0", "-9223372036854775808", "1e19"],
    ),
    ("TGROUP", &["10.7", "'x'", "NaN"]),
    ("SUBARRAY", &["'FULL'", "'SUB64P'", "''", "7"]),
    (
        "SUBSTRT1",
        &["1", "0", "-5", "9223372036854775807", "1e400", "'1'"],
    ),
    ("SUBSTRT2", &["1", "2000", "-9223372036854775808", "NaN"]),
    ("SUBSIZE1", &["64", "2048", "-1", "1e30"]),
    ("SUBSIZE2", &["64", "0", "18446744073709551616"]),
    ("REFTYPE", &["'DARK'", "''"]),
    (
        "S_DQINIT",
        &["'COMPLETE'", "'SKIPPED'", "'COMPLETE  '", "T"],
    ),
    ("S_SUPERB", &["'COMPLETE'", "1"]),
    ("FILTER", &["'F200W'", "''"]),
    ("INSTRUME", &["'NIRCAM'", "'MIRI'", "0"]),
];

fn card(key: &str, value: &str) -> Vec<u8> {
    let mut c = format!("{key:<8}= {value}").into_bytes();
    c.resize(80, b' ');
    c
}

fn end_and_pad(mut out: Vec<u8>, data_bytes: usize) -> Vec<u8> {
    out.extend(b"END");
    out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
    out.resize(out.len() + data_bytes.div_ceil(BLOCK) * BLOCK, 0);
    out
}

/// The primary header: each known key present (with one of its values) or left out.
fn primary() -> impl Strategy<Value = Vec<u8>> {
    let picks: Vec<_> = KEYS
        .iter()
        .map(|(k, vals)| {
            prop::option::weighted(0.7, proptest::sample::select(*vals))
                .prop_map(move |v| v.map(|v| card(k, v)))
        })
        .collect();
    picks.prop_map(|cards| {
        let mut out = card("SIMPLE", "T");
        out.extend(card("BITPIX", "8"));
        out.extend(card("NAXIS", "0"));
        cards.into_iter().flatten().for_each(|c| out.extend(c));
        end_and_pad(out, 0)
    })
}

/// A SCI extension of 2 to 4 small axes, or axes that lie about the data that follow.
fn sci() -> impl Strategy<Value = Vec<u8>> {
    let axis = prop_oneof![
        4 => (1u64..6).prop_map(|n| n.to_string()),
        1 => proptest::sample::select(&["0", "-1", "2048", "4294967296", "9223372036854775807"][..])
            .prop_map(str::to_string),
    ];
    let naxis = prop_oneof![
        4 => (2usize..5).prop_map(|n| n.to_string()),
        1 => proptest::sample::select(&["1", "-1", "999", "100000", "'4'"][..])
            .prop_map(str::to_string),
    ];
    (naxis, prop::collection::vec(axis, 2..5), 0usize..3).prop_map(|(naxis, axes, blocks)| {
        let mut out = card("XTENSION", "'IMAGE'");
        out.extend(card("BITPIX", "16"));
        out.extend(card("NAXIS", &naxis));
        for (i, a) in axes.iter().enumerate() {
            out.extend(card(&format!("NAXIS{}", i + 1), a));
        }
        out.extend(card("EXTNAME", "'SCI'"));
        end_and_pad(out, blocks * BLOCK)
    })
}

/// A file: the primary header, usually a SCI extension, then maybe a cut and a few bad bytes.
fn exposure() -> impl Strategy<Value = Vec<u8>> {
    (
        primary(),
        prop::option::weighted(0.8, sci()),
        prop::option::weighted(0.2, 0usize..3 * BLOCK),
        prop::collection::vec((0usize..3 * BLOCK, any::<u8>()), 0..3),
    )
        .prop_map(|(mut file, sci, cut, bytes)| {
            file.extend(sci.unwrap_or_default());
            if let Some(at) = cut {
                file.truncate(at);
            }
            for (at, b) in bytes {
                if let Some(x) = file.get_mut(at) {
                    *x = b;
                }
            }
            file
        })
}

/// The input keys of the default configuration, as `plan` builds them.
fn default_keys() -> InputKeys {
    let settings = crate::config::load(&Default::default(), &|_| None)
        .expect("the default configuration loads");
    let inf = &settings.inputfiles;
    InputKeys {
        required: inf.requiredfitskeys.clone(),
        optional: inf.optionalfitskeys.clone(),
        dateobs: inf.dateobs_fitskey.clone(),
        timeobs: inf.timeobs_fitskey.clone(),
        mjdobs: inf.mjdobs_fitskey.clone(),
        classify: ClassifyRules::from_settings(inf).expect("the default rules compile"),
    }
}

/// The header reader of `plan`: the FITS error's message, with its key.
fn header_reader(path: &Path) -> Result<Header, String> {
    read_primary_header(path).map_err(|e| {
        assert!(!e.message.trim().is_empty(), "an empty FITS error: {e:?}");
        e.message
    })
}

/// What `plan` does with the files of one run, up to the checks of data against keywords.
fn read_files(paths: &[PathBuf], keys: &InputKeys) {
    let named = |p: &Path| p.ends_with("named_uncal.fits");
    match read_inputs(paths, keys, &header_reader, &named) {
        Ok(inventory) => {
            for row in merge_exposures(inventory.rows) {
                let Ok(header) = read_primary_header(&row.path) else {
                    continue;
                };
                let _ = completed_steps(&header);
                if let Ok(layout) = read_layout(&row.path) {
                    let _ = geometry::check(&row.path, &header, &layout, &geometry::profile_frame);
                    let _ = geometry::check_readout(&row.path, &header, &layout);
                }
            }
        }
        Err(e) => assert!(!e.to_string().trim().is_empty(), "an empty input error"),
    }
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn exposure_headers_read_classify_or_say_why(
        files in prop::collection::vec(exposure(), 1..4),
    ) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let names = ["named_uncal.fits", "jw_dark_uncal.fits", "jw_flat_rate.fits"];
        let paths: Vec<PathBuf> = files
            .iter()
            .zip(names)
            .map(|(bytes, name)| {
                let p = dir.path().join(name);
                std::fs::write(&p, bytes).expect("the temporary directory is writable");
                p
            })
            .collect();
        read_files(&paths, &default_keys());
    }
}
