//! The combine job's work: reading a reflabel's reference files and writing the combined one.
//!
//! The inputs must agree on REFTYPE, DETECTOR and the shape of every array combined. The HDUs
//! are those of the first input, in its order: SCI combined by the rule's method (ERR with
//! it), DQ by flag counts, DQ_DEF copied; any other extension is left out and named in the
//! log. The primary header is that of the input with the earliest USEAFTER, with DATE and
//! FILENAME of the new file, and HISTORY saying how and from what it was combined. Arrays are
//! streamed in bands of rows, so memory does not grow with the number of groups of a DARK.
//! A single input is linked (or copied) as it is.

use std::path::{Path, PathBuf};

use mkrefs_support::fits::{
    FitsError, FitsWriter, ImageReader, hdu_names, read_dq_def, read_header, read_primary_header,
};
use mkrefs_support::header::{Header, HeaderValue, is_copyable_key};

use crate::atomic;
use crate::combine::rule::{Method, Rule};
use crate::combine::stack::{combine_band, combine_flags};

/// Rows read from every input at once.
const BAND_ROWS: usize = 64;

/// Combines `inputs` into `output` by `rule`; returns the job's one-line summary.
pub(crate) fn combine_files(
    inputs: &[PathBuf],
    output: &Path,
    rule: Rule,
) -> Result<String, String> {
    let [only] = inputs else {
        return combine_several(inputs, output, rule);
    };
    atomic::link_or_copy(only, output)?;
    Ok(format!("copied from {} (the only file)", only.display()))
}

fn fits(e: FitsError) -> String {
    e.to_string()
}

/// The primary headers, checked to agree; the index of the earliest USEAFTER.
fn read_primaries(inputs: &[PathBuf]) -> Result<(Vec<Header>, usize), String> {
    let headers = inputs
        .iter()
        .map(|p| read_primary_header(p).map_err(fits))
        .collect::<Result<Vec<_>, _>>()?;
    for key in ["REFTYPE", "DETECTOR"] {
        let first = headers[0].get_str(key);
        if let Some((i, h)) = headers
            .iter()
            .enumerate()
            .find(|(_, h)| h.get_str(key) != first)
        {
            return Err(format!(
                "{}: {key} is {:?}, but {} has {:?}; only files of one {key} combine",
                inputs[i].display(),
                h.get_str(key),
                inputs[0].display(),
                first
            ));
        }
    }
    let useafter = |h: &Header| h.get_str("USEAFTER").unwrap_or("").to_string();
    let earliest = (0..headers.len())
        .min_by_key(|&i| useafter(&headers[i]))
        .expect("at least two inputs");
    Ok((headers, earliest))
}

fn combine_several(inputs: &[PathBuf], output: &Path, rule: Rule) -> Result<String, String> {
    let (headers, earliest) = read_primaries(inputs)?;
    let base = &headers[earliest];
    if let Some(dir) = output.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e} (check permissions)", dir.display()))?;
    }
    let mut w = FitsWriter::create(output).map_err(fits)?;
    w.set_checksums(true).map_err(fits)?;
    let name = output
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for (key, value) in base.iter() {
        if is_copyable_key(key) && key != "DATE" && key != "FILENAME" {
            w.set_primary_key(key, value, "").map_err(fits)?;
        }
    }
    let now = HeaderValue::Str(mkrefs_support::timeutil::now_utc_iso());
    w.set_primary_key("DATE", &now, "Date this file was created (UTC)")
        .map_err(fits)?;
    w.set_primary_key("FILENAME", &HeaderValue::Str(name), "Name of the file")
        .map_err(fits)?;
    w.add_history(&history(inputs, &headers, rule))
        .map_err(fits)?;
    let mut left_out = Vec::new();
    for hdu in hdu_names(&inputs[0]).map_err(fits)?.into_iter().skip(1) {
        match hdu.as_str() {
            "SCI" => combine_values(&mut w, inputs, earliest, rule, false)?,
            "ERR" => combine_values(&mut w, inputs, earliest, rule, true)?,
            "DQ" => combine_dq(&mut w, inputs, earliest, rule)?,
            "DQ_DEF" => w
                .write_dq_def(&read_dq_def(&inputs[earliest]).map_err(fits)?)
                .map_err(fits)?,
            _ => left_out.push(hdu),
        }
    }
    if !left_out.is_empty() {
        tracing::warn!(
            "combine: extension(s) {} of the inputs are not combined and are left out of {}",
            left_out.join(", "),
            output.display()
        );
    }
    w.finish().map_err(fits)?;
    Ok(format!(
        "combined {} files: {}",
        inputs.len(),
        rule.describe(inputs.len())
    ))
}

/// HISTORY of the combined file: the rule and every input with its USEAFTER.
fn history(inputs: &[PathBuf], headers: &[Header], rule: Rule) -> String {
    let mut text = format!(
        "Combined by mkrefs {} from {} files: {}.",
        env!("CARGO_PKG_VERSION"),
        inputs.len(),
        rule.describe(inputs.len())
    );
    for (p, h) in inputs.iter().zip(headers) {
        let file = p.file_name().map(|n| n.to_string_lossy().into_owned());
        text.push_str(&format!(
            "\nInput: {} (USEAFTER {})",
            file.unwrap_or_default(),
            h.get_str("USEAFTER").unwrap_or("none")
        ));
    }
    text
}

/// Opens `hdu` of every input, checking that the shapes agree.
fn open_all(inputs: &[PathBuf], hdu: &str) -> Result<Vec<ImageReader>, String> {
    let readers = inputs
        .iter()
        .map(|p| ImageReader::open(p, hdu).map_err(fits))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(r) = readers.iter().find(|r| r.shape() != readers[0].shape()) {
        return Err(format!(
            "{} [{hdu}]: shape {:?}, but {} has {:?}; only files of one shape combine",
            r.path().display(),
            r.shape(),
            readers[0].path().display(),
            readers[0].shape()
        ));
    }
    Ok(readers)
}

/// Writes SCI (or, with `err`, ERR) combined band by band. ERR is the error of the combined
/// SCI, so both passes compute the same per-pixel selection from SCI.
fn combine_values(
    w: &mut FitsWriter,
    inputs: &[PathBuf],
    earliest: usize,
    rule: Rule,
    err: bool,
) -> Result<(), String> {
    let hdu = if err { "ERR" } else { "SCI" };
    let mut sci = open_all(inputs, "SCI")?;
    // The SCI pass needs no ERR: the selection and the value come from SCI alone.
    let mut errs = match err {
        true => Some(open_all(inputs, "ERR")?),
        false => None,
    };
    let shape = sci[0].shape().to_vec();
    let (ny, nx, planes) = (sci[0].ny(), sci[0].nx(), sci[0].n_planes());
    w.create_image::<f32>(hdu, &shape).map_err(fits)?;
    copy_keys(w, &inputs[earliest], hdu)?;
    let mut values = vec![Vec::new(); inputs.len()];
    let mut errors = vec![Vec::new(); inputs.len()];
    for plane in 0..planes {
        for y0 in (0..ny).step_by(BAND_ROWS) {
            let y1 = (y0 + BAND_ROWS).min(ny);
            let n = (y1 - y0) * nx;
            let mut out = vec![0f32; n];
            if rule.method == Method::Flags {
                // The earliest input's values, as they are.
                let reader = match errs.as_mut() {
                    Some(e) => &mut e[earliest],
                    None => &mut sci[earliest],
                };
                reader.read_rows(plane, y0, y1, &mut out).map_err(fits)?;
            } else {
                read_band(&mut sci, plane, y0, y1, &mut values)?;
                if let Some(e) = errs.as_mut() {
                    read_band(e, plane, y0, y1, &mut errors)?;
                }
                let mut out_err = vec![0f32; n];
                combine_band(
                    &values,
                    errs.is_some().then_some(&errors[..]),
                    rule,
                    &mut out,
                    &mut out_err,
                );
                if err {
                    out = out_err;
                }
            }
            w.write_pixels((plane * ny + y0) * nx, &out).map_err(fits)?;
        }
    }
    Ok(())
}

fn read_band<T: mkrefs_support::fits::Pixel>(
    readers: &mut [ImageReader],
    plane: usize,
    y0: usize,
    y1: usize,
    bands: &mut [Vec<T>],
) -> Result<(), String> {
    for (r, band) in readers.iter_mut().zip(bands.iter_mut()) {
        band.resize((y1 - y0) * r.nx(), T::default());
        r.read_rows(plane, y0, y1, band).map_err(fits)?;
    }
    Ok(())
}

/// Copies the keywords of extension `hdu` of `from` (BUNIT, ...) into the current HDU.
fn copy_keys(w: &mut FitsWriter, from: &Path, hdu: &str) -> Result<(), String> {
    let header = read_header(from, hdu).map_err(fits)?;
    for (key, value) in header.iter().filter(|(k, _)| is_copyable_key(k)) {
        w.set_key(key, value, "").map_err(fits)?;
    }
    Ok(())
}

/// Writes DQ combined by flag counts, band by band.
fn combine_dq(
    w: &mut FitsWriter,
    inputs: &[PathBuf],
    earliest: usize,
    rule: Rule,
) -> Result<(), String> {
    let mut dq = open_all(inputs, "DQ")?;
    let shape = dq[0].shape().to_vec();
    let (ny, nx, planes) = (dq[0].ny(), dq[0].nx(), dq[0].n_planes());
    w.create_image::<u32>("DQ", &shape).map_err(fits)?;
    copy_keys(w, &inputs[earliest], "DQ")?;
    let mut flags = vec![Vec::new(); inputs.len()];
    for plane in 0..planes {
        for y0 in (0..ny).step_by(BAND_ROWS) {
            let y1 = (y0 + BAND_ROWS).min(ny);
            read_band(&mut dq, plane, y0, y1, &mut flags)?;
            let mut out = vec![0u32; (y1 - y0) * nx];
            combine_flags(&flags, rule, &mut out);
            w.write_pixels((plane * ny + y0) * nx, &out).map_err(fits)?;
        }
    }
    Ok(())
}
