//! What a generator reads of the calibrated products: the `ssb_save_steps` items.
//!
//! An item is a product name (a step of the instrument, `rateints` or `fitopt`), optionally
//! followed by the extensions the generator reads, `jump[SCI, GROUPDQ]`, and preceded by the
//! kind of input it applies to, `D:` (darks) or `F:` (flats): `D:fitopt[PEDESTAL]`. An item
//! naming the last step of `ssbsteps` describes the input itself (`rate[SCI]` when the
//! generator reads rate files).
//!
//! The extensions are what lets a run write less (README, "Run-internal products"): a product
//! that every generator of the run reading it has described this way is written with only the
//! extensions they name, unless the user keeps products (`--keep-products`). A bare name, as
//! upstream's configurations write them, asks for the whole product.

use std::collections::BTreeSet;
use std::fmt;

use crate::inputs::classify::ImageKind;
use crate::prep::steps::{Instrument, SaveProduct, Step, is_none_spec};

/// One `ssb_save_steps` item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductUse {
    pub product: SaveProduct,
    /// The extensions read (upper case); `None`: the whole product.
    pub hdus: Option<BTreeSet<String>>,
    /// `Some`: only inputs of this kind have the product made.
    pub only: Option<ImageKind>,
}

impl ProductUse {
    /// Whether an input of `kind` needs this product.
    pub fn applies_to(&self, kind: ImageKind) -> bool {
        self.only.is_none_or(|k| k == kind)
    }

    /// Whether this item describes the input itself (its product is the state's own).
    pub fn is_state_product(&self, state: &[Step]) -> bool {
        matches!(self.product, SaveProduct::Step(s) if state.last() == Some(&s))
    }
}

impl fmt::Display for ProductUse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.only {
            Some(ImageKind::Dark) => f.write_str("D:")?,
            Some(ImageKind::Flat) => f.write_str("F:")?,
            None => {}
        }
        f.write_str(self.product.name())?;
        if let Some(hdus) = &self.hdus {
            let names: Vec<&str> = hdus.iter().map(String::as_str).collect();
            write!(f, "[{}]", names.join(", "))?;
        }
        Ok(())
    }
}

/// The extensions two uses of one product need together: `None` (the whole product) wins.
pub fn merge_hdus(
    a: Option<&BTreeSet<String>>,
    b: Option<&BTreeSet<String>>,
) -> Option<BTreeSet<String>> {
    Some(a?.union(b?).cloned().collect())
}

/// Splits at the commas outside brackets.
fn split_items(spec: &str) -> Result<Vec<&str>, String> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in spec.char_indices() {
        match c {
            '[' if depth == 0 => depth = 1,
            ']' if depth == 1 => depth = 0,
            '[' | ']' => {
                return Err(format!(
                    "ssb_save_steps '{spec}': unbalanced '{c}'; write extensions as \
                     jump[SCI, GROUPDQ]"
                ));
            }
            ',' if depth == 0 => {
                items.push(&spec[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "ssb_save_steps '{spec}': a '[' is not closed; write extensions as jump[SCI, GROUPDQ]"
        ));
    }
    items.push(&spec[start..]);
    Ok(items)
}

/// Parses one item: `[D:|F:]name[\[HDU, ...\]]`.
fn parse_item(raw: &str, spec: &str, instrument: Instrument) -> Result<ProductUse, String> {
    let item = raw.trim();
    if item.is_empty() {
        return Err(format!(
            "ssb_save_steps '{spec}' has an empty item: separate names with single commas"
        ));
    }
    let (only, rest) = match item.split_once(':') {
        Some((k, rest)) => {
            let kind = match k.trim().to_ascii_uppercase().as_str() {
                "D" => ImageKind::Dark,
                "F" => ImageKind::Flat,
                other => {
                    return Err(format!(
                        "ssb_save_steps '{spec}': '{other}:' in '{item}' is not an input kind; \
                         use D: (darks) or F: (flats)"
                    ));
                }
            };
            (Some(kind), rest.trim())
        }
        None => (None, item),
    };
    let (name, hdus) = match rest.split_once('[') {
        Some((name, list)) => {
            let Some(list) = list.trim_end().strip_suffix(']') else {
                return Err(format!(
                    "ssb_save_steps '{spec}': '{item}' has text after its ']'"
                ));
            };
            let hdus: BTreeSet<String> = list
                .split(',')
                .map(|h| h.trim().to_ascii_uppercase())
                .collect();
            if let Some(bad) = hdus.iter().find(|h| !is_extname(h)) {
                return Err(format!(
                    "ssb_save_steps '{spec}': '{bad}' in '{item}' is not an extension name \
                     (EXTNAME: letters, digits, '_' and '-', at most 68 characters)"
                ));
            }
            (name.trim(), Some(hdus))
        }
        None => (rest, None),
    };
    Ok(ProductUse {
        product: SaveProduct::parse_item(name, spec, instrument)?,
        hdus,
        only,
    })
}

fn is_extname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 68
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses `ssb_save_steps`. Items for the same product and kind are merged (their extensions
/// joined; a bare name asks for the whole product). Returned in pipeline order of the
/// producing step (rate, then rateints, then fitopt). Null, empty or `none` means nothing
/// (upstream crashed on null). The shorthands `X-`/`X+` of `ssbsteps` are not accepted here.
pub fn parse_product_uses(
    spec: Option<&str>,
    instrument: Instrument,
) -> Result<Vec<ProductUse>, String> {
    if is_none_spec(spec) {
        return Ok(Vec::new());
    }
    let spec = spec.unwrap_or_default();
    let mut uses: Vec<ProductUse> = Vec::new();
    for raw in split_items(spec)? {
        let u = parse_item(raw, spec, instrument)?;
        match uses
            .iter_mut()
            .find(|o| o.product == u.product && o.only == u.only)
        {
            Some(o) => o.hdus = merge_hdus(o.hdus.as_ref(), u.hdus.as_ref()),
            None => uses.push(u),
        }
    }
    uses.sort_by_key(|u| {
        (
            instrument.position(u.product.producing_step()),
            u.product,
            u.only.map(ImageKind::name),
        )
    });
    Ok(uses)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Step::*;

    fn names(spec: &str) -> Vec<String> {
        parse_product_uses(Some(spec), Instrument::NirCam)
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn bare_names_ask_for_whole_products_in_pipeline_order() {
        let got = parse_product_uses(Some("fitopt, jump, rateints, ramp_fit"), Instrument::NirCam)
            .unwrap();
        let products: Vec<SaveProduct> = got.iter().map(|u| u.product).collect();
        assert_eq!(
            products,
            [
                SaveProduct::Step(Jump),
                SaveProduct::Step(Rate),
                SaveProduct::Rateints,
                SaveProduct::Fitopt
            ]
        );
        assert!(got.iter().all(|u| u.hdus.is_none() && u.only.is_none()));
        assert_eq!(SaveProduct::Fitopt.producing_step(), Rate);
        assert_eq!(SaveProduct::Rateints.producing_step(), Rate);
        assert_eq!(
            parse_product_uses(Some("None"), Instrument::Miri),
            Ok(vec![])
        );
        assert_eq!(parse_product_uses(None, Instrument::Miri), Ok(vec![]));
        let err = parse_product_uses(Some("jump, fitops"), Instrument::NirCam).unwrap_err();
        assert!(err.contains("did you mean 'fitopt'"), "{err}");
    }

    #[test]
    fn extensions_and_kinds() {
        assert_eq!(
            names("d:fitopt[pedestal], rate[SCI], D:jump[SCI,GROUPDQ], rateints[SCI, ERR]"),
            [
                "D:jump[GROUPDQ, SCI]",
                "rate[SCI]",
                "rateints[ERR, SCI]",
                "D:fitopt[PEDESTAL]"
            ]
        );
        // Items for one product and kind are merged; a bare name wins.
        assert_eq!(names("jump[SCI], jump[GROUPDQ]"), ["jump[GROUPDQ, SCI]"]);
        assert_eq!(names("jump[SCI], jump"), ["jump"]);
        assert_eq!(
            names("F:jump[SCI], D:jump[SCI]"),
            ["D:jump[SCI]", "F:jump[SCI]"]
        );
        let u = &parse_product_uses(Some("F:rate[SCI]"), Instrument::NirCam).unwrap()[0];
        assert!(u.applies_to(ImageKind::Flat) && !u.applies_to(ImageKind::Dark));
        assert!(u.is_state_product(&[DqInit, Jump, Rate]));
        assert!(!u.is_state_product(&[DqInit, Jump]));
    }

    #[test]
    fn malformed_items_are_named() {
        for (spec, says) in [
            ("jump[SCI", "not closed"),
            ("jump]SCI", "unbalanced"),
            ("jump[SCI]x", "text after"),
            ("jump[SCI, ]", "not an extension name"),
            ("jump[S I]", "not an extension name"),
            ("X:jump", "use D: (darks) or F: (flats)"),
            ("jump[[SCI]]", "unbalanced"),
            ("jump,,rate", "empty item"),
        ] {
            let err = parse_product_uses(Some(spec), Instrument::NirCam).unwrap_err();
            assert!(err.contains(says), "{spec}: {err}");
            assert!(err.contains(spec), "{spec}: {err}");
        }
    }
}
