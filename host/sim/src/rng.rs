//! Deterministic random numbers for the simulator.
//!
//! The generator is written out here (xoshiro256++ seeded through splitmix64, both by Blackman and
//! Vigna) rather than taken from a crate, so that simulated test data stay bit-identical whatever
//! crate versions are resolved. [`stream`] derives an independent generator from a seed and a list of
//! identifiers (file index, integration, row, ...): each piece of work gets its own stream, so data
//! can be generated in parallel and in any order and still be reproducible.

/// The splitmix64 output function: a bijective 64-bit mixer.
#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// One step of splitmix64: advances `state` and returns the next output.
#[inline]
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN);
    mix64(*state)
}

/// A xoshiro256++ generator with a cached second normal deviate.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    cached_normal: Option<f64>,
}

/// The generator for `(seed, ids)`. Different id lists (including lists that differ only in length,
/// such as `[1]` and `[1, 0]`) give unrelated streams: every id is mixed in with its position and the
/// length is mixed in last, then the result seeds splitmix64, which fills the xoshiro state.
pub fn stream(seed: u64, ids: &[u64]) -> Rng {
    let mut h = mix64(seed ^ GOLDEN);
    for (k, &id) in ids.iter().enumerate() {
        let position = (k as u64 + 1).wrapping_mul(GOLDEN);
        h = mix64(h ^ mix64(id.wrapping_add(position)));
    }
    h = mix64(h ^ (ids.len() as u64).wrapping_mul(0xd1b5_4a32_d192_ed03));
    Rng::from_seed(h)
}

impl Rng {
    /// Seed the four state words with consecutive splitmix64 outputs (the seeding the xoshiro authors
    /// recommend; it cannot produce the forbidden all-zero state in practice).
    pub fn from_seed(seed: u64) -> Rng {
        let mut sm = seed;
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng {
            s,
            cached_normal: None,
        }
    }

    /// The next 64 random bits (xoshiro256++).
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A standard normal deviate (Marsaglia's polar method). Each accepted pair yields two deviates;
    /// the second is cached and returned by the next call, so the sequence stays deterministic.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.cached_normal.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.cached_normal = Some(v * f);
                return u * f;
            }
        }
    }

    /// A Poisson deviate with mean `lambda`.
    ///
    /// - `lambda <= 0` or NaN gives 0.
    /// - `lambda < 30`: exact, by Knuth's product-of-uniforms method (cost grows with lambda, which
    ///   is why it is used only for small means).
    /// - `lambda >= 30`: normal approximation with continuity correction,
    ///   `floor(lambda + sqrt(lambda)·z + 0.5)` clamped at 0. The skew it ignores is about
    ///   `1/sqrt(lambda)` of a count (≤ 0.18 at the switch), far below the read noise this simulates.
    pub fn poisson(&mut self, lambda: f64) -> u64 {
        if lambda.is_nan() || lambda <= 0.0 {
            return 0;
        }
        if lambda < 30.0 {
            let limit = (-lambda).exp();
            let mut k = 0u64;
            let mut p = self.uniform();
            while p > limit {
                k += 1;
                p *= self.uniform();
            }
            k
        } else {
            let x = (lambda + lambda.sqrt() * self.normal() + 0.5).floor();
            if x <= 0.0 { 0 } else { x as u64 }
        }
    }

    /// Uniform integer in `[0, n)` without modulo bias (Lemire's multiply-and-reject).
    /// Panics if `n == 0`, which has no valid result.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below(0): empty range");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_vectors() {
        // splitmix64 from state 0: first output 0xe220a8397b1dcdaf (Vigna's reference code).
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xe220_a839_7b1d_cdaf);
        // xoshiro256++ from state [1, 2, 3, 4]: first output rotl(1 + 4, 23) + 1.
        let mut r = Rng {
            s: [1, 2, 3, 4],
            cached_normal: None,
        };
        assert_eq!(r.next_u64(), 41_943_041);
    }

    #[test]
    fn reproducible_and_distinct() {
        let a: Vec<u64> = (0..16)
            .map({
                let mut r = stream(42, &[3, 1]);
                move |_| r.next_u64()
            })
            .collect();
        let mut r = stream(42, &[3, 1]);
        let b: Vec<u64> = (0..16).map(|_| r.next_u64()).collect();
        assert_eq!(a, b);
        let first = |seed, ids: &[u64]| stream(seed, ids).next_u64();
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
        assert_eq!(r.poisson(0.0), 0);
        assert_eq!(r.poisson(-3.0), 0);
        assert_eq!(r.poisson(f64::NAN), 0);
    }
}
