//! Deterministic random numbers for the simulator.
//!
//! The generator is xoshiro256++ (`rand_xoshiro`), seeded through splitmix64 as its authors
//! recommend (`seed_from_u64`); uniform, normal and Poisson deviates come from `rand` and
//! `rand_distr`. Cargo.lock pins those crates, so simulated data change only when the lock file
//! does. [`stream`] derives an independent generator from a seed and a list of identifiers (file
//! index, integration, row, ...): each piece of work gets its own stream, so data can be generated
//! in parallel and in any order and still be reproducible.

use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Poisson, StandardNormal};
use rand_xoshiro::Xoshiro256PlusPlus;

/// The splitmix64 output function: a bijective 64-bit mixer.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// One stream of random numbers (see [`stream`]).
#[derive(Clone, Debug)]
pub struct Rng(Xoshiro256PlusPlus);

/// The generator for `(seed, ids)`. Different id lists (including lists that differ only in length,
/// such as `[1]` and `[1, 0]`) give unrelated streams: every id is mixed in with its position and the
/// length is mixed in last; the result seeds the generator.
pub fn stream(seed: u64, ids: &[u64]) -> Rng {
    let mut h = mix64(seed ^ GOLDEN);
    for (k, &id) in ids.iter().enumerate() {
        let position = (k as u64 + 1).wrapping_mul(GOLDEN);
        h = mix64(h ^ mix64(id.wrapping_add(position)));
    }
    h = mix64(h ^ (ids.len() as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    Rng(Xoshiro256PlusPlus::seed_from_u64(h))
}

impl Rng {
    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        self.0.random()
    }

    /// A standard normal deviate.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        self.0.sample(StandardNormal)
    }

    /// A Poisson deviate with mean `lambda` (0 when `lambda` is not positive and finite). For a
    /// mean drawn from many times, build its [`Counts`] once and use [`Rng::counts`].
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        self.counts(&Counts::new(lambda))
    }

    /// A deviate of `counts`.
    #[inline]
    pub fn counts(&mut self, counts: &Counts) -> u64 {
        match &counts.0 {
            Some(p) => p.sample(&mut self.0) as u64,
            None => 0,
        }
    }

    /// Uniform integer in `[0, n)`, without modulo bias. Panics if `n == 0`, which has no valid
    /// result.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): empty range");
        self.0.random_range(0..n)
    }
}

/// The Poisson distribution of one mean, set up once: building it costs more than a draw for
/// large means, and a pixel's charge per frame is drawn once per frame with the same mean.
#[derive(Clone, Copy, Debug)]
pub struct Counts(Option<Poisson<f64>>);

impl Counts {
    /// Counts with mean `lambda`; always 0 when `lambda` is not positive and finite.
    pub fn new(lambda: f64) -> Counts {
        Counts(Poisson::new(lambda).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(mut r: Rng, n: usize) -> Vec<f64> {
        (0..n).map(|_| r.uniform()).collect()
    }

    #[test]
    fn reproducible_and_distinct() {
        assert_eq!(
            draws(stream(42, &[3, 1]), 16),
            draws(stream(42, &[3, 1]), 16)
        );
        let first = |seed, ids: &[u64]| stream(seed, ids).uniform();
        let x = first(42, &[3, 1]);
        assert_ne!(x, first(42, &[1, 3]));
        assert_ne!(x, first(43, &[3, 1]));
        assert_ne!(first(42, &[1]), first(42, &[1, 0]));
        assert_ne!(first(42, &[]), first(42, &[0]));
    }

    #[test]
    fn uniform_and_below_ranges() {
        let mut r = stream(1, &[]);
        let mut counts = [0u32; 7];
        let mut sum = 0.0;
        for _ in 0..70_000 {
            let u = r.uniform();
            assert!((0.0..1.0).contains(&u));
            sum += u;
            counts[r.below(7) as usize] += 1;
        }
        assert!((sum / 70_000.0 - 0.5).abs() < 0.01);
        // Each bin expects 10000 with sd ~93.
        assert!(
            counts.iter().all(|&c| (9_500..10_500).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn normal_moments() {
        let mut r = stream(2, &[5]);
        let n = 100_000;
        let x: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        // Standard errors: mean 0.0032, variance 0.0045.
        assert!(mean.abs() < 0.015, "{mean}");
        assert!((var - 1.0).abs() < 0.02, "{var}");
    }

    #[test]
    fn poisson_moments_small_and_large() {
        let mut r = stream(9, &[]);
        for &lambda in &[0.5, 4.0, 25.0, 100.0, 1.0e4] {
            let n = 50_000;
            let x: Vec<f64> = (0..n).map(|_| r.poisson(lambda) as f64).collect();
            let mean = x.iter().sum::<f64>() / n as f64;
            let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
            let se = (lambda / n as f64).sqrt();
            assert!(
                (mean - lambda).abs() < 5.0 * se,
                "lambda {lambda}: mean {mean}"
            );
            assert!(
                (var / lambda - 1.0).abs() < 0.04,
                "lambda {lambda}: var {var}"
            );
        }
        for lambda in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            assert_eq!(r.poisson(lambda), 0, "{lambda}");
        }
    }

    #[test]
    fn counts_built_once_draw_like_poisson() {
        let (mut a, mut b) = (stream(4, &[1]), stream(4, &[1]));
        let c = Counts::new(37.5);
        for _ in 0..1000 {
            assert_eq!(a.counts(&c), b.poisson(37.5));
        }
    }
}
