//! `plot: true`: PNG figures of the intermediate maps and a histogram, written beside the output
//! as `<output stem>_<what>.png` (upstream wrote its diagnostics to fixed names in the output
//! directory, so runs overwrote each other).
//!
//! Text needs a TrueType font, which is looked for at run time (`$MKREFS_FONT`, then the usual
//! DejaVu/Liberation paths) so that building needs no system library; without one the figures
//! are drawn without titles and axis labels, and the job log says so.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use mkrefs_support::dq;

/// Images larger than this are shown binned to at most this many pixels per side.
const MAX_SIDE: usize = 800;

static FONT: OnceLock<bool> = OnceLock::new();

/// Registers a TrueType font for plotters once; `false` if none was found.
fn font_available() -> bool {
    *FONT.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = std::env::var_os("MKREFS_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        candidates.extend(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/Library/Fonts/Arial.ttf",
            ]
            .map(PathBuf::from),
        );
        for c in candidates {
            if let Ok(bytes) = std::fs::read(&c) {
                let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if register_font("sans-serif", FontStyle::Normal, leaked).is_ok() {
                    return true;
                }
            }
        }
        false
    })
}

/// What the figures show.
pub struct PlotInputs<'a> {
    /// Science-region images.
    pub sci_ny: usize,
    pub sci_nx: usize,
    pub mean: Option<&'a [f64]>,
    pub normalized: Option<&'a [f64]>,
    /// Thresholds drawn on the histogram: (label, value).
    pub thresholds: Vec<(String, f64)>,
    /// The final mask (full window).
    pub ny: usize,
    pub nx: usize,
    pub mask: &'a [u32],
}

/// Writes the figures; returns their paths and a note when they have no text.
pub fn write_all(
    output: &Path,
    p: &PlotInputs<'_>,
) -> Result<(Vec<PathBuf>, Option<String>), String> {
    let stem = output
        .file_stem()
        .map_or_else(|| "bpm".to_string(), |s| s.to_string_lossy().into_owned());
    let dir = output.parent().unwrap_or(Path::new("."));
    let name = |what: &str| dir.join(format!("{stem}_{what}.png"));
    let text = font_available();
    let mut written = Vec::new();
    if let Some(m) = p.mean {
        let f = name("mean_flat");
        image(
            &f,
            m,
            p.sci_ny,
            p.sci_nx,
            "Clipped mean of the flats [DN/s]",
            text,
        )?;
        written.push(f);
    }
    if let Some(n) = p.normalized {
        let f = name("normalized_flat");
        image(&f, n, p.sci_ny, p.sci_nx, "Normalised mean flat", text)?;
        written.push(f);
        let f = name("normalized_histogram");
        histogram(&f, n, &p.thresholds, text)?;
        written.push(f);
    }
    let f = name("mask");
    mask_map(&f, p.mask, p.ny, p.nx, text)?;
    written.push(f);
    let note = (!text).then(|| {
        "plot: no TrueType font found (set MKREFS_FONT to a .ttf file); figures have no text"
            .to_string()
    });
    Ok((written, note))
}

fn err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> String + '_ {
    move |e| format!("cannot draw {}: {e:?}", path.display())
}

/// Bin factor so the image fits `MAX_SIDE`.
fn bin_of(ny: usize, nx: usize) -> usize {
    ny.max(nx).div_ceil(MAX_SIDE).max(1)
}

/// 1st and 99th percentile of the finite values, for the colour stretch.
fn stretch(v: &[f64]) -> (f64, f64) {
    let mut f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if f.is_empty() {
        return (0.0, 1.0);
    }
    f.sort_by(f64::total_cmp);
    let at = |q: f64| f[((f.len() - 1) as f64 * q) as usize];
    let (lo, hi) = (at(0.01), at(0.99));
    if hi > lo { (lo, hi) } else { (lo, lo + 1.0) }
}

fn image(
    path: &Path,
    v: &[f64],
    ny: usize,
    nx: usize,
    title: &str,
    text: bool,
) -> Result<(), String> {
    let b = bin_of(ny, nx);
    let (h, w) = (ny.div_ceil(b), nx.div_ceil(b));
    let top = if text { 30 } else { 0 };
    let root = BitMapBackend::new(path, (w as u32, (h + top) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    if text {
        root.draw_text(title, &("sans-serif", 18).into_font().color(&BLACK), (5, 5))
            .map_err(err(path))?;
    }
    let (lo, hi) = stretch(v);
    for by in 0..h {
        for bx in 0..w {
            let (mut s, mut n) = (0.0, 0);
            for y in by * b..((by + 1) * b).min(ny) {
                for x in bx * b..((bx + 1) * b).min(nx) {
                    let x_ = v[y * nx + x];
                    if x_.is_finite() {
                        s += x_;
                        n += 1;
                    }
                }
            }
            let c = if n == 0 {
                RGBColor(255, 0, 255)
            } else {
                let t = ((s / n as f64 - lo) / (hi - lo)).clamp(0.0, 1.0);
                let g = (t * 255.0) as u8;
                RGBColor(g, g, g)
            };
            // Row 0 at the bottom, as the images are displayed in DS9.
            root.draw_pixel((bx as i32, (top + h - 1 - by) as i32), &c)
                .map_err(err(path))?;
        }
    }
    root.present().map_err(err(path))
}

fn histogram(
    path: &Path,
    v: &[f64],
    thresholds: &[(String, f64)],
    text: bool,
) -> Result<(), String> {
    const BINS: usize = 150;
    let (lo, hi) = (0.0f64, 1.5f64);
    let mut counts = vec![0u64; BINS];
    for &x in v.iter().filter(|x| x.is_finite()) {
        let k = ((x - lo) / (hi - lo) * BINS as f64).floor();
        let k = k.clamp(0.0, (BINS - 1) as f64) as usize;
        counts[k] += 1;
    }
    let log = |c: u64| ((c + 1) as f64).log10();
    let ymax = counts.iter().map(|&c| log(c)).fold(1.0, f64::max);
    let root = BitMapBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    let mut cb = ChartBuilder::on(&root);
    cb.margin(10);
    if text {
        cb.caption(
            "Normalised mean flat (values beyond 0..1.5 in the end bins)",
            ("sans-serif", 18),
        )
        .x_label_area_size(35)
        .y_label_area_size(50);
    }
    let mut chart = cb
        .build_cartesian_2d(lo..hi, 0.0..ymax * 1.05)
        .map_err(err(path))?;
    if text {
        chart
            .configure_mesh()
            .x_desc("normalised signal")
            .y_desc("log10(1 + pixels)")
            .draw()
            .map_err(err(path))?;
    }
    let width = (hi - lo) / BINS as f64;
    chart
        .draw_series(counts.iter().enumerate().map(|(k, &c)| {
            let x0 = lo + k as f64 * width;
            Rectangle::new([(x0, 0.0), (x0 + width, log(c))], BLUE.filled())
        }))
        .map_err(err(path))?;
    for (i, (label, t)) in thresholds.iter().enumerate() {
        if !t.is_finite() {
            continue;
        }
        let color = Palette99::pick(i + 1).to_rgba();
        let s = chart
            .draw_series(LineSeries::new(
                [(*t, 0.0), (*t, ymax)],
                color.stroke_width(2),
            ))
            .map_err(err(path))?;
        if text {
            s.label(format!("{label} = {t:.3}")).legend(move |(x, y)| {
                PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
            });
        }
    }
    if text && !thresholds.is_empty() {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(err(path))?;
    }
    root.present().map_err(err(path))
}

/// The colour of a mask value: the most telling class wins.
fn class_color(v: u32) -> RGBColor {
    const ORDER: [(u32, RGBColor); 9] = [
        (dq::DEAD, RGBColor(220, 0, 0)),
        (dq::OPEN, RGBColor(200, 0, 200)),
        (dq::ADJ_OPEN, RGBColor(255, 150, 230)),
        (dq::LOW_QE, RGBColor(255, 140, 0)),
        (dq::HOT, RGBColor(240, 220, 0)),
        (dq::RC, RGBColor(0, 200, 220)),
        (dq::TELEGRAPH, RGBColor(0, 80, 255)),
        (dq::OTHER_BAD_PIXEL, RGBColor(0, 170, 0)),
        (dq::REFERENCE_PIXEL, RGBColor(150, 150, 150)),
    ];
    ORDER
        .iter()
        .find(|(f, _)| v & f != 0)
        .map_or(if v == 0 { WHITE } else { BLACK }, |&(_, c)| c)
}

/// Pixels the mask legend needs at its font size.
const LEGEND_WIDTH: usize = 700;

fn mask_map(path: &Path, m: &[u32], ny: usize, nx: usize, text: bool) -> Result<(), String> {
    let b = bin_of(ny, nx);
    let (h, w) = (ny.div_ceil(b), nx.div_ceil(b));
    let top = if text { 30 } else { 0 };
    // Wide enough for the legend even when the window is a small subarray.
    let width = if text { w.max(LEGEND_WIDTH) } else { w };
    let root = BitMapBackend::new(path, (width as u32, (h + top) as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(err(path))?;
    if text {
        root.draw_text(
            "Mask: DEAD red, OPEN purple, ADJ_OPEN pink, LOW_QE orange, HOT yellow, RC cyan, \
             TELEGRAPH blue, OTHER green, REF grey",
            &("sans-serif", 11).into_font().color(&BLACK),
            (5, 8),
        )
        .map_err(err(path))?;
    }
    for by in 0..h {
        for bx in 0..w {
            // Any flagged pixel in the bin shows (a bin is coloured by its worst pixel).
            let mut v = 0u32;
            let mut order = u32::MAX;
            for y in by * b..((by + 1) * b).min(ny) {
                for x in bx * b..((bx + 1) * b).min(nx) {
                    let p = m[y * nx + x];
                    let rank = if p & !(dq::REFERENCE_PIXEL | dq::DO_NOT_USE) != 0 {
                        0
                    } else if p != 0 {
                        1
                    } else {
                        2
                    };
                    if rank < order {
                        order = rank;
                        v = p;
                    }
                }
            }
            root.draw_pixel((bx as i32, (top + h - 1 - by) as i32), &class_color(v))
                .map_err(err(path))?;
        }
    }
    root.present().map_err(err(path))
}
