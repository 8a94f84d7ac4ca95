//! Upstream's acceptance cases for the dark search (`tests/test_badpix_from_darks.py`, see
//! UPSTREAM.md, 'Upstream's tests') with their explicit arrays, against the building blocks in
//! `mkref_bpm::darks::pixel`, plus the flag-mapping fixes (UPSTREAM.md, 'Darks: parameters and flag
//! mapping').

use std::collections::BTreeMap;

use mkref_bpm::darks::pixel::{
    CleanSlopes, JumpLimits, saturated_in_all_groups, sigmaclip_mean_std,
};
use mkref_bpm::darks::{DarkParams, FlagValues};
use mkrefs_support::dq;

/// Upstream's case 2: `['HOT', 'DO_NOT_USE']` is 2049.
#[test]
fn apply_flags_sums_mnemonics() {
    let mut m = BTreeMap::new();
    m.insert(
        "hot".to_string(),
        vec!["HOT".to_string(), "DO_NOT_USE".to_string()],
    );
    assert_eq!(FlagValues(m).value("hot").unwrap(), 2049);
}

/// Upstream's case 5 (with the literal limits 10, 5, 0.25 upstream uses, here as parameters).
#[test]
fn many_jumps_case() {
    let (ng, ny, nx) = (20, 5, 5);
    let mut map = vec![false; ng * ny * nx];
    let mut set = |g: std::ops::Range<usize>, y: usize, x: usize| {
        for g in g {
            map[(g * ny + y) * nx + x] = true;
        }
    };
    set(0..20, 0, 0);
    set(0..12, 1, 1);
    set(0..4, 2, 2);
    set(0..7, 3, 3);
    set(5..6, 4, 4);
    set(12..13, 4, 4);
    let limits = JumpLimits {
        max_jump_limit: 10,
        jump_ratio_threshold: 5.0,
        early_cutoff_fraction: 0.25,
    };
    for y in 0..ny {
        for x in 0..nx {
            let jumps: Vec<bool> = (0..ng).map(|g| map[(g * ny + y) * nx + x]).collect();
            let s = limits.summarise(&jumps);
            let expected_n = match (y, x) {
                (0, 0) => 20,
                (1, 1) => 12,
                (2, 2) => 4,
                (3, 3) => 7,
                (4, 4) => 2,
                _ => 0,
            };
            assert_eq!(s.n, expected_n, "({y},{x})");
            assert_eq!(s.many, matches!((y, x), (0, 0) | (1, 1)), "({y},{x})");
            assert_eq!(s.rc, (y, x) == (1, 1), "({y},{x})");
        }
    }
}

/// The user's jump parameters are used, not upstream's literals: a lower limit makes the
/// (3,3) pixel of case 5 (7 early jumps) a many-jump RC pixel.
#[test]
fn jump_parameters_are_honoured() {
    let mut jumps = vec![false; 20];
    jumps[..7].fill(true);
    let default = JumpLimits {
        max_jump_limit: 10,
        jump_ratio_threshold: 5.0,
        early_cutoff_fraction: 0.25,
    };
    assert!(!default.summarise(&jumps).many);
    let user = JumpLimits {
        max_jump_limit: 5,
        ..default
    };
    let s = user.summarise(&jumps);
    assert!(s.many && s.rc);
    // A larger early window dilutes the early rate below the ratio threshold.
    let wide = JumpLimits {
        max_jump_limit: 5,
        jump_ratio_threshold: 5.0,
        early_cutoff_fraction: 0.5,
    };
    let mut spread = vec![false; 20];
    for g in [0, 1, 2, 3, 4, 12, 13] {
        spread[g] = true;
    }
    assert!(user.summarise(&spread).rc);
    assert!(wide.summarise(&spread).many && !wide.summarise(&spread).rc);
    // Early windows as upstream's examples, and one group at least.
    assert_eq!(default.windows(4), (1, 3));
    assert_eq!(default.windows(10), (2, 7));
    assert_eq!(default.windows(150), (37, 112));
    assert_eq!(default.windows(2), (1, 1));
}

/// Upstream's case 6: a slope counts as clean only without jumps.
#[test]
fn slopes_not_cr() {
    let jumps = [1usize, 0, 0, 0, 5];
    let mut acc = [CleanSlopes::default(); 5];
    for (a, &j) in acc.iter_mut().zip(&jumps) {
        if j == 0 {
            a.push(0.0, 1.0);
        }
    }
    let n: Vec<u32> = acc.iter().map(|a| a.n).collect();
    assert_eq!(n, [0, 1, 1, 1, 0]);
    assert!(acc[0].mean().is_nan() && acc[1].mean() == 0.0);
}

/// Upstream's case 7 (the 1.0.1 combine_clean_slopes: nanmean, nanstd with ddof 0, num_good).
#[test]
fn combine_clean_slopes_case() {
    let nan = f64::NAN;
    // Values of pixel (0,0), (1,1) and a generic pixel over the stack
    // [B, 1.5A, 2A, 2.5A, B, 1.5A, 2A, 2.5A] with A[0,0] = NaN, B[0,0] = B[1,1] = NaN.
    let generic = [1.0, 1.5, 2.0, 2.5, 1.0, 1.5, 2.0, 2.5];
    let p11 = [nan, 1.5, 2.0, 2.5, nan, 1.5, 2.0, 2.5];
    let p00 = [nan; 8];
    let ind_generic = [1; 8];
    let ind_11 = [0, 1, 1, 1, 0, 1, 1, 1];
    let ind_00 = [0; 8];
    let combine = |v: &[f64], ind: &[u32]| {
        let mut c = CleanSlopes::default();
        for &x in v {
            c.push(x, 0.1);
        }
        (c.mean(), c.std(), ind.iter().sum::<u32>())
    };
    let (m, s, n) = combine(&generic, &ind_generic);
    assert!((m - 1.75).abs() < 1e-6 && (s - 0.559_016_994_374_947_5).abs() < 1e-6 && n == 8);
    let (m, s, n) = combine(&p11, &ind_11);
    assert!((m - 2.0).abs() < 1e-6 && (s - 0.408_248_290_463_863).abs() < 1e-6 && n == 6);
    let (m, s, n) = combine(&p00, &ind_00);
    assert!(m.is_nan() && s.is_nan() && n == 0);
}

/// Upstream's case 9: only the pixel whose first group is saturated.
#[test]
fn saturated_in_all_groups_case() {
    let mut fg = [0u8; 25];
    fg[2 * 5 + 2] = 2;
    let sat: Vec<usize> = (0..25)
        .filter(|&i| saturated_in_all_groups(fg[i]))
        .collect();
    assert_eq!(sat, [12]);
}

/// Upstream's case 4 (combine_bad_pixel_types): the OR of the class maps.
#[test]
fn combine_bad_pixel_types_case() {
    let mut sat = [0u32; 25];
    let mut rc = [0u32; 25];
    let mut third = [0u32; 25];
    let mut fourth = [0u32; 25];
    sat[0] = 2;
    rc[0] = 16384;
    rc[6] = 16384;
    for d in 0..3 {
        third[d * 6] = 8192;
    }
    for d in 0..4 {
        fourth[d * 6] = 2048;
    }
    let or: Vec<u32> = (0..25)
        .map(|i| sat[i] | rc[i] | third[i] | fourth[i])
        .collect();
    let mut expected = [0u32; 25];
    expected[0] = 26626;
    expected[6] = 26624;
    expected[12] = 10240;
    expected[18] = 2048;
    assert_eq!(or, expected);
}

/// The pedestal statistics ignore NaN (upstream: one NaN disables RC and low pedestal).
#[test]
fn pedestal_clip_survives_nan() {
    let mut v: Vec<f32> = (0..1000).map(|i| ((i * 37) % 17) as f32).collect();
    v[3] = f32::NAN;
    v[10] = 5000.0;
    let (m, sd) = sigmaclip_mean_std(&v, 3.0, 3.0).unwrap();
    assert!(m.is_finite() && sd.is_finite() && sd < 10.0);
}

/// Flag mapping: defaults 2049 / 16385 / 1073741825 / 32769, unchanged by a second call
/// (upstream's mutable default turned HOT into HOT|SATURATED), mnemonics case-insensitive,
/// unknown mnemonic an error naming it.
#[test]
fn flag_values_defaults_and_errors() {
    let fv = FlagValues::upstream_default();
    assert_eq!(fv.value("hot").unwrap(), dq::HOT);
    assert_eq!(fv.value("rc").unwrap(), dq::RC);
    assert_eq!(fv.value("low_pedestal").unwrap(), dq::OTHER_BAD_PIXEL);
    assert_eq!(fv.value("high_cr").unwrap(), dq::TELEGRAPH);
    let mut m = fv.0.clone();
    m.insert("hot".into(), vec!["hot".into(), "Warm".into()]);
    assert_eq!(FlagValues(m).value("hot").unwrap(), dq::HOT | dq::WARM);
    let mut m = fv.0.clone();
    m.insert("rc".into(), vec!["RC".into(), "WONKY".into()]);
    let e = FlagValues(m).value("rc").unwrap_err();
    assert!(e.contains("WONKY"), "{e}");
    let p = DarkParams::default();
    let again = DarkParams::default();
    assert_eq!(p, again);
    assert_eq!(p.do_not_use, ["hot", "rc", "low_pedestal", "high_cr"]);
}
