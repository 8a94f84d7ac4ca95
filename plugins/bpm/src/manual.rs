//! Manual flag files (UPSTREAM.md, 'Manual flag files'): pixels a person wants flagged, in
//! upstream's text format.
//!
//! ```text
//! # comment lines start with '#'
//! x      y      flag
//! 1307   467    DEAD
//! 384:385 :     UNRELIABLE_SLOPE
//! ```
//!
//! The first non-comment line names the columns (`x`, `y`, `flag`, any order, as astropy reads
//! them). Coordinates are 0-based full-frame pixels, reference pixels included (x = column,
//! y = row, DMS orientation). A cell is an integer `v`, or an **inclusive** range `a:b`, where an
//! empty start means 0 and an empty end the last pixel, so `:` is the whole axis. Flags are JWST
//! DQ mnemonics, case-insensitive.
//!
//! Differences from upstream: a malformed line, a coordinate outside the full frame or an
//! unknown mnemonic is an error naming the file, line and column (upstream prints "Unrecognized
//! bad pixel type" and skips the row, and fails in astropy on malformed cells); negative numbers
//! are errors (upstream would read them as Python negative indices). For subarray data the
//! full-frame coordinates are mapped into the window and entries outside it are ignored.
//! `manual_flag_file: default` looks for `<instrument>_<detector>_manual_flags.txt` (lower case)
//! in the data directory ([`data_dir`]); none is shipped, and no file there means no manual flags.

use std::ops::Range;
use std::path::{Path, PathBuf};

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::dq;

/// One parsed row: full-frame, half-open ranges, the flag value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManualEntry {
    pub line: usize,
    pub xs: Range<usize>,
    pub ys: Range<usize>,
    /// The upper-case mnemonic.
    pub flag: String,
    pub value: u32,
}

/// Where `manual_flag_file: default` looks: `$MKREFS_DATA_DIR/manual_flags`, else
/// `$XDG_DATA_HOME/mkrefs/manual_flags`, else `~/.local/share/mkrefs/manual_flags`.
pub fn data_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("MKREFS_DATA_DIR") {
        return Some(d.join("manual_flags"));
    }
    if let Some(d) = env("XDG_DATA_HOME") {
        return Some(d.join("mkrefs").join("manual_flags"));
    }
    env("HOME").map(|h| h.join(".local/share/mkrefs/manual_flags"))
}

/// The default file name of a detector, e.g. `nircam_nrca1_manual_flags.txt`.
pub fn default_file_name(instrument: &str, detector: &str) -> String {
    format!(
        "{}_{}_manual_flags.txt",
        instrument.trim().to_ascii_lowercase(),
        detector.trim().to_ascii_lowercase()
    )
}

/// What the `manual_flag_file` parameter selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ManualSource {
    /// `''`/`none`: no manual flags.
    Off,
    /// `default`: the data-directory file of the detector, if there is one.
    Default,
    /// A path given by the user; it must exist.
    File(PathBuf),
}

impl ManualSource {
    pub fn parse(v: Option<&str>) -> ManualSource {
        match v.map(str::trim) {
            None | Some("") => ManualSource::Off,
            Some(s) if s.eq_ignore_ascii_case("none") || s.eq_ignore_ascii_case("null") => {
                ManualSource::Off
            }
            Some(s) if s.eq_ignore_ascii_case("default") => ManualSource::Default,
            Some(s) => ManualSource::File(PathBuf::from(s)),
        }
    }

    /// The file to read, or `None` with the reason (for the log).
    pub fn resolve(&self, instrument: &str, detector: &str) -> Result<PathBuf, String> {
        match self {
            ManualSource::Off => Err("manual_flag_file is empty: no manual flags".into()),
            ManualSource::File(p) => Ok(p.clone()),
            ManualSource::Default => {
                let name = default_file_name(instrument, detector);
                match data_dir() {
                    Some(d) if d.join(&name).is_file() => Ok(d.join(name)),
                    Some(d) => Err(format!(
                        "manual_flag_file: default: no {name} in {} (set MKREFS_DATA_DIR or \
                         XDG_DATA_HOME to use one): no manual flags",
                        d.display()
                    )),
                    None => Err(format!(
                        "manual_flag_file: default: no data directory (neither MKREFS_DATA_DIR, \
                         XDG_DATA_HOME nor HOME is set), so no {name}: no manual flags"
                    )),
                }
            }
        }
    }
}

/// Parses a manual flag file's text for a full frame of `full_ny × full_nx` pixels. Flags listed
/// in `do_not_use` (upper-case) also get DO_NOT_USE. `name` is used in messages.
pub fn parse(
    text: &str,
    name: &str,
    full_ny: usize,
    full_nx: usize,
    do_not_use: &[String],
) -> Result<Vec<ManualEntry>, GeneratorError> {
    let err = |line: usize, col: usize, msg: String| {
        GeneratorError::invalid_input(format!(
            "manual flag file {name}, line {line}, column {col}: {msg}"
        ))
    };
    let mut columns: Option<[usize; 3]> = None;
    let mut out = Vec::new();
    for (idx, raw) in text.lines().enumerate() {
        let line = idx + 1;
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        // Tokens with their 1-based character column.
        let mut tokens: Vec<(usize, &str)> = Vec::new();
        let mut start = None;
        for (i, c) in raw.char_indices() {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    tokens.push((s, &raw[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            tokens.push((s, &raw[s..]));
        }
        let col = |byte: usize| raw[..byte].chars().count() + 1;
        let Some(cols) = columns else {
            let names: Vec<String> = tokens.iter().map(|t| t.1.to_ascii_lowercase()).collect();
            let find = |n: &str| names.iter().position(|t| t == n);
            match (find("x"), find("y"), find("flag")) {
                (Some(x), Some(y), Some(f)) if names.len() == 3 => columns = Some([x, y, f]),
                _ => {
                    return Err(err(
                        line,
                        1,
                        format!(
                            "expected the header line 'x y flag' (the first line that is not a \
                             comment), got '{}'",
                            raw.trim()
                        ),
                    ));
                }
            }
            continue;
        };
        if tokens.len() != 3 {
            let c = tokens.get(3).map_or(raw.chars().count() + 1, |t| col(t.0));
            return Err(err(
                line,
                c,
                format!(
                    "expected 3 columns (x y flag), found {}: '{}'",
                    tokens.len(),
                    raw.trim()
                ),
            ));
        }
        let [cx, cy, cf] = cols;
        let (fpos, ftext) = tokens[cf];
        let flag = ftext.to_ascii_uppercase();
        let Some(mut value) = dq::flag_value(&flag).filter(|_| flag != "GOOD") else {
            return Err(err(
                line,
                col(fpos),
                format!("unknown DQ flag mnemonic '{ftext}' (use e.g. DEAD, HOT, LOW_QE, OPEN)"),
            ));
        };
        if do_not_use.iter().any(|d| d.eq_ignore_ascii_case(&flag)) {
            value |= dq::DO_NOT_USE;
        }
        let range = |(pos, cell): (usize, &str), dim: usize, axis: &str| {
            parse_cell(cell, dim).map_err(|m| err(line, col(pos), format!("{axis} {m}")))
        };
        out.push(ManualEntry {
            line,
            xs: range(tokens[cx], full_nx, "x")?,
            ys: range(tokens[cy], full_ny, "y")?,
            flag,
            value,
        });
    }
    if columns.is_none() {
        return Err(err(
            1,
            1,
            "no header line 'x y flag' (the file is empty or all comments)".into(),
        ));
    }
    Ok(out)
}

/// One cell as a half-open range within `0..dim`.
fn parse_cell(cell: &str, dim: usize) -> Result<Range<usize>, String> {
    let num = |s: &str| -> Result<usize, String> {
        s.parse::<usize>().map_err(|_| {
            format!("'{cell}' is not a pixel index or range (an integer >= 0, or a:b, a:, :b, :)")
        })
    };
    let outside = || {
        format!(
            "'{cell}' lies outside the full frame (indices 0..{})",
            dim.saturating_sub(1)
        )
    };
    // The inclusive end made exclusive; usize::MAX has no next index and is past any frame.
    let end_of = |v: usize| v.checked_add(1).ok_or_else(outside);
    let (a, b) = match cell.split_once(':') {
        None => {
            let v = num(cell)?;
            (v, end_of(v)?)
        }
        Some((s, e)) => {
            let a = if s.is_empty() { 0 } else { num(s)? };
            let b = if e.is_empty() { dim } else { end_of(num(e)?)? };
            (a, b)
        }
    };
    if a >= b {
        return Err(format!(
            "range '{cell}' is empty (its end is before its start)"
        ));
    }
    if b > dim {
        return Err(outside());
    }
    Ok(a..b)
}

/// The DQ map (`sub_ny × sub_nx`) of the entries, for a window whose first pixel is full-frame
/// pixel (`y0`, `x0`) (0-based). Entries outside the window are left out.
pub fn to_map(
    entries: &[ManualEntry],
    y0: usize,
    x0: usize,
    sub_ny: usize,
    sub_nx: usize,
) -> Vec<u32> {
    let mut map = vec![0u32; sub_ny * sub_nx];
    let clip = |r: &Range<usize>, off: usize, n: usize| {
        r.start.max(off).saturating_sub(off)..r.end.min(off + n).saturating_sub(off)
    };
    for e in entries {
        let (ys, xs) = (clip(&e.ys, y0, sub_ny), clip(&e.xs, x0, sub_nx));
        for y in ys {
            for x in xs.clone() {
                map[y * sub_nx + x] |= e.value;
            }
        }
    }
    map
}

/// Reads and parses a manual flag file.
pub fn read(
    path: &Path,
    full_ny: usize,
    full_nx: usize,
    do_not_use: &[String],
) -> Result<Vec<ManualEntry>, GeneratorError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        GeneratorError::invalid_input(format!(
            "cannot read manual flag file {}: {e}; fix manual_flag_file (a path, 'default' or '')",
            path.display()
        ))
    })?;
    parse(
        &text,
        &path.display().to_string(),
        full_ny,
        full_nx,
        do_not_use,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// upstream's FGS placeholder file, minus the invalid 'wonky' row (an error here).
    const FGS: &str =
        "# Manual flags\n# x, y ranges\nx y flag\n1023 1023 dead\n0:2047 0 dead\n0 0:2047 low_qe\n";

    #[test]
    fn fgs_example_of_the_spec() {
        let dnu = vec!["DEAD".to_string()];
        let e = parse(FGS, "fgs", 2048, 2048, &dnu).unwrap();
        assert_eq!(e.len(), 3);
        let m = to_map(&e, 0, 0, 2048, 2048);
        let at = |y: usize, x: usize| m[y * 2048 + x];
        assert_eq!(at(0, 5), 1025);
        assert_eq!(at(0, 2047), 1025);
        assert_eq!(at(7, 0), 8192);
        assert_eq!(at(0, 0), 9217);
        assert_eq!(at(1023, 1023), 1025);
        assert_eq!(at(5, 5), 0);
        assert_eq!(m.iter().filter(|&&v| v != 0).count(), 2048 + 2047 + 1);
    }

    #[test]
    fn miri_columns_and_open_ranges() {
        let t = "x y flag\n384:385  :  UNRELIABLE_SLOPE\n1030: 1023 hot\n";
        let e = parse(t, "miri", 1024, 1032, &[]).unwrap();
        let m = to_map(&e, 0, 0, 1024, 1032);
        for y in [0, 500, 1023] {
            assert_eq!(m[y * 1032 + 384], dq::UNRELIABLE_SLOPE);
            assert_eq!(m[y * 1032 + 385], dq::UNRELIABLE_SLOPE);
            assert_eq!(m[y * 1032 + 386], 0);
        }
        assert_eq!(m[1023 * 1032 + 1030], dq::HOT);
        assert_eq!(m[1023 * 1032 + 1031], dq::HOT);
        assert_eq!(m[1022 * 1032 + 1031], 0);
    }

    #[test]
    fn header_only_and_column_order() {
        assert!(
            parse("# nothing\nx y flag\n", "f", 10, 10, &[])
                .unwrap()
                .is_empty()
        );
        let e = parse("flag x y\nOPEN 3 4\n", "f", 10, 10, &[]).unwrap();
        assert_eq!((e[0].xs.clone(), e[0].ys.clone()), (3..4, 4..5));
        assert_eq!(e[0].value, dq::OPEN);
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse("x y flag\n1 2 DEAD\n3 4 WONKY\n", "f.txt", 10, 10, &[]).unwrap_err();
        assert!(
            e.message.contains("f.txt, line 3, column 5") && e.message.contains("WONKY"),
            "{e}"
        );
        let e = parse("x y flag\n  1 two DEAD\n", "f", 10, 10, &[]).unwrap_err();
        assert!(e.message.contains("line 2, column 5"), "{e}");
        let e = parse("x y flag\n1 2\n", "f", 10, 10, &[]).unwrap_err();
        assert!(
            e.message.contains("line 2") && e.message.contains("3 columns"),
            "{e}"
        );
        let e = parse("x y flag\n12 2 DEAD\n", "f", 10, 10, &[]).unwrap_err();
        assert!(e.message.contains("outside the full frame"), "{e}");
        let e = parse("x y flag\n5:3 2 DEAD\n", "f", 10, 10, &[]).unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = parse("x y flags\n", "f", 10, 10, &[]).unwrap_err();
        assert!(
            e.message.contains("line 1") && e.message.contains("header"),
            "{e}"
        );
        let e = parse("x y flag\n-1 2 DEAD\n", "f", 10, 10, &[]).unwrap_err();
        assert!(e.message.contains("column 1"), "{e}");
    }

    /// Found by the fuzz target (tests/manual_fuzz.rs): the largest index overflowed when its
    /// inclusive end was made exclusive (a panic in debug builds, an "empty range" in release).
    #[test]
    fn the_largest_index_is_outside_the_frame_not_an_overflow() {
        let e = parse(
            "x y flag\n0:+3 0:18446744073709551615 DEAD \n",
            "f",
            1,
            4,
            &[],
        )
        .unwrap_err();
        assert!(e.message.contains("outside the full frame"), "{e}");
        let e = parse("x y flag\n18446744073709551615 0 DEAD\n", "f", 4, 4, &[]).unwrap_err();
        assert!(e.message.contains("outside the full frame"), "{e}");
    }

    #[test]
    fn subarray_window_mapping() {
        let e = parse("x y flag\n10:12 20 DEAD\n0 0 HOT\n", "f", 64, 64, &[]).unwrap();
        // Window starting at full-frame (y=20, x=11), 4×4.
        let m = to_map(&e, 20, 11, 4, 4);
        assert_eq!(m[0], dq::DEAD);
        assert_eq!(m[1], dq::DEAD);
        assert_eq!(m[2], 0);
        assert_eq!(m.iter().filter(|&&v| v != 0).count(), 2);
    }

    #[test]
    fn sources() {
        assert_eq!(ManualSource::parse(Some("")), ManualSource::Off);
        assert_eq!(ManualSource::parse(None), ManualSource::Off);
        assert_eq!(ManualSource::parse(Some("Default")), ManualSource::Default);
        assert_eq!(
            ManualSource::parse(Some("/a/b.txt")),
            ManualSource::File("/a/b.txt".into())
        );
        assert_eq!(
            default_file_name("NIRCam", "NRCA1"),
            "nircam_nrca1_manual_flags.txt"
        );
    }
}
