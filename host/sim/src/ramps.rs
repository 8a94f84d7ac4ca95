//! One row of one exposure: the raw ramps (the realisation) and what the calibration steps make
//! of them (the calibrated products).
//!
//! The realisation of row `y` of integration `i` of an exposure uses two streams,
//! `(seed, [TAG_EVENTS, kind, index, i, y])` for cosmic rays and telegraph switching and
//! `(seed, [TAG_NOISE, kind, index, i, y])` for shot and read noise, consumed pixel by pixel in
//! x order. The readout offsets (1/f banding, reset offsets, drifts) are drawn once per exposure
//! (see [`crate::readout`]). A row is therefore the same whichever thread computes it, and the
//! uncal file and every product of the exposure see exactly the same numbers.

use std::f64::consts::SQRT_2;

use crate::config::{Kind, Resolved, SimConfig};
use crate::readout::Readout;
use crate::rng::{Counts, Rng, stream};
use crate::truth::{RC_TAU_FRAMES, TAG_EVENTS, TAG_NOISE, Truth};
use mkrefs_support::dq;
use mkrefs_support::geometry::Instrument;

/// The largest raw value; a read at or above it is saturated (the ADC range of the uncal file).
pub(crate) const SATURATION_DN: f64 = 65_535.0;

/// Everything that is the same for all rows of one exposure.
pub(crate) struct ExposureCtx<'a> {
    pub cfg: &'a SimConfig,
    pub truth: &'a Truth,
    pub kind: Kind,
    pub index: usize,
    pub nints: usize,
    pub ngroups: usize,
    pub nx: usize,
    nframes: usize,
    /// Frames per group including skipped ones.
    stride: usize,
    /// Frames from reset to the last read.
    frames: usize,
    tframe: f64,
    pub tgroup: f64,
    /// Expected cosmic rays per pixel per integration, and their distribution.
    cr_lambda: f64,
    cosmic_rays: Counts,
    /// The readout offsets of the exposure; `None` when the config has none.
    readout: Option<Readout>,
    /// Whether the products keep the bias (MIRI: no superbias step).
    keep_bias: bool,
}

impl<'a> ExposureCtx<'a> {
    pub fn new(
        cfg: &'a SimConfig,
        r: &Resolved,
        truth: &'a Truth,
        kind: Kind,
        index: usize,
    ) -> Self {
        let frames = r.frames_to_last_read(cfg);
        // Hits are drawn in frames after group 0 has been read (see `realise_row`).
        let hit_frames = frames.saturating_sub(cfg.nframes);
        let cr_lambda = cfg.cosmic_ray_rate.max(0.0) * r.tframe * hit_frames as f64;
        ExposureCtx {
            cfg,
            truth,
            kind,
            index,
            nints: cfg.nints,
            ngroups: cfg.ngroups,
            nx: r.nx(),
            nframes: cfg.nframes,
            stride: cfg.nframes + cfg.groupgap,
            frames,
            tframe: r.tframe,
            tgroup: r.tgroup(cfg),
            cr_lambda,
            cosmic_rays: Counts::new(cr_lambda),
            readout: Readout::new(cfg, r, kind, index),
            keep_bias: r.det.instrument == Instrument::Miri,
        }
    }

    /// The group whose reads first include charge arriving just before frame `f`.
    fn group_of_frame(&self, f: usize) -> usize {
        // Group g reads frames g*stride .. g*stride + nframes - 1.
        (f + self.stride - self.nframes) / self.stride
    }
}

/// A jump the simulator put in: a cosmic ray or a telegraph switch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Event {
    pub int: usize,
    pub x: usize,
    /// The first group that shows it (flagged JUMP_DET).
    pub group: usize,
    /// Its size in DN (negative for a telegraph switch down).
    pub amp: f32,
}

/// The raw ramps of one row: `raw[(i * ngroups + g) * nx + x]`, with the events in (int, x,
/// group) order.
pub(crate) struct RowRamp {
    pub raw: Vec<u16>,
    pub events: Vec<Event>,
}

/// Simulates row `y` of every integration of the exposure.
///
/// Per pixel and frame: charge accumulates with Poisson noise (in electrons, through the gain)
/// from dark current plus, for flats, illumination × QE; every read adds the bias, the defect
/// behaviour, Gaussian noise of σ = READNOISE/√2 and the readout offsets (1/f banding, reset
/// offset, drift; see [`crate::readout`]); a group is the mean of its `nframes` reads, rounded
/// and clipped to 0..65535. A cosmic ray hits before a uniformly chosen frame after group 0 (a
/// hit before the first read would be indistinguishable from bias) and adds its amplitude to
/// that and every later read. Reference pixels get only bias, read noise and readout offsets.
pub(crate) fn realise_row(ctx: &ExposureCtx, y: usize) -> RowRamp {
    let (nx, ng) = (ctx.nx, ctx.ngroups);
    let t = ctx.truth;
    let cfg = ctx.cfg;
    let seed = cfg.seed;
    let mut raw = vec![0u16; ctx.nints * ng * nx];
    let mut events = Vec::new();
    let mut hits: Vec<(usize, f64)> = Vec::new();
    let mut state: Vec<bool> = vec![false; ctx.frames];
    let mut level = vec![0.0f64; ng];
    let illum = match ctx.kind {
        Kind::Dark => 0.0,
        Kind::Flat => cfg.flat_illumination,
    };
    let ids = |tag: u64, i: usize| [tag, ctx.kind.id(), ctx.index as u64, i as u64, y as u64];
    for i in 0..ctx.nints {
        let mut ev = stream(seed, &ids(TAG_EVENTS, i));
        let mut noise = stream(seed, &ids(TAG_NOISE, i));
        for x in 0..nx {
            let p = y * nx + x;
            let defect = t.defects[p];
            let is_ref = defect & dq::REFERENCE_PIXEL != 0;
            // Events first, from their own stream.
            draw_hits(ctx, &mut ev, is_ref, &mut hits);
            let h = f64::from(t.telegraph[p]);
            if h > 0.0 {
                draw_telegraph_states(&mut ev, f64::from(t.telegraph_prob[p]), &mut state);
            }
            let rate_dn = if is_ref {
                0.0
            } else {
                f64::from(t.dark[p]) + illum * f64::from(t.qe[p])
            };
            let shot = Counts::new(rate_dn * cfg.gain * ctx.tframe);
            let sigma = f64::from(t.readnoise[p]) / SQRT_2;
            let bias = f64::from(t.bias[p]);
            let ped = f64::from(t.pedestal[p]);
            let rc = defect & dq::RC != 0;
            let low_ped = defect & dq::OTHER_BAD_PIXEL != 0;
            let place = ctx.readout.as_ref().map(|r| r.place(y, x));
            let mut charge = 0.0f64;
            let mut cr_sum = 0.0f64;
            let mut next_hit = 0;
            let mut acc = 0.0;
            let mut tele_acc = 0.0;
            for (f, &up) in state.iter().enumerate() {
                charge += noise.counts(&shot) as f64;
                while next_hit < hits.len() && hits[next_hit].0 == f {
                    cr_sum += hits[next_hit].1;
                    next_hit += 1;
                }
                let (g, k) = (f / ctx.stride, f % ctx.stride);
                if k >= ctx.nframes {
                    continue;
                }
                let mut v = bias + charge / cfg.gain + cr_sum + sigma * noise.normal();
                if h > 0.0 && up {
                    v += h;
                    tele_acc += 1.0;
                }
                if rc {
                    v += ped * (-((f + 1) as f64) / RC_TAU_FRAMES).exp();
                } else if low_ped {
                    v += ped;
                }
                if let (Some(r), Some(place)) = (&ctx.readout, place) {
                    v += r.offset(i, g * ctx.nframes + k, f, place);
                }
                acc += v;
                if k + 1 == ctx.nframes {
                    let mean = acc / ctx.nframes as f64;
                    raw[(i * ng + g) * nx + x] = mean.round().clamp(0.0, SATURATION_DN) as u16;
                    level[g] = tele_acc / ctx.nframes as f64;
                    acc = 0.0;
                    tele_acc = 0.0;
                }
            }
            let first = events.len();
            for &(f, amp) in &hits {
                events.push(Event {
                    int: i,
                    x,
                    group: ctx.group_of_frame(f),
                    amp: amp as f32,
                });
            }
            if h > 0.0 {
                for g in 1..ng {
                    if level[g] != level[g - 1] {
                        events.push(Event {
                            int: i,
                            x,
                            group: g,
                            amp: ((level[g] - level[g - 1]) * h) as f32,
                        });
                    }
                }
            }
            events[first..].sort_by_key(|e| e.group);
        }
    }
    RowRamp { raw, events }
}

/// The cosmic-ray hits of one pixel and integration as (frame, amplitude), in frame order
/// (none on reference pixels, which have no photodiode).
fn draw_hits(ctx: &ExposureCtx, ev: &mut Rng, is_ref: bool, hits: &mut Vec<(usize, f64)>) {
    hits.clear();
    if is_ref || ctx.cr_lambda <= 0.0 {
        return;
    }
    let cfg = ctx.cfg;
    let (ln_lo, ln_hi) = (
        cfg.cosmic_ray_min.max(f64::MIN_POSITIVE).ln(),
        cfg.cosmic_ray_max.max(f64::MIN_POSITIVE).ln(),
    );
    let n = ev.counts(&ctx.cosmic_rays);
    for _ in 0..n {
        let f = ctx.nframes + ev.below((ctx.frames - ctx.nframes) as u64) as usize;
        let amp = (ln_lo + (ln_hi - ln_lo) * ev.uniform()).exp();
        hits.push((f, amp));
    }
    hits.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
}

/// A telegraph pixel's level (upper or not) in every frame: a random start, then a switch
/// with probability `prob` before each later frame.
fn draw_telegraph_states(ev: &mut Rng, prob: f64, state: &mut [bool]) {
    let mut s = ev.uniform() < 0.5;
    for (f, st) in state.iter_mut().enumerate() {
        if f > 0 && ev.uniform() < prob {
            s = !s;
        }
        *st = s;
    }
}

/// One straight-line fit of a run of groups between jumps.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Segment {
    pub int: usize,
    pub x: usize,
    /// Position among the pixel's segments in this integration.
    pub n: usize,
    /// Number of groups fitted.
    pub groups: usize,
    pub slope: f64,
    pub sigslope: f64,
    pub yint: f64,
    pub sigyint: f64,
    pub weight: f64,
    pub var_poisson: f64,
    pub var_rnoise: f64,
}

/// A slope with its variances and DQ (one integration, or all combined).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Slope {
    pub slope: f32,
    pub err: f32,
    pub dq: u32,
    pub var_poisson: f32,
    pub var_rnoise: f32,
}

/// What the calibration steps make of one row (see [`calibrate_row`]). The steps are
/// idealised: the readout offsets of [`crate::readout`] (1/f banding, reset offsets, drifts) are
/// not removed, so products of configs with them carry them uncorrected.
pub(crate) struct RowProducts {
    /// Jump-step SCI: `[(i * ngroups + g) * nx + x]`, bias subtracted (NIR).
    pub sci: Vec<f32>,
    pub groupdq: Vec<u8>,
    pub pixeldq: Vec<u32>,
    /// Per integration `[i * nx + x]`.
    pub ints: Vec<Slope>,
    pub pedestal: Vec<f32>,
    /// All integrations combined `[x]`.
    pub rate: Vec<Slope>,
    pub segments: Vec<Segment>,
    pub events: Vec<Event>,
}

/// The calibrated products of a row: dq_init (PIXELDQ = REFERENCE_PIXEL | DO_NOT_USE on reference
/// pixels), saturation (SATURATED | DO_NOT_USE from the first group at 65535 on), superbias and
/// refpix (the true bias subtracted; MIRI keeps it, having no superbias step), linearity (the
/// simulated ramps are linear), jump (JUMP_DET exactly where an event first shows) and ramp
/// fitting: an ordinary least-squares line through each run of unsaturated groups between jumps
/// (runs of one group are not used), runs combined with inverse-variance weights, integrations
/// likewise. Slopes whose DQ has DO_NOT_USE are NaN, as in jwst rate files.
pub(crate) fn calibrate_row(ctx: &ExposureCtx, y: usize, row: &RowRamp) -> RowProducts {
    let pixeldq = initial_pixeldq(ctx, y);
    let (sci, groupdq) = calibrated_groups(ctx, y, row);
    let (mut segments, ranges) = fit_segments(ctx, y, &sci, &groupdq);
    set_poisson_variances(ctx, &mut segments);
    let (ints, pedestal) = integration_slopes(ctx, &sci, &groupdq, &pixeldq, &segments, &ranges);
    let rate = exposure_slopes(ctx, &pixeldq, &ints);
    RowProducts {
        sci,
        groupdq,
        pixeldq,
        ints,
        pedestal,
        rate,
        segments,
        events: row.events.clone(),
    }
}

const SAT_FLAG: u8 = (dq::SATURATED | dq::DO_NOT_USE) as u8;
const JUMP_FLAG: u8 = dq::JUMP_DET as u8;

/// dq_init: REFERENCE_PIXEL | DO_NOT_USE on reference pixels.
fn initial_pixeldq(ctx: &ExposureCtx, y: usize) -> Vec<u32> {
    let nx = ctx.nx;
    (0..nx)
        .map(|x| {
            if ctx.truth.is_reference(y * nx + x) {
                dq::REFERENCE_PIXEL | dq::DO_NOT_USE
            } else {
                0
            }
        })
        .collect()
}

/// The jump step's SCI and GROUPDQ of the row: saturation flags from the first group at 65535
/// on, the true bias subtracted (unless kept), JUMP_DET where an event first shows.
fn calibrated_groups(ctx: &ExposureCtx, y: usize, row: &RowRamp) -> (Vec<f32>, Vec<u8>) {
    let (nx, ng, nints) = (ctx.nx, ctx.ngroups, ctx.nints);
    let mut sci = vec![0f32; nints * ng * nx];
    let mut groupdq = vec![0u8; nints * ng * nx];
    for i in 0..nints {
        for x in 0..nx {
            let bias = if ctx.keep_bias {
                0.0
            } else {
                ctx.truth.bias[y * nx + x]
            };
            let mut saturated = false;
            for g in 0..ng {
                let k = (i * ng + g) * nx + x;
                let v = row.raw[k];
                saturated |= f64::from(v) >= SATURATION_DN;
                if saturated {
                    groupdq[k] = SAT_FLAG;
                }
                sci[k] = f32::from(v) - bias;
            }
        }
    }
    for e in &row.events {
        let k = (e.int * ng + e.group) * nx + e.x;
        if groupdq[k] & SAT_FLAG == 0 {
            groupdq[k] |= JUMP_FLAG;
        }
    }
    (sci, groupdq)
}

/// Straight lines through the runs of groups between jumps, with read noise only so far: the
/// segments in (integration, x) order and, per `[i * nx + x]`, the range of its segments.
fn fit_segments(
    ctx: &ExposureCtx,
    y: usize,
    sci: &[f32],
    groupdq: &[u8],
) -> (Vec<Segment>, Vec<std::ops::Range<usize>>) {
    let (nx, ng, nints) = (ctx.nx, ctx.ngroups, ctx.nints);
    let mut segments = Vec::new();
    let mut ranges = Vec::with_capacity(nints * nx);
    for i in 0..nints {
        for x in 0..nx {
            let k0 = i * ng * nx + x;
            let d = |g: usize| f64::from(sci[k0 + g * nx]);
            let sigma_read = f64::from(ctx.truth.readnoise[y * nx + x]) / SQRT_2;
            let sigma_g = sigma_read / (ctx.nframes as f64).sqrt();
            let first_seg = segments.len();
            let runs = unsaturated_runs(ng, |g| groupdq[k0 + g * nx]);
            for (a, b) in runs.into_iter().filter(|(a, b)| b - a >= 2) {
                let n = (b - a) as f64;
                let xs = |g: usize| g as f64 * ctx.tgroup;
                let xm = (a..b).map(xs).sum::<f64>() / n;
                let ym = (a..b).map(d).sum::<f64>() / n;
                let sxx: f64 = (a..b).map(|g| (xs(g) - xm).powi(2)).sum();
                let sxy: f64 = (a..b).map(|g| (xs(g) - xm) * (d(g) - ym)).sum();
                let slope = sxy / sxx;
                let sumx2: f64 = (a..b).map(|g| xs(g).powi(2)).sum();
                segments.push(Segment {
                    int: i,
                    x,
                    n: segments.len() - first_seg,
                    groups: b - a,
                    slope,
                    sigslope: 0.0,
                    yint: ym - slope * xm,
                    sigyint: sigma_g * (sumx2 / (n * sxx)).sqrt(),
                    weight: 0.0,
                    var_poisson: 0.0,
                    var_rnoise: sigma_g * sigma_g / sxx,
                });
            }
            ranges.push(first_seg..segments.len());
        }
    }
    (segments, ranges)
}

/// The (first, end) groups of the runs before the first saturated group, a JUMP_DET group
/// starting a new run; `q(g)` is the flag of group `g`.
fn unsaturated_runs(ng: usize, q: impl Fn(usize) -> u8) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = 0;
    let mut end = ng;
    for g in 0..ng {
        if q(g) & SAT_FLAG != 0 {
            end = g;
            break;
        }
        if g > 0 && q(g) & JUMP_FLAG != 0 {
            runs.push((start, g));
            start = g;
        }
    }
    if start < end {
        runs.push((start, end));
    }
    runs
}

/// Poisson variances from the pixel's read-noise-weighted mean rate over all integrations
/// (like jwst, which uses one rate per pixel): a segment's own slope would give its upward
/// noise fluctuations less weight and bias the combined rate low.
fn set_poisson_variances(ctx: &ExposureCtx, segments: &mut [Segment]) {
    let mut mean_rate = vec![(0.0f64, 0.0f64); ctx.nx];
    for s in segments.iter() {
        mean_rate[s.x].0 += s.slope / s.var_rnoise;
        mean_rate[s.x].1 += 1.0 / s.var_rnoise;
    }
    for s in segments.iter_mut() {
        let (num, den) = mean_rate[s.x];
        let r0 = if den > 0.0 { (num / den).max(0.0) } else { 0.0 };
        s.var_poisson = r0 / (ctx.truth.gain * (s.groups - 1) as f64 * ctx.tgroup);
        s.sigslope = (s.var_rnoise + s.var_poisson).sqrt();
        s.weight = 1.0 / (s.var_rnoise + s.var_poisson);
    }
}

/// The slope of every integration `[i * nx + x]` (its segments combined, DQ the OR of PIXELDQ
/// and the group flags without DO_NOT_USE) and its pedestal.
fn integration_slopes(
    ctx: &ExposureCtx,
    sci: &[f32],
    groupdq: &[u8],
    pixeldq: &[u32],
    segments: &[Segment],
    ranges: &[std::ops::Range<usize>],
) -> (Vec<Slope>, Vec<f32>) {
    let (nx, ng, nints) = (ctx.nx, ctx.ngroups, ctx.nints);
    let mut ints = Vec::with_capacity(nints * nx);
    let mut pedestal = Vec::with_capacity(nints * nx);
    for i in 0..nints {
        for x in 0..nx {
            let k0 = i * ng * nx + x;
            let q = |g: usize| groupdq[k0 + g * nx];
            let mut flags = pixeldq[x];
            for g in 0..ng {
                flags |= u32::from(q(g)) & !dq::DO_NOT_USE;
            }
            let s = combine(
                segments[ranges[i * nx + x].clone()]
                    .iter()
                    .map(|s| (s.slope, s.var_poisson, s.var_rnoise)),
                flags,
            );
            let p = if q(0) & SAT_FLAG != 0 {
                0.0
            } else {
                let fitted = if s.fitted.is_finite() { s.fitted } else { 0.0 };
                f64::from(sci[k0]) - fitted * ctx.tframe * (ctx.nframes as f64 + 1.0) / 2.0
            };
            pedestal.push(p as f32);
            ints.push(s.slope);
        }
    }
    (ints, pedestal)
}

/// The exposure's slope per pixel: the usable integrations combined.
fn exposure_slopes(ctx: &ExposureCtx, pixeldq: &[u32], ints: &[Slope]) -> Vec<Slope> {
    let (nx, nints) = (ctx.nx, ctx.nints);
    (0..nx)
        .map(|x| {
            let per_int = (0..nints).map(|i| ints[i * nx + x]);
            let flags = per_int.clone().fold(pixeldq[x], |a, s| a | s.dq) & !dq::DO_NOT_USE;
            let parts = per_int.filter(|s| s.slope.is_finite()).map(|s| {
                (
                    f64::from(s.slope),
                    f64::from(s.var_poisson),
                    f64::from(s.var_rnoise),
                )
            });
            combine(parts, flags | pixeldq[x]).slope
        })
        .collect()
}

struct Combined {
    /// The fitted slope before DO_NOT_USE masking (for the pedestal).
    fitted: f64,
    slope: Slope,
}

/// Inverse-variance combination of (slope, var_poisson, var_rnoise) parts; DO_NOT_USE and NaN
/// when there is none or `flags` already has DO_NOT_USE.
fn combine(parts: impl Iterator<Item = (f64, f64, f64)>, flags: u32) -> Combined {
    let (mut sw, mut swb, mut inv_p, mut inv_r, mut n) = (0.0, 0.0, 0.0, 0.0, 0);
    let mut any_zero_p = false;
    for (b, vp, vr) in parts {
        let w = 1.0 / (vp + vr);
        sw += w;
        swb += w * b;
        inv_r += 1.0 / vr;
        if vp > 0.0 {
            inv_p += 1.0 / vp;
        } else {
            any_zero_p = true;
        }
        n += 1;
    }
    let fitted = if n > 0 { swb / sw } else { f64::NAN };
    let mut dq = flags;
    if n == 0 {
        dq |= dq::DO_NOT_USE;
    }
    let slope = if dq & dq::DO_NOT_USE != 0 {
        Slope {
            slope: f32::NAN,
            err: f32::NAN,
            dq,
            var_poisson: f32::NAN,
            var_rnoise: f32::NAN,
        }
    } else {
        let var_r = 1.0 / inv_r;
        let var_p = if any_zero_p || inv_p == 0.0 {
            0.0
        } else {
            1.0 / inv_p
        };
        Slope {
            slope: fitted as f32,
            err: (var_p + var_r).sqrt() as f32,
            dq,
            var_poisson: var_p as f32,
            var_rnoise: var_r as f32,
        }
    };
    Combined { fitted, slope }
}
