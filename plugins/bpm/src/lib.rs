//! The bundled `bpm` generator: a MASK reference file of bad pixels from flats ([`flats`]) and
//! darks ([`darks`]), re-implementing jwst_reffiles' `bad_pixel_mask.bad_pixels` (UPSTREAM.md) with
//! its differences documented in [`DESCRIPTION`], which `mkrefs describe bpm` prints.
//!
//! Layout: [`flats`] the flat-field searches on plain arrays; [`darks`] the dark searches;
//! [`manual`] manual flag files; [`mask`] the combination and the file's keywords and HISTORY;
//! [`inputs`] reading slope products and the geometry; [`params`] the parameters; `run` the job
//! flow; [`plots`] the PNG figures; [`quality`] the pipeline check.

pub mod darks;
pub mod flats;
pub mod inputs;
pub mod manual;
pub mod mask;
pub mod params;
pub mod plots;
pub mod quality;
mod run;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::generator::{Exported, Generator, Report};
use mkrefs_support::job::JobView;
use mkrefs_support::params::Declare;

/// The products the searches read, with their extensions (`ssb_save_steps` syntax).
pub const DEFAULT_SSB_SAVE_STEPS: &str =
    "rate[SCI], D:jump[SCI, GROUPDQ], D:rateints[SCI, ERR, VAR_POISSON], D:fitopt[PEDESTAL]";

/// What `mkrefs describe bpm` shows: the algorithm and every deliberate difference from
/// jwst_reffiles 1.0.1. Paragraphs are separated by blank lines.
pub const DESCRIPTION: &str = "\
Makes a MASK reference file (MaskModel: DQ uint32 and the standard 33-row DQ_DEF table) of the \
bad pixels of one detector from flats, darks or both (default grouping DF+: all darks then all \
flats of a detector; either kind alone works).

Inputs. Every input is read at the calibration state dq_init, saturation, superbias, refpix, \
linearity, jump, rate (default ssbsteps). dark_current is deliberately not applied: subtracting a \
dark would remove the very signal that makes hot pixels hot (upstream used 'rate-', which \
depends on the configured step list). The darks also need their jump, fitopt and rateints \
products (default ssb_save_steps: rate[SCI], D:jump[SCI, GROUPDQ], D:rateints[SCI, ERR, \
VAR_POISSON], D:fitopt[PEDESTAL]: the extensions each search reads, of darks (D:) only where \
flats need nothing); a missing jump or fitopt product is an error naming the input and the \
ssb_save_steps entry to add. All inputs must be slope \
products (S_RAMP COMPLETE) of the same detector and window (INSTRUME, DETECTOR, SUBARRAY, \
SUBSTRT1/2, size), else the job fails naming both files.

From flats. Per pixel, the sigma-clipped mean of the slope planes (rate: one per \
flat; rateints: one per integration; astropy semantics); the science region (reference pixels \
removed) is normalised by a Box2D or median smoothing of itself (flat_mean_normalization_method \
smoothed, the default), by its clipped mean (mean) or not at all (none). DEAD: below the clipped \
mean minus dead_sigma_threshold clipped stds of the normalised image (sigma_rate) or below \
max_dead_norm_signal (absolute_rate). LOW_QE: max_dead_norm_signal <= v < \
max_low_qe_norm_signal; such a pixel whose 4 neighbours all exceed max_open_adj_norm_signal is \
OPEN and its neighbours ADJ_OPEN. Optional dead flux check on raw ramps (the flats' uncal files \
unless dead_flux_check_files is given): a DEAD candidate whose signal reaches flux_check DN is \
not dead. Flags named in flat_do_not_use also get DO_NOT_USE.

From darks: HOT (incl. saturated in all groups), RC, TELEGRAPH/noisy and low \
pedestal (OTHER_BAD_PIXEL) per flag_values, with DO_NOT_USE for the classes in dark_do_not_use. \
flag_values is a JSON object (a YAML mapping in a configuration file becomes one); noisy \
pixels get flag_values['noisy'] when that key is given, else high_cr's flags (TELEGRAPH, as \
upstream), and 'noisy' may be named in dark_do_not_use. The search reads the jump product's \
group values: a pixel's own jumps are the group differences that depart from its median over \
the integrations by more than 4 times the typical pixel's noise (the jump step's flags include \
every neighbour's: jwst flags the 4 neighbours of a large hit); TELEGRAPH when they are more \
than the detector's rate makes probable (Poisson, at the dark_noisy_threshold significance), \
and upstream's many-jumps and early-jumps patterns are counted on them. RC also from a reset \
transient (early minus late differences of one sign in more than rc_fraction_threshold of the \
integrations, significant at pedestal_sigma_threshold), which survives a superbias made from \
the same darks. Noisy: the clean-slope variance against the detector's typical one plus the \
pixel's shot noise (VAR_POISSON per unit slope of bright pixels times its mean slope) and \
against its own ERR, each a chi-square test with its number of clean slopes at the \
dark_noisy_threshold significance; or the scale of its group differences above the clipped \
mean plus dark_noisy_threshold clipped sd of all pixels' (and at least twice their median). \
Upstream cut the std of 5-10 slopes at mean plus 5 sd, which flags ~1 in 1,000 pixels for \
noise alone and misses noisy pixels whose READNOISE reference inflates their ERR. A hot or \
telegraph pixel's pedestal is not RC or low-pedestal evidence; an RC transient is not low \
pedestal; a pixel flagged saturated only because a neighbour saturated (jwst grows saturation \
by one pixel) is not saturated of its own (its raw first group tells). A superbias made from the \
same darks takes in a low-pedestal pixel's constant offset: such pixels cannot be found then \
(the host warns).

Combination. flats | darks; a pixel both HOT and DEAD keeps HOT only, and (added \
here) a pixel both RC and DEAD keeps RC only: the RC reset excess lowers the slope fitted to a \
short flat ramp, so about a fifth of the RC pixels of a 10-group full-frame flat look dead. Then, whatever the \
inputs, REFERENCE_PIXEL on the window's reference pixels and the manual flags. manual_flag_file: \
a file in jwst_reffiles' 'x y flag' format (0-based full-frame coordinates, inclusive a:b \
ranges), '' for none, or 'default' for <instrument>_<detector>_manual_flags.txt in \
$MKREFS_DATA_DIR/manual_flags, else $XDG_DATA_HOME/mkrefs/manual_flags, else \
~/.local/share/mkrefs/manual_flags; none is shipped and a missing default file only gets a log \
line.

Differences from jwst_reffiles, fixed bugs. The first flat is counted once (upstream stacks it \
twice). An OPEN pixel on the first science row or column gets its ADJ_OPEN neighbours (upstream's \
negative slice gave none). NIRCam's default dead threshold for normalisation 'none' is the \
detector's (25; 30 NRCA3/NRCA4; 40 NRCALONG; 50 NRCBLONG; upstream always used 25). In \
sigma_rate mode a LOW_QE or OPEN pixel is not also DEAD (upstream flagged nearly all of them \
DEAD too). ADJ_OPEN goes on the 3x3 box around each OPEN pixel, as upstream paints it \
(adj_open_neighbours: 4 flags only the 4 neighbours the OPEN test looks at). Reference pixels come from the geometry of the headers: \
a subarray has them only where it overlaps the detector's reference strips (upstream assumed a \
4-pixel border everywhere); MIRI has reference columns only. SUBARRAY/SUBSTRT/SUBSIZE are the \
inputs' (upstream always wrote FULL). A darks-only mask gets REFERENCE_PIXEL and manual flags \
too. The dead flux check averages the last 4 groups as documented (upstream's code averages the \
first 4) and reads each ramp once. smoothing_type is case-insensitive ('median' works; upstream \
silently used Box2D for anything but 'Median'), and an unknown value is an error. A manual file \
with a malformed line or an unknown flag is an error giving file, line and column (upstream \
skipped unknown flags with a print). Keywords upstream never wrote are written: BPFMXDED (the \
dead threshold used), BPFSMTYP, BPFDONOT, BPFFXLIM (flux_check), BPFADJNB, BPDDONOT, BPDMAPS, and \
HISTORY names the right keyword for each parameter. flag_values is parsed, never mutated, and \
an unknown class or mnemonic is an error naming it.

Numerics. f64 throughout (upstream: float32 for 'smoothed'). Box2D smoothing always uses the \
NaN-interpolating form of astropy's convolve (upstream switches form when the image has a NaN; \
the results differ by ~1e-15), treats +-inf like NaN, and near the image edges averages only the \
pixels inside the image: upstream pads with the image median, which biases the normalisation \
of edge pixels wherever the illumination is not flat and flagged clean corner pixels DEAD. The \
median filter (scipy reflect mode) ignores NaN. NaN pixels are never DEAD, LOW_QE or OPEN.

Metadata and outputs. AUTHOR defaults to 'mkrefs'; DESCRIP, PEDIGREE, USEAFTER as upstream \
('A bad pix mask', GROUND, 2019-04-01T00:00:00). output_file is accepted and ignored (the host \
names outputs). HISTORY lists the software, the parameter descriptions, every input (DATA USED), \
the history text and the DO_NOT_USE choices. plot: true writes PNG figures beside the output \
(<output stem>_mean_flat, _normalized_flat, _normalized_histogram, _mask), never into the \
working directory. quality_check (default off) runs the jwst pipeline's DQInitStep with the new \
mask (override_mask) on the first input's uncal file in $MKREFS_PYTHON or python3; without the \
jwst package it reports the check as skipped (log and summary) and the job succeeds.

Performance. Slope products are read in row bands within memory_budget_mb; per-pixel work is \
parallel over the job's threads.";

/// The bad-pixel-mask generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct BpmGenerator;

impl Generator for BpmGenerator {
    const REFLABEL: &'static str = "bpm";
    const REFTYPE: &'static str = "MASK";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const DEFAULT_IMTYPES: &'static str = "DF+";
    // No dark_current: a dark-subtracted ramp hides the hot pixels (see DESCRIPTION).
    const DEFAULT_SSBSTEPS: &'static str =
        "dq_init, saturation, superbias, refpix, linearity, jump, rate";
    // What the searches read, so that a run writes only that (the host's run-internal
    // products): the slopes of every input, and of the darks their ramps, per-integration
    // slopes and pedestals.
    const DEFAULT_SSB_SAVE_STEPS: &'static str = DEFAULT_SSB_SAVE_STEPS;
    const PARAMS: &'static [&'static dyn Declare] = params::PARAMS;

    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError> {
        run::run(job)
    }
}

mkrefs_plugin_api::export_generator!(Exported(BpmGenerator));
