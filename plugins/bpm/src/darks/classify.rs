//! Step 3 of the dark search: the detector-wide references (the noise tests' typical
//! variances, the rate of own jumps) and each pixel's classes.
//!
//! How a pixel with evidence for several classes is decided (so that one defect does not carry
//! another class's flag):
//!
//! - **RC** is a reset transient repeated in every integration: a high pedestal, upstream's
//!   early-jump pattern, or a significant early-minus-late difference of the same sign in more
//!   than `rc_fraction_threshold` of the integrations ([`super::differences`]). The transient
//!   is part of the pixel's median difference profile, so its early differences are not own
//!   jumps and do not make it TELEGRAPH; its fitted pedestal, bent by the transient, does not
//!   make it low-pedestal when the transient is seen (what a superbias made from the same
//!   darks leaves of an RC pixel: a pedestal below the others).
//! - **TELEGRAPH** needs jumps of the pixel's own, at random (not in the profile), more of them
//!   than the detector's rate of own jumps makes probable at the `dark_noisy_threshold`-σ
//!   level (Poisson in the pixel's number of usable differences), or upstream's many-jumps
//!   test on the own jumps
//!   test, or a noisy verdict (flagged as `flag_values['noisy']` when given,
//!   else as `high_cr`).
//! - **HOT** (slopes) and saturated pixels are decided from the slopes and the saturation
//!   flags alone. A hot pixel's pedestal is not evidence of RC or of a low pedestal: it holds
//!   the charge collected before the first read, which the ramp fit's extrapolation and a
//!   superbias made from the same darks treat differently (jwst's products put 15 % of the
//!   simulated hot pixels above the RC bound, a SELF superbias 23 % below the low one); for a
//!   hot pixel only the transient says RC. The same holds for a TELEGRAPH pixel (frequent own
//!   jumps), whose pedestal is high when it sat on its upper level at most resets. A pixel that really is two things (a hot pixel that
//!   also switches, or shows a reset transient) gets both flags.

use std::collections::BTreeMap;

use statrs::distribution::{DiscreteCDF, Poisson};

use mkrefs_support::clipped::BucketSorted;
use mkrefs_support::dq;

use super::inputs::Geometry;
use super::model::{CLASS_NAMES, ClassValues, DarkParams, MIN_CLEAN_SLOPES};
use super::noise::{NoiseCuts, NoiseVerdict};
use super::pixel::normal_upper_tail;
use super::scan::{B_HOT, B_LOWPED, B_MANY, B_RCJUMP, B_RCPED, B_RCSHAPE, B_SAT, Counts};

/// The group-difference scale of a noisy pixel is at least this many times the detector's
/// median: the scale of each pixel is measured from some 80 disagreements of integer DN
/// values, so the estimates scatter by ~10 % with heavier than Gaussian tails, and a healthy
/// detector's read-noise tail reaches 1.5-2 times the median; what upstream calls noisy (and
/// the simulator's noisy class, 5-8 times) is far beyond.
const DIFF_NOISE_MIN_FACTOR: f64 = 2.0;

/// The detector-wide references of step 3.
pub(super) struct Cuts {
    noise: NoiseCuts,
    /// Own jumps per usable difference over the unsaturated science pixels.
    own_rate: f64,
    alpha: f64,
    /// `own_limit[d]`: own jumps from which a pixel with `d` usable differences is TELEGRAPH.
    own_limit: Vec<u32>,
    /// Noisy from the group differences: the clipped mean plus `noisy_threshold` clipped sd of
    /// the pixels' difference scales (upstream's cut, on a scale measured from every difference
    /// of the pixel rather than from its 5 to 10 clean slopes), and at least
    /// [`DIFF_NOISE_MIN_FACTOR`] times their median.
    diff_noise_cut: f64,
}

impl Cuts {
    pub(super) fn new(
        counts: &Counts,
        geo: &Geometry,
        p: &DarkParams,
        notes: &mut Vec<String>,
    ) -> Cuts {
        let alpha = normal_upper_tail(p.noisy_threshold);
        let tested: Vec<bool> = (0..counts.bits.len())
            .map(|i| !geo.reference[i] && counts.bits[i] & B_SAT == 0)
            .collect();
        // The noise references and the difference-scale cut are independent 4-million-value
        // statistics, each partly serial: side by side.
        let (noise, (diff_noise_cut, median_scale)) = rayon::join(
            || {
                NoiseCuts::new(
                    &counts.noise,
                    &tested,
                    MIN_CLEAN_SLOPES as u32,
                    alpha,
                    (p.clipping_sigma, p.max_clipping_iters),
                )
            },
            || difference_noise_cut(counts, &tested, p),
        );
        let (mut own, mut trials) = (0u64, 0u64);
        for (f, _) in counts.diffs.iter().zip(&tested).filter(|(_, t)| **t) {
            own += u64::from(f.own_jumps);
            trials += u64::from(f.diffs);
        }
        let own_rate = if trials > 0 {
            own as f64 / trials as f64
        } else {
            0.0
        };
        let max_d = counts.diffs.iter().map(|f| f.diffs).max().unwrap_or(0);
        let own_limit = (0..=max_d)
            .map(|d| poisson_limit(own_rate * f64::from(d), alpha))
            .collect::<Vec<_>>();
        let describe = |v: Option<f64>| v.map_or("n/a".to_string(), |x| format!("{x:.4e}"));
        notes.push(format!(
            "noisy: clean-slope variance tested at p <= {alpha:.2e} against the detector's \
             typical clean-slope variance {} (DN/s)^2 plus the pixel's VAR_POISSON, and against \
             {} x its own ERR^2",
            describe(noise.typical),
            describe(noise.err_scale)
        ));
        notes.push(format!(
            "own jumps (differences standing out of the pixel's own noise): {own} in {trials} \
             differences ({own_rate:.3e} per difference); {} or more of {max_d} make a pixel \
             TELEGRAPH (p <= {alpha:.2e})",
            own_limit.last().copied().unwrap_or(0)
        ));
        notes.push(format!(
            "noisy from the group differences: scale above {diff_noise_cut:.3} DN (clipped \
             mean + {} clipped sd, at least {DIFF_NOISE_MIN_FACTOR} x the median {median_scale:.3})",
            p.noisy_threshold
        ));
        Cuts {
            noise,
            own_rate,
            alpha,
            own_limit,
            diff_noise_cut,
        }
    }

    fn frequent(&self, own_jumps: u32, diffs: u32) -> bool {
        let limit = match self.own_limit.get(diffs as usize) {
            Some(&l) => l,
            None => poisson_limit(self.own_rate * f64::from(diffs), self.alpha),
        };
        own_jumps >= limit
    }
}

/// The cut on the pixels' group-difference scales ([`Cuts`]'s `diff_noise_cut`), and their
/// median.
fn difference_noise_cut(counts: &Counts, tested: &[bool], p: &DarkParams) -> (f64, f64) {
    let scales: Vec<f32> = counts
        .diffs
        .iter()
        .zip(tested)
        .filter(|(f, t)| **t && f.sigma.is_finite())
        .map(|(f, _)| f.sigma)
        .collect();
    let Some(sorted) = BucketSorted::new(&scales) else {
        return (f64::INFINITY, f64::INFINITY);
    };
    let median_scale = sorted.all().median;
    let cut = sorted
        .sigma_clip(p.clipping_sigma, p.max_clipping_iters)
        .map_or(f64::INFINITY, |c| c.mean + p.noisy_threshold * c.std)
        .max(DIFF_NOISE_MIN_FACTOR * median_scale);
    (cut, median_scale)
}

/// The smallest count that a Poisson variable of mean `lambda` reaches with probability at most
/// `alpha` (at least 1).
fn poisson_limit(lambda: f64, alpha: f64) -> u32 {
    if lambda <= 0.0 {
        return 1;
    }
    let poisson = Poisson::new(lambda).expect("lambda > 0");
    // P(X >= k) = sf(k - 1).
    (1u32..)
        .find(|&k| poisson.sf(u64::from(k - 1)) <= alpha)
        .expect("the tail vanishes")
}

/// The class maps and the DQ map: each flagged class's value ORed in, reference pixels
/// REFERENCE_PIXEL only.
pub(super) fn classify(
    counts: &Counts,
    geo: &Geometry,
    values: &ClassValues,
    cuts: &Cuts,
) -> (BTreeMap<String, Vec<bool>>, Vec<u32>) {
    let n = geo.ny * geo.nx;
    let mut classes: BTreeMap<String, Vec<bool>> = CLASS_NAMES
        .iter()
        .map(|c| (c.to_string(), vec![false; n]))
        .collect();
    let mut dqmap = vec![0u32; n];
    let mut m: BTreeMap<&str, &mut Vec<bool>> =
        classes.iter_mut().map(|(k, v)| (k.as_str(), v)).collect();
    for (i, v) in dqmap.iter_mut().enumerate() {
        if geo.reference[i] {
            m.get_mut("reference_pixel").unwrap()[i] = true;
            *v = dq::REFERENCE_PIXEL;
            continue;
        }
        let mut set = |name: &str| m.get_mut(name).unwrap()[i] = true;
        let f = counts.diffs[i];
        let sample = &counts.noise[i];
        let mut noise = cuts.noise.verdict(sample);
        // The group-difference scale, for pixels whose differences are ordinary ramps: not a
        // hot pixel's (shot noise), a saturated one's or an RC pixel's (its transient).
        let explained = counts.bits[i] & (B_HOT | B_SAT | B_RCSHAPE | B_RCPED) != 0;
        noise.against_differences = !explained && f64::from(f.sigma) > cuts.diff_noise_cut;
        let pixel = PixelTests {
            bits: counts.bits[i],
            noise,
            // A pixel noisy by its difference scale "jumps" with its noise.
            frequent: !noise.against_differences && cuts.frequent(f.own_jumps, f.diffs),
        };
        *v = pixel.classify(values, &mut set);
    }
    drop(m);
    (classes, dqmap)
}

/// What the tests say of one science pixel.
struct PixelTests {
    /// The class word of step 2.
    bits: u8,
    noise: NoiseVerdict,
    frequent: bool,
}

impl PixelTests {
    /// Marks the pixel's classes (`set`) and returns its DQ value.
    fn classify(&self, values: &ClassValues, set: &mut dyn FnMut(&str)) -> u32 {
        let b = self.bits;
        let mut v = 0u32;
        if b & B_SAT != 0 {
            set("saturated");
            v |= values.saturated;
        }
        if b & B_HOT != 0 {
            set("hot");
            v |= values.hot;
        }
        let parts = [
            (B_RCPED, "rc_from_pedestal"),
            (B_RCJUMP, "rc_from_jumps"),
            (B_RCSHAPE, "rc_from_transient"),
        ];
        for (bit, name) in parts {
            if b & bit != 0 {
                set(name);
            }
        }
        let hot = b & B_HOT != 0;
        // A hot pixel's pedestal holds its charge before the first read; a telegraph pixel's
        // (frequent jumps, or a difference scale its switches inflate) is high when it happens
        // to sit on its upper level at most resets (1 in 100 of them over 10 integrations).
        let pedestal_unreliable = hot || self.frequent || self.noise.against_differences;
        let rc_evidence = if pedestal_unreliable {
            B_RCSHAPE
        } else {
            B_RCPED | B_RCJUMP | B_RCSHAPE
        };
        if b & rc_evidence != 0 {
            set("rc");
            v |= values.rc;
        }
        if b & B_LOWPED != 0 && b & B_RCSHAPE == 0 && !pedestal_unreliable {
            set("low_pedestal");
            v |= values.low_pedestal;
        }
        let many = b & B_MANY != 0;
        let parts = [
            (self.noise.against_population, "noisy_against_population"),
            (self.noise.against_err, "noisy_against_err"),
            (self.noise.against_differences, "noisy_from_differences"),
        ];
        for (on, name) in parts {
            if on {
                set(name);
            }
        }
        let noisy = self.noise.noisy();
        if noisy {
            set("noisy");
            v |= values.noisy;
        }
        if many {
            set("many_jumps");
        }
        if self.frequent {
            set("frequent_jumps");
        }
        if many || self.frequent {
            set("high_cr");
            v |= values.high_cr;
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poisson_limits() {
        let alpha = normal_upper_tail(5.0);
        // 90 differences at 5e-3 own jumps each: mean 0.45; P(X >= 7) = 4.7e-7 > alpha,
        // P(X >= 8) = 3.0e-8.
        assert_eq!(poisson_limit(0.45, alpha), 8);
        assert_eq!(poisson_limit(0.0, alpha), 1);
        assert!(poisson_limit(0.09, alpha) <= 5);
    }

    fn values() -> ClassValues {
        ClassValues {
            hot: dq::HOT,
            saturated: dq::HOT,
            rc: dq::RC,
            low_pedestal: dq::OTHER_BAD_PIXEL,
            high_cr: dq::TELEGRAPH,
            noisy: dq::TELEGRAPH,
        }
    }

    fn dq_of(bits: u8, frequent: bool) -> u32 {
        let t = PixelTests {
            bits,
            noise: NoiseVerdict::default(),
            frequent,
        };
        t.classify(&values(), &mut |_| {})
    }

    #[test]
    fn an_rc_transient_overrides_the_low_pedestal_it_causes() {
        assert_eq!(dq_of(B_RCSHAPE | B_LOWPED, false), dq::RC);
        assert_eq!(dq_of(B_LOWPED, false), dq::OTHER_BAD_PIXEL);
    }

    #[test]
    fn a_hot_pixel_that_also_switches_gets_both_flags() {
        assert_eq!(dq_of(B_HOT, true), dq::HOT | dq::TELEGRAPH);
        assert_eq!(dq_of(B_HOT | B_RCSHAPE, false), dq::HOT | dq::RC);
    }

    #[test]
    fn a_hot_pixels_pedestal_is_not_rc_or_low() {
        assert_eq!(dq_of(B_HOT | B_RCPED, false), dq::HOT);
        assert_eq!(dq_of(B_HOT | B_LOWPED, false), dq::HOT);
        assert_eq!(dq_of(B_RCPED, false), dq::RC);
        assert_eq!(dq_of(B_RCPED, true), dq::TELEGRAPH);
    }
}
