//! Detector knowledge: instruments, detectors, subarrays, reference pixels and orientation.
//!
//! Conventions. Images are row-major `[y][x]` in DMS/science orientation (`UPSTREAM.md`,
//! "Array layout").
//! A [`Subarray`] is placed by SUBSTRT1 (`xstart`) and SUBSTRT2 (`ystart`), **1-based** full-frame
//! coordinates of its first pixel in the same DMS orientation, as in JWST headers; SUBSIZE1/2 are
//! `nx`/`ny`. Subarray pixel `(y, x)` is full-frame pixel `(ystart - 1 + y, xstart - 1 + x)`.

use std::fmt;

/// The JWST instruments, as in the INSTRUME keyword.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Instrument {
    NirCam,
    NirIss,
    NirSpec,
    Miri,
    Fgs,
}

impl Instrument {
    /// Parse an INSTRUME value, case-insensitively (`NIRCAM`, `NIRCam`, `nircam`, ...).
    pub fn from_header(value: &str) -> Option<Instrument> {
        let v = value.trim().to_ascii_uppercase();
        Some(match v.as_str() {
            "NIRCAM" => Instrument::NirCam,
            "NIRISS" => Instrument::NirIss,
            "NIRSPEC" => Instrument::NirSpec,
            "MIRI" => Instrument::Miri,
            "FGS" => Instrument::Fgs,
            _ => return None,
        })
    }

    /// The INSTRUME value written to FITS (upper case).
    pub fn name(self) -> &'static str {
        match self {
            Instrument::NirCam => "NIRCAM",
            Instrument::NirIss => "NIRISS",
            Instrument::NirSpec => "NIRSPEC",
            Instrument::Miri => "MIRI",
            Instrument::Fgs => "FGS",
        }
    }

    /// Near-infrared (HgCdTe, 2048×2048 with a 4-pixel reference border): everything but MIRI.
    pub fn is_nir(self) -> bool {
        self != Instrument::Miri
    }

    /// The prefix of this instrument's EXP_TYPE values (`NRC_DARK`, `MIR_FLATIMAGE`, ...).
    pub fn exp_type_prefix(self) -> &'static str {
        match self {
            Instrument::NirCam => "NRC",
            Instrument::NirIss => "NIS",
            Instrument::NirSpec => "NRS",
            Instrument::Miri => "MIR",
            Instrument::Fgs => "FGS",
        }
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fixed facts about one detector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DetectorInfo {
    /// DETECTOR keyword value (canonical upper case, e.g. `NRCALONG`).
    pub name: &'static str,
    pub instrument: Instrument,
    /// FASTAXIS/SLOWAXIS of the detector (`UPSTREAM.md`, "Reference-file metadata").
    pub fastaxis: i32,
    pub slowaxis: i32,
    /// Full-frame size in DMS orientation, reference pixels included.
    pub full_ny: usize,
    pub full_nx: usize,
}

/// Width of the reference-pixel border (NIR: all four sides; MIRI: left and right columns only).
pub const REFPIX_WIDTH: usize = 4;

const DETECTORS: &[(&str, Instrument, i32, i32)] = &[
    ("NRCA1", Instrument::NirCam, -1, 2),
    ("NRCA2", Instrument::NirCam, 1, -2),
    ("NRCA3", Instrument::NirCam, -1, 2),
    ("NRCA4", Instrument::NirCam, 1, -2),
    ("NRCALONG", Instrument::NirCam, -1, 2),
    ("NRCB1", Instrument::NirCam, 1, -2),
    ("NRCB2", Instrument::NirCam, -1, 2),
    ("NRCB3", Instrument::NirCam, 1, -2),
    ("NRCB4", Instrument::NirCam, -1, 2),
    ("NRCBLONG", Instrument::NirCam, 1, -2),
    ("NRS1", Instrument::NirSpec, 2, 1),
    ("NRS2", Instrument::NirSpec, -2, -1),
    ("NIS", Instrument::NirIss, -2, -1),
    ("GUIDER1", Instrument::Fgs, -2, -1),
    ("GUIDER2", Instrument::Fgs, 2, -1),
    ("MIRIMAGE", Instrument::Miri, 1, 2),
    ("MIRIFULONG", Instrument::Miri, 1, 2),
    ("MIRIFUSHORT", Instrument::Miri, 1, 2),
];

/// Facts about a detector by DETECTOR value (case-insensitive). `NRCA5`/`NRCB5`, the numbering used
/// in some file names, are accepted for NRCALONG/NRCBLONG. `None` for an unknown name.
pub fn detector_info(name: &str) -> Option<DetectorInfo> {
    let mut n = name.trim().to_ascii_uppercase();
    match n.as_str() {
        "NRCA5" => n = "NRCALONG".to_string(),
        "NRCB5" => n = "NRCBLONG".to_string(),
        _ => {}
    }
    let &(name, instrument, fastaxis, slowaxis) = DETECTORS.iter().find(|d| d.0 == n)?;
    let (full_ny, full_nx) = if instrument == Instrument::Miri {
        (1024, 1032)
    } else {
        (2048, 2048)
    };
    Some(DetectorInfo {
        name,
        instrument,
        fastaxis,
        slowaxis,
        full_ny,
        full_nx,
    })
}

/// A readout window. `xstart`/`ystart` are SUBSTRT1/SUBSTRT2: 1-based, DMS orientation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subarray {
    pub name: String,
    pub xstart: usize,
    pub ystart: usize,
    pub nx: usize,
    pub ny: usize,
}

impl Subarray {
    /// The full frame of `det` (SUBARRAY = 'FULL', SUBSTRT = 1).
    pub fn full_frame(det: &DetectorInfo) -> Subarray {
        Subarray {
            name: "FULL".to_string(),
            xstart: 1,
            ystart: 1,
            nx: det.full_nx,
            ny: det.full_ny,
        }
    }

    /// Whether the window is non-empty, starts at 1 or later, and lies inside the full frame.
    pub fn check(&self, det: &DetectorInfo) -> Result<(), String> {
        let ok = self.xstart >= 1
            && self.ystart >= 1
            && self.nx >= 1
            && self.ny >= 1
            && self.xstart - 1 + self.nx <= det.full_nx
            && self.ystart - 1 + self.ny <= det.full_ny;
        if ok {
            Ok(())
        } else {
            Err(format!(
                "subarray {} (SUBSTRT1={}, SUBSTRT2={}, SUBSIZE1={}, SUBSIZE2={}) does not fit the \
                 {}x{} frame of {}",
                self.name,
                self.xstart,
                self.ystart,
                self.nx,
                self.ny,
                det.full_nx,
                det.full_ny,
                det.name
            ))
        }
    }
}

/// Half-open index range, in subarray coordinates of length `len` starting at full-frame offset
/// `start0` (0-based), of the pixels outside reference strips `[0, w)` and `[full - w, full)`.
fn inner_range(start0: usize, len: usize, full: usize, w: usize) -> (usize, usize) {
    let lo = w.saturating_sub(start0).min(len);
    let hi = (full.saturating_sub(w))
        .saturating_sub(start0)
        .clamp(lo, len);
    (lo, hi)
}

/// Bounding box `(y0, y1, x0, x1)` (half-open, subarray coordinates) of the non-reference pixels.
///
/// NIR detectors have a 4-pixel reference border on all four sides of the full frame; MIRI has 4
/// reference columns on the left and right of its 1032-column frame and no reference rows. A
/// subarray has reference pixels only where it overlaps those strips, so the science pixels always
/// form this one box (empty, `y0 == y1` or `x0 == x1`, for a window lying wholly in a strip).
pub fn science_region(det: &DetectorInfo, sub: &Subarray) -> (usize, usize, usize, usize) {
    let w = REFPIX_WIDTH;
    let (y0, y1) = if det.instrument.is_nir() {
        inner_range(sub.ystart.saturating_sub(1), sub.ny, det.full_ny, w)
    } else {
        (0, sub.ny)
    };
    let (x0, x1) = inner_range(sub.xstart.saturating_sub(1), sub.nx, det.full_nx, w);
    (y0, y1, x0, x1)
}

/// Row-major `ny × nx` map of the subarray, `true` on reference pixels (see [`science_region`]).
pub fn reference_pixel_mask(det: &DetectorInfo, sub: &Subarray) -> Vec<bool> {
    let (y0, y1, x0, x1) = science_region(det, sub);
    let mut mask = vec![true; sub.ny * sub.nx];
    for y in y0..y1 {
        mask[y * sub.nx + x0..y * sub.nx + x1].fill(false);
    }
    mask
}

/// The flip that takes a DMS-oriented image to detector (readout) orientation, as the readnoise
/// single_value option applies it (`UPSTREAM.md`, "Readout orientation").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flip {
    None,
    /// Reverse the columns (`V[:, ::-1]`).
    X,
    /// Reverse the rows (`V[::-1, :]`).
    Y,
}

/// x for NRCA1, NRCA3, NRCALONG, NRCB2, NRCB4; y for NRCA2, NRCA4, NRCB1, NRCB3,
/// NRCBLONG; none for any other detector (upstream leaves those as they are, with a message).
pub fn dms_to_detector_flip(detector: &str) -> Flip {
    match detector.trim().to_ascii_uppercase().as_str() {
        "NRCA1" | "NRCA3" | "NRCALONG" | "NRCA5" | "NRCB2" | "NRCB4" => Flip::X,
        "NRCA2" | "NRCA4" | "NRCB1" | "NRCB3" | "NRCBLONG" | "NRCB5" => Flip::Y,
        _ => Flip::None,
    }
}

/// Apply `flip` to a row-major `ny × nx` image, returning the flipped copy.
pub fn flip_image<T: Copy>(flip: Flip, data: &[T], ny: usize, nx: usize) -> Vec<T> {
    assert_eq!(data.len(), ny * nx, "image is not {ny}x{nx}");
    match flip {
        Flip::None => data.to_vec(),
        Flip::X => data
            .chunks_exact(nx.max(1))
            .flat_map(|row| row.iter().rev().copied())
            .collect(),
        Flip::Y => data
            .chunks_exact(nx.max(1))
            .rev()
            .flat_map(|row| row.iter().copied())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instruments() {
        for s in ["NIRCAM", "NIRCam", "nircam", " NIRCam "] {
            assert_eq!(Instrument::from_header(s), Some(Instrument::NirCam));
        }
        assert_eq!(
            Instrument::from_header("NIRSpec"),
            Some(Instrument::NirSpec)
        );
        assert_eq!(Instrument::from_header("HST"), None);
        let all = [
            Instrument::NirCam,
            Instrument::NirIss,
            Instrument::NirSpec,
            Instrument::Miri,
            Instrument::Fgs,
        ];
        for i in all {
            assert_eq!(Instrument::from_header(i.name()), Some(i));
        }
        assert!(!Instrument::Miri.is_nir() && Instrument::Fgs.is_nir());
        let prefixes: Vec<&str> = all.iter().map(|i| i.exp_type_prefix()).collect();
        assert_eq!(prefixes, ["NRC", "NIS", "NRS", "MIR", "FGS"]);
    }

    #[test]
    fn detector_table() {
        assert_eq!(DETECTORS.len(), 18);
        let axes = |n: &str| {
            let d = detector_info(n).unwrap();
            (d.fastaxis, d.slowaxis)
        };
        for n in ["NRCA1", "NRCA3", "NRCALONG", "NRCB2", "NRCB4"] {
            assert_eq!(axes(n), (-1, 2), "{n}");
        }
        for n in ["NRCA2", "NRCA4", "NRCB1", "NRCB3", "NRCBLONG"] {
            assert_eq!(axes(n), (1, -2), "{n}");
        }
        assert_eq!(axes("NRS1"), (2, 1));
        assert_eq!(axes("NRS2"), (-2, -1));
        assert_eq!(axes("NIS"), (-2, -1));
        assert_eq!(axes("GUIDER1"), (-2, -1));
        assert_eq!(axes("GUIDER2"), (2, -1));
        assert_eq!(axes("MIRIFUSHORT"), (1, 2));
        let m = detector_info("mirimage").unwrap();
        assert_eq!(
            (m.name, m.instrument, m.full_ny, m.full_nx),
            ("MIRIMAGE", Instrument::Miri, 1024, 1032)
        );
        let n = detector_info("nrca5").unwrap();
        assert_eq!((n.name, n.full_ny, n.full_nx), ("NRCALONG", 2048, 2048));
        assert_eq!(detector_info("NRCC1"), None);
    }

    fn count(mask: &[bool]) -> usize {
        mask.iter().filter(|&&b| b).count()
    }

    #[test]
    fn nir_full_frame_border() {
        let d = detector_info("NRCA1").unwrap();
        let full = Subarray::full_frame(&d);
        assert!(full.check(&d).is_ok());
        assert_eq!(science_region(&d, &full), (4, 2044, 4, 2044));
        let m = reference_pixel_mask(&d, &full);
        assert_eq!(count(&m), 2048 * 2048 - 2040 * 2040);
        assert!(m[0] && m[3 * 2048 + 1000] && m[2047 * 2048 + 2047]);
        assert!(!m[4 * 2048 + 4] && m[4 * 2048 + 3] && m[2043 * 2048 + 2044]);
    }

    #[test]
    fn nir_subarrays() {
        let d = detector_info("NRCB1").unwrap();
        let middle = Subarray {
            name: "SUB64".into(),
            xstart: 1000,
            ystart: 1000,
            nx: 64,
            ny: 64,
        };
        assert_eq!(science_region(&d, &middle), (0, 64, 0, 64));
        assert_eq!(count(&reference_pixel_mask(&d, &middle)), 0);
        // Touching the bottom edge only: rows 0..4 are reference rows, no columns.
        let bottom = Subarray {
            name: "SUB160".into(),
            xstart: 1025,
            ystart: 1,
            nx: 160,
            ny: 160,
        };
        assert_eq!(science_region(&d, &bottom), (4, 160, 0, 160));
        let m = reference_pixel_mask(&d, &bottom);
        assert_eq!(count(&m), 4 * 160);
        assert!(m[3 * 160 + 77] && !m[4 * 160 + 77]);
        // Top-right corner: 2 reference rows and 3 reference columns overlap.
        let corner = Subarray {
            name: "C".into(),
            xstart: 2048 - 9,
            ystart: 2048 - 9,
            nx: 10,
            ny: 10,
        };
        assert!(corner.check(&d).is_ok());
        assert_eq!(science_region(&d, &corner), (0, 6, 0, 6));
        assert_eq!(count(&reference_pixel_mask(&d, &corner)), 100 - 36);
        // Wholly inside the left strip: all reference, empty science box.
        let strip = Subarray {
            name: "S".into(),
            xstart: 2,
            ystart: 500,
            nx: 2,
            ny: 8,
        };
        let (y0, y1, x0, x1) = science_region(&d, &strip);
        assert!(y0 < y1 && x0 == x1);
        assert_eq!(count(&reference_pixel_mask(&d, &strip)), 16);
        let outside = Subarray {
            name: "X".into(),
            xstart: 2000,
            ystart: 1,
            nx: 64,
            ny: 64,
        };
        assert!(outside.check(&d).unwrap_err().contains("does not fit"));
    }

    #[test]
    fn miri_reference_columns_only() {
        let d = detector_info("MIRIMAGE").unwrap();
        let full = Subarray::full_frame(&d);
        assert_eq!(science_region(&d, &full), (0, 1024, 4, 1028));
        let m = reference_pixel_mask(&d, &full);
        assert_eq!(count(&m), 8 * 1024);
        assert!(m[3] && !m[4] && !m[1027] && m[1028] && !m[1032 * 5 + 500]);
        // A MIRI subarray touching the left edge and the top row: only the 4 left columns.
        let brightsky = Subarray {
            name: "BRIGHTSKY".into(),
            xstart: 1,
            ystart: 513,
            nx: 512,
            ny: 512,
        };
        assert_eq!(science_region(&d, &brightsky), (0, 512, 4, 512));
    }

    #[test]
    fn flips() {
        assert_eq!(dms_to_detector_flip("NRCA1"), Flip::X);
        assert_eq!(dms_to_detector_flip("nrcblong"), Flip::Y);
        assert_eq!(dms_to_detector_flip("NRCB4"), Flip::X);
        assert_eq!(dms_to_detector_flip("NRCA4"), Flip::Y);
        assert_eq!(dms_to_detector_flip("NIS"), Flip::None);
        let img = [1, 2, 3, 4, 5, 6]; // 2 rows x 3 columns
        assert_eq!(flip_image(Flip::X, &img, 2, 3), [3, 2, 1, 6, 5, 4]);
        assert_eq!(flip_image(Flip::Y, &img, 2, 3), [4, 5, 6, 1, 2, 3]);
        assert_eq!(flip_image(Flip::None, &img, 2, 3), img);
    }
}
