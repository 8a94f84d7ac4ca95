//! What to simulate: [`SimConfig`] and the exposure bookkeeping derived from it (timing, EXP_TYPE,
//! file names).

use serde::{Deserialize, Serialize};

use crate::error::SimError;
use mkrefs_support::geometry::{DetectorInfo, Instrument, Subarray, detector_info};
use mkrefs_support::timeutil::{iso_to_mjd, mjd_to_iso};

/// Default probability per frame that a telegraph pixel switches level: with 10 groups most
/// integrations see several switches, so the pixel shows many jumps (which the bad-pixel search
/// of darks flags TELEGRAPH). [`SimConfig::telegraph_switch_prob`] can spread it.
pub(crate) const TELEGRAPH_SWITCH_PROB: f64 = 0.25;

/// Whether an exposure is a dark or a flat (lamp/internal flat). Decides EXP_TYPE, the visit in the
/// file name and whether light falls on the detector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Dark,
    Flat,
}

impl Kind {
    /// Stream id of the kind, so darks and flats with the same index get unrelated noise.
    pub(crate) fn id(self) -> u64 {
        match self {
            Kind::Dark => 1,
            Kind::Flat => 2,
        }
    }

    /// EXP_TYPE the real pipeline writes for this kind on `instrument`: the first of its
    /// profile's dark or flat EXP_TYPEs.
    pub fn exp_type(self, instrument: Instrument) -> &'static str {
        let p = instrument.profile();
        let list = match self {
            Kind::Dark => &p.dark_exp_types,
            Kind::Flat => &p.flat_exp_types,
        };
        list.first().map_or("N/A", String::as_str)
    }
}

/// Fraction of the science (non-reference) pixels given each defect class; 0 disables a class.
/// The count of a class is `round(fraction × science pixels)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DefectFractions {
    /// DEAD: QE 0–0.04.
    pub dead: f64,
    /// LOW_QE: QE 0.30–0.45.
    pub low_qe: f64,
    /// OPEN (QE 0.30–0.45); its 4 neighbours get the charge it loses (QE 1.10–1.30). The truth
    /// flags the whole 3x3 box around it ADJ_OPEN, as jwst_reffiles (and the bpm by default)
    /// define the flag; the 4 diagonal ones have a normal QE.
    pub open: f64,
    /// HOT, not saturating: dark current 0.5–50 DN/s, log-uniform (100 to 10,000 times the
    /// default mean dark current), with its shot noise. In the products: a high slope in every
    /// integration, a normal pedestal, no jumps. How far the faintest are above the slope noise
    /// depends on the ramp length (about 7σ per integration for 10 full-frame groups).
    pub hot: f64,
    /// Saturated in all groups (flagged HOT | SATURATED in the truth): dark current of 2–10 full
    /// ranges per frame, so the first read is already at 65535; the products carry SATURATED in
    /// every group, NaN slopes and PEDESTAL 0, as jwst writes them.
    pub saturated: f64,
    /// RC: an excess of 500–3000 DN at reset decaying with a 1.5-frame time constant, added to
    /// every read; it lifts group 0 (so the fitted PEDESTAL is high in every integration) and
    /// bends the start of the ramp without jumps.
    pub rc: f64,
    /// TELEGRAPH: random switching between two levels 60–200 DN apart, with probability 0.25 per
    /// frame (see [`SimConfig::telegraph_switch_prob`]); every switch is a jump (JUMP_DET) in the group that first shows it, so such a
    /// pixel jumps in most integrations and sits on its upper level at reset half the time.
    pub telegraph: f64,
    /// Low pedestal (OTHER_BAD_PIXEL): a constant offset of −300 to −2000 DN on every read, so
    /// the PEDESTAL is low in every integration and the slope is normal.
    pub low_pedestal: f64,
    /// Noisy (UNRELIABLE_SLOPE in the truth): a CDS read noise of 5–8 times (uniform) the median
    /// read noise of the science pixels, with a normal slope and pedestal. The bad-pixel search of
    /// darks flags such pixels TELEGRAPH (see [`crate::DefectClass::expected_flag`]). 0 in
    /// [`DefectFractions::default`] and [`DefectFractions::uniform`] (which existing tests use
    /// and whose data would otherwise change); enable it with
    /// [`DefectFractions::with_noisy`] or [`SimConfig::with_noisy_fraction`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub noisy: f64,
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

impl DefectFractions {
    /// The same fraction for every class but the noisy pixels (0, as before that class existed).
    pub fn uniform(f: f64) -> DefectFractions {
        DefectFractions {
            dead: f,
            low_qe: f,
            open: f,
            hot: f,
            saturated: f,
            rc: f,
            telegraph: f,
            low_pedestal: f,
            noisy: 0.0,
        }
    }

    /// The same, with noisy pixels at fraction `f`.
    pub fn with_noisy(self, f: f64) -> DefectFractions {
        DefectFractions { noisy: f, ..self }
    }
}

impl Default for DefectFractions {
    /// 1e-4 per class gives about 416 pixels of each class on a 2040×2040 science area, enough
    /// for statistics; hot pixels are twice as common, as on the real detectors.
    fn default() -> Self {
        DefectFractions {
            hot: 2e-4,
            ..DefectFractions::uniform(1e-4)
        }
    }
}

/// Everything the simulator needs. Start from [`SimConfig::default`] (NIRCam NRCA1 full frame,
/// 2 integrations × 10 groups, RAPID) and change what a test needs with the `with_*` helpers.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// DETECTOR: NRCA1..NRCB4, NRCALONG, NRCBLONG, NIS, NRS1, NRS2, GUIDER1, GUIDER2, MIRIMAGE.
    pub detector: String,
    /// The readout window; `None` is the full frame (2048×2048 NIR, 1024 rows × 1032 columns MIRI).
    pub subarray: Option<Subarray>,
    pub nints: usize,
    pub ngroups: usize,
    pub nframes: usize,
    pub groupgap: usize,
    /// Frame time in seconds; `None` derives it from the window (see [`SimConfig::frame_time`]).
    pub tframe: Option<f64>,
    pub readpatt: String,
    /// e-/DN; the shot noise of the accumulated charge is Poisson in electrons.
    pub gain: f64,
    /// Mean bias level (DN) and the pixel-to-pixel spread (σ, DN); each of the 4 outputs gets an
    /// extra offset of the same σ.
    pub bias_level: f64,
    pub bias_spread: f64,
    /// Mean CDS read noise (DN) of science pixels, its relative pixel spread, and the mean CDS
    /// read noise of reference pixels (lower: they have no photodiode).
    pub readnoise: f64,
    pub readnoise_spread: f64,
    pub refpix_readnoise: f64,
    /// Mean dark current (DN/s) and its relative pixel spread.
    pub dark_current: f64,
    pub dark_spread: f64,
    /// Flat-field illumination (DN/s for QE = 1) of flat exposures, and the relative QE spread.
    pub flat_illumination: f64,
    pub qe_spread: f64,
    /// Fraction of the science pixels (each chosen independently) in the read-noise tail: their
    /// CDS read noise is multiplied by a Pareto factor (index 3) from 1.3 up, capped at 3, on
    /// top of `readnoise_spread`; real detectors have such a tail. 0 by default.
    pub readnoise_tail: f64,
    /// Cosmic-ray hits per pixel per second (see [`SimConfig::with_cosmic_rays_per_group`]), and
    /// the range of their log-uniform amplitudes (DN).
    pub cosmic_ray_rate: f64,
    pub cosmic_ray_min: f64,
    pub cosmic_ray_max: f64,
    /// rms (DN per read) of the correlated 1/f noise along the readout lines: each read gets a
    /// line-to-line offset series (banding) common to the 4 outputs with this rms, plus each
    /// output's own series of 30 % of it, both with an approximately 1/f spectrum over 1 to 2048
    /// lines; reference pixels get it too. 0 (off) by default.
    pub noise_1f_rms: f64,
    /// σ (DN) of the per-integration, per-output reset offset added to every read of the
    /// integration, reference pixels included. 0 (off) by default.
    pub reset_offset_sigma: f64,
    /// Largest per-integration, per-output amplifier drift (DN per frame, drawn uniform in
    /// ±this), added from the first read on, reference pixels included. 0 (off) by default.
    pub amp_drift_per_frame: f64,
    /// Range of the per-frame switching probability of the telegraph pixels: each pixel's is
    /// drawn log-uniform in it. The default (0.25, 0.25) gives every pixel 0.25.
    pub telegraph_switch_prob: (f64, f64),
    pub defects: DefectFractions,
    pub seed: u64,
    /// Start of the first exposure, UTC, `YYYY-MM-DDThh:mm:ss[.fff]`.
    pub start: String,
    /// Idle time between consecutive exposures of one kind (s).
    pub exposure_gap_s: f64,
    /// Start of the first flat relative to the first dark (s), so darks and flats are separate
    /// visits in time as well as in name.
    pub flat_delay_s: f64,
    /// Program number of the file names (`jw<program><obs><visit>_...`).
    pub program: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            detector: "NRCA1".to_string(),
            subarray: None,
            nints: 2,
            ngroups: 10,
            nframes: 1,
            groupgap: 0,
            tframe: None,
            readpatt: "RAPID".to_string(),
            gain: 2.0,
            bias_level: 12_000.0,
            bias_spread: 400.0,
            readnoise: 10.0,
            readnoise_spread: 0.1,
            readnoise_tail: 0.0,
            refpix_readnoise: 7.0,
            dark_current: 0.005,
            dark_spread: 0.3,
            flat_illumination: 100.0,
            qe_spread: 0.02,
            cosmic_ray_rate: 1.6e-5,
            cosmic_ray_min: 100.0,
            cosmic_ray_max: 5000.0,
            noise_1f_rms: 0.0,
            reset_offset_sigma: 0.0,
            amp_drift_per_frame: 0.0,
            telegraph_switch_prob: (TELEGRAPH_SWITCH_PROB, TELEGRAPH_SWITCH_PROB),
            defects: DefectFractions::default(),
            seed: 1,
            start: "2025-06-01T00:00:00.000".to_string(),
            exposure_gap_s: 600.0,
            flat_delay_s: 43_200.0,
            program: 1234,
        }
    }
}

/// The stdatamodels NIRCam SUBARRAY name of a square window of side `n` placed at the corner
/// (FULL, SUB640, SUB320, SUB160, SUB64P), `GENERIC` for other sizes.
pub fn subarray_name_for_size(n: usize) -> &'static str {
    match n {
        2048 => "FULL",
        640 => "SUB640",
        320 => "SUB320",
        160 => "SUB160",
        64 => "SUB64P",
        _ => "GENERIC",
    }
}

impl SimConfig {
    pub fn with_detector(mut self, name: &str) -> Self {
        self.detector = name.to_ascii_uppercase();
        self
    }

    /// An explicit readout window.
    pub fn with_subarray(mut self, sub: Subarray) -> Self {
        self.subarray = Some(sub);
        self
    }

    /// A square `n × n` window at SUBSTRT1/2 = (1, 1), named by [`subarray_name_for_size`] on
    /// NIRCam and GENERIC elsewhere. A full-size window becomes the full frame.
    pub fn with_square_subarray(self, n: usize) -> Self {
        let name = match detector_info(&self.detector) {
            Some(d) if d.instrument == Instrument::NirCam => subarray_name_for_size(n),
            _ => "GENERIC",
        };
        self.with_subarray(Subarray {
            name: name.to_string(),
            xstart: 1,
            ystart: 1,
            nx: n,
            ny: n,
        })
    }

    /// Moves the window's lower-left corner to 1-based full-frame pixel (`xstart`, `ystart`).
    /// Without a subarray this does nothing.
    pub fn with_substrt(mut self, xstart: usize, ystart: usize) -> Self {
        if let Some(s) = self.subarray.as_mut() {
            s.xstart = xstart;
            s.ystart = ystart;
        }
        self
    }

    pub fn with_ramp(mut self, nints: usize, ngroups: usize) -> Self {
        self.nints = nints;
        self.ngroups = ngroups;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The same fraction for every defect class but the noisy pixels, which it turns off (see
    /// [`SimConfig::with_noisy_fraction`]).
    pub fn with_defect_fraction(mut self, f: f64) -> Self {
        self.defects = DefectFractions::uniform(f);
        self
    }

    pub fn without_defects(self) -> Self {
        self.with_defect_fraction(0.0)
    }

    pub fn without_cosmic_rays(mut self) -> Self {
        self.cosmic_ray_rate = 0.0;
        self
    }

    /// Noisy pixels (see [`DefectFractions::noisy`]) at fraction `f`, the other classes as they
    /// are.
    pub fn with_noisy_fraction(mut self, f: f64) -> Self {
        self.defects.noisy = f;
        self
    }

    /// Sets [`SimConfig::cosmic_ray_rate`] so that a pixel expects `p` hits per group (the rate
    /// is `p` over the group time). The group time depends on the detector, window and readout,
    /// so set those first. A config that does not resolve keeps its rate (every use of it
    /// reports the config's error anyway).
    pub fn with_cosmic_rays_per_group(mut self, p: f64) -> Self {
        if let Ok(r) = self.resolve() {
            self.cosmic_ray_rate = p / r.tgroup(&self);
        }
        self
    }

    /// A simulator that does not flatter: the default config's idealised detector plus what
    /// real data have and reference-file algorithms must survive, at realistic levels: a
    /// read-noise spread of 15 % with a 1 % tail, noisy pixels at 1e-4 (as the other classes),
    /// cosmic rays at 1e-3 per pixel per group, 1/f banding of 3 DN rms per read, reset offsets
    /// of σ 30 DN, amplifier drifts up to ±0.5 DN per frame and telegraph switching
    /// probabilities of 0.1–0.3 per frame. Set the detector, window and readout first (the
    /// cosmic-ray rate depends on the group time).
    ///
    /// The simulator's own calibrated products (jump, rate, ...) stay idealised (the true bias
    /// subtracted, jumps exactly where the events are): they carry the correlated noise,
    /// offsets and drifts uncorrected. Such data are meant to be calibrated by a real engine
    /// (the refpix step removes the offsets with the reference pixels).
    pub fn with_realistic_noise(mut self) -> Self {
        self.readnoise_spread = 0.15;
        self.readnoise_tail = 0.01;
        self.defects.noisy = 1e-4;
        self.noise_1f_rms = 3.0;
        self.reset_offset_sigma = 30.0;
        self.amp_drift_per_frame = 0.5;
        self.telegraph_switch_prob = (0.1, 0.3);
        self.with_cosmic_rays_per_group(1e-3)
    }

    /// [`SimConfig::default`] (NIRCam NRCA1 full frame) with [`SimConfig::with_realistic_noise`].
    pub fn realistic() -> Self {
        SimConfig::default().with_realistic_noise()
    }

    /// Checks the configuration and resolves the detector, window and times.
    pub(crate) fn resolve(&self) -> Result<Resolved, SimError> {
        let bad = |m: String| Err(SimError::Config(m));
        let Some(det) = detector_info(&self.detector) else {
            return bad(format!(
                "unknown detector {:?}; use one of NRCA1..NRCA4, NRCB1..NRCB4, NRCALONG, \
                 NRCBLONG, NIS, NRS1, NRS2, GUIDER1, GUIDER2, MIRIMAGE",
                self.detector
            ));
        };
        let sub = match &self.subarray {
            Some(s) if s.nx == det.full_nx && s.ny == det.full_ny => Subarray::full_frame(&det),
            Some(s) => s.clone(),
            None => Subarray::full_frame(&det),
        };
        sub.check(&det).map_err(SimError::Config)?;
        if self.nints == 0 || self.ngroups == 0 || self.nframes == 0 {
            return bad(format!(
                "nints ({}), ngroups ({}) and nframes ({}) must be at least 1",
                self.nints, self.ngroups, self.nframes
            ));
        }
        if self.ngroups < 2 {
            return bad("ngroups must be at least 2 to have a slope".to_string());
        }
        let positive = [
            ("gain", self.gain),
            ("readnoise", self.readnoise),
            ("refpix_readnoise", self.refpix_readnoise),
        ];
        for (name, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return bad(format!("{name} must be finite and > 0 (got {v})"));
            }
        }
        self.check_noise_options()?;
        if self.cosmic_ray_rate > 0.0
            && !(self.cosmic_ray_min > 0.0 && self.cosmic_ray_max >= self.cosmic_ray_min)
        {
            return bad(format!(
                "cosmic-ray amplitudes need 0 < min <= max (got {}..{})",
                self.cosmic_ray_min, self.cosmic_ray_max
            ));
        }
        let start_mjd = iso_to_mjd(&self.start, None)
            .map_err(|e| SimError::Config(format!("start {:?}: {e}", self.start)))?;
        let tframe = match self.tframe {
            Some(t) if t.is_finite() && t > 0.0 => t,
            Some(t) => return bad(format!("tframe must be > 0 (got {t})")),
            None => frame_time(&det, &sub),
        };
        Ok(Resolved {
            det,
            sub,
            tframe,
            start_mjd,
        })
    }

    /// The opt-in noise fields: finite, not negative, fractions at most 1, switching
    /// probabilities in (0, 1] with min <= max.
    fn check_noise_options(&self) -> Result<(), SimError> {
        let not_negative = [
            ("readnoise_tail", self.readnoise_tail),
            ("noise_1f_rms", self.noise_1f_rms),
            ("reset_offset_sigma", self.reset_offset_sigma),
            ("amp_drift_per_frame", self.amp_drift_per_frame),
        ];
        for (name, v) in not_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(SimError::Config(format!(
                    "{name} must be finite and >= 0 (got {v})"
                )));
            }
        }
        if self.readnoise_tail > 1.0 {
            return Err(SimError::Config(format!(
                "readnoise_tail is a fraction of pixels, at most 1 (got {})",
                self.readnoise_tail
            )));
        }
        let (lo, hi) = self.telegraph_switch_prob;
        if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
            return Err(SimError::Config(format!(
                "telegraph_switch_prob needs 0 < min <= max <= 1 (got {lo}..{hi})"
            )));
        }
        Ok(())
    }

    /// The frame time this config uses, in seconds.
    ///
    /// NIR: the SIDECAR readout time `(nx / outputs + 12) × (ny + 1) × 10 µs` (12 pixel times of
    /// line overhead, one extra row), with the outputs of `reads_with_four_outputs` (4 at full
    /// frame and for full-width windows such as NIRCam's SUBGRISM64, 1 otherwise). This gives the
    /// real 10.737 s for a NIRCam full frame and within 2 % of the real SUB640/SUB160/SUB64P
    /// times. MIRI: the full-frame 2.775 s scaled by the number of pixels.
    pub fn frame_time(&self) -> Result<f64, SimError> {
        Ok(self.resolve()?.tframe)
    }
}

/// The default frame time of a window (see [`SimConfig::frame_time`]).
fn frame_time(det: &DetectorInfo, sub: &Subarray) -> f64 {
    if det.instrument == Instrument::Miri {
        2.775 * (sub.nx * sub.ny) as f64 / (det.full_nx * det.full_ny) as f64
    } else {
        let outputs = if reads_with_four_outputs(det, sub) {
            4.0
        } else {
            1.0
        };
        (sub.nx as f64 / outputs + 12.0) * (sub.ny as f64 + 1.0) * 1e-5
    }
}

/// Whether a NIR window is read through all 4 outputs (NOUTPUTS = 4): the full frame, and
/// windows spanning the whole fast (readout) axis, as the NIRCam grism time-series subarrays
/// SUBGRISM64/128/256 (2048 columns) are. The jwst pipeline corrects such subarrays with the
/// full-frame reference-pixel algorithm (per amplifier), so tests of that path need them.
/// Other subarrays are read through one output. MIRI has no such choice (always 4 outputs in
/// its own layout, not simulated here): false.
fn reads_with_four_outputs(det: &DetectorInfo, sub: &Subarray) -> bool {
    if det.instrument == Instrument::Miri {
        return false;
    }
    let full_fast = if det.fastaxis.abs() == 1 {
        sub.nx == det.full_nx
    } else {
        sub.ny == det.full_ny
    };
    full_fast || (sub.nx == det.full_nx && sub.ny == det.full_ny)
}

/// A checked config with its derived quantities.
#[derive(Clone, Debug)]
pub(crate) struct Resolved {
    pub det: DetectorInfo,
    pub sub: Subarray,
    pub tframe: f64,
    pub start_mjd: f64,
}

impl Resolved {
    pub fn ny(&self) -> usize {
        self.sub.ny
    }

    pub fn nx(&self) -> usize {
        self.sub.nx
    }

    pub fn noutputs(&self) -> i64 {
        if reads_with_four_outputs(&self.det, &self.sub) {
            4
        } else {
            1
        }
    }

    pub fn tgroup(&self, cfg: &SimConfig) -> f64 {
        self.tframe * (cfg.nframes + cfg.groupgap) as f64
    }

    /// Frames from reset to the last read of an integration (skipped frames included).
    pub fn frames_to_last_read(&self, cfg: &SimConfig) -> usize {
        cfg.ngroups * (cfg.nframes + cfg.groupgap) - cfg.groupgap
    }

    /// Seconds per integration: its frames plus one reset frame.
    pub fn integration_time(&self, cfg: &SimConfig) -> f64 {
        (self.frames_to_last_read(cfg) + 1) as f64 * self.tframe
    }

    /// Timing and names of exposure `index` (0-based) of `kind`.
    pub fn exposure(&self, cfg: &SimConfig, kind: Kind, index: usize) -> ExposureInfo {
        let duration = cfg.nints as f64 * self.integration_time(cfg);
        let offset = match kind {
            Kind::Dark => 0.0,
            Kind::Flat => cfg.flat_delay_s,
        } + index as f64 * (duration + cfg.exposure_gap_s);
        // Whole milliseconds, so that the ISO strings and the MJDs describe the same instants.
        let ms = |mjd: f64| (mjd * 86_400_000.0).round();
        let start_ms = ms(self.start_mjd) + (offset * 1000.0).round();
        let end_ms = start_ms + (duration * 1000.0).round();
        let visit = match kind {
            Kind::Dark => 1,
            Kind::Flat => 2,
        };
        let stem = format!(
            "jw{:05}001{:03}_01101_{:05}_{}",
            cfg.program,
            visit,
            index + 1,
            self.det.name.to_ascii_lowercase()
        );
        ExposureInfo {
            kind,
            index,
            exp_type: kind.exp_type(self.det.instrument).to_string(),
            start_mjd: start_ms / 86_400_000.0,
            end_mjd: end_ms / 86_400_000.0,
            duration_s: duration,
            stem,
        }
    }
}

/// Where and when one simulated exposure is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExposureInfo {
    pub kind: Kind,
    /// 0-based; the file name carries `index + 1` as its exposure number.
    pub index: usize,
    pub exp_type: String,
    /// EXPSTART and EXPEND (MJD, UTC).
    pub start_mjd: f64,
    pub end_mjd: f64,
    pub duration_s: f64,
    /// The file name without `_uncal.fits`, e.g. `jw01234001001_01101_00001_nrca1`.
    pub stem: String,
}

impl ExposureInfo {
    /// `<stem>_uncal.fits`.
    pub fn uncal_name(&self) -> String {
        format!("{}_uncal.fits", self.stem)
    }

    /// (date, time) of the start, as DATE-OBS and TIME-OBS.
    pub fn start_date_time(&self) -> (String, String) {
        split_iso(&mjd_to_iso(self.start_mjd))
    }

    /// (date, time) of the end, as DATE-END and TIME-END.
    pub fn end_date_time(&self) -> (String, String) {
        split_iso(&mjd_to_iso(self.end_mjd))
    }
}

fn split_iso(iso: &str) -> (String, String) {
    let (d, t) = iso.split_once('T').unwrap_or((iso, "00:00:00.000"));
    (d.to_string(), t.to_string())
}

impl SimConfig {
    /// Timing and names of exposure `index` (0-based) of `kind`.
    pub fn exposure(&self, kind: Kind, index: usize) -> Result<ExposureInfo, SimError> {
        Ok(self.resolve()?.exposure(self, kind, index))
    }
}
