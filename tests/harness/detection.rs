//! Per-class detection tables of a bad-pixel mask against the simulator's truth: for every
//! injected defect class, how many pixels the mask flags with the class's own flag and how many
//! it flags with another class's flag; for clean pixels, how often each flag is set. Shared so
//! that every test measuring a mask (a chain of calibrations, a generator alone) counts the
//! same way and the targets mean the same thing everywhere.

use mkrefs_sim::DefectClass;
use mkrefs_support::dq;

/// The flags the dark and flat searches set, with their names: a pixel carrying one of these
/// that its class does not explain is cross-flagged.
pub const DARK_FLAT_FLAGS: [(u32, &str); 8] = [
    (dq::HOT, "HOT"),
    (dq::RC, "RC"),
    (dq::TELEGRAPH, "TELEGRAPH"),
    (dq::OTHER_BAD_PIXEL, "OTHER_BAD_PIXEL"),
    (dq::DEAD, "DEAD"),
    (dq::LOW_QE, "LOW_QE"),
    (dq::OPEN, "OPEN"),
    (dq::ADJ_OPEN, "ADJ_OPEN"),
];

/// The union of [`DARK_FLAT_FLAGS`].
pub const DARK_FLAT_BITS: u32 = dq::HOT
    | dq::RC
    | dq::TELEGRAPH
    | dq::OTHER_BAD_PIXEL
    | dq::DEAD
    | dq::LOW_QE
    | dq::OPEN
    | dq::ADJ_OPEN;

/// The flag a mask must give a pixel of `class` for it to count as found: what the bad-pixel
/// search sets with its default `flag_values` (saturated pixels HOT, noisy pixels TELEGRAPH).
pub fn own_flag(class: DefectClass) -> u32 {
    match class {
        DefectClass::ReferencePixel => 0,
        c => c.expected_flag(),
    }
}

/// The injected classes: every class of the simulator but the reference pixels, which are
/// geometry, not defects.
pub fn defect_classes() -> Vec<DefectClass> {
    DefectClass::ALL
        .into_iter()
        .filter(|&c| c != DefectClass::ReferencePixel)
        .collect()
}

/// The own flags of every class the truth gives a pixel: flags the mask may set there without
/// the pixel counting as cross-flagged (the truth gives ADJ_OPEN and a second class to one
/// pixel, for example, and both flags are then right).
pub fn explained_flags(truth: u32) -> u32 {
    defect_classes()
        .into_iter()
        .filter(|c| c.matches(truth))
        .fold(0, |acc, c| acc | own_flag(c))
}

/// Whether a pixel of `class` with truth value `truth` carries a dark/flat flag in `mask` that
/// neither its own class nor any other class of that pixel explains.
pub fn is_cross_flagged(class: DefectClass, truth: u32, mask: u32) -> bool {
    unexplained_flags(class, truth, mask) != 0
}

/// The dark/flat flags of `mask` that neither `class` nor any other class of the pixel
/// explains.
pub fn unexplained_flags(class: DefectClass, truth: u32, mask: u32) -> u32 {
    let allowed = own_flag(class) | explained_flags(truth);
    mask & DARK_FLAT_BITS & !allowed
}

/// One class's line of the table.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassRow {
    pub class: DefectClass,
    pub injected: usize,
    /// Flagged with the class's own flag.
    pub found: usize,
    /// Carrying a dark/flat flag no class of the pixel explains ([`is_cross_flagged`]).
    pub cross: usize,
    /// Per flag of [`DARK_FLAT_FLAGS`] (same order): pixels of the class carrying it
    /// unexplained, so a reader sees which search the cross flags come from.
    pub cross_by_flag: Vec<usize>,
}

impl ClassRow {
    pub fn found_fraction(&self) -> f64 {
        self.found as f64 / self.injected.max(1) as f64
    }
    pub fn cross_fraction(&self) -> f64 {
        self.cross as f64 / self.injected.max(1) as f64
    }
}

/// A mask measured against the truth.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionTable {
    pub rows: Vec<ClassRow>,
    /// Science pixels with no injected defect and ordinary read noise ([`clean_pixels`]).
    pub clean: usize,
    /// Per flag of [`DARK_FLAT_FLAGS`] (same order): clean pixels carrying it.
    pub clean_flagged: Vec<usize>,
    /// Clean pixels carrying any of them.
    pub clean_any: usize,
    /// Pixels of the read-noise tail, and how many carry a dark/flat flag.
    pub tail: usize,
    pub tail_flagged: usize,
}

impl DetectionTable {
    /// Measures `mask` (a DQ image) against the truth's DEFECTS and READNOISE maps, all
    /// row-major with `nx` columns.
    pub fn measure(mask: &[u32], truth: &[u32], readnoise: &[f32], nx: usize) -> DetectionTable {
        assert_eq!(mask.len(), truth.len(), "mask and truth differ in size");
        assert_eq!(
            readnoise.len(),
            truth.len(),
            "readnoise and truth differ in size"
        );
        assert!(
            nx > 0 && truth.len().is_multiple_of(nx),
            "not a {nx}-column image"
        );
        let rows = defect_classes()
            .into_iter()
            .map(|class| {
                let pixels: Vec<usize> = (0..truth.len())
                    .filter(|&i| class.matches(truth[i]))
                    .collect();
                // A pixel of the read-noise tail may be noisy (TELEGRAPH) whatever its class.
                let tail_rn = TAIL_FACTOR * science_median(truth, readnoise);
                let unexplained: Vec<u32> = pixels
                    .iter()
                    .map(|&i| {
                        let noisy_ok = if readnoise[i] > tail_rn {
                            dq::TELEGRAPH
                        } else {
                            0
                        };
                        unexplained_flags(class, truth[i], mask[i]) & !noisy_ok
                    })
                    .collect();
                ClassRow {
                    class,
                    injected: pixels.len(),
                    found: pixels
                        .iter()
                        .filter(|&&i| mask[i] & own_flag(class) != 0)
                        .count(),
                    cross: unexplained.iter().filter(|&&u| u != 0).count(),
                    cross_by_flag: DARK_FLAT_FLAGS
                        .iter()
                        .map(|&(f, _)| unexplained.iter().filter(|&&u| u & f != 0).count())
                        .collect(),
                }
            })
            .collect();
        let (clean, tail) = clean_pixels(truth, readnoise);
        let count = |bits: u32| clean.iter().filter(|&&i| mask[i] & bits != 0).count();
        DetectionTable {
            rows,
            clean: clean.len(),
            clean_flagged: DARK_FLAT_FLAGS.iter().map(|&(f, _)| count(f)).collect(),
            clean_any: count(DARK_FLAT_BITS),
            tail: tail.len(),
            tail_flagged: tail
                .iter()
                .filter(|&&i| mask[i] & DARK_FLAT_BITS != 0)
                .count(),
        }
    }

    /// The row of `class`.
    pub fn row(&self, class: DefectClass) -> &ClassRow {
        self.rows
            .iter()
            .find(|r| r.class == class)
            .unwrap_or_else(|| panic!("no row for {class:?}"))
    }

    /// The fraction of clean pixels carrying `flag` (one of [`DARK_FLAT_FLAGS`]).
    pub fn clean_fraction(&self, flag: u32) -> f64 {
        let k = DARK_FLAT_FLAGS
            .iter()
            .position(|&(f, _)| f == flag)
            .unwrap_or_else(|| panic!("{flag:#x} is not a dark/flat flag"));
        self.clean_flagged[k] as f64 / self.clean.max(1) as f64
    }

    /// The table as Markdown, under `title`.
    pub fn render(&self, title: &str) -> String {
        let mut s = format!(
            "\n{title}\n| class | own flag | injected | found with own flag | cross-flagged | \
             cross flags |\n|---|---|---:|---:|---:|---|\n"
        );
        for r in &self.rows {
            let by_flag: Vec<String> = DARK_FLAT_FLAGS
                .iter()
                .zip(&r.cross_by_flag)
                .filter(|&(_, &n)| n > 0)
                .map(|(&(_, name), n)| format!("{name} {n}"))
                .collect();
            s += &format!(
                "| {:?} | {} | {} | {} ({:.2} %) | {} ({:.2} %) | {} |\n",
                r.class,
                flag_name(own_flag(r.class)),
                r.injected,
                r.found,
                100.0 * r.found_fraction(),
                r.cross,
                100.0 * r.cross_fraction(),
                by_flag.join(", ")
            );
        }
        s += &format!(
            "read-noise tail (above {TAIL_FACTOR}x the median, no injected defect: \
             neither a class nor clean): {} pixels, {} flagged\n",
            self.tail, self.tail_flagged
        );
        s += &format!(
            "clean pixels: {} (science, no injected defect, read noise within {TAIL_FACTOR}x \
             the median)\n\
             | flag | clean pixels flagged | fraction |\n|---|---:|---:|\n",
            self.clean
        );
        for (k, &(flag, name)) in DARK_FLAT_FLAGS.iter().enumerate() {
            s += &format!(
                "| {name} | {} | {:.2e} |\n",
                self.clean_flagged[k],
                self.clean_fraction(flag)
            );
        }
        s += &format!(
            "| any | {} | {:.2e} |\n",
            self.clean_any,
            self.clean_any as f64 / self.clean.max(1) as f64
        );
        s
    }
}

/// The name of a flag of [`DARK_FLAT_FLAGS`], else its value.
pub fn flag_name(flag: u32) -> String {
    DARK_FLAT_FLAGS
        .iter()
        .find(|&&(f, _)| f == flag)
        .map_or_else(|| format!("{flag:#x}"), |&(_, n)| n.to_string())
}

/// Read noise, relative to the median of the science pixels, above which a pixel without an
/// injected defect is not counted as clean: whether a pixel of the read-noise tail (the
/// realistic simulator draws 1.3x to 3x for 1 % of the pixels) is "noisy" is a threshold
/// choice, so such pixels are neither required nor counted as false positives, and a defect
/// pixel in the tail may carry TELEGRAPH without being cross-flagged; the table reports how
/// many tail pixels were flagged.
pub const TAIL_FACTOR: f32 = 1.5;

/// The median read noise of the science pixels.
fn science_median(truth: &[u32], readnoise: &[f32]) -> f32 {
    let mut science: Vec<f32> = (0..truth.len())
        .filter(|&i| truth[i] & dq::REFERENCE_PIXEL == 0)
        .map(|i| readnoise[i])
        .collect();
    science.sort_by(f32::total_cmp);
    science.get(science.len() / 2).copied().unwrap_or(0.0)
}

/// The clean pixels (science, no injected defect, read noise within [`TAIL_FACTOR`] times the
/// median) and the read-noise tail (no defect, noisier than that). A defect's neighbours are
/// clean: a flag leaking onto them is a false positive.
pub fn clean_pixels(truth: &[u32], readnoise: &[f32]) -> (Vec<usize>, Vec<usize>) {
    let median = science_median(truth, readnoise);
    let (mut clean, mut tail) = (Vec::new(), Vec::new());
    for i in (0..truth.len()).filter(|&i| truth[i] == 0) {
        if readnoise[i] <= TAIL_FACTOR * median {
            clean.push(i);
        } else {
            tail.push(i);
        }
    }
    (clean, tail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::SATURATED_IN_ALL_GROUPS;

    /// A 5x6 truth and mask exercising the cross-flag rule: a second class of the same pixel
    /// explains its flag, a flag of no class of the pixel does not, and flags outside the
    /// dark/flat set never count.
    #[test]
    fn cross_flags_count_only_flags_no_class_of_the_pixel_explains() {
        let nx = 6;
        let mut truth = vec![0u32; 5 * nx];
        let mut mask = vec![0u32; 5 * nx];
        // Row 0 is reference pixels, flagged as such in the mask too.
        for x in 0..nx {
            truth[x] = dq::REFERENCE_PIXEL;
            mask[x] = dq::REFERENCE_PIXEL;
        }
        // (1,1): ADJ_OPEN and hot; the mask says both: found for both, cross for neither.
        truth[nx + 1] = dq::ADJ_OPEN | dq::HOT;
        mask[nx + 1] = dq::ADJ_OPEN | dq::HOT;
        // (1,4): saturated in all groups, flagged HOT (its own flag) and RC (no class of it).
        truth[nx + 4] = SATURATED_IN_ALL_GROUPS;
        mask[nx + 4] = dq::HOT | dq::RC | dq::DO_NOT_USE;
        // (3,1): telegraph, flagged OTHER_BAD_PIXEL only: missed and cross-flagged.
        truth[3 * nx + 1] = dq::TELEGRAPH;
        mask[3 * nx + 1] = dq::OTHER_BAD_PIXEL;
        // (3,4): dead, flagged DEAD and UNRELIABLE_SLOPE (not a dark/flat flag): found, clean.
        truth[3 * nx + 4] = dq::DEAD;
        mask[3 * nx + 4] = dq::DEAD | dq::UNRELIABLE_SLOPE;
        // Next to the dead pixel: a clean pixel, so a false positive.
        mask[4 * nx + 5] = dq::HOT;

        assert!(!is_cross_flagged(
            DefectClass::AdjOpen,
            truth[nx + 1],
            mask[nx + 1]
        ));
        assert!(!is_cross_flagged(
            DefectClass::Hot,
            truth[nx + 1],
            mask[nx + 1]
        ));
        assert!(is_cross_flagged(
            DefectClass::Saturated,
            truth[nx + 4],
            mask[nx + 4]
        ));
        // HOT alone is the saturated class's own flag.
        assert!(!is_cross_flagged(
            DefectClass::Saturated,
            truth[nx + 4],
            dq::HOT
        ));
        assert!(is_cross_flagged(
            DefectClass::Telegraph,
            truth[3 * nx + 1],
            mask[3 * nx + 1]
        ));

        let t = DetectionTable::measure(&mask, &truth, &vec![10.0; truth.len()], nx);
        let row = |c| t.row(c).clone();
        let expect = |class, injected, found, cross| ClassRow {
            class,
            injected,
            found,
            cross,
            cross_by_flag: t.row(class).cross_by_flag.clone(),
        };
        assert_eq!(
            row(DefectClass::AdjOpen),
            expect(DefectClass::AdjOpen, 1, 1, 0)
        );
        assert_eq!(row(DefectClass::Hot), expect(DefectClass::Hot, 1, 1, 0));
        assert_eq!(
            row(DefectClass::Saturated),
            expect(DefectClass::Saturated, 1, 1, 1)
        );
        assert_eq!(
            row(DefectClass::Telegraph),
            expect(DefectClass::Telegraph, 1, 0, 1)
        );
        assert_eq!(row(DefectClass::Dead), expect(DefectClass::Dead, 1, 1, 0));
        // The cross flags by flag: RC on the saturated pixel, OTHER_BAD_PIXEL on the
        // telegraph one.
        let by_flag = |class| {
            let r = t.row(class);
            DARK_FLAT_FLAGS
                .iter()
                .zip(&r.cross_by_flag)
                .filter(|&(_, &n)| n > 0)
                .map(|(&(_, name), &n)| (name, n))
                .collect::<Vec<_>>()
        };
        assert_eq!(by_flag(DefectClass::Saturated), [("RC", 1)]);
        assert_eq!(by_flag(DefectClass::Telegraph), [("OTHER_BAD_PIXEL", 1)]);
        assert!(by_flag(DefectClass::AdjOpen).is_empty());
        assert_eq!(row(DefectClass::Rc), expect(DefectClass::Rc, 0, 0, 0));
        // Every other pixel is clean; the dead pixel's neighbour is the one flagged.
        let defects = truth.iter().filter(|&&v| v != 0).count();
        assert_eq!((t.clean, t.clean_any), (truth.len() - defects, 1));
    }

    /// Clean pixels leave out reference pixels, defects and the read-noise tail (reported
    /// apart), and the per-flag fractions count only them.
    #[test]
    fn clean_pixels_skip_reference_pixels_defects_and_the_read_noise_tail() {
        let nx = 7;
        let mut truth = vec![0u32; 4 * nx];
        let mut readnoise = vec![10.0f32; 4 * nx];
        truth[0] = dq::REFERENCE_PIXEL;
        truth[nx + 1] = dq::RC;
        readnoise[nx + 3] = 16.0; // the tail: above 1.5x the median
        let mut mask = vec![0u32; 4 * nx];
        mask[2 * nx + 2] = dq::HOT; // next to the RC pixel: clean, flagged
        mask[3 * nx + 6] = dq::HOT | dq::TELEGRAPH; // clean, flagged
        mask[6] = dq::DO_NOT_USE; // clean, not a dark/flat flag
        mask[nx + 3] = dq::TELEGRAPH; // the tail pixel
        let (clean, tail) = clean_pixels(&truth, &readnoise);
        assert_eq!(clean.len(), 4 * nx - 3);
        assert_eq!(tail, [nx + 3]);
        assert!(!clean.contains(&0) && !clean.contains(&(nx + 1)));
        let t = DetectionTable::measure(&mask, &truth, &readnoise, nx);
        assert_eq!((t.clean, t.clean_any), (4 * nx - 3, 2));
        assert_eq!((t.tail, t.tail_flagged), (1, 1));
        assert_eq!(t.clean_fraction(dq::HOT), 2.0 / t.clean as f64);
        assert_eq!(t.clean_fraction(dq::TELEGRAPH), 1.0 / t.clean as f64);
        assert_eq!(t.clean_fraction(dq::RC), 0.0);
        assert!(
            t.render("t")
                .contains("| Rc | RC | 1 | 0 (0.00 %) | 0 (0.00 %) |  |")
        );
    }
}
