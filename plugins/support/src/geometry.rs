//! Detector knowledge: instruments, detectors, subarrays, reference pixels and orientation.
//!
//! Conventions. Images are row-major `[y][x]` in DMS/science orientation (`UPSTREAM.md`,
//! "Array layout").
//! A [`Subarray`] is placed by SUBSTRT1 (`xstart`) and SUBSTRT2 (`ystart`), **1-based** full-frame
//! coordinates of its first pixel in the same DMS orientation, as in JWST headers; SUBSIZE1/2 are
//! `nx`/`ny`. Subarray pixel `(y, x)` is full-frame pixel `(ystart - 1 + y, xstart - 1 + x)`.

use std::fmt;

use crate::pipeline_steps::Step;
pub use crate::profile::Flip;
use crate::profile::{Family, Profile, profiles};

/// An instrument: a handle to its profile ([`crate::profile`]). The JWST instruments and TMT
/// IRIS have constants, in the order of the bundled profiles; an instrument of a user's
/// profile is found by name ([`Instrument::from_header`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Instrument(u16);

#[allow(non_upper_case_globals)]
impl Instrument {
    pub const NirCam: Instrument = Instrument(0);
    pub const NirIss: Instrument = Instrument(1);
    pub const NirSpec: Instrument = Instrument(2);
    pub const Miri: Instrument = Instrument(3);
    pub const Fgs: Instrument = Instrument(4);
    pub const Iris: Instrument = Instrument(5);
}

impl Instrument {
    /// The instrument an INSTRUME value (or a configured name such as `NIRCam`) names,
    /// case-insensitively; `None` when no profile has it.
    pub fn from_header(value: &str) -> Option<Instrument> {
        profiles()
            .iter()
            .position(|p| p.is_named(value))
            .map(|i| Instrument(i as u16))
    }

    /// Its profile.
    pub fn profile(self) -> &'static Profile {
        &profiles()[self.0 as usize]
    }

    /// Every instrument with a profile, in order.
    pub fn all() -> impl Iterator<Item = Instrument> {
        (0..profiles().len()).map(|i| Instrument(i as u16))
    }

    /// The INSTRUME value written to FITS (upper case).
    pub fn name(self) -> &'static str {
        &self.profile().instrument
    }

    /// The TELESCOP value of its files.
    pub fn telescope(self) -> &'static str {
        &self.profile().telescope
    }

    /// Near-infrared (a reference-pixel border on all four sides): everything but MIRI.
    pub fn is_nir(self) -> bool {
        self.profile().family == Family::NearInfrared
    }

    /// The prefix of this instrument's EXP_TYPE values (`NRC_DARK`, `MIR_FLATIMAGE`, ...).
    pub fn exp_type_prefix(self) -> &'static str {
        &self.profile().exp_type_prefix
    }

    /// The instrument's calwebb_detector1 steps in pipeline order (from its profile; see
    /// `UPSTREAM.md`, "Calibration steps", for the JWST ones).
    pub fn steps(self) -> &'static [Step] {
        &self.profile().steps
    }

    /// Position of `step` in this instrument's pipeline, `None` if it does not run the step.
    pub fn position(self, step: Step) -> Option<usize> {
        self.steps().iter().position(|s| *s == step)
    }

    /// The steps as a readable comma list, for error messages.
    pub fn step_names(self) -> String {
        self.steps()
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every instrument's usual name, for messages (`NIRCam, NIRISS, ...`).
    pub fn known_names() -> String {
        profiles()
            .iter()
            .map(|p| p.names.first().unwrap_or(&p.instrument).as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Instrument {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fixed facts about one detector, from its instrument's profile.
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
    /// Width of the reference strips: rows at the bottom and top, columns at the left and
    /// right (MIRI: 0 and 4).
    pub refpix_rows: usize,
    pub refpix_columns: usize,
    /// The flip from DMS to detector (readout) orientation.
    pub flip: Flip,
}

/// Facts about a detector by DETECTOR value (case-insensitive), or by an alias its profile
/// gives (`NRCA5`/`NRCB5` for NRCALONG/NRCBLONG). `None` for a name no profile has.
pub fn detector_info(name: &str) -> Option<DetectorInfo> {
    let n = name.trim().to_ascii_uppercase();
    Instrument::all().find_map(|instrument| {
        let p = instrument.profile();
        let canonical = p
            .detector_aliases
            .iter()
            .find(|(alias, _)| *alias == n)
            .map_or(n.as_str(), |(_, d)| d.as_str());
        let d = p.detectors.iter().find(|d| d.name == canonical)?;
        Some(DetectorInfo {
            name: &d.name,
            instrument,
            fastaxis: d.fastaxis,
            slowaxis: d.slowaxis,
            full_ny: p.frame_ny,
            full_nx: p.frame_nx,
            refpix_rows: p.refpix_rows,
            refpix_columns: p.refpix_columns,
            flip: d.flip,
        })
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
/// The profile gives the reference strips: NIR detectors have a 4-pixel border on all four sides
/// of the full frame; MIRI has 4 reference columns on the left and right of its 1032-column frame
/// and no reference rows. A subarray has reference pixels only where it overlaps those strips, so
/// the science pixels always form this one box (empty, `y0 == y1` or `x0 == x1`, for a window
/// lying wholly in a strip).
pub fn science_region(det: &DetectorInfo, sub: &Subarray) -> (usize, usize, usize, usize) {
    let (y0, y1) = inner_range(
        sub.ystart.saturating_sub(1),
        sub.ny,
        det.full_ny,
        det.refpix_rows,
    );
    let (x0, x1) = inner_range(
        sub.xstart.saturating_sub(1),
        sub.nx,
        det.full_nx,
        det.refpix_columns,
    );
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
/// single_value option applies it (`UPSTREAM.md`, "Readout orientation"), from the profile:
/// x for NRCA1, NRCA3, NRCALONG, NRCB2, NRCB4; y for NRCA2, NRCA4, NRCB1, NRCB3, NRCBLONG;
/// none for any other detector (upstream leaves those as they are, with a message).
pub fn dms_to_detector_flip(detector: &str) -> Flip {
    detector_info(detector).map_or(Flip::None, |d| d.flip)
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
        assert_eq!(Instrument::from_header("iris"), Some(Instrument::Iris));
        assert_eq!(Instrument::Iris.telescope(), "TMT");
    }

    #[test]
    fn detector_table() {
        let jwst: usize = Instrument::all()
            .filter(|i| i.telescope() == "JWST")
            .map(|i| i.profile().detectors.len())
            .sum();
        assert_eq!(jwst, 18);
        let iris = detector_info("iris1").unwrap();
        assert_eq!(
            (
                iris.instrument,
                iris.full_ny,
                iris.full_nx,
                iris.refpix_rows
            ),
            (Instrument::Iris, 4096, 4096, 4)
        );
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
