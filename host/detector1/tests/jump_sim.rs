//! The jump step on simulated dark ramps whose injected cosmic rays are known: the simulator's
//! jump product marks with JUMP_DET exactly the group where each hit first shows. Those flags are
//! taken as the truth, cleared, and the step must find them again.

use std::path::Path;

use mkrefs_detector1::jump::{JumpParams, jump};
use mkrefs_detector1::ramp::Ramp;
use mkrefs_sim::{Kind, SimConfig, Truth, write_jump};
use mkrefs_support::dq;

/// Reads a RampModel file with the engine's own reader.
fn read_ramp(path: &Path) -> Ramp {
    Ramp::read(path).unwrap()
}

/// A 48x48 dark away from the reference pixels, 2 integrations of 10 groups of 10.7 s, with
/// about 0.1 hits per pixel and integration (100 to 5000 DN, the simulator's default range).
fn dark_config(seed: u64) -> SimConfig {
    dark_config_ramp(seed, 2, 10)
}

fn dark_config_ramp(seed: u64, nints: usize, ngroups: usize) -> SimConfig {
    let mut cfg = SimConfig::default()
        .with_square_subarray(48)
        .with_substrt(200, 200)
        .with_ramp(nints, ngroups)
        .with_seed(seed)
        .without_defects();
    cfg.tframe = Some(10.737);
    cfg.cosmic_ray_rate = 0.1 / (10.737 * (ngroups - 1) as f64);
    cfg
}

fn simulate(cfg: &SimConfig, dir: &Path) -> (Ramp, Truth) {
    let truth = Truth::generate(cfg).unwrap();
    let path = dir.join("jump.fits");
    write_jump(&path, cfg, &truth, Kind::Dark, 0).unwrap();
    (read_ramp(&path), truth)
}

const J: u8 = dq::JUMP_DET as u8;

/// Clears the simulator's JUMP_DET, runs the step without neighbour flagging and returns
/// (injected, found among them, false flags, groups).
fn recover(cfg: &SimConfig, dir: &Path) -> (usize, usize, usize, usize) {
    let (mut ramp, truth) = simulate(cfg, dir);
    let injected: Vec<bool> = ramp.groupdq.iter().map(|q| q & J != 0).collect();
    for q in &mut ramp.groupdq {
        *q &= !J;
    }
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    let params = JumpParams {
        flag_4_neighbors: false,
        ..JumpParams::default()
    };
    jump(&mut ramp, &truth.readnoise, &gain, &params).unwrap();
    let found: Vec<bool> = ramp.groupdq.iter().map(|q| q & J != 0).collect();
    let hit = injected
        .iter()
        .zip(&found)
        .filter(|(a, b)| **a && **b)
        .count();
    let false_flags = injected
        .iter()
        .zip(&found)
        .filter(|(a, b)| !**a && **b)
        .count();
    (
        injected.iter().filter(|&&b| b).count(),
        hit,
        false_flags,
        found.len(),
    )
}

#[test]
fn short_ramps_use_the_three_and_four_group_thresholds() {
    // 4 groups (3 differences, threshold 5.0) and 3 groups (2 differences, threshold 6.0).
    for ngroups in [4, 3] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dark_config_ramp(31 + ngroups as u64, 6, ngroups);
        let (n_true, hit, false_flags, groups) = recover(&cfg, dir.path());
        eprintln!(
            "{ngroups} groups: injected {n_true}, found {hit}, false {false_flags} of {groups}"
        );
        assert!(n_true > 500, "{n_true}");
        assert!(hit as f64 >= 0.97 * n_true as f64, "{hit} of {n_true}");
        assert!((false_flags as f64) < 2e-3 * groups as f64, "{false_flags}");
    }
}

#[test]
fn finds_the_injected_cosmic_rays() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dark_config(7);
    let (mut ramp, truth) = simulate(&cfg, dir.path());
    assert_eq!(ramp.header.get_str("S_JUMP"), Some("COMPLETE"));
    let injected: Vec<bool> = ramp.groupdq.iter().map(|q| q & J != 0).collect();
    let n_true = injected.iter().filter(|&&b| b).count();
    assert!(n_true > 300, "only {n_true} injected hits");
    for q in &mut ramp.groupdq {
        *q &= !J;
    }
    ramp.header.set("S_JUMP", "SKIPPED");
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    let params = JumpParams {
        flag_4_neighbors: false,
        ..JumpParams::default()
    };
    let summary = jump(&mut ramp, &truth.readnoise, &gain, &params).unwrap();
    assert_eq!(ramp.header.get_str("S_JUMP"), Some("COMPLETE"));
    let found: Vec<bool> = ramp.groupdq.iter().map(|q| q & J != 0).collect();
    let hit = injected
        .iter()
        .zip(&found)
        .filter(|(a, b)| **a && **b)
        .count();
    let false_flags = injected
        .iter()
        .zip(&found)
        .filter(|(a, b)| !**a && **b)
        .count();
    let groups = found.len();
    eprintln!(
        "injected {n_true}, found {hit}, false {false_flags} of {groups} groups, summary {summary:?}"
    );
    assert_eq!(summary.primary, hit + false_flags);
    assert_eq!(summary.neighbours, 0);
    assert!(
        hit as f64 >= 0.99 * n_true as f64,
        "{hit} of {n_true} injected hits flagged"
    );
    // 4 sigma on ~9 differences per ramp: a handful of noise flags, far below 0.1 %.
    assert!(
        (false_flags as f64) < 1e-3 * groups as f64,
        "{false_flags} false flags in {groups} groups"
    );
}

#[test]
fn flags_neighbours_of_large_jumps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dark_config(11);
    let (mut ramp, truth) = simulate(&cfg, dir.path());
    let injected: Vec<bool> = ramp.groupdq.iter().map(|q| q & J != 0).collect();
    for q in &mut ramp.groupdq {
        *q &= !J;
    }
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    let summary = jump(&mut ramp, &truth.readnoise, &gain, &JumpParams::default()).unwrap();
    assert!(summary.neighbours > 0);
    // Every injected hit well inside (10, 1000) sigma has its in-frame neighbours flagged in the
    // same group. On a dark, sigma of a difference is about the CDS read noise, so the ratio is
    // about the group difference over the read noise.
    let (ny, nx, n) = (ramp.ny, ramp.nx, ramp.ny * ramp.nx);
    let mut checked = 0;
    for (k, _) in injected.iter().enumerate().filter(|(_, b)| **b) {
        let (plane, p) = (k / n, k % n);
        let (y, x) = (p / nx, p % nx);
        let ratio = (ramp.sci[k] - ramp.sci[k - n]) / truth.readnoise[p];
        if ramp.groupdq[k] & J == 0 || !(15.0..900.0).contains(&ratio) {
            continue;
        }
        for (yy, xx) in [
            (y.wrapping_sub(1), x),
            (y + 1, x),
            (y, x.wrapping_sub(1)),
            (y, x + 1),
        ] {
            if yy < ny && xx < nx {
                assert_ne!(ramp.groupdq[plane * n + yy * nx + xx] & J, 0);
                checked += 1;
            }
        }
    }
    assert!(checked > 800, "{checked}");
}

#[test]
fn skips_saturated_groups_and_short_ramps() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dark_config(3);
    let (mut ramp, truth) = simulate(&cfg, dir.path());
    for q in &mut ramp.groupdq {
        *q &= !J;
    }
    // Pixel (5, 5), integration 0: a huge step at group 6, but groups 6.. are saturated.
    let nx = ramp.nx;
    for g in 6..ramp.ngroups {
        let k = ramp.index(0, g, 5, 5);
        ramp.sci[k] += 30_000.0;
        ramp.groupdq[k] = (dq::SATURATED | dq::DO_NOT_USE) as u8;
    }
    let gain = vec![truth.gain as f32; truth.readnoise.len()];
    jump(&mut ramp, &truth.readnoise, &gain, &JumpParams::default()).unwrap();
    for g in 0..ramp.ngroups {
        assert_eq!(ramp.groupdq[ramp.index(0, g, 5, 5)] & J, 0, "group {g}");
    }
    assert_eq!(nx, 48);

    // Two groups: the step is skipped (minimum_groups = 3) and nothing is flagged.
    let mut short = Ramp::zeros(1, 2, 4, 4, ramp.header.clone());
    short.sci[16..].iter_mut().for_each(|v| *v = 1e4);
    let s = jump(&mut short, &[10.0; 16], &[2.0; 16], &JumpParams::default()).unwrap();
    assert!(s.skipped);
    assert_eq!(short.header.get_str("S_JUMP"), Some("SKIPPED"));
    assert!(short.groupdq.iter().all(|&q| q == 0));
}
