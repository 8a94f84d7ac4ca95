//! The HDU layout of a FITS file read from its headers alone, and whether the file holds all
//! the data its headers announce. cfitsio opens a truncated file without complaint and fails
//! only when the missing pixels are read, possibly deep inside a long job; this check costs one
//! read of each header block.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

const BLOCK: u64 = 2880;
const CARD: usize = 80;

/// One HDU as its header describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HduLayout {
    /// EXTNAME, or `PRIMARY` for the first HDU without one.
    pub name: String,
    pub bitpix: i64,
    /// NAXIS1.. in FITS order (fastest axis first).
    pub naxes: Vec<u64>,
    /// Byte offset of the data, and its size without padding.
    pub data_start: u64,
    pub data_bytes: u64,
}

impl HduLayout {
    /// The axes in C order (slowest first), as the jwst data models give shapes.
    pub fn shape(&self) -> Vec<u64> {
        self.naxes.iter().rev().copied().collect()
    }
}

/// An integer value as cfitsio reads it: the first word of the value field (cfitsio ignores
/// what follows a space), so that the sizes checked here are the sizes cfitsio will use.
fn card_int(card: &str) -> Option<i64> {
    let value = card.get(10..)?.split('/').next()?;
    value.split_whitespace().next()?.parse().ok()
}

fn card_str(card: &str) -> Option<String> {
    let value = card.get(10..)?.trim();
    let inner = value.strip_prefix('\'')?;
    let end = inner.find('\'')?;
    Some(inner[..end].trim_end().to_string())
}

/// The most axes a FITS HDU may have (NAXIS is 0 to 999).
const MAX_NAXIS: i64 = 999;

/// The size of an HDU's data and that size padded to whole blocks, or `None` when the header
/// announces more bytes than a `u64` counts (a damaged header must not overflow).
fn data_size(bitpix: i64, gcount: u64, pcount: u64, naxes: &[u64]) -> Option<(u64, u64)> {
    let elements = if naxes.is_empty() {
        0
    } else {
        naxes.iter().try_fold(1u64, |acc, &n| acc.checked_mul(n))?
    };
    let data_bytes = (bitpix.unsigned_abs() / 8)
        .checked_mul(gcount)?
        .checked_mul(elements.checked_add(pcount)?)?;
    let padded = data_bytes.div_ceil(BLOCK).checked_mul(BLOCK)?;
    // cfitsio counts bytes in a signed 64-bit integer: a larger size turns negative there and
    // makes it walk back to the same header forever.
    (padded <= i64::MAX as u64).then_some((data_bytes, padded))
}

/// Checks that no header of `path` announces an impossible size (more than 999 axes, more
/// data than a signed 64-bit count holds), which cfitsio would loop on or overflow with. A file
/// that is cut short or not FITS passes: the reader that follows says what is wrong with it.
pub fn check_sizes(path: &Path) -> Result<(), String> {
    match layout(path) {
        Err(Problem::Damaged(message)) => Err(message),
        _ => Ok(()),
    }
}

/// Why [`layout`] stopped: a header that announces the impossible, or anything else.
enum Problem {
    Damaged(String),
    Other(String),
}

/// Reads every header of `path` and checks that the file is long enough for all the data they
/// announce. Errors say which HDU is cut short and by how much.
pub fn read_layout(path: &Path) -> Result<Vec<HduLayout>, String> {
    layout(path).map_err(|(Problem::Damaged(m) | Problem::Other(m))| m)
}

fn layout(path: &Path) -> Result<Vec<HduLayout>, Problem> {
    let other = |m: String| Problem::Other(m);
    let mut file =
        File::open(path).map_err(|e| other(format!("cannot open {}: {e}", path.display())))?;
    let len = file
        .metadata()
        .map_err(|e| other(format!("cannot stat {}: {e}", path.display())))?
        .len();
    let mut hdus = Vec::new();
    let mut offset = 0u64;
    while offset < len {
        let index = hdus.len();
        let mut name = None;
        let (mut bitpix, mut naxis, mut pcount, mut gcount) = (None, 0usize, 0u64, 1u64);
        let mut naxes: Vec<u64> = Vec::new();
        let mut block = vec![0u8; BLOCK as usize];
        let mut ended = false;
        while !ended {
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut block))
                .map_err(|_| {
                    other(format!(
                        "{} is truncated: the header of HDU {index} is cut off at byte {len}",
                        path.display()
                    ))
                })?;
            offset += BLOCK;
            for raw in block.chunks(CARD) {
                let card = String::from_utf8_lossy(raw);
                let key = card.get(..8).unwrap_or("").trim_end();
                match key {
                    "END" => {
                        ended = true;
                        break;
                    }
                    "BITPIX" => bitpix = card_int(&card),
                    "NAXIS" => {
                        let n = card_int(&card).unwrap_or(0).max(0);
                        if n > MAX_NAXIS {
                            return Err(Problem::Damaged(format!(
                                "{}: HDU {index} has NAXIS = {n}, but FITS allows at most \
                                 {MAX_NAXIS} axes; the header is damaged",
                                path.display()
                            )));
                        }
                        naxis = n as usize;
                        naxes = vec![0; naxis];
                    }
                    "PCOUNT" => pcount = card_int(&card).unwrap_or(0).max(0) as u64,
                    "GCOUNT" => gcount = card_int(&card).unwrap_or(1).max(1) as u64,
                    "EXTNAME" => name = card_str(&card),
                    k if k.starts_with("NAXIS") => {
                        if let Ok(n) = k[5..].parse::<usize>()
                            && (1..=naxis).contains(&n)
                        {
                            naxes[n - 1] = card_int(&card).unwrap_or(0).max(0) as u64;
                        }
                    }
                    _ => {}
                }
            }
        }
        let Some(bitpix) = bitpix else {
            return Err(other(format!(
                "{}: HDU {index} has no BITPIX; the file is damaged",
                path.display()
            )));
        };
        let name = name.unwrap_or_else(|| {
            if index == 0 {
                "PRIMARY".to_string()
            } else {
                format!("HDU {index}")
            }
        });
        // cfitsio counts positions in the file in a signed 64-bit integer too: the end of this
        // HDU's data must fit in one, or the position of the next HDU turns negative.
        let sized = data_size(bitpix, gcount, pcount, &naxes).filter(|&(_, padded)| {
            offset
                .checked_add(padded)
                .is_some_and(|e| e <= i64::MAX as u64)
        });
        let Some((data_bytes, padded)) = sized else {
            return Err(Problem::Damaged(format!(
                "{}: HDU {index} ({name}) announces more data than a file can hold (NAXISn \
                 {naxes:?}, BITPIX {bitpix}, PCOUNT {pcount}, GCOUNT {gcount}); the header is \
                 damaged",
                path.display()
            )));
        };
        if offset.saturating_add(data_bytes) > len {
            return Err(other(format!(
                "{} is truncated: HDU {index} ({name}) needs {} bytes of data but the file ends \
                 {} bytes after its header",
                path.display(),
                data_bytes,
                len - offset
            )));
        }
        hdus.push(HduLayout {
            name,
            bitpix,
            naxes,
            data_start: offset,
            data_bytes,
        });
        offset = offset.saturating_add(padded);
    }
    if hdus.is_empty() {
        return Err(other(format!("{} is empty", path.display())));
    }
    Ok(hdus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fits::FitsWriter;

    fn sample(dir: &Path) -> std::path::PathBuf {
        let path = dir.join("x.fits");
        let mut w = FitsWriter::create(&path).unwrap();
        w.write_image::<f32>("SCI", &[2, 3, 4, 5], &vec![1.0; 120])
            .unwrap();
        w.write_image::<u8>("GROUPDQ", &[2, 3, 4, 5], &[0; 120])
            .unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn reads_names_and_shapes() {
        let dir = tempfile::tempdir().unwrap();
        let layout = read_layout(&sample(dir.path())).unwrap();
        let names: Vec<&str> = layout.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["PRIMARY", "SCI", "GROUPDQ"]);
        assert_eq!(layout[1].shape(), [2, 3, 4, 5]);
        assert_eq!(layout[1].bitpix, -32);
        assert_eq!(layout[2].data_bytes, 120);
    }

    /// A primary header of the given cards, END and blank padding to one block.
    fn header_only(dir: &Path, cards: &[&str]) -> std::path::PathBuf {
        let mut bytes: Vec<u8> = Vec::new();
        for c in cards.iter().chain(&["END"]) {
            bytes.extend(format!("{c:<80}").bytes());
        }
        bytes.resize(BLOCK as usize, b' ');
        let path = dir.join("h.fits");
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Found by the fuzz target (tests/fits_fuzz.rs): a huge NAXIS made the reader allocate
    /// 32 GiB for the axis list and abort the process.
    #[test]
    fn an_impossible_naxis_is_an_error_not_an_allocation() {
        let dir = tempfile::tempdir().unwrap();
        let path = header_only(
            dir.path(),
            &["SIMPLE  = T", "BITPIX  = 8", "NAXIS   = 4294967297"],
        );
        let e = read_layout(&path).unwrap_err();
        assert!(e.contains("NAXIS = 4294967297") && e.contains("999"), "{e}");
    }

    /// Seen while fixing the case above: axis lengths whose product overflows made the size
    /// computation panic (debug) or wrap to a small size (release).
    #[test]
    fn axes_that_overflow_the_data_size_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = header_only(
            dir.path(),
            &[
                "SIMPLE  = T",
                "BITPIX  = 16",
                "NAXIS   = 2",
                "NAXIS1  = 9223372036854775807",
                "NAXIS2  = 4",
            ],
        );
        let e = read_layout(&path).unwrap_err();
        assert!(e.contains("more data than a file can hold"), "{e}");
    }

    #[test]
    fn a_cut_file_names_the_hdu_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let path = sample(dir.path());
        let len = std::fs::metadata(&path).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 2880).unwrap();
        let e = read_layout(&path).unwrap_err();
        assert!(e.contains("truncated") && e.contains("GROUPDQ"), "{e}");
        f.set_len(100).unwrap();
        let e = read_layout(&path).unwrap_err();
        assert!(e.contains("header of HDU 0"), "{e}");
    }
}
