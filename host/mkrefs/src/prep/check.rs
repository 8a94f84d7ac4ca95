//! Whether a product found in ssbdir (or a search directory) can be trusted before a job reads
//! it: complete on disk, and with data of the kind its S_* keywords claim. A product cut short
//! by a killed job, or a file whose keywords say "ramp fitted" while it still holds a ramp,
//! would otherwise fail (or silently mislead) a generator long after the run started.

use std::path::Path;

use mkrefs_support::fits_layout::{HduLayout, read_layout};

use crate::prep::steps::{SaveProduct, Step};

fn hdu<'a>(layout: &'a [HduLayout], name: &str) -> Option<&'a HduLayout> {
    layout.iter().find(|h| h.name.eq_ignore_ascii_case(name))
}

/// The (integrations, groups, rows, columns) of the raw exposure's SCI; empty when it cannot be
/// told (then only completeness is checked; the raw file's own problems are reported by the
/// job that reads it).
fn raw_shape(raw: &Path) -> Vec<u64> {
    read_layout(raw)
        .ok()
        .and_then(|layout| hdu(&layout, "SCI").map(HduLayout::shape))
        .unwrap_or_default()
}

/// Checks `product`, found for input `raw` at `state` (`which`: `None` for the input's own
/// product, else a saved or side product). The error names the file, what its keywords claim
/// and what its data hold, and says what to do.
pub fn check_product(
    product: &Path,
    raw: &Path,
    state: &[Step],
    which: Option<SaveProduct>,
) -> Result<(), String> {
    let fix = "delete it, or rerun with --recalibrate to remake it";
    let layout = read_layout(product).map_err(|e| format!("{e}; {fix}"))?;
    let raw = raw_shape(raw);
    let [nints, ngroups, ny, nx] = raw[..] else {
        return Ok(()); // not a ramp: nothing to compare with
    };
    let claims = |what: &str| {
        let steps: Vec<&str> = state.iter().map(|s| s.name()).collect();
        format!(
            "{} claims {} done ({what})",
            product.display(),
            steps.join(", ")
        )
    };
    let (what, want_sci): (&str, Vec<u64>) = match which {
        Some(SaveProduct::Rateints) => ("per-integration slopes", vec![nints, ny, nx]),
        Some(SaveProduct::Fitopt) => {
            let pedestal = hdu(&layout, "PEDESTAL").ok_or_else(|| {
                format!(
                    "{} but has no PEDESTAL extension; {fix}",
                    claims("ramp-fit optional output")
                )
            })?;
            if pedestal.shape() != [nints, ny, nx] {
                return Err(format!(
                    "{} but its PEDESTAL has shape {:?}, not {:?}; {fix}",
                    claims("ramp-fit optional output"),
                    pedestal.shape(),
                    [nints, ny, nx]
                ));
            }
            return Ok(());
        }
        _ if state.contains(&Step::Rate) => ("a slope image", vec![ny, nx]),
        _ => ("a ramp", vec![nints, ngroups, ny, nx]),
    };
    let Some(sci) = hdu(&layout, "SCI") else {
        return Err(format!("{} but has no SCI extension; {fix}", claims(what)));
    };
    if sci.shape() != want_sci {
        return Err(format!(
            "{} but its SCI has shape {:?}; the input's ({nints} integrations of {ngroups} \
             groups of {ny}x{nx}) needs {:?}; {fix}",
            claims(what),
            sci.shape(),
            want_sci
        ));
    }
    if state.contains(&Step::DqInit) && which.is_none_or(|w| matches!(w, SaveProduct::Step(_))) {
        let dq = if state.contains(&Step::Rate) {
            "DQ"
        } else {
            "PIXELDQ"
        };
        if hdu(&layout, dq).is_none() {
            return Err(format!(
                "{} but has no {dq} extension, which dq_init makes; {fix}",
                claims(what)
            ));
        }
        if !state.contains(&Step::Rate) {
            match hdu(&layout, "GROUPDQ") {
                Some(g) if g.shape() == want_sci => {}
                Some(g) => {
                    return Err(format!(
                        "{} but its GROUPDQ has shape {:?}, not {:?}; {fix}",
                        claims(what),
                        g.shape(),
                        want_sci
                    ));
                }
                None => {
                    return Err(format!(
                        "{} but has no GROUPDQ extension, which dq_init makes; {fix}",
                        claims(what)
                    ));
                }
            }
        }
    }
    Ok(())
}
