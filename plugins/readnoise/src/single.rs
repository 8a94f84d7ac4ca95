//! `single_value`: one clipped-mean read noise for the whole file (see UPSTREAM.md,
//! 'single_value').

use mkrefs_support::geometry::{Flip, dms_to_detector_flip, flip_image};
use mkrefs_support::stats::clipped_mean_std_flat;

/// Where the single value was measured, for the log.
#[derive(Clone, Debug, PartialEq)]
pub struct SingleValue {
    pub value: f64,
    /// Pixels that took part (finite, not reference pixels, inside the region).
    pub n: usize,
    pub region: String,
}

/// The clipped mean of the map over upstream's region: for NIRCam full frames (SUBARRAY FULL or
/// GENERIC) the first quarter of the columns in detector orientation (one readout amplifier),
/// otherwise the whole image. Unlike upstream, pixels marked in `reference` are left out: their
/// noise is not that of the light-sensitive pixels the value stands for. NaN pixels never take
/// part. The clip is the flattened one of UPSTREAM.md, 'Sigma clipping', on f64, as upstream clips
/// the f64 map.
#[allow(clippy::too_many_arguments)]
pub fn single_value(
    map: &[f64],
    ny: usize,
    nx: usize,
    instrument: &str,
    detector: &str,
    subarray: &str,
    reference: Option<&[bool]>,
    sigma: f64,
    maxiters: usize,
) -> Result<SingleValue, String> {
    let mut v: Vec<f64> = match reference {
        Some(mask) => map
            .iter()
            .zip(mask)
            .map(|(&x, &is_ref)| if is_ref { f64::NAN } else { x })
            .collect(),
        None => map.to_vec(),
    };
    let nircam_full = instrument.eq_ignore_ascii_case("NIRCAM")
        && ["FULL", "GENERIC"]
            .iter()
            .any(|s| subarray.trim().eq_ignore_ascii_case(s));
    let region;
    if nircam_full {
        if !nx.is_multiple_of(4) {
            return Err(format!(
                "single_value needs a column count divisible by 4 for a NIRCam full frame \
                 (one amplifier is a quarter of the columns), but the image has {nx} columns"
            ));
        }
        let flip = dms_to_detector_flip(detector);
        let flipped = flip_image(flip, &v, ny, nx);
        let q = nx / 4;
        v = flipped
            .chunks_exact(nx)
            .flat_map(|row| row[..q].iter().copied())
            .collect();
        let how = match flip {
            Flip::X => "x flipped to detector orientation",
            Flip::Y => "y flipped to detector orientation",
            Flip::None => "no flip known for this detector",
        };
        region = format!("first {q} of {nx} columns in detector orientation ({how})");
    } else {
        region = "the whole image".to_string();
    }
    let stats = clipped_mean_std_flat(&v, sigma, maxiters)
        .ok_or_else(|| format!("single_value: no finite read noise in {region}"))?;
    Ok(SingleValue {
        value: stats.mean,
        n: stats.n,
        region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nircam_full_frame_uses_first_detector_quarter() {
        // 2 x 8 map; NRCA1 flips x, so detector columns 0..2 are DMS columns 7 and 6.
        let map = [
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0, //
            1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0, 5.0,
        ];
        let s = single_value(&map, 2, 8, "NIRCAM", "NRCA1", "FULL", None, 3.0, 3).unwrap();
        assert_eq!((s.value, s.n), (5.0, 4));
        // NRCA2 flips y: the first columns stay the first columns.
        let s = single_value(&map, 2, 8, "NIRCAM", "NRCA2", "FULL", None, 3.0, 3).unwrap();
        assert_eq!(s.value, 1.0);
        // Another instrument or a subarray uses everything.
        let s = single_value(&map, 2, 8, "NIRISS", "NIS", "FULL", None, 3.0, 3).unwrap();
        assert_eq!((s.value, s.n), (2.0, 16));
        let s = single_value(&map, 2, 8, "NIRCAM", "NRCA1", "SUB64P", None, 3.0, 3).unwrap();
        assert_eq!(s.n, 16);
    }

    #[test]
    fn reference_pixels_and_nan_are_left_out() {
        let map = [f64::NAN, 2.0, 100.0, 2.0];
        let reference = [false, false, true, false];
        let s = single_value(
            &map,
            1,
            4,
            "MIRI",
            "MIRIMAGE",
            "FULL",
            Some(&reference),
            3.0,
            3,
        )
        .unwrap();
        assert_eq!((s.value, s.n), (2.0, 2));
    }

    #[test]
    fn errors() {
        let e = single_value(&[1.0; 6], 1, 6, "NIRCAM", "NRCB1", "FULL", None, 3.0, 3).unwrap_err();
        assert!(e.contains("divisible by 4"), "{e}");
        let e = single_value(
            &[f64::NAN; 4],
            1,
            4,
            "NIRSPEC",
            "NRS1",
            "FULL",
            None,
            3.0,
            3,
        )
        .unwrap_err();
        assert!(e.contains("no finite"), "{e}");
    }
}
