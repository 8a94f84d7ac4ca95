//! Upstream's names for `reffile4ssb` keys: `bpm` (MASK), `rdnoise` (READNOISE) and
//! `<reftype>reffile` (`gainreffile`). A document's keys are renamed to the reftype they stand
//! for as soon as it is read, so an upstream main file, an extra file and `--pp` all reach the
//! same key as the new names do, and the built-in defaults never hide one.

use super::error::{ConfigError, ConfigErrorKind, Result};
use super::tree::{Node, NodeValue};

/// The section holding the steps' reference files (also inside reflabel sections).
pub(crate) const REFFILE4SSB: &str = "reffile4ssb";

/// The reftype a `reffile4ssb` key names, lower-cased.
pub(crate) fn canonical_reftype(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase();
    let key = key.strip_suffix("reffile").unwrap_or(&key).to_string();
    match key.as_str() {
        "bpm" => "mask".to_string(),
        "rdnoise" => "readnoise".to_string(),
        _ => key,
    }
}

/// Renames the keys of every `reffile4ssb` mapping of a document (at the top level and in
/// each section) to their reftypes. Two keys naming one reftype are an error naming both.
pub(crate) fn normalize_document(doc: &mut Node) -> Result<()> {
    if let Some(top) = doc.get_mut(REFFILE4SSB) {
        normalize_mapping(top, REFFILE4SSB)?;
    }
    if let NodeValue::Map(entries) = &mut doc.value {
        for (section, node) in entries.iter_mut() {
            if let Some(inner) = node.get_mut(REFFILE4SSB) {
                normalize_mapping(inner, &format!("{section}.{REFFILE4SSB}"))?;
            }
        }
    }
    Ok(())
}

fn normalize_mapping(node: &mut Node, path: &str) -> Result<()> {
    let NodeValue::Map(entries) = &mut node.value else {
        return Ok(());
    };
    let mut seen: Vec<(String, String)> = Vec::new();
    for (key, value) in entries.iter_mut() {
        let reftype = canonical_reftype(key);
        if let Some((first, _)) = seen.iter().find(|(_, r)| *r == reftype) {
            return Err(ConfigError::from(ConfigErrorKind::DuplicateKey {
                origin: value.source.clone(),
                path: path.to_string(),
                key: key.clone(),
                first: first.clone(),
                meaning: format!("the {} reference file", reftype.to_ascii_uppercase()),
            }));
        }
        seen.push((key.clone(), reftype.clone()));
        *key = reftype;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::provenance::Provenance;
    use crate::config::tree::parse_document;

    fn doc(text: &str) -> Node {
        parse_document(text, &Provenance::file(std::path::Path::new("/c.yaml"))).unwrap()
    }

    #[test]
    fn upstream_keys_become_reftypes_at_the_top_and_in_sections() {
        let mut d = doc(
            "reffile4ssb:\n  bpm: /m.fits\n  rdnoise: CRDS\n  gainreffile: /g.fits\n\
             dark:\n  reffile4ssb:\n    BPM: SELF\n",
        );
        normalize_document(&mut d).unwrap();
        let top: Vec<&str> = d.get("reffile4ssb").unwrap().keys().collect();
        assert_eq!(top, ["mask", "readnoise", "gain"]);
        let dark: Vec<&str> = d.get_path("dark.reffile4ssb").unwrap().keys().collect();
        assert_eq!(dark, ["mask"]);
    }

    #[test]
    fn an_alias_and_its_reftype_together_are_refused() {
        let mut d = doc("reffile4ssb:\n  mask: /a.fits\n  bpm: /b.fits\n");
        let err = normalize_document(&mut d).unwrap_err().to_string();
        assert_eq!(
            err,
            "/c.yaml:3: reffile4ssb.bpm and reffile4ssb.mask both name the MASK reference \
             file; keep one of them"
        );
    }
}
