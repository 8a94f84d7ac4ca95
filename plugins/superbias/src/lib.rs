//! The bundled `superbias` generator: a SUPERBIAS reference file from the first group of dark
//! ramps, re-implementing jwst_reffiles' `superbias.py` (UPSTREAM.md) with its differences
//! documented in [`DESCRIPTION`], which `mkrefs describe superbias` prints.
//!
//! Layout: [`compute`] streams row bands of group 0 and reduces each pixel, then flags;
//! [`params`] declares and checks the parameters; `run` ties them to FITS files (`inputs`) and
//! the reference-file writer.

pub mod compute;
pub mod params;
mod run;

use mkrefs_plugin_api::GeneratorError;
use mkrefs_support::generator::{Exported, Generator, Report};
use mkrefs_support::job::JobView;
use mkrefs_support::params::Declare;

pub use compute::{
    BiasMaps, FLAGGED, Integrations, RampDims, RampSource, dq_map, superbias_maps,
    unreliable_threshold,
};

/// What `mkrefs describe superbias` shows: the algorithm and every deliberate difference from
/// jwst_reffiles 1.0.1. Paragraphs are separated by blank lines.
pub const DESCRIPTION: &str = "\
Makes a SUPERBIAS reference file (SuperBiasModel: SCI, DQ, ERR, DQ_DEF) from the first group \
(group 0) of dark ramps with a 4-D SCI, normally raw uncal. SCI is, per pixel, the sigma-clipped \
mean of the group-0 frames in file order (astropy sigma_clip semantics, f64 statistics as \
numpy's masked arrays); a pixel with no finite frame is NaN. Like upstream, no DQ is used and \
the result contains the dark signal accumulated by the first read.

Integrations. By default only integration 0 of each input is used, as upstream (parameter \
integrations: first): group 0 of later integrations follows a different reset history, and on \
NIR detectors the first integration of an exposure can sit at a slightly different bias level, \
so mixing them would widen the scatter. integrations: all uses group 0 of every integration for \
more samples when the integrations are known to be alike.

ERR. Upstream's ERR is the scatter (ddof 0) of single frames, which is not the uncertainty of \
the mean it accompanies. Here ERR is by default the error of the clipped mean, \
scatter/sqrt(n) with n the frames kept at that pixel (err_type: mean); err_type: scatter \
writes upstream's quantity. Either way there is one clip per pixel (upstream clips twice, \
identically).

DQ. A pixel is flagged when its single-frame scatter is not finite or exceeds the clipped mean \
plus bad_sigma_threshold clipped standard deviations of the scatter image (flattened clip with \
bad_clipping_sigma and bad_max_clipping_iters; high side only; reference pixels included, as \
upstream). This criterion is upstream's and does not depend on err_type. Upstream meant the \
value 3 (DO_NOT_USE and UNRELIABLE_BIAS as local bits 0 and 1), but modern stdatamodels \
translates DQ on save and writes 1, losing UNRELIABLE_BIAS. Here DQ holds the standard values, \
DO_NOT_USE (1) + UNRELIABLE_BIAS (2^22) = 4194305, and DQ_DEF has exactly those two rows at their \
standard bits 0 and 22 (no duplicate GOOD row), so the flags survive a round trip through \
stdatamodels unchanged.

Other differences from jwst_reffiles. Only the row bands of the group-0 frames used are read, \
never whole files. Inputs must agree in image size, INSTRUME, DETECTOR, SUBARRAY and \
SUBSTRT1/2, else an error names both files. A NaN-filled input, a SCI that is not 4-D, a missing \
SCI and fewer than 2 frames per pixel are errors. The strings 'none'/'null' (whole value) mean \
null for subarray and readpatt. The author default is 'mkrefs'. READPATT is 'ANY' unless \
readpatt is given (a CRDS selector: the bias does not depend on the readout pattern's grouping). \
Upstream's side products (plot, save_filled, box_width) are not implemented and therefore not \
accepted; save_reffile and outfile are accepted and ignored (a job always writes its file, named \
by the host). HISTORY lists the creating software and every input basename (DATA USED), then \
the history parameter.

Performance. Inputs are read in parallel (one reader each, kept open) in row blocks of at most \
4 MB (two of them within memory_budget_mb), each block read while the one before is reduced in \
parallel over rows with the job's threads; memory does not grow with the number of inputs. The \
UNRELIABLE_BIAS threshold's clip runs on the same threads, and the summary's median while the \
file is written.";

/// The superbias generator.
#[derive(Clone, Copy, Debug, Default)]
pub struct SuperbiasGenerator;

impl Generator for SuperbiasGenerator {
    const REFLABEL: &'static str = "superbias";
    const REFTYPE: &'static str = "SUPERBIAS";
    const DESCRIPTION: &'static str = DESCRIPTION;
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    // Two or more darks; only group 0 of SCI is read, so raw uncal files are right.
    const DEFAULT_IMTYPES: &'static str = "D+";
    const PARAMS: &'static [&'static dyn Declare] = params::PARAMS;

    fn run(&self, job: &JobView<'_>) -> Result<Report, GeneratorError> {
        run::run(job)
    }
}

mkrefs_plugin_api::export_generator!(Exported(SuperbiasGenerator));
