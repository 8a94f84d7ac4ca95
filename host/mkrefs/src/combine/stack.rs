//! Per-pixel statistics over a few reference files, band by band.
//!
//! A pixel's finite values are clipped around their median: values further than `clip_sigma`
//! standard deviations (ddof 0, of the values still kept) are left out, up to
//! [`CLIP_ITERATIONS`] times and only while at least 3 values remain (two values are each one
//! standard deviation from their median, so there is nothing to tell apart). The combined value
//! is the mean or the median of what is kept. Its error:
//! - from the inputs' ERR when every kept value has a finite one: `sqrt(sum ERR^2) / n` for the
//!   mean, times `sqrt(pi / 2)` for the median (the median of normal values is that much
//!   noisier than their mean);
//! - else from the kept values' scatter: their sample standard deviation (ddof 1) over
//!   `sqrt(n)`, with the same factor for the median; NaN with one value.

use crate::combine::rule::{Method, Rule};

/// Clipping rounds per pixel at most (astropy's `sigma_clip` default).
pub(crate) const CLIP_ITERATIONS: usize = 5;

/// The DO_NOT_USE flag (bit 0 in every JWST DQ table).
const DO_NOT_USE: u32 = 1;

/// Combines one band: `values[i]` (and `errs[i]`, when the inputs have ERR) is input `i`'s
/// band; the combined values go to `out` and their errors to `out_err`.
pub(crate) fn combine_band(
    values: &[Vec<f32>],
    errs: Option<&[Vec<f32>]>,
    rule: Rule,
    out: &mut [f32],
    out_err: &mut [f32],
) {
    let mut kept: Vec<(f32, f32)> = Vec::with_capacity(values.len());
    let mut scratch: Vec<f32> = Vec::with_capacity(values.len());
    for k in 0..out.len() {
        kept.clear();
        for (i, v) in values.iter().enumerate() {
            if v[k].is_finite() {
                kept.push((v[k], errs.map_or(f32::NAN, |e| e[i][k])));
            }
        }
        (out[k], out_err[k]) = combine_pixel(&mut kept, &mut scratch, rule);
    }
}

/// One pixel's value and error from its finite values (with their ERR); see the module
/// documentation.
fn combine_pixel(kept: &mut Vec<(f32, f32)>, scratch: &mut Vec<f32>, rule: Rule) -> (f32, f32) {
    if kept.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    for _ in 0..CLIP_ITERATIONS {
        if kept.len() < 3 {
            break;
        }
        let centre = median(kept.iter().map(|p| p.0), scratch);
        let (_, sd) = mean_sd(kept.iter().map(|p| p.0), 0);
        let limit = rule.clip_sigma * sd;
        let before = kept.len();
        kept.retain(|p| f64::from((p.0 - centre as f32).abs()) <= limit);
        if kept.len() == before || kept.is_empty() {
            break;
        }
    }
    if kept.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let n = kept.len() as f64;
    let (mean, sd1) = mean_sd(kept.iter().map(|p| p.0), 1);
    let (value, factor) = match rule.method {
        Method::Median => (
            median(kept.iter().map(|p| p.0), scratch),
            (std::f64::consts::PI / 2.0).sqrt(),
        ),
        Method::Mean | Method::Flags => (mean, 1.0),
    };
    let err = if kept.iter().all(|p| p.1.is_finite()) {
        kept.iter()
            .map(|p| f64::from(p.1).powi(2))
            .sum::<f64>()
            .sqrt()
            / n
    } else if kept.len() > 1 {
        sd1 / n.sqrt()
    } else {
        f64::NAN
    };
    (value as f32, (err * factor) as f32)
}

/// Mean and standard deviation (`ddof` 0 or 1; NaN where undefined), in f64.
fn mean_sd(values: impl Iterator<Item = f32> + Clone, ddof: usize) -> (f64, f64) {
    let (n, sum) = values
        .clone()
        .fold((0usize, 0.0f64), |(n, s), v| (n + 1, s + f64::from(v)));
    let mean = sum / n as f64;
    let ss: f64 = values.map(|v| (f64::from(v) - mean).powi(2)).sum();
    let sd = if n > ddof {
        (ss / (n - ddof) as f64).sqrt()
    } else {
        f64::NAN
    };
    (mean, sd)
}

/// The median (mean of the middle two for an even count) of at least one value.
fn median(values: impl Iterator<Item = f32>, scratch: &mut Vec<f32>) -> f64 {
    scratch.clear();
    scratch.extend(values);
    scratch.sort_unstable_by(f32::total_cmp);
    let n = scratch.len();
    match n % 2 {
        1 => f64::from(scratch[n / 2]),
        _ => (f64::from(scratch[n / 2 - 1]) + f64::from(scratch[n / 2])) / 2.0,
    }
}

/// Combines one band of DQ: `flags[i]` is input `i`'s band. A flag is kept where it is set in
/// at least [`Rule::needed`] of the inputs.
pub(crate) fn combine_flags(flags: &[Vec<u32>], rule: Rule, out: &mut [u32]) {
    let n = flags.len();
    for (k, o) in out.iter_mut().enumerate() {
        let any = flags.iter().fold(0u32, |a, f| a | f[k]);
        if any == 0 {
            *o = 0;
            continue;
        }
        let mut combined = 0u32;
        for bit in (0..32).map(|b| 1u32 << b).filter(|b| any & b != 0) {
            let set = flags.iter().filter(|f| f[k] & bit != 0).count() as u32;
            let with_do_not_use = flags
                .iter()
                .filter(|f| f[k] & bit != 0 && f[k] & DO_NOT_USE != 0)
                .count() as u32;
            if set >= rule.needed(n, with_do_not_use) {
                combined |= bit;
            }
        }
        *o = combined;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::combine::rule::DqMin;

    fn rule(method: Method) -> Rule {
        Rule {
            method,
            clip_sigma: 2.0,
            dq_min: DqMin::Majority,
        }
    }

    fn one(values: &[f32], errs: Option<&[f32]>, method: Method) -> (f32, f32) {
        let v: Vec<Vec<f32>> = values.iter().map(|&x| vec![x]).collect();
        let e: Option<Vec<Vec<f32>>> = errs.map(|e| e.iter().map(|&x| vec![x]).collect());
        let (mut out, mut err) = ([0f32], [0f32]);
        combine_band(&v, e.as_deref(), rule(method), &mut out, &mut err);
        (out[0], err[0])
    }

    #[test]
    fn an_outlier_is_left_out_and_errors_propagate() {
        // 10 is far from the others: clipped (sd of all five is 3.6; 10 - 2.1 > 2 sd).
        let (v, e) = one(&[2.0, 2.2, 1.8, 2.1, 10.0], Some(&[0.1; 5]), Method::Mean);
        assert!((v - 2.025).abs() < 1e-6, "{v}");
        assert!((e - 0.05).abs() < 1e-6, "{e}");
        // Without ERR, the scatter of what is kept.
        let (_, e) = one(&[1.0, 3.0], None, Method::Mean);
        assert!((e - 1.0).abs() < 1e-6, "{e}");
        // The median, with its larger error; NaN inputs are left out.
        let (v, e) = one(&[1.0, f32::NAN, 2.0, 4.0], Some(&[1.0; 4]), Method::Median);
        assert_eq!(v, 2.0);
        let want = (3.0f64).sqrt() / 3.0 * (std::f64::consts::PI / 2.0).sqrt();
        assert!((f64::from(e) - want).abs() < 1e-6, "{e}");
        // Nothing finite: NaN.
        assert!(
            one(&[f32::NAN, f32::INFINITY], None, Method::Mean)
                .0
                .is_nan()
        );
        // One value: itself, with its ERR (or NaN without one).
        assert_eq!(one(&[5.0], Some(&[0.5]), Method::Mean), (5.0, 0.5));
        assert!(one(&[5.0], None, Method::Mean).1.is_nan());
    }

    #[test]
    fn flags_are_kept_by_count_and_do_not_use_pixels_stay_unused() {
        let three = |a: u32, b: u32, c: u32| vec![vec![a], vec![b], vec![c]];
        let mut out = [0u32];
        combine_flags(&three(4, 4, 0), rule(Method::Mean), &mut out);
        assert_eq!(out[0], 4, "set in 2 of 3");
        combine_flags(&three(4, 0, 0), rule(Method::Mean), &mut out);
        assert_eq!(out[0], 0, "set in 1 of 3");
        let mask = Rule {
            dq_min: DqMin::AnyDoNotUse,
            ..rule(Method::Flags)
        };
        combine_flags(&three(1 | 2048, 0, 4), mask, &mut out);
        assert_eq!(
            out[0],
            1 | 2048,
            "HOT with DO_NOT_USE in one input; 4 alone in one is not"
        );
    }
}
