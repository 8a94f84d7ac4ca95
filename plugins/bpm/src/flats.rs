//! Bad pixels from flats (see UPSTREAM.md, 'Flats: reading' to 'Combining the flat maps'): the
//! per-pixel mean and scatter of the flat slopes, the normalised mean image, and from it DEAD,
//! LOW_QE, OPEN and ADJ_OPEN.
//!
//! Everything here works on plain row-major `f64` images of the *science region* (reference
//! pixels stripped), so it can be tested on the small arrays of upstream's tests;
//! reading files and the geometry are in [`crate::inputs`], the job flow in `run`.
//!
//! Deliberate differences from jwst_reffiles 1.0.1 (also in the generator's description):
//! - the first flat is counted once, not twice;
//! - an OPEN pixel on the first science row or column gets its ADJ_OPEN neighbours;
//! - in `sigma_rate` mode a pixel found LOW_QE or OPEN is not also DEAD;
//! - NIRCam's per-detector default dead threshold for `normalization: none` is looked up as
//!   intended (upstream always returns 25);
//! - arithmetic is f64 throughout (upstream: f32 for `smoothed`), Box2D smoothing always uses
//!   the NaN-interpolating form (the two upstream paths differ by ~1e-15), ±inf counts as missing
//!   like NaN, and the median filter ignores NaN (scipy leaves NaN ordering undefined);
//! - Box2D smoothing averages only pixels inside the image near its edges ([`BoxEdges`]).

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::dq;
use mkrefs_support::lanes::{LANES, LaneClip, MeanSum, clipped_mean_std_lanes, load};
use mkrefs_support::params::Choices;
use mkrefs_support::stats::numpy_sum;
use rayon::prelude::*;

/// How the mean image is normalised before the searches (UPSTREAM.md, 'Normalisation').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Normalization {
    /// Divide by a smoothed copy of itself (Box2D or median filter).
    Smoothed,
    /// Divide by the clipped mean of the whole image.
    Mean,
    /// No normalisation (thresholds then are in DN/s).
    None,
}

impl Normalization {
    /// Case-insensitive, as upstream. `fit2d` is documented upstream but not implemented there
    /// either; it gets its own message.
    pub fn parse(s: &str) -> Result<Normalization, String> {
        if let Some(n) = Self::CHOICES.parse(s) {
            return Ok(n);
        }
        if s.trim().eq_ignore_ascii_case("fit2d") {
            return Err(format!(
                "flat_mean_normalization_method 'fit2d' is documented by jwst_reffiles but not \
                 implemented there (nor here); use {}",
                Self::CHOICES.listed()
            ));
        }
        Err(format!(
            "flat_mean_normalization_method must be {}, got '{s}'",
            Self::CHOICES.listed()
        ))
    }

    /// The names `flat_mean_normalization_method` accepts; its declaration lists the same.
    pub const CHOICES: Choices<Normalization> = Choices::new(&[
        ("smoothed", Normalization::Smoothed),
        ("mean", Normalization::Mean),
        ("none", Normalization::None),
    ]);

    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

/// The smoothing filter of `smoothed` normalisation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmoothingType {
    Box2D,
    Median,
}

impl SmoothingType {
    /// `box2d` or `median`, case-insensitively. Upstream selects the median filter only for the
    /// exact string 'Median' and silently uses Box2D for anything else (including the 'median'
    /// its documentation shows); here both spellings work and anything else is an error.
    pub fn parse(s: &str) -> Result<SmoothingType, String> {
        Self::CHOICES.parse(s).ok_or_else(|| {
            format!(
                "smoothing_type must be {}, got '{s}'",
                Self::CHOICES.listed()
            )
        })
    }

    /// The names `smoothing_type` accepts; its declaration lists the same.
    pub const CHOICES: Choices<SmoothingType> = Choices::new(&[
        ("Box2D", SmoothingType::Box2D),
        ("Median", SmoothingType::Median),
    ]);

    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

/// How DEAD pixels are found (UPSTREAM.md, 'Dead pixels').
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadSearchType {
    /// Below the clipped mean minus `dead_sigma_threshold` clipped stds of the normalised image.
    SigmaRate,
    /// Below `max_dead_norm_signal`.
    AbsoluteRate,
}

impl DeadSearchType {
    pub fn parse(s: &str) -> Result<DeadSearchType, String> {
        Self::CHOICES.parse(s).ok_or_else(|| {
            format!(
                "dead_search_type must be {}, got '{s}'",
                Self::CHOICES.listed()
            )
        })
    }

    /// The names `dead_search_type` accepts; its declaration lists the same.
    pub const CHOICES: Choices<DeadSearchType> = Choices::new(&[
        ("sigma_rate", DeadSearchType::SigmaRate),
        ("absolute_rate", DeadSearchType::AbsoluteRate),
    ]);

    pub fn name(self) -> &'static str {
        Self::CHOICES.name(self)
    }
}

/// The clipped per-pixel mean and population std of a stack of slope planes (UPSTREAM.md, 'Flats:
/// mean and scatter'): astropy's per-pixel sigma clip (median centre, maxiters 5, inclusive bounds,
/// final mask from the last bounds) and the mean/std of the kept values. `planes` are row-major
/// images of `npix` pixels each; a pixel without a finite value gets NaN. Each plane counts once
/// (upstream counts the first file twice).
pub fn mean_stdev_images(planes: &[&[f32]], npix: usize, sigma: f64) -> (Vec<f64>, Vec<f64>) {
    let mut mean = vec![f64::NAN; npix];
    let mut std = vec![f64::NAN; npix];
    mean_stdev_into(planes, 0, sigma, &mut mean, &mut std);
    (mean, std)
}

/// Astropy's default number of clipping iterations, which upstream's `sigma_clip` calls use.
pub const MAX_CLIP_ITERS: usize = 5;

/// [`mean_stdev_images`] for the pixels `offset..offset + mean.len()` of the planes, written into
/// `mean` and `std`; parallel over chunks of pixels.
pub fn mean_stdev_into(
    planes: &[&[f32]],
    offset: usize,
    sigma: f64,
    mean: &mut [f64],
    std: &mut [f64],
) {
    const CHUNK: usize = 4096;
    mean.par_chunks_mut(CHUNK)
        .zip(std.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(c, (m, s))| {
            // The planes are the stacks' columns: LANES pixels of each at a time.
            let mut cols = Vec::with_capacity(planes.len());
            let mut clip = LaneClip::default();
            for k0 in (0..m.len()).step_by(LANES) {
                let w = LANES.min(m.len() - k0);
                let p0 = offset + c * CHUNK + k0;
                cols.clear();
                cols.extend(planes.iter().map(|plane| load(plane, p0, w)));
                let stats =
                    clipped_mean_std_lanes(&cols, sigma, MAX_CLIP_ITERS, MeanSum::F32, &mut clip);
                for (j, st) in stats.iter().take(w).enumerate() {
                    (m[k0 + j], s[k0 + j]) =
                        st.map_or((f64::NAN, f64::NAN), |st| (st.mean, st.std));
                }
            }
        });
}

/// Clipped mean and population std of all finite values of an image (UPSTREAM.md, 'Statistics of
/// the normalised image'; astropy's `axis=None` path): up to 5 rounds of median ∓ sigma·std with
/// inclusive bounds, clipped values gone for good, stopping when nothing changes. `None` when no
/// value is finite.
pub fn image_stats(img: &[f64], sigma: f64) -> Option<(f64, f64)> {
    let mut values: Vec<f64> = img.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return None;
    }
    let mut work = Vec::with_capacity(values.len());
    for _ in 0..MAX_CLIP_ITERS {
        work.clear();
        work.extend_from_slice(&values);
        let med = median(&mut work);
        let (_, sd) = mean_std(&values);
        let (lo, hi) = (med - sigma * sd, med + sigma * sd);
        let before = values.len();
        values.retain(|&v| v >= lo && v <= hi);
        if values.len() == before || values.is_empty() {
            break;
        }
    }
    if values.is_empty() {
        return None;
    }
    Some(mean_std(&values))
}

/// Mean and population std (ddof 0) with numpy's pairwise sums.
fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = numpy_sum(v) / n;
    let dev: Vec<f64> = v.iter().map(|x| (x - mean) * (x - mean)).collect();
    (mean, (numpy_sum(&dev) / n).sqrt())
}

/// Median of NaN-free values (even count: mean of the two middle ones); permutes `v`.
fn median(v: &mut [f64]) -> f64 {
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    let (left, &mut upper, _) = v.select_nth_unstable_by(n / 2, f64::total_cmp);
    if n % 2 == 1 {
        upper
    } else {
        let lower = left.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        0.5 * (lower + upper)
    }
}

/// The median of the non-NaN values, NaN if there are none.
pub fn nanmedian(img: &[f64]) -> f64 {
    let mut v: Vec<f64> = img.iter().copied().filter(|x| !x.is_nan()).collect();
    median(&mut v)
}

/// The 1-D profile of astropy's `Box2DKernel(width)`: an odd integer width gives `width` equal
/// weights `1/width`; any other width gives the next odd size above it with half weights at the
/// ends (`[0.5, 1, …, 1, 0.5] / width`). Its outer product with itself is the 2-D kernel.
pub fn box_profile(width: f64) -> Vec<f64> {
    let is_odd_int = width.fract() == 0.0 && (width as i64) % 2 == 1;
    if is_odd_int {
        let k = width as usize;
        vec![1.0 / width; k]
    } else {
        // astropy: size = next odd integer above width; edges weighted by the fractional part
        // covered, which for an even integer width is one half.
        let k = {
            let c = width.ceil() as usize;
            if c % 2 == 1 { c } else { c + 1 }
        };
        let half_extra = (width - (k as f64 - 2.0)) / 2.0;
        let mut p = vec![1.0 / width; k];
        p[0] = half_extra / width;
        p[k - 1] = half_extra / width;
        p
    }
}

/// One separable pass along rows (`along_x`) or columns of a canvas padded by `r = profile.len()
/// / 2` on every side, in place, where the result is needed: the row pass on the columns
/// `r..nx - r` of every row (the column pass reads the padding rows), the column pass on those
/// columns of the rows `r..ny - r`; the rest is left as it was and never read. Each output is
/// the sum of `profile[j]` times the input at offset `j - r`, accumulated in the order of `j`
/// (as a plain loop per pixel would), done profile weight by weight over a whole row so that it
/// vectorises.
fn convolve_1d(data: &mut [f64], ny: usize, nx: usize, profile: &[f64], along_x: bool) {
    let r = profile.len() / 2;
    if nx < 2 * r || ny < 2 * r {
        return;
    }
    let cols = r..nx - r;
    if along_x {
        data.par_chunks_mut(nx).for_each(|row| {
            let src = row.to_vec();
            let out = &mut row[cols.clone()];
            out.fill(0.0);
            for (j, &w) in profile.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&src[j..]) {
                    *o += w * v;
                }
            }
        });
    } else {
        let src = data.to_vec();
        data.par_chunks_mut(nx)
            .enumerate()
            .skip(r)
            .take(ny - 2 * r)
            .for_each(|(y, row)| {
                let out = &mut row[cols.clone()];
                out.fill(0.0);
                for (j, &w) in profile.iter().enumerate() {
                    let line = &src[(y + j - r) * nx..][..nx];
                    for (o, &v) in out.iter_mut().zip(&line[cols.clone()]) {
                        *o += w * v;
                    }
                }
            });
    }
}

/// How Box2D smoothing treats the window positions outside the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoxEdges {
    /// astropy's `boundary='fill'` with the image's nanmedian, as upstream: near the edges the
    /// smoothed value is pulled towards the median, so where the illumination is not flat the
    /// edge pixels are normalised by a biased value (upstream flagged clean corner pixels DEAD).
    FillMedian,
    /// Only pixels inside the image count: the window is renormalised to the valid pixels it
    /// covers, so an edge pixel is compared with its own neighbourhood. What the generator uses.
    Inside,
}

/// Box2D smoothing with the edges of the generator ([`BoxEdges::Inside`]).
pub fn smooth_box2d(img: &[f64], ny: usize, nx: usize, width: f64) -> Vec<f64> {
    smooth_box2d_with(img, ny, nx, width, BoxEdges::Inside)
}

/// astropy `convolve(img, Box2DKernel(width), boundary='fill', fill_value=nanmedian(img),
/// nan_treatment='interpolate')` for [`BoxEdges::FillMedian`]: per pixel, the weighted
/// sum of the valid (finite) values in the window, where positions outside the image count as
/// valid with the fill value, divided by the sum of the weights of the valid positions. A window
/// without valid values gives NaN. [`BoxEdges::Inside`] counts outside positions as invalid.
///
/// Computed as two separable passes (rows, then columns) over `valid·value` and `valid`. astropy
/// uses this form only when the image has a NaN and Σw·v/Σw otherwise; the results differ by
/// ~1e-15 relative.
pub fn smooth_box2d_with(
    img: &[f64],
    ny: usize,
    nx: usize,
    width: f64,
    edges: BoxEdges,
) -> Vec<f64> {
    let profile = box_profile(width);
    let r = profile.len() / 2;
    // Embed in a canvas padded with the fill value; padding is valid unless the fill is NaN.
    let (cy, cx) = (ny + 2 * r, nx + 2 * r);
    let fill = match edges {
        BoxEdges::FillMedian => nanmedian(
            &img.iter()
                .map(|&v| if v.is_finite() { v } else { f64::NAN })
                .collect::<Vec<_>>(),
        ),
        BoxEdges::Inside => f64::NAN,
    };
    let fill_ok = fill.is_finite();
    let mut top = vec![if fill_ok { fill } else { 0.0 }; cy * cx];
    let mut bot = vec![if fill_ok { 1.0 } else { 0.0 }; cy * cx];
    for y in 0..ny {
        for x in 0..nx {
            let v = img[y * nx + x];
            let c = (y + r) * cx + x + r;
            if v.is_finite() {
                top[c] = v;
                bot[c] = 1.0;
            } else {
                top[c] = 0.0;
                bot[c] = 0.0;
            }
        }
    }
    for buf in [&mut top, &mut bot] {
        convolve_1d(buf, cy, cx, &profile, true);
        convolve_1d(buf, cy, cx, &profile, false);
    }
    let mut out = vec![f64::NAN; ny * nx];
    out.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
        for (x, o) in row.iter_mut().enumerate() {
            let c = (y + r) * cx + x + r;
            *o = if bot[c] > 0.0 {
                top[c] / bot[c]
            } else {
                f64::NAN
            };
        }
    });
    out
}

/// scipy `median_filter(img, size=width)` with `mode='reflect'` (`d c b a | a b c d | d c b a`)
/// and origin 0 (an even width spans offsets `-w/2 … w/2-1`). NaN values are left out of the
/// window's median (scipy's NaN ordering is undefined); a window of NaNs gives NaN.
pub fn smooth_median(img: &[f64], ny: usize, nx: usize, width: usize) -> Vec<f64> {
    let w = width.max(1) as isize;
    let lo = -(w / 2);
    let reflect = |i: isize, n: usize| -> usize {
        let n = n as isize;
        let period = 2 * n;
        let mut m = i.rem_euclid(period);
        if m >= n {
            m = period - 1 - m;
        }
        m as usize
    };
    let mut out = vec![f64::NAN; ny * nx];
    out.par_chunks_mut(nx).enumerate().for_each(|(y, row)| {
        let mut win = Vec::with_capacity((w * w) as usize);
        for (x, o) in row.iter_mut().enumerate() {
            win.clear();
            for dy in lo..lo + w {
                let yy = reflect(y as isize + dy, ny);
                for dx in lo..lo + w {
                    let xx = reflect(x as isize + dx, nx);
                    let v = img[yy * nx + xx];
                    if !v.is_nan() {
                        win.push(v);
                    }
                }
            }
            *o = median(&mut win);
        }
    });
    out
}

/// The normalisation image (same size as `mean`), and the normalised image
/// `mean / normalisation` (no guarding: 0/0 is NaN, x/0 is ±inf).
pub fn normalize(
    mean: &[f64],
    ny: usize,
    nx: usize,
    method: Normalization,
    smoothing: SmoothingType,
    box_width: f64,
) -> (Vec<f64>, Vec<f64>) {
    let norm_img = match method {
        Normalization::Smoothed => match smoothing {
            SmoothingType::Box2D => smooth_box2d(mean, ny, nx, box_width),
            SmoothingType::Median => smooth_median(mean, ny, nx, box_width.round() as usize),
        },
        Normalization::Mean => {
            // Upstream hard-codes sigma 3 here rather than using flat_mean_sigma_threshold.
            let mu = image_stats(mean, 3.0).map_or(f64::NAN, |s| s.0);
            vec![mu; mean.len()]
        }
        Normalization::None => vec![1.0; mean.len()],
    };
    let normalized = mean.iter().zip(&norm_img).map(|(m, s)| m / s).collect();
    (norm_img, normalized)
}

/// The default `max_dead_norm_signal` (UPSTREAM.md, 'Dead pixels'): for NIRCam with `normalization:
/// none` (thresholds in DN/s) the per-detector values upstream meant (its lookup always returned
/// the first, 25); otherwise 0.05 of the normalised signal.
pub fn default_max_dead(instrument: &str, detector: &str, norm: Normalization) -> f64 {
    if instrument.eq_ignore_ascii_case("NIRCAM") && norm == Normalization::None {
        match detector.trim().to_ascii_uppercase().as_str() {
            "NRCA3" | "NRCA4" => 30.0,
            "NRCALONG" | "NRCA5" => 40.0,
            "NRCBLONG" | "NRCB5" => 50.0,
            _ => 25.0,
        }
    } else {
        0.05
    }
}

/// `sigma_rate`: `v < mean − k·std` of the clipped normalised image (strict; NaN never dead).
pub fn dead_pixels_sigma_rate(normalized: &[f64], mean: f64, std: f64, k: f64) -> Vec<bool> {
    let t = mean - k * std;
    normalized.iter().map(|&v| v < t).collect()
}

/// `absolute_rate`: `v < max_dead` (strict; NaN never dead).
pub fn dead_pixels_absolute_rate(normalized: &[f64], max_dead: f64) -> Vec<bool> {
    normalized.iter().map(|&v| v < max_dead).collect()
}

/// The LOW_QE, OPEN and ADJ_OPEN maps (UPSTREAM.md, 'LOW_QE, OPEN and ADJ_OPEN').
#[derive(Clone, Debug, PartialEq)]
pub struct OpenLowQe {
    pub low_qe: Vec<bool>,
    pub open: Vec<bool>,
    pub adj_open: Vec<bool>,
}

/// Which neighbours of an OPEN pixel get ADJ_OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdjOpen {
    /// The 4 direct neighbours, the ones whose excess the OPEN test requires.
    Four,
    /// The 3×3 box, as upstream paints it.
    Eight,
}

/// Candidates are pixels with `d <= v < q`, visited in row-major order; one whose existing 4
/// neighbours are all `> a` (strict; a NaN neighbour fails) is OPEN and its neighbours (see
/// [`AdjOpen`]; clipped at every edge of the image) get ADJ_OPEN, the pixel itself not; the
/// others are LOW_QE. Upstream's box for an OPEN pixel in row 0 or column 0 is empty (a negative
/// Python slice start); here it is clipped like the other edges.
pub fn open_and_low_qe(
    normalized: &[f64],
    ny: usize,
    nx: usize,
    d: f64,
    q: f64,
    a: f64,
    adj: AdjOpen,
) -> OpenLowQe {
    let n = ny * nx;
    let mut m = OpenLowQe {
        low_qe: vec![false; n],
        open: vec![false; n],
        adj_open: vec![false; n],
    };
    let at = |y: isize, x: isize| -> Option<f64> {
        (y >= 0 && x >= 0 && (y as usize) < ny && (x as usize) < nx)
            .then(|| normalized[y as usize * nx + x as usize])
    };
    const FOUR: [(isize, isize); 4] = [(1, 0), (0, 1), (-1, 0), (0, -1)];
    for y in 0..ny {
        for x in 0..nx {
            let i = y * nx + x;
            let v = normalized[i];
            if !(v >= d && v < q) {
                continue;
            }
            let (yi, xi) = (y as isize, x as isize);
            let open = FOUR
                .iter()
                .filter_map(|&(dy, dx)| at(yi + dy, xi + dx))
                .all(|nv| nv > a);
            if !open {
                m.low_qe[i] = true;
                continue;
            }
            m.open[i] = true;
            let mut paint = |dy: isize, dx: isize| {
                if at(yi + dy, xi + dx).is_some() {
                    m.adj_open[(yi + dy) as usize * nx + (xi + dx) as usize] = true;
                }
            };
            match adj {
                AdjOpen::Four => FOUR.iter().for_each(|&(dy, dx)| paint(dy, dx)),
                AdjOpen::Eight => {
                    for dy in -1..=1 {
                        for dx in -1..=1 {
                            if (dy, dx) != (0, 0) {
                                paint(dy, dx);
                            }
                        }
                    }
                }
            }
            m.adj_open[i] = false;
        }
    }
    m
}

/// Upper-cases and checks flag names (`flag_type_check`): an unknown name is an error containing
/// "Unrecognized flag type: NAME".
pub fn flag_type_check(names: &[String], what: &str) -> Result<Vec<String>, GeneratorError> {
    names
        .iter()
        .map(|n| {
            let u = n.trim().to_ascii_uppercase();
            if dq::flag_value(&u).is_some() {
                Ok(u)
            } else {
                Err(GeneratorError::invalid_parameter(format!(
                    "{what}: Unrecognized flag type: {n}; use JWST DQ mnemonics such as DEAD, \
                     LOW_QE, OPEN, ADJ_OPEN, HOT, RC, TELEGRAPH, OTHER_BAD_PIXEL"
                )))
            }
        })
        .collect()
}

/// `combine_individual_maps` (UPSTREAM.md, 'Combining the flat maps'): each map's flag, plus
/// DO_NOT_USE once where any map named in `do_not_use` (upper-case mnemonics, checked) is set. Maps
/// are `(mnemonic, map)`.
pub fn combine_individual_maps(maps: &[(&str, &[bool])], do_not_use: &[String]) -> Vec<u32> {
    let n = maps.first().map_or(0, |m| m.1.len());
    let mut out = vec![0u32; n];
    for (name, map) in maps {
        let value = dq::flag_value(name).expect("map names are standard mnemonics");
        let dnu = do_not_use.iter().any(|d| d.eq_ignore_ascii_case(name));
        let add = value | if dnu { dq::DO_NOT_USE } else { 0 };
        for (o, &set) in out.iter_mut().zip(map.iter()) {
            if set {
                *o |= add;
            }
        }
    }
    out
}

/// Thresholds and switches of the flat searches (the `flat_*`/dead/low-QE parameters).
#[derive(Clone, Debug, PartialEq)]
pub struct FlatParams {
    pub dead_search: bool,
    pub low_qe_and_open_search: bool,
    pub dead_search_type: DeadSearchType,
    pub sigma_threshold: f64,
    pub normalization: Normalization,
    pub smoothing_box_width: f64,
    pub smoothing_type: SmoothingType,
    pub dead_sigma_threshold: f64,
    /// `None`: the instrument default ([`default_max_dead`]).
    pub max_dead_norm_signal: Option<f64>,
    pub max_low_qe_norm_signal: f64,
    pub max_open_adj_norm_signal: f64,
    pub adj_open: AdjOpen,
}

impl Default for FlatParams {
    /// Upstream's defaults.
    fn default() -> Self {
        FlatParams {
            dead_search: true,
            low_qe_and_open_search: true,
            dead_search_type: DeadSearchType::SigmaRate,
            sigma_threshold: 3.0,
            normalization: Normalization::Smoothed,
            smoothing_box_width: 15.0,
            smoothing_type: SmoothingType::Box2D,
            dead_sigma_threshold: 5.0,
            max_dead_norm_signal: None,
            max_low_qe_norm_signal: 0.5,
            max_open_adj_norm_signal: 1.05,
            adj_open: AdjOpen::Eight,
        }
    }
}

/// What the flat searches found on the science region (`ny × nx`).
#[derive(Clone, Debug)]
pub struct FlatMaps {
    pub ny: usize,
    pub nx: usize,
    pub normalization_image: Vec<f64>,
    pub normalized: Vec<f64>,
    /// Clipped mean and std of the normalised image (NaN when it has no finite value).
    pub norm_mean: f64,
    pub norm_std: f64,
    /// The dead threshold used: `max_dead_norm_signal` after defaulting (absolute_rate and the
    /// LOW_QE lower bound) and, for sigma_rate, the sigma threshold in normalised units.
    pub max_dead: f64,
    pub sigma_dead_threshold: Option<f64>,
    pub dead: Vec<bool>,
    pub low_qe: Vec<bool>,
    pub open: Vec<bool>,
    pub adj_open: Vec<bool>,
}

/// Runs the normalisation and the searches on the science-region mean image. The dead flux check is
/// applied by the caller, which has the ramps.
pub fn find_bad_pixels(
    mean: &[f64],
    ny: usize,
    nx: usize,
    p: &FlatParams,
    instrument: &str,
    detector: &str,
) -> Result<FlatMaps, GeneratorError> {
    let (norm_img, normalized) = normalize(
        mean,
        ny,
        nx,
        p.normalization,
        p.smoothing_type,
        p.smoothing_box_width,
    );
    let (norm_mean, norm_std) = image_stats(&normalized, p.sigma_threshold).ok_or_else(|| {
        GeneratorError::invalid_input(
            "the normalised mean flat image has no finite pixel; the flats are NaN-filled or \
             the normalisation divided by zero everywhere",
        )
    })?;
    let max_dead = p
        .max_dead_norm_signal
        .unwrap_or_else(|| default_max_dead(instrument, detector, p.normalization));
    let n = ny * nx;
    let (ol, sigma_dead_threshold) = (
        if p.low_qe_and_open_search {
            open_and_low_qe(
                &normalized,
                ny,
                nx,
                max_dead,
                p.max_low_qe_norm_signal,
                p.max_open_adj_norm_signal,
                p.adj_open,
            )
        } else {
            OpenLowQe {
                low_qe: vec![false; n],
                open: vec![false; n],
                adj_open: vec![false; n],
            }
        },
        (p.dead_search_type == DeadSearchType::SigmaRate)
            .then_some(norm_mean - p.dead_sigma_threshold * norm_std),
    );
    let mut dead = if !p.dead_search {
        vec![false; n]
    } else {
        match p.dead_search_type {
            DeadSearchType::SigmaRate => {
                dead_pixels_sigma_rate(&normalized, norm_mean, norm_std, p.dead_sigma_threshold)
            }
            DeadSearchType::AbsoluteRate => dead_pixels_absolute_rate(&normalized, max_dead),
        }
    };
    // A pixel with a measured LOW_QE or OPEN class is that, not DEAD as well (upstream flags it
    // both in sigma_rate mode, whose threshold lies far above max_low_qe_norm_signal).
    for ((d, &low), &open) in dead.iter_mut().zip(&ol.low_qe).zip(&ol.open) {
        if low || open {
            *d = false;
        }
    }
    Ok(FlatMaps {
        ny,
        nx,
        normalization_image: norm_img,
        normalized,
        norm_mean,
        norm_std,
        max_dead,
        sigma_dead_threshold,
        dead,
        low_qe: ol.low_qe,
        open: ol.open,
        adj_open: ol.adj_open,
    })
}

/// Dead flux check (UPSTREAM.md, 'Dead flux check'): a DEAD candidate whose raw signal `signal`
/// (mean over the flux-check ramps of their last four groups) is at or above `flux_check` is not
/// dead (it is saturated or hot); NaN signal keeps the flag. Returns how many were cleared.
pub fn apply_flux_check(dead: &mut [bool], signal: &[f64], flux_check: f64) -> usize {
    let mut cleared = 0;
    for (d, &s) in dead.iter_mut().zip(signal) {
        if *d && s >= flux_check {
            *d = false;
            cleared += 1;
        }
    }
    cleared
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_profiles() {
        assert_eq!(box_profile(3.0), vec![1.0 / 3.0; 3]);
        let p = box_profile(4.0);
        assert_eq!(p, vec![0.125, 0.25, 0.25, 0.25, 0.125]);
        assert!((box_profile(15.0).iter().sum::<f64>() - 1.0).abs() < 1e-12);
    }

    #[test]
    fn parse_options() {
        assert_eq!(
            Normalization::parse("Smoothed").unwrap(),
            Normalization::Smoothed
        );
        assert!(Normalization::parse("fit2d").unwrap_err().contains("fit2d"));
        assert!(Normalization::parse("gauss").unwrap_err().contains("gauss"));
        assert_eq!(
            SmoothingType::parse("median").unwrap(),
            SmoothingType::Median
        );
        assert_eq!(SmoothingType::parse("BOX2D").unwrap(), SmoothingType::Box2D);
        assert!(SmoothingType::parse("gaussian").is_err());
        assert!(DeadSearchType::parse("zero_signal").is_err());
    }

    #[test]
    fn nircam_default_dead_table() {
        let none = Normalization::None;
        assert_eq!(default_max_dead("NIRCAM", "NRCA1", none), 25.0);
        assert_eq!(default_max_dead("nircam", "nrca3", none), 30.0);
        assert_eq!(default_max_dead("NIRCAM", "NRCALONG", none), 40.0);
        assert_eq!(default_max_dead("NIRCAM", "NRCBLONG", none), 50.0);
        assert_eq!(default_max_dead("NIRCAM", "NRCB4", none), 25.0);
        assert_eq!(
            default_max_dead("NIRCAM", "NRCBLONG", Normalization::Smoothed),
            0.05
        );
        assert_eq!(default_max_dead("NIRISS", "NIS", none), 0.05);
    }

    #[test]
    fn flux_check_clears_bright_candidates() {
        let mut dead = vec![true, true, false, true];
        let n = apply_flux_check(&mut dead, &[100.0, 45_000.0, 60_000.0, f64::NAN], 45_000.0);
        assert_eq!(n, 1);
        assert_eq!(dead, vec![true, false, false, true]);
    }

    #[test]
    fn low_qe_is_not_also_dead_in_sigma_rate_mode() {
        // A flat field of ones with small scatter, a LOW_QE pixel (0.4) and a dead one (0.01).
        let (ny, nx) = (20, 20);
        let mut img: Vec<f64> = (0..ny * nx)
            .map(|i| 1.0 + 0.01 * ((i * 7919 % 13) as f64 - 6.0) / 6.0)
            .collect();
        img[5 * nx + 5] = 0.4;
        img[12 * nx + 12] = 0.01;
        let p = FlatParams {
            normalization: Normalization::None,
            ..FlatParams::default()
        };
        let m = find_bad_pixels(&img, ny, nx, &p, "NIRISS", "NIS").unwrap();
        assert!(m.low_qe[5 * nx + 5] && !m.dead[5 * nx + 5]);
        assert!(m.dead[12 * nx + 12] && !m.low_qe[12 * nx + 12]);
        assert_eq!(m.dead.iter().filter(|&&d| d).count(), 1);
        let t = m.sigma_dead_threshold.unwrap();
        assert!(t > 0.9 && t < 1.0, "{t}");
    }
}
