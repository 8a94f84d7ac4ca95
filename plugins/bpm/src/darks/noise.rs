//! Noisy pixels from the scatter of their clean slopes (integrations without jumps).
//!
//! Two questions, each asked as a variance test with the pixel's own number of clean slopes:
//!
//! - **Against the detector's population** (upstream's `dark_noisy_threshold` search): is the
//!   scatter improbable for a typical pixel of this detector plus this pixel's shot noise? The
//!   typical variance of a clean slope is the clipped mean of the science pixels' variances;
//!   the pixel's shot noise is its mean clean slope times the ramp fit's VAR_POISSON per unit
//!   slope on the bright pixels ([`NoiseCuts::shot_variance`]), so a hot pixel is not noisy
//!   for its shot noise, and a pixel whose READNOISE reference already
//!   knows it is noisy is still compared with the others, not with its own ERR. (The typical
//!   variance is not taken net of VAR_POISSON: for a dark pixel that is the ramp fit's estimate
//!   from its own noisy differences, clamped at 0, so the net typical variance came out 40 %
//!   low and flagged 6 in 10,000 ordinary pixels; measured on the simulator through the native
//!   engine.)
//! - **Against its own ERR**: is the scatter improbable for what the ramp fit predicted, after
//!   scaling ERR² by the detector's clipped mean ratio (ERR misses correlated noise the same
//!   way on every pixel)? This catches extra noise the fit did not expect on any pixel, bright
//!   or not.
//!
//! - **By its group differences**: the scale of the pixel's residual differences (see
//!   the module `differences`, measured from every difference of every integration, so also on
//!   a pixel whose slopes are unusable, e.g. DO_NOT_USE from a superbias made from the same
//!   darks) above the clipped mean plus `noisy_threshold` clipped sd of all pixels' scales:
//!   upstream's cut, on a far better measured scale. Not asked of hot, saturated or RC pixels,
//!   whose differences carry shot noise or a transient. With 5 to 10 clean slopes the slope
//!   tests alone found 98 % of pixels with 5-8 times the median read noise; with this, all.
//!
//! "Improbable" is a one-sided χ² test, `(n − 1)·s²/σ² ≥ χ²_{n−1}(α)` with α the tail of a
//! `dark_noisy_threshold`-σ normal event. Upstream cuts the empirical std image at its clipped
//! mean plus `noisy_threshold` clipped stds instead; with 5 to 10 clean slopes a pixel's std
//! scatters by 25-35 %, skewed upwards, so that cut flags about 1 pixel in 1,000 for noise alone
//! (measured on the simulator) while it misses noisy pixels whose READNOISE reference inflates
//! their ERR. Without VAR_POISSON (a product that lacks it) the population test is skipped and
//! only the ERR test runs.

use statrs::distribution::{ChiSquared, ContinuousCDF};

use mkrefs_support::clipped::sigma_clipped_stats;

/// The clean-slope statistics of one pixel (from `CleanSlopes::sample`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseSample {
    pub n: u32,
    /// Unbiased variance of the clean slopes; NaN with fewer than 2.
    pub var: f32,
    /// Mean ERR² of the clean slopes.
    pub err2: f32,
    /// Mean VAR_POISSON of the clean slopes; NaN when the products have none.
    pub vp: f32,
    /// Mean of the clean slopes.
    pub mean: f32,
}

/// The detector-wide references of the two tests and the critical values.
#[derive(Clone, Debug)]
pub struct NoiseCuts {
    /// Typical variance of a clean slope (population test); None without VAR_POISSON.
    pub typical: Option<f64>,
    /// Clipped mean of variance / ERR² (ERR test).
    pub err_scale: Option<f64>,
    /// VAR_POISSON per unit slope of the bright pixels (see [`NoiseCuts::shot_variance`]).
    pub shot_per_slope: Option<f64>,
    /// Fewest clean slopes a pixel needs to be tested.
    pub min_n: u32,
    /// `crit[n]`: the critical value of (n − 1)·s²/σ² for `n` clean slopes.
    crit: Vec<f64>,
}

/// What the two tests say of one pixel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoiseVerdict {
    pub against_population: bool,
    pub against_err: bool,
    /// The scale of the pixel's group differences against the others' (decided in step 3 from
    /// `DiffFindings::sigma`).
    pub against_differences: bool,
}

impl NoiseVerdict {
    pub fn noisy(self) -> bool {
        self.against_population || self.against_err || self.against_differences
    }
}

/// The upper critical value of χ² with `dof` degrees of freedom at tail probability `alpha`
/// (bisection on the survival function: accurate where inverse-CDF methods lose precision).
pub fn chi2_upper_critical(dof: u32, alpha: f64) -> f64 {
    let chi = ChiSquared::new(f64::from(dof.max(1))).expect("dof > 0");
    let (mut lo, mut hi) = (0.0f64, f64::from(dof.max(1)) + 10.0);
    while chi.sf(hi) > alpha {
        hi *= 2.0;
    }
    for _ in 0..200 {
        let mid = 0.5 * (lo + hi);
        if chi.sf(mid) > alpha {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// Bright pixels needed to measure VAR_POISSON per unit slope.
const MIN_BRIGHT: usize = 10;

fn median(mut v: Vec<f32>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    (!v.is_empty()).then(|| {
        mkrefs_support::stats::median_in_place(
            &mut v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>(),
        )
    })
}

/// The clipped mean of `values` (`clip_sigma`, `iters` as the population clip of upstream).
fn clipped_mean(values: &[f32], clip_sigma: f64, iters: usize) -> Option<f64> {
    sigma_clipped_stats(values, clip_sigma, iters).map(|s| s.mean)
}

impl NoiseCuts {
    /// The references from the science pixels' samples (`tested[i]` false for reference and
    /// fully saturated pixels). `alpha` is the one-sided tail probability of the tests.
    pub fn new(
        samples: &[NoiseSample],
        tested: &[bool],
        min_n: u32,
        alpha: f64,
        clip: (f64, usize),
    ) -> NoiseCuts {
        let usable = || {
            samples
                .iter()
                .zip(tested)
                .filter(move |(s, t)| **t && s.n >= min_n && s.var.is_finite())
                .map(|(s, _)| s)
        };
        let has_vp = usable().any(|s| s.vp.is_finite());
        let variances: Vec<f32> = usable().map(|s| s.var).collect();
        let ratio: Vec<f32> = usable()
            .filter(|s| s.err2.is_finite() && s.err2 > 0.0)
            .map(|s| s.var / s.err2)
            .collect();
        let max_n = usable().map(|s| s.n).max().unwrap_or(0);
        // The two clips are independent; each is partly serial (its median), so side by side.
        let (typical, err_scale) = rayon::join(
            || clipped_mean(&variances, clip.0, clip.1).filter(|&t| has_vp && t > 0.0),
            || clipped_mean(&ratio, clip.0, clip.1).filter(|&c| c > 0.0),
        );
        // Bright: a mean slope 10 typical clean-slope sd above 0, where VAR_POISSON is the
        // shot noise of the slope rather than of the noise in it.
        let per_slope: Vec<f32> = match typical {
            Some(t) => usable()
                .filter(|s| s.vp.is_finite() && f64::from(s.mean) > 10.0 * t.sqrt())
                .map(|s| s.vp / s.mean)
                .collect(),
            None => Vec::new(),
        };
        let shot_per_slope = (per_slope.len() >= MIN_BRIGHT)
            .then(|| median(per_slope))
            .flatten();
        let crit = (0..=max_n)
            .map(|n| {
                if n >= min_n.max(2) {
                    chi2_upper_critical(n - 1, alpha)
                } else {
                    f64::INFINITY
                }
            })
            .collect();
        NoiseCuts {
            typical,
            shot_per_slope,
            err_scale,
            min_n,
            crit,
        }
    }

    /// The shot-noise variance of a pixel's clean slope: VAR_POISSON per unit slope of the
    /// bright pixels times the pixel's mean clean slope. jwst computes VAR_POISSON of each
    /// integration from that integration's own differences (clamped at 0), so on a faint pixel
    /// it measures the pixel's noise, not its charge: a noisy pixel got a VAR_POISSON that
    /// hid it (measured on the realistic simulator: 78 % of the noisy pixels found with it).
    /// Without enough bright pixels, the pixel's mean VAR_POISSON.
    pub fn shot_variance(&self, s: &NoiseSample) -> f64 {
        match self.shot_per_slope {
            Some(k) if s.mean.is_finite() => k * f64::from(s.mean).max(0.0),
            _ => f64::from(s.vp),
        }
    }

    /// The two tests on one pixel.
    pub fn verdict(&self, s: &NoiseSample) -> NoiseVerdict {
        let Some(&crit) = self.crit.get(s.n as usize) else {
            return NoiseVerdict::default();
        };
        if s.n < self.min_n || !s.var.is_finite() || !crit.is_finite() {
            return NoiseVerdict::default();
        }
        let stat = |expected: f64| {
            expected > 0.0 && f64::from(s.n - 1) * f64::from(s.var) / expected >= crit
        };
        NoiseVerdict {
            against_population: self
                .typical
                .is_some_and(|t| s.vp.is_finite() && stat(t + self.shot_variance(s))),
            against_err: self
                .err_scale
                .is_some_and(|c| s.err2.is_finite() && stat(c * f64::from(s.err2))),
            against_differences: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chi2_critical_values_match_tables() {
        // χ²(9) at 0.05 is 16.919; at 0.001, 27.877.
        assert!((chi2_upper_critical(9, 0.05) - 16.919).abs() < 1e-3);
        assert!((chi2_upper_critical(9, 0.001) - 27.877).abs() < 1e-3);
    }

    fn sample(n: u32, var: f32, err2: f32, vp: f32) -> NoiseSample {
        NoiseSample {
            n,
            var,
            err2,
            vp,
            mean: 0.0,
        }
    }

    fn cuts(extra: &[NoiseSample]) -> NoiseCuts {
        // A population of ordinary pixels: slope variance 1 (read noise), ERR² 1, no shot noise.
        let mut s: Vec<NoiseSample> = (0..1000)
            .map(|i| sample(10, 0.8 + 0.4 * (i % 11) as f32 / 10.0, 1.0, 0.0))
            .collect();
        s.extend_from_slice(extra);
        let tested = vec![true; s.len()];
        NoiseCuts::new(&s, &tested, 5, 2.87e-7, (5.0, 5))
    }

    #[test]
    fn a_noisy_pixel_known_to_its_err_is_noisy_against_the_population() {
        let c = cuts(&[]);
        // Read noise 6x the typical: variance 36, and the READNOISE reference knew (ERR² 36).
        let v = c.verdict(&sample(10, 36.0, 36.0, 0.0));
        assert_eq!(
            v,
            NoiseVerdict {
                against_population: true,
                against_err: false,
                against_differences: false,
            }
        );
    }

    #[test]
    fn a_hot_pixels_shot_noise_is_not_noise() {
        let c = cuts(&[]);
        // Shot noise 25 times the read-noise variance, in ERR and VAR_POISSON.
        let v = c.verdict(&sample(10, 27.0, 26.0, 25.0));
        assert!(!v.noisy(), "{v:?}");
    }

    #[test]
    fn noise_the_fit_did_not_expect_is_noisy_against_err() {
        let c = cuts(&[]);
        // A bright pixel (shot noise 25) with 8 times the variance its ERR predicts.
        let v = c.verdict(&sample(10, 208.0, 26.0, 25.0));
        assert!(v.against_err, "{v:?}");
    }

    #[test]
    fn too_few_clean_slopes_are_not_tested_and_missing_poisson_skips_the_population() {
        let c = cuts(&[]);
        assert!(!c.verdict(&sample(4, 100.0, 1.0, 0.0)).noisy());
        let v = c.verdict(&sample(10, 36.0, 36.0, f32::NAN));
        assert!(!v.against_population);
    }
}
