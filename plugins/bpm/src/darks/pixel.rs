//! Per-pixel and per-image building blocks of the dark search (UPSTREAM.md, 'Darks:
//! per-integration tests' and 'Darks: jumps'), public so that the acceptance cases of upstream's
//! `tests/test_badpix_from_darks.py` can be run against them with their explicit arrays.

use mkrefs_support::dq;
use statrs::distribution::{Binomial, DiscreteCDF};
use statrs::function::erf::erfc;

use mkrefs_support::clipped::{BucketSorted, f32_at_least, f32_at_most};

/// What the jump flags of one pixel in one integration say (upstream `many_jumps`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JumpSummary {
    /// Number of groups flagged JUMP_DET.
    pub n: usize,
    /// `n >= max_jump_limit` (upstream's "high CR" integration).
    pub many: bool,
    /// `many` and the early jump rate is at least `jump_ratio_threshold` times the late one.
    pub rc: bool,
}

/// Jump-count limits, with the user's values (upstream calls its function with the literals
/// 10, 5 and 0.25 whatever the user asked for).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct JumpLimits {
    pub max_jump_limit: usize,
    pub jump_ratio_threshold: f64,
    pub early_cutoff_fraction: f64,
}

impl JumpLimits {
    /// Early and late windows for `ngroups` groups: `e = floor(f·G)` groups at the start and
    /// the groups from `l = floor(G − f·G)` on, as upstream. Upstream divides by zero when
    /// `e = 0` (fewer than 1/f groups); here the early window is then one group long.
    pub fn windows(&self, ngroups: usize) -> (usize, usize) {
        let g = ngroups as f64;
        let e = ((self.early_cutoff_fraction * g).floor() as usize).clamp(1, ngroups.max(1));
        let l = ((g - self.early_cutoff_fraction * g).floor() as usize).min(ngroups);
        (e, l)
    }

    /// Summary of one pixel's per-group jump flags (`jumps[g]`).
    pub fn summarise(&self, jumps: &[bool]) -> JumpSummary {
        let ng = jumps.len();
        let n = jumps.iter().filter(|&&j| j).count();
        let many = n >= self.max_jump_limit;
        let mut rc = false;
        if many && ng > 0 {
            let (e, l) = self.windows(ng);
            let early = jumps[..e].iter().filter(|&&j| j).count() as f64 / e as f64;
            let late_n = ng - l;
            let late = if late_n == 0 {
                0.0
            } else {
                jumps[l..].iter().filter(|&&j| j).count() as f64 / late_n as f64
            };
            let late = if late == 0.0 { 1e-6 } else { late };
            rc = early / late >= self.jump_ratio_threshold;
        }
        JumpSummary { n, many, rc }
    }
}

/// Whether a pixel is saturated in all groups of an integration, from its first group's DQ:
/// the saturation step flags every group from the first saturated one on, so a saturated first
/// group means all groups are. Upstream also requires PEDESTAL == 0 (what ramp fitting writes
/// then); that test is dropped so that a NaN pedestal cannot hide a saturated pixel.
pub fn saturated_in_all_groups(first_group_dq: u8) -> bool {
    u32::from(first_group_dq) & dq::SATURATED != 0
}

/// scipy.stats.sigmaclip(low, high) as upstream applies it to a PEDESTAL image: mean
/// centre, population sd, inclusive bounds, iterated until nothing is removed. Returns the
/// mean and sd of the survivors. Unlike upstream, non-finite values are dropped first, so one
/// NaN no longer makes every value drop out (which disabled RC and low-pedestal detection).
/// `None` when no finite value is left.
///
/// The values are sorted once into buckets ([`BucketSorted`]), so that a round costs
/// microseconds however many values there are (the sums are f64: they differ from numpy's in
/// the last bits only).
pub fn sigmaclip_mean_std(values: &[f32], low: f64, high: f64) -> Option<(f64, f64)> {
    let sorted = BucketSorted::new(values)?;
    let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
    // The survivors of the previous round (none before the first).
    let mut n_before = None;
    loop {
        let s = sorted.stats((lo, hi))?;
        if n_before == Some(s.n) {
            return Some((s.mean, s.std));
        }
        n_before = Some(s.n);
        // The new bounds in f32 as the comparison of an f32 value with the f64 bound makes
        // them: the largest f32 below the lower bound fails it, the smallest above passes.
        lo = lo.max(f32_at_least(s.mean - low * s.std));
        hi = hi.min(f32_at_most(s.mean + high * s.std));
        if lo > hi {
            return None;
        }
    }
}

/// Running statistics of a pixel's clean slopes (integrations without any jump), Welford's
/// online form so that no stack of slopes is kept (upstream stacks every integration).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CleanSlopes {
    pub n: u32,
    mean: f64,
    m2: f64,
    /// Sum of the squared ERR of the clean slopes (what the ramp fit expects their scatter to be).
    err2: f64,
    /// Sum of their VAR_POISSON (the shot-noise part of that); NaN once one is unknown.
    vp: f64,
}

impl CleanSlopes {
    /// Adds one clean slope and its ERR; a non-finite slope is skipped (not counted, as
    /// upstream's `nanmean` ignores NaN).
    pub fn push(&mut self, slope: f64, err: f64) {
        self.push_with_poisson(slope, err, f64::NAN);
    }

    /// Adds one clean slope with its ERR and VAR_POISSON (NaN when the product has none).
    pub fn push_with_poisson(&mut self, slope: f64, err: f64, var_poisson: f64) {
        if !slope.is_finite() {
            return;
        }
        self.vp += if var_poisson.is_finite() {
            var_poisson
        } else {
            f64::NAN
        };
        self.n += 1;
        let d = slope - self.mean;
        self.mean += d / f64::from(self.n);
        self.m2 += d * (slope - self.mean);
        self.err2 += if err.is_finite() { err * err } else { f64::NAN };
    }

    /// Mean of the clean slopes (NaN if none), upstream's `nanmean`.
    pub fn mean(&self) -> f64 {
        if self.n == 0 { f64::NAN } else { self.mean }
    }

    /// Population sd (ddof 0) of the clean slopes (NaN if none), upstream's `nanstd`.
    pub fn std(&self) -> f64 {
        if self.n == 0 {
            f64::NAN
        } else {
            (self.m2 / f64::from(self.n)).sqrt()
        }
    }

    /// What the noise tests need: the count, the unbiased variance and the mean ERR² and
    /// VAR_POISSON of the clean slopes (variance NaN with fewer than 2).
    pub fn sample(&self) -> super::noise::NoiseSample {
        let n = f64::from(self.n.max(1));
        super::noise::NoiseSample {
            n: self.n,
            var: if self.n >= 2 {
                (self.m2 / (n - 1.0)) as f32
            } else {
                f32::NAN
            },
            err2: (self.err2 / n) as f32,
            vp: (self.vp / n) as f32,
            mean: self.mean() as f32,
        }
    }

    /// The scatter relative to what the ramp fit predicts: sqrt(unbiased variance / mean ERR²).
    /// About 1 for a well-behaved pixel of any brightness (the ERR includes Poisson noise, so a
    /// hot pixel is not called noisy for its shot noise). NaN with fewer than `min_n` slopes or
    /// unusable ERR values.
    pub fn noise_ratio(&self, min_n: u32) -> f64 {
        if self.n < min_n.max(2) || self.err2.is_nan() || self.err2 <= 0.0 {
            return f64::NAN;
        }
        let n = f64::from(self.n);
        ((self.m2 / (n - 1.0)) / (self.err2 / n)).sqrt()
    }
}

/// The upper tail of the standard normal distribution, P(Z > z).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// P(X >= k) for X ~ Binomial(n, p).
pub fn binomial_upper_tail(n: usize, k: usize, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n || p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    let binomial = Binomial::new(p, n as u64).expect("0 < p < 1");
    binomial.sf(k as u64 - 1)
}

/// The smallest number of jump-affected integrations (out of `n`) that a pixel whose
/// integrations are hit independently with probability `p` reaches with probability at most
/// `alpha`; `n + 1` if even all `n` are not that improbable.
pub fn frequent_jump_limit(n: usize, p: f64, alpha: f64) -> usize {
    (1..=n)
        .find(|&k| binomial_upper_tail(n, k, p) <= alpha)
        .unwrap_or(n + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_tail_matches_direct_sums() {
        // n = 4, p = 0.5: P(X >= 3) = 5/16.
        assert!((binomial_upper_tail(4, 3, 0.5) - 5.0 / 16.0).abs() < 1e-12);
        assert!((binomial_upper_tail(10, 1, 0.1) - (1.0 - 0.9f64.powi(10))).abs() < 1e-12);
        assert_eq!(binomial_upper_tail(10, 11, 0.1), 0.0);
        assert_eq!(binomial_upper_tail(10, 0, 0.1), 1.0);
    }

    #[test]
    fn normal_tail_of_five_sigma() {
        let t = normal_upper_tail(5.0);
        assert!((t / 2.866_515_7e-7 - 1.0).abs() < 1e-5, "{t}");
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_upper_tail(-1.0) - 0.841_344_746).abs() < 1e-7);
    }

    #[test]
    fn frequent_jump_limit_grows_with_the_hit_rate() {
        let alpha = normal_upper_tail(5.0);
        let k_rare = frequent_jump_limit(10, 0.0015, alpha);
        let k_common = frequent_jump_limit(10, 0.2, alpha);
        assert!((3..=4).contains(&k_rare), "{k_rare}");
        assert!(k_common > k_rare);
        assert_eq!(frequent_jump_limit(10, 0.9, alpha), 11);
    }

    #[test]
    fn sigmaclip_ignores_nan_and_outliers() {
        let mut v: Vec<f32> = (0..100).map(|i| (i % 10) as f32).collect();
        v.push(f32::NAN);
        v.push(1000.0);
        let (m, sd) = sigmaclip_mean_std(&v, 3.0, 3.0).unwrap();
        assert!((m - 4.5).abs() < 1e-12);
        assert!((sd - 8.25f64.sqrt()).abs() < 1e-12);
    }
}
