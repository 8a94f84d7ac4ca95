//! JWST data-quality flags and DQ_DEF tables.

use crate::params::Choices;

/// One row of a DQ_DEF binary table: bit number, value (2^bit, 0 for GOOD), name, description.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DqDefRow {
    pub bit: i32,
    pub value: u32,
    pub name: String,
    pub description: String,
}

/// The JWST pixel flags (`dqflags.pixel` of current stdatamodels/stcal, `UPSTREAM.md`, "DQ
/// flags"), in the
/// dictionary order the DQ_DEF tables use: GOOD = 0 first, then bits 0 to 31.
pub const PIXEL_FLAGS: &[(&str, u32)] = &[
    ("GOOD", 0),
    ("DO_NOT_USE", DO_NOT_USE),
    ("SATURATED", SATURATED),
    ("JUMP_DET", JUMP_DET),
    ("DROPOUT", DROPOUT),
    ("OUTLIER", OUTLIER),
    ("PERSISTENCE", PERSISTENCE),
    ("AD_FLOOR", AD_FLOOR),
    ("CHARGELOSS", CHARGELOSS),
    ("RESERVED", RESERVED),
    ("NON_SCIENCE", NON_SCIENCE),
    ("DEAD", DEAD),
    ("HOT", HOT),
    ("WARM", WARM),
    ("LOW_QE", LOW_QE),
    ("RC", RC),
    ("TELEGRAPH", TELEGRAPH),
    ("NONLINEAR", NONLINEAR),
    ("BAD_REF_PIXEL", BAD_REF_PIXEL),
    ("NO_FLAT_FIELD", NO_FLAT_FIELD),
    ("NO_GAIN_VALUE", NO_GAIN_VALUE),
    ("NO_LIN_CORR", NO_LIN_CORR),
    ("NO_SAT_CHECK", NO_SAT_CHECK),
    ("UNRELIABLE_BIAS", UNRELIABLE_BIAS),
    ("UNRELIABLE_DARK", UNRELIABLE_DARK),
    ("UNRELIABLE_SLOPE", UNRELIABLE_SLOPE),
    ("UNRELIABLE_FLAT", UNRELIABLE_FLAT),
    ("OPEN", OPEN),
    ("ADJ_OPEN", ADJ_OPEN),
    ("FLUX_ESTIMATED", FLUX_ESTIMATED),
    ("MSA_FAILED_OPEN", MSA_FAILED_OPEN),
    ("OTHER_BAD_PIXEL", OTHER_BAD_PIXEL),
    ("REFERENCE_PIXEL", REFERENCE_PIXEL),
];

pub const GOOD: u32 = 0;
pub const DO_NOT_USE: u32 = 1 << 0;
pub const SATURATED: u32 = 1 << 1;
pub const JUMP_DET: u32 = 1 << 2;
pub const DROPOUT: u32 = 1 << 3;
pub const OUTLIER: u32 = 1 << 4;
pub const PERSISTENCE: u32 = 1 << 5;
pub const AD_FLOOR: u32 = 1 << 6;
pub const CHARGELOSS: u32 = 1 << 7;
pub const RESERVED: u32 = 1 << 8;
pub const NON_SCIENCE: u32 = 1 << 9;
pub const DEAD: u32 = 1 << 10;
pub const HOT: u32 = 1 << 11;
pub const WARM: u32 = 1 << 12;
pub const LOW_QE: u32 = 1 << 13;
pub const RC: u32 = 1 << 14;
pub const TELEGRAPH: u32 = 1 << 15;
pub const NONLINEAR: u32 = 1 << 16;
pub const BAD_REF_PIXEL: u32 = 1 << 17;
pub const NO_FLAT_FIELD: u32 = 1 << 18;
pub const NO_GAIN_VALUE: u32 = 1 << 19;
pub const NO_LIN_CORR: u32 = 1 << 20;
pub const NO_SAT_CHECK: u32 = 1 << 21;
pub const UNRELIABLE_BIAS: u32 = 1 << 22;
pub const UNRELIABLE_DARK: u32 = 1 << 23;
pub const UNRELIABLE_SLOPE: u32 = 1 << 24;
pub const UNRELIABLE_FLAT: u32 = 1 << 25;
pub const OPEN: u32 = 1 << 26;
pub const ADJ_OPEN: u32 = 1 << 27;
pub const FLUX_ESTIMATED: u32 = 1 << 28;
pub const MSA_FAILED_OPEN: u32 = 1 << 29;
pub const OTHER_BAD_PIXEL: u32 = 1 << 30;
pub const REFERENCE_PIXEL: u32 = 1 << 31;

/// Short descriptions for DQ_DEF rows, after the jwst documentation's flag table. Upstream
/// jwst_reffiles writes empty descriptions; a reader of the file is better served by these.
/// All fit the 80-character DESCRIPTION column.
fn description(name: &str) -> &'static str {
    match name {
        "GOOD" => "Good pixel",
        "DO_NOT_USE" => "Bad pixel. Do not use.",
        "SATURATED" => "Pixel saturated during exposure",
        "JUMP_DET" => "Jump detected during exposure",
        "DROPOUT" => "Data lost in transmission",
        "OUTLIER" => "Flagged by outlier detection",
        "PERSISTENCE" => "High persistence",
        "AD_FLOOR" => "Below A/D floor",
        "CHARGELOSS" => "Charge migration",
        "RESERVED" => "Reserved",
        "NON_SCIENCE" => "Pixel not on science portion of detector",
        "DEAD" => "Dead pixel",
        "HOT" => "Hot pixel",
        "WARM" => "Warm pixel",
        "LOW_QE" => "Low quantum efficiency",
        "RC" => "RC pixel",
        "TELEGRAPH" => "Telegraph pixel",
        "NONLINEAR" => "Pixel highly nonlinear",
        "BAD_REF_PIXEL" => "Reference pixel cannot be used",
        "NO_FLAT_FIELD" => "Flat field cannot be measured",
        "NO_GAIN_VALUE" => "Gain cannot be measured",
        "NO_LIN_CORR" => "Linearity correction not available",
        "NO_SAT_CHECK" => "Saturation check not available",
        "UNRELIABLE_BIAS" => "Bias variance large",
        "UNRELIABLE_DARK" => "Dark variance large",
        "UNRELIABLE_SLOPE" => "Slope variance large (i.e., noisy pixel)",
        "UNRELIABLE_FLAT" => "Flat variance large",
        "OPEN" => "Open pixel (counts move to adjacent pixels)",
        "ADJ_OPEN" => "Adjacent to open pixel",
        "FLUX_ESTIMATED" => "Pixel flux estimated due to missing/bad data",
        "MSA_FAILED_OPEN" => "Pixel sees light from failed-open shutter",
        "OTHER_BAD_PIXEL" => "A catch-all flag",
        "REFERENCE_PIXEL" => "Pixel is a reference pixel",
        _ => "",
    }
}

/// The flag names as a parameter's choices (lists of mnemonics), read as [`flag_value`] reads.
pub const PIXEL_FLAG_CHOICES: Choices<u32> = Choices::new(PIXEL_FLAGS);

/// The value of a standard flag name, case-insensitively (`"hot"` → 2048). `None` if unknown.
pub fn flag_value(name: &str) -> Option<u32> {
    PIXEL_FLAG_CHOICES.parse(name)
}

fn row(name: &str, value: u32) -> DqDefRow {
    DqDefRow {
        bit: if value == 0 {
            0
        } else {
            value.trailing_zeros() as i32
        },
        value,
        name: name.to_string(),
        description: description(name).to_string(),
    }
}

/// The full standard DQ_DEF table (`UPSTREAM.md`, "DQ flags"): 33 rows in [`PIXEL_FLAGS`]
/// order, BIT = log2(VALUE), GOOD with BIT 0 and VALUE 0 (so BIT 0 appears twice, as upstream
/// writes it).
pub fn standard_dq_def() -> Vec<DqDefRow> {
    PIXEL_FLAGS.iter().map(|&(n, v)| row(n, v)).collect()
}

/// DQ_DEF rows for a few standard flags (names case-insensitive), with their standard bits, in
/// table order and without duplicates, e.g. `["DO_NOT_USE", "UNRELIABLE_BIAS"]` for a superbias.
/// An unknown name is an error naming it.
pub fn try_dq_def_for(names: &[&str]) -> Result<Vec<DqDefRow>, String> {
    let mut values = Vec::with_capacity(names.len());
    for name in names {
        let v = flag_value(name).ok_or_else(|| format!("unknown DQ flag name {name:?}"))?;
        values.push(v);
    }
    Ok(PIXEL_FLAGS
        .iter()
        .filter(|(_, v)| values.contains(v))
        .map(|&(n, v)| row(n, v))
        .collect())
}

/// [`try_dq_def_for`] for names fixed in code. Panics on an unknown name, which is a programming
/// error there; use [`try_dq_def_for`] for names that come from users.
pub fn dq_def_for(names: &[&str]) -> Vec<DqDefRow> {
    try_dq_def_for(names).unwrap_or_else(|e| panic!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_good_then_bits_0_to_31() {
        assert_eq!(PIXEL_FLAGS.len(), 33);
        assert_eq!(PIXEL_FLAGS[0], ("GOOD", 0));
        for (bit, &(_, v)) in PIXEL_FLAGS[1..].iter().enumerate() {
            assert_eq!(v, 1u32 << bit);
        }
        let mut names: Vec<&str> = PIXEL_FLAGS.iter().map(|&(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 33);
    }

    #[test]
    fn values_used_by_the_algorithms() {
        assert_eq!(DO_NOT_USE, 1);
        assert_eq!(JUMP_DET, 4);
        assert_eq!(DEAD, 1024);
        assert_eq!(HOT, 2048);
        assert_eq!(LOW_QE, 8192);
        assert_eq!(TELEGRAPH, 32768);
        assert_eq!(UNRELIABLE_BIAS, 4_194_304);
        assert_eq!(UNRELIABLE_SLOPE, 16_777_216);
        assert_eq!(OPEN, 67_108_864);
        assert_eq!(ADJ_OPEN, 134_217_728);
        assert_eq!(OTHER_BAD_PIXEL, 1_073_741_824);
        assert_eq!(REFERENCE_PIXEL, 2_147_483_648);
    }

    #[test]
    fn lookup_by_name_and_value() {
        assert_eq!(flag_value("hot"), Some(HOT));
        assert_eq!(flag_value("Reference_Pixel"), Some(REFERENCE_PIXEL));
        assert_eq!(flag_value("GOOD"), Some(0));
        assert_eq!(flag_value("NOT_A_FLAG"), None);
    }

    #[test]
    fn standard_table_rows() {
        let t = standard_dq_def();
        assert_eq!(t.len(), 33);
        assert_eq!((t[0].bit, t[0].value, t[0].name.as_str()), (0, 0, "GOOD"));
        assert_eq!(
            (t[1].bit, t[1].value, t[1].name.as_str()),
            (0, 1, "DO_NOT_USE")
        );
        assert_eq!(t[1].description, "Bad pixel. Do not use.");
        let last = &t[32];
        assert_eq!(
            (last.bit, last.value, last.name.as_str()),
            (31, 1 << 31, "REFERENCE_PIXEL")
        );
        for r in &t {
            assert!(
                !r.description.is_empty() && r.description.len() <= 80,
                "{r:?}"
            );
            assert!(r.name.len() <= 40);
            if r.value != 0 {
                assert_eq!(1u32 << r.bit, r.value);
            }
        }
    }

    #[test]
    fn selected_rows_keep_standard_bits() {
        let t = dq_def_for(&["unreliable_bias", "DO_NOT_USE", "DO_NOT_USE"]);
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].bit, t[0].value, t[0].name.as_str()),
            (0, 1, "DO_NOT_USE")
        );
        assert_eq!(
            (t[1].bit, t[1].value, t[1].name.as_str()),
            (22, 4_194_304, "UNRELIABLE_BIAS")
        );
        let e = try_dq_def_for(&["DO_NOT_USE", "BOGUS"]).unwrap_err();
        assert!(e.contains("BOGUS"), "{e}");
    }
}
