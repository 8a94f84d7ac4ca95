//! The streaming superbias: row bands of group 0 from every input, the clipped mean and scatter
//! of each pixel's stack in parallel over rows (see UPSTREAM.md, 'Statistics'), and the
//! UNRELIABLE_BIAS flags.
//!
//! Only the bands of the frames used are read (group 0 of the first or of every integration),
//! never whole files: for 5 full-frame inputs that is 5–10 frames of 8 MB, whatever the ramps'
//! length. Memory is two bands of `rows × samples × nx × 4` bytes (one read while the other is
//! reduced), each at most 4 MB and both within the budget, plus the three output maps.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::{row_blocks, rows_per_block, zeroed_vec};
use mkrefs_support::dq::{DO_NOT_USE, UNRELIABLE_BIAS};
use mkrefs_support::lanes::{LANES, LaneClip, MeanSum, clipped_mean_std_lanes, load};
use mkrefs_support::params::Choices;
use mkrefs_support::stats::clipped_mean_std_flat;
use rayon::prelude::*;

/// The value written for a pixel whose bias is unreliable: upstream's intended "3", in standard
/// bits so that it survives stdatamodels' DQ translation on save.
pub const FLAGGED: u32 = DO_NOT_USE | UNRELIABLE_BIAS;

pub use mkrefs_support::ramps::{RampDims, RampSource};

/// What ERR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The error of the clipped mean, scatter/√n: the uncertainty of SCI.
    Mean,
    /// The scatter of single frames, as upstream.
    Scatter,
}

impl ErrorKind {
    /// The names the `err_type` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<ErrorKind> =
        Choices::new(&[("mean", ErrorKind::Mean), ("scatter", ErrorKind::Scatter)]);

    pub fn parse(s: &str) -> Option<ErrorKind> {
        Self::CHOICES.parse(s)
    }
}

/// Which integrations contribute their group 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Integrations {
    /// Integration 0 only, as upstream.
    First,
    /// Every integration: more samples per pixel.
    All,
}

impl Integrations {
    /// The names the `integrations` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<Integrations> =
        Choices::new(&[("first", Integrations::First), ("all", Integrations::All)]);

    pub fn parse(s: &str) -> Option<Integrations> {
        Self::CHOICES.parse(s)
    }

    /// How many frames an input of `nints` integrations contributes.
    pub fn count(self, nints: usize) -> usize {
        match self {
            Integrations::First => nints.min(1),
            Integrations::All => nints,
        }
    }
}

/// Per-pixel results of the stack statistics.
#[derive(Clone, Debug, PartialEq)]
pub struct BiasMaps {
    /// Clipped mean, f64; NaN where nothing survived.
    pub mean: Vec<f64>,
    /// Clipped std (ddof 0) of the single frames; NaN where nothing survived.
    pub scatter: Vec<f64>,
    /// Surviving samples per pixel.
    pub count: Vec<u32>,
    pub ny: usize,
    pub nx: usize,
    /// Frames per pixel before clipping.
    pub samples: usize,
    /// Indices of inputs whose used frames held not one finite value.
    pub inputs_without_finite: Vec<usize>,
    pub rows_per_block: usize,
}

impl BiasMaps {
    /// The error of the clipped mean, `scatter / sqrt(n)`, at every pixel.
    pub fn error_of_mean(&self) -> Vec<f64> {
        self.scatter
            .iter()
            .zip(&self.count)
            .map(|(&s, &n)| {
                if n > 0 {
                    s / f64::from(n).sqrt()
                } else {
                    f64::NAN
                }
            })
            .collect()
    }
}

/// The largest band of group-0 rows: small bands stay in the cache between their read and their
/// reduction and are reused, where a band of the whole budget (64 MB) was faulted in page by page
/// on every run. Two are in use, one being read while the other is reduced.
const BAND_BYTES: usize = 4 << 20;

/// The clipped mean and scatter of group 0 over `inputs` (all `ny × nx`, checked by the caller),
/// in file order then integration order. Runs on the current rayon pool; `progress(rows, ny)`
/// after each block.
pub fn superbias_maps<S: RampSource>(
    inputs: &mut [S],
    integrations: Integrations,
    sigma: f64,
    maxiters: usize,
    budget_bytes: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<BiasMaps, GeneratorError> {
    let Some(first) = inputs.first() else {
        return Err(GeneratorError::invalid_input(
            "superbias needs at least one input ramp",
        ));
    };
    let RampDims { ny, nx, .. } = first.dims();
    let per_input: Vec<usize> = inputs
        .iter()
        .map(|s| integrations.count(s.dims().nints))
        .collect();
    let n: usize = per_input.iter().sum();
    let row_bytes = n * nx * std::mem::size_of::<f32>();
    let rows = rows_per_block(2 * row_bytes, budget_bytes, ny)
        .min(rows_per_block(row_bytes, BAND_BYTES, ny));
    let mut bands = [vec![0f32; n * rows * nx], vec![0f32; n * rows * nx]];
    let mut saw_finite = vec![false; inputs.len()];
    // Every pixel is written by `Band::reduce`; zeroed memory is not touched until then.
    let mut mean = zeroed_vec::<f64>(ny * nx);
    let mut scatter = zeroed_vec::<f64>(ny * nx);
    let mut count = zeroed_vec::<u32>(ny * nx);

    let blocks: Vec<(usize, usize)> = row_blocks(ny, rows).collect();
    let band_of = |(y0, y1): (usize, usize)| Band {
        per_input: &per_input,
        y0,
        y1,
        nx,
    };
    if let Some(&b) = blocks.first() {
        band_of(b).read(inputs, &mut bands[0], &mut saw_finite)?;
    }
    for (i, &(y0, y1)) in blocks.iter().enumerate() {
        let [a, b] = &mut bands;
        let (cur, next) = if i % 2 == 0 { (a, b) } else { (b, a) };
        let px = y0 * nx..y1 * nx;
        let out = (
            &mut mean[px.clone()],
            &mut scatter[px.clone()],
            &mut count[px],
        );
        // The next band is read while this one is reduced.
        let (read, ()) = rayon::join(
            || match blocks.get(i + 1) {
                Some(&b) => band_of(b).read(inputs, next, &mut saw_finite),
                None => Ok(()),
            },
            || band_of((y0, y1)).reduce(cur, sigma, maxiters, out),
        );
        read?;
        progress(y1, ny);
    }
    Ok(BiasMaps {
        mean,
        scatter,
        count,
        ny,
        nx,
        samples: n,
        inputs_without_finite: saw_finite
            .iter()
            .enumerate()
            .filter(|&(_, &s)| !s)
            .map(|(i, _)| i)
            .collect(),
        rows_per_block: rows,
    })
}

/// Rows `y0..y1` of group 0 of every input used, held as one plane per frame in file order.
struct Band<'a> {
    /// Frames each input contributes.
    per_input: &'a [usize],
    y0: usize,
    y1: usize,
    nx: usize,
}

impl Band<'_> {
    /// Reads the band's frames of every input (in parallel over inputs) into `band`, and notes
    /// which inputs had a finite value in them.
    fn read<S: RampSource>(
        &self,
        inputs: &mut [S],
        band: &mut [f32],
        saw_finite: &mut [bool],
    ) -> Result<(), GeneratorError> {
        let plane = (self.y1 - self.y0) * self.nx;
        let mut parts: Vec<&mut [f32]> = Vec::with_capacity(inputs.len());
        let mut rest = band;
        for &k in self.per_input {
            let (head, tail) = rest.split_at_mut(k * plane);
            parts.push(head);
            rest = tail;
        }
        inputs
            .par_iter_mut()
            .zip(parts.into_par_iter())
            .zip(saw_finite.par_iter_mut())
            .try_for_each(|((src, out), seen)| {
                for (int, frame) in out.chunks_exact_mut(plane).enumerate() {
                    src.read_band(int, 0, self.y0, self.y1, frame)?;
                    *seen |= frame.iter().any(|v| v.is_finite());
                }
                Ok::<(), GeneratorError>(())
            })
    }

    /// The clipped statistics of every pixel of the band read into `band`, in parallel over
    /// rows, into the band's rows of the maps (NaN, NaN, 0 where nothing survives).
    fn reduce(
        &self,
        band: &[f32],
        sigma: f64,
        maxiters: usize,
        (mean, scatter, count): (&mut [f64], &mut [f64], &mut [u32]),
    ) {
        let nx = self.nx;
        let n: usize = self.per_input.iter().sum();
        let plane = (self.y1 - self.y0) * nx;
        let rows_out = mean
            .par_chunks_mut(nx)
            .zip(scatter.par_chunks_mut(nx))
            .zip(count.par_chunks_mut(nx))
            .enumerate();
        rows_out.for_each_init(
            || (Vec::with_capacity(n), LaneClip::default()),
            |(cols, clip), (r, ((m_row, s_row), c_row))| {
                // The frames are the stacks' columns: LANES pixels of each at a time.
                for x0 in (0..nx).step_by(LANES) {
                    let w = LANES.min(nx - x0);
                    cols.clear();
                    cols.extend((0..n).map(|k| load(band, k * plane + r * nx + x0, w)));
                    let stats = clipped_mean_std_lanes(cols, sigma, maxiters, MeanSum::F64, clip);
                    for (j, st) in stats.iter().take(w).enumerate() {
                        (m_row[x0 + j], s_row[x0 + j], c_row[x0 + j]) = match st {
                            Some(st) => (st.mean, st.std, st.n as u32),
                            None => (f64::NAN, f64::NAN, 0),
                        };
                    }
                }
            },
        );
    }
}

/// The UNRELIABLE_BIAS threshold (UPSTREAM.md, 'UNRELIABLE_BIAS'): the clipped mean plus
/// `threshold` clipped stds of the scatter image (flattened clip, NaN left out, reference pixels
/// included as upstream). `None` when no scatter is finite.
pub fn unreliable_threshold(
    scatter: &[f64],
    sigma: f64,
    maxiters: usize,
    threshold: f64,
) -> Option<f64> {
    clipped_mean_std_flat(scatter, sigma, maxiters).map(|s| s.mean + threshold * s.std)
}

/// DQ of every pixel: [`FLAGGED`] where the scatter is not finite (nothing survived) or strictly
/// above `limit` (high side only, as upstream), 0 elsewhere.
pub fn dq_map(scatter: &[f64], limit: Option<f64>) -> Vec<u32> {
    scatter.par_iter().map(|&s| flag(s, limit)).collect()
}

/// The DQ of one pixel of scatter `s` ([`dq_map`]).
#[inline]
fn flag(s: f64, limit: Option<f64>) -> u32 {
    match limit {
        _ if !s.is_finite() => FLAGGED,
        Some(t) if s > t => FLAGGED,
        _ => 0,
    }
}

/// The three planes of the file, `(SCI, ERR, DQ)`: the clipped mean, the ERR of `err` (as
/// [`BiasMaps::error_of_mean`] or the scatter) and [`dq_map`] with `limit`, as f32, f32 and u32.
/// One parallel pass over the maps instead of a pass each plus an f64 copy of ERR.
pub fn output_planes(
    maps: &BiasMaps,
    err: ErrorKind,
    limit: Option<f64>,
) -> (Vec<f32>, Vec<f32>, Vec<u32>) {
    let len = maps.mean.len();
    let (mut sci, mut err_out, mut dq) = (zeroed_vec(len), zeroed_vec(len), zeroed_vec(len));
    let piece = maps.nx.max(1);
    sci.par_chunks_mut(piece)
        .zip(err_out.par_chunks_mut(piece))
        .zip(dq.par_chunks_mut(piece))
        .enumerate()
        .for_each(|(r, ((sci, e), dq))| {
            let at = r * piece;
            let mean = &maps.mean[at..at + sci.len()];
            let scatter = &maps.scatter[at..at + sci.len()];
            let count = &maps.count[at..at + sci.len()];
            for (i, &m) in mean.iter().enumerate() {
                let (sd, n) = (scatter[i], count[i]);
                sci[i] = m as f32;
                e[i] = match err {
                    ErrorKind::Mean if n > 0 => (sd / f64::from(n).sqrt()) as f32,
                    ErrorKind::Mean => f32::NAN,
                    ErrorKind::Scatter => sd as f32,
                };
                dq[i] = flag(sd, limit);
            }
        });
    (sci, err_out, dq)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::rng::stream;
    use mkrefs_support::stats::clipped_mean_std_f64;

    use mkrefs_support::ramps::MemoryRamp as MemRamp;

    fn ramp(seed: u64, nints: usize) -> MemRamp {
        let dims = RampDims {
            nints,
            ngroups: 3,
            ny: 9,
            nx: 270,
        };
        let mut rng = stream(seed, &[]);
        let data = (0..nints * 3 * 9 * 270)
            .map(|i| {
                let bias = 12_000.0 + (i % 270) as f64;
                (bias + 4.0 * rng.normal()).round() as f32
            })
            .collect();
        MemRamp::new(dims, data)
    }

    #[test]
    fn streaming_equals_the_per_pixel_definition() {
        for ints in [Integrations::First, Integrations::All] {
            let mut inputs: Vec<MemRamp> = (0..5).map(|s| ramp(s, 2)).collect();
            let small =
                superbias_maps(&mut inputs, ints, 3.0, 3, 2 * 10 * 270 * 4, &|_, _| {}).unwrap();
            // Only group 0 is ever read; the first integration only unless asked for all.
            for r in &inputs {
                assert!(
                    r.reads
                        .iter()
                        .all(|&(i, g)| g == 0 && (ints == Integrations::All || i == 0))
                );
            }
            let big = superbias_maps(&mut inputs, ints, 3.0, 3, usize::MAX, &|_, _| {}).unwrap();
            assert!(small.rows_per_block < 9);
            assert_eq!(
                small,
                BiasMaps {
                    rows_per_block: small.rows_per_block,
                    ..big.clone()
                }
            );
            assert_eq!(
                small.samples,
                if ints == Integrations::All { 10 } else { 5 }
            );
            let mut clip = Vec::new();
            for p in [0, 5, 270 * 4 + 100, 9 * 270 - 1] {
                let v: Vec<f64> = inputs
                    .iter()
                    .flat_map(|r| {
                        (0..ints.count(2)).map(move |i| f64::from(r.data[i * 3 * 9 * 270 + p]))
                    })
                    .collect();
                let st = clipped_mean_std_f64(&v, 3.0, 3, &mut clip).unwrap();
                assert_eq!((small.mean[p], small.scatter[p]), (st.mean, st.std));
                assert_eq!(small.count[p] as usize, st.n);
            }
        }
    }

    #[test]
    fn noisy_and_empty_pixels_are_flagged() {
        let mut inputs: Vec<MemRamp> = (0..8).map(|s| ramp(100 + s, 1)).collect();
        // Pixel 17: 20x the noise. Pixel 30: NaN in every input.
        let mut rng = stream(9, &[]);
        for r in inputs.iter_mut() {
            r.data[17] += (80.0 * rng.normal()) as f32;
            r.data[30] = f32::NAN;
        }
        let m = superbias_maps(
            &mut inputs,
            Integrations::First,
            3.0,
            3,
            usize::MAX,
            &|_, _| {},
        )
        .unwrap();
        assert!(m.mean[30].is_nan() && m.scatter[30].is_nan() && m.count[30] == 0);
        let t = unreliable_threshold(&m.scatter, 3.0, 3, 5.0).unwrap();
        let dq = dq_map(&m.scatter, Some(t));
        assert_eq!(dq[17], FLAGGED);
        assert_eq!(dq[30], FLAGGED);
        // With 8 samples the scatter of a normal pixel exceeds mean + 5 std rarely.
        let flagged = dq.iter().filter(|&&d| d != 0).count();
        assert!(flagged <= 4, "{flagged} flagged");
        assert!(m.inputs_without_finite.is_empty());
        let e = m.error_of_mean();
        assert_eq!(e[0], m.scatter[0] / f64::from(m.count[0]).sqrt());
        assert!(e[30].is_nan());
    }

    /// The planes written in one pass are the maps' definitions: the mean as f32, ERR as
    /// [`BiasMaps::error_of_mean`] or the scatter as f32, DQ as [`dq_map`].
    #[test]
    fn output_planes_are_the_maps_as_defined() {
        let mut inputs: Vec<MemRamp> = (0..4).map(|s| ramp(40 + s, 1)).collect();
        for r in inputs.iter_mut() {
            r.data[30] = f32::NAN;
        }
        inputs[0].data[17] += 500.0;
        let m = superbias_maps(
            &mut inputs,
            Integrations::First,
            3.0,
            3,
            usize::MAX,
            &|_, _| {},
        )
        .unwrap();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        let as_f32 = |v: &[f64]| v.iter().map(|&x| (x as f32).to_bits()).collect::<Vec<_>>();
        let limit = unreliable_threshold(&m.scatter, 3.0, 3, 1.0);
        for limit in [limit, None] {
            let (sci, err, dq) = output_planes(&m, ErrorKind::Mean, limit);
            assert_eq!(bits(&sci), as_f32(&m.mean));
            assert_eq!(bits(&err), as_f32(&m.error_of_mean()));
            assert_eq!(dq, dq_map(&m.scatter, limit));
            let (_, err, _) = output_planes(&m, ErrorKind::Scatter, limit);
            assert_eq!(bits(&err), as_f32(&m.scatter));
        }
    }

    #[test]
    fn nan_filled_input_is_reported() {
        let mut inputs = vec![ramp(1, 1), ramp(2, 1), ramp(3, 1)];
        inputs[2].data[..9 * 270].fill(f32::NAN);
        let m = superbias_maps(
            &mut inputs,
            Integrations::First,
            3.0,
            3,
            usize::MAX,
            &|_, _| {},
        )
        .unwrap();
        assert_eq!(m.inputs_without_finite, [2]);
    }
}
