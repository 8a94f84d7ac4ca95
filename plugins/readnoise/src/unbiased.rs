//! The read noise without the bias of the clipped standard deviation.
//!
//! The std (ddof 0) of a pixel's sigma-clipped CDS samples is lower than the noise that made
//! them in three ways: ddof 0 instead of 1, the square root (E[s] = c4(n)·σ even for ddof 1),
//! and the clip, which removes the tails of the normal distribution along with the outliers
//! (cut at ±c·σ, a normal keeps 1 - 2cφ(c)/(2Φ(c) - 1) of its variance: 2.7 % at c = 3). For 50
//! samples clipped at 3 sigma in 3 rounds the three take about 2.7 % off.
//!
//! The textbook truncation factor assumes fixed bounds at the true ±c·σ, but the clip's bounds
//! come from the same few samples (their median and std), which for small n keeps noticeably
//! more of the variance than the factor says (it over-corrects by 0.5 % at n = 50, 1 % at
//! n = 18). So the factor is measured for the clip actually used: the mean clipped std of many
//! sets of n standard-normal values, clipped exactly as the pixels are (same sigma and
//! iterations). Dividing by it makes the estimate unbiased for normal noise, whatever n, sigma
//! and iterations. The simulation is deterministic (a fixed seed per n) and runs once per
//! sample count met in a job (about a million draws, some 30 ms), so every pixel with the same
//! number of finite samples gets the same factor.

use std::collections::HashMap;
use std::sync::Mutex;

use mkrefs_support::stats::clipped_mean_std_f32;

/// How many normal values each factor is measured from: its relative standard error is about
/// 1/sqrt(2·DRAWS), 0.07 %, and it takes about 30 ms in a release build.
const DRAWS: usize = 1 << 20;

/// The correction factors of one clip (sigma, iterations), by sample count.
#[derive(Debug)]
pub struct ClipCorrection {
    sigma: f64,
    maxiters: usize,
    /// Measured up front for the counts most pixels have (all samples finite), so the pixel
    /// loop reads them without a lock.
    expected: Vec<(usize, f64)>,
    /// Other counts (pixels with NaN samples), measured when first met.
    others: Mutex<HashMap<usize, f64>>,
}

impl ClipCorrection {
    /// The correction of a clip at `sigma` in at most `maxiters` rounds, measured now for the
    /// sample counts in `expected`.
    pub fn new(sigma: f64, maxiters: usize, expected: &[usize]) -> Self {
        let mut counts: Vec<usize> = expected.iter().copied().filter(|&n| n >= 2).collect();
        counts.sort_unstable();
        counts.dedup();
        ClipCorrection {
            sigma,
            maxiters,
            expected: counts
                .into_iter()
                .map(|n| (n, 1.0 / mean_clipped_std(n, sigma, maxiters)))
                .collect(),
            others: Mutex::new(HashMap::new()),
        }
    }

    /// σ of the normal noise whose `n` finite samples (before the clip), clipped, have the std
    /// `std` (ddof 0); NaN for fewer than 2 samples.
    pub fn sigma(&self, std: f64, n: usize) -> f64 {
        if n < 2 {
            return f64::NAN;
        }
        std * self.factor(n)
    }

    /// 1 / E[clipped std] of `n` standard-normal values, measured once per `n`.
    fn factor(&self, n: usize) -> f64 {
        if let Some(&(_, f)) = self.expected.iter().find(|e| e.0 == n) {
            return f;
        }
        let mut others = self.others.lock().expect("correction cache");
        *others
            .entry(n)
            .or_insert_with(|| 1.0 / mean_clipped_std(n, self.sigma, self.maxiters))
    }
}

/// The mean clipped std (ddof 0) of sets of `n` standard-normal values.
fn mean_clipped_std(n: usize, sigma: f64, maxiters: usize) -> f64 {
    let sets = (DRAWS / n).max(4096);
    let mut normal = Normal::new(0x5eed_0000 ^ n as u64);
    let mut values = vec![0f32; n];
    let mut scratch = Vec::with_capacity(n);
    let mut sum = 0.0;
    for _ in 0..sets {
        values.iter_mut().for_each(|v| *v = normal.next() as f32);
        sum += clipped_mean_std_f32(&values, sigma, maxiters, &mut scratch).map_or(0.0, |s| s.std);
    }
    sum / sets as f64
}

/// Standard-normal values from SplitMix64 and the Box-Muller transform: enough for a
/// deterministic Monte Carlo mean, without a random-number crate in the generator.
struct Normal {
    state: u64,
    spare: Option<f64>,
}

impl Normal {
    fn new(seed: u64) -> Self {
        Normal {
            state: seed,
            spare: None,
        }
    }

    fn uniform(&mut self) -> f64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // 53 random bits in (0, 1].
        ((z >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    fn next(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let (u1, u2) = (self.uniform(), self.uniform());
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::rng::stream;

    /// The corrected estimate over many pixels of `n` normal samples of σ = 7 (from the
    /// simulator's generator, not the one the factor was measured with): mean and median ratio.
    fn estimates(n: usize, sigma: f64, maxiters: usize) -> (f64, f64, f64) {
        let c = ClipCorrection::new(sigma, maxiters, &[n]);
        let mut rng = stream(n as u64, &[]);
        let mut scratch = Vec::new();
        let (mut est, mut raw) = (Vec::new(), 0.0);
        let pixels = 20_000;
        for _ in 0..pixels {
            let xs: Vec<f32> = (0..n).map(|_| (7.0 * rng.normal()) as f32).collect();
            let s = clipped_mean_std_f32(&xs, sigma, maxiters, &mut scratch).unwrap();
            est.push(c.sigma(s.std, n) / 7.0);
            raw += s.std / 7.0;
        }
        let mean = est.iter().sum::<f64>() / pixels as f64;
        est.sort_by(f64::total_cmp);
        (mean, est[pixels / 2], raw / pixels as f64)
    }

    #[test]
    fn the_corrected_clipped_std_is_unbiased_for_normal_noise() {
        for (n, sigma, maxiters) in [(50, 3.0, 3), (18, 3.0, 3), (90, 3.0, 3), (40, 2.5, 5)] {
            let (mean, median, raw) = estimates(n, sigma, maxiters);
            // 20,000 pixels: the mean is good to 1/sqrt(2n·20000), under 0.2 %.
            assert!(
                (mean - 1.0).abs() < 0.004,
                "n {n} sigma {sigma}: mean {mean}"
            );
            // The median of a std is below its mean by about 1/(12n) of it.
            assert!(
                (median - 1.0).abs() < 0.006,
                "n {n} sigma {sigma}: median {median}"
            );
            // Uncorrected, it is low by more than that.
            assert!(raw < 0.985, "n {n} sigma {sigma}: uncorrected {raw}");
        }
    }

    #[test]
    fn fewer_than_two_samples_have_no_estimate() {
        let c = ClipCorrection::new(3.0, 3, &[]);
        assert!(c.sigma(1.0, 1).is_nan());
        assert!(c.sigma(1.0, 0).is_nan());
    }
}
