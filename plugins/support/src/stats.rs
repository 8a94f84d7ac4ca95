//! Astropy-compatible sigma clipping and the statistics of clipped data (the crate's
//! `UPSTREAM.md`, "Sigma clipping" and "Statistics of a clipped stack").
//!
//! Two clipping flavours exist upstream and both are reproduced here:
//!
//! - **Per-pixel (stack) clipping**, astropy's compiled path for `axis=0`: [`clip_bounds`], then
//!   [`clipped_mean_std_f32`] / [`clipped_mean_std_f64`] for the numpy masked-array mean and std
//!   of one pixel's stack. All bound arithmetic is f64. The median is the same order statistic
//!   as astropy's, found by a faster selection than its Wirth algorithm; the mean/sd sums
//!   therefore run over the survivors in a different order, so bounds can differ from astropy's in
//!   the last bit (~1e-16 relative), which decides a value's fate only if it sits exactly on a
//!   bound. The kept sets and statistics agree with astropy otherwise (tests compare with values
//!   computed by astropy 8.0.2).
//! - **Flattened clipping** (`axis=None`): [`clip_bounds_flat`] and [`clipped_mean_std_flat`].
//!   There astropy calls `np.nanmedian`/`np.nanstd`, which compute in the *input dtype* with numpy's
//!   pairwise summation; [`FlatFloat`] carries that arithmetic for f32 and f64 so the bounds match numpy
//!   bit for bit (for f32 data they are f32 values).
//!
//! In both flavours the final mask is rebuilt from the final bounds over the original values:
//! a value is kept iff it is finite and `lo <= x <= hi` ([`ClipBounds::keeps`]).
//!
//! `maxiters` counts bound evaluations. `maxiters == 0` behaves like 1 (astropy's C path always
//! evaluates the bounds once); pass `usize::MAX` for "until convergence" (astropy `maxiters=None`).

use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Sub};

use rayon::prelude::*;

use crate::budget::huge_pages;

/// Final clipping bounds. A value survives iff it is finite and `lo <= x <= hi` (inclusive).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClipBounds {
    pub lo: f64,
    pub hi: f64,
}

impl ClipBounds {
    /// The final-mask rule of astropy: non-finite values and values outside `[lo, hi]` are masked.
    #[inline]
    pub fn keeps(&self, x: f64) -> bool {
        x.is_finite() && self.lo <= x && x <= self.hi
    }
}

/// Mean, population standard deviation (ddof 0) and count of the surviving values, and how
/// many finite values the clip started from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StackStats {
    pub mean: f64,
    pub std: f64,
    pub n: usize,
    pub finite: usize,
}

/// The k-th smallest value (0-based) of NaN-free `a`, permuting `a` so that every value left of
/// `k` is `<=` it and every value right of it `>=` it.
///
/// A quickselect with a median-of-three pivot and a branch-free Lomuto partition. Astropy's C
/// code uses N. Wirth's selection, whose data-dependent branches mispredict on every other
/// comparison; for the short stacks of a pixel (tens of values) this version is several times
/// faster. The order statistic is the same; only the order the other values are left in differs,
/// which changes the later f64 mean and sd sums in the last bit at most (~1e-16 relative).
/// Generic so that integer keys (floats mapped to order-preserving integers) select the same
/// way.
pub fn select_kth<T: PartialOrd + Copy>(a: &mut [T], k: usize) -> T {
    debug_assert!(k < a.len());
    let (mut lo, mut hi) = (0usize, a.len());
    loop {
        let n = hi - lo;
        if n <= 12 {
            // Insertion sort of the small remainder.
            for i in lo + 1..hi {
                let v = a[i];
                let mut j = i;
                while j > lo && a[j - 1] > v {
                    a[j] = a[j - 1];
                    j -= 1;
                }
                a[j] = v;
            }
            return a[k];
        }
        // Median of three as pivot, moved to the end.
        let mid = lo + n / 2;
        let last = hi - 1;
        if a[mid] < a[lo] {
            a.swap(mid, lo);
        }
        if a[last] < a[lo] {
            a.swap(last, lo);
        }
        if a[last] < a[mid] {
            a.swap(last, mid);
        }
        a.swap(mid, last);
        let pivot = a[last];
        // Branch-free Lomuto: values below the pivot collect at the front.
        let mut store = lo;
        for i in lo..last {
            let below = a[i] < pivot;
            a.swap(i, store);
            store += usize::from(below);
        }
        a.swap(store, last);
        match k.cmp(&store) {
            Ordering::Equal => return a[k],
            Ordering::Less => hi = store,
            Ordering::Greater => lo = store + 1,
        }
    }
}

/// Median of NaN-free values, permuting `v` (astropy's definition): odd n gives the middle order
/// statistic, even n gives `0.5 * (s[n/2] + s[n/2 - 1])`. Returns NaN for an empty slice, like numpy.
pub fn median_in_place(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n.is_multiple_of(2) {
        let a = select_kth(v, n / 2);
        // The selection leaves every smaller order statistic to the left of n/2, so the lower
        // middle value is the largest of those: one scan instead of a second selection.
        let b = v[..n / 2].iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (a + b)
    } else {
        select_kth(v, (n - 1) / 2)
    }
}

/// Per-pixel sigma-clip bounds, astropy's compiled path for `axis=0`.
///
/// Only finite values take part. Each evaluation takes centre = median, sd = population sd about
/// the *mean*, bounds `median ∓ sigma·sd`, keeps `lo <= s <= hi`, and stops when nothing changed,
/// nothing is left, or `maxiters` evaluations were made. The returned bounds are the last ones
/// evaluated. `None` when there is no finite value (every element is masked).
/// `scratch` is reused between pixels to avoid an allocation per pixel.
pub fn clip_bounds(
    scratch: &mut Vec<f64>,
    values: impl IntoIterator<Item = f64>,
    sigma: f64,
    maxiters: usize,
) -> Option<ClipBounds> {
    scratch.clear();
    scratch.extend(values.into_iter().filter(|x| x.is_finite()));
    if scratch.is_empty() {
        return None;
    }
    let mut count = scratch.len();
    let mut iteration = 0usize;
    loop {
        let buf = &mut scratch[..count];
        let median = median_in_place(buf);
        let mut mean = 0.0;
        for &x in buf.iter() {
            mean += x;
        }
        mean /= count as f64;
        let mut ss = 0.0;
        for &x in buf.iter() {
            ss += (x - mean) * (x - mean);
        }
        let std = (ss / count as f64).sqrt();
        let lo = median - sigma * std;
        let hi = median + sigma * std;
        // Compact survivors to the front, preserving their (post-selection) order as the C code does.
        let mut new_count = 0;
        for i in 0..count {
            let x = buf[i];
            if x >= lo && x <= hi {
                buf[new_count] = x;
                new_count += 1;
            }
        }
        if new_count == count || new_count == 0 {
            return Some(ClipBounds { lo, hi });
        }
        count = new_count;
        iteration += 1;
        if iteration >= maxiters {
            return Some(ClipBounds { lo, hi });
        }
    }
}

/// Clipped mean and std of one pixel's f32 stack, as numpy masked arrays compute them:
/// the mean numerator is an f32 sum in stack order over the kept values, divided in f64; the std is
/// f64 about that mean, ddof 0. `None` when nothing survives (upstream: masked, value 0.0).
pub fn clipped_mean_std_f32(
    stack: &[f32],
    sigma: f64,
    maxiters: usize,
    scratch: &mut Vec<f64>,
) -> Option<StackStats> {
    let b = clip_bounds(
        scratch,
        stack.iter().map(|&x| f64::from(x)),
        sigma,
        maxiters,
    )?;
    let mut sum = 0.0f32;
    let mut n = 0usize;
    for &x in stack {
        if b.keeps(f64::from(x)) {
            sum += x;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let mean = f64::from(sum) / n as f64;
    let mut ss = 0.0f64;
    for &x in stack {
        if b.keeps(f64::from(x)) {
            let d = f64::from(x) - mean;
            ss += d * d;
        }
    }
    Some(StackStats {
        mean,
        std: (ss / n as f64).sqrt(),
        n,
        finite: scratch.len(),
    })
}

/// Clipped mean and std of one pixel's f64 stack (superbias, readnoise 'ramp' combine): like
/// [`clipped_mean_std_f32`] but f64 throughout, sums sequential in stack order.
pub fn clipped_mean_std_f64(
    stack: &[f64],
    sigma: f64,
    maxiters: usize,
    scratch: &mut Vec<f64>,
) -> Option<StackStats> {
    let b = clip_bounds(scratch, stack.iter().copied(), sigma, maxiters)?;
    let mut sum = 0.0f64;
    let mut n = 0usize;
    for &x in stack {
        if b.keeps(x) {
            sum += x;
            n += 1;
        }
    }
    if n == 0 {
        return None;
    }
    let mean = sum / n as f64;
    let mut ss = 0.0f64;
    for &x in stack {
        if b.keeps(x) {
            ss += (x - mean) * (x - mean);
        }
    }
    Some(StackStats {
        mean,
        std: (ss / n as f64).sqrt(),
        n,
        finite: scratch.len(),
    })
}

/// Floating types whose numpy arithmetic the flattened clip reproduces (f32 and f64). numpy's
/// `nanmedian`/`nanstd` compute in the array's own dtype, so the bounds of f32 data are f32 numbers.
pub trait FlatFloat:
    Copy
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Send
    + Sync
    + 'static
{
    const ZERO: Self;
    fn to_f64(self) -> f64;
    /// Round an f64 to this type (identity for f64).
    fn from_f64(x: f64) -> Self;
    fn is_finite(self) -> bool;
    fn is_nan(self) -> bool;
    fn sqrt(self) -> Self;
    fn total_cmp(&self, other: &Self) -> Ordering;
    /// The middle pair of [`FlatFloat::middle_pair`] of at least 65,536 values by a path
    /// that reads them without a copy or a selection (a histogram of order keys), if the type
    /// has one.
    fn long_middle_pair(_v: &[Self]) -> Option<(Self, Self)> {
        None
    }
    /// The two middle order statistics of NaN-free values, `(v[(n-1)/2], v[n/2])` of the sorted
    /// values; may permute `v`. Only called with `n >= 1`.
    fn middle_pair(v: &mut [Self]) -> (Self, Self) {
        match v.len() >= RADIX_MIN {
            true => Self::long_middle_pair(v).unwrap_or_else(|| middle_pair_by_selection(v)),
            false => middle_pair_by_selection(v),
        }
    }
    /// [`FlatFloat::middle_pair`] of values that must stay as they are: the long-array path
    /// reads `v` as it is, else a selection on a copy in `work`.
    fn middle_pair_of(v: &[Self], work: &mut Vec<Self>) -> (Self, Self) {
        if v.len() >= RADIX_MIN
            && let Some(pair) = Self::long_middle_pair(v)
        {
            return pair;
        }
        work.clear();
        work.extend_from_slice(v);
        middle_pair_by_selection(work)
    }
}

impl FlatFloat for f32 {
    const ZERO: Self = 0.0;
    #[inline]
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
    #[inline]
    fn is_finite(self) -> bool {
        f32::is_finite(self)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f32::is_nan(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        f32::sqrt(self)
    }
    #[inline]
    fn total_cmp(&self, other: &Self) -> Ordering {
        f32::total_cmp(self, other)
    }
    fn long_middle_pair(v: &[Self]) -> Option<(Self, Self)> {
        let n = v.len();
        let [lo, hi] = order_stats_by_radix(v, [(n - 1) / 2, n / 2]);
        Some((lo, hi))
    }
}

impl FlatFloat for f64 {
    const ZERO: Self = 0.0;
    #[inline]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline]
    fn from_f64(x: f64) -> Self {
        x
    }
    #[inline]
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    #[inline]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }
    #[inline]
    fn sqrt(self) -> Self {
        f64::sqrt(self)
    }
    #[inline]
    fn total_cmp(&self, other: &Self) -> Ordering {
        f64::total_cmp(self, other)
    }
    fn long_middle_pair(v: &[Self]) -> Option<(Self, Self)> {
        let n = v.len();
        let [lo, hi] = order_stats_f64_by_prefix(v, [(n - 1) / 2, n / 2]);
        Some((lo, hi))
    }
}

/// numpy's pairwise summation (`@TYPE@_pairwise_sum`, block 128, 8 accumulators) of `f(i)` for
/// `i` in `start..start + n`, in type T. Used so that flattened statistics equal `np.sum` bit for bit.
fn pairwise_sum<T: FlatFloat>(start: usize, n: usize, f: &impl Fn(usize) -> T) -> T {
    if n < 8 {
        let mut res = T::ZERO;
        for i in start..start + n {
            res = res + f(i);
        }
        res
    } else if n <= 128 {
        let mut r = [T::ZERO; 8];
        for (j, rj) in r.iter_mut().enumerate() {
            *rj = f(start + j);
        }
        let mut i = 8;
        while i < n - (n % 8) {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj = *rj + f(start + i + j);
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            res = res + f(start + i);
            i += 1;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(start, n2, f) + pairwise_sum(start + n2, n - n2, f)
    }
}

/// `np.sum` of a contiguous 1-D array (pairwise, in T).
pub fn numpy_sum<T: FlatFloat>(values: &[T]) -> T {
    pairwise_sum(0, values.len(), &|i| values[i])
}

/// From this many values on, the flattened statistics run on the current rayon pool: the
/// UNRELIABLE_BIAS threshold of superbias (a 4-million-value clip) took 80 ms on one core.
const PAR_MIN: usize = 1 << 16;

/// [`pairwise_sum`] with the halves of long ranges summed in parallel. The halves are the ones
/// the sequential recursion takes, so the result is the same to the bit.
fn pairwise_sum_par<T: FlatFloat>(start: usize, n: usize, f: &(impl Fn(usize) -> T + Sync)) -> T {
    if n < PAR_MIN {
        return pairwise_sum(start, n, f);
    }
    let mut n2 = n / 2;
    n2 -= n2 % 8;
    let (a, b) = rayon::join(
        || pairwise_sum_par(start, n2, f),
        || pairwise_sum_par(start + n2, n - n2, f),
    );
    a + b
}

/// The length of the pieces a long array is cut into for the rayon pool: a few per thread so
/// that a busy thread does not hold the others up.
fn par_chunk(n: usize) -> usize {
    n.div_ceil(4 * rayon::current_num_threads())
        .max(PAR_MIN / 4)
}

/// Replaces the contents of `out` with the values of `values` that `keep` accepts, in their
/// order (`Vec::retain` of a copy, with neither the copy nor a second buffer): one counting
/// pass, then each piece of `values` writes its kept values to its own part of `out`. Both
/// passes are branch-free in the data ([`count_kept`], [`compact_block`]): a clip keeps most
/// values but not a predictable pattern of them, and mispredicted branches made the
/// compaction the largest part of the bpm's hot-pixel thresholds.
fn compact_into<T: FlatFloat>(values: &[T], out: &mut Vec<T>, keep: impl Fn(T) -> bool + Sync) {
    if values.len() < PAR_MIN {
        out.resize(values.len(), T::ZERO);
        let n = compact_block(values, out, &keep);
        out.truncate(n);
        return;
    }
    let chunk = par_chunk(values.len());
    let counts: Vec<usize> = values
        .par_chunks(chunk)
        .map(|c| count_kept(c, &keep))
        .collect();
    out.resize(counts.iter().sum(), T::ZERO);
    let mut parts = Vec::with_capacity(counts.len());
    let mut rest = &mut out[..];
    for &c in &counts {
        let (head, tail) = rest.split_at_mut(c);
        parts.push(head);
        rest = tail;
    }
    values.par_chunks(chunk).zip(parts).for_each(|(src, dst)| {
        compact_block(src, dst, &keep);
    });
}

/// How many of `values` `keep` accepts, summing the answers instead of branching on them.
#[inline]
fn count_kept<T: FlatFloat>(values: &[T], keep: &impl Fn(T) -> bool) -> usize {
    values.iter().map(|&x| usize::from(keep(x))).sum()
}

/// Values staged at once by [`compact_block`].
const COMPACT_STAGE: usize = 256;

/// Writes the values of `src` that `keep` accepts to the front of `dst`, in order, and returns
/// how many. Every value is stored at the next free slot of a stage on the stack, which
/// advances only when the value is kept, so no branch depends on the data; the stage is then
/// copied out. `dst` must hold at least as many values as are kept.
fn compact_block<T: FlatFloat>(src: &[T], dst: &mut [T], keep: &impl Fn(T) -> bool) -> usize {
    let mut stage = [T::ZERO; COMPACT_STAGE];
    let mut written = 0;
    for block in src.chunks(COMPACT_STAGE) {
        let mut k = 0;
        for &x in block {
            // k < block.len() <= COMPACT_STAGE here: at most one slot per value before it.
            stage[k] = x;
            k += usize::from(keep(x));
        }
        dst[written..written + k].copy_from_slice(&stage[..k]);
        written += k;
    }
    written
}

/// How many of `values` `keep` accepts, in parallel for long arrays.
fn count_par<T: FlatFloat>(values: &[T], keep: impl Fn(T) -> bool + Sync) -> usize {
    if values.len() < PAR_MIN {
        return count_kept(values, &keep);
    }
    values
        .par_chunks(par_chunk(values.len()))
        .map(|c| count_kept(c, &keep))
        .sum()
}

/// `a / n` rounded to T, as numpy divides a T sum by an integer count (in f64, then cast).
fn div_count<T: FlatFloat>(a: T, n: usize) -> T {
    T::from_f64(a.to_f64() / n as f64)
}

/// Median of values that contain no NaN, numpy style: even count → `(a + b) / 2` computed in T.
/// Uses a selection (`select_nth_unstable_by`), O(n); permutes `v`. `None` when empty.
fn numpy_median_in_place<T: FlatFloat>(v: &mut [T]) -> Option<T> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (lower, upper) = T::middle_pair(v);
    if n % 2 == 1 {
        return Some(upper);
    }
    Some(div_count(lower + upper, 2))
}

/// [`FlatFloat::middle_pair`] by selection (`select_nth_unstable_by`, O(n)).
fn middle_pair_by_selection<T: FlatFloat>(v: &mut [T]) -> (T, T) {
    let n = v.len();
    let (left, &mut upper, _) = v.select_nth_unstable_by(n / 2, T::total_cmp);
    let lower = if n % 2 == 1 {
        upper
    } else {
        left.iter()
            .copied()
            .max_by(T::total_cmp)
            .expect("even n >= 2 leaves a non-empty lower part")
    };
    (lower, upper)
}

/// From this many values on, f32 order statistics are found through a histogram of their
/// order keys ([`order_stats_by_radix`]): a whole-detector median (4 million values) took 40-60 ms
/// by selection, several times per clipped statistic.
const RADIX_MIN: usize = 1 << 16;

/// A `u32` that sorts as the f32 it comes from under `total_cmp` (the sign bit flipped for
/// positive values, all bits for negative ones): integer sorts and selections are several times
/// faster than ones through a float comparison.
#[inline(always)]
pub fn f32_order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The `ks[0]`-th and `ks[1]`-th smallest (0-based, `total_cmp` order, `ks[0] <= ks[1]`) of
/// NaN-free values, from their order keys: a histogram of the keys' upper 16 bits finds the
/// prefix that holds each rank, a histogram of the lower 16 bits of the keys with that prefix
/// the whole key, which is the value. Two passes, no copy; `v` is not modified.
fn order_stats_by_radix(v: &[f32], ks: [usize; 2]) -> [f32; 2] {
    debug_assert!(ks[0] <= ks[1] && ks[1] < v.len());
    let upper = prefix_histogram(v);
    // Per rank: its prefix and its rank among the values with that prefix.
    let within = |k: usize| {
        let mut below = 0usize;
        for (b, &c) in upper.iter().enumerate() {
            if below + c as usize > k {
                return (b as u32, k - below);
            }
            below += c as usize;
        }
        unreachable!("k < v.len()")
    };
    let (p0, r0) = within(ks[0]);
    let (p1, r1) = within(ks[1]);
    let value = |prefix: u32, hist: &[u32], rank: usize| {
        let mut below = 0usize;
        for (low, &c) in hist.iter().enumerate() {
            if below + c as usize > rank {
                return f32_from_order_key(prefix << 16 | low as u32);
            }
            below += c as usize;
        }
        unreachable!("the prefix holds the rank")
    };
    if p1 == p0 {
        let lower = suffix_histogram(v, p0);
        return [value(p0, &lower, r0), value(p0, &lower, r1)];
    }
    // The two ranks in different prefixes (rare: only where the middle pair straddles one).
    let mut lower = [vec![0u32; 1 << 16], vec![0u32; 1 << 16]];
    for &x in v {
        let key = f32_order_key(x);
        let p = key >> 16;
        if p == p0 {
            lower[0][(key & 0xffff) as usize] += 1;
        } else if p == p1 {
            lower[1][(key & 0xffff) as usize] += 1;
        }
    }
    [value(p0, &lower[0], r0), value(p1, &lower[1], r1)]
}

/// Copies of a histogram the values are dealt to in turn, so that consecutive values in one
/// bucket (most of them, for a narrow distribution) do not wait on each other's increment.
const HISTOGRAM_COPIES: usize = 4;

/// The histogram of the upper 16 bits of the values' order keys.
fn prefix_histogram(v: &[f32]) -> Vec<u32> {
    let mut copies = vec![0u32; HISTOGRAM_COPIES << 16];
    let chunks = v.chunks_exact(HISTOGRAM_COPIES);
    let rest = chunks.remainder();
    for c in chunks {
        for (copy, &x) in c.iter().enumerate() {
            copies[copy << 16 | (f32_order_key(x) >> 16) as usize] += 1;
        }
    }
    let mut hist = copies[..1 << 16].to_vec();
    for copy in copies.chunks_exact(1 << 16).skip(1) {
        hist.iter_mut().zip(copy).for_each(|(h, c)| *h += c);
    }
    for &x in rest {
        hist[(f32_order_key(x) >> 16) as usize] += 1;
    }
    hist
}

/// The histogram of the lower 16 bits of the order keys whose upper 16 bits are `prefix`.
/// Every value is counted somewhere, the others in a spare bucket, so that no branch depends
/// on the data (a narrow distribution puts a third of its values in the median's prefix, in
/// no pattern).
fn suffix_histogram(v: &[f32], prefix: u32) -> Vec<u32> {
    const SPARE: usize = 1 << 16;
    let stride = SPARE + 1;
    let mut copies = vec![0u32; HISTOGRAM_COPIES * stride];
    let slot = |x: f32| {
        let key = f32_order_key(x);
        if key >> 16 == prefix {
            (key & 0xffff) as usize
        } else {
            SPARE
        }
    };
    let chunks = v.chunks_exact(HISTOGRAM_COPIES);
    let rest = chunks.remainder();
    for c in chunks {
        for (copy, &x) in c.iter().enumerate() {
            copies[copy * stride + slot(x)] += 1;
        }
    }
    let mut hist = copies[..SPARE].to_vec();
    for copy in copies.chunks_exact(stride).skip(1) {
        hist.iter_mut().zip(copy).for_each(|(h, c)| *h += c);
    }
    for &x in rest {
        let s = slot(x);
        if s < SPARE {
            hist[s] += 1;
        }
    }
    hist
}

/// A `u64` that sorts as the f64 it comes from under `total_cmp` (as [`f32_order_key`]).
#[inline(always)]
fn f64_order_key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 != 0 { !b } else { b | 1 << 63 }
}

/// The f64 of an order key ([`f64_order_key`]'s inverse).
fn f64_from_order_key(k: u64) -> f64 {
    f64::from_bits(if k >> 63 != 0 { k & !(1 << 63) } else { !k })
}

/// The `ks[0]`-th and `ks[1]`-th smallest (0-based, `total_cmp` order, `ks[0] <= ks[1]`) of
/// NaN-free f64 values, for ranks close together (the middle pair): a histogram of the keys'
/// upper 16 bits, made in parallel, finds the prefixes that hold the ranks; only the values with
/// a prefix in that range are gathered and selected among. Two passes over `v` and no copy of
/// it, where a selection copies and permutes all of it (20-30 ms for 4 million values).
fn order_stats_f64_by_prefix(v: &[f64], ks: [usize; 2]) -> [f64; 2] {
    const SHIFT: u32 = 48;
    debug_assert!(ks[0] <= ks[1] && ks[1] < v.len());
    let chunk = par_chunk(v.len()).min(u32::MAX as usize);
    let pieces: Vec<Vec<u32>> = v
        .par_chunks(chunk)
        .map(|c| {
            let mut h = vec![0u32; 1 << 16];
            for &x in c {
                h[(f64_order_key(x) >> SHIFT) as usize] += 1;
            }
            h
        })
        .collect();
    let mut hist = vec![0usize; 1 << 16];
    for h in &pieces {
        hist.iter_mut().zip(h).for_each(|(t, &c)| *t += c as usize);
    }
    // Per rank: its prefix, and how many values have a smaller one.
    let prefix = |k: usize| {
        let mut below = 0usize;
        for (p, &c) in hist.iter().enumerate() {
            if below + c > k {
                return (p as u64, below);
            }
            below += c;
        }
        unreachable!("k < v.len()")
    };
    let (p0, below) = prefix(ks[0]);
    let (p1, _) = prefix(ks[1]);
    let pieces: Vec<Vec<u64>> = v
        .par_chunks(chunk)
        .map(|c| {
            let mut out = Vec::new();
            for &x in c {
                let k = f64_order_key(x);
                // One unsigned comparison: about half the values lie below p0, and a branch
                // on that would mispredict on every other value.
                if (k >> SHIFT).wrapping_sub(p0) <= p1 - p0 {
                    out.push(k);
                }
            }
            out
        })
        .collect();
    let mut cand = pieces.concat();
    let (r0, r1) = (ks[0] - below, ks[1] - below);
    let hi = *cand.select_nth_unstable(r1).1;
    let lo = if r0 == r1 {
        hi
    } else {
        *cand[..r1].select_nth_unstable(r0).1
    };
    [f64_from_order_key(lo), f64_from_order_key(hi)]
}

/// The f32 of an order key ([`f32_order_key`]'s inverse).
pub fn f32_from_order_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 {
        k & 0x7fff_ffff
    } else {
        !k
    })
}

/// `np.nanmedian` of a 1-D array: NaN ignored (±inf take part, as in numpy); `None` if nothing
/// remains. Copies the non-NaN values.
pub fn nanmedian<T: FlatFloat>(values: &[T]) -> Option<T> {
    let mut v: Vec<T> = values.iter().copied().filter(|x| !x.is_nan()).collect();
    numpy_median_in_place(&mut v)
}

/// `np.nanstd` (ddof 0) of NaN-free values in T: two passes, pairwise sums, T arithmetic.
fn numpy_std<T: FlatFloat>(v: &[T]) -> T {
    let n = v.len();
    let mean = div_count(pairwise_sum_par(0, n, &|i| v[i]), n);
    let ss = pairwise_sum_par(0, n, &|i| {
        let d = v[i] - mean;
        d * d
    });
    div_count(ss, n).sqrt()
}

/// Sigma-clip bounds over a whole flattened array, as astropy's `axis=None` path.
///
/// Non-finite values are dropped once; then, while something changed and fewer than `maxiters`
/// evaluations were made: centre = `np.nanmedian`, sd = `np.nanstd`, bounds `centre ∓ sigma·sd`,
/// all in T (sigma rounded to T, as numpy does for a Python float), and the survivors
/// (`lo <= x <= hi`) are compacted in their original order. `None` when no value is finite.
///
/// One deviation, for a degenerate case only: if an evaluation removes every value, astropy would
/// evaluate once more on the empty array and get NaN bounds (masking nothing finite); here the loop
/// stops and returns the bounds that removed everything, as the per-pixel path does.
///
/// Cost: one copy of the finite values; long arrays (f32, f64) need no other (their medians
/// come from histograms of order keys), shorter ones a scratch copy per evaluation for the
/// selection. Long arrays are processed on the current rayon pool, with the same result.
pub fn clip_bounds_flat<T: FlatFloat>(
    values: &[T],
    sigma: f64,
    maxiters: usize,
) -> Option<ClipBounds> {
    // Zeroed and not yet touched: `compact_into` only shortens it.
    let mut kept: Vec<T> = vec![T::ZERO; values.len()];
    huge_pages(&kept);
    compact_into(values, &mut kept, |x| x.is_finite());
    if kept.is_empty() {
        return None;
    }
    let sigma_t = T::from_f64(sigma);
    let mut work: Vec<T> = Vec::new();
    // The survivors of every evaluation so far are the finite values inside all its bounds,
    // i.e. inside [lo_all, hi_all]: each round compacts `values` again, instead of a copy.
    let (mut lo_all, mut hi_all) = (T::from_f64(f64::NEG_INFINITY), T::from_f64(f64::INFINITY));
    let mut iteration = 0usize;
    loop {
        let (lower, upper) = T::middle_pair_of(&kept, &mut work);
        let cen = if kept.len() % 2 == 1 {
            upper
        } else {
            div_count(lower + upper, 2)
        };
        let std = numpy_std(&kept);
        let lo = cen - std * sigma_t;
        let hi = cen + std * sigma_t;
        let before = kept.len();
        // The bounds of this and every earlier round at once (a NaN bound stays, and keeps
        // nothing); finite bounds also refuse NaN and the infinities. Compared without
        // branches, see `compact_into`.
        let (lo_k, hi_k) = (
            if lo > lo_all || lo.is_nan() {
                lo
            } else {
                lo_all
            },
            if hi < hi_all || hi.is_nan() {
                hi
            } else {
                hi_all
            },
        );
        let finite_bounds = lo_k.is_finite() && hi_k.is_finite();
        compact_into(values, &mut kept, |x| {
            (x >= lo_k) & (x <= hi_k) & (finite_bounds | x.is_finite())
        });
        // Only reached again with bounds that kept something, hence not NaN.
        if lo > lo_all {
            lo_all = lo;
        }
        if hi < hi_all {
            hi_all = hi;
        }
        iteration += 1;
        let bounds = ClipBounds {
            lo: lo.to_f64(),
            hi: hi.to_f64(),
        };
        if kept.len() == before || kept.is_empty() || iteration >= maxiters {
            return Some(bounds);
        }
    }
}

/// Clipped mean and std over a flattened array (readnoise single_value, UNRELIABLE_BIAS threshold):
/// `np.ma` mean/std of the result of [`clip_bounds_flat`]. Masked entries are filled with 0 and the
/// sums are numpy-pairwise over the *whole* array in its given (row-major) order: the mean
/// numerator in T, divided by the count in f64; the std from f64 deviations about that mean
/// (masked deviations are 0), ddof 0. `None` when nothing survives.
pub fn clipped_mean_std_flat<T: FlatFloat>(
    values: &[T],
    sigma: f64,
    maxiters: usize,
) -> Option<StackStats> {
    let b = clip_bounds_flat(values, sigma, maxiters)?;
    let n = count_par(values, |x| b.keeps(x.to_f64()));
    if n == 0 {
        return None;
    }
    let sum = pairwise_sum_par(0, values.len(), &|i| {
        let x = values[i];
        if b.keeps(x.to_f64()) { x } else { T::ZERO }
    });
    let mean = sum.to_f64() / n as f64;
    let ss = pairwise_sum_par(0, values.len(), &|i| {
        let x = values[i].to_f64();
        if b.keeps(x) {
            let d = x - mean;
            d * d
        } else {
            0.0
        }
    });
    Some(StackStats {
        mean,
        std: (ss / n as f64).sqrt(),
        n,
        finite: count_par(values, |x| x.is_finite()),
    })
}

#[cfg(test)]
mod tests {
    use rand::{RngExt, SeedableRng};
    use rand_distr::StandardNormal;
    use rand_xoshiro::Xoshiro256PlusPlus;

    fn rng(seed: u64) -> Xoshiro256PlusPlus {
        Xoshiro256PlusPlus::seed_from_u64(seed)
    }

    fn normal(rng: &mut Xoshiro256PlusPlus) -> f64 {
        rng.sample(StandardNormal)
    }

    /// The histogram path gives the order statistics selection gives, with negative values,
    /// signed zeros, infinities, ties and a narrow range (most values in one key prefix).
    #[test]
    fn radix_order_statistics_equal_selection() {
        let mut rng = rng(17);
        for (n, spread) in [
            (super::RADIX_MIN, 1000.0),
            (super::RADIX_MIN + 1, 1e-3),
            (200_001, 5.0),
        ] {
            let mut v: Vec<f32> = (0..n)
                .map(|_| (0.36 + spread * normal(&mut rng)) as f32)
                .collect();
            v[7] = f32::INFINITY;
            v[8] = f32::NEG_INFINITY;
            v[9] = -0.0;
            v[10] = 0.0;
            for i in (0..n).step_by(13) {
                v[i] = (v[i] * 4.0).round() / 4.0;
            }
            let mut sorted = v.clone();
            sorted.sort_by(f32::total_cmp);
            for (a, b) in [
                (0, 1),
                (1, n / 3),
                ((n - 1) / 2, n / 2),
                (n / 2, n / 2),
                (n - 2, n - 1),
                (0, n - 1),
            ] {
                let [x, y] = super::order_stats_by_radix(&v, [a, b]);
                assert_eq!(x.to_bits(), sorted[a].to_bits(), "n {n}, rank {a}");
                assert_eq!(y.to_bits(), sorted[b].to_bits(), "n {n}, rank {b}");
            }
            let mut w = v.clone();
            let (lo, hi) = <f32 as super::FlatFloat>::middle_pair(&mut w);
            assert_eq!((lo, hi), (sorted[(n - 1) / 2], sorted[n / 2]));
        }
    }

    /// The prefix-histogram order statistics of f64 equal a full sort's, for ranks next to each
    /// other and far apart, with negative values, signed zeros, infinities, ties and values that
    /// share one key prefix.
    #[test]
    fn f64_prefix_order_statistics_equal_sorting() {
        let mut rng = rng(23);
        for (n, spread) in [(RADIX_MIN, 1000.0), (RADIX_MIN + 1, 1e-9), (150_001, 3.0)] {
            let mut v: Vec<f64> = (0..n).map(|_| 7.5 + spread * normal(&mut rng)).collect();
            v[1] = f64::INFINITY;
            v[2] = f64::NEG_INFINITY;
            v[3] = -0.0;
            v[4] = 0.0;
            for i in (0..n).step_by(11) {
                v[i] = (v[i] * 8.0).round() / 8.0;
            }
            let mut sorted = v.clone();
            sorted.sort_by(f64::total_cmp);
            for ks in [
                [0, 1],
                [(n - 1) / 2, n / 2],
                [n / 2, n / 2],
                [n - 2, n - 1],
                [3, n / 3],
            ] {
                let got = order_stats_f64_by_prefix(&v, ks);
                assert_eq!(
                    got.map(f64::to_bits),
                    ks.map(|k| sorted[k].to_bits()),
                    "n {n}"
                );
            }
            let (lo, hi) = <f64 as FlatFloat>::middle_pair(&mut v.clone());
            assert_eq!((lo, hi), (sorted[(n - 1) / 2], sorted[n / 2]));
        }
    }

    /// The flattened clip as it was first written (sequential: a copy of the finite values, a
    /// sorted copy for the median, `retain` per round, sequential pairwise sums): the definition
    /// the parallel, copy-free version must equal to the bit.
    fn flat_reference<T: FlatFloat>(
        values: &[T],
        sigma: f64,
        iters: usize,
    ) -> (ClipBounds, StackStats) {
        let mut kept: Vec<T> = values.iter().copied().filter(|x| x.is_finite()).collect();
        let sigma_t = T::from_f64(sigma);
        let mut it = 0;
        let b = loop {
            let mut sorted = kept.clone();
            sorted.sort_by(T::total_cmp);
            let n = sorted.len();
            let cen = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                div_count(sorted[n / 2 - 1] + sorted[n / 2], 2)
            };
            let mean = div_count(pairwise_sum(0, n, &|i| kept[i]), n);
            let ss = pairwise_sum(0, n, &|i| (kept[i] - mean) * (kept[i] - mean));
            let std = div_count(ss, n).sqrt();
            let (lo, hi) = (cen - std * sigma_t, cen + std * sigma_t);
            kept.retain(|&x| x >= lo && x <= hi);
            it += 1;
            if kept.len() == n || kept.is_empty() || it >= iters {
                break ClipBounds {
                    lo: lo.to_f64(),
                    hi: hi.to_f64(),
                };
            }
        };
        let n = values.iter().filter(|x| b.keeps(x.to_f64())).count();
        let masked = |i: usize| {
            if b.keeps(values[i].to_f64()) {
                values[i]
            } else {
                T::ZERO
            }
        };
        let mean = pairwise_sum(0, values.len(), &masked).to_f64() / n as f64;
        let ss = pairwise_sum(0, values.len(), &|i| {
            let x = values[i].to_f64();
            if b.keeps(x) {
                (x - mean) * (x - mean)
            } else {
                0.0
            }
        });
        let finite = values.iter().filter(|x| x.is_finite()).count();
        let std = (ss / n as f64).sqrt();
        (
            b,
            StackStats {
                mean,
                std,
                n,
                finite,
            },
        )
    }

    /// Long arrays (the parallel path: compaction, prefix medians, split pairwise sums) give
    /// the bounds and statistics of the sequential definition to the bit, for f64 and f32, odd
    /// and even counts, with non-finite values and outliers.
    #[test]
    fn long_flat_clips_equal_the_sequential_definition() {
        let mut rng = rng(29);
        for n in [PAR_MIN * 3 + 1, PAR_MIN * 3 + 2] {
            let v: Vec<f64> = (0..n)
                .map(|i| match i % 4999 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => 400.0 * normal(&mut rng),
                    _ => 6.0 + normal(&mut rng).abs(),
                })
                .collect();
            let v32: Vec<f32> = v.iter().map(|&x| x as f32).collect();
            for (sigma, iters) in [(3.0, 3), (2.0, 10)] {
                let (b, st) = flat_reference(&v, sigma, iters);
                assert_eq!(clip_bounds_flat(&v, sigma, iters), Some(b));
                assert_eq!(clipped_mean_std_flat(&v, sigma, iters), Some(st));
                let (b, st) = flat_reference(&v32, sigma, iters);
                assert_eq!(clip_bounds_flat(&v32, sigma, iters), Some(b));
                assert_eq!(clipped_mean_std_flat(&v32, sigma, iters), Some(st));
            }
        }
    }

    #[test]
    fn selection_finds_every_order_statistic_with_ties_and_sorted_inputs() {
        let mut rng = rng(5);
        let cases: Vec<Vec<f64>> = vec![
            vec![7.0; 50],
            (0..50).map(|i| i as f64).collect(),
            (0..50).rev().map(|i| i as f64).collect(),
            (0..50).map(|_| rng.random_range(0..5u32) as f64).collect(),
            (0..37).map(|_| normal(&mut rng)).collect(),
            (0..13).map(|_| normal(&mut rng).round()).collect(),
        ];
        for values in cases {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for k in 0..values.len() {
                let mut work = values.clone();
                let got = select_kth(&mut work, k);
                assert_eq!(got, sorted[k], "k={k} of {values:?}");
                assert!(work[..k].iter().all(|&x| x <= got));
                assert!(work[k + 1..].iter().all(|&x| x >= got));
            }
        }
    }

    use super::*;

    fn bounds(v: &[f64], sigma: f64, maxiters: usize) -> Option<ClipBounds> {
        clip_bounds(&mut Vec::new(), v.iter().copied(), sigma, maxiters)
    }

    fn mask(b: &ClipBounds, v: &[f64]) -> Vec<u8> {
        v.iter().map(|&x| u8::from(!b.keeps(x))).collect()
    }

    /// Expected numbers from astropy 8.0.2 `sigma_clip(..., cenfunc='median', stdfunc='std',
    /// masked=True, return_bounds=True)` with axis=0 (compiled path) and axis=None (numpy path).
    /// (values, sigma, maxiters, lo, hi, mask).
    type Case = (&'static [f64], f64, usize, f64, f64, &'static [u8]);
    const CASES: &[Case] = &[
        (
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 100.0],
            3.0,
            3,
            -2.745966692414834,
            12.745966692414834,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        // 30 goes in the first iteration, 14 in the second.
        (
            &[10., 11., 9., 10., 12., 8., 10., 11., 9., 10., 14., 30.],
            2.0,
            5,
            7.809109769979336,
            12.190890230020663,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1],
        ),
        // maxiters = 1 stops after the first clip: 14 survives.
        (
            &[10., 11., 9., 10., 12., 8., 10., 11., 9., 10., 14., 30.],
            2.0,
            1,
            -1.2546286774227546,
            21.254628677422755,
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
        (&[5.0], 3.0, 3, 5.0, 5.0, &[0]),
        // Even count: median 2.5.
        (&[1.0, 2.0, 3.0, 4.0], 1.0, 3, 2.0, 3.0, &[1, 0, 0, 1]),
        (
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            1.0,
            3,
            3.0,
            3.0,
            &[1, 1, 0, 1, 1],
        ),
        (
            &[f64::NAN, 1.0, 2.0, f64::INFINITY, 3.0, 50.0, 2.5],
            1.5,
            3,
            1.8876275643042055,
            3.1123724356957947,
            &[1, 1, 0, 1, 0, 1, 0],
        ),
    ];

    #[test]
    fn stack_clip_matches_astropy() {
        for &(v, sigma, maxiters, lo, hi, m) in CASES {
            let b = bounds(v, sigma, maxiters).unwrap();
            assert_eq!((b.lo, b.hi), (lo, hi), "{v:?}");
            assert_eq!(mask(&b, v), m, "{v:?}");
        }
    }

    #[test]
    fn flat_clip_matches_astropy_on_small_cases() {
        for &(v, sigma, maxiters, lo, hi, m) in CASES {
            let b = clip_bounds_flat(v, sigma, maxiters).unwrap();
            assert_eq!((b.lo, b.hi), (lo, hi), "{v:?}");
            assert_eq!(mask(&b, v), m, "{v:?}");
        }
    }

    #[test]
    fn all_non_finite_is_none() {
        let v = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        assert_eq!(bounds(&v, 3.0, 3), None);
        assert_eq!(bounds(&[], 3.0, 3), None);
        assert_eq!(clip_bounds_flat(&v, 3.0, 3), None);
        let v32 = [f32::NAN; 4];
        assert_eq!(clipped_mean_std_f32(&v32, 3.0, 3, &mut Vec::new()), None);
        assert_eq!(clipped_mean_std_flat(&v32, 3.0, 3), None);
        assert_eq!(nanmedian(&v32), None);
    }

    #[test]
    fn median_even_odd_and_nanmedian() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median_in_place(&mut [7.0]), 7.0);
        assert!(median_in_place(&mut []).is_nan());
        // Duplicates and a reversed sequence exercise Wirth's partition loop.
        let mut v: Vec<f64> = (0..101).rev().map(f64::from).collect();
        assert_eq!(median_in_place(&mut v), 50.0);
        let mut v = [2.0, 2.0, 1.0, 2.0, 3.0, 2.0];
        assert_eq!(median_in_place(&mut v), 2.0);
        assert_eq!(nanmedian(&[f64::NAN, 4.0, 1.0, 3.0, f64::NAN]), Some(3.0));
        assert_eq!(nanmedian(&[1.0f32, 2.0]), Some(1.5));
        // numpy keeps infinities in nanmedian.
        assert_eq!(
            nanmedian(&[1.0, f64::INFINITY, f64::INFINITY]),
            Some(f64::INFINITY)
        );
    }

    #[test]
    fn f32_stack_stats_match_numpy_masked_arrays() {
        // astropy sigma_clip(f32, sigma=3, maxiters=3, axis=0); r.mean(), r.std().
        let v = [
            1000.5f32, 1001.25, 999.75, 1000.125, 1003.0, 998.5, 1000.0, 1200.0, 1000.375, 999.0,
        ];
        let s = clipped_mean_std_f32(&v, 3.0, 3, &mut Vec::new()).unwrap();
        assert_eq!(s.n, 9);
        assert_eq!(s.mean, 1000.2777777777778);
        assert_eq!(s.std, 1.228676141922026);
    }

    #[test]
    fn f32_mean_numerator_is_an_f32_sum() {
        // 2^24 + 1 rounds back to 2^24 in f32, so the f32 numerator loses the four ones.
        let v = [16_777_216.0f32, 1.0, 1.0, 1.0, 1.0];
        let s = clipped_mean_std_f32(&v, 3.0, 3, &mut Vec::new()).unwrap();
        assert_eq!(s.n, 5);
        assert_eq!(s.mean, 16_777_216.0 / 5.0);
        assert_ne!(s.mean, 16_777_220.0 / 5.0);
        let s64 = clipped_mean_std_f64(&v.map(f64::from), 3.0, 3, &mut Vec::new()).unwrap();
        assert_eq!(s64.mean, 16_777_220.0 / 5.0);
    }

    /// Reference clip with a full sort each iteration, written independently of [`clip_bounds`].
    fn reference_bounds(v: &[f64], sigma: f64, maxiters: usize) -> (f64, f64) {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
        let mut it = 0;
        loop {
            let mut sorted = s.clone();
            sorted.sort_by(f64::total_cmp);
            let n = sorted.len();
            let med = if n % 2 == 1 {
                sorted[n / 2]
            } else {
                0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
            };
            let mean = s.iter().sum::<f64>() / n as f64;
            let sd = (s.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64).sqrt();
            let (lo, hi) = (med - sigma * sd, med + sigma * sd);
            let next: Vec<f64> = s.iter().copied().filter(|&x| lo <= x && x <= hi).collect();
            if next.len() == s.len() || next.is_empty() {
                return (lo, hi);
            }
            s = next;
            it += 1;
            if it >= maxiters {
                return (lo, hi);
            }
        }
    }

    #[test]
    fn random_stacks_agree_with_reference_and_f32_order() {
        let mut rng = rng(7);
        let mut scratch = Vec::new();
        for trial in 0..2000 {
            let n = 1 + rng.random_range(0..40usize);
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let x = 1000.0 + 5.0 * normal(&mut rng);
                    let x = if rng.random_range(0..10u32) == 0 {
                        x + 200.0 * rng.random::<f64>()
                    } else {
                        x
                    };
                    if rng.random_range(0..50u32) == 0 {
                        f32::NAN
                    } else {
                        x as f32
                    }
                })
                .collect();
            let v64: Vec<f64> = v.iter().map(|&x| f64::from(x)).collect();
            let Some(s) = clipped_mean_std_f32(&v, 2.5, 3, &mut scratch) else {
                assert!(v.iter().all(|x| x.is_nan()));
                continue;
            };
            let b = clip_bounds(&mut scratch, v64.iter().copied(), 2.5, 3).unwrap();
            let (lo, hi) = reference_bounds(&v64, 2.5, 3);
            let tol = 1e-9 * (1.0 + lo.abs().max(hi.abs()));
            assert!(
                (b.lo - lo).abs() < tol && (b.hi - hi).abs() < tol,
                "trial {trial}"
            );
            // The mean is exactly an f32 sum in stack order divided in f64.
            let kept: Vec<f32> = v
                .iter()
                .copied()
                .filter(|&x| b.keeps(f64::from(x)))
                .collect();
            let f32_sum = kept.iter().fold(0.0f32, |a, &x| a + x);
            assert_eq!(s.n, kept.len());
            assert_eq!(
                s.mean,
                f64::from(f32_sum) / kept.len() as f64,
                "trial {trial}"
            );
        }
    }

    fn numpy_test_data() -> Vec<f32> {
        // x = (sin(0.7 i) * 1000 + 0.1 i).astype(float32), i = 0..1000, as in the numpy probe.
        (0..1000)
            .map(|i| ((i as f64 * 0.7).sin() * 1000.0 + 0.1 * i as f64) as f32)
            .collect()
    }

    #[test]
    fn pairwise_sum_matches_numpy() {
        let x32 = numpy_test_data();
        let x64: Vec<f64> = (0..1000)
            .map(|i| (i as f64 * 0.7).sin() * 1000.0 + 0.1 * i as f64)
            .collect();
        // np.sum(x32).view(uint32), np.sum(x64).view(uint64)
        assert_eq!(numpy_sum(&x32).to_bits(), 1_196_156_194);
        assert_eq!(numpy_sum(&x64).to_bits(), 4_677_406_733_751_163_339);
        // A sequential f32 sum differs (bits 1196156207), so the test tells the two apart.
        assert_ne!(
            x32.iter().fold(0.0f32, |a, &x| a + x).to_bits(),
            1_196_156_194
        );
    }

    #[test]
    fn flat_clip_matches_astropy_f32_and_f64() {
        let mut y = numpy_test_data();
        for i in (0..y.len()).step_by(97) {
            y[i] += 5000.0;
        }
        y[5] = f32::NAN;
        // sigma_clip(y, sigma=2.5, maxiters=5, axis=None): f32 bounds, 12 masked.
        let b = clip_bounds_flat(&y, 2.5, 5).unwrap();
        assert_eq!((b.lo as f32).to_bits(), 3_302_256_871);
        assert_eq!((b.hi as f32).to_bits(), 1_155_932_885);
        assert_eq!(b.lo, f64::from(b.lo as f32));
        let s = clipped_mean_std_flat(&y, 2.5, 5).unwrap();
        assert_eq!(s.n, 1000 - 12);
        assert_eq!(s.mean, f64::from_bits(0x404a_406a_5d47_83a1)); // 0x1.a406a5d4783a1p+5
        assert_eq!(s.std, f64::from_bits(0x4086_20fc_b099_84ea)); // 0x1.620fcb09984eap+9

        let y64: Vec<f64> = y.iter().map(|&x| f64::from(x)).collect();
        let b = clip_bounds_flat(&y64, 2.5, 5).unwrap();
        assert_eq!(b.lo, -f64::from_bits(0x409a_8e1d_00bf_e624)); // -0x1.a8e1d00bfe624p+10
        assert_eq!(b.hi, f64::from_bits(0x409c_c45a_b8bf_e624)); // 0x1.cc45ab8bfe624p+10
        let s = clipped_mean_std_flat(&y64, 2.5, 5).unwrap();
        assert_eq!(s.n, 1000 - 12);
        assert_eq!(s.mean, f64::from_bits(0x404a_406a_744c_911a)); // 0x1.a406a744c911ap+5
        assert_eq!(s.std, f64::from_bits(0x4086_20fc_b099_84ea));
    }

    #[test]
    fn maxiters_zero_evaluates_once() {
        let v = [10., 11., 9., 10., 12., 8., 10., 11., 9., 10., 14., 30.];
        assert_eq!(bounds(&v, 2.0, 0), bounds(&v, 2.0, 1));
        assert_eq!(clip_bounds_flat(&v, 2.0, 0), clip_bounds_flat(&v, 2.0, 1));
    }

    #[test]
    fn flat_clip_handles_millions_quickly() {
        let n = 4 * 1024 * 1024;
        let mut rng = rng(3);
        let v: Vec<f32> = (0..n).map(|_| (100.0 + normal(&mut rng)) as f32).collect();
        let s = clipped_mean_std_flat(&v, 3.0, 5).unwrap();
        assert!((s.mean - 100.0).abs() < 0.01, "{s:?}");
        // Five 3-sigma clips of a unit normal leave an sd a little below 1 (about 0.98).
        assert!(s.std > 0.96 && s.std < 0.995, "{s:?}");
    }
}
