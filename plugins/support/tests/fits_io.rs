//! FITS reading and writing on real files: round trips of every pixel type, 4-D ramps stored as
//! BITPIX 16 / BZERO 32768, row bands, headers, HISTORY wrapping, DQ_DEF, the temporary-name
//! discipline of the writer, and the error for each way a file can be wrong.

use std::fs;
use std::path::{Path, PathBuf};

use mkrefs_support::dq::DqDefRow;
use mkrefs_support::fits::{
    FitsErrorKind, FitsWriter, ImageReader, Pixel, hdu_names, read_dq_def, read_header,
    read_primary_header,
};
use mkrefs_support::header::HeaderValue;

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The 80-character header cards of the HDU with index `hdu` (0 = primary), as on disk.
fn raw_cards(path: &Path, hdu: usize) -> Vec<String> {
    let bytes = fs::read(path).unwrap();
    let mut pos = 0usize;
    let mut index = 0usize;
    loop {
        let mut cards = Vec::new();
        let mut naxes = Vec::new();
        let (mut bitpix, mut pcount) = (0i64, 0i64);
        loop {
            let card = String::from_utf8_lossy(&bytes[pos..pos + 80]).into_owned();
            pos += 80;
            let key = card[..8].trim().to_string();
            let val = card
                .get(10..)
                .unwrap_or("")
                .split('/')
                .next()
                .unwrap()
                .trim()
                .to_string();
            match key.as_str() {
                "BITPIX" => bitpix = val.parse().unwrap(),
                "PCOUNT" => pcount = val.parse().unwrap(),
                k if k.starts_with("NAXIS") && k.len() > 5 => {
                    naxes.push(val.parse::<i64>().unwrap())
                }
                _ => {}
            }
            if key == "END" {
                break;
            }
            cards.push(card);
        }
        pos = pos.div_ceil(2880) * 2880;
        if index == hdu {
            return cards;
        }
        let data = if naxes.is_empty() {
            0
        } else {
            naxes.iter().product::<i64>()
        };
        pos += ((data * bitpix.abs() / 8 + pcount) as usize).div_ceil(2880) * 2880;
        index += 1;
    }
}

fn write_one<T: Pixel>(path: &Path, extname: &str, shape: &[usize], data: &[T]) {
    let mut w = FitsWriter::create(path).unwrap();
    w.write_image(extname, shape, data).unwrap();
    w.finish().unwrap();
}

fn roundtrip<T: Pixel + PartialEq + std::fmt::Debug>(dir: &Path, data: Vec<T>, stored: &str) {
    let path = dir.join(format!("{}.fits", T::NAME));
    write_one(&path, "SCI", &[3, data.len() / 3], &data);
    let mut r = ImageReader::open(&path, "SCI").unwrap();
    assert_eq!(r.shape(), &[3, data.len() / 3]);
    assert_eq!(r.stored_type(), stored, "{}", T::NAME);
    assert_eq!(r.read_plane::<T>(0).unwrap(), data, "{}", T::NAME);
}

#[test]
fn every_pixel_type_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    roundtrip(
        d,
        vec![0.0f32, -1.5, f32::MAX, f32::MIN_POSITIVE, 1e-30, 3.25],
        "float32",
    );
    roundtrip(
        d,
        vec![0.1f64, -2.0, f64::MAX, 1e-300, std::f64::consts::PI, 7.0],
        "float64",
    );
    roundtrip(d, vec![0u8, 1, 127, 128, 254, 255], "uint8");
    roundtrip(d, vec![0u16, 1, 32767, 32768, 65534, 65535], "uint16");
    roundtrip(
        d,
        vec![
            0u32,
            1,
            2_147_483_647,
            2_147_483_648,
            4_000_000_000,
            u32::MAX,
        ],
        "uint32",
    );
    roundtrip(d, vec![i16::MIN, -1, 0, 1, 1000, i16::MAX], "int16");
    roundtrip(d, vec![i32::MIN, -1, 0, 1, 123_456_789, i32::MAX], "int32");
    roundtrip(d, vec![i64::MIN + 1, -1, 0, 1, 1 << 53, i64::MAX], "int64");

    // Unsigned types are stored as signed BITPIX with BZERO, as numpy/astropy expect.
    let h = read_header(&d.join("uint16.fits"), "SCI").unwrap();
    assert_eq!(h.get_i64("BITPIX"), Some(16));
    assert_eq!(h.get_f64("BZERO"), Some(32768.0));
    let h = read_header(&d.join("uint32.fits"), "SCI").unwrap();
    assert_eq!(h.get_i64("BITPIX"), Some(32));
    assert_eq!(h.get_f64("BZERO"), Some(2_147_483_648.0));
    assert_eq!(h.get_str("EXTNAME"), Some("SCI"));

    // NaN and infinities survive in float images.
    let path = d.join("nan.fits");
    write_one(&path, "SCI", &[1, 3], &[f32::NAN, f32::INFINITY, -0.0f32]);
    let back = ImageReader::open(&path, "SCI")
        .unwrap()
        .read_plane::<f32>(0)
        .unwrap();
    assert!(
        back[0].is_nan() && back[1] == f32::INFINITY && back[2].to_bits() == (-0.0f32).to_bits()
    );
}

#[test]
fn ramp_4d_u16_streams_and_reads_in_bands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp_uncal.fits");
    let (nints, ngroups, ny, nx) = (2usize, 3usize, 16usize, 8usize);
    let value = |i: usize, g: usize, y: usize, x: usize| -> u16 {
        let bump = if (x + y).is_multiple_of(5) { 35000 } else { 0 };
        ((i * 30000 + g * 10000 + y * 100 + x * 7 + bump) % 65536) as u16
    };
    let mut w = FitsWriter::create(&path).unwrap();
    w.set_primary_key(
        "NGROUPS",
        &HeaderValue::Int(ngroups as i64),
        "groups per integration",
    )
    .unwrap();
    w.create_image::<u16>("SCI", &[nints, ngroups, ny, nx])
        .unwrap();
    // Stream band by band, out of order, 5 rows at a time.
    for plane in (0..nints * ngroups).rev() {
        for y0 in (0..ny).step_by(5) {
            let y1 = (y0 + 5).min(ny);
            let band: Vec<u16> = (y0..y1)
                .flat_map(|y| (0..nx).map(move |x| (y, x)))
                .map(|(y, x)| value(plane / ngroups, plane % ngroups, y, x))
                .collect();
            w.write_pixels((plane * ny + y0) * nx, &band).unwrap();
        }
    }
    w.finish().unwrap();

    let h = read_header(&path, "SCI").unwrap();
    assert_eq!(
        (h.get_i64("BITPIX"), h.get_f64("BZERO")),
        (Some(16), Some(32768.0))
    );
    assert_eq!(
        (h.get_i64("NAXIS"), h.get_i64("NAXIS1"), h.get_i64("NAXIS4")),
        (Some(4), Some(8), Some(2))
    );
    assert_eq!(
        read_primary_header(&path).unwrap().get_i64("NGROUPS"),
        Some(3)
    );

    let mut r = ImageReader::open(&path, "sci").unwrap();
    assert_eq!(r.shape(), &[2, 3, 16, 8]);
    assert_eq!((r.n_planes(), r.ny(), r.nx()), (6, 16, 8));
    assert_eq!(r.stored_type(), "uint16");
    // Integration 1, group 2, rows 3..7, as f32: exact, scaled by cfitsio.
    let mut band = vec![0f32; 4 * nx];
    let (int, group) = (1, 2);
    r.read_rows(int * ngroups + group, 3, 7, &mut band).unwrap();
    for (k, v) in band.iter().enumerate() {
        let (y, x) = (3 + k / nx, k % nx);
        assert_eq!(*v, value(1, 2, y, x) as f32, "y={y} x={x}");
    }
    for plane in 0..6 {
        let p = r.read_plane::<u16>(plane).unwrap();
        let want: Vec<u16> = (0..ny * nx)
            .map(|k| value(plane / 3, plane % 3, k / nx, k % nx))
            .collect();
        assert_eq!(p, want, "plane {plane}");
    }
    let mut one_row = vec![0f64; nx];
    r.read_rows(5, 15, 16, &mut one_row).unwrap();
    assert_eq!(one_row[7], value(1, 2, 15, 7) as f64);
}

#[test]
fn headers_round_trip_with_types_and_history_wraps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hdr.fits");
    let long = "a long value that needs the CONTINUE convention because it has more than sixty-eight characters";
    let mut w = FitsWriter::create(&path).unwrap();
    let keys: Vec<(&str, HeaderValue)> = vec![
        ("FLAG", HeaderValue::Bool(true)),
        ("OFF", HeaderValue::Bool(false)),
        ("NGROUPS", HeaderValue::Int(-42)),
        ("BIG", HeaderValue::Int(1 << 40)),
        ("TENTH", HeaderValue::Float(0.1)),
        ("TINY", HeaderValue::Float(1.234_567_890_123_456_7e-300)),
        ("THIRD", HeaderValue::Float(1.0 / 3.0)),
        ("WHOLE", HeaderValue::Float(2.0)),
        ("NAME", HeaderValue::Str("O'Brien   ".into())),
        ("EMPTY", HeaderValue::Str(String::new())),
        ("LONGSTR", HeaderValue::Str(long.into())),
        ("lower", HeaderValue::Str("upper-cased key".into())),
    ];
    for (k, v) in &keys {
        w.set_primary_key(k, v, "a comment").unwrap();
    }
    w.set_primary_key("NGROUPS", &HeaderValue::Int(7), "replaced")
        .unwrap();
    let history = "This file was created using the readnoise generator within the mkrefs package, from a very long list of words.";
    w.add_history(history).unwrap();
    w.add_history("DATA USED:").unwrap();
    w.write_image("SCI", &[2, 2], &[1f32, 2., 3., 4.]).unwrap();
    w.set_key("BUNIT", &HeaderValue::Str("DN".into()), "units")
        .unwrap();
    // A primary key added after an extension exists still lands in the primary header.
    w.set_primary_key("LATE", &HeaderValue::Int(1), "").unwrap();
    w.finish().unwrap();

    let h = read_primary_header(&path).unwrap();
    assert_eq!(h.get("FLAG"), Some(&HeaderValue::Bool(true)));
    assert_eq!(h.get("OFF"), Some(&HeaderValue::Bool(false)));
    assert_eq!(h.get("NGROUPS"), Some(&HeaderValue::Int(7)));
    assert_eq!(h.get("BIG"), Some(&HeaderValue::Int(1 << 40)));
    assert_eq!(h.get("TENTH"), Some(&HeaderValue::Float(0.1)));
    assert_eq!(
        h.get("TINY"),
        Some(&HeaderValue::Float(1.234_567_890_123_456_7e-300))
    );
    assert_eq!(h.get("THIRD"), Some(&HeaderValue::Float(1.0 / 3.0)));
    assert_eq!(h.get("WHOLE"), Some(&HeaderValue::Float(2.0)));
    assert_eq!(h.get_str("NAME"), Some("O'Brien"));
    assert_eq!(h.get_str("EMPTY"), Some(""));
    assert_eq!(h.get_str("LONGSTR"), Some(long));
    assert_eq!(h.get_str("LOWER"), Some("upper-cased key"));
    assert_eq!(h.get_i64("LATE"), Some(1));
    assert_eq!(h.get("SIMPLE"), Some(&HeaderValue::Bool(true)));
    assert_eq!(h.get_i64("NAXIS"), Some(0), "the primary HDU has no data");
    for skipped in ["HISTORY", "COMMENT", "CONTINUE"] {
        assert!(!h.contains(skipped), "{skipped} must not be a header value");
    }
    assert_eq!(
        read_header(&path, "SCI").unwrap().get_str("BUNIT"),
        Some("DN")
    );
    assert_eq!(hdu_names(&path).unwrap(), vec!["PRIMARY", "SCI"]);

    let cards = raw_cards(&path, 0);
    let hist: Vec<&str> = cards
        .iter()
        .filter(|c| c.starts_with("HISTORY "))
        .map(|c| c[8..].trim_end())
        .collect();
    assert_eq!(
        hist,
        vec![
            "This file was created using the readnoise generator within the mkrefs",
            "package, from a very long list of words.",
            "DATA USED:",
        ]
    );
}

#[test]
fn dq_def_table_layout_and_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mask.fits");
    let rows = vec![
        DqDefRow {
            bit: 0,
            value: 0,
            name: "GOOD".into(),
            description: String::new(),
        },
        DqDefRow {
            bit: 0,
            value: 1,
            name: "DO_NOT_USE".into(),
            description: "Bad pixel. Do not use.".into(),
        },
        DqDefRow {
            bit: 31,
            value: 1 << 31,
            name: "REFERENCE_PIXEL".into(),
            description: "x".repeat(80),
        },
    ];
    let mut w = FitsWriter::create(&path).unwrap();
    w.write_image("DQ", &[2, 2], &[0u32, 1, 1 << 31, 3])
        .unwrap();
    w.write_dq_def(&rows).unwrap();
    w.finish().unwrap();
    assert_eq!(read_dq_def(&path).unwrap(), rows);
    let h = read_header(&path, "DQ_DEF").unwrap();
    assert_eq!(h.get_str("XTENSION"), Some("BINTABLE"));
    let tforms: Vec<_> = (1..=4)
        .map(|i| h.get_str(&format!("TFORM{i}")).unwrap().to_string())
        .collect();
    assert_eq!(tforms, ["1J", "1J", "40A", "80A"]);
    let ttypes: Vec<_> = (1..=4)
        .map(|i| h.get_str(&format!("TTYPE{i}")).unwrap().to_string())
        .collect();
    assert_eq!(ttypes, ["BIT", "VALUE", "NAME", "DESCRIPTION"]);
    assert_eq!(h.get_f64("TZERO2"), Some(2_147_483_648.0));
    assert!(!h.contains("TZERO1"));
    assert_eq!(h.get_i64("NAXIS2"), Some(3));
    assert_eq!(hdu_names(&path).unwrap(), ["PRIMARY", "DQ", "DQ_DEF"]);

    let mut w = FitsWriter::create(&dir.path().join("bad.fits")).unwrap();
    let long = DqDefRow {
        bit: 1,
        value: 2,
        name: "N".repeat(41),
        description: String::new(),
    };
    let e = w.write_dq_def(&[long]).unwrap_err();
    assert_eq!(
        (e.kind, e.key.as_deref()),
        (FitsErrorKind::BadValue, Some("NAME"))
    );
}

#[test]
fn writer_uses_a_temporary_name_and_renames_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("out.fits");
    let mut w = FitsWriter::create(&final_path).unwrap();
    let tmp = w.temp_path().to_path_buf();
    let tmp_name = tmp.file_name().unwrap().to_string_lossy().into_owned();
    assert!(tmp_name.starts_with(".out.fits.part-"), "{tmp_name}");
    assert!(tmp_name.contains(&std::process::id().to_string()));
    assert_eq!(tmp.parent(), Some(dir.path()));
    w.write_image("SCI", &[4, 4], &[1f32; 16]).unwrap();
    assert!(
        tmp.exists() && !final_path.exists(),
        "no final name while writing"
    );
    assert_eq!(w.finish().unwrap(), final_path);
    assert!(final_path.exists() && !tmp.exists());
    assert_eq!(files_in(dir.path()), ["out.fits"]);

    // Finishing again replaces the file as a whole.
    let mut w = FitsWriter::create(&final_path).unwrap();
    w.write_image("SCI", &[2, 2], &[9f32; 4]).unwrap();
    w.finish().unwrap();
    assert_eq!(
        ImageReader::open(&final_path, "SCI").unwrap().shape(),
        &[2, 2]
    );
    assert_eq!(files_in(dir.path()), ["out.fits"]);
}

#[test]
fn unfinished_or_incomplete_writes_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let final_path = dir.path().join("dropped.fits");
    {
        let mut w = FitsWriter::create(&final_path).unwrap();
        w.create_image::<f32>("SCI", &[8, 8]).unwrap();
        w.write_pixels(0, &[1f32; 16]).unwrap();
        assert_eq!(files_in(dir.path()).len(), 1);
    }
    assert!(
        files_in(dir.path()).is_empty(),
        "drop removes the temporary file"
    );

    // An image with pixels never written cannot be finished, nor followed by another HDU.
    let mut w = FitsWriter::create(&final_path).unwrap();
    w.create_image::<u16>("SCI", &[4, 4]).unwrap();
    w.write_pixels(0, &[1u16; 8]).unwrap();
    w.write_pixels(12, &[1u16; 4]).unwrap();
    let e = w.create_image::<u32>("DQ", &[4, 4]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::Write);
    assert!(
        e.to_string().contains("only 12 of 16 pixels") && e.to_string().contains("pixel is 8"),
        "{e}"
    );
    let e = w.finish().unwrap_err();
    assert_eq!(
        (e.kind, e.hdu.as_deref()),
        (FitsErrorKind::Write, Some("SCI"))
    );
    assert!(
        files_in(dir.path()).is_empty(),
        "a failed finish leaves no file: {:?}",
        files_in(dir.path())
    );
}

#[test]
fn writer_rejects_misuse_with_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.fits");
    let mut w = FitsWriter::create(&path).unwrap();
    let e = w
        .set_key("BUNIT", &HeaderValue::Str("DN".into()), "")
        .unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::BadRequest);
    let e = w.write_pixels(0, &[1f32]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::BadRequest);
    for bad in ["TOOLONGKEY", "BAD KEY", "", "É"] {
        let e = w
            .set_primary_key(bad, &HeaderValue::Int(1), "")
            .unwrap_err();
        assert_eq!(e.kind, FitsErrorKind::BadValue, "{bad:?}");
    }
    let e = w
        .set_primary_key("AUTHOR", &HeaderValue::Str("Zoë".into()), "")
        .unwrap_err();
    assert!(e.to_string().contains("printable ASCII"), "{e}");
    let e = w
        .set_primary_key("X", &HeaderValue::Float(f64::NAN), "")
        .unwrap_err();
    assert_eq!(e.key.as_deref(), Some("X"));
    let e = w.add_history("naïve").unwrap_err();
    assert_eq!(
        (e.kind, e.key.as_deref()),
        (FitsErrorKind::BadValue, Some("HISTORY"))
    );
    let e = w.create_image::<f32>("SCI", &[0, 4]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::WrongShape);
    let e = w.write_image("SCI", &[2, 2], &[1f32; 3]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::WrongShape);
    w.create_image::<f32>("SCI", &[2, 2]).unwrap();
    let e = w.write_pixels(0, &[1f64; 4]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::WrongType);
    assert!(
        e.to_string().contains("created as float32 but float64"),
        "{e}"
    );
    let e = w.write_pixels(2, &[1f32; 3]).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::BadRequest);
    drop(w);

    let e = FitsWriter::create(&dir.path().join("missing/dir/x.fits"))
        .err()
        .unwrap();
    assert_eq!(e.kind, FitsErrorKind::Write);
    assert!(
        e.to_string().contains("does not exist; create it first"),
        "{e}"
    );
    assert!(files_in(dir.path()).is_empty());
}

/// A small valid file with a 3-D SCI image and a DQ_DEF table.
fn valid_file(dir: &Path) -> PathBuf {
    let path = dir.join("x_uncal.fits");
    let mut w = FitsWriter::create(&path).unwrap();
    w.set_primary_key("INSTRUME", &"NIRCAM".into(), "").unwrap();
    let data: Vec<f32> = (0..4 * 64 * 64).map(|i| i as f32).collect();
    w.write_image("SCI", &[4, 64, 64], &data).unwrap();
    w.write_dq_def(&[DqDefRow {
        bit: 0,
        value: 1,
        name: "DO_NOT_USE".into(),
        description: String::new(),
    }])
    .unwrap();
    w.finish().unwrap()
}

#[test]
fn errors_for_missing_unreadable_and_non_fits_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope_uncal.fits");
    let e = read_primary_header(&missing).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::NotFound);
    assert_eq!(e.path, missing);
    assert!(
        e.to_string()
            .starts_with(&format!("{}: not found — no such file", missing.display())),
        "{e}"
    );
    assert_eq!(
        ImageReader::open(&missing, "SCI").err().unwrap().kind,
        FitsErrorKind::NotFound
    );
    assert_eq!(
        hdu_names(&missing).unwrap_err().kind,
        FitsErrorKind::NotFound
    );

    let e = read_primary_header(dir.path()).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::Unreadable);
    assert!(e.to_string().contains("directory"), "{e}");

    let garbage = dir.path().join("garbage.fits");
    fs::write(&garbage, "this is a text file, not FITS\n".repeat(200)).unwrap();
    let e = read_primary_header(&garbage).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::NotFits);
    assert!(
        e.to_string()
            .contains("does not start with a FITS primary header"),
        "{e}"
    );
    assert!(
        e.to_string().contains("this is a"),
        "shows how the file starts: {e}"
    );

    let empty = dir.path().join("empty.fits");
    fs::write(&empty, b"").unwrap();
    let e = ImageReader::open(&empty, "SCI").err().unwrap();
    assert_eq!(e.kind, FitsErrorKind::NotFits);
    assert!(e.to_string().contains("empty (0 bytes)"), "{e}");

    let bracket = dir.path().join("a[1].fits");
    fs::copy(valid_file(dir.path()), &bracket).unwrap();
    assert_eq!(
        read_primary_header(&bracket).unwrap_err().kind,
        FitsErrorKind::Unreadable
    );
}

#[test]
fn errors_for_truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_file(dir.path());
    let full = fs::metadata(&path).unwrap().len();

    // Cut inside the SCI data: headers still read, the image does not open.
    let cut = dir.path().join("cut.fits");
    fs::copy(&path, &cut).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(3 * 2880 + 1000)
        .unwrap();
    assert_eq!(
        read_primary_header(&cut).unwrap().get_str("INSTRUME"),
        Some("NIRCAM")
    );
    let e = ImageReader::open(&cut, "SCI").err().unwrap();
    assert_eq!(
        (e.kind, e.hdu.as_deref()),
        (FitsErrorKind::Truncated, Some("SCI"))
    );
    assert!(
        e.to_string().contains("but the file has only 9640 bytes"),
        "{e}"
    );
    assert!(e.to_string().contains("copy or create it again"), "{e}");

    // Cut inside the primary header.
    fs::OpenOptions::new()
        .write(true)
        .open(&cut)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let e = read_primary_header(&cut).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::Truncated, "{e}");

    // Cut after the reader was opened: reading past the new end is reported as truncation,
    // naming the HDU and the rows asked for.
    let late = dir.path().join("late.fits");
    fs::copy(&path, &late).unwrap();
    let mut r = ImageReader::open(&late, "SCI").unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(&late)
        .unwrap()
        .set_len(full / 3)
        .unwrap();
    let mut out = vec![0f32; 10 * 64];
    let e = r.read_rows(3, 50, 60, &mut out).unwrap_err();
    assert_eq!(
        (e.kind, e.hdu.as_deref()),
        (FitsErrorKind::Truncated, Some("SCI"))
    );
    assert!(e.to_string().contains("rows 50..60 of plane 3"), "{e}");
}

#[test]
fn errors_for_missing_hdus_keys_and_wrong_requests() {
    let dir = tempfile::tempdir().unwrap();
    let path = valid_file(dir.path());

    let e = ImageReader::open(&path, "PIXELDQ").err().unwrap();
    assert_eq!(
        (e.kind, e.hdu.as_deref()),
        (FitsErrorKind::MissingHdu, Some("PIXELDQ"))
    );
    assert!(e.to_string().contains("it has PRIMARY, SCI, DQ_DEF"), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("{} [HDU PIXELDQ]: no such HDU — ", path.display())),
        "{e}"
    );
    assert_eq!(
        read_header(&path, "ERR").unwrap_err().kind,
        FitsErrorKind::MissingHdu
    );

    let e = ImageReader::open(&path, "DQ_DEF").err().unwrap();
    assert_eq!(e.kind, FitsErrorKind::WrongType);
    assert!(e.to_string().contains("is a table, not an image"), "{e}");
    let e = ImageReader::open(&path, "PRIMARY").err().unwrap();
    assert_eq!(e.kind, FitsErrorKind::WrongShape);

    let e = read_dq_def(&valid_file_without_table(dir.path())).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::MissingHdu);

    let mut r = ImageReader::open(&path, "SCI").unwrap();
    assert_eq!(r.header().unwrap().get_i64("NAXIS3"), Some(4));
    let mut out = vec![0f32; 64];
    let e = r.read_rows(4, 0, 1, &mut out).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::BadRequest);
    assert!(e.to_string().contains("4 plane(s) of 64x64"), "{e}");
    assert_eq!(
        r.read_rows(0, 1, 1, &mut out).unwrap_err().kind,
        FitsErrorKind::BadRequest
    );
    assert_eq!(
        r.read_rows(0, 63, 65, &mut out).unwrap_err().kind,
        FitsErrorKind::BadRequest
    );
    let e = r.read_rows(0, 0, 2, &mut out).unwrap_err();
    assert!(
        e.to_string()
            .contains("holds 64 values but the band has 128"),
        "{e}"
    );
    // Values up to 16383 do not fit in u8.
    let mut small = vec![0u8; 64 * 64];
    let e = r.read_rows(3, 0, 64, &mut small).unwrap_err();
    assert_eq!(e.kind, FitsErrorKind::WrongType);
    assert!(e.to_string().contains("do not fit in uint8"), "{e}");
    // The reader still works after an error.
    assert_eq!(r.read_plane::<f32>(0).unwrap()[65], 65.0);
}

fn valid_file_without_table(dir: &Path) -> PathBuf {
    let path = dir.join("plain.fits");
    write_one(&path, "SCI", &[2, 2], &[1i32, 2, 3, 4]);
    path
}

#[test]
fn gzip_inputs_read_and_compressed_outputs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("x_rate.fits.gz");
    {
        // cfitsio compresses a file whose name ends in .gz when it is closed.
        let mut f = fitsio::FitsFile::create(&gz).open().unwrap();
        let desc = fitsio::images::ImageDescription {
            data_type: fitsio::images::ImageType::Float,
            dimensions: &[64, 32],
        };
        let hdu = f.create_image("SCI", &desc).unwrap();
        let data: Vec<f32> = (0..64 * 32).map(|i| i as f32 * 0.5).collect();
        hdu.write_image(&mut f, &data).unwrap();
    }
    assert_eq!(&fs::read(&gz).unwrap()[..2], &[0x1f, 0x8b], "gzip on disk");
    let mut r = ImageReader::open(&gz, "SCI").unwrap();
    assert_eq!(r.shape(), &[64, 32]);
    let mut band = vec![0f32; 2 * 32];
    r.read_rows(0, 10, 12, &mut band).unwrap();
    assert_eq!(band[1], (10 * 32 + 1) as f32 * 0.5);

    let e = FitsWriter::create(&dir.path().join("out.fits.gz"))
        .err()
        .unwrap();
    assert_eq!(e.kind, FitsErrorKind::Write);
    assert!(
        e.to_string().contains("compressed output is not supported"),
        "{e}"
    );
    assert_eq!(files_in(dir.path()), ["x_rate.fits.gz"]);
}

#[test]
fn tile_compressed_4d_flags_round_trip_in_bands_and_truncation_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ramp_jump.fits");
    let (nints, ngroups, ny, nx) = (2usize, 3usize, 40usize, 24usize);
    // Mostly zero, with flags scattered as a jump step leaves them.
    let flags: Vec<u8> = (0..nints * ngroups * ny * nx)
        .map(|k| match k % 97 {
            0 => 4,
            13 => 2 | 4,
            _ => 0,
        })
        .collect();
    let sci: Vec<f32> = (0..ny * nx).map(|k| k as f32 * 0.25).collect();
    let mut w = FitsWriter::create(&path).unwrap();
    w.write_image_compressed("GROUPDQ", &[nints, ngroups, ny, nx], &flags, 16)
        .unwrap();
    // An image after it is plain again.
    w.write_image("SCI", &[ny, nx], &sci).unwrap();
    w.finish().unwrap();

    let h = read_header(&path, "GROUPDQ").unwrap();
    assert_eq!(
        (
            h.get_str("ZCMPTYPE"),
            h.get_i64("ZNAXIS"),
            h.get_i64("ZTILE2")
        ),
        (Some("RICE_1"), Some(4), Some(16))
    );
    assert_eq!(read_header(&path, "SCI").unwrap().get_i64("ZNAXIS"), None);

    let mut r = ImageReader::open(&path, "GROUPDQ").unwrap();
    assert_eq!(r.shape(), &[2, 3, 40, 24]);
    assert_eq!(r.stored_type(), "uint8");
    // Bands that start and end inside tiles, every plane, as u8 and as f32.
    for plane in 0..nints * ngroups {
        for (y0, y1) in [(0, 40), (5, 21), (16, 17), (39, 40)] {
            let mut band = vec![0u8; (y1 - y0) * nx];
            r.read_rows(plane, y0, y1, &mut band).unwrap();
            let at = (plane * ny + y0) * nx;
            assert_eq!(
                band,
                flags[at..at + band.len()],
                "plane {plane} rows {y0}..{y1}"
            );
        }
    }
    let mut wide = vec![0f32; 3 * nx];
    r.read_rows(4, 7, 10, &mut wide).unwrap();
    assert!(
        wide.iter()
            .zip(&flags[(4 * ny + 7) * nx..])
            .all(|(&a, &b)| a == f32::from(b))
    );
    let mut plain = ImageReader::open(&path, "SCI").unwrap();
    assert_eq!(plain.read_plane::<f32>(0).unwrap(), sci);

    // Cut inside the compressed table's heap: refused when opened, naming the HDU.
    let cut = dir.path().join("cut.fits");
    let bytes = fs::read(&path).unwrap();
    let (data_start, _) = hdu_data_span(&path, "GROUPDQ");
    fs::write(&cut, &bytes[..data_start + 100]).unwrap();
    let e = ImageReader::open(&cut, "GROUPDQ").err().unwrap();
    assert_eq!(
        (e.kind, e.hdu.as_deref()),
        (FitsErrorKind::Truncated, Some("GROUPDQ")),
        "{e}"
    );
}

/// Where the data of HDU `name` start and how long the file is, from the raw cards: the data
/// begin at the first 2880-byte block after the header's END card.
fn hdu_data_span(path: &Path, name: &str) -> (usize, usize) {
    let bytes = fs::read(path).unwrap();
    let mut start = 0;
    loop {
        let mut at = start;
        let mut named = false;
        loop {
            let card = std::str::from_utf8(&bytes[at..at + 80]).unwrap();
            named |= card.starts_with("EXTNAME") && card.contains(&format!("'{name}"));
            at += 80;
            if card.starts_with("END ") {
                break;
            }
        }
        let data = at.div_ceil(2880) * 2880;
        if named {
            return (data, bytes.len());
        }
        // Skip this HDU's data: found from the next block that starts a header.
        let mut next = data;
        while !bytes[next..].starts_with(b"XTENSION") {
            next += 2880;
        }
        start = next;
    }
}

/// cfitsio's verdict on each HDU's DATASUM and CHECKSUM: 1 correct, 0 absent, -1 wrong.
fn checksum_verdicts(path: &Path) -> Vec<(i32, i32)> {
    let mut f = fitsio::FitsFile::open(path).unwrap();
    let mut verdicts = Vec::new();
    for hdu in 1.. {
        let (mut hdutype, mut status) = (0, 0);
        let (mut data_ok, mut hdu_ok) = (0, 0);
        // SAFETY: f is open; the out-parameters are plain ints.
        unsafe {
            fitsio::sys::ffmahd(f.as_raw(), hdu, &mut hdutype, &mut status);
            if status != 0 {
                break;
            }
            fitsio::sys::ffvcks(f.as_raw(), &mut data_ok, &mut hdu_ok, &mut status);
        }
        assert_eq!(status, 0, "HDU {hdu}");
        verdicts.push((data_ok, hdu_ok));
    }
    verdicts
}

#[test]
fn checksums_are_correct_in_every_hdu_whatever_the_write_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ref_mask.fits");
    let (ny, nx) = (7usize, 5usize);
    let mut sci: Vec<f32> = (0..ny * nx).map(|k| k as f32 * -0.3).collect();
    sci[3] = f32::NAN;
    let counts: Vec<u16> = (0..3 * ny * nx)
        .map(|k| (k * 2411 % 65536) as u16)
        .collect();
    let flags: Vec<u8> = (0..2 * ny * nx).map(|k| (k % 7) as u8).collect();
    let mut w = FitsWriter::create(&path).unwrap();
    w.set_checksums(true).unwrap();
    w.set_primary_key("REFTYPE", &HeaderValue::Str("MASK".into()), "")
        .unwrap();
    w.write_image("SCI", &[ny, nx], &sci).unwrap();
    // Streamed out of order, an odd number of 2-byte pixels at a time.
    w.create_image::<u16>("COUNTS", &[3, ny, nx]).unwrap();
    for start in (0..counts.len()).step_by(9).rev() {
        let end = (start + 9).min(counts.len());
        w.write_pixels(start, &counts[start..end]).unwrap();
    }
    w.set_key("BUNIT", &HeaderValue::Str("DN".into()), "")
        .unwrap();
    w.write_image_compressed("FLAGS", &[2, ny, nx], &flags, 3)
        .unwrap();
    w.write_image::<u32>("DQ", &[ny, nx], &vec![1u32 << 31; ny * nx])
        .unwrap();
    w.write_dq_def(&[DqDefRow {
        bit: 0,
        value: 1,
        name: "DO_NOT_USE".into(),
        description: "Bad pixel".into(),
    }])
    .unwrap();
    w.finish().unwrap();
    assert_eq!(checksum_verdicts(&path), vec![(1, 1); 6]);

    // A flipped bit in the data is found.
    let mut bytes = fs::read(&path).unwrap();
    let (sci_data, _) = hdu_data_span(&path, "SCI");
    bytes[sci_data + 5] ^= 0x10;
    let bad = dir.path().join("bad.fits");
    fs::write(&bad, &bytes).unwrap();
    assert_eq!(checksum_verdicts(&bad)[1], (-1, -1));

    // Without checksums (products), no cards are written.
    let plain = dir.path().join("plain.fits");
    write_one(&plain, "SCI", &[ny, nx], &sci);
    assert_eq!(
        read_header(&plain, "SCI").unwrap().get_str("CHECKSUM"),
        None
    );
}
