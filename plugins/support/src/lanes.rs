//! Per-pixel statistics of [`LANES`] neighbouring pixels at once. The per-pixel loops of the
//! generators (a clipped mean over a stack of frames, a median over integrations) spent most of
//! their time in data-dependent branches of selections and sorts, which mispredict on every
//! other comparison; the same work done for 16 pixels side by side, with a branch-free sorting
//! network and loops over the lanes, compiles to vector instructions.

use crate::stats::{ClipBounds, StackStats, stats_f32_within, stats_f64_within};

/// Pixels processed together.
pub const LANES: usize = 16;

/// One value of each of [`LANES`] pixels.
pub type Lanes = [f32; LANES];

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

    /// Sorts each lane of `v` (`v.len()` is the network's `n`; no NaN: give non-finite values
    /// as +∞).
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

/// Scratch of [`clip_bounds_lanes`], reused from tile to tile: the sorted columns and the
/// network of the last stack length.
#[derive(Default)]
pub struct LaneClip {
    net: Option<SortNetwork>,
    cols: Vec<Lanes>,
}

/// The sigma-clip bounds of [`crate::stats::clip_bounds`] (astropy's per-pixel path: median
/// centre, population sd about the mean, `maxiters` evaluations at most) for `w <= LANES`
/// stacks of `n` values, `tile[j * n + k]` being value `k` of stack `j`, and the number of
/// finite values of each. `None` for a stack without a finite value.
///
/// Each lane is sorted once, so what survives bounds is a contiguous range of it whose median
/// is its middle; the sums run in sorted order (astropy's in the order its selection leaves),
/// which changes the bounds in the last bits only.
pub fn clip_bounds_lanes(
    tile: &[f32],
    n: usize,
    w: usize,
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> ([Option<ClipBounds>; LANES], [usize; LANES]) {
    debug_assert!(w <= LANES && tile.len() >= w * n);
    if s.net.as_ref().is_none_or(|net| net.len() != n) {
        s.net = Some(SortNetwork::new(n));
    }
    s.cols.clear();
    s.cols.resize(n, [f32::INFINITY; LANES]);
    let mut finite = [0usize; LANES];
    for j in 0..w {
        for (k, &v) in tile[j * n..(j + 1) * n].iter().enumerate() {
            if v.is_finite() {
                s.cols[k][j] = v;
                finite[j] += 1;
            }
        }
    }
    s.net.as_ref().expect("set above").sort(&mut s.cols);
    let cols = &s.cols[..finite.iter().copied().max().unwrap_or(0)];

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

/// [`crate::stats::clipped_mean_std_f32`] of `w <= LANES` stacks at once (`tile[j * n + k]`
/// is value `k` of stack `j`), with the bounds of [`clip_bounds_lanes`]; the mean and std are
/// summed in stack order as there.
pub fn clipped_mean_std_f32_lanes(
    tile: &[f32],
    n: usize,
    w: usize,
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> [Option<StackStats>; LANES] {
    let (bounds, finite) = clip_bounds_lanes(tile, n, w, sigma, maxiters, s);
    std::array::from_fn(|j| {
        bounds[j].and_then(|b| stats_f32_within(&tile[j * n..(j + 1) * n], b, finite[j]))
    })
}

/// [`crate::stats::clipped_mean_std_f64`] of `w <= LANES` stacks of f32 values taken as f64
/// (`tile[j * n + k]` is value `k` of stack `j`), with the bounds of [`clip_bounds_lanes`]; the
/// mean and std are summed in stack order as there.
pub fn clipped_mean_std_f64_lanes(
    tile: &[f32],
    n: usize,
    w: usize,
    sigma: f64,
    maxiters: usize,
    s: &mut LaneClip,
) -> [Option<StackStats>; LANES] {
    let (bounds, finite) = clip_bounds_lanes(tile, n, w, sigma, maxiters, s);
    std::array::from_fn(|j| {
        let stack = tile[j * n..(j + 1) * n].iter().map(|&x| f64::from(x));
        bounds[j].and_then(|b| stats_f64_within(stack, b, finite[j]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::clip_bounds;
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
            for (sigma, iters) in [(3.0, 5), (2.5, 3), (5.0, 1)] {
                let (bounds, finite) = clip_bounds_lanes(&tile, n, w, sigma, iters, &mut s);
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
                }
            }
        }
    }
}
