//! Which group differences (CDS frames) each integration contributes (see UPSTREAM.md, 'CDS
//! frames').

use std::fmt;

use mkrefs_support::params::Choices;

/// How group pairs are formed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupDiff {
    /// Pairs (1−0), (3−2), …: every group is used once, so the CDS frames are independent.
    Independent,
    /// Pairs (1−0), (2−1), …: G−1 frames, neighbours share a read and are correlated.
    Consecutive,
}

impl GroupDiff {
    /// The names the `group_diff_type` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<GroupDiff> = Choices::new(&[
        ("independent", GroupDiff::Independent),
        ("consecutive", GroupDiff::Consecutive),
    ]);

    pub fn parse(s: &str) -> Option<GroupDiff> {
        Self::CHOICES.parse(s)
    }

    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

impl fmt::Display for GroupDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Groups dropped at the start of a MIRI ramp (reset effects), as upstream: groups `[5, G-1)`.
pub const MIRI_SKIP_FIRST: usize = 5;

/// The CDS frames of one integration: `pairs[j] = (hi, lo)` gives the frame `D[hi] - D[lo]`.
/// Every integration of a file has the same plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CdsPlan {
    /// The groups that take part, `first..end`, after the MIRI trim.
    pub first: usize,
    pub end: usize,
    pub pairs: Vec<(usize, usize)>,
    /// In independent mode with an odd number of usable groups, the group left out (the last).
    /// Upstream crashes here (the two slices differ in length); we define the behaviour.
    pub dropped: Option<usize>,
}

impl CdsPlan {
    /// The plan for a ramp of `ngroups` groups. `miri` applies upstream's `[5, G-1)` trim.
    /// Fails when fewer than two usable groups remain, saying how many are needed.
    pub fn new(ngroups: usize, miri: bool, diff: GroupDiff) -> Result<CdsPlan, String> {
        let (first, end) = if miri {
            (
                MIRI_SKIP_FIRST,
                ngroups.saturating_sub(1).max(MIRI_SKIP_FIRST),
            )
        } else {
            (0, ngroups)
        };
        let used = end - first;
        if used < 2 {
            let needed = if miri {
                format!(
                    "MIRI ramps need at least {} groups, because groups 0-4 and the last group \
                     are left out",
                    MIRI_SKIP_FIRST + 3
                )
            } else {
                "at least 2 groups are needed".to_string()
            };
            return Err(format!(
                "a ramp of {ngroups} group(s) gives no group difference: {needed}"
            ));
        }
        let (pairs, dropped) = match diff {
            GroupDiff::Independent => {
                let pairs = (0..used / 2)
                    .map(|j| (first + 2 * j + 1, first + 2 * j))
                    .collect();
                let dropped = (used % 2 == 1).then_some(end - 1);
                (pairs, dropped)
            }
            GroupDiff::Consecutive => ((first..end - 1).map(|g| (g + 1, g)).collect(), None),
        };
        Ok(CdsPlan {
            first,
            end,
            pairs,
            dropped,
        })
    }

    /// CDS frames per integration.
    pub fn per_integration(&self) -> usize {
        self.pairs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn independent_pairs_each_group_once() {
        let p = CdsPlan::new(6, false, GroupDiff::Independent).unwrap();
        assert_eq!(p.pairs, [(1, 0), (3, 2), (5, 4)]);
        assert_eq!(p.dropped, None);
    }

    #[test]
    fn odd_independent_drops_the_last_group() {
        let p = CdsPlan::new(7, false, GroupDiff::Independent).unwrap();
        assert_eq!(p.pairs, [(1, 0), (3, 2), (5, 4)]);
        assert_eq!(p.dropped, Some(6));
        let p = CdsPlan::new(3, false, GroupDiff::Independent).unwrap();
        assert_eq!((p.pairs.as_slice(), p.dropped), (&[(1, 0)][..], Some(2)));
    }

    #[test]
    fn consecutive_uses_neighbours() {
        let p = CdsPlan::new(4, false, GroupDiff::Consecutive).unwrap();
        assert_eq!(p.pairs, [(1, 0), (2, 1), (3, 2)]);
        let p = CdsPlan::new(5, false, GroupDiff::Consecutive).unwrap();
        assert_eq!((p.per_integration(), p.dropped), (4, None));
    }

    #[test]
    fn miri_trim_is_5_to_g_minus_1() {
        // G = 12: groups 5..11 are used (6 groups).
        let p = CdsPlan::new(12, true, GroupDiff::Independent).unwrap();
        assert_eq!((p.first, p.end), (5, 11));
        assert_eq!(p.pairs, [(6, 5), (8, 7), (10, 9)]);
        let p = CdsPlan::new(12, true, GroupDiff::Consecutive).unwrap();
        assert_eq!(p.pairs.first(), Some(&(6, 5)));
        assert_eq!(p.pairs.last(), Some(&(10, 9)));
        // G = 8 leaves groups 5 and 6: one pair.
        assert_eq!(
            CdsPlan::new(8, true, GroupDiff::Independent).unwrap().pairs,
            [(6, 5)]
        );
        let e = CdsPlan::new(7, true, GroupDiff::Independent).unwrap_err();
        assert!(e.contains("at least 8 groups"), "{e}");
    }

    #[test]
    fn too_few_groups_is_an_error() {
        for diff in [GroupDiff::Independent, GroupDiff::Consecutive] {
            let e = CdsPlan::new(1, false, diff).unwrap_err();
            assert!(e.contains("at least 2 groups"), "{e}");
            assert!(CdsPlan::new(0, false, diff).is_err());
        }
    }

    #[test]
    fn parse_names() {
        assert_eq!(
            GroupDiff::parse(" Independent"),
            Some(GroupDiff::Independent)
        );
        assert_eq!(
            GroupDiff::parse("consecutive"),
            Some(GroupDiff::Consecutive)
        );
        assert_eq!(GroupDiff::parse("pairs"), None);
    }
}
