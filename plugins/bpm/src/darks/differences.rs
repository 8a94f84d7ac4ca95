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
//!    ([`pair_scale`]);
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
/// [`analyse`]).
const OWN_SCALE_MARGIN: f64 = 1.5;

/// Fewest differences from which the residual scale is estimated.
const MIN_SCALE_SAMPLES: usize = 5;

/// The group differences of one pixel: `d[t * ndiff + k]` is group `k + 1` minus group `k` of
/// integration `t` (NaN where either group is saturated or absent).
pub struct PixelDiffs<'a> {
    pub d: &'a [f32],
    pub ndiff: usize,
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
    /// The pixel's own difference scale ([`pair_scale`]; NaN when not estimated).
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

/// Scratch buffers reused from pixel to pixel.
#[derive(Default)]
pub struct Scratch {
    keys: Vec<u32>,
    profile: Vec<f32>,
    abs: Vec<f32>,
    own: Vec<bool>,
}

/// Analyses one pixel (see the module documentation), given its difference scale
/// ([`pair_scale`]) and the typical pixel's. `transient_sigma` is the significance of a
/// transient in units of its noise.
pub fn analyse(
    px: &PixelDiffs,
    (own_sigma, floor): (f64, f64),
    windows: Windows,
    transient_sigma: f64,
    limits: &JumpLimits,
    s: &mut Scratch,
) -> DiffFindings {
    let nd = px.ndiff;
    if nd == 0 {
        return DiffFindings::default();
    }
    let nint = px.d.len() / nd;
    s.profile.clear();
    for k in 0..nd {
        s.keys.clear();
        s.keys.extend(
            (0..nint)
                .map(|t| px.d[t * nd + k])
                .filter(|v| v.is_finite())
                .map(order_key),
        );
        s.profile
            .push(median_of_keys(&mut s.keys).unwrap_or(f32::NAN));
    }
    s.abs.clear();
    for (i, &v) in px.d.iter().enumerate() {
        let r = v - s.profile[i % nd];
        if r.is_finite() {
            s.abs.push(r.abs());
        }
    }
    let mut out = DiffFindings {
        diffs: s.abs.len() as u32,
        sigma: f32::NAN,
        ..DiffFindings::default()
    };
    if s.abs.len() < MIN_SCALE_SAMPLES {
        return out;
    }
    if !(own_sigma.is_finite() && own_sigma > 0.0) {
        return out;
    }
    out.sigma = own_sigma as f32;
    // The scale the jumps are measured against: the pixel's own, kept between the typical
    // pixel's (`floor`) and OWN_SCALE_MARGIN times that. Below the floor a pixel's estimate is
    // more likely low by chance than the pixel quieter (and a low estimate makes ordinary
    // differences own jumps); a telegraph pixel's switches inflate its own estimate (and would
    // hide themselves); a pixel noisier than the margin is judged by the noise tests, and its
    // "jumps" are its noise (classify.rs).
    let sigma = own_sigma.min(OWN_SCALE_MARGIN * floor).max(floor);
    let limit = (OWN_JUMP_SIGMA * sigma) as f32;
    out.own_jumps = s.abs.iter().filter(|&&a| a > limit).count() as u32;
    // Upstream's per-integration jump patterns, on the own jumps (the jump step's flags
    // include every neighbour's: a telegraph pixel's 4 neighbours had "many jumps" too).
    // Many jumps in an integration need at least max_jump_limit of them.
    let may_be_many = out.own_jumps as usize >= limits.max_jump_limit;
    s.own.clear();
    s.own.resize(nd + 1, false);
    for t in (0..nint).filter(|_| may_be_many) {
        for k in 0..nd {
            let r = px.d[t * nd + k] - s.profile[k];
            s.own[k + 1] = r.abs() > limit;
        }
        let js = limits.summarise(&s.own);
        out.many_ints += u32::from(js.many);
        out.rc_jump_ints += u32::from(js.rc);
    }
    // A transient in most integrations is in the profile too: without one there, none is
    // looked for integration by integration (half the threshold leaves room for the
    // profile's median to sit lower than most integrations' values).
    let profile_shows_one = profile_transient(&s.profile, windows, sigma) > 0.5 * transient_sigma;
    if profile_shows_one {
        out.transients = transients(px, windows, sigma, transient_sigma, &mut s.keys);
    }
    out
}

/// The largest |mean of the first k profile values − the late ones' mean| over k = 1, 2, 4,
/// ... up to the early window, in units of a single integration's noise for that k.
fn profile_transient(profile: &[f32], w: Windows, sigma: f64) -> f64 {
    let nd = profile.len();
    if w.late >= nd || w.early == 0 {
        return 0.0;
    }
    let late: Vec<f64> = profile[w.late..]
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| v.is_finite())
        .collect();
    if late.is_empty() {
        return 0.0;
    }
    let late_mean = late.iter().sum::<f64>() / late.len() as f64;
    let mut best = 0.0f64;
    let mut k = 1;
    while k <= w.early {
        let mean = profile[..k].iter().map(|&v| f64::from(v)).sum::<f64>() / k as f64;
        let noise =
            sigma * (1.0 / k as f64 + std::f64::consts::FRAC_PI_2 / late.len() as f64).sqrt();
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
                .map(order_key),
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

/// A key that sorts as the finite `f32` it comes from (the sign bit flipped for positive
/// values, all bits for negative ones): integer selection is several times faster than
/// selection through a float comparison, and these medians run for every pixel.
fn order_key(v: f32) -> u32 {
    let b = v.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

fn from_order_key(k: u32) -> f32 {
    f32::from_bits(if k & 0x8000_0000 != 0 {
        k & 0x7fff_ffff
    } else {
        !k
    })
}

/// The median of values given as [`order_key`]s (the mean of the two middle ones for an even
/// count), reordering them in place.
fn median_of_keys(keys: &mut [u32]) -> Option<f32> {
    let n = keys.len();
    if n == 0 {
        return None;
    }
    let hi = select_kth(keys, n / 2);
    if n % 2 == 1 {
        return Some(from_order_key(hi));
    }
    let lo = keys[..n / 2].iter().copied().max().expect("n >= 2");
    Some(0.5 * (from_order_key(lo) + from_order_key(hi)))
}

/// The scale σ of a pixel's differences, from the integrations' disagreement: the mean of
/// |d(t, k) − d(t+1, k)| over the groups k and consecutive integrations t, recomputed without
/// the disagreements beyond [`OWN_JUMP_SIGMA`] times the scale until it settles (at most 5
/// times), times √(π/2) (a Gaussian's σ over its mean absolute value) over √2 (a
/// disagreement is the difference of two differences), with the truncation at 4σ corrected.
/// Not centred on the profile: residuals from a median over a few integrations of integer DN
/// values pile up at 0, which made a median-absolute estimate half the true scale. A hit or a
/// switch spoils 2 of the disagreements; a telegraph pixel's many switches inflate its scale
/// (see [`analyse`] for why that does not hide it).
pub fn pair_scale(px: &PixelDiffs) -> f64 {
    let nd = px.ndiff;
    let nint = px.d.len() / nd;
    let mut limit = f32::INFINITY;
    let mut scale = f64::NAN;
    for _ in 0..5 {
        let (mut sum, mut n) = (0.0f64, 0u32);
        for t in 1..nint {
            let (a, b) = (&px.d[t * nd..(t + 1) * nd], &px.d[(t - 1) * nd..t * nd]);
            for k in 0..nd {
                let v = (a[k] - b[k]).abs();
                // NaN fails the comparison: saturated differences are left out.
                if v <= limit {
                    sum += f64::from(v);
                    n += 1;
                }
            }
        }
        if (n as usize) < MIN_SCALE_SAMPLES {
            return f64::NAN;
        }
        // E|X| of a Gaussian truncated at ±4σ is 0.99966 of the untruncated one's.
        let truncation = if limit.is_finite() { 0.999_66 } else { 1.0 };
        let next = sum / f64::from(n) * (std::f64::consts::PI / 2.0).sqrt()
            / std::f64::consts::SQRT_2
            / truncation;
        if next == scale {
            break;
        }
        scale = next;
        limit = (OWN_JUMP_SIGMA * scale * std::f64::consts::SQRT_2) as f32;
    }
    scale
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
use mkrefs_support::stats::select_kth;

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

    fn run(d: &[f32], nd: usize) -> DiffFindings {
        let w = Windows::from_groups((2, 7), nd);
        let px = PixelDiffs { d, ndiff: nd };
        let limits = JumpLimits {
            max_jump_limit: 10,
            jump_ratio_threshold: 5.0,
            early_cutoff_fraction: 0.25,
        };
        let mut s = Scratch::default();
        // An ordinary pixel: its own scale is the typical one.
        let sigma = pair_scale(&px);
        analyse(&px, (sigma, sigma), w, 5.0, &limits, &mut s)
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

    #[test]
    fn order_keys_sort_as_the_values() {
        let v = [-3.5f32, -0.0, 0.0, 1e-30, 2.0, -1e30, 7.25];
        let mut keys: Vec<u32> = v.iter().map(|&x| order_key(x)).collect();
        keys.sort_unstable();
        let back: Vec<f32> = keys.iter().map(|&k| from_order_key(k)).collect();
        assert_eq!(back, [-1e30, -3.5, -0.0, 0.0, 1e-30, 2.0, 7.25]);
        let mut k2: Vec<u32> = [4.0f32, 1.0, 3.0, 2.0]
            .iter()
            .map(|&x| order_key(x))
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
