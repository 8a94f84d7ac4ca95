//! Per-pixel statistics of [`LANES`] neighbouring pixels at once. The per-pixel loops of the
//! generators (a clipped mean over a stack of frames, a median over integrations) spent most of
//! their time in data-dependent branches of selections and sorts, which mispredict on every
//! other comparison; the same work done for 16 pixels side by side, with a branch-free sorting
//! network and loops over the lanes, compiles to vector instructions.

use crate::stats::{ClipBounds, StackStats};

/// Pixels processed together.
pub const LANES: usize = 16;

/// One value of each of [`LANES`] pixels.
pub type Lanes = [f32; LANES];

/// Values `i0..i0 + n` of a row-major plane as full lanes (NaN past `n`, `n <= LANES`), so that
/// the loops over the lanes have a fixed length and vectorise.
#[inline(always)]
pub fn load(plane: &[f32], i0: usize, n: usize) -> Lanes {
    match plane.get(i0..i0 + LANES) {
        Some(full) if n == LANES => full.try_into().expect("LANES values"),
        _ => std::array::from_fn(|l| if l < n { plane[i0 + l] } else { f32::NAN }),
    }
}

/// A comparator network that sorts `n` values (Batcher's odd-even merge sort for the next power
/// of two, without the comparators that reach past `n`: padded with +∞, those positions never
/// move), applied to the lanes side by side.
pub struct SortNetwork {
    n: usize,
    pairs: Vec<(usize, usize)>,
}

impl SortNetwork {
    pub fn new(n: usize) -> SortNetwork {
        let size = n.next_power_of_two();
        let mut pairs = Vec::new();
        let mut p = 1;
        while p < size {
            let mut k = p;
            while k >= 1 {
                let mut j = k % p;
                while j + k < size {
                    for i in 0..k.min(size - j - k) {
                        if (i + j) / (2 * p) == (i + j + k) / (2 * p) && i + j + k < n {
                            pairs.push((i + j, i + j + k));
                        }
                    }
                    j += 2 * k;
                }
                k /= 2;
            }
            p *= 2;
        }
        SortNetwork { n, pairs }
    }

    /// How many values it sorts.
    pub fn len(&self) -> usize {
        self.n
    }

    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The comparators, in order: `(a, b)` puts the smaller of positions a and b at a.
    pub fn pairs(&self) -> &[(usize, usize)] {
        &self.pairs
    }

    /// Sorts each lane of `v` (`v.len()` is the network's `n`; no NaN: give non-finite values
    /// as +∞). Inlined so that it takes the instruction set of its caller ([`clip_bounds_lanes`]).
    #[inline(always)]
    pub fn sort(&self, v: &mut [Lanes]) {
        debug_assert_eq!(v.len(), self.n);
        for &(a, b) in &self.pairs {
            let (lo, hi) = v.split_at_mut(b);
            let (x, y) = (&mut lo[a], &mut hi[0]);
            for l in 0..LANES {
                let (p, q) = (x[l], y[l]);
                x[l] = p.min(q);
                y[l] = p.max(q);
            }
        }
    }
}

/// Scratch of [`clip_bounds_lanes`], reused from chunk to chunk: the sorted columns and the
/// network of the last stack length.
#[derive(Default)]
pub struct LaneClip {
    net: Option<SortNetwork>,
    sorted: Vec<Lanes>,
}

/// The sigma-clip bounds of [`crate::stats::clip_bounds`] (astropy's per-pixel path: median
/// centre, population sd about the mean, `maxiters` evaluations at most) of [`LANES`] stacks
/// given as columns: `cols[k]` holds value `k` of every stack (a row of a stack of planes, as
/// the generators read them; lanes they leave unused hold NaN). Returns the bounds (`None` for
/// a stack without a finite value) and the number of finite values of each.
///
/// Each lane is sorted once, so what survives bounds is a contiguous range of it whose median
/// is its middle; the sums run in sorted order (astropy's in the order its selection leaves),
/// which changes the bounds in the last bits only.
pub fn clip_bounds_lanes(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> ([Option<ClipBounds>; LANES], [usize; LANES]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { clip_bounds_lanes_avx2(cols, sigma, maxiters, s) };
    }
    clip_bounds_body(cols, sigma, maxiters, s)
}

/// [`clip_bounds_lanes`] for the instruction set of its caller.
#[inline(always)]
fn clip_bounds_body(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> ([Option<ClipBounds>; LANES], [usize; LANES]) {
    let n = cols.len();
    if s.net.as_ref().is_none_or(|net| net.len() != n) {
        s.net = Some(SortNetwork::new(n));
    }
    s.sorted.clear();
    let mut finite = [0usize; LANES];
    for col in cols {
        let mut v = [f32::INFINITY; LANES];
        for l in 0..LANES {
            let ok = col[l].is_finite();
            finite[l] += usize::from(ok);
            v[l] = if ok { col[l] } else { f32::INFINITY };
        }
        s.sorted.push(v);
    }
    s.net.as_ref().expect("set above").sort(&mut s.sorted);
    let cols = &s.sorted[..finite.iter().copied().max().unwrap_or(0)];

    let mut out = [None; LANES];
    let (mut first, mut end) = ([0usize; LANES], finite);
    let mut active: [bool; LANES] = std::array::from_fn(|l| finite[l] > 0);
    for iteration in 1.. {
        if !active.iter().any(|&a| a) {
            break;
        }
        let count: [f64; LANES] = std::array::from_fn(|l| (end[l] - first[l]).max(1) as f64);
        let mut sum = [0.0f64; LANES];
        for (k, col) in cols.iter().enumerate() {
            for l in 0..LANES {
                let inside = k >= first[l] && k < end[l];
                sum[l] += if inside { f64::from(col[l]) } else { 0.0 };
            }
        }
        let mean: [f64; LANES] = std::array::from_fn(|l| sum[l] / count[l]);
        let mut ss = [0.0f64; LANES];
        for (k, col) in cols.iter().enumerate() {
            for l in 0..LANES {
                let inside = k >= first[l] && k < end[l];
                let d = f64::from(col[l]) - mean[l];
                ss[l] += if inside { d * d } else { 0.0 };
            }
        }
        let mut lo = [0.0f64; LANES];
        let mut hi = [0.0f64; LANES];
        for l in (0..LANES).filter(|&l| active[l]) {
            let (a, b) = (first[l], end[l]);
            let c = b - a;
            let median = if c % 2 == 1 {
                f64::from(cols[a + c / 2][l])
            } else {
                0.5 * (f64::from(cols[a + c / 2][l]) + f64::from(cols[a + c / 2 - 1][l]))
            };
            let std = (ss[l] / count[l]).sqrt();
            lo[l] = median - sigma * std;
            hi[l] = median + sigma * std;
        }
        let (mut below, mut above) = ([0usize; LANES], [0usize; LANES]);
        for (k, col) in cols.iter().enumerate() {
            for l in 0..LANES {
                let inside = k >= first[l] && k < end[l];
                let x = f64::from(col[l]);
                below[l] += usize::from(inside && x < lo[l]);
                above[l] += usize::from(inside && x > hi[l]);
            }
        }
        for l in 0..LANES {
            if !active[l] {
                continue;
            }
            let (a, b) = (first[l] + below[l], end[l] - above[l].min(end[l]));
            let unchanged = b > a && b - a == end[l] - first[l];
            if b <= a || unchanged || iteration >= maxiters {
                out[l] = Some(ClipBounds {
                    lo: lo[l],
                    hi: hi[l],
                });
                active[l] = false;
            } else {
                (first[l], end[l]) = (a, b);
            }
        }
    }
    (out, finite)
}

/// How the clipped mean is summed: as [`crate::stats::clipped_mean_std_f32`] (an f32 sum, for
/// f32 data as numpy sums it) or [`crate::stats::clipped_mean_std_f64`] (an f64 sum).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeanSum {
    F32,
    F64,
}

/// The clipped mean and std of [`LANES`] stacks given as columns (see [`clip_bounds_lanes`]),
/// equal to [`crate::stats::clipped_mean_std_f32`] or `_f64` of each stack (`sum`) but for the
/// bounds' last bits: the kept values are summed in stack order, lane by lane.
pub fn clipped_mean_std_lanes(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    sum: MeanSum,
    s: &mut LaneClip,
) -> [Option<StackStats>; LANES] {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { clipped_mean_std_lanes_avx2(cols, sigma, maxiters, sum, s) };
    }
    mean_std_body(cols, sigma, maxiters, sum, s)
}

/// [`clip_bounds_lanes`] compiled for AVX2 (see [`clipped_mean_std_lanes_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn clip_bounds_lanes_avx2(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> ([Option<ClipBounds>; LANES], [usize; LANES]) {
    clip_bounds_body(cols, sigma, maxiters, s)
}

/// [`clipped_mean_std_lanes`] compiled for AVX2, chosen at run time: the build targets baseline
/// x86-64 (two f64 per instruction), and the lanes' f64 sums took most of the superbias
/// reduction. IEEE arithmetic in the same order and no fused multiply-add (Rust never
/// contracts), so the results are those of the baseline code to the bit.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn clipped_mean_std_lanes_avx2(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    sum: MeanSum,
    s: &mut LaneClip,
) -> [Option<StackStats>; LANES] {
    mean_std_body(cols, sigma, maxiters, sum, s)
}

/// [`clipped_mean_std_lanes`] for the instruction set of its caller.
#[inline(always)]
fn mean_std_body(
    cols: &[Lanes],
    sigma: f64,
    maxiters: usize,
    sum: MeanSum,
    s: &mut LaneClip,
) -> [Option<StackStats>; LANES] {
    let (bounds, finite) = clip_bounds_body(cols, sigma, maxiters, s);
    // Bounds that keep nothing where a stack has none.
    let lo: [f64; LANES] = std::array::from_fn(|l| bounds[l].map_or(f64::INFINITY, |b| b.lo));
    let hi: [f64; LANES] = std::array::from_fn(|l| bounds[l].map_or(f64::NEG_INFINITY, |b| b.hi));
    let keeps = |x: f32, l: usize| {
        let x = f64::from(x);
        x.is_finite() && lo[l] <= x && x <= hi[l]
    };
    let mut n = [0usize; LANES];
    let (mut sum32, mut sum64) = ([0.0f32; LANES], [0.0f64; LANES]);
    // One loop per kind of sum: the one not asked for would cost as much as the other.
    match sum {
        MeanSum::F32 => {
            for col in cols {
                for l in 0..LANES {
                    let k = keeps(col[l], l);
                    n[l] += usize::from(k);
                    sum32[l] += if k { col[l] } else { 0.0 };
                }
            }
        }
        MeanSum::F64 => {
            for col in cols {
                for l in 0..LANES {
                    let k = keeps(col[l], l);
                    n[l] += usize::from(k);
                    sum64[l] += if k { f64::from(col[l]) } else { 0.0 };
                }
            }
        }
    }
    let mean: [f64; LANES] = std::array::from_fn(|l| match sum {
        MeanSum::F32 => f64::from(sum32[l]) / n[l].max(1) as f64,
        MeanSum::F64 => sum64[l] / n[l].max(1) as f64,
    });
    let mut ss = [0.0f64; LANES];
    for col in cols {
        for l in 0..LANES {
            let d = f64::from(col[l]) - mean[l];
            ss[l] += if keeps(col[l], l) { d * d } else { 0.0 };
        }
    }
    std::array::from_fn(|l| {
        (n[l] > 0).then(|| StackStats {
            mean: mean[l],
            std: (ss[l] / n[l] as f64).sqrt(),
            n: n[l],
            finite: finite[l],
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{clip_bounds, clipped_mean_std_f32, clipped_mean_std_f64};
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_xoshiro::Xoshiro256PlusPlus;

    #[test]
    fn the_network_sorts_every_count() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        for n in 1..=70 {
            let net = SortNetwork::new(n);
            let mut v: Vec<Lanes> = (0..n)
                .map(|_| {
                    std::array::from_fn(|_| {
                        let x: f64 = rng.sample(StandardNormal);
                        (x * 3.0).round() as f32
                    })
                })
                .collect();
            let mut want: Vec<Vec<f32>> = (0..LANES)
                .map(|l| v.iter().map(|r| r[l]).collect())
                .collect();
            for w in &mut want {
                w.sort_by(f32::total_cmp);
            }
            net.sort(&mut v);
            for (l, w) in want.iter().enumerate() {
                let got: Vec<f32> = v.iter().map(|r| r[l]).collect();
                assert_eq!(&got, w, "n = {n}, lane {l}");
            }
        }
    }

    /// The bounds of every lane agree with the per-pixel clip, for stacks with outliers,
    /// non-finite values, all-NaN stacks and partly filled tiles.
    #[test]
    fn lanes_agree_with_the_per_pixel_clip() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let mut s = LaneClip::default();
        let mut scratch = Vec::new();
        for trial in 0..400 {
            let n = 1 + rng.random_range(0..60usize);
            let w = 1 + rng.random_range(0..LANES);
            let tile: Vec<f32> = (0..w * n)
                .map(|i| {
                    let x: f64 = rng.sample(StandardNormal);
                    let v = 1000.0 + 5.0 * x;
                    match rng.random_range(0..40u32) {
                        0 => f32::NAN,
                        1 => f32::INFINITY,
                        2 | 3 => (v + 300.0 * rng.random::<f64>()) as f32,
                        _ if trial % 50 == 0 && i < n => f32::NAN,
                        _ => v as f32,
                    }
                })
                .collect();
            let cols: Vec<Lanes> = (0..n)
                .map(|k| std::array::from_fn(|j| if j < w { tile[j * n + k] } else { f32::NAN }))
                .collect();
            for (sigma, iters) in [(3.0, 5), (2.5, 3), (5.0, 1)] {
                let (bounds, finite) = clip_bounds_lanes(&cols, sigma, iters, &mut s);
                let s32 = clipped_mean_std_lanes(&cols, sigma, iters, MeanSum::F32, &mut s);
                let s64 = clipped_mean_std_lanes(&cols, sigma, iters, MeanSum::F64, &mut s);
                for j in w..LANES {
                    assert_eq!((bounds[j], finite[j], s32[j]), (None, 0, None));
                }
                for j in 0..w {
                    let stack = &tile[j * n..(j + 1) * n];
                    let want = clip_bounds(
                        &mut scratch,
                        stack.iter().map(|&x| f64::from(x)),
                        sigma,
                        iters,
                    );
                    assert_eq!(finite[j], scratch.len(), "trial {trial}, lane {j}");
                    match (bounds[j], want) {
                        (None, None) => {}
                        (Some(a), Some(b)) => {
                            let tol = 1e-9 * (1.0 + b.lo.abs().max(b.hi.abs()));
                            assert!(
                                (a.lo - b.lo).abs() < tol && (a.hi - b.hi).abs() < tol,
                                "trial {trial}, lane {j}: {a:?} vs {b:?}"
                            );
                        }
                        (a, b) => panic!("trial {trial}, lane {j}: {a:?} vs {b:?}"),
                    }
                    // The statistics are the scalar ones to the bit (same kept values, summed
                    // in stack order).
                    let stack64: Vec<f64> = stack.iter().map(|&x| f64::from(x)).collect();
                    let want32 = clipped_mean_std_f32(stack, sigma, iters, &mut scratch);
                    let want64 = clipped_mean_std_f64(&stack64, sigma, iters, &mut scratch);
                    assert_eq!(s32[j], want32, "trial {trial}, lane {j}");
                    assert_eq!(s64[j], want64, "trial {trial}, lane {j}");
                }
            }
        }
    }
}
