//! The per-pixel truth of a simulated detector, and `truth.fits`.

use std::path::Path;

use rayon::prelude::*;

use crate::config::{Resolved, SimConfig};
use crate::error::SimError;
use crate::readout::output_of;
use crate::rng::{Rng, stream};
use mkrefs_support::dq;
use mkrefs_support::fits::{FitsWriter, ImageReader, hdu_names, read_primary_header};
use mkrefs_support::geometry::{reference_pixel_mask, science_region};
use mkrefs_support::header::HeaderValue;

/// Stream tags: the first id of every stream says what the numbers are for.
pub(crate) const TAG_TRUTH: u64 = 1;
pub(crate) const TAG_DEFECTS: u64 = 2;
pub(crate) const TAG_NOISE: u64 = 3;
pub(crate) const TAG_EVENTS: u64 = 4;
// 5: the readout offsets' streams (TAG_READOUT, in the readout module).

/// DEFECTS value of a pixel saturated in all groups. The bad-pixel search of darks flags such
/// pixels HOT, so they carry HOT like the unsaturated hot pixels; the extra SATURATED bit tells
/// the two apart.
pub const SATURATED_IN_ALL_GROUPS: u32 = dq::HOT | dq::SATURATED;

/// RC decay time in frame times: the excess falls to 1/e in 1.5 frames, so it dominates group 0
/// and is gone after a few groups, as in the RC pixels of the NIR detectors.
pub(crate) const RC_TAU_FRAMES: f64 = 1.5;

/// The defect classes the simulator injects, as they appear in the DEFECTS map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DefectClass {
    Dead,
    LowQe,
    Open,
    AdjOpen,
    /// Hot but not saturated in all groups.
    Hot,
    /// Saturated in all groups ([`SATURATED_IN_ALL_GROUPS`]).
    Saturated,
    Rc,
    Telegraph,
    /// Low pedestal, flagged OTHER_BAD_PIXEL as the bad-pixel search does.
    LowPedestal,
    /// Noisy: a CDS read noise 5–8 times the median (UNRELIABLE_SLOPE in the truth; the
    /// bad-pixel search flags it TELEGRAPH, see [`DefectClass::expected_flag`]).
    Noisy,
    ReferencePixel,
}

impl DefectClass {
    pub const ALL: [DefectClass; 11] = [
        DefectClass::Dead,
        DefectClass::LowQe,
        DefectClass::Open,
        DefectClass::AdjOpen,
        DefectClass::Hot,
        DefectClass::Saturated,
        DefectClass::Rc,
        DefectClass::Telegraph,
        DefectClass::LowPedestal,
        DefectClass::Noisy,
        DefectClass::ReferencePixel,
    ];

    /// Whether a DEFECTS value belongs to this class.
    pub fn matches(self, v: u32) -> bool {
        match self {
            DefectClass::Hot => v & SATURATED_IN_ALL_GROUPS == dq::HOT,
            DefectClass::Saturated => v & SATURATED_IN_ALL_GROUPS == SATURATED_IN_ALL_GROUPS,
            c => v & c.flag() != 0,
        }
    }

    /// The DQ flag the class is written with.
    pub fn flag(self) -> u32 {
        match self {
            DefectClass::Dead => dq::DEAD,
            DefectClass::LowQe => dq::LOW_QE,
            DefectClass::Open => dq::OPEN,
            DefectClass::AdjOpen => dq::ADJ_OPEN,
            DefectClass::Hot => dq::HOT,
            DefectClass::Saturated => SATURATED_IN_ALL_GROUPS,
            DefectClass::Rc => dq::RC,
            DefectClass::Telegraph => dq::TELEGRAPH,
            DefectClass::LowPedestal => dq::OTHER_BAD_PIXEL,
            DefectClass::Noisy => dq::UNRELIABLE_SLOPE,
            DefectClass::ReferencePixel => dq::REFERENCE_PIXEL,
        }
    }

    /// The flag a correct bad-pixel MASK gives the class with the default flag_values of the
    /// bad-pixel search (jwst_reffiles'), which differ from the truth's own flag for some: a
    /// noisy pixel shows many jumps and is flagged TELEGRAPH (flag_values['high_cr']), a pixel
    /// saturated in all groups is flagged HOT.
    pub fn expected_flag(self) -> u32 {
        match self {
            DefectClass::Noisy => dq::TELEGRAPH,
            DefectClass::Saturated => dq::HOT,
            c => c.flag(),
        }
    }

    /// Short name used for the N_* counts in truth.fits.
    fn key(self) -> &'static str {
        match self {
            DefectClass::Dead => "N_DEAD",
            DefectClass::LowQe => "N_LOWQE",
            DefectClass::Open => "N_OPEN",
            DefectClass::AdjOpen => "N_ADJOPN",
            DefectClass::Hot => "N_HOT",
            DefectClass::Saturated => "N_SATALL",
            DefectClass::Rc => "N_RC",
            DefectClass::Telegraph => "N_RTN",
            DefectClass::LowPedestal => "N_LOWPED",
            DefectClass::Noisy => "N_NOISY",
            DefectClass::ReferencePixel => "N_REFPIX",
        }
    }
}

/// What the simulator used, per pixel, row-major `ny × nx` in DMS orientation.
#[derive(Clone, Debug, PartialEq)]
pub struct Truth {
    pub ny: usize,
    pub nx: usize,
    /// e-/DN.
    pub gain: f64,
    /// Bias level (DN): the value of a read with no charge.
    pub bias: Vec<f32>,
    /// CDS read noise σ (DN): the σ of the difference of two reads; one read has READNOISE/√2.
    pub readnoise: Vec<f32>,
    /// Dark current (DN/s); 0 on reference pixels.
    pub dark: Vec<f32>,
    /// Response to flat-field light relative to the nominal; 0 on reference pixels.
    pub qe: Vec<f32>,
    /// JWST DQ values of the injected defects and REFERENCE_PIXEL (see [`DefectClass`]).
    pub defects: Vec<u32>,
    /// RC: the excess at reset (DN), decaying with a time constant of 1.5 frames. Low pedestal:
    /// the (negative) constant offset (DN). 0 elsewhere.
    pub pedestal: Vec<f32>,
    /// TELEGRAPH: the height of the upper level above the lower one (DN). 0 elsewhere.
    pub telegraph: Vec<f32>,
    /// TELEGRAPH: the probability per frame of switching level. 0 elsewhere.
    pub telegraph_prob: Vec<f32>,
}

const MAP_BIAS: u64 = 1;
const MAP_READNOISE: u64 = 2;
const MAP_DARK: u64 = 3;
const MAP_QE: u64 = 4;
const MAP_BIAS_OUTPUTS: u64 = 5;
const MAP_READNOISE_TAIL: u64 = 6;
const MAP_TELEGRAPH_PROB: u64 = 7;

/// Pareto index of the read-noise tail factor: P(factor > f) = (1.3 / f)^3, so about 8 % of the
/// tail reach the cap.
const READNOISE_TAIL_INDEX: f64 = 3.0;
const READNOISE_TAIL_MIN: f64 = 1.3;
const READNOISE_TAIL_MAX: f64 = 3.0;

impl Truth {
    /// The truth of `cfg`: a function of the config (and its seed) alone.
    pub fn generate(cfg: &SimConfig) -> Result<Truth, SimError> {
        let r = cfg.resolve()?;
        let (ny, nx) = (r.ny(), r.nx());
        let refmask = reference_pixel_mask(&r.det, &r.sub);
        let mut out_rng = stream(cfg.seed, &[TAG_TRUTH, MAP_BIAS_OUTPUTS]);
        let output_offsets: Vec<f64> = (0..4).map(|_| cfg.bias_spread * out_rng.normal()).collect();
        let output_of = |y: usize, x: usize| output_of(&r, y, x);

        let mut t = Truth {
            ny,
            nx,
            gain: cfg.gain,
            bias: vec![0.0; ny * nx],
            readnoise: vec![0.0; ny * nx],
            dark: vec![0.0; ny * nx],
            qe: vec![0.0; ny * nx],
            defects: refmask
                .iter()
                .map(|&r| if r { dq::REFERENCE_PIXEL } else { 0 })
                .collect(),
            pedestal: vec![0.0; ny * nx],
            telegraph: vec![0.0; ny * nx],
            telegraph_prob: vec![0.0; ny * nx],
        };
        let seed = cfg.seed;
        let fill =
            |map: u64, values: &mut [f32], f: &(dyn Fn(&mut Rng, usize, usize) -> f64 + Sync)| {
                values.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
                    let mut rng = stream(seed, &[TAG_TRUTH, map, y as u64]);
                    for (x, v) in row.iter_mut().enumerate() {
                        *v = f(&mut rng, y, x) as f32;
                    }
                });
            };
        let is_ref = |y: usize, x: usize| refmask[y * nx + x];
        fill(MAP_BIAS, &mut t.bias, &|rng, y, x| {
            cfg.bias_level + output_offsets[output_of(y, x)] + cfg.bias_spread * rng.normal()
        });
        fill(MAP_READNOISE, &mut t.readnoise, &|rng, y, x| {
            let mean = if is_ref(y, x) {
                cfg.refpix_readnoise
            } else {
                cfg.readnoise
            };
            mean * (1.0 + cfg.readnoise_spread * rng.normal()).max(0.5)
        });
        if cfg.readnoise_tail > 0.0 {
            t.readnoise
                .par_chunks_mut(nx)
                .enumerate()
                .for_each(|(y, row)| {
                    let mut rng = stream(seed, &[TAG_TRUTH, MAP_READNOISE_TAIL, y as u64]);
                    for (x, v) in row.iter_mut().enumerate() {
                        let (chosen, u) = (rng.uniform() < cfg.readnoise_tail, rng.uniform());
                        if chosen && !is_ref(y, x) {
                            *v *= readnoise_tail_factor(u) as f32;
                        }
                    }
                });
        }
        fill(MAP_DARK, &mut t.dark, &|rng, y, x| {
            let z = rng.normal();
            if is_ref(y, x) {
                0.0
            } else {
                cfg.dark_current * (1.0 + cfg.dark_spread * z).max(0.0)
            }
        });
        fill(MAP_QE, &mut t.qe, &|rng, y, x| {
            let z = rng.normal();
            if is_ref(y, x) {
                0.0
            } else {
                (1.0 + cfg.qe_spread * z).max(0.0)
            }
        });
        place_defects(cfg, &r, &mut t)?;
        set_telegraph_probabilities(cfg, &mut t);
        Ok(t)
    }

    /// Number of pixels of a class.
    pub fn count(&self, class: DefectClass) -> usize {
        self.defects.iter().filter(|&&v| class.matches(v)).count()
    }

    /// Whether pixel `i` (row-major) is a reference pixel.
    pub fn is_reference(&self, i: usize) -> bool {
        self.defects[i] & dq::REFERENCE_PIXEL != 0
    }

    /// Writes `truth.fits`: the config as primary keys, the class counts (N_*), and the maps
    /// BIAS, READNOISE, DARK, QE, PEDESTAL, TELEGRAPH (f32) and DEFECTS (u32), plus RTNPROB
    /// (f32, the telegraph pixels' switching probabilities) when they are spread over a range
    /// (otherwise the RTNPROB key gives all of them). The keys of the opt-in noise features
    /// are written only when those are on, so files of configs without them stay as they were.
    pub fn write(&self, path: &Path, cfg: &SimConfig) -> Result<(), SimError> {
        let r = cfg.resolve()?;
        let mut w = FitsWriter::create(path)?;
        let tgroup = r.tgroup(cfg);
        let spread_rtn = cfg.telegraph_switch_prob.0 != cfg.telegraph_switch_prob.1;
        let keys: Vec<(&str, HeaderValue, &str)> = vec![
            ("TELESCOP", r.det.instrument.telescope().into(), "simulated"),
            ("INSTRUME", r.det.instrument.name().into(), ""),
            ("DETECTOR", r.det.name.into(), ""),
            ("SUBARRAY", r.sub.name.as_str().into(), ""),
            ("SUBSTRT1", (r.sub.xstart as i64).into(), ""),
            ("SUBSTRT2", (r.sub.ystart as i64).into(), ""),
            ("SUBSIZE1", (r.sub.nx as i64).into(), ""),
            ("SUBSIZE2", (r.sub.ny as i64).into(), ""),
            ("SEED", HeaderValue::Int(cfg.seed as i64), "simulator seed"),
            ("NINTS", (cfg.nints as i64).into(), ""),
            ("NGROUPS", (cfg.ngroups as i64).into(), ""),
            ("NFRAMES", (cfg.nframes as i64).into(), ""),
            ("GROUPGAP", (cfg.groupgap as i64).into(), ""),
            ("TFRAME", r.tframe.into(), "[s]"),
            ("TGROUP", tgroup.into(), "[s]"),
            ("READPATT", cfg.readpatt.as_str().into(), ""),
            ("GAIN", cfg.gain.into(), "[e-/DN]"),
            ("BIASLVL", cfg.bias_level.into(), "mean bias [DN]"),
            ("BIASSPRD", cfg.bias_spread.into(), "bias sigma [DN]"),
            ("RNMEAN", cfg.readnoise.into(), "mean CDS read noise [DN]"),
            (
                "RNSPREAD",
                cfg.readnoise_spread.into(),
                "relative read-noise spread",
            ),
            (
                "RNREF",
                cfg.refpix_readnoise.into(),
                "ref. pixel CDS read noise [DN]",
            ),
            (
                "DARKMEAN",
                cfg.dark_current.into(),
                "mean dark current [DN/s]",
            ),
            ("DARKSPRD", cfg.dark_spread.into(), "relative dark spread"),
            (
                "FLATILLU",
                cfg.flat_illumination.into(),
                "flat illumination [DN/s]",
            ),
            ("QESPREAD", cfg.qe_spread.into(), "relative QE spread"),
            (
                "CRRATE",
                cfg.cosmic_ray_rate.into(),
                "cosmic rays per pixel per s",
            ),
            ("CRMIN", cfg.cosmic_ray_min.into(), "min CR amplitude [DN]"),
            ("CRMAX", cfg.cosmic_ray_max.into(), "max CR amplitude [DN]"),
            (
                "F_DEAD",
                cfg.defects.dead.into(),
                "fraction of science pixels",
            ),
            ("F_LOWQE", cfg.defects.low_qe.into(), ""),
            ("F_OPEN", cfg.defects.open.into(), ""),
            ("F_HOT", cfg.defects.hot.into(), ""),
            ("F_SATALL", cfg.defects.saturated.into(), ""),
            ("F_RC", cfg.defects.rc.into(), ""),
            ("F_RTN", cfg.defects.telegraph.into(), ""),
            ("F_LOWPED", cfg.defects.low_pedestal.into(), ""),
            ("RCTAU", RC_TAU_FRAMES.into(), "RC decay time [frames]"),
            (
                "RTNPROB",
                cfg.telegraph_switch_prob.0.into(),
                if spread_rtn {
                    "min telegraph switch prob. per frame"
                } else {
                    "telegraph switch prob. per frame"
                },
            ),
            (
                "SIMSTART",
                cfg.start.as_str().into(),
                "start of the first exposure",
            ),
        ];
        for (k, v, c) in keys.iter().chain(&optional_keys(cfg)) {
            w.set_primary_key(k, v, c)?;
        }
        for class in DefectClass::ALL {
            // Written only when enabled, so default truth files stay as they were.
            if class == DefectClass::Noisy && cfg.defects.noisy == 0.0 {
                continue;
            }
            w.set_primary_key(
                class.key(),
                &HeaderValue::Int(self.count(class) as i64),
                "pixels of this class",
            )?;
        }
        w.add_history(
            "Truth of an mkrefs simulation. DEFECTS holds JWST DQ values; HOT|SATURATED marks \
             pixels saturated in all groups. PEDESTAL: RC excess at reset (decaying, RCTAU \
             frames) or the negative offset of low-pedestal pixels. TELEGRAPH: step height.",
        )?;
        let shape = [self.ny, self.nx];
        for (name, data) in [
            ("BIAS", &self.bias),
            ("READNOISE", &self.readnoise),
            ("DARK", &self.dark),
            ("QE", &self.qe),
        ] {
            w.write_image(name, &shape, data)?;
        }
        w.write_image("DEFECTS", &shape, &self.defects)?;
        w.write_image("PEDESTAL", &shape, &self.pedestal)?;
        w.write_image("TELEGRAPH", &shape, &self.telegraph)?;
        if spread_rtn {
            w.write_image("RTNPROB", &shape, &self.telegraph_prob)?;
        }
        w.finish()?;
        Ok(())
    }

    /// Reads a `truth.fits` written by [`Truth::write`].
    pub fn read(path: &Path) -> Result<Truth, SimError> {
        let primary = read_primary_header(path)?;
        let gain = primary.get_f64("GAIN").ok_or_else(|| {
            SimError::Config(format!(
                "{}: no GAIN key in the primary header; is this a truth.fits of the simulator?",
                path.display()
            ))
        })?;
        let mut shape = (0, 0);
        let mut f32_map = |name: &str| -> Result<Vec<f32>, SimError> {
            let mut r = ImageReader::open(path, name)?;
            shape = (r.ny(), r.nx());
            Ok(r.read_plane::<f32>(0)?)
        };
        let bias = f32_map("BIAS")?;
        let readnoise = f32_map("READNOISE")?;
        let dark = f32_map("DARK")?;
        let qe = f32_map("QE")?;
        let pedestal = f32_map("PEDESTAL")?;
        let telegraph = f32_map("TELEGRAPH")?;
        let telegraph_prob = if hdu_names(path)?.iter().any(|n| n == "RTNPROB") {
            f32_map("RTNPROB")?
        } else {
            // Files without the map (all written before it existed) have one probability.
            let p = primary
                .get_f64("RTNPROB")
                .unwrap_or(crate::config::TELEGRAPH_SWITCH_PROB) as f32;
            telegraph
                .iter()
                .map(|&h| if h > 0.0 { p } else { 0.0 })
                .collect()
        };
        let defects = ImageReader::open(path, "DEFECTS")?.read_plane::<u32>(0)?;
        Ok(Truth {
            ny: shape.0,
            nx: shape.1,
            gain,
            bias,
            readnoise,
            dark,
            qe,
            defects,
            pedestal,
            telegraph,
            telegraph_prob,
        })
    }
}

/// The read-noise multiplier of a pixel in the tail, from a uniform deviate `u`: Pareto from
/// `READNOISE_TAIL_MIN` up, capped at `READNOISE_TAIL_MAX`.
fn readnoise_tail_factor(u: f64) -> f64 {
    (READNOISE_TAIL_MIN * (1.0 - u).powf(-1.0 / READNOISE_TAIL_INDEX)).min(READNOISE_TAIL_MAX)
}

/// Each telegraph pixel's switching probability, log-uniform in the config's range, drawn from
/// its own stream in pixel order (none drawn for a single value, as before the range existed).
fn set_telegraph_probabilities(cfg: &SimConfig, t: &mut Truth) {
    let (lo, hi) = cfg.telegraph_switch_prob;
    let mut rng = (lo != hi).then(|| stream(cfg.seed, &[TAG_TRUTH, MAP_TELEGRAPH_PROB]));
    for (p, &h) in t.telegraph_prob.iter_mut().zip(&t.telegraph) {
        if h > 0.0 {
            *p = match rng.as_mut() {
                Some(rng) => (lo.ln() + (hi / lo).ln() * rng.uniform()).exp(),
                None => lo,
            } as f32;
        }
    }
}

/// The median CDS read noise of the science pixels (the unit of the noisy pixels' noise).
fn median_science_readnoise(t: &Truth) -> f64 {
    let mut v: Vec<f32> = (0..t.readnoise.len())
        .filter(|&i| !t.is_reference(i))
        .map(|i| t.readnoise[i])
        .collect();
    if v.is_empty() {
        return 0.0;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f32::total_cmp);
    f64::from(*m)
}

/// Places the defects one class after another from a single stream, so the layout is the same
/// whatever the thread count. Every defect (an OPEN pixel with its 4 brighter neighbours counts
/// as one) keeps a free ring of one pixel around it, so the bad-pixel searches see each one with
/// normal neighbours (the OPEN test looks at the 4 neighbours).
fn place_defects(cfg: &SimConfig, r: &Resolved, t: &mut Truth) -> Result<(), SimError> {
    let (y0, y1, x0, x1) = science_region(&r.det, &r.sub);
    let (h, w) = (y1.saturating_sub(y0), x1.saturating_sub(x0));
    let n_sci = h * w;
    let nx = t.nx;
    let mut occupied = vec![false; t.ny * nx];
    let mut rng = stream(cfg.seed, &[TAG_DEFECTS]);
    let f = &cfg.defects;
    let order = [
        (DefectClass::Open, f.open),
        (DefectClass::Saturated, f.saturated),
        (DefectClass::Hot, f.hot),
        (DefectClass::Rc, f.rc),
        (DefectClass::Telegraph, f.telegraph),
        (DefectClass::LowPedestal, f.low_pedestal),
        (DefectClass::Dead, f.dead),
        (DefectClass::LowQe, f.low_qe),
        // Last, so that enabling it leaves the other classes where they were.
        (DefectClass::Noisy, f.noisy),
    ];
    let median_rn = if f.noisy > 0.0 {
        median_science_readnoise(t)
    } else {
        0.0
    };
    let inside = |y: isize, x: isize| {
        y >= y0 as isize && y < y1 as isize && x >= x0 as isize && x < x1 as isize
    };
    for (class, fraction) in order {
        if !(fraction.is_finite() && fraction >= 0.0) {
            return Err(SimError::Config(format!(
                "defect fraction of {class:?} must be >= 0 (got {fraction})"
            )));
        }
        let count = (fraction * n_sci as f64).round() as usize;
        let max_attempts = 100 * count + 1000;
        let (mut placed, mut attempts) = (0, 0);
        while placed < count {
            attempts += 1;
            if attempts > max_attempts {
                return Err(SimError::Config(format!(
                    "could place only {placed} of {count} {class:?} pixels in the {h}x{w} science \
                     area; lower the defect fractions (each defect needs a free ring of pixels)"
                )));
            }
            let y = (y0 as u64 + rng.below(h as u64)) as isize;
            let x = (x0 as u64 + rng.below(w as u64)) as isize;
            let mut cells = vec![(y, x)];
            if class == DefectClass::Open {
                cells.extend([(y + 1, x), (y, x + 1), (y - 1, x), (y, x - 1)]);
            }
            let free = cells.iter().all(|&(cy, cx)| {
                inside(cy, cx)
                    && (-1..=1).all(|dy| {
                        (-1..=1).all(|dx| {
                            let (ny_, nx_) = (cy + dy, cx + dx);
                            !inside(ny_, nx_) || !occupied[ny_ as usize * nx + nx_ as usize]
                        })
                    })
            });
            if !free {
                continue;
            }
            for &(cy, cx) in &cells {
                occupied[cy as usize * nx + cx as usize] = true;
            }
            let i = y as usize * nx + x as usize;
            let u = rng.uniform();
            match class {
                DefectClass::Dead => t.qe[i] = (0.04 * u) as f32,
                DefectClass::LowQe => t.qe[i] = (0.30 + 0.15 * u) as f32,
                DefectClass::Open => {
                    t.qe[i] = (0.30 + 0.15 * u) as f32;
                    for &(cy, cx) in &cells[1..] {
                        let j = cy as usize * nx + cx as usize;
                        t.qe[j] = (1.10 + 0.20 * rng.uniform()) as f32;
                        t.defects[j] |= dq::ADJ_OPEN;
                    }
                    // The flag's 3x3 box. The diagonal pixels touch the 4 neighbours, so no other
                    // defect can be placed on them; they are not marked occupied, which keeps the
                    // layout of every other defect as it was.
                    for (dy, dx) in [(-1, -1), (-1, 1), (1, -1), (1, 1)] {
                        t.defects[(y + dy) as usize * nx + (x + dx) as usize] |= dq::ADJ_OPEN;
                    }
                }
                DefectClass::Hot => t.dark[i] = (0.5 * 100f64.powf(u)) as f32,
                // At least twice the full range in the first frame: saturated in every read
                // whatever the frame time.
                DefectClass::Saturated => {
                    t.dark[i] = (65_535.0 / r.tframe * (2.0 + 8.0 * u)) as f32
                }
                DefectClass::Rc => t.pedestal[i] = (500.0 + 2500.0 * u) as f32,
                DefectClass::LowPedestal => t.pedestal[i] = -(300.0 + 1700.0 * u) as f32,
                DefectClass::Telegraph => t.telegraph[i] = (60.0 + 140.0 * u) as f32,
                DefectClass::Noisy => t.readnoise[i] = (median_rn * (5.0 + 3.0 * u)) as f32,
                DefectClass::AdjOpen | DefectClass::ReferencePixel => unreachable!(),
            }
            t.defects[i] |= class.flag();
            placed += 1;
        }
    }
    Ok(())
}

/// The truth.fits keys of the opt-in noise features, only those that are on.
fn optional_keys(cfg: &SimConfig) -> Vec<(&'static str, HeaderValue, &'static str)> {
    let mut keys: Vec<(&str, HeaderValue, &str)> = Vec::new();
    let mut add = |on: bool, key, value: f64, comment| {
        if on {
            keys.push((key, value.into(), comment));
        }
    };
    let (lo, hi) = cfg.telegraph_switch_prob;
    add(
        hi != lo,
        "RTNPRMAX",
        hi,
        "max telegraph switch prob. per frame",
    );
    add(
        cfg.readnoise_tail > 0.0,
        "RNTAIL",
        cfg.readnoise_tail,
        "fraction in the read-noise tail",
    );
    add(cfg.defects.noisy > 0.0, "F_NOISY", cfg.defects.noisy, "");
    add(
        cfg.noise_1f_rms > 0.0,
        "NOISE1F",
        cfg.noise_1f_rms,
        "1/f noise rms per read [DN]",
    );
    add(
        cfg.reset_offset_sigma > 0.0,
        "RESETSIG",
        cfg.reset_offset_sigma,
        "reset offset sigma [DN]",
    );
    add(
        cfg.amp_drift_per_frame > 0.0,
        "AMPDRIFT",
        cfg.amp_drift_per_frame,
        "max amplifier drift [DN/frame]",
    );
    keys
}
