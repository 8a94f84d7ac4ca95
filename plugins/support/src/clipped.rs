//! Sigma-clipped statistics of whole images (millions of f32 values) from one counting sort, for
//! thresholds that follow astropy's clipping rule but need not reproduce numpy's sums to the
//! bit.
//!
//! The rule is astropy's `sigma_clip(cenfunc='median', stdfunc='std')` followed by
//! `sigma_clipped_stats`: NaN and ±inf are left out; each round takes the median and the
//! population sd (about the mean) of the survivors and keeps the values within `median ∓
//! sigma·sd` (inclusive); the rounds stop when one removes nothing or after `maxiters`; the
//! result is the median, mean and sd of the last survivors.
//!
//! [`crate::stats::clip_bounds_flat`] reproduces numpy to the bit (f32 sums in numpy's pairwise
//! order over a compacted copy of the survivors), which costs about six passes over the values
//! and a copy per round. Here the finite values are sorted once by the upper 16 bits of their
//! order keys (a counting sort: one pass to count, one to place), and each bucket's count, sum
//! and sum of squares about a centre are taken once. A round then reads the tables for the
//! buckets wholly inside its bounds and only the values of the two buckets its bounds cut
//! through; the median is a selection within the bucket that holds it. The sums are f64 (about
//! the median of a sample, so the variance is not the difference of two large numbers), so the
//! mean and sd can differ from numpy's f32 results in the last bits of an f32.

use rayon::prelude::*;

use crate::stats::f32_order_key;

/// Buckets: the upper 16 bits of an order key.
const BUCKETS: usize = 1 << 16;

/// Below this many values one thread sorts them (the per-piece tables cost more than the work).
const PAR_MIN: usize = 1 << 18;

/// Values sampled for the centre of the sums: one in this many.
const SAMPLE_STRIDE: usize = 997;

/// The survivors of a clip and their statistics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClippedStats {
    /// The survivors are the finite values `x` with `lo <= x <= hi` (the tightest bounds of all
    /// rounds; infinite when no round clipped on that side).
    pub lo: f32,
    pub hi: f32,
    pub n: usize,
    pub median: f64,
    pub mean: f64,
    /// Population sd (ddof 0).
    pub std: f64,
}

impl ClippedStats {
    /// Whether `x` is one of the survivors.
    #[inline]
    pub fn keeps(&self, x: f32) -> bool {
        x >= self.lo && x <= self.hi && x.is_finite()
    }
}

/// The clip of `values` (see the module documentation); `None` when no finite value survives.
pub fn sigma_clipped_stats(values: &[f32], sigma: f64, maxiters: usize) -> Option<ClippedStats> {
    BucketSorted::new(values)?.sigma_clip(sigma, maxiters)
}

/// A rough centre of the finite values (the median of a sample).
fn sample_centre(values: &[f32]) -> Option<f64> {
    let mut sample: Vec<f32> = values
        .iter()
        .step_by(SAMPLE_STRIDE)
        .copied()
        .filter(|x| x.is_finite())
        .collect();
    if sample.is_empty() {
        return values.iter().find(|x| x.is_finite()).map(|&x| f64::from(x));
    }
    let mid = sample.len() / 2;
    Some(f64::from(
        *sample.select_nth_unstable_by(mid, f32::total_cmp).1,
    ))
}

/// The bucket of a finite value; -0.0 is stored as +0.0 (see [`BucketSorted::new`]), so that the
/// buckets' order is the order of f32 comparison.
#[inline(always)]
fn bucket(x: f32) -> usize {
    (f32_order_key(x + 0.0) >> 16) as usize
}

/// The finite values of an image sorted by bucket, with each bucket's count and sums: the
/// statistics of the values within any bounds then cost a few microseconds ([`Self::stats`]),
/// for clipping rules other than [`sigma_clipped_stats`]'s (e.g. scipy's mean-centred one).
pub struct BucketSorted {
    /// Bucket `b` holds `values[start[b]..start[b + 1]]`.
    values: Vec<f32>,
    start: Vec<usize>,
    /// Per bucket: the sum of `x - centre` and of its square.
    sum: Vec<f64>,
    sum_sq: Vec<f64>,
    centre: f64,
}

impl BucketSorted {
    /// Counting sort of the finite values of `values` by bucket (pieces in parallel, each
    /// placing its values in its own slots of every bucket). -0.0 becomes +0.0: they compare
    /// equal, and would otherwise fall in different buckets. `None` without a finite value.
    pub fn new(values: &[f32]) -> Option<BucketSorted> {
        let centre = sample_centre(values)?;
        let pieces: Vec<&[f32]> = if values.len() < PAR_MIN {
            vec![values]
        } else {
            values
                .chunks(values.len().div_ceil(2 * rayon::current_num_threads()))
                .collect()
        };
        let counts: Vec<Vec<u32>> = pieces.par_iter().map(|p| histogram(p)).collect();
        // Where each piece's values of each bucket go: buckets in order, pieces in order.
        let mut start = Vec::with_capacity(BUCKETS + 1);
        let mut offsets: Vec<Vec<usize>> = vec![vec![0; BUCKETS]; pieces.len()];
        let mut at = 0usize;
        for b in 0..BUCKETS {
            start.push(at);
            for (k, c) in counts.iter().enumerate() {
                offsets[k][b] = at;
                at += c[b] as usize;
            }
        }
        start.push(at);
        // Not zeroed first (a quarter of the sort's time): every slot is written below.
        let mut sorted: Vec<f32> = Vec::with_capacity(at);
        let out = SharedSlots(sorted.as_mut_ptr());
        pieces
            .par_iter()
            .zip(offsets)
            .for_each(|(piece, mut next)| {
                for &x in piece.iter().filter(|x| x.is_finite()) {
                    let x = x + 0.0;
                    let slot = &mut next[bucket(x)];
                    // SAFETY: the slots of (piece, bucket) are disjoint from every other
                    // piece's and bucket's, lie inside `sorted` (the counts sum to its length),
                    // and each is written once.
                    unsafe { out.write(*slot, x) };
                    *slot += 1;
                }
            });
        // SAFETY: the pieces wrote every slot of 0..at once (the counts they were placed by
        // are their own finite values per bucket, which sum to `at`).
        unsafe { sorted.set_len(at) };
        let (sum, sum_sq) = (0..BUCKETS)
            .into_par_iter()
            .map(|b| {
                sorted[start[b]..start[b + 1]]
                    .iter()
                    .map(|&x| f64::from(x) - centre)
                    .fold((0.0, 0.0), |(s, q), d| (s + d, q + d * d))
            })
            .unzip();
        Some(BucketSorted {
            values: sorted,
            start,
            sum,
            sum_sq,
            centre,
        })
    }

    /// astropy's clip of the values (see the module documentation).
    pub fn sigma_clip(&self, sigma: f64, maxiters: usize) -> Option<ClippedStats> {
        let mut bounds = (f32::NEG_INFINITY, f32::INFINITY);
        let mut previous_n = None;
        let mut rounds = 0;
        loop {
            let s = self.stats(bounds)?;
            if previous_n == Some(s.n) || rounds >= maxiters {
                return Some(s);
            }
            previous_n = Some(s.n);
            rounds += 1;
            bounds = (
                bounds.0.max(f32_at_least(s.median - sigma * s.std)),
                bounds.1.min(f32_at_most(s.median + sigma * s.std)),
            );
        }
    }

    /// The statistics of all the finite values.
    pub fn all(&self) -> ClippedStats {
        self.stats((f32::NEG_INFINITY, f32::INFINITY))
            .expect("made from at least one finite value")
    }

    fn bucket_values(&self, b: usize) -> &[f32] {
        &self.values[self.start[b]..self.start[b + 1]]
    }

    /// The statistics of the values within `lo..=hi`; `None` if there are none.
    pub fn stats(&self, (lo, hi): (f32, f32)) -> Option<ClippedStats> {
        let keep = |x: f32| x >= lo && x <= hi;
        let first = if lo == f32::NEG_INFINITY {
            0
        } else {
            bucket(lo)
        };
        let last = if hi == f32::INFINITY {
            BUCKETS - 1
        } else {
            bucket(hi)
        };
        if first > last {
            return None;
        }
        // The survivors bucket by bucket: the two end buckets counted value by value.
        let mut count = vec![0usize; last - first + 1];
        let (mut n, mut sum, mut sum_sq) = (0usize, 0.0f64, 0.0f64);
        for b in first..=last {
            if b == first || b == last {
                for &x in self.bucket_values(b).iter().filter(|&&x| keep(x)) {
                    let d = f64::from(x) - self.centre;
                    (sum, sum_sq) = (sum + d, sum_sq + d * d);
                    count[b - first] += 1;
                }
            } else {
                count[b - first] = self.start[b + 1] - self.start[b];
                (sum, sum_sq) = (sum + self.sum[b], sum_sq + self.sum_sq[b]);
            }
            n += count[b - first];
        }
        if n == 0 {
            return None;
        }
        // The two middle values: their buckets and their ranks within them.
        let locate = |k: usize| {
            let mut below = 0;
            let (b, c) = count
                .iter()
                .enumerate()
                .find(|&(_, &c)| {
                    below += c;
                    below > k
                })
                .expect("k < n");
            (first + b, k - (below - c))
        };
        let ((b0, r0), (b1, r1)) = (locate((n - 1) / 2), locate(n / 2));
        let survivors = |b: usize| -> Vec<f32> {
            self.bucket_values(b)
                .iter()
                .copied()
                .filter(|&x| keep(x))
                .collect()
        };
        let mut lower = survivors(b0);
        let (_, &mut a, above) = lower.select_nth_unstable_by(r0, f32::total_cmp);
        let b = if (b1, r1) == (b0, r0) {
            a
        } else if b1 == b0 {
            // The next value up is the least of those the selection left above.
            above.iter().copied().fold(f32::INFINITY, f32::min)
        } else {
            *survivors(b1).select_nth_unstable_by(r1, f32::total_cmp).1
        };
        let median = 0.5 * (f64::from(a) + f64::from(b));
        let nf = n as f64;
        let mean_d = sum / nf;
        Some(ClippedStats {
            lo,
            hi,
            n,
            median,
            mean: self.centre + mean_d,
            std: (sum_sq / nf - mean_d * mean_d).max(0.0).sqrt(),
        })
    }
}

/// The counts of a piece's finite values per bucket.
fn histogram(piece: &[f32]) -> Vec<u32> {
    let mut counts = vec![0u32; BUCKETS];
    for &x in piece.iter().filter(|x| x.is_finite()) {
        counts[bucket(x)] += 1;
    }
    counts
}

/// The sorted values' buffer, written by several threads at disjoint slots.
#[derive(Clone, Copy)]
struct SharedSlots(*mut f32);

// SAFETY: only used for writes to disjoint slots (see `BucketSorted::new`).
unsafe impl Send for SharedSlots {}
unsafe impl Sync for SharedSlots {}

impl SharedSlots {
    /// # Safety
    /// `i` is inside the buffer and no other thread writes or reads slot `i` meanwhile.
    unsafe fn write(self, i: usize, x: f32) {
        unsafe { *self.0.add(i) = x };
    }
}

/// The smallest f32 that is >= `x`: comparing an f32 with it is comparing the f32 with `x`.
pub fn f32_at_least(x: f64) -> f32 {
    let v = x as f32;
    if f64::from(v) < x { v.next_up() } else { v }
}

/// The largest f32 that is <= `x`.
pub fn f32_at_most(x: f64) -> f32 {
    let v = x as f32;
    if f64::from(v) > x { v.next_down() } else { v }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// astropy's rule on a copy, the plain way: sort, median, mean, sd, clip, repeat.
    fn reference(values: &[f32], sigma: f64, maxiters: usize) -> Option<(usize, f64, f64, f64)> {
        let mut s: Vec<f64> = values
            .iter()
            .filter(|x| x.is_finite())
            .map(|&x| f64::from(x))
            .collect();
        let stats = |s: &mut Vec<f64>| {
            s.sort_by(f64::total_cmp);
            let n = s.len();
            let median = 0.5 * (s[(n - 1) / 2] + s[n / 2]);
            let mean = s.iter().sum::<f64>() / n as f64;
            let sd = (s.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64).sqrt();
            (n, median, mean, sd)
        };
        let mut rounds = 0;
        loop {
            if s.is_empty() {
                return None;
            }
            let (n, median, mean, sd) = stats(&mut s);
            if rounds == maxiters {
                return Some((n, median, mean, sd));
            }
            rounds += 1;
            let (lo, hi) = (median - sigma * sd, median + sigma * sd);
            s.retain(|&v| v >= lo && v <= hi);
            if s.len() == n {
                return Some((n, median, mean, sd));
            }
        }
    }

    fn lcg_values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                let mut u = 0.0;
                for _ in 0..4 {
                    s = s
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    u += (s >> 40) as f64 / (1u64 << 24) as f64;
                }
                // Outliers and non-finite values sprinkled in.
                match i % 1009 {
                    0 => 500.0,
                    1 => f32::NAN,
                    2 => -f32::INFINITY,
                    _ => (0.01 + (u - 2.0) * 0.3) as f32,
                }
            })
            .collect()
    }

    #[test]
    fn agrees_with_the_plain_rule_serial_and_parallel() {
        for n in [1, 2, 5, 1000, PAR_MIN + 12_345] {
            let v = lcg_values(n, n as u64);
            for maxiters in [1, 3, 5, 100] {
                let got = sigma_clipped_stats(&v, 3.0, maxiters);
                let want = reference(&v, 3.0, maxiters);
                match (got, want) {
                    (None, None) => {}
                    (Some(g), Some((wn, wmed, wmean, wsd))) => {
                        assert_eq!(g.n, wn, "n={n} maxiters={maxiters}");
                        assert_eq!(g.median, wmed, "n={n} maxiters={maxiters}");
                        assert!((g.mean - wmean).abs() <= 1e-9 * (1.0 + wmean.abs()));
                        assert!((g.std - wsd).abs() <= 1e-9 * (1.0 + wsd));
                        let kept = v.iter().filter(|&&x| g.keeps(x)).count();
                        assert_eq!(kept, wn, "keeps() names the survivors");
                    }
                    (g, w) => panic!("n={n} maxiters={maxiters}: {g:?} vs {w:?}"),
                }
            }
        }
    }

    #[test]
    fn the_two_middle_values_in_different_buckets_and_no_finite_value() {
        // The middle pair straddles buckets: -1 and 1 have different upper key halves.
        let v = [-5.0f32, -1.0, 1.0, 5.0];
        let s = sigma_clipped_stats(&v, 10.0, 5).unwrap();
        assert_eq!((s.n, s.median, s.mean), (4, 0.0, 0.0));
        assert!(sigma_clipped_stats(&[f32::NAN, f32::INFINITY], 3.0, 5).is_none());
        assert!(sigma_clipped_stats(&[], 3.0, 5).is_none());
    }

    #[test]
    fn bounds_compare_as_their_f64_values() {
        let x = 0.1f64;
        assert!(f64::from(f32_at_least(x)) >= x && f64::from(f32_at_most(x)) <= x);
        assert_eq!(f32_at_least(0.5), 0.5);
    }
}
