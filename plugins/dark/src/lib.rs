//! The bundled `dark` generator: a DARK reference file from dark ramps calibrated through the
//! jump step, re-implementing jwst_reffiles' `dark_reffile.py` (UPSTREAM.md) with its
//! differences documented in [`DESCRIPTION`], which `mkrefs describe dark` prints.
//!
//! Layout: [`compute`] streams row bands of SCI and GROUPDQ, excludes flagged groups and
//! reduces each (pixel, group) across integrations; [`params`] declares and checks the
//! parameters; [`run`] ties them to FITS files and writes the DARK (and counts) file.

pub mod compute;
pub mod params;
pub mod run;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::generator::{Exported, Generator, Report};
use mkrefs_support::job::JobView;
use mkrefs_support::params::Declare;

pub use compute::{
    Band, Cell, DarkSource, ErrType, Options, OutputInts, Plan, Statistic, Summary, plan, reduce,
    reduce_darks,
};
pub use run::{FitsDark, counts_path};

/// What `mkrefs describe dark` shows: the algorithm and every deliberate difference from
/// jwst_reffiles. Paragraphs are separated by blank lines.
pub const DESCRIPTION: &str = "\
Makes a DARK reference file from dark ramps calibrated through the jump step (default ssbsteps \
dq_init, saturation, superbias, refpix, linearity, jump; for MIRI configure its own list, e.g. \
dq_init, saturation, linearity, rscd, jump: MIRI has no superbias step). Inputs need a 4-D SCI \
and a GROUPDQ, the only extensions read (default ssb_save_steps jump[SCI, GROUPDQ]: a run \
writes only those of the products it makes for the dark). For every integration and pixel, the group carrying the first JUMP_DET flag and \
all later groups are excluded, as upstream; unlike upstream, groups flagged SATURATED or \
DO_NOT_USE in GROUPDQ are excluded too. PIXELDQ is not used, so reference pixels get a dark. \
Then, per pixel and group, the remaining values across all integrations of all inputs (file \
order, then integration) are sigma clipped (astropy semantics: median centre, std about the \
mean, inclusive bounds; sigma_threshold 3, maxiters 5 as upstream's silent astropy default; \
sigma_clip_inputs: false skips the clip) and reduced to SCI. No rate is fitted: SCI is the dark \
signal per group, including any offset left in group 0, as upstream.

Statistic. Default statistic: mean, the clipped mean (jwst_reffiles 1.0.1); its master branch \
uses the median (statistic: median). The clip already removes outliers, and for the \
near-normal noise that survives the mean is about 25% less noisy than the median. Statistics \
are computed in f64 (upstream: f32 sums), so values differ from upstream at the f32 rounding \
level.

ERR. By default ERR is the uncertainty of SCI: scatter/sqrt(n) for the mean and \
sqrt(pi/2)*scatter/sqrt(n) for the median (the large-sample normal value), with scatter the \
std (ddof 0) of the n values used. Upstream writes the scatter itself; err_type: scatter does \
that.

No or few values. Where a group of a pixel has no value left (e.g. saturated in every dark), \
SCI and ERR are 0 there, as upstream (so a pipeline subtracting it does not create NaN), and \
the pixel's DQ is DO_NOT_USE + UNRELIABLE_DARK. Where a group has fewer than min_good_values \
(default 2) values, so that no scatter exists, the pixel's DQ is UNRELIABLE_DARK (ERR is then \
0). The DQ is 2-D (one value per pixel for all groups); DQ_DEF lists exactly DO_NOT_USE and \
UNRELIABLE_DARK at their standard bits. Upstream writes an all-zero DQ and no DQ_DEF.

Format and keywords. NIR: DarkModel, SCI and ERR float32 (ngroups, ny, nx), DQ uint32 (ny, nx). \
MIRI: DarkMIRIModel, SCI and ERR (nints, ngroups, ny, nx), DQ (nints, 1, ny, nx). MIRI darks \
carry 2 integrations (the jwst documentation: the first applies to the first integration, the \
second to the rest): output integration 1 is made from integration 1 of every input and output \
integration 2 from all their later integrations; when the inputs give fewer than 2 values for \
either, one integration pooling all is written, with a warning (upstream's MIRI path cannot \
write a file at all). The primary header has DESCRIP (upstream loses it; parameter description \
or descrip), AUTHOR, PEDIGREE, USEAFTER (useafter or use_after; always with a time), the \
subarray keywords, READPATT, NFRAMES, NGROUPS and GROUPGAP from the first input (readpatt \
overrides READPATT), NOUTPUTS from the input header (NIR; required for NIRCam, whose CRDS \
selector uses it, upstream omits it), GAINFACT if the input has it (NIR), and EXP_TYPE from the \
input header (e.g. NRC_DARK, MIR_DARKIMG; upstream forces <abbr>_DARK, and MIR_DARK is not a \
valid value), falling back to <abbr>_DARK (MIRI: MIR_DARKIMG or MIR_DARKMRS) when absent. \
SCI and ERR have BUNIT DN. HISTORY lists the creating software and every input basename (DATA \
USED), then the history parameter.

Inputs. All inputs must agree in image size, NGROUPS, INSTRUME, DETECTOR, SUBARRAY, SUBSTRT1/2, \
READPATT, NFRAMES and GROUPGAP, else an error names both files. NINTS may differ (upstream uses \
file 0's NINTS for all). At least 2 integrations in total are needed. A SCI that is not 4-D \
(e.g. a rate file), a missing GROUPDQ and a NaN-filled input are errors naming the file; an \
input not through the jump step (S_JUMP not COMPLETE) is used with a warning.

Side products. counts_file: true writes <output stem>_counts.fits beside the output (COUNTS, \
uint16, shaped like SCI: the values used per pixel and group after exclusion and clipping; \
upstream's counts ignore clipping) and reports it as an extra output. Upstream's PDF and its \
CR_maps.fits in the working directory are not written. max_equivalent_groups, output_file and \
contribution_file are accepted and ignored (the host names the output; the budget sizes the \
blocks).

Performance. One pass over each input: row bands of the SCI and GROUPDQ planes of every \
integration and group are read (inputs in parallel, each reader kept open), sized to \
memory_budget_mb (default 256 MiB): the band shrinks as inputs are added, and if a single row of \
all groups does not fit, groups are taken in chunks, so memory does not grow with the number \
of inputs. Upstream's chunk formula divides by the subarray ratio (inverted; small subarrays \
fail, MIRI and NIRSpec IRS2 full frames divide by zero); here none of that exists. Cells are \
reduced in parallel with the job's threads. SCI is streamed into the output file block by \
block; ERR (and the counts) wait in unnamed scratch files in the job's scratch directory and are \
copied in at the end, so the output cube (ngroups x 16 MiB per extension at full frame) is \
never held in memory.";

/// The dark-current generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct DarkGenerator;

impl Generator for DarkGenerator {
    const REFLABEL: &'static str = "dark";
    const REFTYPE: &'static str = "DARK";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // Two or more darks: one integration has no scatter.
    const DEFAULT_IMTYPES: &'static str = "D+";
    const DEFAULT_SSBSTEPS: &'static str =
        "dq_init, saturation, superbias, refpix, linearity, jump";
    // The extensions of the jump product it reads, so that a run writes only those.
    const DEFAULT_SSB_SAVE_STEPS: &'static str = "jump[SCI, GROUPDQ]";
    const PARAMS: &'static [&'static dyn Declare] = params::PARAMS;

    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError> {
        run::run(job)
    }
}

mkrefs_plugin_api::export_generator!(Exported(DarkGenerator));
