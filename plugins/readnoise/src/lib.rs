//! The bundled `readnoise` generator: a READNOISE reference file (CDS noise in DN) from dark
//! ramps, re-implementing jwst_reffiles' `readnoise.py` (UPSTREAM.md) with its bugs fixed and its
//! differences documented in [`DESCRIPTION`], which `mkrefs describe readnoise` prints.
//!
//! Layout: [`cds`] plans the group differences, [`compute`] streams row blocks and reduces each
//! pixel, [`single`] makes the `single_value` constant, [`params`] declares and checks the
//! parameters, and `run` ties them to FITS files (`inputs`) and the reference-file writer.

pub mod cds;
pub mod compute;
pub mod params;
mod run;
pub mod single;
pub mod unbiased;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::generator::{Exported, Generator, Report};
use mkrefs_support::job::JobView;
use mkrefs_support::params::Declare;

pub use cds::{CdsPlan, GroupDiff};
pub use compute::{MapOptions, MapResult, Method, RampDims, RampSource, readnoise_map};

/// What `mkrefs describe readnoise` shows: the algorithm and every deliberate difference from
/// jwst_reffiles 1.0.1. Paragraphs are separated by blank lines.
pub const DESCRIPTION: &str = "\
Makes a READNOISE reference file (ReadnoiseModel): the read noise of correlated double samples \
(CDS, the difference of two groups) in DN, per pixel, from one or more dark ramps with a 4-D SCI \
(raw uncal or calibrated). As jwst_reffiles' readnoise.py: no gain, no /sqrt(2); only SCI is read \
(no DQ masking, so a pixel saturated in every group gets 0); MIRI ramps use groups [5, G-1).

Methods. 'stack' (default): per pixel, the sigma-clipped standard deviation (ddof 0) of the CDS \
frames of all inputs together, in the order files, integrations, pairs. 'ramp': the clipped std \
of each input's frames, then the sigma-clipped mean of those per-input values. Group \
differences: 'independent' pairs (1-0), (3-2), ...; \
'consecutive' uses every neighbour pair (G-1 correlated frames). Every clip follows astropy's \
sigma_clip exactly (median centre, population std, inclusive bounds, at most max_clipping_iters \
evaluations, final mask from the final bounds); the stack statistics reproduce numpy's masked \
mean and std (f32 sums in stack order).

Estimator. A clipped std (ddof 0) is lower than the noise that made the samples: by ddof 0, by \
the square root, and by the clip, which cuts the normal distribution's tails with the outliers \
(together 2-4 % for tens of samples; upstream's 'ramp', averaging stds of few frames, is lower \
still). By default each clipped std is divided by the mean clipped std of standard-normal samples \
of the same count, clipped the same way (measured once per count by a deterministic simulation), \
so both methods give an unbiased estimate of the CDS noise for normal noise. \
upstream_estimator: true keeps jwst_reffiles' numbers.

Differences from jwst_reffiles. (1) An odd number of groups in 'independent' mode crashes \
upstream; here the last group of each integration is left out, with a warning. (2) A pixel \
without any finite CDS value is NaN in both methods (upstream: 0.0 for 'stack', which claims a \
perfect pixel; ReadnoiseModel has no DQ, so NaN is the only honest marker); in 'ramp' an input \
with no finite value at a pixel is left out of the combine instead of counting as 0. \
(3) single_value leaves reference pixels out of its region (upstream includes them; their noise is \
not that of light-sensitive pixels); the region is otherwise upstream's: for NIRCam SUBARRAY \
FULL/GENERIC the first quarter of the columns in detector orientation, else the whole image. \
(4) Inputs must agree in image size, INSTRUME, DETECTOR, SUBARRAY and SUBSTRT1/2, else an error \
names both files; NINTS and NGROUPS may differ. A NaN-filled input, a SCI that is not 4-D, a \
missing SCI and too few frames for a statistic (2 per pixel for 'stack', 2 per input for \
'ramp') are errors. (5) The strings 'none'/'null' (whole value, any case) mean null for \
subarray and readpatt; upstream nulls any value containing 'none'. (6) The author default is \
'mkrefs'.

READPATT is 'ANY' unless the readpatt parameter is given (as upstream): it is a CRDS selector, \
and CDS noise of single frames applies to every readout pattern; inputs whose groups average \
several frames (NFRAMES > 1) get a warning because their CDS noise is lower. HISTORY lists the \
creating software and the basename of every input (DATA USED), then the history parameter.

Performance. Row blocks of every input are read (one read per group, readers kept open, inputs \
read in parallel) and reduced in parallel over rows with the job's threads; the block height is \
chosen so that the band of CDS frames fits memory_budget_mb, so memory does not grow with the \
number of inputs. Upstream's nproc, slice_width, save_tmp and outfile are accepted and ignored \
(the host sets threads and the output name; save_tmp's bare f64 copy is not written).";

/// The readnoise generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadnoiseGenerator;

impl Generator for ReadnoiseGenerator {
    const REFLABEL: &'static str = "readnoise";
    const REFTYPE: &'static str = "READNOISE";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // One or more darks; only SCI is read, so raw uncal files need no calibration.
    const DEFAULT_IMTYPES: &'static str = "D+";
    const PARAMS: &'static [&'static dyn Declare] = params::PARAMS;

    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError> {
        run::run(job)
    }
}

mkrefs_plugin_api::export_generator!(Exported(ReadnoiseGenerator));
