//! What a pixel's own group differences say (the jump product's SCI), rather than its jump flags.
//!
//! The jump step's flags are not the pixel's own evidence: jwst flags the 4 neighbours of every
//! large jump, so at cosmic-ray rates near 1e-3 per pixel per group a pixel collects several
//! times more neighbours' flags than hits of its own, and an RC pixel's reset transient is
//! flagged in every integration. So, per pixel, over all its integrations:
//!
//! 1. the *profile*: for each group difference, the median over the integrations. Whatever
//!    repeats in every integration (the dark current's slope, an RC transient) is in it; a
//!    cosmic ray or a telegraph switch, which come at random, is not;
//! 2. the *residuals*: each integration's differences minus the profile; and the scale σ of
//!    the differences, from how much consecutive integrations disagree group by group
//!    ([`band_scales`]);
//! 3. an *own jump*: a difference whose residual exceeds [`OWN_JUMP_SIGMA`] σ, σ the typical
//!    pixel's scale unless the pixel's own is well above it, whether the jump step flagged it
//!    or not. A neighbour's flag leaves an ordinary residual and is not counted; a telegraph
//!    switch the jump step missed because the READNOISE reference (made from the same darks,
//!    switches included) calls the pixel noisy is counted;
//! 4. a *transient*: per integration, the mean of the first 1, 2, 4, ... early differences
//!    (up to the early window of `early_cutoff_fraction`) minus the median of the late ones,
//!    the most significant of them beyond a threshold in units of its noise; the integrations
//!    with a significant transient of the majority's sign are counted. An RC pixel shows one
//!    in every integration, whatever superbias calibrated it; a telegraph switch shows one of
//!    either sign, now and then.

/// Residuals beyond this many σ make a difference the pixel's own jump (jwst's default
/// `rejection_threshold` of the jump step).
pub const OWN_JUMP_SIGMA: f64 = 4.0;

/// The most a pixel's jumps are measured against, in units of the typical pixel's scale (see
/// [`jump_sigma`]).
const OWN_SCALE_MARGIN: f64 = 1.5;

/// E|X| of a Gaussian truncated at ±[`OWN_JUMP_SIGMA`]σ over the untruncated one's.
const TRUNCATION: f64 = 0.999_66;

/// Fewest differences from which the residual scale is estimated.
const MIN_SCALE_SAMPLES: usize = 5;

/// The group differences of a band of `m` pixels: `d[(t * ndiff + k) * m + i]` is group `k + 1`
/// minus group `k` of integration `t` at pixel `i` (NaN where either group is saturated or
/// absent). Plane by plane, as the ramps are read; the per-pixel statistics below run on
/// [`LANES`] neighbouring pixels at once, which this layout gives contiguously.
pub struct BandDiffs<'a> {
    pub d: &'a [f32],
    pub m: usize,
    pub ndiff: usize,
}

impl BandDiffs<'_> {
    fn nint(&self) -> usize {
        if self.m == 0 || self.ndiff == 0 {
            0
        } else {
            self.d.len() / (self.m * self.ndiff)
        }
    }

    /// Pixel `i`'s differences as `[t * ndiff + k]`, into `out`.
    fn gather(&self, i: usize, out: &mut Vec<f32>) {
        out.clear();
        out.extend((0..self.nint() * self.ndiff).map(|j| self.d[j * self.m + i]));
    }
}

/// The differences of one pixel, `d[t * ndiff + k]` (the rare per-pixel tests).
struct PixelDiffs<'a> {
    d: &'a [f32],
    ndiff: usize,
}

/// What the differences of one pixel say.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DiffFindings {
    /// Finite differences (the trials of the own-jump rate).
    pub diffs: u32,
    /// Differences whose residual stands out (step 3 of the module documentation).
    pub own_jumps: u32,
    /// Integrations whose transient is significant with the majority's sign.
    pub transients: u32,
    /// Integrations with upstream's many-jumps pattern, and with its RC-like early-jumps
    /// pattern, counted on the own jumps ([`super::pixel::JumpLimits::summarise`]).
    pub many_ints: u32,
    pub rc_jump_ints: u32,
    /// The pixel's own difference scale ([`band_scales`]; NaN when not estimated).
    pub sigma: f32,
}

/// The windows in difference indices: early differences `0..early`, late ones `late..ndiff`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Windows {
    pub early: usize,
    pub late: usize,
}

impl Windows {
    /// From the group windows `(e, l)` of [`super::pixel::JumpLimits::windows`]: the early
    /// differences are those into groups `1..=e`, the late ones those into groups `l..`.
    pub fn from_groups((e, l): (usize, usize), ndiff: usize) -> Windows {
        let early = e.clamp(1, ndiff.max(1));
        let late = l.saturating_sub(1).max(early).min(ndiff);
        Windows { early, late }
    }
}

/// Scratch buffers reused from chunk to chunk.
#[derive(Default)]
struct Scratch {
    keys: Vec<u32>,
    column: Vec<Lanes>,
    pixel: Vec<f32>,
    profile: Vec<f32>,
    own: Vec<bool>,
}

/// The parameters of [`analyse_band`].
#[derive(Clone, Copy, Debug)]
pub struct AnalysisParams {
    pub windows: Windows,
    /// The significance of a transient in units of its noise.
    pub transient_sigma: f64,
    pub limits: JumpLimits,
}

/// Analyses every pixel of a band (see the module documentation), given the pixels' difference
/// scales ([`band_scales`]) and the typical pixel's (`floor`). Pixels with `skip[i]` (reference
/// pixels) get the default findings.
pub fn analyse_band(
    b: &BandDiffs,
    scales: &[f32],
    floor: f64,
    skip: &[bool],
    ap: &AnalysisParams,
) -> Vec<DiffFindings> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { analyse_band_avx2(b, scales, floor, skip, ap) };
    }
    analyse_band_body(b, scales, floor, skip, ap)
}

/// [`analyse_band`] compiled for AVX2, chosen at run time (the build targets baseline x86-64:
/// 4 of the 16 lanes per instruction). The same IEEE operations in the same order, so the
/// findings are those of the baseline code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn analyse_band_avx2(
    b: &BandDiffs,
    scales: &[f32],
    floor: f64,
    skip: &[bool],
    ap: &AnalysisParams,
) -> Vec<DiffFindings> {
    analyse_band_body(b, scales, floor, skip, ap)
}

/// [`analyse_band`] for the instruction set of its caller.
#[inline(always)]
fn analyse_band_body(
    b: &BandDiffs,
    scales: &[f32],
    floor: f64,
    skip: &[bool],
    ap: &AnalysisParams,
) -> Vec<DiffFindings> {
    let (m, nd, nint) = (b.m, b.ndiff, b.nint());
    let mut out = vec![DiffFindings::default(); m];
    if nd == 0 || nint == 0 {
        return out;
    }
    let net = SortNetwork::new(nint);
    let mut s = Scratch::default();
    // profile[k][lane]: the median over the integrations of difference k.
    let mut profile: Vec<Lanes> = vec![[0.0; LANES]; nd];
    for i0 in (0..m).step_by(LANES) {
        let n = LANES.min(m - i0);
        for (k, prof) in profile.iter_mut().enumerate() {
            *prof = median_over_integrations(b, i0, n, k, &net, &mut s.column);
        }
        // The sigma the jumps are measured against, per lane (see `jump_sigma`).
        let mut limit: Lanes = [f32::NAN; LANES];
        for l in 0..n {
            limit[l] = (OWN_JUMP_SIGMA * jump_sigma(f64::from(scales[i0 + l]), floor)) as f32;
        }
        let (mut finite, mut own) = ([0u32; LANES], [0u32; LANES]);
        for t in 0..nint {
            for (k, prof) in profile.iter().enumerate() {
                let row = load(b.d, (t * nd + k) * m + i0, n);
                for l in 0..LANES {
                    let r = (row[l] - prof[l]).abs();
                    let ok = r <= f32::MAX;
                    finite[l] += u32::from(ok);
                    own[l] += u32::from(ok && r > limit[l]);
                }
            }
        }
        for l in 0..n {
            let i = i0 + l;
            if skip[i] {
                continue;
            }
            let f = &mut out[i];
            f.diffs = finite[l];
            f.sigma = f32::NAN;
            let own_sigma = f64::from(scales[i]);
            if (finite[l] as usize) < MIN_SCALE_SAMPLES
                || !(own_sigma.is_finite() && own_sigma > 0.0)
            {
                continue;
            }
            f.sigma = own_sigma as f32;
            f.own_jumps = own[l];
            s.profile.clear();
            s.profile.extend(profile.iter().map(|p| p[l]));
            rare_tests(b, i, jump_sigma(own_sigma, floor), ap, &mut s, f);
        }
    }
    out
}

/// The scale the jumps of a pixel are measured against: its own, kept between the typical
/// pixel's (`floor`) and [`OWN_SCALE_MARGIN`] times that. Below the floor a pixel's estimate is
/// more likely low by chance than the pixel quieter (and a low estimate makes ordinary
/// differences own jumps); a telegraph pixel's switches inflate its own estimate (and would
/// hide themselves); a pixel noisier than the margin is judged by the noise tests, and its
/// "jumps" are its noise (classify.rs).
fn jump_sigma(own_sigma: f64, floor: f64) -> f64 {
    own_sigma.min(OWN_SCALE_MARGIN * floor).max(floor)
}

/// The median over the integrations of difference `k` for pixels `i0..i0 + n` (NaN where a
/// pixel has no finite value; the mean of the two middle ones for an even count).
#[inline(always)]
fn median_over_integrations(
    b: &BandDiffs,
    i0: usize,
    n: usize,
    k: usize,
    net: &SortNetwork,
    column: &mut Vec<Lanes>,
) -> Lanes {
    let (m, nd, nint) = (b.m, b.ndiff, b.nint());
    column.clear();
    let mut count = [0u32; LANES];
    for t in 0..nint {
        let row = load(b.d, (t * nd + k) * m + i0, n);
        let mut v = [f32::INFINITY; LANES];
        for l in 0..LANES {
            let finite = row[l].abs() <= f32::MAX;
            count[l] += u32::from(finite);
            v[l] = if finite { row[l] } else { f32::INFINITY };
        }
        column.push(v);
    }
    net.sort(column);
    let mut med = [f32::NAN; LANES];
    for l in 0..n {
        let c = count[l] as usize;
        if c == 0 {
            continue;
        }
        let hi = column[c / 2][l];
        med[l] = if c % 2 == 1 {
            hi
        } else {
            0.5 * (column[c / 2 - 1][l] + hi)
        };
    }
    med
}

/// The per-integration tests of one pixel, run only where they can find something: upstream's
/// jump patterns need at least `max_jump_limit` own jumps; a transient in most integrations is
/// in the profile too, so without one there none is looked for integration by integration
/// (half the threshold leaves room for the profile's median to sit lower than most
/// integrations' values).
fn rare_tests(
    b: &BandDiffs,
    i: usize,
    sigma: f64,
    ap: &AnalysisParams,
    s: &mut Scratch,
    f: &mut DiffFindings,
) {
    let nd = b.ndiff;
    let may_be_many = f.own_jumps as usize >= ap.limits.max_jump_limit;
    let profile_shows_one =
        profile_transient(&s.profile, ap.windows, sigma) > 0.5 * ap.transient_sigma;
    if !(may_be_many || profile_shows_one) {
        return;
    }
    b.gather(i, &mut s.pixel);
    let px = PixelDiffs {
        d: &s.pixel,
        ndiff: nd,
    };
    let limit = (OWN_JUMP_SIGMA * sigma) as f32;
    if may_be_many {
        // Upstream's per-integration jump patterns, on the own jumps (the jump step's flags
        // include every neighbour's: a telegraph pixel's 4 neighbours had "many jumps" too).
        s.own.clear();
        s.own.resize(nd + 1, false);
        for t in 0..px.d.len() / nd {
            for k in 0..nd {
                let r = px.d[t * nd + k] - s.profile[k];
                s.own[k + 1] = r.abs() > limit;
            }
            let js = ap.limits.summarise(&s.own);
            f.many_ints += u32::from(js.many);
            f.rc_jump_ints += u32::from(js.rc);
        }
    }
    if profile_shows_one {
        f.transients = transients(&px, ap.windows, sigma, ap.transient_sigma, &mut s.keys);
    }
}

/// The largest |mean of the first k profile values − the late ones' mean| over k = 1, 2, 4,
/// ... up to the early window, in units of a single integration's noise for that k.
fn profile_transient(profile: &[f32], w: Windows, sigma: f64) -> f64 {
    let nd = profile.len();
    if w.late >= nd || w.early == 0 {
        return 0.0;
    }
    let (mut late_sum, mut late_n) = (0.0f64, 0usize);
    for v in profile[w.late..].iter().map(|&v| f64::from(v)) {
        if v.is_finite() {
            late_sum += v;
            late_n += 1;
        }
    }
    if late_n == 0 {
        return 0.0;
    }
    let late_mean = late_sum / late_n as f64;
    let mut best = 0.0f64;
    let mut k = 1;
    while k <= w.early {
        let mean = profile[..k].iter().map(|&v| f64::from(v)).sum::<f64>() / k as f64;
        let noise = sigma * (1.0 / k as f64 + std::f64::consts::FRAC_PI_2 / late_n as f64).sqrt();
        let z = ((mean - late_mean) / noise).abs();
        if z.is_finite() {
            best = best.max(z);
        }
        k *= 2;
    }
    best
}

/// Per integration, the mean of the first k differences minus the median of the late ones,
/// against its noise σ·sqrt(1/k + π/(2·late count)), for k = 1, 2, 4, ... up to the early
/// window; returns how many integrations show a significant transient of the more common
/// sign.
fn transients(px: &PixelDiffs, w: Windows, sigma: f64, threshold: f64, late: &mut Vec<u32>) -> u32 {
    let nd = px.ndiff;
    let nint = px.d.len() / nd;
    if w.late >= nd || w.early == 0 {
        return 0;
    }
    let (mut up, mut down) = (0u32, 0u32);
    for t in 0..nint {
        let row = &px.d[t * nd..(t + 1) * nd];
        let early = &row[..w.early];
        if early.iter().any(|v| !v.is_finite()) {
            continue;
        }
        late.clear();
        late.extend(
            row[w.late..]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .map(f32_order_key),
        );
        let n_late = late.len();
        let Some(late_median) = median_of_keys(late) else {
            continue;
        };
        // The most significant of the first 1, 2, 4, ... differences: a transient shorter than
        // the early window would be diluted by its mean (40 groups: a 10-difference window).
        let mut best = 0.0f64;
        let mut k = 1;
        while k <= early.len() {
            let mean = early[..k].iter().map(|&v| f64::from(v)).sum::<f64>() / k as f64;
            let noise =
                sigma * (1.0 / k as f64 + std::f64::consts::FRAC_PI_2 / n_late as f64).sqrt();
            let z = (mean - f64::from(late_median)) / noise;
            if z.abs() > best.abs() {
                best = z;
            }
            k *= 2;
        }
        if best > threshold {
            up += 1;
        } else if best < -threshold {
            down += 1;
        }
    }
    up.max(down)
}

/// The median of values given as [`f32_order_key`]s (the mean of the two middle ones for an even
/// count), reordering them in place.
fn median_of_keys(keys: &mut [u32]) -> Option<f32> {
    let n = keys.len();
    if n == 0 {
        return None;
    }
    let hi = select_kth(keys, n / 2);
    if n % 2 == 1 {
        return Some(f32_from_order_key(hi));
    }
    let lo = keys[..n / 2].iter().copied().max().expect("n >= 2");
    Some(0.5 * (f32_from_order_key(lo) + f32_from_order_key(hi)))
}

/// The scale σ of each pixel's differences (NaN where `skip[i]` or with fewer than
/// [`MIN_SCALE_SAMPLES`] usable disagreements), from the integrations' disagreement: the mean
/// of |d(t, k) − d(t+1, k)| over the groups k and consecutive integrations t, recomputed
/// without the disagreements beyond [`OWN_JUMP_SIGMA`] times the scale until it settles (at
/// most 5 times), times √(π/2) (a Gaussian's σ over its mean absolute value) over √2 (a
/// disagreement is the difference of two differences), with the truncation at 4σ corrected.
/// Not centred on the profile: residuals from a median over a few integrations of integer DN
/// values pile up at 0, which made a median-absolute estimate half the true scale. A hit or a
/// switch spoils 2 of the disagreements; a telegraph pixel's many switches inflate its scale
/// (see [`jump_sigma`] for why that does not hide it).
pub fn band_scales(b: &BandDiffs, skip: &[bool]) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { band_scales_avx2(b, skip) };
    }
    band_scales_body(b, skip)
}

/// [`band_scales`] compiled for AVX2 (see [`analyse_band_avx2`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn band_scales_avx2(b: &BandDiffs, skip: &[bool]) -> Vec<f32> {
    band_scales_body(b, skip)
}

/// [`band_scales`] for the instruction set of its caller.
#[inline(always)]
fn band_scales_body(b: &BandDiffs, skip: &[bool]) -> Vec<f32> {
    let (m, nd, nint) = (b.m, b.ndiff, b.nint());
    let mut out = vec![f32::NAN; m];
    if nd == 0 || nint < 2 {
        return out;
    }
    let gaussian = (std::f64::consts::PI / 2.0).sqrt() / std::f64::consts::SQRT_2;
    // The disagreements of one chunk, [(t - 1) * nd + k][lane] (NaN where either is).
    let mut dis: Vec<Lanes> = vec![[f32::NAN; LANES]; (nint - 1) * nd];
    for i0 in (0..m).step_by(LANES) {
        let n = LANES.min(m - i0);
        for t in 1..nint {
            for k in 0..nd {
                let a = load(b.d, (t * nd + k) * m + i0, n);
                let p = load(b.d, ((t - 1) * nd + k) * m + i0, n);
                let v = &mut dis[(t - 1) * nd + k];
                for l in 0..LANES {
                    v[l] = (a[l] - p[l]).abs();
                }
            }
        }
        let mut limit = [f32::INFINITY; LANES];
        let mut scale = [f64::NAN; LANES];
        // Lanes past the band's end are settled from the start.
        let mut settled: [bool; LANES] = std::array::from_fn(|l| l >= n);
        for pass in 0..5 {
            // In f32: some 80 values of a few DN, summed to ~1e-6 relative.
            let (mut sum, mut count) = ([0.0f32; LANES], [0u32; LANES]);
            let mut max = [0.0f32; LANES];
            for v in &dis {
                for l in 0..LANES {
                    // NaN fails the comparison: saturated differences are left out.
                    let keep = v[l] <= limit[l];
                    let kept = if keep { v[l] } else { 0.0 };
                    sum[l] += kept;
                    count[l] += u32::from(keep);
                    max[l] = if kept > max[l] { kept } else { max[l] };
                }
            }
            // E|X| of a Gaussian truncated at ±4σ is 0.99966 of the untruncated one's.
            let truncation = if pass == 0 { 1.0 } else { TRUNCATION };
            for l in 0..LANES {
                if settled[l] {
                    continue;
                }
                if (count[l] as usize) < MIN_SCALE_SAMPLES {
                    scale[l] = f64::NAN;
                    settled[l] = true;
                    continue;
                }
                let mean = f64::from(sum[l]) / f64::from(count[l]);
                let next = mean * gaussian / truncation;
                settled[l] = next == scale[l];
                scale[l] = next;
                limit[l] = (OWN_JUMP_SIGMA * next * std::f64::consts::SQRT_2) as f32;
                // Nothing beyond the first limit: the next pass keeps everything again, and
                // the one after that settles; their result, without the passes.
                if pass == 0 && max[l] <= limit[l] {
                    scale[l] = mean * gaussian / TRUNCATION;
                    settled[l] = true;
                }
            }
            if settled.iter().all(|&d| d) {
                break;
            }
        }
        for l in 0..n {
            if !skip[i0 + l] {
                out[i0 + l] = scale[l] as f32;
            }
        }
    }
    out
}

/// The median of finite values (the mean of the two middle ones for an even count), reordering
/// `v` in place.
pub(crate) fn median_in_place(v: &mut [f32]) -> Option<f32> {
    let n = v.len();
    if n == 0 {
        return None;
    }
    let (_, &mut hi, _) = v.select_nth_unstable_by(n / 2, f32::total_cmp);
    if n % 2 == 1 {
        return Some(hi);
    }
    let lo = v[..n / 2].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    Some(0.5 * (lo + hi))
}

use super::pixel::JumpLimits;
use mkrefs_support::lanes::{LANES, Lanes, SortNetwork, load};
use mkrefs_support::stats::{f32_from_order_key, f32_order_key, select_kth};

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in for Gaussian noise (sum of uniforms from an LCG).
    struct Lcg(u64);
    impl Lcg {
        fn normal(&mut self) -> f32 {
            let mut s = 0.0;
            for _ in 0..12 {
                self.0 = self
                    .0
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s += (self.0 >> 11) as f64 / (1u64 << 53) as f64;
            }
            (s - 6.0) as f32
        }
    }

    fn ramp(nint: usize, nd: usize, f: impl Fn(usize, usize, &mut Lcg) -> f32) -> Vec<f32> {
        let mut rng = Lcg(7);
        let mut d = Vec::new();
        for t in 0..nint {
            for k in 0..nd {
                d.push(f(t, k, &mut rng));
            }
        }
        d
    }

    /// Upstream's jump limits, the early window of 2 groups and the late one from group 7.
    fn params(nd: usize) -> AnalysisParams {
        AnalysisParams {
            windows: Windows::from_groups((2, 7), nd),
            transient_sigma: 5.0,
            limits: JumpLimits {
                max_jump_limit: 10,
                jump_ratio_threshold: 5.0,
                early_cutoff_fraction: 0.25,
            },
        }
    }

    fn run(d: &[f32], nd: usize) -> DiffFindings {
        // One pixel: the band layout is then the pixel's own.
        let b = BandDiffs { d, m: 1, ndiff: nd };
        let ap = params(nd);
        // An ordinary pixel: its own scale is the typical one.
        let sigma = band_scales(&b, &[false]);
        analyse_band(&b, &sigma, f64::from(sigma[0]), &[false], &ap)[0]
    }

    #[test]
    fn only_a_hit_of_the_pixels_own_is_an_own_jump() {
        let nd = 9;
        let mut d = ramp(10, nd, |_, _, r| 5.0 + 14.0 * r.normal());
        // A real hit of 400 DN; the jump step's flags on ordinary differences (a neighbour's
        // hit) are not looked at.
        d[25] += 400.0;
        let f = run(&d, nd);
        assert_eq!(f.own_jumps, 1);
        assert_eq!(f.diffs, 90);
        assert_eq!(f.transients, 0);
    }

    #[test]
    fn a_transient_in_every_integration_is_counted_and_not_taken_for_jumps() {
        let nd = 9;
        // An RC-like decay: the first differences far below the slope in every integration.
        let d = ramp(10, nd, |_, k, r| {
            let decay = [-300.0, -120.0, -40.0];
            5.0 + 14.0 * r.normal() + decay.get(k).copied().unwrap_or(0.0)
        });
        let f = run(&d, nd);
        assert_eq!(f.own_jumps, 0, "the repeated decay is in the profile");
        assert_eq!(f.transients, 10);
    }

    #[test]
    fn random_switches_of_both_signs_are_own_jumps_not_a_transient() {
        let nd = 9;
        let mut d = ramp(10, nd, |_, _, r| 14.0 * r.normal());
        for (t, k, h) in [(0, 1, 150.0), (1, 4, -150.0), (3, 0, 150.0), (5, 6, -150.0)] {
            d[t * nd + k] += h;
        }
        let f = run(&d, nd);
        assert_eq!(f.own_jumps, 4);
        // Two early up-switches in 10 integrations leave the profile flat: no transient is
        // looked for (an RC pixel's shows in most integrations, so in the profile too).
        assert_eq!(f.transients, 0, "{f:?}");
    }

    #[test]
    fn saturated_differences_are_not_trials() {
        let nd = 9;
        let mut d = ramp(6, nd, |_, _, r| 14.0 * r.normal());
        for v in d.iter_mut().skip(5 * nd) {
            *v = f32::NAN;
        }
        let f = run(&d, nd);
        assert_eq!(f.diffs, 45);
        assert_eq!(f.transients, 0);
    }

    /// A band of many pixels (not a multiple of the lanes, with saturated differences and
    /// skipped pixels) gives each pixel what it gives alone.
    #[test]
    fn a_band_gives_each_pixel_its_own_findings() {
        let (nint, nd, m) = (7, 9, 37);
        let mut rng = Lcg(3);
        let mut pixels: Vec<Vec<f32>> = Vec::new();
        for i in 0..m {
            let mut d: Vec<f32> = (0..nint * nd)
                .map(|j| {
                    let decay = if i % 5 == 0 && j % nd < 2 {
                        -200.0
                    } else {
                        0.0
                    };
                    5.0 + 14.0 * rng.normal() + decay
                })
                .collect();
            if i % 7 == 3 {
                d[(i % nint) * nd + 2] += 300.0;
            }
            if i % 11 == 4 {
                for v in d.iter_mut().skip(4 * nd) {
                    *v = f32::NAN;
                }
            }
            pixels.push(d);
        }
        let mut band = vec![0.0f32; nint * nd * m];
        for (i, px) in pixels.iter().enumerate() {
            for (j, &v) in px.iter().enumerate() {
                band[j * m + i] = v;
            }
        }
        let skip: Vec<bool> = (0..m).map(|i| i == 20).collect();
        let b = BandDiffs {
            d: &band,
            m,
            ndiff: nd,
        };
        let ap = params(nd);
        let scales = band_scales(&b, &skip);
        let floor = 14.0;
        let found = analyse_band(&b, &scales, floor, &skip, &ap);
        for (i, px) in pixels.iter().enumerate() {
            if skip[i] {
                assert!(scales[i].is_nan());
                assert_eq!(found[i], DiffFindings::default());
                continue;
            }
            let one = BandDiffs {
                d: px,
                m: 1,
                ndiff: nd,
            };
            let s1 = band_scales(&one, &[false]);
            assert_eq!(s1[0].to_bits(), scales[i].to_bits(), "pixel {i}");
            let f1 = analyse_band(&one, &s1, floor, &[false], &ap)[0];
            assert_eq!(f1, found[i], "pixel {i}");
        }
        assert!(found.iter().any(|f| f.transients > 0));
        assert!(found.iter().any(|f| f.own_jumps > 0));
    }

    #[test]
    fn order_keys_sort_as_the_values() {
        let v = [-3.5f32, -0.0, 0.0, 1e-30, 2.0, -1e30, 7.25];
        let mut keys: Vec<u32> = v.iter().map(|&x| f32_order_key(x)).collect();
        keys.sort_unstable();
        let back: Vec<f32> = keys.iter().map(|&k| f32_from_order_key(k)).collect();
        assert_eq!(back, [-1e30, -3.5, -0.0, 0.0, 1e-30, 2.0, 7.25]);
        let mut k2: Vec<u32> = [4.0f32, 1.0, 3.0, 2.0]
            .iter()
            .map(|&x| f32_order_key(x))
            .collect();
        assert_eq!(median_of_keys(&mut k2), Some(2.5));
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_in_place(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median_in_place(&mut [4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median_in_place(&mut []), None);
    }
}
