//! Whether each input's data fit its keywords, checked before anything is planned: the image
//! against its detector and subarray keywords (a file whose keywords contradict its data would
//! otherwise give a reference file that claims the wrong window), and a ramp's integrations and
//! groups against NINTS and NGROUPS (which the steps and generators trust). The full-frame sizes come from a lookup
//! (`support::geometry` for JWST's detectors; an instrument profile can supply others), so this
//! module knows no instrument itself.

use std::path::Path;

use mkrefs_support::fits_layout::HduLayout;
use mkrefs_support::header::Header;

/// A detector's full frame, `(nx, ny)`, by DETECTOR value; `None` when it is not known.
pub(crate) type FrameSize<'a> = dyn Fn(&str) -> Option<(usize, usize)> + 'a;

/// The image size of the SCI extension, `(nx, ny)` (its last two axes).
fn image_size(layout: &[HduLayout]) -> Option<(usize, usize)> {
    let sci = layout.iter().find(|h| h.name.eq_ignore_ascii_case("SCI"))?;
    match sci.naxes.as_slice() {
        [nx, ny, ..] => Some((*nx as usize, *ny as usize)),
        _ => None,
    }
}

/// The problems of one input: its SCI image against its detector's frame and its SUBARRAY,
/// SUBSIZE1/2 and SUBSTRT1/2 keywords. Nothing is checked when the file has no SCI image or
/// the detector is unknown (later stages say what they miss).
pub(crate) fn check(
    path: &Path,
    header: &Header,
    layout: &[HduLayout],
    frame: &FrameSize<'_>,
) -> Vec<String> {
    let Some((nx, ny)) = image_size(layout) else {
        return Vec::new();
    };
    let detector = header.get_str("DETECTOR").unwrap_or("").trim().to_string();
    let Some((full_nx, full_ny)) = frame(&detector) else {
        return Vec::new();
    };
    let file = path.display();
    let mut problems = Vec::new();
    let subarray = header.get_str("SUBARRAY").map(str::trim).unwrap_or("");
    if nx > full_nx || ny > full_ny {
        problems.push(format!(
            "{file}: the SCI image is {nx}x{ny}, larger than the {full_nx}x{full_ny} frame of \
             DETECTOR {detector}; check DETECTOR, or the file is not an exposure of that detector"
        ));
    } else if subarray.eq_ignore_ascii_case("FULL") && (nx, ny) != (full_nx, full_ny) {
        problems.push(format!(
            "{file}: SUBARRAY is FULL but the SCI image is {nx}x{ny}, not the {full_nx}x{full_ny} \
             frame of DETECTOR {detector}; check SUBARRAY and SUBSIZE1/2"
        ));
    }
    let int = |key: &str| header.get_i64(key);
    for (key, have) in [("SUBSIZE1", nx), ("SUBSIZE2", ny)] {
        if let Some(v) = int(key)
            && v != have as i64
        {
            problems.push(format!(
                "{file}: {key} is {v} but the SCI image is {nx}x{ny}; the window keywords do \
                 not describe the data"
            ));
        }
    }
    if let (Some(x0), Some(y0)) = (int("SUBSTRT1"), int("SUBSTRT2")) {
        let fits = x0 >= 1
            && y0 >= 1
            && (x0 - 1) as usize + nx <= full_nx
            && (y0 - 1) as usize + ny <= full_ny;
        if !fits {
            problems.push(format!(
                "{file}: SUBSTRT1={x0}, SUBSTRT2={y0} with the {nx}x{ny} SCI image reach outside \
                 the {full_nx}x{full_ny} frame of DETECTOR {detector}"
            ));
        }
    }
    problems
}

/// The problems of one input's readout keywords: NINTS and NGROUPS must be whole numbers and,
/// for a ramp (4-D SCI) or per-integration slopes (3-D), the sizes of its SCI.
pub(crate) fn check_readout(path: &Path, header: &Header, layout: &[HduLayout]) -> Vec<String> {
    let Some(sci) = layout.iter().find(|h| h.name.eq_ignore_ascii_case("SCI")) else {
        return Vec::new();
    };
    let file = path.display();
    let axes: &[(&str, usize)] = match sci.naxes.len() {
        4 => &[("NGROUPS", 2), ("NINTS", 3)],
        3 => &[("NINTS", 2)],
        _ => &[],
    };
    let mut problems = Vec::new();
    for &(key, axis) in axes {
        let have = sci.naxes[axis];
        let what = if key == "NINTS" {
            "integrations"
        } else {
            "groups"
        };
        match header.get(key) {
            None => {}
            Some(v) => match v.as_i64() {
                Some(n) if n == have as i64 => {}
                Some(n) => problems.push(format!(
                    "{file}: {key} is {n} but the SCI data hold {have} {what}; the keyword \
                     or the data are wrong"
                )),
                None => problems.push(format!(
                    "{file}: {key} is '{v}', not a whole number (the SCI data hold {have} {what})"
                )),
            },
        }
    }
    problems
}

/// The full frame of a detector, from its instrument profile.
pub(crate) fn profile_frame(detector: &str) -> Option<(usize, usize)> {
    mkrefs_support::geometry::detector_info(detector).map(|d| (d.full_nx, d.full_ny))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mkrefs_support::header::HeaderValue;

    fn sci(nx: u64, ny: u64) -> Vec<HduLayout> {
        vec![HduLayout {
            name: "SCI".into(),
            bitpix: 16,
            naxes: vec![nx, ny, 10, 2],
            data_start: 0,
            data_bytes: 0,
        }]
    }

    fn header(subarray: &str, window: Option<(i64, i64, i64, i64)>) -> Header {
        let mut h = Header::new();
        h.set("DETECTOR", "NRCA1");
        h.set("SUBARRAY", subarray);
        if let Some((x0, y0, nx, ny)) = window {
            h.set("SUBSTRT1", x0);
            h.set("SUBSTRT2", y0);
            h.set("SUBSIZE1", nx);
            h.set("SUBSIZE2", ny);
        }
        h
    }

    fn problems(h: &Header, layout: &[HduLayout]) -> Vec<String> {
        check(Path::new("/d/x.fits"), h, layout, &profile_frame)
    }

    #[test]
    fn consistent_files_pass() {
        assert!(problems(&header("FULL", Some((1, 1, 2048, 2048))), &sci(2048, 2048)).is_empty());
        assert!(problems(&header("SUB64P", Some((1, 1, 64, 64))), &sci(64, 64)).is_empty());
        // No SCI image, or a detector nobody knows: nothing to say here.
        assert!(problems(&header("FULL", None), &[]).is_empty());
        let mut other = header("FULL", None);
        other.set("DETECTOR", "IRIS1");
        assert!(problems(&other, &sci(4096, 4096)).is_empty());
    }

    #[test]
    fn an_image_larger_than_its_detector_is_named() {
        let p = problems(&header("FULL", None), &sci(4096, 4096));
        assert_eq!(
            p,
            [
                "/d/x.fits: the SCI image is 4096x4096, larger than the 2048x2048 frame of DETECTOR \
              NRCA1; check DETECTOR, or the file is not an exposure of that detector"
            ]
        );
    }

    #[test]
    fn readout_keywords_must_be_whole_numbers_that_fit_the_ramp() {
        let ramp = sci(64, 64); // 10 groups x 2 integrations
        let with = |key: &str, v: HeaderValue| {
            let mut h = header("SUB64P", None);
            h.set(key, v);
            check_readout(Path::new("/d/x.fits"), &h, &ramp)
        };
        assert!(with("NGROUPS", HeaderValue::Int(10)).is_empty());
        assert!(with("NINTS", HeaderValue::Float(2.0)).is_empty());
        let p = with("NGROUPS", HeaderValue::from("ten"));
        assert_eq!(
            p,
            ["/d/x.fits: NGROUPS is 'ten', not a whole number (the SCI data hold 10 groups)"]
        );
        let p = with("NINTS", HeaderValue::Float(2.5));
        assert!(p[0].contains("NINTS is '2.5', not a whole number"), "{p:?}");
        for bad in [100_000_000i64, -3] {
            let p = with("NGROUPS", HeaderValue::Int(bad));
            assert!(
                p[0].contains(&format!("NGROUPS is {bad} but the SCI data hold 10 groups")),
                "{p:?}"
            );
        }
    }

    #[test]
    fn window_keywords_that_contradict_the_data_are_named() {
        let p = problems(&header("FULL", None), &sci(64, 64));
        assert!(
            p[0].contains("SUBARRAY is FULL but the SCI image is 64x64"),
            "{p:?}"
        );
        let p = problems(&header("SUB64P", Some((1, 1, 128, 64))), &sci(64, 64));
        assert!(
            p[0].contains("SUBSIZE1 is 128 but the SCI image is 64x64"),
            "{p:?}"
        );
        let p = problems(&header("SUB64P", Some((2000, 1, 64, 64))), &sci(64, 64));
        assert!(p[0].contains("SUBSTRT1=2000, SUBSTRT2=1"), "{p:?}");
    }
}
