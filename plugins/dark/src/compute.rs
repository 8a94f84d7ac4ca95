//! The streaming dark: for a band of rows and a chunk of groups, the SCI and GROUPDQ planes of
//! every integration of every input are read, groups that cannot be trusted are set to NaN
//! (from the first JUMP_DET group of the integration on, and any SATURATED or DO_NOT_USE group),
//! and each (pixel, group) cell is reduced across integrations to a sigma-clipped statistic, its
//! scatter and the number of values used (see UPSTREAM.md, 'Excluded groups' and 'Statistics').
//!
//! Memory is the band (`samples × groups × rows × nx` f32), one GROUPDQ plane per input, the
//! first-jump map of the band and the band's outputs; [`plan`] sizes rows (and, if one row of
//! every group does not fit, groups) to the budget, so it does not grow with the inputs. The
//! outputs leave through a sink, band by band, so the caller can stream them to disk.

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::row_blocks;
use mkrefs_support::dq::{DO_NOT_USE, JUMP_DET, SATURATED, UNRELIABLE_DARK};
use mkrefs_support::params::Choices;
use rayon::prelude::*;

pub use mkrefs_support::ramps::RampDims;

/// Pixels per transposed tile: the tile of `TILE × samples` values stays in L1/L2.
pub const TILE: usize = 128;

/// GROUPDQ bits that exclude a single group.
pub const EXCLUDE_GROUP: u8 = (SATURATED | DO_NOT_USE) as u8;

/// GROUPDQ bit that excludes its group and every later group of the integration.
pub const EXCLUDE_FROM_HERE: u8 = JUMP_DET as u8;

/// The 2-D DQ of a pixel with a group where no value survived: SCI is 0 there.
pub const NO_VALUE: u32 = DO_NOT_USE | UNRELIABLE_DARK;

/// The 2-D DQ of a pixel with a group of fewer than `min_good` (but some) values.
pub const FEW_VALUES: u32 = UNRELIABLE_DARK;

/// √(π/2): the large-sample ratio of the error of a median to that of a mean (normal data).
pub const MEDIAN_EFFICIENCY: f64 = 1.253_314_137_315_500_3;

/// Row bands of the SCI and GROUPDQ planes of one ramp. Implemented for FITS files (run.rs) and,
/// in tests, for arrays.
pub trait DarkSource: Send {
    /// Name used in error messages (the file path).
    fn name(&self) -> String;
    fn dims(&self) -> RampDims;
    /// Rows `y0..y1` of SCI plane `(int, group)`.
    fn read_sci(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [f32],
    ) -> Result<(), GeneratorError>;
    /// Rows `y0..y1` of GROUPDQ plane `(int, group)`.
    fn read_groupdq(
        &mut self,
        int: usize,
        group: usize,
        y0: usize,
        y1: usize,
        out: &mut [u8],
    ) -> Result<(), GeneratorError>;
}

/// The per-cell statistic written to SCI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Statistic {
    Mean,
    Median,
}

impl Statistic {
    /// The names the `statistic` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<Statistic> =
        Choices::new(&[("mean", Statistic::Mean), ("median", Statistic::Median)]);

    pub fn parse(s: &str) -> Option<Statistic> {
        Self::CHOICES.parse(s)
    }
    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

/// What ERR holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrType {
    /// The uncertainty of SCI: scatter/√n for the mean, √(π/2)·scatter/√n for the median.
    Error,
    /// The scatter (ddof 0) of the values used, as upstream.
    Scatter,
}

impl ErrType {
    /// The names the `err_type` parameter accepts; its declaration lists the same.
    pub const CHOICES: Choices<ErrType> =
        Choices::new(&[("error", ErrType::Error), ("scatter", ErrType::Scatter)]);

    pub fn parse(s: &str) -> Option<ErrType> {
        Self::CHOICES.parse(s)
    }
}

/// How integrations map to the output's integrations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputInts {
    /// One output: every integration of every input pooled (NIR, and MIRI without enough
    /// integrations for two).
    Pooled,
    /// Two outputs (MIRI): integration 0 of every input, then integrations 1.. of every input.
    FirstAndRest,
}

impl OutputInts {
    pub fn count(self) -> usize {
        match self {
            OutputInts::Pooled => 1,
            OutputInts::FirstAndRest => 2,
        }
    }

    /// The output integration integration `int` of an input contributes to.
    pub fn of(self, int: usize) -> usize {
        match self {
            OutputInts::Pooled => 0,
            OutputInts::FirstAndRest => usize::from(int > 0),
        }
    }

    /// How many values each output integration gets from inputs of these NINTS.
    pub fn samples(self, nints: &[usize]) -> Vec<usize> {
        let mut n = vec![0; self.count()];
        for &k in nints {
            for i in 0..k {
                n[self.of(i)] += 1;
            }
        }
        n
    }
}

/// Settings of one reduction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Options {
    pub statistic: Statistic,
    pub err: ErrType,
    /// `(sigma, maxiters)` of the per-cell clip, `None` for no clipping.
    pub clip: Option<(f64, usize)>,
    /// A pixel with a group of fewer values used is flagged UNRELIABLE_DARK.
    pub min_good: usize,
    pub out_ints: OutputInts,
    pub budget_bytes: usize,
}

/// One reduced cell.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cell {
    /// The statistic; NaN when `n == 0`.
    pub value: f64,
    /// Population std (ddof 0) of the values used; NaN when `n == 0`.
    pub scatter: f64,
    pub n: usize,
}

/// Batcher's odd-even merge sorting network for 16 inputs (63 compare-exchanges).
#[rustfmt::skip]
const NETWORK_16: [(usize, usize); 63] = [
    (0, 1),
    (2, 3),
    (4, 5),
    (6, 7),
    (8, 9),
    (10, 11),
    (12, 13),
    (14, 15),
    (0, 2),
    (1, 3),
    (4, 6),
    (5, 7),
    (8, 10),
    (9, 11),
    (12, 14),
    (13, 15),
    (1, 2),
    (5, 6),
    (9, 10),
    (13, 14),
    (0, 4),
    (1, 5),
    (2, 6),
    (3, 7),
    (8, 12),
    (9, 13),
    (10, 14),
    (11, 15),
    (2, 4),
    (3, 5),
    (10, 12),
    (11, 13),
    (1, 2),
    (3, 4),
    (5, 6),
    (9, 10),
    (11, 12),
    (13, 14),
    (0, 8),
    (1, 9),
    (2, 10),
    (3, 11),
    (4, 12),
    (5, 13),
    (6, 14),
    (7, 15),
    (4, 8),
    (5, 9),
    (6, 10),
    (7, 11),
    (2, 4),
    (3, 5),
    (6, 8),
    (7, 9),
    (10, 12),
    (11, 13),
    (1, 2),
    (3, 4),
    (5, 6),
    (7, 8),
    (9, 10),
    (11, 12),
    (13, 14)
];

/// Sorts finite values ascending. Up to 16 values (the usual dark: a few files × a few
/// integrations) go through a branch-free sorting network padded with +inf; comparison sorts
/// mispredict on random data and cost several times more per cell. Longer slices are sorted as
/// integer keys (the IEEE bits mapped to a total order), which std sorts faster than floats.
pub fn sort_finite(v: &mut [f32]) {
    let n = v.len();
    if n <= 16 {
        let mut a = [f32::INFINITY; 16];
        a[..n].copy_from_slice(v);
        for &(i, j) in &NETWORK_16 {
            let (x, y) = (a[i], a[j]);
            a[i] = x.min(y);
            a[j] = x.max(y);
        }
        v.copy_from_slice(&a[..n]);
    } else {
        let key = |x: f32| {
            let b = x.to_bits() as i32;
            b ^ ((((b >> 31) as u32) >> 1) as i32)
        };
        let unkey = |k: i32| f32::from_bits((k ^ ((((k >> 31) as u32) >> 1) as i32)) as u32);
        let mut keys: Vec<i32> = v.iter().map(|&x| key(x)).collect();
        keys.sort_unstable();
        for (x, &k) in v.iter_mut().zip(&keys) {
            *x = unkey(k);
        }
    }
}

fn median_sorted(s: &[f32]) -> f64 {
    let n = s.len();
    if n % 2 == 1 {
        f64::from(s[n / 2])
    } else {
        0.5 * (f64::from(s[n / 2 - 1]) + f64::from(s[n / 2]))
    }
}

/// Reduces the finite values `v` of one cell (sorting them): astropy's per-pixel sigma clip
/// (UPSTREAM.md, 'Sigma clipping': centre median, sd about the mean, inclusive bounds, at most
/// `maxiters` evaluations, final mask from the final bounds over all values), then the statistic
/// and the scatter (ddof 0) of the survivors, in f64.
///
/// Sorting once makes every kept set a contiguous range, and prefix sums of the deviations from
/// a reference value give each range's mean and sd in O(1): an iteration costs only the scan
/// for its new ends. For the ~10–100 values of a dark cell this is several times faster than
/// the general clip of the support crate, with the same kept sets (the sums are taken in another
/// order, so bounds may differ in the last bits, as the support crate's own do from astropy's).
pub fn reduce(v: &mut [f32], statistic: Statistic, clip: Option<(f64, usize)>) -> Cell {
    debug_assert!(v.iter().all(|x| x.is_finite()));
    sort_finite(v);
    reduce_sorted(v, statistic, clip)
}

/// [`reduce`] of values already sorted ascending.
pub fn reduce_sorted(v: &[f32], statistic: Statistic, clip: Option<(f64, usize)>) -> Cell {
    let n = v.len();
    if n == 0 {
        return Cell {
            value: f64::NAN,
            scatter: f64::NAN,
            n: 0,
        };
    }
    // Running sums of the deviations from the overall median (well conditioned) over the
    // current range [a, b); moving an end adds or removes single values, so an iteration costs
    // only the values it clips.
    let x_ref = median_sorted(v);
    let d = |i: usize| f64::from(v[i]) - x_ref;
    let (mut s1, mut s2) = (0.0, 0.0);
    for i in 0..n {
        let e = d(i);
        s1 += e;
        s2 += e * e;
    }
    let mean_sd = |s1: f64, s2: f64, c: usize| {
        let m = s1 / c as f64;
        (m + x_ref, (s2 / c as f64 - m * m).max(0.0).sqrt())
    };
    let (mut a, mut b) = (0, n);
    if let Some((sigma, maxiters)) = clip {
        let mut iteration = 0;
        let (lo, hi) = loop {
            let median = median_sorted(&v[a..b]);
            let (_, sd) = mean_sd(s1, s2, b - a);
            let (lo, hi) = (median - sigma * sd, median + sigma * sd);
            let mut na = a;
            while na < b && f64::from(v[na]) < lo {
                na += 1;
            }
            let mut nb = b;
            while nb > na && f64::from(v[nb - 1]) > hi {
                nb -= 1;
            }
            let kept = nb - na;
            if kept == b - a || kept == 0 {
                break (lo, hi);
            }
            for i in (a..na).chain(nb..b) {
                let e = d(i);
                s1 -= e;
                s2 -= e * e;
            }
            (a, b) = (na, nb);
            iteration += 1;
            if iteration >= maxiters.max(1) {
                break (lo, hi);
            }
        };
        // The final mask applies the last bounds to every value, not only the last survivors:
        // move both ends to the values inside [lo, hi] (usually they do not move).
        let inside = |x: f32| {
            let x = f64::from(x);
            lo <= x && x <= hi
        };
        if a == b || !inside(v[a]) {
            // Nothing of the range survives the final bounds (degenerate clip).
            (s1, s2) = (0.0, 0.0);
            let lo_i = v.partition_point(|&x| f64::from(x) < lo);
            let hi_i = v.partition_point(|&x| f64::from(x) <= hi).max(lo_i);
            (a, b) = (lo_i, hi_i);
            for i in a..b {
                let e = d(i);
                s1 += e;
                s2 += e * e;
            }
        } else {
            while a > 0 && inside(v[a - 1]) {
                a -= 1;
                let e = d(a);
                s1 += e;
                s2 += e * e;
            }
            while b < n && inside(v[b]) {
                let e = d(b);
                s1 += e;
                s2 += e * e;
                b += 1;
            }
            while b > a && !inside(v[b - 1]) {
                b -= 1;
                let e = d(b);
                s1 -= e;
                s2 -= e * e;
            }
        }
    }
    if a == b {
        return Cell {
            value: f64::NAN,
            scatter: f64::NAN,
            n: 0,
        };
    }
    let (mean, sd) = mean_sd(s1, s2, b - a);
    let value = match statistic {
        Statistic::Mean => mean,
        Statistic::Median => median_sorted(&v[a..b]),
    };
    Cell {
        value,
        scatter: sd,
        n: b - a,
    }
}

/// ERR of a cell.
pub fn err_of(cell: &Cell, statistic: Statistic, err: ErrType) -> f64 {
    if cell.n == 0 {
        return 0.0;
    }
    match err {
        ErrType::Scatter => cell.scatter,
        ErrType::Error => {
            let e = cell.scatter / (cell.n as f64).sqrt();
            match statistic {
                Statistic::Mean => e,
                Statistic::Median => MEDIAN_EFFICIENCY * e,
            }
        }
    }
}

/// Rows and groups per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub rows: usize,
    pub groups: usize,
}

/// The largest block within `budget` bytes: all groups and as many rows as fit, or, when one row
/// of every group does not fit, one row and as many groups as fit (at least one of each).
///
/// Per row and group: `samples × nx` f32 of SCI, plus `outputs × nx` of SCI, ERR (f32) and count
/// (u16) out; per row: the first-jump map (`samples × nx` u16) and one GROUPDQ row per sample.
/// Unlike upstream's `max_equivalent_groups`, the frame size multiplies (it does not divide) and
/// NINTS counts, so no frame size divides by zero and small subarrays get big blocks.
pub fn plan(
    samples: usize,
    outputs: usize,
    ngroups: usize,
    ny: usize,
    nx: usize,
    budget: usize,
) -> Plan {
    let per_row_group = nx * (samples * 4 + outputs * (4 + 4 + 2));
    let per_row = nx * samples * (2 + 1);
    let full_row = per_row + ngroups * per_row_group;
    if full_row <= budget {
        Plan {
            rows: (budget / full_row).clamp(1, ny.max(1)),
            groups: ngroups,
        }
    } else {
        Plan {
            rows: 1,
            groups: (budget.saturating_sub(per_row) / per_row_group.max(1))
                .clamp(1, ngroups.max(1)),
        }
    }
}

/// The outputs of one block for one output integration and group.
pub struct Band<'a> {
    pub out_int: usize,
    pub group: usize,
    pub y0: usize,
    pub y1: usize,
    pub sci: &'a [f32],
    pub err: &'a [f32],
    pub count: &'a [u16],
}

/// What the whole reduction found, besides the bands.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// 2-D DQ per output integration (`ny × nx`): [`NO_VALUE`], [`FEW_VALUES`] or 0.
    pub dq: Vec<Vec<u32>>,
    /// Values per cell before exclusion, per output integration.
    pub samples: Vec<usize>,
    /// Indices of inputs without one finite SCI value in what was read.
    pub inputs_without_finite: Vec<usize>,
    /// Group values excluded by JUMP_DET (the flagged group and later ones).
    pub excluded_jump: u64,
    /// Group values excluded by SATURATED or DO_NOT_USE (and not already by a jump).
    pub excluded_flags: u64,
    pub plan: Plan,
}

/// Reduces `inputs` (same `ny`, `nx` and NGROUPS, checked by the caller) block by block, calling
/// `sink` with every band of outputs (row blocks in order; within a block, groups in order and
/// output integrations in order). Reading and reducing run on `pool`; `sink` and `progress(rows,
/// ny)` (after each row block) run on the calling thread, so the sink may hold a FITS writer.
pub fn reduce_darks<S: DarkSource>(
    inputs: &mut [S],
    opts: &Options,
    pool: &rayon::ThreadPool,
    sink: &mut dyn FnMut(Band<'_>) -> Result<(), GeneratorError>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Summary, GeneratorError> {
    let Some(first) = inputs.first() else {
        return Err(GeneratorError::invalid_input(
            "dark needs at least one input ramp",
        ));
    };
    let RampDims {
        ngroups, ny, nx, ..
    } = first.dims();
    let nints: Vec<usize> = inputs.iter().map(|s| s.dims().nints).collect();
    let k_total: usize = nints.iter().sum();
    // Counts are u16 and group numbers u16 in the first-jump map.
    if k_total >= usize::from(u16::MAX) || ngroups >= usize::from(u16::MAX) {
        return Err(GeneratorError::invalid_input(format!(
            "{k_total} integrations of {ngroups} groups: dark supports fewer than 65535 of each"
        )));
    }
    let members = members(&nints, opts.out_ints);
    let plan = plan(k_total, members.len(), ngroups, ny, nx, opts.budget_bytes);
    let mut work = Work::new(inputs.len(), k_total, members.len(), plan, ny, nx);
    for (y0, y1) in row_blocks(ny, plan.rows) {
        // No jump seen yet in these rows.
        work.first_jump[..k_total * (y1 - y0) * nx].fill(u16::MAX);
        for g0 in (0..ngroups).step_by(plan.groups) {
            let block = Block {
                y0,
                y1,
                g0,
                g1: (g0 + plan.groups).min(ngroups),
                nx,
            };
            read_block(inputs, &nints, pool, &mut work, &block)?;
            for (o, ks) in members.iter().enumerate() {
                reduce_block(pool, opts, ks, &work.band, &mut work.out, &block);
                emit(o, &block, &work.out, &mut work.min_count[o], sink)?;
            }
        }
        progress(y1, ny);
    }
    Ok(work.summary(&members, opts.min_good, plan))
}

/// The global sample indices (file-major, then integration) of each output integration.
fn members(nints: &[usize], out_ints: OutputInts) -> Vec<Vec<usize>> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); out_ints.count()];
    let mut k = 0;
    for &n in nints {
        for i in 0..n {
            members[out_ints.of(i)].push(k);
            k += 1;
        }
    }
    members
}

/// Rows `y0..y1` and groups `g0..g1` of the images (`nx` columns).
struct Block {
    y0: usize,
    y1: usize,
    g0: usize,
    g1: usize,
    nx: usize,
}

impl Block {
    /// Pixels of one plane of the block.
    fn plane(&self) -> usize {
        (self.y1 - self.y0) * self.nx
    }

    fn groups(&self) -> usize {
        self.g1 - self.g0
    }
}

/// The outputs of one block for one output integration: `[group][row][x]`.
struct BlockOut {
    sci: Vec<f32>,
    err: Vec<f32>,
    count: Vec<u16>,
}

/// The buffers of the whole reduction, sized once by the plan.
struct Work {
    /// SCI values `[sample][group][row][x]` of the block, NaN where excluded.
    band: Vec<f32>,
    /// The first JUMP_DET group of each sample and pixel of the row block (u16::MAX: none yet).
    first_jump: Vec<u16>,
    /// One GROUPDQ plane of the block per input.
    dq_rows: Vec<Vec<u8>>,
    saw_finite: Vec<bool>,
    /// Values excluded per input: by a jump, by other flags.
    excluded: Vec<(u64, u64)>,
    out: BlockOut,
    /// The fewest values used in any group, per output integration and pixel.
    min_count: Vec<Vec<u16>>,
}

impl Work {
    fn new(
        n_inputs: usize,
        k_total: usize,
        n_out: usize,
        plan: Plan,
        ny: usize,
        nx: usize,
    ) -> Work {
        let (rows, gchunk) = (plan.rows, plan.groups);
        Work {
            band: vec![0f32; k_total * gchunk * rows * nx],
            first_jump: vec![0u16; k_total * rows * nx],
            dq_rows: (0..n_inputs).map(|_| vec![0u8; rows * nx]).collect(),
            saw_finite: vec![false; n_inputs],
            excluded: vec![(0u64, 0u64); n_inputs],
            out: BlockOut {
                sci: vec![0f32; gchunk * rows * nx],
                err: vec![0f32; gchunk * rows * nx],
                count: vec![0u16; gchunk * rows * nx],
            },
            min_count: vec![vec![u16::MAX; ny * nx]; n_out],
        }
    }

    fn summary(&self, members: &[Vec<usize>], min_good: usize, plan: Plan) -> Summary {
        let dq = self
            .min_count
            .iter()
            .map(|mc| {
                mc.iter()
                    .map(|&c| match c as usize {
                        0 => NO_VALUE,
                        c if c < min_good => FEW_VALUES,
                        _ => 0,
                    })
                    .collect()
            })
            .collect();
        Summary {
            dq,
            samples: members.iter().map(Vec::len).collect(),
            inputs_without_finite: self
                .saw_finite
                .iter()
                .enumerate()
                .filter(|&(_, &s)| !s)
                .map(|(i, _)| i)
                .collect(),
            excluded_jump: self.excluded.iter().map(|e| e.0).sum(),
            excluded_flags: self.excluded.iter().map(|e| e.1).sum(),
            plan,
        }
    }
}

/// Reads the block of every input into the band, in parallel over inputs (each with its own
/// readers), and sets excluded values to NaN.
fn read_block<S: DarkSource>(
    inputs: &mut [S],
    nints: &[usize],
    pool: &rayon::ThreadPool,
    work: &mut Work,
    block: &Block,
) -> Result<(), GeneratorError> {
    let (plane, gc) = (block.plane(), block.groups());
    let k_total: usize = nints.iter().sum();
    // Each input's samples are contiguous in the band and in the first-jump map.
    let mut parts = Vec::with_capacity(inputs.len());
    let (mut rest_b, mut rest_j) = (
        &mut work.band[..k_total * gc * plane],
        &mut work.first_jump[..k_total * plane],
    );
    for &n in nints {
        let (hb, tb) = rest_b.split_at_mut(n * gc * plane);
        let (hj, tj) = rest_j.split_at_mut(n * plane);
        parts.push((hb, hj));
        (rest_b, rest_j) = (tb, tj);
    }
    pool.install(|| {
        inputs
            .par_iter_mut()
            .zip(parts.into_par_iter())
            .zip(work.dq_rows.par_iter_mut())
            .zip(
                work.saw_finite
                    .par_iter_mut()
                    .zip(work.excluded.par_iter_mut()),
            )
            .try_for_each(|(((src, (sci, fj)), dqbuf), (seen, ex))| {
                read_input(src, sci, fj, &mut dqbuf[..plane], seen, ex, block)
            })
    })
}

/// [`read_block`] for one input: every integration and group of the block.
fn read_input<S: DarkSource>(
    src: &mut S,
    sci: &mut [f32],
    first_jump: &mut [u16],
    dqbuf: &mut [u8],
    seen: &mut bool,
    excluded: &mut (u64, u64),
    block: &Block,
) -> Result<(), GeneratorError> {
    let (plane, gc) = (block.plane(), block.groups());
    for i in 0..src.dims().nints {
        let fj = &mut first_jump[i * plane..(i + 1) * plane];
        for gl in 0..gc {
            let g = block.g0 + gl;
            let out = &mut sci[(i * gc + gl) * plane..(i * gc + gl + 1) * plane];
            src.read_sci(i, g, block.y0, block.y1, out)?;
            src.read_groupdq(i, g, block.y0, block.y1, dqbuf)?;
            *seen |= out.iter().any(|v| v.is_finite());
            exclude(out, dqbuf, fj, g as u16, excluded);
        }
    }
    Ok(())
}

/// Sets to NaN the values of group `g` from the first JUMP_DET group on (updating the
/// first-jump map) and those flagged SATURATED or DO_NOT_USE, counting both.
fn exclude(
    values: &mut [f32],
    groupdq: &[u8],
    first_jump: &mut [u16],
    g: u16,
    excluded: &mut (u64, u64),
) {
    for ((v, &q), f) in values.iter_mut().zip(groupdq).zip(first_jump.iter_mut()) {
        if q & EXCLUDE_FROM_HERE != 0 && *f > g {
            *f = g;
        }
        if g >= *f {
            *v = f32::NAN;
            excluded.0 += 1;
        } else if q & EXCLUDE_GROUP != 0 {
            *v = f32::NAN;
            excluded.1 += 1;
        }
    }
}

/// Reduces every cell of the block for the output integration made of samples `ks`, in
/// parallel over rows.
fn reduce_block(
    pool: &rayon::ThreadPool,
    opts: &Options,
    ks: &[usize],
    band: &[f32],
    out: &mut BlockOut,
    block: &Block,
) {
    let (plane, gc, nx) = (block.plane(), block.groups(), block.nx);
    let m = ks.len();
    pool.install(|| {
        out.sci[..gc * plane]
            .par_chunks_mut(nx)
            .zip(out.err[..gc * plane].par_chunks_mut(nx))
            .zip(out.count[..gc * plane].par_chunks_mut(nx))
            .enumerate()
            .for_each_init(
                || (vec![0f32; TILE * m.max(16)], Vec::with_capacity(m)),
                |(tile, vals), (row, ((s_row, e_row), c_row))| {
                    // row = gl * rows_in_block + r; the band holds [k][gl][r][x].
                    let at = |kg: usize, x0: usize| (kg * gc * plane) + row * nx + x0;
                    for x0 in (0..nx).step_by(TILE) {
                        let w = TILE.min(nx - x0);
                        let mut put = |j: usize, cell: Cell| {
                            s_row[x0 + j] = if cell.n == 0 { 0.0 } else { cell.value as f32 };
                            e_row[x0 + j] = err_of(&cell, opts.statistic, opts.err) as f32;
                            c_row[x0 + j] = cell.n as u16;
                        };
                        let cells = |kk: usize| ks.get(kk).map(|&kg| &band[at(kg, x0)..][..w]);
                        if m <= 16 {
                            reduce_tile_network(tile, vals, w, m, cells, opts, &mut put);
                        } else {
                            reduce_tile_sorted(tile, vals, w, m, cells, opts, &mut put);
                        }
                    }
                },
            )
    });
}

/// Up to 16 values per cell: the tile's cells are sorted together by the network, one value
/// index per row of the tile, which the compiler vectorizes across cells; excluded values
/// become +inf and sort last.
fn reduce_tile_network<'b>(
    tile: &mut [f32],
    vals: &mut Vec<f32>,
    w: usize,
    m: usize,
    cells: impl Fn(usize) -> Option<&'b [f32]>,
    opts: &Options,
    put: &mut impl FnMut(usize, Cell),
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { reduce_tile_network_avx2(tile, vals, w, m, cells, opts, put) };
    }
    reduce_tile_network_body(tile, vals, w, m, cells, opts, put)
}

/// [`reduce_tile_network`] compiled for AVX2, chosen at run time (the build targets baseline
/// x86-64): the network runs on 8 cells per instruction instead of 4. The same IEEE operations
/// in the same order, so the cells are those of the baseline code.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn reduce_tile_network_avx2<'b>(
    tile: &mut [f32],
    vals: &mut Vec<f32>,
    w: usize,
    m: usize,
    cells: impl Fn(usize) -> Option<&'b [f32]>,
    opts: &Options,
    put: &mut impl FnMut(usize, Cell),
) {
    reduce_tile_network_body(tile, vals, w, m, cells, opts, put)
}

/// [`reduce_tile_network`] for the instruction set of its caller.
#[inline(always)]
fn reduce_tile_network_body<'b>(
    tile: &mut [f32],
    vals: &mut Vec<f32>,
    w: usize,
    m: usize,
    cells: impl Fn(usize) -> Option<&'b [f32]>,
    opts: &Options,
    put: &mut impl FnMut(usize, Cell),
) {
    for kk in 0..16 {
        let dst = &mut tile[kk * TILE..kk * TILE + w];
        match cells(kk) {
            Some(src) => {
                for (d, &v) in dst.iter_mut().zip(src) {
                    *d = if v.is_finite() { v } else { f32::INFINITY };
                }
            }
            None => dst.fill(f32::INFINITY),
        }
    }
    for &(i, j) in &NETWORK_16 {
        let (lo, hi) = tile.split_at_mut(j * TILE);
        let (a, b) = (&mut lo[i * TILE..i * TILE + w], &mut hi[..w]);
        for (x, y) in a.iter_mut().zip(b.iter_mut()) {
            let (p, q) = (*x, *y);
            *x = p.min(q);
            *y = p.max(q);
        }
    }
    for j in 0..w {
        vals.clear();
        vals.extend(
            (0..m)
                .map(|kk| tile[kk * TILE + j])
                .take_while(|v| v.is_finite()),
        );
        put(j, reduce_sorted(vals, opts.statistic, opts.clip));
    }
}

/// More than 16 values per cell: the tile is transposed to one cell per row, then each cell's
/// finite values are sorted and reduced.
fn reduce_tile_sorted<'b>(
    tile: &mut [f32],
    vals: &mut Vec<f32>,
    w: usize,
    m: usize,
    cells: impl Fn(usize) -> Option<&'b [f32]>,
    opts: &Options,
    put: &mut impl FnMut(usize, Cell),
) {
    for kk in 0..m {
        let src = cells(kk).expect("one cell per member");
        for (j, &v) in src.iter().enumerate() {
            tile[j * m + kk] = v;
        }
    }
    for j in 0..w {
        vals.clear();
        vals.extend(
            tile[j * m..(j + 1) * m]
                .iter()
                .copied()
                .filter(|v| v.is_finite()),
        );
        put(j, reduce(vals, opts.statistic, opts.clip));
    }
}

/// Hands the block's outputs of output integration `o` to the sink, group by group, and keeps
/// the fewest values used per pixel.
fn emit(
    o: usize,
    block: &Block,
    out: &BlockOut,
    min_count: &mut [u16],
    sink: &mut dyn FnMut(Band<'_>) -> Result<(), GeneratorError>,
) -> Result<(), GeneratorError> {
    let plane = block.plane();
    let mc = &mut min_count[block.y0 * block.nx..block.y1 * block.nx];
    for gl in 0..block.groups() {
        let c = &out.count[gl * plane..(gl + 1) * plane];
        for (m, &c) in mc.iter_mut().zip(c) {
            *m = (*m).min(c);
        }
        sink(Band {
            out_int: o,
            group: block.g0 + gl,
            y0: block.y0,
            y1: block.y1,
            sci: &out.sci[gl * plane..(gl + 1) * plane],
            err: &out.err[gl * plane..(gl + 1) * plane],
            count: c,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_sim::rng::stream;
    use mkrefs_support::stats::clip_bounds;

    /// An in-memory ramp `[int][group][y][x]` with its GROUPDQ.
    #[derive(Clone, Debug)]
    pub struct MemoryDark {
        pub dims: RampDims,
        pub sci: Vec<f32>,
        pub groupdq: Vec<u8>,
    }

    impl MemoryDark {
        pub fn new(dims: RampDims, sci: Vec<f32>, groupdq: Vec<u8>) -> MemoryDark {
            let n = dims.nints * dims.ngroups * dims.ny * dims.nx;
            assert_eq!((sci.len(), groupdq.len()), (n, n));
            MemoryDark { dims, sci, groupdq }
        }

        /// Index of integration `i`, group `g`, pixel `p` (row-major).
        pub fn at(&self, i: usize, g: usize, p: usize) -> usize {
            let d = self.dims;
            (i * d.ngroups + g) * d.ny * d.nx + p
        }

        fn band(&self, int: usize, group: usize, y0: usize, y1: usize) -> std::ops::Range<usize> {
            let nx = self.dims.nx;
            let start = self.at(int, group, y0 * nx);
            start..start + (y1 - y0) * nx
        }
    }

    impl DarkSource for MemoryDark {
        fn name(&self) -> String {
            "memory".into()
        }
        fn dims(&self) -> RampDims {
            self.dims
        }
        fn read_sci(
            &mut self,
            int: usize,
            group: usize,
            y0: usize,
            y1: usize,
            out: &mut [f32],
        ) -> Result<(), GeneratorError> {
            out.copy_from_slice(&self.sci[self.band(int, group, y0, y1)]);
            Ok(())
        }
        fn read_groupdq(
            &mut self,
            int: usize,
            group: usize,
            y0: usize,
            y1: usize,
            out: &mut [u8],
        ) -> Result<(), GeneratorError> {
            out.copy_from_slice(&self.groupdq[self.band(int, group, y0, y1)]);
            Ok(())
        }
    }

    #[test]
    fn reduce_keeps_what_the_astropy_clip_keeps() {
        let mut rng = stream(7, &[]);
        let mut scratch = Vec::new();
        for case in 0..2000 {
            let n = 1 + case % 40;
            // Normal values with a few outliers, rounded so that ties occur.
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let x = 10.0 * rng.normal();
                    let x = if rng.uniform() < 0.1 { x * 20.0 } else { x };
                    (x * 4.0).round() as f32 / 4.0
                })
                .collect();
            let (sigma, it) = if case % 3 == 0 { (2.0, 3) } else { (3.0, 5) };
            let b = clip_bounds(&mut scratch, v.iter().map(|&x| f64::from(x)), sigma, it).unwrap();
            let kept: Vec<f64> = v
                .iter()
                .map(|&x| f64::from(x))
                .filter(|&x| b.keeps(x))
                .collect();
            let mut w = v.clone();
            let c = reduce(&mut w, Statistic::Mean, Some((sigma, it)));
            assert_eq!(c.n, kept.len(), "case {case}: {v:?}");
            let mean = kept.iter().sum::<f64>() / kept.len() as f64;
            assert!(
                (c.value - mean).abs() <= 1e-9 * mean.abs().max(1.0),
                "case {case}"
            );
            let mut w = v.clone();
            let m = reduce(&mut w, Statistic::Median, Some((sigma, it)));
            let mut k = kept.clone();
            k.sort_by(f64::total_cmp);
            let med = if k.len() % 2 == 1 {
                k[k.len() / 2]
            } else {
                0.5 * (k[k.len() / 2 - 1] + k[k.len() / 2])
            };
            assert_eq!(m.value, med, "case {case}");
            assert_eq!(m.scatter, c.scatter);
        }
    }

    #[test]
    fn reduce_edge_cases() {
        let c = reduce(&mut [], Statistic::Mean, Some((3.0, 5)));
        assert_eq!(c.n, 0);
        assert!(c.value.is_nan());
        assert_eq!(err_of(&c, Statistic::Mean, ErrType::Error), 0.0);
        let c = reduce(&mut [4.0], Statistic::Median, Some((3.0, 5)));
        assert_eq!((c.value, c.scatter, c.n), (4.0, 0.0, 1));
        // Without clipping an outlier stays; with it, it goes.
        let v = [1.0, 2.0, 1.5, 1.2, 1.8, 1.1, 1.4, 1.6, 1.3, 1.7, 100.0];
        assert_eq!(reduce(&mut v.clone(), Statistic::Mean, None).n, 11);
        let c = reduce(&mut v.clone(), Statistic::Mean, Some((3.0, 5)));
        assert_eq!(c.n, 10);
        assert!((c.value - 1.46).abs() < 1e-6, "{}", c.value);
        let e = err_of(&c, Statistic::Mean, ErrType::Error);
        assert!((e - c.scatter / 10f64.sqrt()).abs() < 1e-15);
        let em = err_of(&c, Statistic::Median, ErrType::Error);
        assert!((em / e - MEDIAN_EFFICIENCY).abs() < 1e-12);
        assert_eq!(err_of(&c, Statistic::Median, ErrType::Scatter), c.scatter);
    }

    #[test]
    fn plan_fits_the_budget_and_chunks_groups_when_a_row_does_not_fit() {
        let p = plan(10, 1, 10, 2048, 2048, 256 << 20);
        assert_eq!(p.groups, 10);
        let used = p.rows * 2048 * (10 * 3 + 10 * (10 * 4 + 10));
        assert!(used <= 256 << 20 && p.rows > 200, "{p:?}");
        assert_eq!(plan(10, 1, 10, 64, 64, usize::MAX).rows, 64);
        // 1000 integrations of 100 groups: one row of all groups is 800 MB.
        let p = plan(1000, 1, 100, 2048, 2048, 64 << 20);
        assert_eq!(p.rows, 1);
        assert!(p.groups >= 1 && p.groups < 100, "{p:?}");
        assert_eq!(plan(1000, 1, 100, 2048, 2048, 1).groups, 1);
    }

    fn dims(nints: usize) -> RampDims {
        RampDims {
            nints,
            ngroups: 5,
            ny: 7,
            nx: 300,
        }
    }

    /// A ramp of `dark` DN per group plus noise, with the given flags.
    fn ramp(seed: u64, nints: usize) -> MemoryDark {
        let d = dims(nints);
        let mut rng = stream(seed, &[]);
        let n = nints * d.ngroups * d.ny * d.nx;
        let mut sci = Vec::with_capacity(n);
        for i in 0..nints {
            for g in 0..d.ngroups {
                for p in 0..d.ny * d.nx {
                    let _ = i;
                    sci.push((3.0 * (g + 1) as f64 + 0.01 * p as f64 + rng.normal()) as f32);
                }
            }
        }
        MemoryDark::new(d, sci, vec![0; n])
    }

    type Collected = (Vec<f32>, Vec<f32>, Vec<u16>);

    fn run(inputs: &mut [MemoryDark], opts: &Options) -> (Summary, Vec<Collected>) {
        let d = inputs[0].dims;
        let plane = d.ny * d.nx;
        let n_out = opts.out_ints.count();
        let mut out: Vec<Collected> = (0..n_out)
            .map(|_| {
                (
                    vec![f32::NAN; d.ngroups * plane],
                    vec![f32::NAN; d.ngroups * plane],
                    vec![u16::MAX; d.ngroups * plane],
                )
            })
            .collect();
        let pool = mkrefs_support::budget::thread_pool(2).unwrap();
        let mut sink = |b: Band<'_>| {
            let at = b.group * plane + b.y0 * d.nx;
            let o = &mut out[b.out_int];
            o.0[at..at + b.sci.len()].copy_from_slice(b.sci);
            o.1[at..at + b.err.len()].copy_from_slice(b.err);
            o.2[at..at + b.count.len()].copy_from_slice(b.count);
            Ok(())
        };
        let s = reduce_darks(inputs, opts, &pool, &mut sink, &|_, _| {}).unwrap();
        (s, out)
    }

    fn opts() -> Options {
        Options {
            statistic: Statistic::Mean,
            err: ErrType::Error,
            clip: Some((3.0, 5)),
            min_good: 2,
            out_ints: OutputInts::Pooled,
            budget_bytes: usize::MAX,
        }
    }

    #[test]
    fn exclusions_follow_jump_saturation_and_do_not_use_flags() {
        let mut inputs: Vec<MemoryDark> = (0..3).map(|s| ramp(s, 2)).collect();
        let (p, q, r) = (10, 11, 12);
        // Pixel p: a jump at group 2 of input 1, integration 0 (and junk after it); a later
        // (irrelevant) jump flag at group 4.
        for g in 2..5 {
            let k = inputs[1].at(0, g, p);
            inputs[1].sci[k] += 5000.0;
        }
        let k = inputs[1].at(0, 2, p);
        inputs[1].groupdq[k] = JUMP_DET as u8;
        let k = inputs[1].at(0, 4, p);
        inputs[1].groupdq[k] = JUMP_DET as u8;
        // Pixel q: group 3 saturated in every integration: excluded there only.
        // Pixel r: DO_NOT_USE in group 0 of everything but input 0, integration 1.
        for inp in inputs.iter_mut() {
            for i in 0..2 {
                let k = inp.at(i, 3, q);
                inp.groupdq[k] = EXCLUDE_GROUP;
                let k = inp.at(i, 0, r);
                inp.groupdq[k] = DO_NOT_USE as u8;
            }
        }
        let k = inputs[0].at(1, 0, r);
        inputs[0].groupdq[k] = 0;
        // No clipping, so only the flags decide.
        let o = Options {
            clip: None,
            ..opts()
        };
        let (s, out) = run(&mut inputs, &o);
        let plane = 7 * 300;
        let (sci, err, cnt) = &out[0];
        let at = |g: usize, p: usize| g * plane + p;
        assert_eq!(cnt[at(0, p)], 6);
        assert_eq!(cnt[at(1, p)], 6);
        assert_eq!((cnt[at(2, p)], cnt[at(4, p)]), (5, 5));
        let mean = |g: usize, p: usize, skip: &[(usize, usize)]| {
            let mut v = Vec::new();
            for (n, inp) in inputs.iter().enumerate() {
                for i in 0..2 {
                    if !skip.contains(&(n, i)) {
                        v.push(f64::from(inp.sci[inp.at(i, g, p)]));
                    }
                }
            }
            v.iter().sum::<f64>() / v.len() as f64
        };
        assert!((f64::from(sci[at(3, p)]) - mean(3, p, &[(1, 0)])).abs() < 1e-4);
        assert_eq!(cnt[at(3, q)], 0);
        assert_eq!((sci[at(3, q)], err[at(3, q)]), (0.0, 0.0));
        assert_eq!(cnt[at(4, q)], 6);
        assert_eq!(cnt[at(0, r)], 1);
        assert_eq!(err[at(0, r)], 0.0);
        assert_eq!(s.dq[0][p], 0);
        assert_eq!(s.dq[0][q], NO_VALUE);
        assert_eq!(s.dq[0][r], FEW_VALUES);
        assert_eq!(s.dq[0].iter().filter(|&&d| d != 0).count(), 2);
        assert_eq!(s.excluded_jump, 3);
        assert_eq!(s.excluded_flags, 6 + 5);
        assert!(s.inputs_without_finite.is_empty());
    }

    #[test]
    fn small_budgets_give_the_same_result_and_miri_splits_integrations() {
        let mut inputs: Vec<MemoryDark> = vec![ramp(1, 3), ramp(2, 2), ramp(3, 1)];
        let k = inputs[0].at(1, 1, 40);
        inputs[0].groupdq[k] = JUMP_DET as u8;
        for out_ints in [OutputInts::Pooled, OutputInts::FirstAndRest] {
            let big = run(&mut inputs, &Options { out_ints, ..opts() });
            assert_eq!(big.0.plan.rows, 7);
            // One row at a time, then also two groups at a time.
            for budget in [300 * (6 * 3 + 5 * (6 * 4 + 2 * 10)), 1] {
                let small = run(
                    &mut inputs,
                    &Options {
                        out_ints,
                        budget_bytes: budget,
                        ..opts()
                    },
                );
                assert_eq!(small.0.plan.rows, 1);
                assert_eq!(small.1, big.1);
                assert_eq!(small.0.dq, big.0.dq);
            }
        }
        let (s, out) = run(
            &mut inputs,
            &Options {
                out_ints: OutputInts::FirstAndRest,
                ..opts()
            },
        );
        assert_eq!(s.samples, [3, 3]);
        assert_eq!(out.len(), 2);
        let plane = 7 * 300;
        // Output 0 = integration 0 of every input; output 1 = the rest.
        let p = 123;
        let v0: Vec<f64> = inputs
            .iter()
            .map(|r| f64::from(r.sci[r.at(0, 2, p)]))
            .collect();
        let m0 = v0.iter().sum::<f64>() / 3.0;
        assert!((f64::from(out[0].0[2 * plane + p]) - m0).abs() < 1e-4);
        let v1 = [
            inputs[0].sci[inputs[0].at(1, 2, p)],
            inputs[0].sci[inputs[0].at(2, 2, p)],
            inputs[1].sci[inputs[1].at(1, 2, p)],
        ];
        let m1 = v1.iter().map(|&v| f64::from(v)).sum::<f64>() / 3.0;
        assert!((f64::from(out[1].0[2 * plane + p]) - m1).abs() < 1e-4);
        assert_eq!(out[1].2[plane + 40], 2);
        assert_eq!(out[0].2[plane + 40], 3);
    }

    #[test]
    fn cells_of_more_and_fewer_than_16_values_reduce_alike() {
        // 18 samples take the per-cell sort, 6 the tile-wide network; both must match the
        // per-cell definition.
        for n_in in [9, 3] {
            let mut inputs: Vec<MemoryDark> = (0..n_in).map(|s| ramp(50 + s, 2)).collect();
            let k = inputs[0].at(1, 2, 77);
            inputs[0].sci[k] = f32::NAN;
            let (_, out) = run(&mut inputs, &opts());
            let plane = 7 * 300;
            for (g, p) in [(0, 0), (2, 77), (4, 2099), (3, 1000)] {
                let mut v: Vec<f32> = inputs
                    .iter()
                    .flat_map(|r| (0..2).map(move |i| r.sci[r.at(i, g, p)]))
                    .filter(|v| v.is_finite())
                    .collect();
                let c = reduce(&mut v, Statistic::Mean, Some((3.0, 5)));
                assert_eq!(out[0].0[g * plane + p], c.value as f32, "{n_in} inputs");
                assert_eq!(out[0].2[g * plane + p] as usize, c.n);
            }
        }
    }

    #[test]
    fn nan_filled_input_is_reported() {
        let mut inputs = vec![ramp(1, 1), ramp(2, 1), ramp(3, 1)];
        inputs[1].sci.fill(f32::NAN);
        let (s, out) = run(&mut inputs, &opts());
        assert_eq!(s.inputs_without_finite, [1]);
        assert_eq!(out[0].2[0], 2);
    }
}

#[cfg(test)]
mod sort_tests {
    use super::*;

    #[test]
    fn sort_finite_sorts_every_length() {
        let mut rng = mkrefs_sim::rng::stream(3, &[]);
        for n in 0..60 {
            for _ in 0..50 {
                let mut v: Vec<f32> = (0..n)
                    .map(|_| ((rng.normal() * 4.0).round() * 0.5) as f32)
                    .collect();
                v.push(-0.0);
                v.push(f32::MAX);
                let mut want = v.clone();
                want.sort_by(f32::total_cmp);
                sort_finite(&mut v);
                // -0.0 and 0.0 may swap places; compare values.
                assert!(v.iter().zip(&want).all(|(a, b)| a == b), "{v:?}");
            }
        }
    }
}
