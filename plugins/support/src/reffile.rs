//! CRDS reference-file metadata and HISTORY, shared by every generator.
//!
//! [`RefMeta`] holds the primary keywords every JWST reference file needs (jwst docs
//! `standard_keywords`, `references_general`; the crate's `UPSTREAM.md`, "Reference-file
//! metadata").
//! [`RefMeta::validate`] applies the CRDS conventions and the stdatamodels 6.0.0 enumerations,
//! so a generator can reject bad metadata before it computes anything, and
//! [`RefMeta::write_primary`] writes the keywords and HISTORY in the order stdatamodels does.

use std::path::Path;

use crate::fits::{FitsError, FitsErrorKind, FitsWriter};
use crate::geometry::Instrument;
use crate::header::{Header, HeaderValue};
use crate::profile::Profile;
use crate::timeutil::now_utc_iso;

/// The longest DESCRIP jwst_reffiles accepts (it raises ValueError beyond 65 characters).
pub const MAX_DESCRIPTION_LEN: usize = 65;

/// Input file names are cut into pieces of this many characters in HISTORY, as jwst_reffiles
/// does (`UPSTREAM.md`, "HISTORY").
const NAME_PIECE: usize = 60;

/// INSTRUME values allowed by stdatamodels 6.0.0 (`referencefile.schema`).
#[rustfmt::skip]
pub const INSTRUMENTS: &[&str] = &[
    "NIRCAM", "NIRSPEC", "MIRI", "TFI", "FGS", "NIRISS", "ANY", "N/A",
];

/// DETECTOR values allowed by stdatamodels 6.0.0 (`referencefile.schema`).
#[rustfmt::skip]
pub const DETECTORS: &[&str] = &[
    "NRCA1", "NRCA2", "NRCA3", "NRCA4", "NRCALONG", "NRCB1", "NRCB2", "NRCB3", "NRCB4", "NRCBLONG",
    "NRS1", "NRS2", "ANY", "MIRIMAGE", "MIRIFULONG", "MIRIFUSHORT", "NIS", "GUIDER1", "GUIDER2",
    "MULTIPLE", "N/A",
];

/// SUBARRAY values allowed by stdatamodels 6.0.0 (`subarray.schema`, all instruments).
#[rustfmt::skip]
pub const SUBARRAYS: &[&str] = &[
    // FGS
    "8X8", "32X32", "128X128", "2048X64", "SUB128CNTR", "SUB128DIAG", "SUB128LL", "SUB32CNTR",
    "SUB32DIAG", "SUB32LL", "SUB8CNTR", "SUB8DIAG", "SUB8LL", "SUBIDSTRIPCENTER", "SUBIDSTRIPLL",
    "SUBTUNE32CENTERG1", "SUBTUNE32CENTERG2", "SUBTUNE32LLG1", "SUBTUNE32LLG2",
    // MIRI
    "BRIGHTSKY", "MASK1065", "MASK1140", "MASK1550", "MASKLYOT", "SLITLESSPRISM", "SUB128",
    "SUB256", "SUB64", "SUBPRISM", "SUB128_IP", "SUB64_IP", "SLITLESSPRISM_IP", "SLITLESSPRISM_IPS",
    "SUBSLIT", "SUBPRISM_IP", "SUBPRISM_IPS",
    // NIRCam
    "FULLP", "FULL_SUPSTP008", "FULL_SUPSTP024", "FULL_SUPSTP120", "FULL_SUPSTP510",
    "FULL_SUPSTP008P", "FULL_SUPSTP024P", "FULL_SUPSTP120P", "FULL_SUPSTP510P", "MASK210R",
    "MASK335R", "MASK430R", "MASKLWB", "MASKSWB", "SUB41STRIPE1_DHS", "SUB82STRIPE2_DHS",
    "SUB164STRIPE4_DHS", "SUB260STRIPE4_DHS", "SUB160STRIPE4_DHS", "SUB256STRIPE4_DHS",
    "SUB40STRIPE1_DHS", "SUB80STRIPE2_DHS", "SUB160", "SUB160P", "SUB320", "SUB320A335R",
    "SUB320A430R", "SUB320B335R", "SUB320B430R", "SUB320BLWB", "SUB32TATS", "SUB32TATSGRISM",
    "SUB32TA_DHS", "SUB400P", "SUB400X256ALWB", "SUB640", "SUB640A210R", "SUB640ASWB",
    "SUB640B210R", "SUB640BSWB", "SUB64FP1A", "SUB64FP1B", "SUB64P", "SUB64FP6A",
    "SUB64P_SUPSTP002", "SUB64P_SUPSTP008", "SUB64P_SUPSTP032", "SUB8FP1A", "SUB8FP1B", "SUB8FP6A",
    "SUB96DHSPILA", "SUB96DHSPILB", "SUBFSA210R", "SUBFSA335R", "SUBFSA430R", "SUBFSALWB",
    "SUBFSASWB", "SUBGRISM128", "SUBGRISM256", "SUBGRISM64", "SUBNDA210R", "SUBNDA335R",
    "SUBNDA430R", "SUBNDALWBL", "SUBNDALWBS", "SUBNDASWBL", "SUBNDASWBS", "SUBNDB210R",
    "SUBNDB335R", "SUBNDB430R", "SUBNDBLWBL", "SUBNDBLWBS", "SUBNDBSWBL", "SUBNDBSWBS",
    // Obsolete NIRCam
    "MASKA210R", "MASKA430R", "MASKBLWB", "MASKBSWB", "SUB320ALWB",
    // NIRISS
    "SUB80", "SUBAMPCAL", "SUBSTRIP96", "SUBSTRIP256", "SUB17STRIPE_SOSS", "SUB60STRIPE_SOSS",
    "SUB204STRIPE_SOSS", "SUB680STRIPE_SOSS", "SUBTAAMI", "SUBTASOSS", "WFSS64C", "WFSS64R",
    "WFSS128C", "WFSS128R", "SUBSTRIP80",
    // NIRSpec
    "ALLSLITS", "SUBS200A1", "SUBS200A2", "SUBS200B1", "SUBS400A1", "SUB1024A", "SUB1024B",
    "SUB512", "SUB32", "SUB512S", "SUB2048", "SUB256M2_PRISM", "SUB128M4_PRISM", "SUB64M8_PRISM",
    "SUB32M16_PRISM", "FULL_IRS2", "S200A1", "S200A2", "S200B1", "S400A1",
    // All
    "FULL", "GENERIC", "N/A",
];

/// READPATT values allowed by stdatamodels 6.0.0 (`keyword_readpatt.schema`).
#[rustfmt::skip]
pub const READPATTS: &[&str] = &[
    "ACQ1", "ACQ2", "BRIGHT1", "BRIGHT2", "DEEP2", "DEEP8", "DHS3", "DHS4", "DHS5", "DHS6", "DHS7",
    "FAST", "FASTGRPAVG", "FASTGRPAVG8", "FASTGRPAVG16", "FASTGRPAVG32", "FASTGRPAVG64", "FASTR1",
    "FASTR100", "FGS", "FGS60", "FGS8370", "FGS840", "FGSRAPID", "FINEGUIDE", "ID", "MEDIUM2",
    "MEDIUM8", "MEDIUMDEEP2", "MEDIUMDEEP8", "NIS", "NISRAPID", "NRS", "NRSIRS2", "NRSN16R4",
    "NRSN32R8", "NRSN8R2", "NRSRAPID", "NRSIRS2RAPID", "NRSRAPIDD1", "NRSRAPIDD2", "NRSRAPIDD6",
    "NRSSLOW", "RAPID", "SHALLOW2", "SHALLOW4", "SLOW", "SLOWR1", "TRACK", "ANY", "N/A",
];

/// Primary keywords [`RefMeta::write_primary`] writes itself; extras may not repeat them.
#[rustfmt::skip]
const STANDARD_KEYS: &[&str] = &[
    "DATE", "FILENAME", "DATAMODL", "TELESCOP", "REFTYPE", "PEDIGREE", "DESCRIP", "AUTHOR",
    "USEAFTER", "INSTRUME", "DETECTOR", "SUBARRAY", "SUBSTRT1", "SUBSTRT2", "SUBSIZE1", "SUBSIZE2",
    "FASTAXIS", "SLOWAXIS", "READPATT", "EXP_TYPE", "HISTORY", "COMMENT", "SIMPLE", "BITPIX",
    "NAXIS", "EXTEND",
];

/// The instrument a detector belongs to, for the detectors of one instrument.
fn instrument_of(detector: &str) -> Option<&'static str> {
    crate::geometry::detector_info(detector).map(|d| d.instrument.name())
}

/// The profile of a non-JWST instrument (TMT IRIS, ...), whose files follow its profile
/// rather than stdatamodels' enumerations; `None` for JWST and unknown instruments.
fn other_observatory(instrument: &str) -> Option<&'static Profile> {
    Instrument::from_header(instrument)
        .map(Instrument::profile)
        .filter(|p| p.telescope != "JWST")
}

/// The CRDS metadata of one reference file.
#[derive(Clone, Debug, PartialEq)]
pub struct RefMeta {
    /// REFTYPE, e.g. `READNOISE`.
    pub reftype: String,
    /// DATAMODL, the stdatamodels class, e.g. `ReadnoiseModel`.
    pub datamodel: String,
    /// DESCRIP, at most 65 characters.
    pub description: String,
    pub author: String,
    /// SIMULATION, GROUND, DUMMY or `INFLIGHT YYYY-MM-DD YYYY-MM-DD`.
    pub pedigree: String,
    /// `YYYY-MM-DDThh:mm:ss`.
    pub useafter: String,
    pub instrument: String,
    pub detector: String,
    pub subarray: String,
    pub substrt1: i64,
    pub substrt2: i64,
    pub subsize1: i64,
    pub subsize2: i64,
    pub fastaxis: i64,
    pub slowaxis: i64,
    pub readpatt: Option<String>,
    pub exp_type: Option<String>,
    /// Further primary keywords (key, value, comment), written after the standard ones.
    pub extra: Vec<(String, HeaderValue, String)>,
    /// HISTORY entries, each wrapped into 72-character cards.
    pub history: Vec<String>,
}

impl RefMeta {
    /// Metadata for a new reference file from the primary header of the first input file:
    /// INSTRUME, DETECTOR (both upper-cased), SUBARRAY, SUBSTRT1/2, FASTAXIS and SLOWAXIS.
    /// SUBSIZE1/2 come from the output data shape `(ny, nx)`, not from the header, so a generator
    /// that trims or pads the image still describes it. Description, author, pedigree and
    /// useafter are left empty for the caller to set.
    pub fn from_header(
        reftype: &str,
        datamodel: &str,
        first_input_primary_header: &Header,
        data_shape: (usize, usize),
    ) -> Result<Self, String> {
        let h = first_input_primary_header;
        let mut problems = Vec::new();
        let mut text = |key: &str| match h.get(key) {
            Some(HeaderValue::Str(s)) => s.trim().to_ascii_uppercase(),
            Some(other) => {
                problems.push(format!("{key} is {other}, expected a string"));
                String::new()
            }
            None => {
                problems.push(format!("{key} is missing"));
                String::new()
            }
        };
        let instrument = text("INSTRUME");
        let detector = text("DETECTOR");
        let subarray = text("SUBARRAY");
        let mut int = |key: &str| match h.get(key) {
            Some(v) => v.as_i64().unwrap_or_else(|| {
                problems.push(format!("{key} is {v}, expected an integer"));
                0
            }),
            None => {
                problems.push(format!("{key} is missing"));
                0
            }
        };
        let substrt1 = int("SUBSTRT1");
        let substrt2 = int("SUBSTRT2");
        let fastaxis = int("FASTAXIS");
        let slowaxis = int("SLOWAXIS");
        if !problems.is_empty() {
            return Err(format!(
                "the primary header of the first input file cannot describe the {reftype} \
                 reference file: {}; the reference-file metadata takes INSTRUME, DETECTOR, \
                 SUBARRAY, SUBSTRT1, SUBSTRT2, FASTAXIS and SLOWAXIS from it; use an \
                 uncalibrated or calibrated JWST exposure with a complete primary header",
                problems.join(", ")
            ));
        }
        // The instrument's profile names the model of each reftype (IRIS: TMTMaskModel, ...).
        let datamodel = Instrument::from_header(&instrument)
            .and_then(|i| i.profile().datamodel(reftype))
            .unwrap_or(datamodel);
        Ok(RefMeta {
            reftype: reftype.to_string(),
            datamodel: datamodel.to_string(),
            description: String::new(),
            author: String::new(),
            pedigree: String::new(),
            useafter: String::new(),
            instrument,
            detector,
            subarray,
            substrt1,
            substrt2,
            subsize1: data_shape.1 as i64,
            subsize2: data_shape.0 as i64,
            fastaxis,
            slowaxis,
            readpatt: None,
            exp_type: None,
            extra: Vec::new(),
            history: Vec::new(),
        })
    }

    /// Brings USEAFTER to `YYYY-MM-DDThh:mm:ss`: a date alone gets `T00:00:00`, and a space
    /// between date and time becomes `T`. Other values are left for [`RefMeta::validate`].
    pub fn normalize_useafter(&mut self) {
        let v = self.useafter.trim();
        let bytes = v.as_bytes();
        self.useafter = if is_date(v) {
            format!("{v}T00:00:00")
        } else if v.len() == 19 && bytes[10] == b' ' && is_date(&v[..10]) {
            format!("{}T{}", &v[..10], &v[11..])
        } else {
            v.to_string()
        };
    }

    /// Checks the metadata against the CRDS conventions and the stdatamodels enumerations.
    /// Lists every problem found.
    pub fn validate(&self) -> Result<(), String> {
        let mut p: Vec<String> = Vec::new();
        let nonempty = |p: &mut Vec<String>, key: &str, v: &str, hint: &str| {
            if v.trim().is_empty() {
                p.push(format!("{key} is empty; {hint}"));
            }
        };
        nonempty(
            &mut p,
            "REFTYPE",
            &self.reftype,
            "set the reference type, e.g. READNOISE",
        );
        nonempty(
            &mut p,
            "DATAMODL",
            &self.datamodel,
            "set the datamodel, e.g. ReadnoiseModel",
        );
        nonempty(
            &mut p,
            "DESCRIP",
            &self.description,
            "give a description of the file",
        );
        nonempty(&mut p, "AUTHOR", &self.author, "give the author's name");
        if self.description.len() > MAX_DESCRIPTION_LEN {
            p.push(format!(
                "DESCRIP has {} characters; at most {MAX_DESCRIPTION_LEN} are allowed; shorten it",
                self.description.len()
            ));
        }
        if !is_useafter(&self.useafter) {
            p.push(format!(
                "USEAFTER {:?} is not a valid YYYY-MM-DDThh:mm:ss date and time (the T and the \
                 time are required; use T00:00:00 if no time is meaningful)",
                self.useafter
            ));
        }
        if !is_pedigree(&self.pedigree) {
            p.push(format!(
                "PEDIGREE {:?} must be SIMULATION, GROUND, DUMMY or 'INFLIGHT YYYY-MM-DD \
                 YYYY-MM-DD' (start date not after end date)",
                self.pedigree
            ));
        }
        self.check_enumerations(&mut p);
        if let Some(et) = &self.exp_type
            && et.trim().is_empty()
        {
            p.push("EXP_TYPE is set but empty; leave it unset or give the exposure type".into());
        }
        for (key, v) in [
            ("SUBSTRT1", self.substrt1),
            ("SUBSTRT2", self.substrt2),
            ("SUBSIZE1", self.subsize1),
            ("SUBSIZE2", self.subsize2),
        ] {
            if v < 1 {
                p.push(format!(
                    "{key} is {v}; subarray starts and sizes are 1 or more"
                ));
            }
        }
        let axes_ok = [self.fastaxis, self.slowaxis]
            .iter()
            .all(|a| matches!(a, -2 | -1 | 1 | 2))
            && self.fastaxis.abs() != self.slowaxis.abs();
        if !axes_ok {
            p.push(format!(
                "FASTAXIS {} and SLOWAXIS {} must be ±1 and ±2, one of each",
                self.fastaxis, self.slowaxis
            ));
        }
        for (key, _, _) in &self.extra {
            let upper = key.to_ascii_uppercase();
            if STANDARD_KEYS.contains(&upper.as_str()) {
                p.push(format!(
                    "extra keyword {key} repeats a standard keyword; set the field instead"
                ));
            } else if key.is_empty()
                || key.len() > 8
                || !key
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                p.push(format!(
                    "extra keyword {key:?} is not a FITS name (1-8 of A-Z 0-9 - _)"
                ));
            }
        }
        let texts = [
            ("DESCRIP", &self.description),
            ("AUTHOR", &self.author),
            ("PEDIGREE", &self.pedigree),
            ("USEAFTER", &self.useafter),
        ];
        for (key, v) in texts {
            if let Some(c) = v.chars().find(|c| !(' '..='~').contains(c)) {
                p.push(format!(
                    "{key} contains {c:?}; FITS headers hold printable ASCII only"
                ));
            }
        }
        for (i, h) in self.history.iter().enumerate() {
            if let Some(c) = h
                .chars()
                .find(|c| *c != '\n' && *c != '\t' && !(' '..='~').contains(c))
            {
                p.push(format!(
                    "HISTORY entry {} contains {c:?}; FITS headers hold printable ASCII only",
                    i + 1
                ));
            }
        }
        if p.is_empty() {
            Ok(())
        } else {
            Err(format!("invalid reference-file metadata: {}", p.join("; ")))
        }
    }

    /// INSTRUME, DETECTOR, SUBARRAY and READPATT against the values their consumer accepts:
    /// stdatamodels' enumerations for JWST, the instrument's profile for another observatory.
    fn check_enumerations(&self, p: &mut Vec<String>) {
        // Another observatory's files: INSTRUME, DETECTOR and SUBARRAY as its profile says.
        let other = other_observatory(&self.instrument);
        let source = other.map_or("stdatamodels".to_string(), |p| {
            format!("the instrument profile ({})", p.source)
        });
        let enumerated = |p: &mut Vec<String>, key: &str, v: &str, allowed: &[&str]| {
            if !allowed.contains(&v) {
                p.push(format!(
                    "{key} {v:?} is not one of the values {source} accepts ({})",
                    if allowed.len() > 25 {
                        format!("{}, ... {} in all", allowed[..8].join(", "), allowed.len())
                    } else {
                        allowed.join(", ")
                    }
                ));
            }
        };
        let detectors: Vec<&str>;
        let (instruments, detectors, subarrays) = match other {
            Some(profile) => {
                detectors = profile.detectors.iter().map(|d| d.name.as_str()).collect();
                let subarrays: Vec<&str> = profile.subarrays.iter().map(String::as_str).collect();
                (vec![profile.instrument.as_str()], detectors, subarrays)
            }
            None => (INSTRUMENTS.to_vec(), DETECTORS.to_vec(), SUBARRAYS.to_vec()),
        };
        enumerated(p, "INSTRUME", &self.instrument, &instruments);
        enumerated(p, "DETECTOR", &self.detector, &detectors);
        if let Some(inst) = instrument_of(&self.detector)
            && instruments.contains(&self.instrument.as_str())
            && !matches!(self.instrument.as_str(), "ANY" | "N/A")
            && inst != self.instrument
        {
            p.push(format!(
                "DETECTOR {} belongs to {inst}, but INSTRUME is {}",
                self.detector, self.instrument
            ));
        }
        enumerated(p, "SUBARRAY", &self.subarray, &subarrays);
        if let Some(rp) = &self.readpatt {
            enumerated(p, "READPATT", rp, READPATTS);
        }
    }

    /// Validates, then writes the primary keywords and HISTORY into `w`, in the order
    /// stdatamodels writes them: DATE, FILENAME, DATAMODL, TELESCOP, REFTYPE, PEDIGREE,
    /// DESCRIP, AUTHOR, USEAFTER, INSTRUME, DETECTOR, SUBARRAY, SUBSTRT1/2, SUBSIZE1/2,
    /// FASTAXIS, SLOWAXIS, READPATT and EXP_TYPE if set, the extras, then HISTORY. A file
    /// written this way is a reference file: every HDU gets CHECKSUM and DATASUM
    /// ([`FitsWriter::set_checksums`]).
    pub fn write_primary(&self, w: &mut FitsWriter) -> Result<(), FitsError> {
        self.validate().map_err(|m| {
            FitsError::new(FitsErrorKind::BadValue, w.final_path(), m).in_hdu("PRIMARY")
        })?;
        let filename = w
            .final_path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let s = |v: &str| HeaderValue::Str(v.to_string());
        let mut cards: Vec<(&str, HeaderValue, &str)> = vec![
            (
                "DATE",
                s(&now_utc_iso()),
                "Date this file was created (UTC)",
            ),
            ("FILENAME", s(&filename), "Name of the file"),
            ("DATAMODL", s(&self.datamodel), "Type of data model"),
            (
                "TELESCOP",
                s(other_observatory(&self.instrument).map_or("JWST", |p| p.telescope.as_str())),
                "Telescope used to acquire the data",
            ),
            ("REFTYPE", s(&self.reftype), "Reference file type"),
            (
                "PEDIGREE",
                s(&self.pedigree),
                "The pedigree of the reference file",
            ),
            (
                "DESCRIP",
                s(&self.description),
                "Description of the reference file",
            ),
            ("AUTHOR", s(&self.author), "Author of the reference file"),
            (
                "USEAFTER",
                s(&self.useafter),
                "Use after date of the reference file",
            ),
            (
                "INSTRUME",
                s(&self.instrument),
                "Instrument used to acquire the data",
            ),
            (
                "DETECTOR",
                s(&self.detector),
                "Name of detector used to acquire the data",
            ),
            ("SUBARRAY", s(&self.subarray), "Subarray used"),
            (
                "SUBSTRT1",
                self.substrt1.into(),
                "Starting pixel in axis 1 direction",
            ),
            (
                "SUBSTRT2",
                self.substrt2.into(),
                "Starting pixel in axis 2 direction",
            ),
            (
                "SUBSIZE1",
                self.subsize1.into(),
                "Number of pixels in axis 1 direction",
            ),
            (
                "SUBSIZE2",
                self.subsize2.into(),
                "Number of pixels in axis 2 direction",
            ),
            (
                "FASTAXIS",
                self.fastaxis.into(),
                "Fast readout axis direction",
            ),
            (
                "SLOWAXIS",
                self.slowaxis.into(),
                "Slow readout axis direction",
            ),
        ];
        if let Some(rp) = &self.readpatt {
            cards.push(("READPATT", s(rp), "Readout pattern"));
        }
        if let Some(et) = &self.exp_type {
            cards.push(("EXP_TYPE", s(et), "Type of data in the exposure"));
        }
        for (key, value, comment) in &cards {
            w.set_primary_key(key, value, comment)?;
        }
        for (key, value, comment) in &self.extra {
            w.set_primary_key(key, value, comment)?;
        }
        for h in &self.history {
            w.add_history(h)?;
        }
        // A reference file carries the FITS checksums in every HDU, for whoever delivers it
        // (the cards go last in the primary header, as astropy places them).
        w.set_checksums(true)
    }
}

/// The HISTORY entries of a new reference file (`UPSTREAM.md`, "HISTORY"):
/// how it was created, DOCUMENT, SOFTWARE, DATA USED with each input's basename cut into
/// 60-character pieces, DIFFERENCES, then the user's text if any. Characters that FITS headers
/// cannot hold are replaced by `?` in file names.
pub fn history_entries(creator: &str, inputs: &[&Path], user_history: &str) -> Vec<String> {
    let version = env!("CARGO_PKG_VERSION");
    let mut h = vec![
        format!("This file was created using the {creator} generator within the mkrefs package."),
        format!("DOCUMENT: see the mkrefs documentation of the {creator} generator."),
        format!(
            "SOFTWARE: mkrefs (mkrefs-support {version}), generator {creator}; a \
             re-implementation of the STScI jwst_reffiles package."
        ),
        "DATA USED:".to_string(),
    ];
    for path in inputs {
        let name: String = path
            .file_name()
            .unwrap_or(path.as_os_str())
            .to_string_lossy()
            .chars()
            .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
            .collect();
        let chars: Vec<char> = name.chars().collect();
        h.extend(
            chars
                .chunks(NAME_PIECE)
                .map(|c| c.iter().collect::<String>()),
        );
    }
    h.push(
        "DIFFERENCES: not assessed; mkrefs does not compare this file with the reference file \
         it may replace."
            .to_string(),
    );
    if !user_history.trim().is_empty() {
        h.push(user_history.to_string());
    }
    h
}

/// `YYYY-MM-DD` with a valid calendar date.
fn is_date(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| v[r].parse().ok())?
    };
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)
}

fn days_in_month(y: u32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
        _ => 28,
    }
}

/// `YYYY-MM-DDThh:mm:ss` with a valid date and time.
fn is_useafter(v: &str) -> bool {
    let b = v.as_bytes();
    if b.len() != 19 || b[10] != b'T' || b[13] != b':' || b[16] != b':' || !is_date(&v[..10]) {
        return false;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        b[r.clone()]
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| v[r].parse().ok())?
    };
    matches!((num(11..13), num(14..16), num(17..19)), (Some(h), Some(m), Some(s)) if h < 24 && m < 60 && s < 60)
}

fn is_pedigree(v: &str) -> bool {
    match v {
        "SIMULATION" | "GROUND" | "DUMMY" => true,
        _ => {
            let parts: Vec<&str> = v.split(' ').collect();
            // Dates in ISO form compare correctly as strings.
            parts.len() == 3
                && parts[0] == "INFLIGHT"
                && is_date(parts[1])
                && is_date(parts[2])
                && parts[1] <= parts[2]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_without(skip: &[&str]) -> Header {
        let cards: [(&str, HeaderValue); 8] = [
            ("INSTRUME", "nircam".into()),
            ("DETECTOR", "NRCA1".into()),
            ("SUBARRAY", "FULL".into()),
            ("SUBSTRT1", 1i64.into()),
            ("SUBSTRT2", 1i64.into()),
            ("FASTAXIS", (-1i64).into()),
            ("SLOWAXIS", 2i64.into()),
            ("SUBSIZE1", 999i64.into()),
        ];
        let mut h = Header::new();
        for (k, v) in cards {
            if !skip.contains(&k) {
                h.set(k, v);
            }
        }
        h
    }

    fn header() -> Header {
        header_without(&[])
    }

    fn meta() -> RefMeta {
        let mut m =
            RefMeta::from_header("READNOISE", "ReadnoiseModel", &header(), (2048, 2040)).unwrap();
        m.description = "CDS read noise".into();
        m.author = "A. Person".into();
        m.pedigree = "GROUND".into();
        m.useafter = "2022-01-01T00:00:00".into();
        m
    }

    #[test]
    fn from_header_takes_keys_and_shape() {
        let m = meta();
        assert_eq!(m.instrument, "NIRCAM");
        assert_eq!((m.subsize1, m.subsize2), (2040, 2048));
        assert_eq!((m.fastaxis, m.slowaxis), (-1, 2));
        assert_eq!(m.validate(), Ok(()));
    }

    #[test]
    fn from_header_names_missing_keys() {
        let h = header_without(&["DETECTOR", "SLOWAXIS"]);
        let e = RefMeta::from_header("READNOISE", "ReadnoiseModel", &h, (10, 10)).unwrap_err();
        assert!(
            e.contains("DETECTOR is missing") && e.contains("SLOWAXIS is missing"),
            "{e}"
        );
        let mut h = header();
        h.set("SUBSTRT1", "one");
        let e = RefMeta::from_header("READNOISE", "ReadnoiseModel", &h, (10, 10)).unwrap_err();
        assert!(e.contains("SUBSTRT1 is one, expected an integer"), "{e}");
    }

    #[test]
    fn useafter_normalising_and_checks() {
        let mut m = meta();
        m.useafter = "2022-03-04".into();
        m.normalize_useafter();
        assert_eq!(m.useafter, "2022-03-04T00:00:00");
        m.useafter = "2019-04-01 12:30:00".into();
        m.normalize_useafter();
        assert_eq!(m.useafter, "2019-04-01T12:30:00");
        assert!(m.validate().is_ok());
        for bad in [
            "2022-03-04",
            "2022-13-01T00:00:00",
            "2023-02-29T00:00:00",
            "2022-01-01T24:00:00",
            "2022-01-01T00:00:00.5",
            "",
        ] {
            m.useafter = bad.into();
            let e = m.validate().unwrap_err();
            assert!(e.contains("USEAFTER"), "{bad}: {e}");
        }
        m.useafter = "2024-02-29T23:59:59".into();
        assert!(m.validate().is_ok());
    }

    #[test]
    fn pedigree_and_enums() {
        let mut m = meta();
        for ok in [
            "SIMULATION",
            "GROUND",
            "DUMMY",
            "INFLIGHT 2022-07-01 2022-08-01",
        ] {
            m.pedigree = ok.into();
            assert!(m.validate().is_ok(), "{ok}");
        }
        for bad in [
            "ground",
            "INFLIGHT",
            "INFLIGHT 2022-08-01 2022-07-01",
            "INFLIGHT 2022-07-01",
            "FLIGHT",
        ] {
            m.pedigree = bad.into();
            assert!(m.validate().unwrap_err().contains("PEDIGREE"), "{bad}");
        }
        let mut m = meta();
        m.detector = "NRS1".into();
        assert!(m.validate().unwrap_err().contains("belongs to NIRSPEC"));
        m.detector = "NRCX9".into();
        assert!(m.validate().unwrap_err().contains("DETECTOR \"NRCX9\""));
        let mut m = meta();
        m.readpatt = Some("FASTEST".into());
        m.subarray = "TINY".into();
        m.description = "x".repeat(66);
        m.author = " ".into();
        m.fastaxis = 2;
        m.extra
            .push(("DESCRIP".into(), "again".into(), String::new()));
        let e = m.validate().unwrap_err();
        for what in [
            "READPATT",
            "SUBARRAY",
            "66 characters",
            "AUTHOR is empty",
            "FASTAXIS",
            "repeats a standard",
        ] {
            assert!(e.contains(what), "{what} not in {e}");
        }
    }

    #[test]
    fn history_layout() {
        let long = format!("/data/{}_uncal.fits", "N".repeat(70));
        let inputs = [Path::new("/x/NRCA1_DARK_e001_uncal.fits"), Path::new(&long)];
        let h = history_entries("readnoise", &inputs, "made for a test");
        assert!(h[0].contains("readnoise") && h[0].contains("mkrefs"));
        assert!(h[1].starts_with("DOCUMENT:") && h[2].starts_with("SOFTWARE:"));
        assert_eq!(h[3], "DATA USED:");
        assert_eq!(h[4], "NRCA1_DARK_e001_uncal.fits");
        assert_eq!(h[5].len(), 60);
        assert_eq!(
            format!("{}{}", h[5], h[6]),
            format!("{}_uncal.fits", "N".repeat(70))
        );
        assert!(h[7].starts_with("DIFFERENCES:"));
        assert_eq!(h[8], "made for a test");
        assert_eq!(h.len(), 9);
        assert_eq!(history_entries("x", &[], "  ").len(), 5);
    }

    #[test]
    fn date_keyword_is_a_useafter_with_milliseconds() {
        assert!(is_useafter(&now_utc_iso()[..19]));
    }
}
