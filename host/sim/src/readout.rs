//! The readout electronics' own noise, common to many pixels: correlated 1/f noise along the
//! readout lines, per-integration reset offsets and amplifier drifts (all opt-in, see
//! [`SimConfig::noise_1f_rms`], [`SimConfig::reset_offset_sigma`] and
//! [`SimConfig::amp_drift_per_frame`]).
//!
//! A NIR detector is read by 4 outputs in parallel, each a stripe along the fast axis, one
//! readout line (a DMS row when the fast axis is x, a column when it is y) after the other. Slow
//! drifts of the electronics therefore show up as offsets that change from line to line (banding)
//! and are shared by the outputs, plus a smaller part of each output's own. The offsets of a whole
//! exposure are drawn once, from their own streams `(seed, [TAG_READOUT, kind, index, i, part,
//! ...])`, so rows can still be realised independently and in parallel, and the uncal file and
//! the products see the same numbers. Reference pixels get them too: the refpix step uses them to
//! take these offsets out.

use crate::config::{Kind, Resolved, SimConfig};
use crate::rng::{Rng, stream};

/// The stream tag of the readout offsets (the other tags are in the truth module).
pub(crate) const TAG_READOUT: u64 = 5;

/// Outputs of a NIR detector.
pub(crate) const OUTPUTS: usize = 4;

/// Number of AR(1) processes summed into the 1/f series: time constants spread log-uniformly
/// (about a factor 3 apart) make their summed Lorentzians a 1/f spectrum between the shortest
/// and the longest.
const AR_COMPONENTS: usize = 8;

/// Longest AR(1) time constant, in readout lines (a full frame has 2048); the shortest is 1.
const AR_TAU_MAX_LINES: f64 = 2048.0;

/// rms of each output's own 1/f part relative to the common part.
pub const OUTPUT_1F_FRACTION: f64 = 0.3;

const PART_1F: u64 = 1;
const PART_RESET: u64 = 2;
const PART_DRIFT: u64 = 3;

impl SimConfig {
    /// The variance (DN²) the readout's 1/f banding adds to one read of a pixel: its common
    /// part and its output's own. Independent from read to read, so the CDS noise of two reads
    /// is `sqrt(READNOISE² + 2 × this)` on raw data (what a readnoise made from uncal files
    /// measures; reset offsets cancel in the difference, drifts add < 0.1 DN²).
    pub fn correlated_read_variance(&self) -> f64 {
        let f = OUTPUT_1F_FRACTION;
        self.noise_1f_rms.powi(2) * (1.0 + f * f)
    }
}

/// The output (0..4) that reads DMS pixel (`y`, `x`) of the window: outputs are stripes along the
/// fast (readout) axis, in full-frame coordinates so that a subarray sees the same structure as
/// the full frame.
pub(crate) fn output_of(r: &Resolved, y: usize, x: usize) -> usize {
    let (pos, full) = if r.det.fastaxis.abs() == 1 {
        (r.sub.xstart - 1 + x, r.det.full_nx)
    } else {
        (r.sub.ystart - 1 + y, r.det.full_ny)
    };
    (pos * OUTPUTS / full).min(OUTPUTS - 1)
}

/// The readout offsets of one exposure, added to every read of every pixel. The 1/f part takes
/// `nints × ngroups × nframes × lines × 16` bytes (33 MB for 10 full-frame integrations of 100
/// groups).
pub(crate) struct Readout {
    /// Reads per integration (`ngroups × nframes`: skipped frames are not read).
    reads: usize,
    /// Readout lines of the window.
    lines: usize,
    /// Whether a readout line is a DMS row (fast axis x) rather than a column.
    line_is_row: bool,
    /// The output of each position along the fast axis.
    output: Vec<u8>,
    /// 1/f offsets `[((i * reads + read) * lines + line) * OUTPUTS + o]` (common part plus the
    /// output's own); empty without 1/f noise.
    banding: Vec<f32>,
    /// Per `[i * OUTPUTS + o]`: the reset offset (DN) and the drift (DN per frame).
    reset: Vec<f64>,
    drift: Vec<f64>,
}

impl Readout {
    /// The offsets of exposure `index` of `kind`, or `None` when the config has none of them (so
    /// the default realisation does not change).
    pub fn new(cfg: &SimConfig, r: &Resolved, kind: Kind, index: usize) -> Option<Readout> {
        let on = |v: f64| v > 0.0;
        if !(on(cfg.noise_1f_rms) || on(cfg.reset_offset_sigma) || on(cfg.amp_drift_per_frame)) {
            return None;
        }
        let line_is_row = r.det.fastaxis.abs() == 1;
        let (lines, fast) = if line_is_row {
            (r.ny(), r.nx())
        } else {
            (r.nx(), r.ny())
        };
        let output = (0..fast)
            .map(|p| {
                let o = if line_is_row {
                    output_of(r, 0, p)
                } else {
                    output_of(r, p, 0)
                };
                o as u8
            })
            .collect();
        let reads = cfg.ngroups * cfg.nframes;
        let ids = |i: usize, part: u64| [TAG_READOUT, kind.id(), index as u64, i as u64, part];
        let per_int = |part: u64, draw: &dyn Fn(&mut Rng) -> f64| -> Vec<f64> {
            (0..cfg.nints)
                .flat_map(|i| {
                    let mut rng = stream(cfg.seed, &ids(i, part));
                    (0..OUTPUTS).map(|_| draw(&mut rng)).collect::<Vec<_>>()
                })
                .collect()
        };
        let reset = per_int(PART_RESET, &|rng| cfg.reset_offset_sigma * rng.normal());
        let drift = per_int(PART_DRIFT, &|rng| {
            cfg.amp_drift_per_frame * (2.0 * rng.uniform() - 1.0)
        });
        let mut banding = Vec::new();
        if on(cfg.noise_1f_rms) {
            banding.reserve(cfg.nints * reads * lines * OUTPUTS);
            for i in 0..cfg.nints {
                let mut rng = stream(cfg.seed, &ids(i, PART_1F));
                for _ in 0..reads {
                    banding.extend(banding_of_read(&mut rng, lines, cfg.noise_1f_rms));
                }
            }
        }
        Some(Readout {
            reads,
            lines,
            line_is_row,
            output,
            banding,
            reset,
            drift,
        })
    }

    /// (readout line, output) of DMS pixel (`y`, `x`).
    pub fn place(&self, y: usize, x: usize) -> (usize, usize) {
        let (line, fast) = if self.line_is_row { (y, x) } else { (x, y) };
        (line, usize::from(self.output[fast]))
    }

    /// The offset (DN) of read `read` (0-based within integration `i`, taken `frame` frames
    /// after the first read) of a pixel on readout line `line` of output `o`.
    pub fn offset(&self, i: usize, read: usize, frame: usize, (line, o): (usize, usize)) -> f64 {
        let k = i * OUTPUTS + o;
        let mut v = self.reset[k] + self.drift[k] * frame as f64;
        if !self.banding.is_empty() {
            v += f64::from(
                self.banding[((i * self.reads + read) * self.lines + line) * OUTPUTS + o],
            );
        }
        v
    }
}

/// The 1/f offsets of one read, `[line * OUTPUTS + o]`: a common series of rms `rms` plus each
/// output's own of rms `OUTPUT_1F_FRACTION × rms`.
fn banding_of_read(rng: &mut Rng, lines: usize, rms: f64) -> Vec<f32> {
    let common = one_over_f(rng, lines, rms);
    let own: Vec<Vec<f64>> = (0..OUTPUTS)
        .map(|_| one_over_f(rng, lines, OUTPUT_1F_FRACTION * rms))
        .collect();
    (0..lines)
        .flat_map(|l| {
            let c = common[l];
            own.iter().map(move |s| (c + s[l]) as f32)
        })
        .collect()
}

/// A stationary series of `n` values with rms `rms` and an approximately 1/f power spectrum
/// between 1/`AR_TAU_MAX_LINES` and 1 cycle per line: the sum of `AR_COMPONENTS` AR(1)
/// processes of equal variance with time constants from 1 to `AR_TAU_MAX_LINES` lines, spread
/// log-uniformly, each started from its stationary distribution.
pub(crate) fn one_over_f(rng: &mut Rng, n: usize, rms: f64) -> Vec<f64> {
    let mut out = vec![0.0; n];
    let sd = rms / (AR_COMPONENTS as f64).sqrt();
    for k in 0..AR_COMPONENTS {
        let tau = AR_TAU_MAX_LINES.powf(k as f64 / (AR_COMPONENTS - 1) as f64);
        let phi = (-1.0 / tau).exp();
        let innovation = sd * (1.0 - phi * phi).sqrt();
        let mut s = sd * rng.normal();
        for v in out.iter_mut() {
            *v += s;
            s = phi * s + innovation * rng.normal();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::geometry::Subarray;

    fn window(detector: &str, nx: usize, ny: usize) -> SimConfig {
        SimConfig::default()
            .with_detector(detector)
            .with_subarray(Subarray {
                name: "GENERIC".to_string(),
                xstart: 1,
                ystart: 1,
                nx,
                ny,
            })
    }

    #[test]
    fn off_by_default_and_outputs_along_the_fast_axis() {
        let cfg = window("NRCA1", 2048, 16);
        let r = cfg.resolve().unwrap();
        assert!(Readout::new(&cfg, &r, Kind::Dark, 0).is_none());
        let mut on = cfg.clone();
        on.reset_offset_sigma = 1.0;
        let ro = Readout::new(&on, &r, Kind::Dark, 0).unwrap();
        // Fast axis x: lines are rows, outputs 512-column stripes.
        assert_eq!(ro.place(7, 600), (7, 1));
        assert_eq!(ro.place(3, 2047), (3, 3));
        // NRS1 reads along y: lines are columns, outputs 512-row stripes.
        let mut nrs = window("NRS1", 16, 2048);
        nrs.reset_offset_sigma = 1.0;
        let r = nrs.resolve().unwrap();
        let ro = Readout::new(&nrs, &r, Kind::Dark, 0).unwrap();
        assert_eq!(ro.place(1100, 5), (5, 2));
    }

    #[test]
    fn banding_is_common_plus_a_smaller_own_part_and_offsets_have_their_spread() {
        let mut cfg = window("NRCA1", 2048, 64).with_ramp(20, 5);
        cfg.noise_1f_rms = 3.0;
        cfg.reset_offset_sigma = 30.0;
        cfg.amp_drift_per_frame = 0.5;
        let r = cfg.resolve().unwrap();
        let ro = Readout::new(&cfg, &r, Kind::Flat, 2).unwrap();
        assert_eq!(ro.banding.len(), 20 * 5 * 64 * OUTPUTS);
        let (mut aa, mut dd) = (0.0, 0.0);
        for k in (0..ro.banding.len()).step_by(OUTPUTS) {
            let (a, b) = (f64::from(ro.banding[k]), f64::from(ro.banding[k + 1]));
            aa += a * a;
            dd += (a - b) * (a - b);
        }
        let n = (ro.banding.len() / OUTPUTS) as f64;
        // Each output: 3² (common) + 0.9² (own); two outputs differ by their own parts only.
        let (var, var_diff) = (aa / n, dd / n);
        assert!((var / 9.81 - 1.0).abs() < 0.3, "variance {var}");
        assert!(
            (var_diff / 1.62 - 1.0).abs() < 0.3,
            "variance of a difference {var_diff}"
        );
        let s = (ro.reset.iter().map(|v| v * v).sum::<f64>() / ro.reset.len() as f64).sqrt();
        assert!((s / 30.0 - 1.0).abs() < 0.25, "reset σ {s}");
        assert!(ro.drift.iter().all(|d| d.abs() <= 0.5));
        assert!(ro.drift.iter().any(|d| d.abs() > 0.4));
        // offset = banding + reset + drift × frames since the first read.
        let k = 3 * OUTPUTS + 2;
        let expect = f64::from(ro.banding[((3 * 5 + 4) * 64 + 10) * OUTPUTS + 2])
            + ro.reset[k]
            + 4.0 * ro.drift[k];
        assert!((ro.offset(3, 4, 4, (10, 2)) - expect).abs() < 1e-9);
    }

    /// Mean periodogram power of `x` (mean removed) in the frequency bins `bins` (cycles per
    /// `x.len()` samples), by direct DFT.
    fn power(x: &[f64], bins: std::ops::Range<usize>) -> f64 {
        let n = x.len();
        let mean = x.iter().sum::<f64>() / n as f64;
        let nb = bins.len() as f64;
        bins.map(|k| {
            let w = 2.0 * std::f64::consts::PI * k as f64 / n as f64;
            let (mut re, mut im) = (0.0, 0.0);
            for (t, v) in x.iter().enumerate() {
                re += (v - mean) * (w * t as f64).cos();
                im += (v - mean) * (w * t as f64).sin();
            }
            (re * re + im * im) / n as f64
        })
        .sum::<f64>()
            / nb
    }

    #[test]
    fn one_over_f_has_the_rms_and_a_falling_spectrum() {
        let mut rng = stream(5, &[]);
        let (n, reps) = (1024, 40);
        let (mut var, mut low, mut mid, mut high) = (0.0, 0.0, 0.0, 0.0);
        for _ in 0..reps {
            let x = one_over_f(&mut rng, n, 3.0);
            var += x.iter().map(|v| v * v).sum::<f64>() / n as f64;
            low += power(&x, 2..6);
            mid += power(&x, 20..60);
            high += power(&x, 200..512);
        }
        let rms = (var / reps as f64).sqrt();
        // The longest components do not average out within one series: the rms scatters.
        assert!((rms / 3.0 - 1.0).abs() < 0.15, "rms {rms}");
        // 1/f: about a decade of power per decade of frequency (white noise: ratio 1).
        assert!(low / mid > 4.0, "low {low} mid {mid}");
        assert!(mid / high > 3.0, "mid {mid} high {high}");
    }
}
