//! Grouping the inputs per reflabel and detector the way a generator asks (`imtypes`), within
//! the `max_Delta_MJD` limits, and numbering the groups (UPSTREAM.md, "Grouping").
//!
//! Differences from upstream, on purpose:
//! - Deterministic: detectors in sorted order (upstream iterated a Python set), inputs in a
//!   stable MJD order with the path as tie-break, so the same inputs always give the same
//!   groups and cmdIDs.
//! - DF+ works with only darks or only flats: a group is made when at least one image exists
//!   (upstream failed without flats).
//! - `imtypes` is also accepted in lower case.
//! - Why images were left out is returned as notes for the run summary.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::inputs::classify::ImageKind;
use crate::inputs::read::InputRow;

/// How a generator wants its inputs grouped. The variants spell upstream's imtypes words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(clippy::upper_case_acronyms)]
pub enum ImTypes {
    /// One group per dark.
    D,
    /// Pairs of darks adjacent in time.
    DD,
    /// Pairs of flats adjacent in time.
    FF,
    /// One group with every dark.
    DPlus,
    /// One group with every flat.
    FPlus,
    /// One group with every dark, then every flat.
    DFPlus,
    /// Each flat pair with a dark pair.
    DDFF,
}

const IMTYPES_HELP: &str = "D, DD, FF, D+, F+, DF+ (also D+F+, F+D+, FD+) or DDFF (also FFDD)";

impl ImTypes {
    /// Upstream's spellings; case is ignored.
    pub fn parse(s: &str) -> Result<ImTypes, String> {
        let t = s.trim().to_ascii_uppercase();
        Ok(match t.as_str() {
            "D" => ImTypes::D,
            "DD" => ImTypes::DD,
            "FF" => ImTypes::FF,
            "D+" => ImTypes::DPlus,
            "F+" => ImTypes::FPlus,
            "DF+" | "FD+" | "D+F+" | "F+D+" => ImTypes::DFPlus,
            "DDFF" | "FFDD" => ImTypes::DDFF,
            _ => {
                return Err(format!(
                    "imtypes '{s}' is not a known grouping: use one of {IMTYPES_HELP}"
                ));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ImTypes::D => "D",
            ImTypes::DD => "DD",
            ImTypes::FF => "FF",
            ImTypes::DPlus => "D+",
            ImTypes::FPlus => "F+",
            ImTypes::DFPlus => "DF+",
            ImTypes::DDFF => "DDFF",
        }
    }
}

impl FromStr for ImTypes {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImTypes::parse(s)
    }
}

impl fmt::Display for ImTypes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `DD.max_Delta_MJD`, `FF.max_Delta_MJD`, `DDFF.max_Delta_MJD` in days; `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct MjdLimits {
    pub dd: Option<f64>,
    pub ff: Option<f64>,
    pub ddff: Option<f64>,
}

/// One set of inputs for one job.
#[derive(Clone, Debug, PartialEq)]
pub struct Group {
    pub detector: String,
    /// (label `D1`, `D2`, ..., `F1`, ..., index into the sorted input rows), in label order.
    pub members: Vec<(String, usize)>,
}

/// The groups of one reflabel and why inputs were left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Grouping {
    pub groups: Vec<Group>,
    /// One line per left-out input or empty detector, for the run summary.
    pub notes: Vec<String>,
}

/// Pairs adjacent candidates: walking in time order, pair i with i+1 unless they are
/// more than `limit` apart, in which case i is left out. Greedy, non-overlapping; an odd last
/// one is left out.
fn pairs(
    rows: &[InputRow],
    cand: &[usize],
    limit: Option<f64>,
    limit_key: &str,
    what: &str,
    notes: &mut Vec<String>,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < cand.len() {
        let (a, b) = (&rows[cand[i]], &rows[cand[i + 1]]);
        let gap = b.mjd - a.mjd;
        match limit {
            Some(l) if gap > l => {
                notes.push(format!(
                    "{}: {what} {} (MJD {:.5}) left out: the next {what}, {}, is {gap:.3} days later, more than {limit_key} = {l}",
                    a.detector,
                    a.path.display(),
                    a.mjd,
                    b.path.display(),
                ));
                i += 1;
            }
            _ => {
                out.push((cand[i], cand[i + 1]));
                i += 2;
            }
        }
    }
    if i + 1 == cand.len() {
        let a = &rows[cand[i]];
        notes.push(format!(
            "{}: {what} {} (MJD {:.5}) left out: no later {what} to pair it with",
            a.detector,
            a.path.display(),
            a.mjd
        ));
    }
    out
}

/// DDFF matching: each flat pair takes the first dark pair, in time order, among those
/// used least so far whose four MJD differences to the flat pair are all within the limit.
/// Dark pairs are reused in a balanced way; flat pairs are not.
fn ddff(
    rows: &[InputRow],
    dd: &[(usize, usize)],
    ff: &[(usize, usize)],
    limit: Option<f64>,
    notes: &mut Vec<String>,
) -> Vec<[usize; 4]> {
    let mut uses = vec![0usize; dd.len()];
    let mut out = Vec::new();
    for &(f1, f2) in ff {
        let (fa, fb) = (
            rows[f1].mjd.min(rows[f2].mjd),
            rows[f1].mjd.max(rows[f2].mjd),
        );
        let mut best: Option<usize> = None;
        for (j, &(d1, d2)) in dd.iter().enumerate() {
            if best.is_some_and(|b| uses[j] >= uses[b]) {
                continue;
            }
            if let Some(l) = limit {
                let (da, db) = (
                    rows[d1].mjd.min(rows[d2].mjd),
                    rows[d1].mjd.max(rows[d2].mjd),
                );
                let worst = [da - fa, da - fb, db - fa, db - fb]
                    .into_iter()
                    .map(f64::abs)
                    .fold(0.0, f64::max);
                if worst > l {
                    continue;
                }
            }
            best = Some(j);
        }
        match best {
            Some(j) => {
                uses[j] += 1;
                out.push([dd[j].0, dd[j].1, f1, f2]);
            }
            None => notes.push(format!(
                "{}: flats {} and {} left out: {}",
                rows[f1].detector,
                rows[f1].path.display(),
                rows[f2].path.display(),
                match limit {
                    _ if dd.is_empty() => "there is no dark pair".to_string(),
                    Some(l) => format!("no dark pair within DDFF.max_Delta_MJD = {l} days"),
                    None => "no dark pair".to_string(),
                }
            )),
        }
    }
    out
}

fn labelled(prefix: char, idx: impl IntoIterator<Item = usize>) -> Vec<(String, usize)> {
    idx.into_iter()
        .enumerate()
        .map(|(k, i)| (format!("{prefix}{}", k + 1), i))
        .collect()
}

/// Groups the inputs of one reflabel: per detector in sorted order, candidates in MJD
/// order (path as tie-break). D: one group per dark. DD/FF: adjacent pairs within the limit.
/// D+/F+: one group with all darks/flats. DF+: one group with all darks then all flats, made
/// when at least one image exists (labels D1..Dn, F1..Fm). DDFF: flat pairs matched with dark
/// pairs. A detector without candidates gets no group and a note.
pub fn make_groups(rows: &[InputRow], imtypes: ImTypes, limits: &MjdLimits) -> Grouping {
    let mut result = Grouping::default();
    let detectors: BTreeSet<&str> = rows.iter().map(|r| r.detector.as_str()).collect();
    for det in detectors {
        let of_kind = |kind: ImageKind| {
            let mut v: Vec<usize> = (0..rows.len())
                .filter(|&i| rows[i].detector == det && rows[i].kind == kind)
                .collect();
            v.sort_by(|&a, &b| {
                rows[a]
                    .mjd
                    .total_cmp(&rows[b].mjd)
                    .then_with(|| rows[a].path.cmp(&rows[b].path))
            });
            v
        };
        let darks = of_kind(ImageKind::Dark);
        let flats = of_kind(ImageKind::Flat);
        let notes = &mut result.notes;
        let sets: Vec<Vec<(String, usize)>> = match imtypes {
            ImTypes::D => darks.iter().map(|&d| labelled('D', [d])).collect(),
            ImTypes::DD => pairs(rows, &darks, limits.dd, "DD.max_Delta_MJD", "dark", notes)
                .into_iter()
                .map(|(a, b)| labelled('D', [a, b]))
                .collect(),
            ImTypes::FF => pairs(rows, &flats, limits.ff, "FF.max_Delta_MJD", "flat", notes)
                .into_iter()
                .map(|(a, b)| labelled('F', [a, b]))
                .collect(),
            ImTypes::DPlus if !darks.is_empty() => vec![labelled('D', darks.iter().copied())],
            ImTypes::FPlus if !flats.is_empty() => vec![labelled('F', flats.iter().copied())],
            ImTypes::DFPlus if !darks.is_empty() || !flats.is_empty() => {
                let mut set = labelled('D', darks.iter().copied());
                set.extend(labelled('F', flats.iter().copied()));
                vec![set]
            }
            ImTypes::DPlus | ImTypes::FPlus | ImTypes::DFPlus => Vec::new(),
            ImTypes::DDFF => {
                let dd = pairs(rows, &darks, limits.dd, "DD.max_Delta_MJD", "dark", notes);
                let ff = pairs(rows, &flats, limits.ff, "FF.max_Delta_MJD", "flat", notes);
                ddff(rows, &dd, &ff, limits.ddff, notes)
                    .into_iter()
                    .map(|[d1, d2, f1, f2]| {
                        let mut set = labelled('D', [d1, d2]);
                        set.extend(labelled('F', [f1, f2]));
                        set
                    })
                    .collect()
            }
        };
        if sets.is_empty() {
            result.notes.push(format!(
                "{det}: no {imtypes} group ({} dark(s), {} flat(s))",
                darks.len(),
                flats.len()
            ));
        }
        result.groups.extend(sets.into_iter().map(|members| Group {
            detector: det.to_string(),
            members,
        }));
    }
    result
}

/// The input rows the groups use, sorted, each once: what calibration has to prepare.
pub fn rows_used(groups: &[Group]) -> Vec<usize> {
    groups
        .iter()
        .flat_map(|g| g.members.iter().map(|(_, i)| *i))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// A group with its run-wide command number.
#[derive(Clone, Debug, PartialEq)]
pub struct CmdGroup {
    pub cmd_id: u32,
    pub reflabel: String,
    pub group: Group,
}

/// Numbers the groups with one run-wide counter from 0: reflabels in the order given
/// (the command line's), then each reflabel's groups in their order (detector, then group).
pub fn assign_cmd_ids(groups_per_reflabel: &[(String, Vec<Group>)]) -> Vec<CmdGroup> {
    groups_per_reflabel
        .iter()
        .flat_map(|(label, groups)| groups.iter().map(move |g| (label, g)))
        .zip(0u32..)
        .map(|((label, g), cmd_id)| CmdGroup {
            cmd_id,
            reflabel: label.clone(),
            group: g.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::read::sort_inputs;
    use crate::inputs::read::tests::row;
    use ImageKind::{Dark, Flat};

    /// Rows from (name, mjd, kind, detector), sorted as the run sorts them.
    fn rows(spec: &[(&str, f64, ImageKind, &str)]) -> Vec<InputRow> {
        let mut v: Vec<InputRow> = spec
            .iter()
            .map(|(n, m, k, d)| row(&format!("/in/{n}.fits"), *m, *k, d))
            .collect();
        sort_inputs(&mut v);
        v
    }

    /// Groups as (detector, [(label, name)]) for readable assertions.
    fn show(rows: &[InputRow], g: &Grouping) -> Vec<(String, Vec<(String, String)>)> {
        g.groups
            .iter()
            .map(|grp| {
                (
                    grp.detector.clone(),
                    grp.members
                        .iter()
                        .map(|(l, i)| {
                            let name = rows[*i].path.file_stem().unwrap().to_string_lossy();
                            (l.clone(), name.into_owned())
                        })
                        .collect(),
                )
            })
            .collect()
    }

    fn g(det: &str, members: &[(&str, &str)]) -> (String, Vec<(String, String)>) {
        (
            det.to_string(),
            members
                .iter()
                .map(|(l, n)| (l.to_string(), n.to_string()))
                .collect(),
        )
    }

    const NO_LIMITS: MjdLimits = MjdLimits {
        dd: None,
        ff: None,
        ddff: None,
    };

    #[test]
    fn imtypes_spellings() {
        for (s, want) in [
            ("D", ImTypes::D),
            ("dd", ImTypes::DD),
            ("FF", ImTypes::FF),
            ("D+", ImTypes::DPlus),
            ("f+", ImTypes::FPlus),
            ("D+F+", ImTypes::DFPlus),
            ("F+D+", ImTypes::DFPlus),
            ("DF+", ImTypes::DFPlus),
            ("FD+", ImTypes::DFPlus),
            ("DDFF", ImTypes::DDFF),
            (" FFDD ", ImTypes::DDFF),
        ] {
            assert_eq!(ImTypes::parse(s), Ok(want), "{s}");
        }
        for bad in ["F", "DF", "D+F", ""] {
            let err = ImTypes::parse(bad).unwrap_err();
            assert!(err.contains("D, DD, FF, D+, F+, DF+"), "{err}");
        }
        assert_eq!("df+".parse::<ImTypes>(), Ok(ImTypes::DFPlus));
    }

    #[test]
    fn d_one_group_per_dark_flats_ignored() {
        let r = rows(&[
            ("d2", 2.0, Dark, "A"),
            ("d1", 1.0, Dark, "A"),
            ("f1", 1.5, Flat, "A"),
        ]);
        let got = make_groups(&r, ImTypes::D, &NO_LIMITS);
        assert_eq!(
            show(&r, &got),
            vec![g("A", &[("D1", "d1")]), g("A", &[("D1", "d2")])]
        );
    }

    #[test]
    fn pairs_are_adjacent_non_overlapping_and_odd_leftover_dropped() {
        let r = rows(&[
            ("d1", 1.0, Dark, "A"),
            ("d2", 1.1, Dark, "A"),
            ("d3", 1.2, Dark, "A"),
            ("d4", 1.3, Dark, "A"),
            ("d5", 1.4, Dark, "A"),
        ]);
        let got = make_groups(&r, ImTypes::DD, &NO_LIMITS);
        assert_eq!(
            show(&r, &got),
            vec![
                g("A", &[("D1", "d1"), ("D2", "d2")]),
                g("A", &[("D1", "d3"), ("D2", "d4")])
            ]
        );
        assert_eq!(got.notes.len(), 1);
        assert!(got.notes[0].contains("d5.fits") && got.notes[0].contains("no later dark"));
    }

    #[test]
    fn pairs_skip_image_too_far_from_next() {
        // d1 is 5 days before d2: skipped; then d2+d3; d4 is 3 days after d3 but alone.
        let r = rows(&[
            ("d1", 0.0, Dark, "A"),
            ("d2", 5.0, Dark, "A"),
            ("d3", 5.5, Dark, "A"),
            ("d4", 8.5, Dark, "A"),
        ]);
        let limits = MjdLimits {
            dd: Some(2.0),
            ..NO_LIMITS
        };
        let got = make_groups(&r, ImTypes::DD, &limits);
        assert_eq!(show(&r, &got), vec![g("A", &[("D1", "d2"), ("D2", "d3")])]);
        assert_eq!(got.notes.len(), 2, "{:?}", got.notes);
        assert!(got.notes[0].contains("d1.fits") && got.notes[0].contains("DD.max_Delta_MJD = 2"));
        assert!(got.notes[1].contains("d4.fits"));
        // The greedy walk is not an optimal matching: d1 d2 | d3 with d2-d3 close
        // pairs d1+d2 and drops d3.
        let r = rows(&[
            ("d1", 0.0, Dark, "A"),
            ("d2", 1.5, Dark, "A"),
            ("d3", 2.0, Dark, "A"),
        ]);
        let got = make_groups(&r, ImTypes::DD, &limits);
        assert_eq!(show(&r, &got), vec![g("A", &[("D1", "d1"), ("D2", "d2")])]);
        // Exactly at the limit is allowed.
        let r = rows(&[("d1", 0.0, Dark, "A"), ("d2", 2.0, Dark, "A")]);
        assert_eq!(make_groups(&r, ImTypes::DD, &limits).groups.len(), 1);
    }

    #[test]
    fn ff_uses_ff_limit() {
        let r = rows(&[
            ("f1", 0.0, Flat, "A"),
            ("f2", 3.0, Flat, "A"),
            ("d1", 0.0, Dark, "A"),
            ("d2", 3.0, Dark, "A"),
        ]);
        let limits = MjdLimits {
            dd: Some(1.0),
            ff: Some(4.0),
            ddff: None,
        };
        let got = make_groups(&r, ImTypes::FF, &limits);
        assert_eq!(show(&r, &got), vec![g("A", &[("F1", "f1"), ("F2", "f2")])]);
        assert!(make_groups(&r, ImTypes::DD, &limits).groups.is_empty());
    }

    #[test]
    fn plus_groups_and_df_plus_edge_cases() {
        let both = rows(&[
            ("f1", 1.0, Flat, "A"),
            ("d1", 2.0, Dark, "A"),
            ("d2", 3.0, Dark, "A"),
        ]);
        assert_eq!(
            show(&both, &make_groups(&both, ImTypes::DFPlus, &NO_LIMITS)),
            vec![g("A", &[("D1", "d1"), ("D2", "d2"), ("F1", "f1")])]
        );
        assert_eq!(
            show(&both, &make_groups(&both, ImTypes::DPlus, &NO_LIMITS)),
            vec![g("A", &[("D1", "d1"), ("D2", "d2")])]
        );
        assert_eq!(
            show(&both, &make_groups(&both, ImTypes::FPlus, &NO_LIMITS)),
            vec![g("A", &[("F1", "f1")])]
        );
        // Upstream failed with darks and no flats.
        let darks = rows(&[("d1", 2.0, Dark, "A"), ("d2", 1.0, Dark, "A")]);
        assert_eq!(
            show(&darks, &make_groups(&darks, ImTypes::DFPlus, &NO_LIMITS)),
            vec![g("A", &[("D1", "d2"), ("D2", "d1")])]
        );
        let flats = rows(&[("f1", 2.0, Flat, "A")]);
        assert_eq!(
            show(&flats, &make_groups(&flats, ImTypes::DFPlus, &NO_LIMITS)),
            vec![g("A", &[("F1", "f1")])]
        );
        let got = make_groups(&flats, ImTypes::DPlus, &NO_LIMITS);
        assert!(got.groups.is_empty());
        assert_eq!(got.notes, vec!["A: no D+ group (0 dark(s), 1 flat(s))"]);
        let got = make_groups(&[], ImTypes::DFPlus, &NO_LIMITS);
        assert!(got.groups.is_empty() && got.notes.is_empty());
    }

    #[test]
    fn per_detector_in_sorted_order() {
        let r = rows(&[
            ("b1", 1.0, Dark, "NRCB1"),
            ("a1", 2.0, Dark, "NRCA1"),
            ("b2", 3.0, Dark, "NRCB1"),
            ("a2", 4.0, Dark, "NRCA1"),
            ("f", 5.0, Flat, "NRCA2"),
        ]);
        let got = make_groups(&r, ImTypes::DD, &NO_LIMITS);
        assert_eq!(
            show(&r, &got),
            vec![
                g("NRCA1", &[("D1", "a1"), ("D2", "a2")]),
                g("NRCB1", &[("D1", "b1"), ("D2", "b2")])
            ]
        );
        assert_eq!(got.notes, vec!["NRCA2: no DD group (0 dark(s), 1 flat(s))"]);
    }

    #[test]
    fn ddff_reuses_dark_pairs_in_balanced_way() {
        // Two dark pairs, three flat pairs, no limits: DD pairs used 1st, 2nd, then 1st again.
        let r = rows(&[
            ("d1", 1.0, Dark, "A"),
            ("d2", 1.1, Dark, "A"),
            ("d3", 2.0, Dark, "A"),
            ("d4", 2.1, Dark, "A"),
            ("f1", 3.0, Flat, "A"),
            ("f2", 3.1, Flat, "A"),
            ("f3", 4.0, Flat, "A"),
            ("f4", 4.1, Flat, "A"),
            ("f5", 5.0, Flat, "A"),
            ("f6", 5.1, Flat, "A"),
        ]);
        let got = make_groups(&r, ImTypes::DDFF, &NO_LIMITS);
        assert_eq!(
            show(&r, &got),
            vec![
                g(
                    "A",
                    &[("D1", "d1"), ("D2", "d2"), ("F1", "f1"), ("F2", "f2")]
                ),
                g(
                    "A",
                    &[("D1", "d3"), ("D2", "d4"), ("F1", "f3"), ("F2", "f4")]
                ),
                g(
                    "A",
                    &[("D1", "d1"), ("D2", "d2"), ("F1", "f5"), ("F2", "f6")]
                ),
            ]
        );
    }

    #[test]
    fn ddff_limit_picks_first_least_used_pair_within_limit() {
        // DD pairs at ~0 and ~10; flats at ~9, ~11, ~12. Limit 4: only the second DD pair
        // qualifies for every flat pair, so it is reused even though the first is unused.
        let r = rows(&[
            ("d1", 0.0, Dark, "A"),
            ("d2", 0.5, Dark, "A"),
            ("d3", 10.0, Dark, "A"),
            ("d4", 10.5, Dark, "A"),
            ("f1", 9.0, Flat, "A"),
            ("f2", 9.5, Flat, "A"),
            ("f3", 11.0, Flat, "A"),
            ("f4", 11.5, Flat, "A"),
            ("f5", 20.0, Flat, "A"),
            ("f6", 20.5, Flat, "A"),
        ]);
        let limits = MjdLimits {
            dd: Some(2.0),
            ff: Some(2.0),
            ddff: Some(4.0),
        };
        let got = make_groups(&r, ImTypes::DDFF, &limits);
        assert_eq!(
            show(&r, &got),
            vec![
                g(
                    "A",
                    &[("D1", "d3"), ("D2", "d4"), ("F1", "f1"), ("F2", "f2")]
                ),
                g(
                    "A",
                    &[("D1", "d3"), ("D2", "d4"), ("F1", "f3"), ("F2", "f4")]
                ),
            ]
        );
        assert_eq!(got.notes.len(), 1, "{:?}", got.notes);
        assert!(
            got.notes[0].contains("f5.fits") && got.notes[0].contains("DDFF.max_Delta_MJD = 4")
        );
        // The largest of the four differences counts: |0.5 - 4.6| = 4.1 > 4.
        let r = rows(&[
            ("d1", 0.0, Dark, "A"),
            ("d2", 0.5, Dark, "A"),
            ("f1", 3.9, Flat, "A"),
            ("f2", 4.6, Flat, "A"),
        ]);
        assert!(make_groups(&r, ImTypes::DDFF, &limits).groups.is_empty());
    }

    #[test]
    fn ddff_without_darks_notes_every_flat_pair() {
        let r = rows(&[("f1", 1.0, Flat, "A"), ("f2", 1.1, Flat, "A")]);
        let got = make_groups(&r, ImTypes::DDFF, &NO_LIMITS);
        assert!(got.groups.is_empty());
        assert!(
            got.notes[0].contains("there is no dark pair"),
            "{:?}",
            got.notes
        );
    }

    #[test]
    fn cmd_ids_run_over_reflabels_detectors_and_groups() {
        let grp = |d: &str, i: usize| Group {
            detector: d.into(),
            members: vec![("D1".into(), i)],
        };
        let numbered = assign_cmd_ids(&[
            ("readnoise".into(), vec![grp("A", 0), grp("B", 1)]),
            ("empty".into(), vec![]),
            ("dark".into(), vec![grp("A", 2)]),
        ]);
        let got: Vec<(u32, &str, &str)> = numbered
            .iter()
            .map(|c| (c.cmd_id, c.reflabel.as_str(), c.group.detector.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "readnoise", "A"),
                (1, "readnoise", "B"),
                (2, "dark", "A")
            ]
        );
        assert_eq!(
            rows_used(&[grp("A", 3), grp("B", 1), grp("A", 3)]),
            vec![1, 3]
        );
    }

    /// Shuffled inputs (with MJD ties) give the same sorted rows, groups and cmdIDs.
    #[test]
    fn deterministic_under_shuffling() {
        let spec: Vec<(String, f64, ImageKind, String)> = (0..24)
            .map(|i| {
                (
                    format!("x{i:02}"),
                    // Ties every three images.
                    (i / 3) as f64 * 0.7,
                    if i % 4 == 0 { Flat } else { Dark },
                    ["NRCB2", "NRCA1", "NRCA3"][i % 3].to_string(),
                )
            })
            .collect();
        let run = |order: &[usize]| {
            let mut r: Vec<InputRow> = order
                .iter()
                .map(|&i| {
                    let (n, m, k, d) = &spec[i];
                    row(&format!("/in/{n}.fits"), *m, *k, d)
                })
                .collect();
            sort_inputs(&mut r);
            let limits = MjdLimits {
                dd: Some(1.0),
                ff: Some(3.0),
                ddff: Some(5.0),
            };
            let per_label: Vec<(String, Vec<Group>)> = [
                ImTypes::DD,
                ImTypes::DDFF,
                ImTypes::DFPlus,
                ImTypes::D,
                ImTypes::FF,
            ]
            .iter()
            .map(|t| (t.name().to_string(), make_groups(&r, *t, &limits).groups))
            .collect();
            let paths: Vec<_> = r.iter().map(|x| x.path.clone()).collect();
            (paths, assign_cmd_ids(&per_label))
        };
        let forward: Vec<usize> = (0..spec.len()).collect();
        let reference = run(&forward);
        assert!(reference.1.len() > 10, "the fixture makes groups");
        // A few fixed permutations (deterministic test, no RNG).
        let mut order = forward.clone();
        for step in [5usize, 7, 11, 13] {
            order = (0..spec.len())
                .map(|k| order[(k * step) % spec.len()])
                .collect();
            assert_eq!(run(&order), reference, "permutation step {step}");
        }
        let reversed: Vec<usize> = forward.iter().rev().copied().collect();
        assert_eq!(run(&reversed), reference);
    }
}
