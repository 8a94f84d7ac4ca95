//! Combining the flat and dark maps into the mask, and the header keywords and HISTORY of the
//! MASK file.

use mkrefs_support::dq;
use mkrefs_support::header::HeaderValue;

use crate::params::Settings;

/// `flat | dark`, then the HOT-and-DEAD rule (upstream's): a pixel both HOT and DEAD is hot
/// (DEAD cleared; DO_NOT_USE kept), and, added here, the same for RC: an RC pixel's decaying
/// reset excess lowers the slope fitted to a short flat ramp, so the flats call a fifth of the
/// RC pixels DEAD (measured on simulated full-frame data) although they collect charge.
/// Either map may be absent. Both are `ny × nx`.
pub fn combine(flat: Option<&[u32]>, dark: Option<&[u32]>, npix: usize) -> Vec<u32> {
    let mut out = vec![0u32; npix];
    for m in [flat, dark].into_iter().flatten() {
        for (o, &v) in out.iter_mut().zip(m) {
            *o |= v;
        }
    }
    hot_and_dead_rule(&mut out);
    out
}

/// Clears DEAD where HOT (upstream's XOR on pixels with both bits) or RC is set too.
pub fn hot_and_dead_rule(dq_map: &mut [u32]) {
    for v in dq_map.iter_mut() {
        if *v & (dq::HOT | dq::RC) != 0 && *v & dq::DEAD != 0 {
            *v &= !dq::DEAD;
        }
    }
}

/// The reference-pixel flags: REFERENCE_PIXEL, plus DO_NOT_USE if the flat do-not-use list
/// names REFERENCE_PIXEL (upstream's flats map holds them the same way).
pub fn reference_pixel_flags(refpix: &[bool], do_not_use: &[String]) -> Vec<u32> {
    let dnu = do_not_use.iter().any(|d| d == "REFERENCE_PIXEL");
    let v = dq::REFERENCE_PIXEL | if dnu { dq::DO_NOT_USE } else { 0 };
    refpix.iter().map(|&r| if r { v } else { 0 }).collect()
}

/// What ran, for the keywords.
#[derive(Clone, Debug, Default)]
pub struct Ran {
    pub flats: bool,
    pub darks: bool,
    /// The dead threshold used (after defaulting), when the flats ran.
    pub max_dead: Option<f64>,
    pub flux_check_ran: bool,
}

type Card = (String, HeaderValue, String);

fn card(key: &str, v: impl Into<HeaderValue>, comment: &str) -> Card {
    (key.to_string(), v.into(), comment.to_string())
}

/// The BPF*/BPD* keywords, with upstream's omissions fixed: BPFMXDED is written whenever the
/// flats ran (upstream never writes it), BPFSMTYP, BPFDONOT, BPFFXLIM (the flux-check limit,
/// upstream records it nowhere), BPDDONOT, BPDMAPS and BPDCRFC are written.
pub fn keywords(s: &Settings, ran: &Ran) -> Vec<Card> {
    let f = &s.flat;
    let mut k = vec![
        card(
            "BPFDEAD",
            ran.flats && f.dead_search,
            "Dead pixel search from flats run",
        ),
        card(
            "BPFLOWQE",
            ran.flats && f.low_qe_and_open_search,
            "Low QE / open pixel search from flats run",
        ),
    ];
    if ran.flats {
        k.extend(flat_keywords(s, ran));
    }
    if let Some(md) = ran.max_dead {
        k.push(card(
            "BPFMXDED",
            md,
            "Max normalized signal of a dead pixel",
        ));
    }
    k.push(card(
        "BPFMANFL",
        s.manual_param.as_str(),
        "Manual flag file parameter",
    ));
    k.push(card(
        "BPFDONOT",
        list_or_none(&s.flat_do_not_use).as_str(),
        "Flat flags that also get DO_NOT_USE",
    ));
    k.push(card(
        "BPDSERCH",
        ran.darks,
        "Bad pixel search from darks run",
    ));
    if ran.darks {
        k.extend(dark_keywords(s));
    }
    k
}

/// The parameters of the flat search that ran.
fn flat_keywords(s: &Settings, ran: &Ran) -> [Card; 11] {
    let f = &s.flat;
    [
        card(
            "BPFSCHTP",
            f.dead_search_type.name(),
            "Dead pixel search type",
        ),
        card(
            "BPFSIGMA",
            f.sigma_threshold,
            "Sigma-clipping threshold, flats",
        ),
        card(
            "BPFNORM",
            f.normalization.name(),
            "Mean flat normalization method",
        ),
        card(
            "BPFSMOTH",
            f.smoothing_box_width,
            "Smoothing box width [pixels]",
        ),
        card("BPFSMTYP", f.smoothing_type.name(), "Smoothing type"),
        card(
            "BPFDEDSG",
            f.dead_sigma_threshold,
            "Dead pixel sigma threshold",
        ),
        card("BPFFXCHK", ran.flux_check_ran, "Dead pixel flux check run"),
        card("BPFFXLIM", s.flux_check, "Flux check limit [DN]"),
        card(
            "BPFMXLQE",
            f.max_low_qe_norm_signal,
            "Max normalized signal, low QE",
        ),
        card(
            "BPFMXOAD",
            f.max_open_adj_norm_signal,
            "Min normalized signal of open neighbours",
        ),
        card(
            "BPFADJNB",
            match f.adj_open {
                crate::flats::AdjOpen::Four => 4i64,
                crate::flats::AdjOpen::Eight => 8,
            },
            "Neighbours of an open pixel set ADJ_OPEN",
        ),
    ]
}

/// The parameters of the dark search that ran.
fn dark_keywords(s: &Settings) -> [Card; 13] {
    let d = &s.dark;
    [
        card(
            "BPDCLPSG",
            d.clipping_sigma,
            "Sigma of the clean-slope std clip",
        ),
        card(
            "BPDCLPIT",
            d.max_clipping_iters as i64,
            "Max iterations of that clip",
        ),
        card(
            "BPDNSETH",
            d.noisy_threshold,
            "Noisy pixel threshold [sigma]",
        ),
        card(
            "BPDMXSAT",
            d.max_saturated_fraction,
            "Fully saturated fraction for HOT",
        ),
        card(
            "BPDMXJMP",
            d.max_jump_limit as i64,
            "Jumps per integration, high jump",
        ),
        card(
            "BPDJPRAT",
            d.jump_ratio_threshold,
            "Early/late jump ratio for RC",
        ),
        card(
            "BPDCUTFC",
            d.early_cutoff_fraction,
            "Early/late cutoff fraction",
        ),
        card(
            "BPDPEDTH",
            d.pedestal_sigma_threshold,
            "Pedestal threshold [sigma]",
        ),
        card(
            "BPDRCTH",
            d.rc_fraction_threshold,
            "RC fraction of integrations",
        ),
        card(
            "BPDLOPFC",
            d.low_pedestal_fraction,
            "Low pedestal fraction of integrations",
        ),
        card(
            "BPDCRFC",
            d.high_cr_fraction,
            "High CR fraction of integrations",
        ),
        card(
            "BPDDONOT",
            list_or_none(&d.do_not_use).as_str(),
            "Dark classes that also get DO_NOT_USE",
        ),
        card(
            "BPDMAPS",
            mapping(s).as_str(),
            "Dark class to DQ flag mapping",
        ),
    ]
}

fn list_or_none(v: &[String]) -> String {
    if v.is_empty() {
        "None".into()
    } else {
        v.join(", ")
    }
}

/// `hot: HOT, rc: RC, ...` from the parsed flag_values.
fn mapping(s: &Settings) -> String {
    s.dark
        .flag_values
        .0
        .iter()
        .map(|(k, v)| format!("{k}: {}", v.join("+")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// HISTORY entries describing the parameters (upstream's texts, each naming the keyword its
/// value is in; upstream's flux-check entry points at BPFMXDED and its BPDCRFC entry is lost).
pub fn parameter_history(ran: &Ran) -> Vec<String> {
    let mut h = vec!["Parameter values and descriptions:".to_string()];
    let flat: &[&str] = &[
        "dead_search: Boolean, whether or not to run the dead pixel search using flat field files. The value is stored in the BPFDEAD keyword.",
        "low_qe_and_open_search: Boolean, whether or not to run the low QE and open pixel search using flat field files. The value is stored in the BPFLOWQE keyword.",
        "dead_search_type: Method used to identify dead pixels. The value is stored in the BPFSCHTP keyword.",
        "flat_mean_sigma_threshold: Number of standard deviations to use when sigma-clipping to calculate the mean slope image or the mean across the detector. The value used is stored in the BPFSIGMA keyword.",
        "flat_mean_normalization_method: Specify how the mean image is normalized prior to searching for bad pixels. The value used is stored in the BPFNORM keyword.",
        "smoothing_box_width: Width in pixels of the box kernel to use to compute the smoothed mean image. The value used is stored in the BPFSMOTH keyword.",
        "smoothing_type: Type of smoothing to do: Box2D or median filtering. The value used is stored in the BPFSMTYP keyword.",
        "dead_sigma_threshold: Number of standard deviations below the mean at which a pixel is considered dead. The value used is stored in the BPFDEDSG keyword.",
        "max_dead_norm_signal: Maximum normalized signal rate of a pixel that is considered dead. The value used is stored in the BPFMXDED keyword.",
        "run_dead_flux_check: Boolean, if True, search for pixels erroneously flagged as dead because they are saturated in all groups. The value used is stored in the BPFFXCHK keyword.",
        "flux_check: Signal limit in raw data above which the pixel is considered not dead. The value used is stored in the BPFFXLIM keyword.",
        "max_low_qe_norm_signal: The maximum normalized signal a pixel can have and be considered low QE. The value used is stored in the BPFMXLQE keyword.",
        "max_open_adj_norm_signal: The maximum normalized signal a pixel adjacent to a low QE pixel can have in order for the low QE pixel to be reclassified as OPEN. The value used is stored in the BPFMXOAD keyword.",
        "adj_open_neighbours: Number of neighbours of an OPEN pixel flagged ADJ_OPEN (4 or 8). The value used is stored in the BPFADJNB keyword.",
    ];
    let always: &[&str] = &[
        "flat_do_not_use: List of bad pixel types (from flats) where the DO_NOT_USE flag is also applied. The values used are stored in the BPFDONOT keyword.",
        "manual_flag_file: Name of the ascii file containing a list of pixels to be added manually. The value used is stored in the BPFMANFL keyword.",
        "badpix_from_dark: Boolean, whether or not the bad pixel from dark search has been run. The value is stored in the BPDSERCH keyword.",
    ];
    let dark: &[&str] = &[
        "dark_stdev_clipping_sigma: Number of sigma to use when sigma-clipping 2D stdev image. The value used is stored in the BPDCLPSG keyword.",
        "dark_max_clipping_iters: Max number of iterations to use when sigma clipping mean and stdev values. The value used is stored in the BPDCLPIT keyword.",
        "dark_noisy_threshold: Number of sigma above mean noise for noisy pix threshold. The value used is stored in the BPDNSETH keyword.",
        "max_saturated_fraction: Fraction of integrations within which a pixel must be fully saturated before flagging it as HOT. The value used is stored in the BPDMXSAT keyword.",
        "max_jump_limit: Maximum number of jumps a pixel can have in an integration before it is flagged as a \"high jump\" pixel. The value used is stored in the BPDMXJMP keyword.",
        "jump_ratio_threshold: Cutoff for the ratio of jumps early in the ramp to jumps later in the ramp when looking for RC pixels. The value used is stored in the BPDJPRAT keyword.",
        "early_cutoff_fraction: Fraction of the integration to use when comparing the jump rate early in the integration to that across the entire integration. The value used is stored in the BPDCUTFC keyword.",
        "pedestal_sigma_threshold: Pixels with pedestal values more than this limit above the mean are flagged as RC. The value used is stored in the BPDPEDTH keyword.",
        "rc_fraction_threshold: Fraction of integrations within which a pixel must be identified as an RC pixel before it will be flagged as a permanent RC pixel. The value used is stored in the BPDRCTH keyword.",
        "low_pedestal_fraction: Fraction of integrations within which a pixel must be identified as a low pedestal pixel before it will be flagged as a permanent low pedestal pixel. The value used is stored in the BPDLOPFC keyword.",
        "high_cr_fraction: Fraction of integrations within which a pixel must have many jumps before it is flagged as a high cosmic ray pixel. The value used is stored in the BPDCRFC keyword.",
        "dark_hot_sigma_threshold: Number of clipped standard deviations above the clipped median slope of an integration at which a pixel's slope is hot. The value used is stored in the BPDHOTSG keyword.",
        "hot_pix_frac_threshold: Fraction of integrations in which a pixel's slope must be hot for it to be flagged HOT. The value used is stored in the BPDHOTFR keyword.",
        "dark_do_not_use: List of bad pixel types (from darks) where the DO_NOT_USE flag is also applied. The values used are stored in the BPDDONOT keyword.",
        "flag_values: Mapping of the dark bad pixel types to JWST DQ flags. The values used are stored in the BPDMAPS keyword.",
    ];
    if ran.flats {
        h.extend(flat.iter().map(|s| s.to_string()));
    }
    h.extend(always.iter().map(|s| s.to_string()));
    if ran.darks {
        h.extend(dark.iter().map(|s| s.to_string()));
    }
    h
}

/// The closing HISTORY sentences of the wrapper (UPSTREAM.md, 'Keywords and HISTORY'; minus the
/// user text, which the shared history already holds).
pub fn do_not_use_history(s: &Settings, ran: &Ran) -> Vec<String> {
    let mut h = Vec::new();
    if ran.flats || !s.flat_do_not_use.is_empty() {
        h.push(format!(
            "Bad pixel types from flat to which DO_NOT_USE is applied: {}",
            list_or_none(&s.flat_do_not_use)
        ));
    }
    if ran.darks {
        h.push(format!(
            "Bad pixel types from dark to which DO_NOT_USE is applied: {}",
            list_or_none(&s.dark.do_not_use)
        ));
        h.push(format!(
            "Mapping of jwst_reffiles bad pixel types to jwst cal bad pixel flags: {}",
            mapping(s)
        ));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_and_dead_is_hot() {
        let flat = [dq::DEAD | dq::DO_NOT_USE, dq::DEAD, dq::LOW_QE, 0, dq::DEAD];
        let dark = [
            dq::HOT | dq::DO_NOT_USE,
            0,
            dq::HOT,
            dq::RC,
            dq::RC | dq::DO_NOT_USE,
        ];
        let m = combine(Some(&flat), Some(&dark), 5);
        assert_eq!(
            m,
            vec![
                dq::HOT | dq::DO_NOT_USE,
                dq::DEAD,
                dq::HOT | dq::LOW_QE,
                dq::RC,
                dq::RC | dq::DO_NOT_USE
            ]
        );
        assert_eq!(combine(None, Some(&dark), 5), dark.to_vec());
        assert_eq!(combine(Some(&flat), None, 5), flat.to_vec());
    }

    #[test]
    fn reference_flags_with_and_without_dnu() {
        let r = [true, false];
        assert_eq!(reference_pixel_flags(&r, &[]), vec![dq::REFERENCE_PIXEL, 0]);
        assert_eq!(
            reference_pixel_flags(&r, &["REFERENCE_PIXEL".into()]),
            vec![dq::REFERENCE_PIXEL | dq::DO_NOT_USE, 0]
        );
    }
}
