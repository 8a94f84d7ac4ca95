//! One exposure, however many of its files are given. A pipeline run leaves the raw file and
//! its products side by side (`<stem>_uncal.fits`, `<stem>_jump.fits`, `<stem>_rate.fits`...),
//! and users point mkrefs at such directories: each exposure must count once, its raw file or
//! its products used as the state a generator needs requires.

use std::path::Path;
use std::sync::OnceLock;

use mkrefs_support::pipeline_steps::Step;

use crate::inputs::read::InputRow;

/// Name endings of pipeline products that are not a step's name in mkrefs' vocabulary: jwst's
/// suffixes (`_uncal`, `_rateints`, `_fitopt`, `_ramp`, `_trapsfilled`, and the result of its
/// charge_migration step, which mkrefs does not name) and the names upstream gave ramp
/// fitting's outputs (`_0_ramp_fit`, `_1_ramp_fit`).
const OTHER_ENDINGS: &[&str] = &[
    "_0_ramp_fit",
    "_1_ramp_fit",
    "_ramp_fit_1",
    "_trapsfilled",
    "_rateints",
    "_fitopt",
    "_uncal",
    "_ramp",
    "_charge_migration",
];

/// Every product ending, longest first (so `_0_ramp_fit` goes before `_ramp_fit`): the ones
/// above and `_<step>` for each calwebb_detector1 step, under its mkrefs and its jwst name
/// (a saved step result is `<stem>_<step>.fits`).
fn product_endings() -> &'static [String] {
    static ENDINGS: OnceLock<Vec<String>> = OnceLock::new();
    ENDINGS.get_or_init(|| {
        let mut all: Vec<String> = OTHER_ENDINGS.iter().map(|e| e.to_string()).collect();
        for step in Step::ALL {
            for name in [step.name(), step.pipeline_name()] {
                let ending = format!("_{name}");
                if !all.contains(&ending) {
                    all.push(ending);
                }
            }
        }
        all.sort_by_key(|e| std::cmp::Reverse(e.len()));
        all
    })
}

/// The name every file of an exposure starts with: the basename without `.fits` and without
/// the product endings it carries (`jw01_nrca1_dq_init_saturation_0_ramp_fit.fits` and
/// `jw01_nrca1_uncal.fits` both give `jw01_nrca1`). Only whole endings are removed, so
/// `foo_1_uncal` gives `foo_1`, never `foo`.
pub fn exposure_stem(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let mut stem = match lower.rfind(".fits").or_else(|| lower.rfind('.')) {
        Some(i) if i > 0 => name[..i].to_string(),
        _ => name.clone(),
    };
    'strip: loop {
        for ending in product_endings() {
            if stem.len() > ending.len() && stem.to_ascii_lowercase().ends_with(ending) {
                stem.truncate(stem.len() - ending.len());
                continue 'strip;
            }
        }
        return stem;
    }
}

/// Exposures of one detector are never closer in time than this (days, about 0.09 s): an MJD
/// from DATE-END and TIME-END and one from EXPEND differ only by rounding.
const SAME_TIME: f64 = 1e-6;

/// Whether two rows are files of one exposure: the same detector, the same time (the MJD of
/// the date keys, which every product keeps) and the same exposure stem.
fn same_exposure(a: &InputRow, b: &InputRow) -> bool {
    a.detector == b.detector
        && (a.mjd - b.mjd).abs() < SAME_TIME
        && exposure_stem(&a.path) == exposure_stem(&b.path)
}

/// Merges the rows of one exposure into one: the least calibrated file (fewest steps done;
/// then the shorter name) stands for the exposure, and the others become its `products`,
/// which the product search tries first. The rows stay in their order (MJD, then path).
pub fn merge_exposures(rows: Vec<InputRow>) -> Vec<InputRow> {
    let mut merged: Vec<InputRow> = Vec::with_capacity(rows.len());
    for row in rows {
        match merged.iter_mut().find(|m| same_exposure(m, &row)) {
            None => merged.push(row),
            Some(m) => {
                let rank = |r: &InputRow| (r.completed.len(), r.path.as_os_str().len());
                let other = if rank(&row) < rank(m) {
                    let products = std::mem::take(&mut m.products);
                    let old = std::mem::replace(m, row);
                    m.products = products;
                    old.path
                } else {
                    row.path
                };
                m.products.push(other);
                m.products.sort();
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::PathBuf;

    use super::*;
    use crate::inputs::classify::ImageKind;
    use crate::inputs::read::tests::row;

    #[test]
    fn the_stem_drops_every_product_ending_and_nothing_else() {
        let stem = |n: &str| exposure_stem(Path::new(n));
        assert_eq!(stem("/d/jw01_nrca1_uncal.fits"), "jw01_nrca1");
        assert_eq!(stem("jw01_nrca1_rate.fits"), "jw01_nrca1");
        assert_eq!(stem("jw01_nrca1_rateints.fits"), "jw01_nrca1");
        assert_eq!(stem("jw01_nrca1_fitopt.fits"), "jw01_nrca1");
        assert_eq!(
            stem("jw01_nrca1_dq_init_saturation_superbias_refpix_jump_0_ramp_fit.fits"),
            "jw01_nrca1"
        );
        assert_eq!(stem("foo_1_uncal.fits"), "foo_1");
        assert_eq!(stem("foo_10_jump.fits"), "foo_10");
        assert_eq!(stem("_uncal.fits"), "_uncal");
        assert_eq!(stem("jw01_nrca1_linearity.fits"), "jw01_nrca1");
        assert_eq!(stem("jw01_nrca1_dark_current.fits"), "jw01_nrca1");
    }

    fn steps_row(path: &str, steps: &[Step]) -> InputRow {
        let mut r = row(path, 60000.5, ImageKind::Dark, "NRCA1");
        r.completed = steps.iter().copied().collect::<BTreeSet<_>>();
        r
    }

    #[test]
    fn the_files_of_one_exposure_become_one_row_led_by_the_raw_file() {
        let rows = vec![
            steps_row("/d/a_jump.fits", &[Step::DqInit, Step::Jump]),
            steps_row("/d/a_uncal.fits", &[]),
            steps_row("/d/a_rate.fits", &[Step::DqInit, Step::Jump, Step::Rate]),
            steps_row("/d/b_uncal.fits", &[]),
        ];
        let merged = merge_exposures(rows);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].path, PathBuf::from("/d/a_uncal.fits"));
        assert_eq!(
            merged[0].products,
            [
                PathBuf::from("/d/a_jump.fits"),
                PathBuf::from("/d/a_rate.fits")
            ]
        );
        assert!(merged[1].products.is_empty());
    }

    #[test]
    fn files_of_other_times_or_detectors_stay_apart() {
        let mut later = steps_row("/d/a_rate.fits", &[Step::Rate]);
        later.mjd += 0.1;
        let mut other = steps_row("/d/a_jump.fits", &[Step::Jump]);
        other.detector = "NRCA2".into();
        let merged = merge_exposures(vec![steps_row("/d/a_uncal.fits", &[]), later, other]);
        assert_eq!(merged.len(), 3);
    }
}
