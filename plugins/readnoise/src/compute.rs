//! The streaming readnoise map: row blocks of CDS frames from every input, per-pixel clipped
//! statistics in parallel over rows (see UPSTREAM.md, 'CDS frames' and 'Methods').
//!
//! Per block of rows `y0..y1`, every input's CDS frames are formed from row bands of its groups
//! (one read per group: the band of the lower group is kept and reused when the next pair starts
//! with it, as consecutive differences do) into one buffer of `N` planes, in upstream's stack order
//! (files, integrations, CDS index), so that the f32 mean numerators (UPSTREAM.md, 'Stack
//! statistics') are summed in the same order as numpy's. Inputs are read in parallel, one reader
//! each. Then each row is reduced on its own: for `stack`, the band's planes are the pixels'
//! stacks as columns, clipped [`LANES`] pixels at a time (the support crate's `lanes`); for
//! `ramp`, a tile of up to [`TILE`] pixels is transposed so that each pixel's `N` samples are
//! contiguous, and the per-pixel statistics are applied to each input's part.
//!
//! Memory is `rows × (N + 2·files) × nx × 4` bytes for the band plus one tile per thread, and the
//! number of rows is chosen so that this stays within the budget: it does not grow with the
//! number of inputs.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::{row_blocks, rows_per_block};
use mkrefs_support::lanes::{LANES, LaneClip, Lanes, MeanSum, clipped_mean_std_lanes, load};
use mkrefs_support::params::Choices;
use mkrefs_support::stats::{StackStats, clipped_mean_std_f32, clipped_mean_std_f64};
use rayon::prelude::*;

use crate::cds::CdsPlan;
use crate::unbiased::ClipCorrection;

/// Pixels per transposed tile: 256 pixels × N samples × 4 bytes stays in L2 for N of a few
/// hundred, while the row bands are still read sequentially.
pub const TILE: usize = 256;

pub use mkrefs_support::ramps::{RampDims, RampSource};

/// How the CDS stack of a pixel becomes its read noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Clipped std of all CDS frames of all inputs together.
    Stack,
    /// Clipped std per input, then the clipped mean of those.
    Ramp,
}

impl Method {
    /// The names the `method` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<Method> =
        Choices::new(&[("stack", Method::Stack), ("ramp", Method::Ramp)]);

    pub fn parse(s: &str) -> Option<Method> {
        Self::CHOICES.parse(s)
    }

    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

/// What the per-pixel reduction needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MapOptions {
    pub method: Method,
    pub sigma: f64,
    pub maxiters: usize,
    /// Keep jwst_reffiles' clipped std (ddof 0), which is low for normal noise, instead of
    /// correcting it ([`crate::unbiased`]).
    pub upstream_estimator: bool,
    /// Bytes the row band may take.
    pub budget_bytes: usize,
}

/// The readnoise map and what was noticed while making it.
#[derive(Clone, Debug, PartialEq)]
pub struct MapResult {
    /// Row-major `ny × nx` CDS noise in DN; NaN where no sample survived.
    pub map: Vec<f64>,
    pub ny: usize,
    pub nx: usize,
    /// Indices of inputs in which not one value was finite.
    pub inputs_without_finite: Vec<usize>,
    /// Rows per block actually used.
    pub rows_per_block: usize,
}

/// Computes the readnoise map of `inputs` (all `ny × nx`, checked by the caller) with the CDS
/// plan of each input. Runs on the current rayon pool. `progress(done_rows, ny)` is called after
/// each block.
pub fn readnoise_map<S: RampSource>(
    inputs: &mut [S],
    plans: &[CdsPlan],
    opts: &MapOptions,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MapResult, GeneratorError> {
    assert_eq!(inputs.len(), plans.len(), "one CDS plan per input");
    let Some(first) = inputs.first() else {
        return Err(GeneratorError::invalid_input(
            "readnoise needs at least one input ramp",
        ));
    };
    let RampDims { ny, nx, .. } = first.dims();
    // Frames per input and their offsets in the stack.
    let per_input: Vec<usize> = inputs
        .iter()
        .zip(plans)
        .map(|(s, p)| s.dims().nints * p.per_integration())
        .collect();
    let offsets: Vec<usize> = per_input
        .iter()
        .scan(0, |acc, &n| {
            let o = *acc;
            *acc += n;
            Some(o)
        })
        .collect();
    let n_total: usize = per_input.iter().sum();
    let expected = match opts.method {
        Method::Stack => vec![n_total],
        Method::Ramp => per_input.clone(),
    };
    let correction = (!opts.upstream_estimator)
        .then(|| ClipCorrection::new(opts.sigma, opts.maxiters, &expected));
    let correction = correction.as_ref();
    let bytes_per_row = (n_total + 2 * inputs.len()) * nx * std::mem::size_of::<f32>();
    let rows = rows_per_block(bytes_per_row, opts.budget_bytes, ny);

    let mut band = vec![0f32; n_total * rows * nx];
    let mut scratch: Vec<(Vec<f32>, Vec<f32>)> = inputs
        .iter()
        .map(|_| (vec![0f32; rows * nx], vec![0f32; rows * nx]))
        .collect();
    let mut saw_finite = vec![false; inputs.len()];
    let mut map = vec![f64::NAN; ny * nx];

    for (y0, y1) in row_blocks(ny, rows) {
        let nr = y1 - y0;
        let plane = nr * nx;
        let used = &mut band[..n_total * plane];
        // Split the band into each input's planes and fill them in parallel.
        let mut parts: Vec<&mut [f32]> = Vec::with_capacity(inputs.len());
        let mut rest = used;
        for &n in &per_input {
            let (head, tail) = rest.split_at_mut(n * plane);
            parts.push(head);
            rest = tail;
        }
        inputs
            .par_iter_mut()
            .zip(plans.par_iter())
            .zip(parts.into_par_iter())
            .zip(scratch.par_iter_mut())
            .zip(saw_finite.par_iter_mut())
            .try_for_each(|((((src, plan), out), (lo, hi)), seen)| {
                fill_cds(
                    src,
                    plan,
                    y0,
                    y1,
                    out,
                    &mut lo[..plane],
                    &mut hi[..plane],
                    seen,
                )
            })?;

        let band = &band[..n_total * plane];
        map[y0 * nx..y1 * nx]
            .par_chunks_mut(nx)
            .enumerate()
            .for_each_init(
                || PixelScratch::new(n_total, per_input.len()),
                |s, (r, out_row)| {
                    reduce_row(
                        band, plane, r, nx, n_total, &per_input, &offsets, opts, correction, s,
                        out_row,
                    )
                },
            );
        progress(y1, ny);
    }

    let inputs_without_finite = saw_finite
        .iter()
        .enumerate()
        .filter(|&(_, &seen)| !seen)
        .map(|(i, _)| i)
        .collect();
    Ok(MapResult {
        map,
        ny,
        nx,
        inputs_without_finite,
        rows_per_block: rows,
    })
}

/// Fills `out` (`nints × pairs` planes of `(y1-y0) × nx`) with the CDS frames of one input,
/// integration-major, subtracting in f32. `lo`/`hi` are band-sized scratch buffers; the
/// band of the most recently read group is kept in `lo` so that it is not read twice.
#[allow(clippy::too_many_arguments)]
fn fill_cds<'a, S: RampSource>(
    src: &mut S,
    plan: &CdsPlan,
    y0: usize,
    y1: usize,
    out: &mut [f32],
    mut lo: &'a mut [f32],
    mut hi: &'a mut [f32],
    saw_finite: &mut bool,
) -> Result<(), GeneratorError> {
    let plane = lo.len();
    let nints = src.dims().nints;
    let mut frames = out.chunks_exact_mut(plane);
    for int in 0..nints {
        let mut held: Option<usize> = None;
        for &(g_hi, g_lo) in &plan.pairs {
            if held != Some(g_lo) {
                src.read_band(int, g_lo, y0, y1, lo)?;
                *saw_finite |= lo.iter().any(|v| v.is_finite());
            }
            src.read_band(int, g_hi, y0, y1, hi)?;
            *saw_finite |= hi.iter().any(|v| v.is_finite());
            let frame = frames
                .next()
                .expect("the caller sizes the band for nints x pairs frames");
            for ((f, &a), &b) in frame.iter_mut().zip(hi.iter()).zip(lo.iter()) {
                *f = a - b;
            }
            // The upper group is the lower group of the next consecutive pair.
            std::mem::swap(&mut lo, &mut hi);
            held = Some(g_hi);
        }
    }
    Ok(())
}

/// Per-thread buffers of the reduction.
struct PixelScratch {
    tile: Vec<f32>,
    clip: Vec<f64>,
    per_input: Vec<f64>,
    /// `stack` method: the stacks of LANES pixels as columns, and the clip's scratch.
    cols: Vec<Lanes>,
    lanes: LaneClip,
}

impl PixelScratch {
    fn new(n_total: usize, n_inputs: usize) -> Self {
        PixelScratch {
            tile: vec![0.0; TILE * n_total],
            clip: Vec::with_capacity(n_total),
            per_input: Vec::with_capacity(n_inputs),
            cols: Vec::with_capacity(n_total),
            lanes: LaneClip::default(),
        }
    }
}

/// Reduces row `r` of the block into `out_row`.
#[allow(clippy::too_many_arguments)]
fn reduce_row(
    band: &[f32],
    plane: usize,
    r: usize,
    nx: usize,
    n: usize,
    per_input: &[usize],
    offsets: &[usize],
    opts: &MapOptions,
    correction: Option<&ClipCorrection>,
    s: &mut PixelScratch,
    out_row: &mut [f64],
) {
    if opts.method == Method::Stack {
        // The band's planes are the stacks' columns: LANES pixels of each plane at a time.
        for x0 in (0..nx).step_by(LANES) {
            let w = LANES.min(nx - x0);
            s.cols.clear();
            s.cols
                .extend((0..n).map(|k| load(band, k * plane + r * nx + x0, w)));
            let stats = clipped_mean_std_lanes(
                &s.cols,
                opts.sigma,
                opts.maxiters,
                MeanSum::F32,
                &mut s.lanes,
            );
            for (j, st) in stats.iter().take(w).enumerate() {
                out_row[x0 + j] = noise_of(*st, correction);
            }
        }
        return;
    }
    for x0 in (0..nx).step_by(TILE) {
        let w = TILE.min(nx - x0);
        // Transpose: tile[j * n + k] = sample k of pixel x0 + j.
        for k in 0..n {
            let src = &band[k * plane + r * nx + x0..][..w];
            for (j, &v) in src.iter().enumerate() {
                s.tile[j * n + k] = v;
            }
        }
        for j in 0..w {
            let samples = &s.tile[j * n..(j + 1) * n];
            out_row[x0 + j] = ramp_noise(
                samples,
                per_input,
                offsets,
                opts,
                correction,
                &mut s.clip,
                &mut s.per_input,
            );
        }
    }
}

/// The noise of one set of samples: their clipped std, corrected unless `correction` is `None`
/// (the upstream estimator); NaN when none is finite.
fn clipped_noise(
    samples: &[f32],
    opts: &MapOptions,
    correction: Option<&ClipCorrection>,
    clip: &mut Vec<f64>,
) -> f64 {
    noise_of(
        clipped_mean_std_f32(samples, opts.sigma, opts.maxiters, clip),
        correction,
    )
}

/// The noise of a clipped stack: its std, corrected unless `correction` is `None`; NaN when
/// nothing survived.
fn noise_of(stats: Option<StackStats>, correction: Option<&ClipCorrection>) -> f64 {
    stats.map_or(f64::NAN, |s| {
        // The factor belongs to the number of values clipped, not to the number kept.
        correction.map_or(s.std, |c| c.sigma(s.std, s.finite))
    })
}

/// `ramp`: the noise of each input's samples, then the clipped mean of those. An input with no
/// finite sample gives NaN, which the second clip leaves out (upstream would count it as 0.0).
pub fn ramp_noise(
    samples: &[f32],
    per_input: &[usize],
    offsets: &[usize],
    opts: &MapOptions,
    correction: Option<&ClipCorrection>,
    clip: &mut Vec<f64>,
    stds: &mut Vec<f64>,
) -> f64 {
    stds.clear();
    for (&o, &m) in offsets.iter().zip(per_input) {
        stds.push(clipped_noise(&samples[o..o + m], opts, correction, clip));
    }
    clipped_mean_std_f64(stds, opts.sigma, opts.maxiters, clip).map_or(f64::NAN, |s| s.mean)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cds::GroupDiff;
    use mkrefs_sim::rng::stream;

    use mkrefs_support::ramps::MemoryRamp as MemRamp;

    /// Integer-valued normal noise about 10000 DN.
    fn noise(seed: u64, dims: RampDims, sigma: f64) -> MemRamp {
        let mut rng = stream(seed, &[]);
        let n = dims.nints * dims.ngroups * dims.ny * dims.nx;
        let data = (0..n)
            .map(|_| (10_000.0 + sigma * rng.normal()).round() as f32)
            .collect();
        MemRamp::new(dims, data)
    }

    fn dims(nints: usize, ngroups: usize) -> RampDims {
        RampDims {
            nints,
            ngroups,
            ny: 7,
            nx: 300,
        }
    }

    /// The whole CDS stack of pixel (y, x), built directly from the definition (UPSTREAM.md,
    /// 'CDS frames').
    fn naive_stack(ramps: &[MemRamp], plans: &[CdsPlan], y: usize, x: usize) -> Vec<Vec<f32>> {
        ramps
            .iter()
            .zip(plans)
            .map(|(r, p)| {
                (0..r.dims.nints)
                    .flat_map(|i| {
                        p.pairs
                            .iter()
                            .map(move |&(hi, lo)| r.at(i, hi, y, x) - r.at(i, lo, y, x))
                    })
                    .collect()
            })
            .collect()
    }

    /// The map with jwst_reffiles' estimator.
    fn run(ramps: &mut [MemRamp], plans: &[CdsPlan], method: Method, budget: usize) -> MapResult {
        run_with(ramps, plans, method, budget, true)
    }

    fn run_with(
        ramps: &mut [MemRamp],
        plans: &[CdsPlan],
        method: Method,
        budget: usize,
        upstream_estimator: bool,
    ) -> MapResult {
        let opts = MapOptions {
            method,
            sigma: 3.0,
            maxiters: 3,
            upstream_estimator,
            budget_bytes: budget,
        };
        readnoise_map(ramps, plans, &opts, &|_, _| {}).unwrap()
    }

    #[test]
    fn streaming_matches_the_definition_bit_for_bit() {
        for diff in [GroupDiff::Independent, GroupDiff::Consecutive] {
            let mut ramps = vec![
                noise(1, dims(2, 6), 5.0),
                noise(2, dims(1, 5), 5.0),
                noise(3, dims(2, 6), 5.0),
            ];
            let plans: Vec<CdsPlan> = ramps
                .iter()
                .map(|r| CdsPlan::new(r.dims.ngroups, false, diff).unwrap())
                .collect();
            for method in [Method::Stack, Method::Ramp] {
                // A budget of a few rows forces several blocks, and an unlimited one a single block.
                let small = run(&mut ramps, &plans, method, 3 * 40 * 300 * 4);
                let big = run(&mut ramps, &plans, method, usize::MAX);
                assert!(small.rows_per_block < 7 && big.rows_per_block == 7);
                assert_eq!(small.map, big.map);
                let mut clip = Vec::new();
                for y in 0..7 {
                    for x in 0..300 {
                        let per_file = naive_stack(&ramps, &plans, y, x);
                        let expected = match method {
                            Method::Stack => {
                                let all: Vec<f32> = per_file.concat();
                                clipped_mean_std_f32(&all, 3.0, 3, &mut clip).unwrap().std
                            }
                            Method::Ramp => {
                                let stds: Vec<f64> = per_file
                                    .iter()
                                    .map(|v| {
                                        clipped_mean_std_f32(v, 3.0, 3, &mut clip)
                                            .map_or(f64::NAN, |s| s.std)
                                    })
                                    .collect();
                                clipped_mean_std_f64(&stds, 3.0, 3, &mut clip).unwrap().mean
                            }
                        };
                        assert_eq!(
                            small.map[y * 300 + x],
                            expected,
                            "{diff} {method:?} {y} {x}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn the_default_estimator_recovers_the_cds_noise_with_either_method() {
        // Read noise 5 DN per read: CDS noise 5·√2.
        let mut ramps: Vec<MemRamp> = (0..4).map(|s| noise(10 + s, dims(2, 8), 5.0)).collect();
        let plans = vec![CdsPlan::new(8, false, GroupDiff::Independent).unwrap(); 4];
        let truth = 5.0 * 2f64.sqrt();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        for method in [Method::Stack, Method::Ramp] {
            let map = run_with(&mut ramps, &plans, method, usize::MAX, false).map;
            // 2100 pixels of 32 samples: the mean is good to ~0.3 % (1/sqrt(2·32·2100)); the
            // integer rounding of the data adds 1/(12·25) of variance, 0.2 % of the noise.
            let ratio = mean(&map) / truth;
            assert!((ratio - 1.0).abs() < 0.01, "{method:?}: {ratio}");
        }
    }

    #[test]
    fn the_upstream_estimator_is_low_and_ramp_lower() {
        // Read noise 5 DN per read: CDS noise 5·√2.
        let mut ramps: Vec<MemRamp> = (0..4).map(|s| noise(10 + s, dims(2, 8), 5.0)).collect();
        let plans = vec![CdsPlan::new(8, false, GroupDiff::Independent).unwrap(); 4];
        let stack = run(&mut ramps, &plans, Method::Stack, usize::MAX);
        let ramp = run(&mut ramps, &plans, Method::Ramp, usize::MAX);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let truth = 5.0 * 2f64.sqrt();
        // E[std, ddof 0] of n normal samples is σ·sqrt((n-1)/n)·c4(n), c4(n) ≈ 1 - 1/4n - 7/32n².
        let expect =
            |n: f64| ((n - 1.0) / n).sqrt() * (1.0 - 1.0 / (4.0 * n) - 7.0 / (32.0 * n * n));
        // Stack: 32 samples per pixel; ramp: the mean of 4 stds of 8 samples each. The mean over
        // 2100 pixels is good to ~0.5%; the 3σ clip lowers both by ~1%.
        let (s, r) = (mean(&stack.map), mean(&ramp.map));
        assert!(
            (s / truth / expect(32.0) - 0.99).abs() < 0.02,
            "stack {s} vs {truth}"
        );
        assert!(
            (r / s / (expect(8.0) / expect(32.0)) - 1.0).abs() < 0.025,
            "ramp {r}, stack {s}"
        );
        assert!(r < s);
    }

    #[test]
    fn all_nan_input_is_reported_and_pixels_are_nan() {
        let mut ramps = vec![noise(1, dims(1, 4), 5.0), noise(2, dims(1, 4), 5.0)];
        ramps[1].data.fill(f32::NAN);
        // One pixel NaN everywhere in the first input too.
        for g in 0..4 {
            let i = (g * 7 + 3) * 300 + 5;
            ramps[0].data[i] = f32::NAN;
        }
        let plans = vec![CdsPlan::new(4, false, GroupDiff::Consecutive).unwrap(); 2];
        for method in [Method::Stack, Method::Ramp] {
            let r = run(&mut ramps, &plans, method, usize::MAX);
            assert_eq!(r.inputs_without_finite, [1]);
            assert!(r.map[3 * 300 + 5].is_nan());
            assert_eq!(r.map.iter().filter(|v| v.is_nan()).count(), 1);
        }
    }
}
