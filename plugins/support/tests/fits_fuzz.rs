//! Fuzz target (proptest) of the header readers: files that start as valid FITS headers (2880-byte
//! blocks of 80-character cards), then get odd cards, bad values, lies about their axes, no END,
//! cut blocks and random bytes. Inputs come from anywhere (interrupted copies, other tools), so
//! every reader must return a header or an error that says what is wrong, never panic.
//!
//! The number of cases is bounded for the normal test run; `PROPTEST_CASES` raises it (README,
//! "Tests"). Failures are not persisted to files: a minimal failing input becomes a named unit
//! test (below, or beside the code it broke).

use std::path::Path;

use mkrefs_support::fits::{FitsError, ImageReader, hdu_names, read_header, read_primary_header};
use mkrefs_support::fits_layout::read_layout;
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

const BLOCK: usize = 2880;

const KEYS: &[&str] = &[
    "NGROUPS", "NINTS", "DETECTOR", "EXP_TYPE", "DATE-END", "TIME-END", "SUBARRAY", "SUBSTRT1",
    "SUBSIZE1", "FILTER", "S_DQINIT", "REFTYPE", "EXTNAME", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2",
    "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "CONTINUE", "COMMENT", "HISTORY", "HIERARCH", "END",
    "SIMPLE", "XTENSION", "", "a b", "ÜBER",
];

/// Values of every FITS type and the bad ones: not numbers, overflowing, NaN, unterminated.
const VALUES: &[&str] = &[
    "T",
    "F",
    "'ten'",
    "'NRCA1   '",
    "'O''Brien'",
    "'long &'",
    "'",
    "'unterminated",
    "''",
    "0",
    "-0",
    "10",
    "-1",
    "1e400",
    "-1e400",
    "1.0D10",
    "1.0E-400",
    "NaN",
    "nan",
    "Inf",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999999999",
    "(1.0, 2.0)",
    "(1,",
    "/ only a comment",
    "",
    "= =",
];

/// One 80-byte card from its key, value indicator and value (cut or padded to 80 bytes).
fn card(key: &str, value: &str) -> Vec<u8> {
    let mut c = if key == "CONTINUE" || key == "COMMENT" || key == "HISTORY" {
        format!("{key:<8}  {value}").into_bytes()
    } else {
        format!("{key:<8}= {value}").into_bytes()
    };
    c.resize(80, b' ');
    c
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => proptest::sample::select(VALUES).prop_map(str::to_string),
        1 => any::<i64>().prop_map(|i| i.to_string()),
        1 => any::<f64>().prop_map(|x| format!("{x:E}")),
        1 => "'[ -~]{0,70}'",
        1 => "\\PC{0,20}",
    ]
}

fn random_card() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        4 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[A-Z0-9_-]{1,8}",
    ];
    prop_oneof![
        8 => (key, value()).prop_map(|(k, v)| card(&k, &v)),
        1 => prop::collection::vec(any::<u8>(), 80),
    ]
}

/// NAXIS and its axes: usually true, sometimes lies (huge, negative, too many, not numbers).
fn axes() -> impl Strategy<Value = (String, Vec<String>)> {
    let n = prop_oneof![
        4 => (0usize..5).prop_map(|n| n.to_string()),
        1 => proptest::sample::select(
            &["999", "1000", "-1", "'ten'", "1e400", "9223372036854775807", "4294967297"][..]
        ).prop_map(str::to_string),
    ];
    let len = prop_oneof![
        4 => (0u64..8).prop_map(|n| n.to_string()),
        1 => proptest::sample::select(&["-5", "4294967296", "9223372036854775807", "1e400"][..])
            .prop_map(str::to_string),
    ];
    (n, prop::collection::vec(len, 0..5))
}

/// One HDU: its mandatory cards, some random ones, END (usually), padding and some data.
fn hdu(primary: bool) -> impl Strategy<Value = Vec<u8>> {
    let bitpix = prop_oneof![
        4 => proptest::sample::select(&["8", "16", "-32", "64"][..]).prop_map(str::to_string),
        1 => proptest::sample::select(&["12", "0", "'x'", "-9223372036854775808"][..])
            .prop_map(str::to_string),
    ];
    let extname = proptest::sample::select(&["'SCI'", "'DQ'", "'PRIMARY'", "'sci  '", "3"][..]);
    (
        bitpix,
        axes(),
        extname,
        prop::collection::vec(random_card(), 0..12),
        prop::bool::weighted(0.9),
        0usize..3,
    )
        .prop_map(
            move |(bitpix, (naxis, lens), extname, extra, end, data_blocks)| {
                let mut out = if primary {
                    card("SIMPLE", "T")
                } else {
                    card("XTENSION", "'IMAGE   '")
                };
                out.extend(card("BITPIX", &bitpix));
                out.extend(card("NAXIS", &naxis));
                for (i, l) in lens.iter().enumerate() {
                    out.extend(card(&format!("NAXIS{}", i + 1), l));
                }
                if !primary {
                    out.extend(card("EXTNAME", extname));
                }
                extra.into_iter().for_each(|c| out.extend(c));
                if end {
                    out.extend(b"END");
                    out.extend([b' '; 77]);
                }
                out.resize(out.len().div_ceil(BLOCK) * BLOCK, b' ');
                out.resize(out.len() + data_blocks * BLOCK, 0);
                out
            },
        )
}

/// A damage to a well-formed file: a cut, overwritten bytes, a card where it does not belong.
#[derive(Clone, Debug)]
enum Damage {
    Cut(usize),
    Bytes(usize, Vec<u8>),
    Card(usize, Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..3 * BLOCK).prop_map(Damage::Cut),
        (0usize..3 * BLOCK, prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(at, b)| Damage::Bytes(at, b)),
        (0usize..72, random_card()).prop_map(|(at, c)| Damage::Card(at, c)),
    ]
}

fn apply(file: &mut Vec<u8>, d: &Damage) {
    match d {
        Damage::Cut(at) => file.truncate(*at),
        Damage::Bytes(at, b) => {
            for (i, byte) in b.iter().enumerate() {
                if let Some(x) = file.get_mut(at + i) {
                    *x = *byte;
                }
            }
        }
        Damage::Card(at, c) => {
            let start = (at * 80).min(file.len());
            let end = (start + 80).min(file.len());
            file.splice(start..end, c.iter().copied());
        }
    }
}

/// A file: a primary HDU and up to two extensions, then up to three damages.
fn fits_file() -> impl Strategy<Value = Vec<u8>> {
    (
        hdu(true),
        prop::collection::vec(hdu(false), 0..3),
        prop::collection::vec(damage(), 0..4),
    )
        .prop_map(|(primary, exts, damages)| {
            let mut file = primary;
            exts.into_iter().for_each(|e| file.extend(e));
            damages.iter().for_each(|d| apply(&mut file, d));
            file
        })
}

/// An error must say what is wrong.
fn check<T>(r: Result<T, FitsError>) {
    if let Err(e) = r {
        assert!(!e.message.trim().is_empty(), "an empty message: {e:?}");
    }
}

/// Everything that reads a header or the HDU layout of an input.
fn read_all(path: &Path) {
    check(read_primary_header(path));
    check(read_header(path, "SCI"));
    check(hdu_names(path));
    check(ImageReader::open(path, "SCI").map(|r| r.shape().to_vec()));
    if let Err(e) = read_layout(path) {
        assert!(!e.trim().is_empty(), "an empty layout error");
    }
}

/// Found by this target: an image whose axes announce more than 2^64 bytes made the length
/// check overflow (a panic in debug builds) instead of reporting a damaged header.
#[test]
fn an_image_larger_than_any_file_is_an_error() {
    let mut file = Vec::new();
    let primary = ["SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "END"];
    let sci = [
        "XTENSION= 'IMAGE   '",
        "BITPIX  = 8",
        "NAXIS   = 2",
        "NAXIS1  = 9223372036854775807",
        "NAXIS2  = 2",
        "EXTNAME = 'SCI'",
        "END",
    ];
    for cards in [&primary[..], &sci[..]] {
        cards
            .iter()
            .for_each(|c| file.extend(format!("{c:<80}").bytes()));
        file.resize(file.len().div_ceil(BLOCK) * BLOCK, b' ');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.fits");
    std::fs::write(&path, &file).unwrap();
    let e = ImageReader::open(&path, "SCI").map(|_| ()).unwrap_err();
    assert!(e.message.contains("more data than a file can hold"), "{e}");
    read_all(&path);
}

/// Writes a file of the given HDUs (cards without padding) and checks that reading its primary
/// header returns, within 20 s, an error that says the header is damaged.
fn refused_without_hanging(hdus: &[&[&str]], name: &str) {
    let mut file = Vec::new();
    for cards in hdus {
        cards
            .iter()
            .for_each(|c| file.extend(format!("{c:<80}").bytes()));
        file.resize(file.len().div_ceil(BLOCK) * BLOCK, b' ');
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, &file).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || tx.send(read_primary_header(&p)));
    let r = rx.recv_timeout(std::time::Duration::from_secs(20));
    let e = r.expect("read_primary_header returns").unwrap_err();
    assert!(e.message.contains("more data than a file can hold"), "{e}");
    read_all(&path);
}

const PRIMARY: &[&str] = &["SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 0", "END"];

/// Found by the input stage's target (host inputs::fuzz): a SCI extension of 2048 x (2^63-1) x 2
/// 16-bit pixels, a size cfitsio's signed byte count turns negative, made it walk back to the
/// same header forever while looking for an HDU (read_primary_header never returned).
#[test]
fn a_size_cfitsio_cannot_count_is_an_error_not_a_hang() {
    let sci: &[&str] = &[
        "XTENSION= 'IMAGE'",
        "BITPIX  = 16",
        "NAXIS   = 3",
        "NAXIS1  = 2048",
        "NAXIS2  = 9223372036854775807",
        "NAXIS3  = 2",
        "EXTNAME = 'SCI'",
        "END",
    ];
    refused_without_hanging(&[PRIMARY, sci], "loop.fits");
}

/// Found by the same target in a longer run: data whose size a signed 64-bit count still holds
/// (a whole number of blocks just under 2^63), but whose end, counted from the start of the
/// file, it does not: cfitsio's position of the next HDU turned negative and the walk looped.
#[test]
fn data_that_end_beyond_what_cfitsio_can_count_are_an_error_not_a_hang() {
    let sci: &[&str] = &[
        "XTENSION= 'IMAGE'",
        "BITPIX  = 8",
        "NAXIS   = 1",
        "NAXIS1  = 9223372036854773760",
        "EXTNAME = 'SCI'",
        "END",
    ];
    refused_without_hanging(&[PRIMARY, sci], "end.fits");
}

/// Found by the input stage's target in a longer run: a BITPIX card with text after its value
/// (`8` then spaces and a comma), which cfitsio reads as 8 but the size check did not, so the
/// check stopped before the SCI extension whose size overflows, and cfitsio walked forever.
#[test]
fn a_size_check_reads_values_as_cfitsio_does() {
    let primary: &[&str] = &[
        "SIMPLE  = T",
        "BITPIX  = 8                                                       ,",
        "NAXIS   = 0",
        "END",
    ];
    let sci: &[&str] = &[
        "XTENSION= 'IMAGE'",
        "BITPIX  = 16",
        "NAXIS   = 3",
        "NAXIS1  = 2",
        "NAXIS2  = 2048",
        "NAXIS3  = 9223372036854775807",
        "EXTNAME = 'SCI'",
        "END",
    ];
    refused_without_hanging(&[primary, sci], "comma.fits");
}

proptest! {
    #![proptest_config(config(3000))]

    #[test]
    fn damaged_headers_read_or_say_why(file in fits_file()) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("case.fits");
        std::fs::write(&path, &file).expect("the temporary directory is writable");
        read_all(&path);
    }
}
