//! Step 2 of the dark search: every integration of every exposure, band of rows by band of
//! rows, reduced to per-pixel counts, the clean-slope noise statistics and what the pixel's own
//! group differences say ([`super::differences`]).

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::budget::{row_blocks, rows_per_block};
use mkrefs_support::dq;
use mkrefs_support::fits::{ImageReader, Pixel};
use rayon::prelude::*;

use super::differences::{self, AnalysisParams, BandDiffs, DiffFindings, Windows};
use super::inputs::{Exposure, Geometry, fits_err};
use super::model::{DarkParams, IntStats};
use super::noise::NoiseSample;
use super::pixel::{CleanSlopes, JumpLimits, saturated_in_all_groups};

// Bits of the per-pixel class word.
pub(super) const B_SAT: u8 = 1;
pub(super) const B_RCPED: u8 = 2;
pub(super) const B_RCJUMP: u8 = 4;
pub(super) const B_LOWPED: u8 = 8;
pub(super) const B_MANY: u8 = 16;
pub(super) const B_HOT: u8 = 32;
pub(super) const B_RCSHAPE: u8 = 64;

/// The working memory of a band (see [`scan_bands`]).
const BAND_BYTES: usize = 6 << 20;

/// The fewest pixels of a band (unless the window is smaller): the band's median difference
/// scale is the typical pixel's.
const MIN_BAND_PIXELS: usize = 12_000;

/// What step 2 leaves per pixel, over the whole window (row-major).
pub(super) struct Counts {
    pub bits: Vec<u8>,
    pub diffs: Vec<DiffFindings>,
    pub noise: Vec<NoiseSample>,
}

/// Reads rows `y0..y1` of `plane` of an image as `T`.
pub(super) fn read_band<T: Pixel>(
    r: &mut ImageReader,
    plane: usize,
    y0: usize,
    y1: usize,
    buf: &mut Vec<T>,
) -> Result<(), GeneratorError> {
    buf.resize((y1 - y0) * r.nx(), T::default());
    r.read_rows(plane, y0, y1, buf).map_err(fits_err)
}

/// Rows `y0..y1` of integration `j` of a per-integration image (3-D; a 2-D image holds the
/// only integration).
fn read_integration(
    r: &mut ImageReader,
    j: usize,
    (y0, y1): (usize, usize),
    buf: &mut Vec<f32>,
) -> Result<(), GeneratorError> {
    let plane = if r.shape().len() == 3 { j } else { 0 };
    read_band(r, plane, y0, y1, buf)
}

/// The pedestal as the RC and low-pedestal tests see it: PEDESTAL, or for MIRI |group 2 − it|.
pub(super) fn tested_pedestal(ped: &mut [f32], g2: Option<&[f32]>) {
    if let Some(g2) = g2 {
        for (p, &g) in ped.iter_mut().zip(g2) {
            *p = (g - *p).abs();
        }
    }
}

/// Per pixel, the median slope of the science pixels of its row and output. What the refpix
/// step leaves of the readout's correlated noise (1/f banding along rows, an output's drift
/// during the integration) moves all of them together; subtracted from the clean slopes it
/// leaves the noise test each pixel's own scatter (measured on the realistic simulator: the
/// typical clean-slope variance was 15 times the white noise's without it, which hid the
/// noisy pixels).
fn common_mode(slopes: &[f32], geo: &Geometry, y0: usize, out: &mut Vec<f32>) {
    let nx = geo.nx;
    out.clear();
    out.resize(slopes.len(), 0.0);
    let mut seg: Vec<f32> = Vec::with_capacity(nx);
    for (r, (row, common)) in slopes.chunks(nx).zip(out.chunks_mut(nx)).enumerate() {
        let reference = &geo.reference[(y0 + r) * nx..][..nx];
        for cols in &geo.outputs {
            seg.clear();
            seg.extend(
                row[cols.clone()]
                    .iter()
                    .zip(&reference[cols.clone()])
                    .filter(|&(v, &is_ref)| !is_ref && v.is_finite())
                    .map(|(&v, _)| v),
            );
            if let Some(m) = differences::median_in_place(&mut seg) {
                common[cols.clone()].fill(m);
            }
        }
    }
}

/// Step 2 over bands of rows, in parallel; the bands joined in row order.
pub(super) fn scan_bands(
    exps: &[Exposure],
    stats: &[IntStats],
    geo: &Geometry,
    params: &DarkParams,
) -> Result<Counts, GeneratorError> {
    let (ny, nx) = (geo.ny, geo.nx);
    let max_ng = exps.iter().map(|e| e.ngroups).max().unwrap_or(1);
    let total: usize = exps.iter().map(|e| e.nints).sum();
    // Per pixel: the group differences of every integration (f32) and the group planes
    // of one integration (f32 SCI, u8 GROUPDQ), the counters and statistics.
    let bytes_per_row = nx * (total * max_ng * 4 + max_ng * 5 + 4 * 8 + 96);
    // A band's differences are read 3 times after they are written, so a band is small
    // enough (BAND_BYTES) for one per thread to stay in the shared cache; and at least
    // MIN_BAND_PIXELS, for the band's median difference scale.
    let rows = rows_per_block(bytes_per_row, BAND_BYTES, ny)
        .max(MIN_BAND_PIXELS.div_ceil(nx))
        .min(ny);
    let blocks: Vec<(usize, usize)> = row_blocks(ny, rows).collect();
    // Each band writes its part of the whole-window arrays directly: joining per-band vectors
    // afterwards held the findings twice (1.5 GB at 4096x4096, where the allocator keeps the
    // freed bands).
    let n = ny * nx;
    let mut counts = Counts {
        bits: vec![0; n],
        diffs: vec![DiffFindings::default(); n],
        noise: vec![NoiseSample::default(); n],
    };
    let chunk = rows * nx;
    blocks
        .par_iter()
        .zip(counts.bits.par_chunks_mut(chunk))
        .zip(counts.diffs.par_chunks_mut(chunk))
        .zip(counts.noise.par_chunks_mut(chunk))
        .map_init(
            || None,
            |ws: &mut Option<Workspace>, (((&band, bits), diffs), noise)| {
                if ws.is_none() {
                    *ws = Some(Workspace::open(exps)?);
                }
                let ws = ws.as_mut().expect("opened above");
                let mut scan =
                    BandScan::new(exps, geo, band, params, std::mem::take(&mut ws.diffs));
                scan.read(exps, stats, ws)?;
                let (band_counts, buffer) = scan.finish(params);
                ws.diffs = buffer;
                bits.copy_from_slice(&band_counts.bits);
                diffs.copy_from_slice(&band_counts.diffs);
                noise.copy_from_slice(&band_counts.noise);
                Ok(())
            },
        )
        .collect::<Result<(), GeneratorError>>()?;
    Ok(counts)
}

/// What a thread keeps from band to band: the open readers of every exposure, one
/// integration's planes and the band's difference buffer (made anew for every band, they were
/// 7 file opens per exposure and a band's worth of fresh pages each time).
struct Workspace {
    readers: Vec<Readers>,
    planes: Planes,
    diffs: Vec<f32>,
}

impl Workspace {
    fn open(exps: &[Exposure]) -> Result<Workspace, GeneratorError> {
        Ok(Workspace {
            readers: exps.iter().map(Readers::open).collect::<Result<_, _>>()?,
            planes: Planes::default(),
            diffs: Vec::new(),
        })
    }
}

/// The images of one exposure the scan reads.
struct Readers {
    slope: ImageReader,
    err: ImageReader,
    var_poisson: Option<ImageReader>,
    ped: ImageReader,
    gdq: ImageReader,
    sci: ImageReader,
    /// MIRI's raw ramp (its second group), and a NIR exposure's (its first group).
    g2: Option<ImageReader>,
    raw: Option<ImageReader>,
}

impl Readers {
    fn open(e: &Exposure) -> Result<Readers, GeneratorError> {
        let open =
            |path: &std::path::Path, hdu: &str| ImageReader::open(path, hdu).map_err(fits_err);
        Ok(Readers {
            slope: open(&e.slopes, "SCI")?,
            err: open(&e.slopes, "ERR")?,
            var_poisson: if e.var_poisson {
                Some(open(&e.slopes, "VAR_POISSON")?)
            } else {
                None
            },
            ped: open(&e.fitopt, "PEDESTAL")?,
            gdq: open(&e.jump, "GROUPDQ")?,
            sci: open(&e.jump, "SCI")?,
            g2: match &e.uncal {
                Some(u) => Some(open(u, "SCI")?),
                None => None,
            },
            raw: match &e.raw {
                Some((u, _)) => Some(open(u, "SCI")?),
                None => None,
            },
        })
    }
}

/// Per-pixel accumulators of one band of rows.
struct BandScan<'a> {
    geo: &'a Geometry,
    limits: JumpLimits,
    y0: usize,
    y1: usize,
    /// Pixels in the band.
    m: usize,
    total: usize,
    /// Group differences per integration (the longest ramp's).
    ndiff: usize,
    sat: Vec<u16>,
    rcped: Vec<u16>,
    lowped: Vec<u16>,
    hot: Vec<u16>,
    finite: Vec<u16>,
    clean: Vec<CleanSlopes>,
    /// `diffs[(t * ndiff + k) * m + i]`: integration t, group k+1 − group k, pixel i
    /// ([`BandDiffs`]).
    diffs: Vec<f32>,
    /// Per pixel, the OR of one integration's group flags (scratch).
    any_gdq: Vec<u8>,
}

/// The planes of one integration for the band.
#[derive(Default)]
struct Planes {
    slope: Vec<f32>,
    err: Vec<f32>,
    var_poisson: Vec<f32>,
    ped: Vec<f32>,
    g2: Vec<f32>,
    gdq: Vec<u8>,
    sci: Vec<f32>,
    /// The raw first group (NIR with its uncal file), else empty.
    raw0: Vec<f32>,
    /// Per pixel, the median slope of its row and output (see [`common_mode`]).
    common: Vec<f32>,
}

impl<'a> BandScan<'a> {
    /// A band's accumulators; `diffs` is a buffer to reuse.
    fn new(
        exps: &[Exposure],
        geo: &'a Geometry,
        (y0, y1): (usize, usize),
        p: &DarkParams,
        mut diffs: Vec<f32>,
    ) -> Self {
        let m = (y1 - y0) * geo.nx;
        let total: usize = exps.iter().map(|e| e.nints).sum();
        let ndiff = exps.iter().map(|e| e.ngroups).max().unwrap_or(1) - 1;
        let zeros = || vec![0u16; m];
        diffs.clear();
        diffs.resize(m * total * ndiff, f32::NAN);
        BandScan {
            geo,
            limits: JumpLimits {
                max_jump_limit: p.max_jump_limit,
                jump_ratio_threshold: p.jump_ratio_threshold,
                early_cutoff_fraction: p.early_cutoff_fraction,
            },
            y0,
            y1,
            m,
            total,
            ndiff,
            sat: zeros(),
            rcped: zeros(),
            lowped: zeros(),
            hot: zeros(),
            finite: zeros(),
            clean: vec![CleanSlopes::default(); m],
            diffs,
            any_gdq: vec![0; m],
        }
    }

    /// Reads every integration of every exposure for the band.
    fn read(
        &mut self,
        exps: &[Exposure],
        stats: &[IntStats],
        ws: &mut Workspace,
    ) -> Result<(), GeneratorError> {
        let (y0, y1, m) = (self.y0, self.y1, self.m);
        let planes = &mut ws.planes;
        let mut t = 0;
        for (e, r) in exps.iter().zip(&mut ws.readers) {
            let ng = e.ngroups;
            for j in 0..e.nints {
                read_integration(&mut r.slope, j, (y0, y1), &mut planes.slope)?;
                read_integration(&mut r.err, j, (y0, y1), &mut planes.err)?;
                match r.var_poisson.as_mut() {
                    Some(vp) => read_integration(vp, j, (y0, y1), &mut planes.var_poisson)?,
                    None => {
                        planes.var_poisson.clear();
                        planes.var_poisson.resize(m, f32::NAN);
                    }
                }
                read_integration(&mut r.ped, j, (y0, y1), &mut planes.ped)?;
                if let Some(g2) = r.g2.as_mut() {
                    read_band(g2, j * e.uncal_ngroups + 1, y0, y1, &mut planes.g2)?;
                }
                tested_pedestal(&mut planes.ped, r.g2.as_ref().map(|_| planes.g2.as_slice()));
                match (r.raw.as_mut(), &e.raw) {
                    (Some(raw), Some((_, raw_ng))) => {
                        read_band(raw, j * raw_ng, y0, y1, &mut planes.raw0)?
                    }
                    _ => planes.raw0.clear(),
                }
                common_mode(&planes.slope, self.geo, y0, &mut planes.common);
                planes.gdq.resize(ng * m, 0);
                planes.sci.resize(ng * m, 0.0);
                for g in 0..ng {
                    let part = g * m..(g + 1) * m;
                    r.gdq
                        .read_rows(j * ng + g, y0, y1, &mut planes.gdq[part.clone()])
                        .map_err(fits_err)?;
                    r.sci
                        .read_rows(j * ng + g, y0, y1, &mut planes.sci[part])
                        .map_err(fits_err)?;
                }
                self.add_integration(planes, ng, t, stats[t]);
                t += 1;
            }
        }
        Ok(())
    }

    /// Counts integration `t` (of `ng` groups) into the accumulators.
    fn add_integration(&mut self, p: &Planes, ng: usize, t: usize, st: IntStats) {
        let m = self.m;
        self.add_differences(p, ng, t);
        self.any_gdq.fill(0);
        for g in 0..ng {
            for (any, &f) in self.any_gdq.iter_mut().zip(&p.gdq[g * m..(g + 1) * m]) {
                *any |= f;
            }
        }
        for i in 0..m {
            if self.geo.reference[self.y0 * self.geo.nx + i] {
                continue;
            }
            // The saturation step also flags the 8 neighbours of a saturated pixel (jwst's
            // n_pix_grow_sat = 1): a pixel is saturated of its own only if its raw first group
            // is far above the others' (a superbias made from the same darks leaves nothing of
            // it in the calibrated ramp). Without the raw ramp: the calibrated first group
            // (MIRI's keeps the bias, so there the flag decides).
            let own = match (st.raw_hi, p.raw0.get(i)) {
                (Some(hi), Some(&raw)) => f64::from(raw) > hi,
                _ => self.geo.miri || f64::from(p.sci[i]) > st.ped_hi,
            };
            let all_sat = saturated_in_all_groups(p.gdq[i]) && own;
            if all_sat {
                self.sat[i] += 1;
            }
            let ped = f64::from(p.ped[i]);
            if !all_sat && ped.is_finite() {
                self.rcped[i] += u16::from(ped > st.ped_hi);
                self.lowped[i] += u16::from(ped < st.ped_lo);
            }
            // Clean: no group flagged JUMP_DET (the jump patterns are counted on the own jumps
            // in `finish`, not on these flags).
            let clean = u32::from(self.any_gdq[i]) & dq::JUMP_DET == 0;
            let s = f64::from(p.slope[i]);
            if s.is_finite() {
                self.finite[i] += 1;
                self.hot[i] += u16::from(s >= st.hot);
                if clean {
                    self.clean[i].push_with_poisson(
                        s - f64::from(p.common[i]),
                        f64::from(p.err[i]),
                        f64::from(p.var_poisson[i]),
                    );
                }
            }
        }
    }

    /// The group differences of integration `t`, NaN where either group is saturated or
    /// DO_NOT_USE (a shorter ramp leaves its last differences NaN).
    fn add_differences(&mut self, p: &Planes, ng: usize, t: usize) {
        let (m, nd) = (self.m, self.ndiff);
        let unusable = (dq::SATURATED | dq::DO_NOT_USE) as u8;
        for k in 0..ng.saturating_sub(1).min(nd) {
            let out = &mut self.diffs[(t * nd + k) * m..][..m];
            let (g0, g1) = (&p.gdq[k * m..][..m], &p.gdq[(k + 1) * m..][..m]);
            let (s0, s1) = (&p.sci[k * m..][..m], &p.sci[(k + 1) * m..][..m]);
            for (o, ((&a, &b), (&f0, &f1))) in
                out.iter_mut().zip(s0.iter().zip(s1).zip(g0.iter().zip(g1)))
            {
                let usable = (f0 | f1) & unusable == 0;
                *o = if usable { b - a } else { f32::NAN };
            }
        }
    }

    /// The band's group differences.
    fn band(&self) -> BandDiffs<'_> {
        BandDiffs {
            d: &self.diffs,
            m: self.m,
            ndiff: self.ndiff,
        }
    }

    /// The reference-pixel flags of the band.
    fn skip(&self) -> &[bool] {
        let nx = self.geo.nx;
        &self.geo.reference[self.y0 * nx..self.y1 * nx]
    }

    /// Every pixel's difference scale (NaN on reference pixels), and their median over the
    /// band's science pixels (some 10,000 or more: as good as the detector's, and the bands stay
    /// independent).
    fn scales(&self) -> (Vec<f32>, f64) {
        let scales = differences::band_scales(&self.band(), self.skip());
        let mut finite: Vec<f32> = scales.iter().copied().filter(|v| v.is_finite()).collect();
        let median = differences::median_in_place(&mut finite).map_or(0.0, f64::from);
        (scales, median)
    }

    /// The class word, the difference findings and the noise statistics of every pixel, and
    /// the difference buffer back for the next band.
    fn finish(self, p: &DarkParams) -> (Counts, Vec<f32>) {
        let (m, nd, total) = (self.m, self.ndiff, self.total);
        let nf = total as f64;
        let frac = |c: u16| f64::from(c) / nf;
        let (scales, floor) = self.scales();
        let ap = AnalysisParams {
            windows: Windows::from_groups(self.limits.windows(nd + 1), nd),
            transient_sigma: p.pedestal_sigma_threshold,
            limits: self.limits,
        };
        let findings = differences::analyse_band(&self.band(), &scales, floor, self.skip(), &ap);
        let mut out = Counts {
            bits: vec![0; m],
            diffs: findings,
            noise: vec![NoiseSample::default(); m],
        };
        for i in 0..m {
            if self.geo.reference[self.y0 * self.geo.nx + i] {
                continue;
            }
            let f = out.diffs[i];
            let flag = |on: bool, b: u8| if on { b } else { 0 };
            let hot_frac = f64::from(self.hot[i]) / f64::from(self.finite[i].max(1));
            out.bits[i] = flag(frac(self.sat[i]) >= p.max_saturated_fraction, B_SAT)
                | flag(frac(self.rcped[i]) > p.rc_fraction_threshold, B_RCPED)
                | flag(
                    f64::from(f.rc_jump_ints) / nf > p.rc_fraction_threshold,
                    B_RCJUMP,
                )
                | flag(
                    f64::from(f.transients) / nf > p.rc_fraction_threshold,
                    B_RCSHAPE,
                )
                | flag(frac(self.lowped[i]) > p.low_pedestal_fraction, B_LOWPED)
                | flag(f64::from(f.many_ints) / nf > p.high_cr_fraction, B_MANY)
                | flag(
                    self.finite[i] > 0 && hot_frac >= p.hot_fraction_threshold,
                    B_HOT,
                );
            out.noise[i] = self.clean[i].sample();
        }
        (out, self.diffs)
    }
}
