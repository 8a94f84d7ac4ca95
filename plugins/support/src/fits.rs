//! FITS access over cfitsio (the `fitsio` crate and its raw `fitsio::sys` bindings).
//!
//! - Reading: [`read_primary_header`], [`read_header`], [`hdu_names`], [`read_dq_def`], and
//!   [`ImageReader`] for row bands of one plane of a 2-D, 3-D or 4-D image, converted and scaled
//!   (BZERO/BSCALE) by cfitsio.
//! - Writing: [`FitsWriter`] writes a new file under a temporary name beside its destination and
//!   renames it only when complete; dropped unfinished, it removes the temporary file.
//! - Errors: [`FitsError`] says what went wrong, where (file, HDU, key) and what to do.
//!
//! Shapes are always in C order (`[nints, ngroups, ny, nx]`, x fastest), as numpy and the jwst
//! datamodels see them; FITS NAXISn order is the reverse.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::{c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use fitsio::FitsFile;
use fitsio::sys;

use crate::dq::DqDefRow;
use crate::fits_checksum::DataSum;
use crate::header::{Header, HeaderValue};

// cfitsio constants (fitsio.h).
const TBYTE: c_int = 11;
const TUSHORT: c_int = 20;
const TSHORT: c_int = 21;
const TUINT: c_int = 30;
const TINT: c_int = 31;
const TLONGLONG: c_int = 81;
const TFLOAT: c_int = 42;
const TDOUBLE: c_int = 82;
const TSTRING: c_int = 16;
const BYTE_IMG: c_int = 8;
const SHORT_IMG: c_int = 16;
const USHORT_IMG: c_int = 20;
const LONG_IMG: c_int = 32;
const ULONG_IMG: c_int = 40;
const LONGLONG_IMG: c_int = 64;
const FLOAT_IMG: c_int = -32;
const DOUBLE_IMG: c_int = -64;
const IMAGE_HDU: c_int = 0;
const BINARY_TBL: c_int = 2;
const ANY_HDU: c_int = -1;
const RICE_1: c_int = 11;
/// No compression requested (cfitsio's NOCOMPRESS, -1, still counts as a request).
const NO_COMPRESSION_REQUEST: c_int = 0;
const CASEINSEN: c_int = 0;
// cfitsio status codes.
const END_OF_FILE: c_int = 107;
const READ_ERROR: c_int = 108;
const MEMORY_ALLOCATION: c_int = 113;
const KEY_NO_EXIST: c_int = 202;
const BAD_HDU_NUM: c_int = 301;
const NUM_OVERFLOW: c_int = 412;
const FLEN_CARD: usize = 81;
const FLEN_VALUE: usize = 71;
const FLEN_ERRMSG: usize = 81;

/// Bytes in one FITS block.
const BLOCK: u64 = 2880;

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What kind of failure a [`FitsError`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FitsErrorKind {
    /// The file does not exist.
    NotFound,
    /// The file exists but cannot be opened or read (permissions, a directory, a bad path).
    Unreadable,
    /// The file is not a FITS file (no `SIMPLE =` primary header).
    NotFits,
    /// The file ends before its headers or data do.
    Truncated,
    /// No HDU with the requested name.
    MissingHdu,
    /// A required header key is absent.
    MissingKey,
    /// A header key or value cannot be used (wrong type, not ASCII, too long, bad name).
    BadValue,
    /// The data have the wrong number or size of dimensions.
    WrongShape,
    /// The HDU or the data have the wrong type (a table where an image was expected, values
    /// that do not fit the requested pixel type, ...).
    WrongType,
    /// The request itself is out of range (plane, rows, buffer size, pixel index).
    BadRequest,
    /// Creating, writing or renaming an output failed.
    Write,
    /// cfitsio could not allocate memory: nothing is wrong with the file, the process needs
    /// more memory than it has.
    OutOfMemory,
    /// Any other cfitsio failure.
    Other,
}

impl FitsErrorKind {
    fn label(self) -> &'static str {
        match self {
            FitsErrorKind::NotFound => "not found",
            FitsErrorKind::Unreadable => "cannot read",
            FitsErrorKind::NotFits => "not a FITS file",
            FitsErrorKind::Truncated => "truncated",
            FitsErrorKind::MissingHdu => "no such HDU",
            FitsErrorKind::MissingKey => "missing",
            FitsErrorKind::BadValue => "bad value",
            FitsErrorKind::WrongShape => "wrong dimensions",
            FitsErrorKind::WrongType => "wrong type",
            FitsErrorKind::BadRequest => "bad request",
            FitsErrorKind::Write => "cannot write",
            FitsErrorKind::OutOfMemory => "out of memory",
            FitsErrorKind::Other => "FITS error",
        }
    }
}

/// A FITS failure: what, where (file, HDU, key) and what to do.
///
/// Displays as `/data/x_uncal.fits [HDU SCI] key NGROUPS: missing — <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitsError {
    pub path: PathBuf,
    pub hdu: Option<String>,
    pub key: Option<String>,
    pub kind: FitsErrorKind,
    pub message: String,
}

impl FitsError {
    pub fn new(kind: FitsErrorKind, path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        FitsError {
            path: path.into(),
            hdu: None,
            key: None,
            kind,
            message: message.into(),
        }
    }

    /// The same error, located in HDU `hdu`.
    pub fn in_hdu(mut self, hdu: impl Into<String>) -> Self {
        self.hdu = Some(hdu.into());
        self
    }

    /// The same error, about key `key`.
    pub fn for_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
}

impl fmt::Display for FitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(hdu) = &self.hdu {
            write!(f, " [HDU {hdu}]")?;
        }
        if let Some(key) = &self.key {
            write!(f, " key {key}")?;
        }
        write!(f, ": {} — {}", self.kind.label(), self.message)
    }
}

impl std::error::Error for FitsError {}

/// cfitsio's short text for a status code.
fn status_text(status: c_int) -> String {
    let mut buf = [0 as c_char; FLEN_ERRMSG];
    // SAFETY: ffgerr writes at most 31 bytes including the NUL into the buffer.
    unsafe { sys::ffgerr(status, buf.as_mut_ptr()) };
    cstr_to_string(&buf)
}

fn cstr_to_string(buf: &[c_char]) -> String {
    // SAFETY: every buffer passed here was NUL-terminated by cfitsio or zero-initialised.
    let c = unsafe { CStr::from_ptr(buf.as_ptr()) };
    String::from_utf8_lossy(c.to_bytes()).into_owned()
}

/// A C string; a NUL (never valid in FITS text) becomes a space rather than truncating.
fn c_string(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).expect("NUL bytes were replaced")
}

/// Whether `text` is printable ASCII, as FITS headers and string columns require.
fn printable_ascii(text: &str) -> Result<(), String> {
    match text.chars().find(|c| !(' '..='~').contains(c)) {
        None => Ok(()),
        Some(c) => Err(format!(
            "the text {text:?} contains {c:?}, but FITS headers and string columns hold \
             printable ASCII only; replace that character"
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Opening files
// ---------------------------------------------------------------------------------------------

/// Checks a path before cfitsio sees it: existence, readability, cfitsio's filename syntax.
fn check_input_path(path: &Path) -> Result<u64, FitsError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let cwd = std::env::current_dir()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|_| "?".into());
            let rel = if path.is_relative() {
                format!(" (relative paths are resolved against {cwd})")
            } else {
                String::new()
            };
            return Err(FitsError::new(
                FitsErrorKind::NotFound,
                path,
                format!("no such file{rel}; check the path and that the file was copied"),
            ));
        }
        Err(e) => {
            return Err(FitsError::new(
                FitsErrorKind::Unreadable,
                path,
                format!("{e}; check the file's permissions and that its directory is readable"),
            ));
        }
    };
    if meta.is_dir() {
        return Err(FitsError::new(
            FitsErrorKind::Unreadable,
            path,
            "this is a directory, not a FITS file; give the path of a .fits file",
        ));
    }
    let text = path_text(path)?;
    if text.contains('[') {
        return Err(FitsError::new(
            FitsErrorKind::Unreadable,
            path,
            "the path contains '[', which cfitsio reads as an extension or filter \
             specification; rename the file or its directory",
        ));
    }
    if meta.len() == 0 {
        return Err(FitsError::new(
            FitsErrorKind::NotFits,
            path,
            "the file is empty (0 bytes), probably from an interrupted copy or write; \
             copy or create it again",
        ));
    }
    if let Err(e) = std::fs::File::open(path) {
        return Err(FitsError::new(
            FitsErrorKind::Unreadable,
            path,
            format!("{e}; check the file's permissions"),
        ));
    }
    Ok(meta.len())
}

fn path_text(path: &Path) -> Result<&str, FitsError> {
    path.to_str().ok_or_else(|| {
        FitsError::new(
            FitsErrorKind::Unreadable,
            path,
            "the path is not valid UTF-8, which cfitsio cannot open; rename the file",
        )
    })
}

/// Opens an existing FITS file read-only, telling "not FITS" and "truncated" apart. Returns
/// the file and its length on disk.
fn open_read(path: &Path) -> Result<(FitsFile, u64), FitsError> {
    let len = check_input_path(path)?;
    // Before cfitsio walks the HDUs: a size it cannot count makes it loop forever.
    crate::fits_layout::check_sizes(path)
        .map_err(|m| FitsError::new(FitsErrorKind::BadValue, path, m))?;
    match FitsFile::open(path) {
        Ok(f) => Ok((f, len)),
        Err(e) => Err(classify_open_failure(path, len, e)),
    }
}

/// Whether the file starts with an uncompressed FITS primary header.
fn starts_as_plain_fits(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 9];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && &head == b"SIMPLE  ="
}

fn classify_open_failure(path: &Path, len: u64, e: fitsio::errors::Error) -> FitsError {
    let mut head = [0u8; 9];
    let nread = std::fs::File::open(path)
        .and_then(|mut f| {
            use std::io::Read;
            f.read(&mut head)
        })
        .unwrap_or(0);
    let gzip = nread >= 2 && head[..2] == [0x1f, 0x8b];
    let fits = nread == 9 && &head == b"SIMPLE  =";
    let status = match &e {
        fitsio::errors::Error::Fits(fe) => Some(fe.status),
        _ => None,
    };
    if status == Some(MEMORY_ALLOCATION) {
        return cfitsio_error(path, MEMORY_ALLOCATION, "opening the file").in_hdu("PRIMARY");
    }
    if !fits && !gzip {
        let start = String::from_utf8_lossy(&head[..nread])
            .escape_debug()
            .to_string();
        return FitsError::new(
            FitsErrorKind::NotFits,
            path,
            format!(
                "the file does not start with a FITS primary header (it starts with \
                 {start:?}, not \"SIMPLE  =\"); check that the path names a FITS file"
            ),
        );
    }
    if !gzip && (len < BLOCK || status == Some(END_OF_FILE) || status == Some(READ_ERROR)) {
        return FitsError::new(
            FitsErrorKind::Truncated,
            path,
            format!(
                "the file ends ({len} bytes) inside its primary header; it was cut short, \
                 probably by an interrupted copy or write; copy or create it again"
            ),
        );
    }
    FitsError::new(
        FitsErrorKind::NotFits,
        path,
        format!("cfitsio cannot open it ({e}); the file is damaged or not a FITS file"),
    )
}

/// Moves to the HDU named `name` (EXTNAME, case-insensitive; `PRIMARY` is the first HDU when
/// no extension carries that name). Returns the HDU type (0 image, 1 ASCII table, 2 binary).
fn move_to_hdu(f: &mut FitsFile, path: &Path, name: &str) -> Result<c_int, FitsError> {
    let mut status = 0;
    let mut hdutype = 0;
    let cname = c_string(name);
    // SAFETY: f is an open file; cname is a valid NUL-terminated buffer.
    unsafe {
        sys::ffmnhd(
            f.as_raw(),
            ANY_HDU,
            cname.as_ptr() as *mut c_char,
            0,
            &mut status,
        )
    };
    if status == BAD_HDU_NUM && name.eq_ignore_ascii_case("PRIMARY") {
        status = 0;
        // SAFETY: as above.
        unsafe { sys::ffmahd(f.as_raw(), 1, &mut hdutype, &mut status) };
    }
    if status == BAD_HDU_NUM {
        let names = list_hdu_names(f, path).unwrap_or_default();
        let shown: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if n.is_empty() {
                    format!("#{i} (no EXTNAME)")
                } else {
                    n.clone()
                }
            })
            .collect();
        return Err(FitsError::new(
            FitsErrorKind::MissingHdu,
            path,
            format!(
                "the file has no HDU named {name}; it has {}; check that this is the right \
                 kind of file (e.g. a _jump.fits ramp has PIXELDQ and GROUPDQ, an _uncal.fits \
                 ramp does not)",
                shown.join(", ")
            ),
        )
        .in_hdu(name));
    }
    if status != 0 {
        return Err(cfitsio_error(path, status, "moving to the HDU").in_hdu(name));
    }
    // SAFETY: as above.
    unsafe { sys::ffghdt(f.as_raw(), &mut hdutype, &mut status) };
    if status != 0 {
        return Err(cfitsio_error(path, status, "reading the HDU type").in_hdu(name));
    }
    Ok(hdutype)
}

/// What to do when cfitsio runs out of memory: the file is fine, the run asks too much.
const OUT_OF_MEMORY_ADVICE: &str = "the file is not at fault: this process ran out of \
     memory. Run fewer jobs at a time (--jobs), lower the generator's memory_budget_mb \
     (e.g. --readnoise.memory_budget_mb 500), or free memory, then run again";

/// The kind of failure a cfitsio status code means, and the advice for it. Running out of
/// memory or reaching the end of the file early is not damage, and says so.
fn status_meaning(status: c_int) -> (FitsErrorKind, &'static str) {
    match status {
        END_OF_FILE | READ_ERROR => (
            FitsErrorKind::Truncated,
            "the file ends early; it was cut short, probably by an interrupted copy or \
             write; copy or create it again",
        ),
        MEMORY_ALLOCATION => (FitsErrorKind::OutOfMemory, OUT_OF_MEMORY_ADVICE),
        _ => (
            FitsErrorKind::Other,
            "the file may be damaged; check it with astropy or fitsverify",
        ),
    }
}

fn cfitsio_error(path: &Path, status: c_int, doing: &str) -> FitsError {
    let (kind, hint) = status_meaning(status);
    let message = match kind {
        FitsErrorKind::OutOfMemory => format!(
            "while {doing}: cfitsio status {status} ({}); {hint}",
            status_text(status)
        ),
        _ => format!(
            "{doing} failed: cfitsio status {status} ({}); {hint}",
            status_text(status)
        ),
    };
    FitsError::new(kind, path, message)
}

fn list_hdu_names(f: &mut FitsFile, path: &Path) -> Result<Vec<String>, FitsError> {
    let mut status = 0;
    let mut n = 0;
    // SAFETY: f is open; out-pointers are valid.
    unsafe { sys::ffthdu(f.as_raw(), &mut n, &mut status) };
    if status != 0 {
        return Err(cfitsio_error(path, status, "counting the HDUs"));
    }
    let mut names = Vec::with_capacity(n as usize);
    for i in 1..=n {
        let mut hdutype = 0;
        // SAFETY: 1 <= i <= number of HDUs.
        unsafe { sys::ffmahd(f.as_raw(), i, &mut hdutype, &mut status) };
        if status != 0 {
            return Err(cfitsio_error(
                path,
                status,
                &format!("moving to HDU #{}", i - 1),
            ));
        }
        let mut value = [0 as c_char; FLEN_VALUE];
        let key = c_string("EXTNAME");
        // SAFETY: TSTRING values are at most FLEN_VALUE bytes including the NUL.
        unsafe {
            sys::ffgky(
                f.as_raw(),
                TSTRING,
                key.as_ptr(),
                value.as_mut_ptr() as *mut c_void,
                std::ptr::null_mut(),
                &mut status,
            )
        };
        let name = if status == KEY_NO_EXIST {
            status = 0;
            if i == 1 {
                "PRIMARY".to_string()
            } else {
                String::new()
            }
        } else if status != 0 {
            return Err(cfitsio_error(path, status, "reading EXTNAME"));
        } else {
            cstr_to_string(&value).trim_end().to_string()
        };
        names.push(name);
    }
    Ok(names)
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// The keyword cards of the primary header, typed. COMMENT, HISTORY, CONTINUE and blank cards,
/// and keys without a value, are not kept.
pub fn read_primary_header(path: &Path) -> Result<Header, FitsError> {
    read_header(path, "PRIMARY")
}

/// The keyword cards of the HDU named `hdu_name` (EXTNAME; `PRIMARY` for the primary HDU).
pub fn read_header(path: &Path, hdu_name: &str) -> Result<Header, FitsError> {
    let (mut f, _) = open_read(path)?;
    move_to_hdu(&mut f, path, hdu_name)?;
    read_current_header(&mut f, path).map_err(|e| e.in_hdu(hdu_name))
}

/// The EXTNAME of every HDU in file order; the first is `PRIMARY` unless it has an EXTNAME, and
/// an extension without EXTNAME gives an empty string.
pub fn hdu_names(path: &Path) -> Result<Vec<String>, FitsError> {
    let (mut f, _) = open_read(path)?;
    list_hdu_names(&mut f, path)
}

fn read_current_header(f: &mut FitsFile, path: &Path) -> Result<Header, FitsError> {
    let mut status = 0;
    let (mut nkeys, mut nmore) = (0, 0);
    // SAFETY: f is open and positioned on an HDU.
    unsafe { sys::ffghsp(f.as_raw(), &mut nkeys, &mut nmore, &mut status) };
    if status != 0 {
        return Err(cfitsio_error(path, status, "reading the header size"));
    }
    let mut header = Header::new();
    for i in 1..=nkeys {
        let mut name = [0 as c_char; FLEN_CARD];
        let mut value = [0 as c_char; FLEN_CARD];
        let mut comment = [0 as c_char; FLEN_CARD];
        // SAFETY: buffers are FLEN_CARD bytes, more than cfitsio writes for each part.
        unsafe {
            sys::ffgkyn(
                f.as_raw(),
                i,
                name.as_mut_ptr(),
                value.as_mut_ptr(),
                comment.as_mut_ptr(),
                &mut status,
            )
        };
        if status != 0 {
            return Err(cfitsio_error(
                path,
                status,
                &format!("reading header card {i}"),
            ));
        }
        let key = cstr_to_string(&name);
        if key.is_empty() || matches!(key.as_str(), "COMMENT" | "HISTORY" | "CONTINUE") {
            continue;
        }
        let raw = cstr_to_string(&value);
        if raw.trim().is_empty() {
            continue;
        }
        let mut dtype: c_char = 0;
        // SAFETY: value is NUL-terminated.
        unsafe { sys::ffdtyp(value.as_ptr(), &mut dtype, &mut status) };
        if status != 0 {
            // A value cfitsio cannot classify: keep its text rather than fail the whole read.
            status = 0;
            header.set(&key, HeaderValue::Str(raw.trim().to_string()));
            continue;
        }
        let parsed = match dtype as u8 {
            b'C' => {
                let s = parse_fits_string(&raw);
                HeaderValue::Str(if s.ends_with('&') {
                    read_long_string(f, &key).unwrap_or(s)
                } else {
                    s
                })
            }
            b'L' => HeaderValue::Bool(raw.trim() == "T"),
            b'I' => match raw.trim().parse::<i64>() {
                Ok(v) => HeaderValue::Int(v),
                Err(_) => parse_float(&raw)
                    .map(HeaderValue::Float)
                    .unwrap_or_else(|| HeaderValue::Str(raw.trim().to_string())),
            },
            b'F' => parse_float(&raw)
                .map(HeaderValue::Float)
                .unwrap_or_else(|| HeaderValue::Str(raw.trim().to_string())),
            _ => HeaderValue::Str(raw.trim().to_string()),
        };
        header.set(&key, parsed);
    }
    Ok(header)
}

/// `'O''Brien  '` → `O'Brien`.
fn parse_fits_string(raw: &str) -> String {
    let t = raw.trim();
    let inner = t.strip_prefix('\'').unwrap_or(t);
    let inner = inner.strip_suffix('\'').unwrap_or(inner);
    inner.replace("''", "'").trim_end().to_string()
}

fn parse_float(raw: &str) -> Option<f64> {
    raw.trim().replace(['D', 'd'], "E").parse::<f64>().ok()
}

/// A string continued over CONTINUE cards (the long-string convention).
fn read_long_string(f: &mut FitsFile, key: &str) -> Option<String> {
    let mut status = 0;
    let mut value: *mut c_char = std::ptr::null_mut();
    let ckey = c_string(key);
    // SAFETY: ffgkls allocates *value, which fffree releases below.
    unsafe {
        sys::ffgkls(
            f.as_raw(),
            ckey.as_ptr(),
            &mut value,
            std::ptr::null_mut(),
            &mut status,
        )
    };
    if value.is_null() {
        return None;
    }
    // SAFETY: value is a NUL-terminated string allocated by cfitsio.
    let s = unsafe { CStr::from_ptr(value) }
        .to_string_lossy()
        .trim_end()
        .to_string();
    let mut free_status = 0;
    // SAFETY: value came from ffgkls.
    unsafe { sys::fffree(value as *mut c_void, &mut free_status) };
    (status == 0).then_some(s)
}

// ---------------------------------------------------------------------------------------------
// Pixel types
// ---------------------------------------------------------------------------------------------

mod sealed {
    pub trait Sealed {}
}

/// The ASDF document of [`FitsWriter::write_asdf_extension`]: an empty tree (the ASDF 1.5.0
/// standard, as stdatamodels writes).
pub const ASDF_EMPTY_TREE: &str = "#ASDF 1.0.0\n#ASDF_STANDARD 1.5.0\n%YAML 1.1\n\
     %TAG ! tag:stsci.edu:asdf/\n--- !core/asdf-1.1.0 {}\n...\n";

/// A pixel type that cfitsio converts to and from: f32, f64, u8, u16, u32, i16, i32, i64.
pub trait Pixel: Copy + Default + Send + Sync + 'static + sealed::Sealed {
    /// cfitsio's datatype code (TFLOAT, TUSHORT, ...).
    #[doc(hidden)]
    const DATATYPE: c_int;
    /// cfitsio's image type when written (FLOAT_IMG, USHORT_IMG, ...). Unsigned 16 and 32 bit
    /// types are stored as BITPIX 16/32 with BZERO 32768/2^31.
    #[doc(hidden)]
    const IMAGE_TYPE: c_int;
    /// The numpy name of the type.
    const NAME: &'static str;
    /// Bytes per pixel in the file.
    #[doc(hidden)]
    const STORED_BYTES: usize;
    /// The pixel's bits as the file stores them (BZERO applied to unsigned 16 and 32 bit
    /// types), for the data checksum.
    #[doc(hidden)]
    fn stored_bits(self) -> u64;
}

macro_rules! pixel {
    ($t:ty, $dt:expr, $img:expr, $name:expr, |$v:ident| $bits:expr) => {
        impl sealed::Sealed for $t {}
        impl Pixel for $t {
            const DATATYPE: c_int = $dt;
            const IMAGE_TYPE: c_int = $img;
            const NAME: &'static str = $name;
            const STORED_BYTES: usize = std::mem::size_of::<$t>();
            #[inline(always)]
            fn stored_bits(self) -> u64 {
                let $v = self;
                $bits
            }
        }
    };
}
pixel!(f32, TFLOAT, FLOAT_IMG, "float32", |v| u64::from(
    v.to_bits()
));
pixel!(f64, TDOUBLE, DOUBLE_IMG, "float64", |v| v.to_bits());
pixel!(u8, TBYTE, BYTE_IMG, "uint8", |v| u64::from(v));
pixel!(u16, TUSHORT, USHORT_IMG, "uint16", |v| u64::from(
    v ^ 0x8000
));
pixel!(u32, TUINT, ULONG_IMG, "uint32", |v| u64::from(
    v ^ 0x8000_0000
));
pixel!(i16, TSHORT, SHORT_IMG, "int16", |v| u64::from(v as u16));
pixel!(i32, TINT, LONG_IMG, "int32", |v| u64::from(v as u32));
pixel!(i64, TLONGLONG, LONGLONG_IMG, "int64", |v| v as u64);

/// The numpy name of a cfitsio equivalent image type (BITPIX with BZERO taken into account).
fn image_type_name(t: c_int) -> &'static str {
    match t {
        BYTE_IMG => "uint8",
        SHORT_IMG => "int16",
        USHORT_IMG => "uint16",
        LONG_IMG => "int32",
        ULONG_IMG => "uint32",
        LONGLONG_IMG => "int64",
        FLOAT_IMG => "float32",
        DOUBLE_IMG => "float64",
        10 => "int8",
        _ => "scaled (BSCALE/BZERO) or unusual",
    }
}

// ---------------------------------------------------------------------------------------------
// ImageReader
// ---------------------------------------------------------------------------------------------

/// Reads row bands of one plane of an image HDU of 2 or more dimensions. A plane is one 2-D
/// `[ny, nx]` image; `plane` is the flattened index over the leading axes (for a 4-D ramp
/// `int * ngroups + group`). cfitsio converts the stored type to the requested one and applies
/// BZERO/BSCALE; only the requested rows are read.
pub struct ImageReader {
    file: FitsFile,
    path: PathBuf,
    hdu: String,
    shape: Vec<usize>,
    /// The equivalent type (BZERO taken into account), e.g. USHORT_IMG.
    image_type: c_int,
    /// BITPIX as stored.
    bitpix: c_int,
    /// Tile-compressed (stored as a binary table, read through cfitsio's section reader).
    compressed: bool,
}

// SAFETY: an ImageReader owns its cfitsio handle exclusively and every read takes `&mut self`,
// so a handle is never used by two threads at once; cfitsio is built reentrant (fitsio-src
// configures `--enable-reentrant`), which makes distinct handles safe on distinct threads. So
// moving a reader to another thread (e.g. to read inputs in parallel) is sound.
unsafe impl Send for ImageReader {}

impl ImageReader {
    /// Opens the image HDU `hdu_name` of `path`. Fails if the HDU is a table, has no data, or
    /// has fewer than 2 dimensions, and if the file is shorter than the HDU's data.
    pub fn open(path: &Path, hdu_name: &str) -> Result<Self, FitsError> {
        let (mut file, len) = open_read(path)?;
        let hdutype = move_to_hdu(&mut file, path, hdu_name)?;
        let err = |kind, msg: String| FitsError::new(kind, path, msg).in_hdu(hdu_name);
        if hdutype != IMAGE_HDU {
            return Err(err(
                FitsErrorKind::WrongType,
                format!(
                    "HDU {hdu_name} is a table, not an image; check the extension name \
                     (images are e.g. SCI, DQ, ERR)"
                ),
            ));
        }
        let mut status = 0;
        let mut naxis = 0;
        let mut image_type = 0;
        let mut bitpix = 0;
        // SAFETY: file is open and positioned on an image HDU.
        let compressed = unsafe {
            sys::ffgidm(file.as_raw(), &mut naxis, &mut status);
            sys::ffgiet(file.as_raw(), &mut image_type, &mut status);
            sys::ffgidt(file.as_raw(), &mut bitpix, &mut status);
            sys::fits_is_compressed_image(file.as_raw(), &mut status) != 0
        };
        if status != 0 {
            return Err(
                cfitsio_error(path, status, "reading the image dimensions").in_hdu(hdu_name)
            );
        }
        let mut naxes = vec![0 as sys::LONGLONG; naxis.max(0) as usize];
        if naxis > 0 {
            // SAFETY: naxes has naxis elements.
            unsafe { sys::ffgiszll(file.as_raw(), naxis, naxes.as_mut_ptr(), &mut status) };
            if status != 0 {
                return Err(cfitsio_error(path, status, "reading NAXISn").in_hdu(hdu_name));
            }
        }
        let shape: Vec<usize> = naxes.iter().rev().map(|&n| n.max(0) as usize).collect();
        if shape.len() < 2 || shape.contains(&0) {
            return Err(err(
                FitsErrorKind::WrongShape,
                format!(
                    "HDU {hdu_name} has shape {shape:?} (NAXIS={naxis}); an image of at least \
                     2 non-empty dimensions is needed; check the file was written completely"
                ),
            ));
        }
        let mut r = ImageReader {
            file,
            path: path.to_path_buf(),
            hdu: hdu_name.to_string(),
            shape,
            image_type,
            bitpix,
            compressed,
        };
        r.check_length(len)?;
        Ok(r)
    }

    /// Fails if the file is shorter than the end of this HDU's data. Compressed files (which
    /// cfitsio inflates in memory) are not checked here; their truncation shows when read.
    fn check_length(&mut self, file_len: u64) -> Result<(), FitsError> {
        if !starts_as_plain_fits(&self.path) {
            return Ok(());
        }
        let mut status = 0;
        let (mut head, mut data, mut end) = (0, 0, 0);
        // SAFETY: the file is open and positioned on this HDU.
        unsafe {
            sys::ffghadll(
                self.file.as_raw(),
                &mut head,
                &mut data,
                &mut end,
                &mut status,
            )
        };
        if status != 0 {
            return Err(cfitsio_error(&self.path, status, "locating the data").in_hdu(&self.hdu));
        }
        // Checked: a damaged header may announce more bytes than a u64 counts. A compressed
        // image's data are its table's rows and heap.
        let stored = match self.compressed {
            true => self.table_bytes()?,
            false => self
                .shape
                .iter()
                .try_fold(self.bytes_per_stored_pixel(), |acc, &n| {
                    acc.checked_mul(n as u64)
                }),
        };
        let needed = stored.and_then(|bytes| bytes.checked_add(data as u64));
        let Some(needed) = needed else {
            return Err(FitsError::new(
                FitsErrorKind::WrongShape,
                &self.path,
                format!(
                    "HDU {} announces a shape of {:?}, more data than a file can hold; the \
                     header is damaged",
                    self.hdu, self.shape
                ),
            )
            .in_hdu(&self.hdu));
        };
        if file_len < needed {
            return Err(FitsError::new(
                FitsErrorKind::Truncated,
                &self.path,
                format!(
                    "the data of HDU {} ({} pixels of {}) end at byte {needed}, but the file \
                     has only {file_len} bytes; it was cut short, probably by an interrupted \
                     copy or write; copy or create it again",
                    self.hdu,
                    self.n_pixels(),
                    self.stored_type()
                ),
            )
            .in_hdu(&self.hdu));
        }
        Ok(())
    }

    /// The bytes of a compressed image's table, `NAXIS1 * NAXIS2 + PCOUNT` (rows and heap);
    /// `None` if they overflow.
    fn table_bytes(&mut self) -> Result<Option<u64>, FitsError> {
        let mut value = |key: &str| {
            let (ckey, mut v, mut status) = (c_string(key), 0 as sys::LONGLONG, 0);
            // SAFETY: the file is open on this HDU; ckey is NUL-terminated; no comment wanted.
            unsafe {
                sys::ffgkyjj(
                    self.file.as_raw(),
                    ckey.as_ptr(),
                    &mut v,
                    std::ptr::null_mut(),
                    &mut status,
                )
            };
            match status {
                0 => Ok(u64::try_from(v).unwrap_or(u64::MAX)),
                s => Err(cfitsio_error(&self.path, s, &format!("reading {key}"))
                    .in_hdu(&self.hdu)
                    .for_key(key)),
            }
        };
        let (width, rows, heap) = (value("NAXIS1")?, value("NAXIS2")?, value("PCOUNT")?);
        Ok(width.checked_mul(rows).and_then(|b| b.checked_add(heap)))
    }

    /// Bytes per stored pixel, from BITPIX.
    fn bytes_per_stored_pixel(&self) -> u64 {
        (self.bitpix.unsigned_abs() / 8).max(1) as u64
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn hdu_name(&self) -> &str {
        &self.hdu
    }

    /// The shape in C order, e.g. `[nints, ngroups, ny, nx]`.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn ny(&self) -> usize {
        self.shape[self.shape.len() - 2]
    }

    pub fn nx(&self) -> usize {
        self.shape[self.shape.len() - 1]
    }

    /// The number of 2-D planes: the product of the leading axes (1 for a 2-D image).
    pub fn n_planes(&self) -> usize {
        self.shape[..self.shape.len() - 2].iter().product()
    }

    fn n_pixels(&self) -> usize {
        self.shape.iter().product()
    }

    /// The numpy name of the stored type, BZERO taken into account (`uint16` for BITPIX 16
    /// with BZERO 32768).
    pub fn stored_type(&self) -> &'static str {
        image_type_name(self.image_type)
    }

    /// The header of this HDU.
    pub fn header(&mut self) -> Result<Header, FitsError> {
        read_current_header(&mut self.file, &self.path).map_err(|e| e.in_hdu(&self.hdu))
    }

    /// Reads rows `y0..y1` of plane `plane` into `out`, which must hold `(y1 - y0) * nx` values.
    pub fn read_rows<T: Pixel>(
        &mut self,
        plane: usize,
        y0: usize,
        y1: usize,
        out: &mut [T],
    ) -> Result<(), FitsError> {
        let (ny, nx, np) = (self.ny(), self.nx(), self.n_planes());
        let what = format!("rows {y0}..{y1} of plane {plane} as {}", T::NAME);
        let bad = |msg: String| {
            Err(FitsError::new(FitsErrorKind::BadRequest, &self.path, msg).in_hdu(&self.hdu))
        };
        if plane >= np {
            return bad(format!(
                "cannot read {what}: the image has shape {:?}, i.e. {np} plane(s) of {ny}x{nx}",
                self.shape
            ));
        }
        if y0 >= y1 || y1 > ny {
            return bad(format!(
                "cannot read {what}: rows must satisfy y0 < y1 <= {ny} (shape {:?})",
                self.shape
            ));
        }
        let n = (y1 - y0) * nx;
        if out.len() != n {
            return bad(format!(
                "cannot read {what}: the output buffer holds {} values but the band has {n}",
                out.len()
            ));
        }
        let mut status = 0;
        let mut anynul = 0;
        if self.compressed {
            let out = out.as_mut_ptr() as *mut c_void;
            if let Err(s) = self.read_section(plane, y0, y1, T::DATATYPE, out) {
                status = s;
            }
        } else {
            let first = (plane * ny + y0) * nx + 1;
            // SAFETY: out holds exactly n elements of the type named by T::DATATYPE; no null
            // value.
            unsafe {
                sys::ffgpv(
                    self.file.as_raw(),
                    T::DATATYPE,
                    first as sys::LONGLONG,
                    n as sys::LONGLONG,
                    std::ptr::null_mut(),
                    out.as_mut_ptr() as *mut c_void,
                    &mut anynul,
                    &mut status,
                )
            };
        }
        match status {
            0 => Ok(()),
            NUM_OVERFLOW => Err(FitsError::new(
                FitsErrorKind::WrongType,
                &self.path,
                format!(
                    "cannot read {what}: the data are stored as {} and some values do not fit \
                     in {}; read them as a wider type (f32 or f64)",
                    self.stored_type(),
                    T::NAME
                ),
            )
            .in_hdu(&self.hdu)),
            s => Err(cfitsio_error(&self.path, s, &format!("reading {what}")).in_hdu(&self.hdu)),
        }
    }

    /// Reads rows `y0..y1` of `plane` of a compressed image as a section (cfitsio reads
    /// compressed pixels by position only up to 3 dimensions; a ramp has 4), returning the
    /// cfitsio status on failure. `out` must hold the band's values of type `datatype`.
    fn read_section(
        &mut self,
        plane: usize,
        y0: usize,
        y1: usize,
        datatype: c_int,
        out: *mut c_void,
    ) -> Result<(), c_int> {
        use std::os::raw::c_long;
        let dims = self.shape.len();
        // FITS order: x, y, then the leading axes from the fastest.
        let mut first: Vec<c_long> = vec![1; dims];
        let mut last: Vec<c_long> = vec![1; dims];
        let mut inc: Vec<c_long> = vec![1; dims];
        (last[0], first[1], last[1]) = (self.nx() as c_long, y0 as c_long + 1, y1 as c_long);
        let mut rest = plane;
        for axis in 2..dims {
            let len = self.shape[dims - 1 - axis];
            let at = (rest % len) as c_long + 1;
            rest /= len;
            (first[axis], last[axis]) = (at, at);
        }
        let (mut status, mut anynul) = (0, 0);
        // SAFETY: out holds (y1 - y0) * nx values of `datatype` (checked by the caller); the
        // corners and increments have one entry per axis; no null value.
        unsafe {
            sys::ffgsv(
                self.file.as_raw(),
                datatype,
                first.as_mut_ptr(),
                last.as_mut_ptr(),
                inc.as_mut_ptr(),
                std::ptr::null_mut(),
                out,
                &mut anynul,
                &mut status,
            )
        };
        match status {
            0 => Ok(()),
            s => Err(s),
        }
    }

    /// Reads a whole plane (`ny * nx` values).
    pub fn read_plane<T: Pixel>(&mut self, plane: usize) -> Result<Vec<T>, FitsError> {
        let mut out = vec![T::default(); self.ny() * self.nx()];
        let ny = self.ny();
        self.read_rows(plane, 0, ny, &mut out)?;
        Ok(out)
    }
}

/// Reads a DQ_DEF binary table (columns BIT, VALUE, NAME, DESCRIPTION).
pub fn read_dq_def(path: &Path) -> Result<Vec<DqDefRow>, FitsError> {
    const HDU: &str = "DQ_DEF";
    let (mut f, _) = open_read(path)?;
    if move_to_hdu(&mut f, path, HDU)? != BINARY_TBL {
        return Err(FitsError::new(
            FitsErrorKind::WrongType,
            path,
            "DQ_DEF is not a binary table; the file does not follow the JWST reference format",
        )
        .in_hdu(HDU));
    }
    let mut status = 0;
    let mut nrows: std::os::raw::c_long = 0;
    // SAFETY: f is positioned on a table.
    unsafe { sys::ffgnrw(f.as_raw(), &mut nrows, &mut status) };
    if status != 0 {
        return Err(cfitsio_error(path, status, "counting rows").in_hdu(HDU));
    }
    let n = nrows.max(0) as usize;
    let col = |f: &mut FitsFile, name: &str| -> Result<c_int, FitsError> {
        let mut status = 0;
        let mut colnum = 0;
        let cname = c_string(name);
        // SAFETY: cname is NUL-terminated; cfitsio does not write through it.
        unsafe {
            sys::ffgcno(
                f.as_raw(),
                CASEINSEN,
                cname.as_ptr() as *mut c_char,
                &mut colnum,
                &mut status,
            )
        };
        if status != 0 {
            return Err(FitsError::new(
                FitsErrorKind::MissingKey,
                path,
                format!("DQ_DEF has no {name} column; it needs BIT, VALUE, NAME, DESCRIPTION"),
            )
            .in_hdu(HDU)
            .for_key(name));
        }
        Ok(colnum)
    };
    let (cbit, cval, cname, cdesc) = (
        col(&mut f, "BIT")?,
        col(&mut f, "VALUE")?,
        col(&mut f, "NAME")?,
        col(&mut f, "DESCRIPTION")?,
    );
    let mut bits = vec![0i32; n];
    let mut values = vec![0u32; n];
    let mut anynul = 0;
    if n > 0 {
        // SAFETY: buffers hold n values of the named types.
        unsafe {
            sys::ffgcv(
                f.as_raw(),
                TINT,
                cbit,
                1,
                1,
                n as sys::LONGLONG,
                std::ptr::null_mut(),
                bits.as_mut_ptr() as *mut c_void,
                &mut anynul,
                &mut status,
            );
            sys::ffgcv(
                f.as_raw(),
                TUINT,
                cval,
                1,
                1,
                n as sys::LONGLONG,
                std::ptr::null_mut(),
                values.as_mut_ptr() as *mut c_void,
                &mut anynul,
                &mut status,
            );
        }
    }
    if status != 0 {
        return Err(cfitsio_error(path, status, "reading BIT and VALUE").in_hdu(HDU));
    }
    let names = read_string_column(&mut f, path, cname, n)?;
    let descs = read_string_column(&mut f, path, cdesc, n)?;
    Ok((0..n)
        .map(|i| DqDefRow {
            bit: bits[i],
            value: values[i],
            name: names[i].clone(),
            description: descs[i].clone(),
        })
        .collect())
}

fn read_string_column(
    f: &mut FitsFile,
    path: &Path,
    colnum: c_int,
    n: usize,
) -> Result<Vec<String>, FitsError> {
    let mut out = Vec::with_capacity(n);
    let mut status = 0;
    for row in 1..=n {
        let mut buf = [0 as c_char; 1024];
        let mut ptrs = [buf.as_mut_ptr()];
        let nul = c_string("");
        let mut anynul = 0;
        // SAFETY: one string of at most 1023 characters (DQ_DEF columns are 40 and 80 wide).
        unsafe {
            sys::ffgcvs(
                f.as_raw(),
                colnum,
                row as sys::LONGLONG,
                1,
                1,
                nul.as_ptr() as *mut c_char,
                ptrs.as_mut_ptr(),
                &mut anynul,
                &mut status,
            )
        };
        if status != 0 {
            return Err(cfitsio_error(path, status, "reading a string column").in_hdu("DQ_DEF"));
        }
        out.push(cstr_to_string(&buf).trim_end().to_string());
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// FitsWriter
// ---------------------------------------------------------------------------------------------

static WRITER_SEQ: AtomicU64 = AtomicU64::new(0);

/// What the writer is positioned on.
enum Current {
    Primary,
    Image {
        name: String,
        datatype: c_int,
        type_name: &'static str,
        total: u64,
        /// Sorted, disjoint, non-adjacent half-open ranges of written pixels.
        written: Vec<(u64, u64)>,
    },
    Table {
        name: String,
    },
}

impl Current {
    fn name(&self) -> &str {
        match self {
            Current::Primary => "PRIMARY",
            Current::Image { name, .. } | Current::Table { name } => name,
        }
    }
}

/// Writes a new FITS file under a temporary name beside its destination
/// (`.<name>.part-<pid>-<n>`); [`FitsWriter::finish`] closes it and renames it to the final
/// name. Dropped without `finish` (an error, a panic), it removes the temporary file, so a file
/// carrying the final name is always complete.
///
/// The primary HDU has no data. Write primary keys and HISTORY before the first image: adding
/// them later works but makes cfitsio shift everything already written.
pub struct FitsWriter {
    file: Option<FitsFile>,
    tmp_path: PathBuf,
    final_path: PathBuf,
    current: Current,
    /// Whether [`FitsWriter::finish`] syncs the file to disk before the rename.
    durable: bool,
    /// Whether [`FitsWriter::finish`] writes CHECKSUM and DATASUM into every HDU.
    checksums: bool,
    /// Per HDU made so far (the primary first), its data sum when it is accumulated as the
    /// pixels are written (plain images made while checksums were on); `None` where cfitsio
    /// reads the data back for it.
    datasums: Vec<Option<DataSum>>,
}

impl FitsWriter {
    /// Whether `finish` writes CHECKSUM and DATASUM (the FITS checksum convention) into every
    /// HDU. Reference files carry them, so that a delivered file can be verified by astropy
    /// (`checksum=True`), fitsverify or CRDS; products do not (it costs a read of every byte).
    /// Call it before the first extension is made: each HDU then gets the two cards when it is
    /// made, so filling them in at the end never moves the data.
    pub fn set_checksums(&mut self, on: bool) -> Result<(), FitsError> {
        self.checksums = on;
        if on {
            self.reserve_checksum_cards()
                .map_err(|e| e.in_hdu("PRIMARY"))?;
        }
        Ok(())
    }

    /// Writes placeholder CHECKSUM and DATASUM cards into the current HDU when checksums are
    /// on (the values [`FitsWriter::finish`] replaces).
    fn reserve_checksum_cards(&mut self) -> Result<(), FitsError> {
        if !self.checksums {
            return Ok(());
        }
        let raw = self.raw();
        let mut status = 0;
        for (key, value, comment) in [
            ("CHECKSUM", "0000000000000000", "HDU checksum"),
            ("DATASUM", "0", "data unit checksum"),
        ] {
            let (k, v, c) = (c_string(key), c_string(value), c_string(comment));
            // SAFETY: raw is the open file; the strings are NUL-terminated.
            unsafe { sys::ffukys(raw, k.as_ptr(), v.as_ptr(), c.as_ptr(), &mut status) };
        }
        match status {
            0 => Ok(()),
            s => Err(self.write_failed(s, "reserving the CHECKSUM and DATASUM cards")),
        }
    }

    /// Fills in CHECKSUM and DATASUM of every HDU: the data sum accumulated while writing
    /// where there is one (then cfitsio's `ffupck` sums only the header), else cfitsio's
    /// `ffpcks`, which reads the data unit back (tables, compressed images).
    fn write_checksums(&mut self) -> Result<(), FitsError> {
        let raw = self.raw();
        let mut status = 0;
        let mut n = 0;
        // SAFETY: raw is the open file.
        unsafe { sys::ffthdu(raw, &mut n, &mut status) };
        for hdu in 1..=n {
            let mut hdutype = 0;
            let known = self.datasums.get(hdu as usize - 1).copied().flatten();
            // SAFETY: as above; hdu is within the file's HDUs; the strings are NUL-terminated.
            unsafe {
                sys::ffmahd(raw, hdu, &mut hdutype, &mut status);
                match known {
                    Some(sum) => {
                        let (key, comment) = (c_string("DATASUM"), c_string("data unit checksum"));
                        let value = c_string(&sum.value().to_string());
                        sys::ffmkys(
                            raw,
                            key.as_ptr(),
                            value.as_ptr(),
                            comment.as_ptr(),
                            &mut status,
                        );
                        sys::ffupck(raw, &mut status);
                    }
                    None => {
                        sys::ffpcks(raw, &mut status);
                    }
                }
            }
            if status != 0 {
                return Err(
                    self.write_failed(status, &format!("writing the checksums of HDU {hdu}"))
                );
            }
        }
        match status {
            0 => Ok(()),
            s => Err(self.write_failed(s, "counting the HDUs for their checksums")),
        }
    }

    /// Whether `finish` syncs the file to disk before renaming it (the default). Reference
    /// files and products a user keeps are synced, so a crash leaves either the complete file
    /// or none; a run-internal product is not (its reuse is proven by the content hash its
    /// record carries, so a file torn by a crash is made again, not trusted), which spares the
    /// disk a flush of every byte.
    pub fn set_durable(&mut self, durable: bool) {
        self.durable = durable;
    }

    /// Starts a new file that will be named `final_path` once finished. An existing file of
    /// that name is replaced by [`FitsWriter::finish`]; callers that must not overwrite check
    /// first.
    pub fn create(final_path: &Path) -> Result<Self, FitsError> {
        let name = final_path.file_name().ok_or_else(|| {
            FitsError::new(
                FitsErrorKind::Write,
                final_path,
                "the output path has no file name; give a path such as out/readnoise.fits",
            )
        })?;
        let dir = match final_path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !dir.is_dir() {
            return Err(FitsError::new(
                FitsErrorKind::Write,
                final_path,
                format!(
                    "the output directory {} does not exist; create it first",
                    dir.display()
                ),
            ));
        }
        let lower = name.to_string_lossy().to_ascii_lowercase();
        if [".gz", ".z", ".bz2", ".zip"]
            .iter()
            .any(|ext| lower.ends_with(ext))
        {
            return Err(FitsError::new(
                FitsErrorKind::Write,
                final_path,
                "compressed output is not supported (reference files are plain FITS); \
                 give a name ending in .fits",
            ));
        }
        let seq = WRITER_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp_name = format!(
            ".{}.part-{}-{seq}",
            name.to_string_lossy(),
            std::process::id()
        );
        let tmp_path = dir.join(tmp_name);
        let text = path_text(&tmp_path)?;
        if text.contains('[') {
            return Err(FitsError::new(
                FitsErrorKind::Write,
                final_path,
                "the output path contains '[', which cfitsio reads as a filter \
                 specification; choose another name or directory",
            ));
        }
        let file = FitsFile::create(&tmp_path)
            .overwrite()
            .open()
            .map_err(|e| {
                FitsError::new(
                    FitsErrorKind::Write,
                    final_path,
                    format!(
                        "cannot create the temporary file {} ({e}); check that the directory is \
                     writable and the disk is not full",
                        tmp_path.display()
                    ),
                )
            })?;
        Ok(FitsWriter {
            file: Some(file),
            tmp_path,
            final_path: final_path.to_path_buf(),
            current: Current::Primary,
            durable: true,
            checksums: false,
            // The primary has no data.
            datasums: vec![Some(DataSum::default())],
        })
    }

    /// The name the file will have once finished.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// The temporary name the file has while it is written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp_path
    }

    fn raw(&mut self) -> *mut sys::fitsfile {
        // SAFETY: the file is open until finish or drop, which consume it.
        unsafe {
            self.file
                .as_mut()
                .expect("file is open until finish")
                .as_raw()
        }
    }

    fn err(&self, kind: FitsErrorKind, message: impl Into<String>) -> FitsError {
        FitsError::new(kind, &self.final_path, message).in_hdu(self.current.name())
    }

    fn write_failed(&self, status: c_int, doing: &str) -> FitsError {
        self.err(
            FitsErrorKind::Write,
            format!(
                "{doing} failed: cfitsio status {status} ({}); check free disk space and \
                 permissions of {}",
                status_text(status),
                self.tmp_path.display()
            ),
        )
    }

    /// Runs `f` with the primary HDU current, then returns to the current HDU.
    fn on_primary<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> Result<R, FitsError> {
        let mut status = 0;
        let mut hdutype = 0;
        let mut here = 0;
        let raw = self.raw();
        // SAFETY: the file is open.
        unsafe {
            sys::ffghdn(raw, &mut here);
            sys::ffmahd(raw, 1, &mut hdutype, &mut status);
        }
        if status != 0 {
            return Err(self.write_failed(status, "moving to the primary HDU"));
        }
        let r = f(self);
        let raw = self.raw();
        // SAFETY: `here` is an existing HDU number.
        unsafe { sys::ffmahd(raw, here, &mut hdutype, &mut status) };
        if status != 0 {
            return Err(self.write_failed(status, "returning to the current HDU"));
        }
        Ok(r)
    }

    /// Sets a keyword in the primary header (replacing an existing one).
    pub fn set_primary_key(
        &mut self,
        key: &str,
        value: &HeaderValue,
        comment: &str,
    ) -> Result<(), FitsError> {
        self.on_primary(|w| w.write_key(key, value, comment))?
            .map_err(|e| e.in_hdu("PRIMARY"))
    }

    /// Sets a keyword in the header of the current HDU (the last image or table created).
    pub fn set_key(
        &mut self,
        key: &str,
        value: &HeaderValue,
        comment: &str,
    ) -> Result<(), FitsError> {
        if matches!(self.current, Current::Primary) {
            return Err(self.err(
                FitsErrorKind::BadRequest,
                format!(
                    "set_key({key}) needs a current extension; call create_image or \
                     write_dq_def first, or use set_primary_key"
                ),
            ));
        }
        self.write_key(key, value, comment)
    }

    fn write_key(
        &mut self,
        key: &str,
        value: &HeaderValue,
        comment: &str,
    ) -> Result<(), FitsError> {
        let key_err = |w: &Self, msg: String| Err(w.err(FitsErrorKind::BadValue, msg).for_key(key));
        if key.is_empty()
            || key.len() > 8
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return key_err(
                self,
                format!(
                    "{key:?} is not a FITS keyword name: use 1 to 8 characters of A-Z, 0-9, \
                     '-' and '_'"
                ),
            );
        }
        if let Err(m) = printable_ascii(comment) {
            return key_err(self, format!("comment: {m}"));
        }
        let ckey = c_string(&key.to_ascii_uppercase());
        let ccomment = c_string(comment);
        let mut status = 0;
        let raw = self.raw();
        match value {
            HeaderValue::Bool(b) => {
                // SAFETY: valid NUL-terminated strings; the file is open.
                unsafe {
                    sys::ffukyl(
                        raw,
                        ckey.as_ptr(),
                        *b as c_int,
                        ccomment.as_ptr(),
                        &mut status,
                    )
                };
            }
            HeaderValue::Int(i) => {
                // SAFETY: as above.
                unsafe { sys::ffukyj(raw, ckey.as_ptr(), *i, ccomment.as_ptr(), &mut status) };
            }
            HeaderValue::Float(x) => {
                if !x.is_finite() {
                    return key_err(
                        self,
                        format!("{x} cannot be written: FITS header values must be finite"),
                    );
                }
                // 15 significant digits when they round-trip, else 17.
                let decim = if format!("{x:.14e}").parse::<f64>() == Ok(*x) {
                    -15
                } else {
                    -17
                };
                // SAFETY: as above.
                unsafe {
                    sys::ffukyd(
                        raw,
                        ckey.as_ptr(),
                        *x,
                        decim,
                        ccomment.as_ptr(),
                        &mut status,
                    )
                };
            }
            HeaderValue::Str(s) => {
                if let Err(m) = printable_ascii(s) {
                    return key_err(self, m);
                }
                let cval = c_string(s);
                // SAFETY: as above. ffukls writes a plain card when the value fits, CONTINUE
                // cards (the long-string convention) when it does not.
                unsafe {
                    sys::ffukls(
                        raw,
                        ckey.as_ptr(),
                        cval.as_ptr(),
                        ccomment.as_ptr(),
                        &mut status,
                    )
                };
            }
        }
        if status != 0 {
            return Err(self
                .write_failed(status, &format!("writing {key}"))
                .for_key(key));
        }
        Ok(())
    }

    /// Adds HISTORY cards to the primary header: the text wrapped at word boundaries into
    /// lines of at most 72 characters (words longer than that are cut); `\n` forces a break.
    pub fn add_history(&mut self, text: &str) -> Result<(), FitsError> {
        let kw = "HISTORY";
        let text = text.replace('\t', " ");
        if let Some(c) = text
            .chars()
            .find(|c| *c != '\n' && !(' '..='~').contains(c))
        {
            return Err(self
                .err(
                    FitsErrorKind::BadValue,
                    format!(
                        "{kw} text {text:?} contains {c:?}; FITS headers hold printable ASCII \
                         only; replace that character"
                    ),
                )
                .in_hdu("PRIMARY")
                .for_key(kw));
        }
        let lines = wrap_text(&text, 72);
        self.on_primary(|w| {
            let raw = w.raw();
            let mut status = 0;
            for line in &lines {
                let c = c_string(line);
                // SAFETY: line is at most 72 characters, so ffphis writes one card.
                unsafe { sys::ffphis(raw, c.as_ptr(), &mut status) };
                if line.is_empty() {
                    // cfitsio writes nothing for an empty string; write a blank card instead.
                    let card = c_string(kw);
                    // SAFETY: a NUL-terminated card image.
                    unsafe { sys::ffprec(raw, card.as_ptr(), &mut status) };
                }
            }
            if status != 0 {
                Err(w
                    .write_failed(status, &format!("writing {kw}"))
                    .in_hdu("PRIMARY"))
            } else {
                Ok(())
            }
        })?
    }

    /// Fails if the current image has pixels that were never written.
    fn check_current_complete(&self) -> Result<(), FitsError> {
        if let Current::Image { total, written, .. } = &self.current {
            let done: u64 = written.iter().map(|(a, b)| b - a).sum();
            if done != *total {
                let first_gap = match written.first() {
                    Some(&(0, b)) => b,
                    _ => 0,
                };
                return Err(self.err(
                    FitsErrorKind::Write,
                    format!(
                        "only {done} of {total} pixels were written (the first missing pixel \
                         is {first_gap}); the writer stopped before the image was complete, \
                         so the file is not finished"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Appends an image extension named `extname` with shape `shape` (C order) and pixel type
    /// `T`, and makes it current. u16 is stored as BITPIX 16 with BZERO 32768, u32 as BITPIX 32
    /// with BZERO 2^31. Its pixels are then written with [`FitsWriter::write_pixels`].
    pub fn create_image<T: Pixel>(
        &mut self,
        extname: &str,
        shape: &[usize],
    ) -> Result<(), FitsError> {
        self.check_current_complete()?;
        if shape.is_empty() || shape.len() > 999 || shape.contains(&0) {
            return Err(self.err(
                FitsErrorKind::WrongShape,
                format!("cannot create image {extname} with shape {shape:?}: give 1 or more non-zero dimensions"),
            )
            .in_hdu(extname));
        }
        if let Err(m) = printable_ascii(extname) {
            return Err(self.err(FitsErrorKind::BadValue, m).in_hdu(extname));
        }
        let mut naxes: Vec<sys::LONGLONG> =
            shape.iter().rev().map(|&n| n as sys::LONGLONG).collect();
        let mut status = 0;
        let raw = self.raw();
        let ckey = c_string("EXTNAME");
        let cname = c_string(extname);
        // SAFETY: naxes has shape.len() entries; strings are NUL-terminated.
        unsafe {
            sys::ffcrimll(
                raw,
                T::IMAGE_TYPE,
                naxes.len() as c_int,
                naxes.as_mut_ptr(),
                &mut status,
            );
            sys::ffukys(
                raw,
                ckey.as_ptr(),
                cname.as_ptr(),
                std::ptr::null(),
                &mut status,
            );
        }
        if status != 0 {
            return Err(self
                .write_failed(status, &format!("creating image {extname} {shape:?}"))
                .in_hdu(extname));
        }
        self.reserve_checksum_cards()
            .map_err(|e| e.in_hdu(extname))?;
        self.datasums.push(self.checksums.then(DataSum::default));
        self.current = Current::Image {
            name: extname.to_string(),
            datatype: T::DATATYPE,
            type_name: T::NAME,
            total: shape.iter().map(|&n| n as u64).product(),
            written: Vec::new(),
        };
        Ok(())
    }

    /// Writes `data` into the current image starting at pixel `first_pixel` (0-based, C order
    /// flattened), so that a large image can be streamed band by band. `T` must be the type the
    /// image was created with.
    pub fn write_pixels<T: Pixel>(
        &mut self,
        first_pixel: usize,
        data: &[T],
    ) -> Result<(), FitsError> {
        let (datatype, type_name, total) = match &self.current {
            Current::Image {
                datatype,
                type_name,
                total,
                ..
            } => (*datatype, *type_name, *total),
            _ => {
                return Err(self.err(
                    FitsErrorKind::BadRequest,
                    "write_pixels needs a current image; call create_image first",
                ));
            }
        };
        if datatype != T::DATATYPE {
            return Err(self.err(
                FitsErrorKind::WrongType,
                format!(
                    "the image was created as {type_name} but {} pixels were given; convert \
                     them or create the image with the matching type",
                    T::NAME
                ),
            ));
        }
        let (a, b) = (first_pixel as u64, first_pixel as u64 + data.len() as u64);
        if b > total {
            return Err(self.err(
                FitsErrorKind::BadRequest,
                format!("pixels {a}..{b} are outside the image of {total} pixels"),
            ));
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut status = 0;
        let raw = self.raw();
        // SAFETY: data holds data.len() values of the type named by T::DATATYPE; cfitsio
        // does not modify the array.
        unsafe {
            sys::ffppr(
                raw,
                T::DATATYPE,
                (a + 1) as sys::LONGLONG,
                data.len() as sys::LONGLONG,
                data.as_ptr() as *mut c_void,
                &mut status,
            )
        };
        if status != 0 {
            return Err(self.write_failed(status, &format!("writing pixels {a}..{b}")));
        }
        if let Current::Image { written, .. } = &mut self.current {
            add_range(written, a, b);
        }
        if let Some(Some(sum)) = self.datasums.last_mut() {
            sum.add(a, data, T::STORED_BYTES, T::stored_bits);
        }
        Ok(())
    }

    /// [`FitsWriter::create_image`] followed by writing all of `data`.
    pub fn write_image<T: Pixel>(
        &mut self,
        extname: &str,
        shape: &[usize],
        data: &[T],
    ) -> Result<(), FitsError> {
        let n: usize = shape.iter().product();
        if data.len() != n {
            return Err(self
                .err(
                    FitsErrorKind::WrongShape,
                    format!(
                        "image {extname} has shape {shape:?} ({n} pixels) but {} values were given",
                        data.len()
                    ),
                )
                .in_hdu(extname));
        }
        self.create_image::<T>(extname, shape)?;
        self.write_pixels(0, data)
    }

    /// Appends the integer image `extname` tile-compressed (FITS tiled image convention, Rice,
    /// lossless), `tile_rows` rows of one plane per tile. For flag planes that are nearly all
    /// zero (a ramp's GROUPDQ shrinks from 84 MB to about 1 MB at 2048x2048x20) that no program
    /// outside the run reads: astropy, cfitsio and [`ImageReader`] read it as an image, but
    /// stdatamodels' readers expect plain images.
    pub fn write_image_compressed<T: Pixel>(
        &mut self,
        extname: &str,
        shape: &[usize],
        data: &[T],
        tile_rows: usize,
    ) -> Result<(), FitsError> {
        let n: usize = shape.iter().product();
        if data.len() != n || shape.len() < 2 {
            return Err(self
                .err(
                    FitsErrorKind::WrongShape,
                    format!(
                        "compressed image {extname} has shape {shape:?} ({n} pixels) but {} \
                         values were given; give at least 2 dimensions and every pixel",
                        data.len()
                    ),
                )
                .in_hdu(extname));
        }
        let raw = self.raw();
        let mut status = 0;
        // FITS order: a tile is `tile_rows` whole rows of one plane.
        let mut tile: Vec<std::os::raw::c_long> = vec![1; shape.len()];
        tile[0] = shape[shape.len() - 1] as std::os::raw::c_long;
        tile[1] = tile_rows.clamp(1, shape[shape.len() - 2]) as std::os::raw::c_long;
        // SAFETY: raw is the open file; tile has shape.len() entries.
        unsafe {
            sys::fits_set_compression_type(raw, RICE_1, &mut status);
            sys::fits_set_tile_dim(raw, tile.len() as c_int, tile.as_mut_ptr(), &mut status);
        }
        let created = if status == 0 {
            self.create_image::<T>(extname, shape)
        } else {
            Err(self
                .write_failed(status, &format!("choosing the compression of {extname}"))
                .in_hdu(extname))
        };
        // Later images of this file are plain again, whatever happened above.
        let mut reset = 0;
        // SAFETY: as above.
        unsafe { sys::fits_set_compression_type(raw, NO_COMPRESSION_REQUEST, &mut reset) };
        created?;
        // Its data are the compressed table: cfitsio sums them.
        if let Some(last) = self.datasums.last_mut() {
            *last = None;
        }
        let mut first: Vec<std::os::raw::c_long> = vec![1; shape.len()];
        let mut last: Vec<std::os::raw::c_long> = shape
            .iter()
            .rev()
            .map(|&d| d as std::os::raw::c_long)
            .collect();
        // SAFETY: data holds every pixel of the image, of the type named by T::DATATYPE; the
        // corners have one entry per axis. cfitsio does not modify the array.
        unsafe {
            sys::ffpss(
                raw,
                T::DATATYPE,
                first.as_mut_ptr(),
                last.as_mut_ptr(),
                data.as_ptr() as *mut c_void,
                &mut status,
            )
        };
        if status != 0 {
            return Err(self
                .write_failed(status, &format!("writing the compressed image {extname}"))
                .in_hdu(extname));
        }
        if let Current::Image { written, total, .. } = &mut self.current {
            add_range(written, 0, *total);
        }
        Ok(())
    }

    /// Appends the `DQ_DEF` binary table: BIT (int32, `J`), VALUE (uint32, `J` with TZERO
    /// 2^31), NAME (`40A`), DESCRIPTION (`80A`).
    pub fn write_dq_def(&mut self, rows: &[DqDefRow]) -> Result<(), FitsError> {
        const HDU: &str = "DQ_DEF";
        self.check_current_complete()?;
        for r in rows {
            for (what, text, width) in [("NAME", &r.name, 40), ("DESCRIPTION", &r.description, 80)]
            {
                if let Err(m) = printable_ascii(text) {
                    return Err(self
                        .err(FitsErrorKind::BadValue, m)
                        .in_hdu(HDU)
                        .for_key(what));
                }
                if text.len() > width {
                    return Err(self
                        .err(
                            FitsErrorKind::BadValue,
                            format!("{what} {text:?} is longer than the column's {width} characters; shorten it"),
                        )
                        .in_hdu(HDU)
                        .for_key(what));
                }
            }
        }
        let ttype: Vec<CString> = ["BIT", "VALUE", "NAME", "DESCRIPTION"]
            .iter()
            .map(|s| c_string(s))
            .collect();
        let tform: Vec<CString> = ["1J", "1V", "40A", "80A"]
            .iter()
            .map(|s| c_string(s))
            .collect();
        let mut ttype_p: Vec<*mut c_char> =
            ttype.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut tform_p: Vec<*mut c_char> =
            tform.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let extname = c_string(HDU);
        let n = rows.len();
        let mut bits: Vec<i32> = rows.iter().map(|r| r.bit).collect();
        let mut values: Vec<u32> = rows.iter().map(|r| r.value).collect();
        let names: Vec<CString> = rows.iter().map(|r| c_string(&r.name)).collect();
        let descs: Vec<CString> = rows.iter().map(|r| c_string(&r.description)).collect();
        let mut names_p: Vec<*mut c_char> =
            names.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut descs_p: Vec<*mut c_char> =
            descs.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut status = 0;
        let raw = self.raw();
        // SAFETY: the column arrays hold 4 NUL-terminated strings; data arrays hold n values;
        // cfitsio reads but does not modify them.
        unsafe {
            sys::ffcrtb(
                raw,
                BINARY_TBL,
                n as sys::LONGLONG,
                4,
                ttype_p.as_mut_ptr(),
                tform_p.as_mut_ptr(),
                std::ptr::null_mut(),
                extname.as_ptr(),
                &mut status,
            );
            if n > 0 {
                sys::ffpcl(
                    raw,
                    TINT,
                    1,
                    1,
                    1,
                    n as sys::LONGLONG,
                    bits.as_mut_ptr() as *mut c_void,
                    &mut status,
                );
                sys::ffpcl(
                    raw,
                    TUINT,
                    2,
                    1,
                    1,
                    n as sys::LONGLONG,
                    values.as_mut_ptr() as *mut c_void,
                    &mut status,
                );
                sys::ffpcls(
                    raw,
                    3,
                    1,
                    1,
                    n as sys::LONGLONG,
                    names_p.as_mut_ptr(),
                    &mut status,
                );
                sys::ffpcls(
                    raw,
                    4,
                    1,
                    1,
                    n as sys::LONGLONG,
                    descs_p.as_mut_ptr(),
                    &mut status,
                );
            }
        }
        if status != 0 {
            return Err(self
                .write_failed(status, "writing the DQ_DEF table")
                .in_hdu(HDU));
        }
        self.reserve_checksum_cards().map_err(|e| e.in_hdu(HDU))?;
        self.datasums.push(None);
        self.current = Current::Table {
            name: HDU.to_string(),
        };
        Ok(())
    }

    /// Appends the `ASDF` extension that every FITS file stdatamodels writes carries: a one-row
    /// binary table with one column, ASDF_METADATA, of `n` bytes (`nB`) holding an ASDF document.
    /// mkrefs writes an empty tree ([`ASDF_EMPTY_TREE`]): all its metadata are FITS keywords,
    /// which stdatamodels reads through the schemas anyway. The extension is needed because
    /// stpipe (`strun`, jwst 3.0) reads an input file's metadata with stdatamodels'
    /// `read_metadata`, which opens this extension and fails ("Extension 'ASDF' not found")
    /// on a file without it, before any step runs; `datamodels.open` does not need it.
    pub fn write_asdf_extension(&mut self) -> Result<(), FitsError> {
        const HDU: &str = "ASDF";
        self.check_current_complete()?;
        let mut bytes = ASDF_EMPTY_TREE.as_bytes().to_vec();
        let ttype = [c_string("ASDF_METADATA")];
        let tform = [c_string(&format!("{}B", bytes.len()))];
        let mut ttype_p: Vec<*mut c_char> =
            ttype.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let mut tform_p: Vec<*mut c_char> =
            tform.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        let extname = c_string(HDU);
        let mut status = 0;
        let raw = self.raw();
        // SAFETY: one column name and format, NUL-terminated; `bytes` holds exactly the
        // column's repeat count of bytes; cfitsio reads but does not modify them.
        unsafe {
            sys::ffcrtb(
                raw,
                BINARY_TBL,
                1,
                1,
                ttype_p.as_mut_ptr(),
                tform_p.as_mut_ptr(),
                std::ptr::null_mut(),
                extname.as_ptr(),
                &mut status,
            );
            sys::ffpcl(
                raw,
                TBYTE,
                1,
                1,
                1,
                bytes.len() as sys::LONGLONG,
                bytes.as_mut_ptr() as *mut c_void,
                &mut status,
            );
        }
        if status != 0 {
            return Err(self
                .write_failed(status, "writing the ASDF extension")
                .in_hdu(HDU));
        }
        self.reserve_checksum_cards().map_err(|e| e.in_hdu(HDU))?;
        self.datasums.push(None);
        self.current = Current::Table {
            name: HDU.to_string(),
        };
        Ok(())
    }

    /// Checks the last image is complete, closes the file, and renames it to its final name.
    pub fn finish(mut self) -> Result<PathBuf, FitsError> {
        self.check_current_complete()?;
        if self.checksums {
            self.write_checksums()?;
        }
        let mut status = 0;
        let raw = self.raw();
        // SAFETY: the file is open; ffflus writes all buffers and headers.
        unsafe { sys::ffflus(raw, &mut status) };
        if status != 0 {
            return Err(self.write_failed(status, "flushing the file"));
        }
        drop(self.file.take());
        let io = |w: &Self, doing: &str, e: std::io::Error| {
            w.err(
                FitsErrorKind::Write,
                format!(
                    "{doing} {} failed: {e}; check free disk space and permissions",
                    w.tmp_path.display()
                ),
            )
        };
        let durable = self.durable;
        let len = match std::fs::File::open(&self.tmp_path).and_then(|f| {
            if durable {
                f.sync_all()?;
            }
            f.metadata()
        }) {
            Ok(m) => m.len(),
            Err(e) => return Err(io(&self, "syncing", e)),
        };
        if len == 0 || len % BLOCK != 0 {
            return Err(self.err(
                FitsErrorKind::Write,
                format!("the written file has {len} bytes, not a whole number of 2880-byte FITS blocks; the write was incomplete"),
            ));
        }
        if let Err(e) = std::fs::rename(&self.tmp_path, &self.final_path) {
            return Err(io(
                &self,
                &format!("renaming to {}:", self.final_path.display()),
                e,
            ));
        }
        Ok(self.final_path.clone())
    }
}

impl Drop for FitsWriter {
    fn drop(&mut self) {
        drop(self.file.take());
        // After a successful finish the temporary name no longer exists; otherwise remove it.
        let _ = std::fs::remove_file(&self.tmp_path);
    }
}

/// Adds `[a, b)` to a sorted list of disjoint ranges, merging overlapping and adjacent ones.
fn add_range(ranges: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    let i = ranges.partition_point(|&(_, e)| e < a);
    let mut j = i;
    let (mut lo, mut hi) = (a, b);
    while j < ranges.len() && ranges[j].0 <= hi {
        lo = lo.min(ranges[j].0);
        hi = hi.max(ranges[j].1);
        j += 1;
    }
    ranges.splice(i..j, [(lo, hi)]);
}

/// Wraps `text` into lines of at most `width` characters at spaces; words longer than `width`
/// are cut; `\n` forces a break. Empty text gives one empty line.
pub(crate) fn wrap_text(text: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut rest = para.trim_end();
        if rest.is_empty() {
            out.push(String::new());
            continue;
        }
        while rest.len() > width {
            // The last space at or before `width` (a break there leaves `width` chars).
            let cut = rest[..=width].rfind(' ').filter(|&i| i > 0);
            let (line, next) = match cut {
                Some(i) => (&rest[..i], &rest[i + 1..]),
                None => (&rest[..width], &rest[width..]),
            };
            out.push(line.trim_end().to_string());
            rest = next.trim_start();
        }
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge() {
        let mut r = Vec::new();
        add_range(&mut r, 10, 20);
        add_range(&mut r, 0, 5);
        assert_eq!(r, vec![(0, 5), (10, 20)]);
        add_range(&mut r, 5, 10);
        assert_eq!(r, vec![(0, 20)]);
        add_range(&mut r, 30, 40);
        add_range(&mut r, 15, 35);
        assert_eq!(r, vec![(0, 40)]);
        add_range(&mut r, 2, 3);
        assert_eq!(r, vec![(0, 40)]);
    }

    #[test]
    fn wrapping_at_words() {
        let text = "This file was created using the readnoise generator within the mkrefs package.";
        let lines = wrap_text(text, 72);
        assert_eq!(
            lines,
            vec![
                "This file was created using the readnoise generator within the mkrefs",
                "package."
            ]
        );
        assert!(lines.iter().all(|l| l.len() <= 72));
        let long = "x".repeat(150);
        let lines = wrap_text(&long, 72);
        assert_eq!(
            lines.iter().map(String::len).collect::<Vec<_>>(),
            vec![72, 72, 6]
        );
        assert_eq!(wrap_text("a\n\nb", 72), vec!["a", "", "b"]);
        assert_eq!(wrap_text("", 72), vec![""]);
        // A space exactly at the limit: the first line gets all 72 characters.
        let t = format!("{} {}", "a".repeat(72), "b");
        assert_eq!(wrap_text(&t, 72), vec!["a".repeat(72), "b".to_string()]);
    }

    #[test]
    fn running_out_of_memory_is_not_called_damage() {
        let e = cfitsio_error(
            Path::new("/d/x_uncal.fits"),
            MEMORY_ALLOCATION,
            "reading rows",
        )
        .in_hdu("SCI");
        assert_eq!(e.kind, FitsErrorKind::OutOfMemory);
        let text = e.to_string();
        assert!(
            text.starts_with("/d/x_uncal.fits [HDU SCI]: out of memory — while reading rows"),
            "{text}"
        );
        assert!(!text.contains("damaged"), "{text}");
        assert!(
            text.contains("--jobs") && text.contains("memory_budget_mb"),
            "{text}"
        );
        let cut = cfitsio_error(Path::new("/d/x.fits"), READ_ERROR, "reading rows");
        assert_eq!(cut.kind, FitsErrorKind::Truncated);
        let other = cfitsio_error(Path::new("/d/x.fits"), 252, "reading the header");
        assert_eq!(other.kind, FitsErrorKind::Other);
        assert!(other.to_string().contains("may be damaged"));
    }

    #[test]
    fn fits_strings() {
        assert_eq!(parse_fits_string("'O''Brien  '"), "O'Brien");
        assert_eq!(parse_fits_string("'  lead'"), "  lead");
        assert_eq!(parse_fits_string("''"), "");
    }
}
