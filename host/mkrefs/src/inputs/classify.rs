//! Whether an input exposure is a dark or a flat (UPSTREAM.md, "Input files").
//!
//! Precedence, first match wins:
//! 1. the header: `EXP_TYPE` in `inputfiles.dark_exp_types` or an instrument profile's
//!    `dark_exp_types` gives a dark, in `inputfiles.flat_exp_types` or a profile's
//!    `flat_exp_types` a flat (compared ignoring case and surrounding blanks), so an instrument
//!    added by a profile classifies without a config change;
//! 2. the file name: `inputfiles.dark_pattern` searched in the basename gives a dark, then
//!    `inputfiles.flat_pattern` a flat (upstream's only rule; a name matching both is a dark).
//!
//! Upstream used only the file name, which works for ground-test names but not for flight data
//! (UPSTREAM.md, "Input files"); the header comes first so that flight data classify without renaming.

use std::path::Path;

use regex::Regex;

use crate::config::settings::InputFilesSettings;

/// Whether an input exposure is a dark or a flat.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ImageKind {
    Dark,
    Flat,
}

impl ImageKind {
    /// As job files and tables write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            ImageKind::Dark => "dark",
            ImageKind::Flat => "flat",
        }
    }
}

/// The configured classification rules, with the patterns compiled once.
#[derive(Clone, Debug)]
pub struct ClassifyRules {
    dark_pattern: Option<Regex>,
    flat_pattern: Option<Regex>,
    dark_exp_types: Vec<String>,
    flat_exp_types: Vec<String>,
}

impl ClassifyRules {
    /// Compiles the patterns; an error names the config key. An EXP_TYPE listed as both dark and
    /// flat is refused, because either answer would be a guess.
    pub fn new(
        dark_pattern: Option<&str>,
        flat_pattern: Option<&str>,
        dark_exp_types: &[String],
        flat_exp_types: &[String],
    ) -> Result<ClassifyRules, String> {
        let normalize = |v: &[String]| -> Vec<String> {
            v.iter().map(|s| s.trim().to_ascii_uppercase()).collect()
        };
        let dark_exp_types = normalize(dark_exp_types);
        let flat_exp_types = normalize(flat_exp_types);
        if let Some(both) = dark_exp_types.iter().find(|d| flat_exp_types.contains(d)) {
            return Err(format!(
                "EXP_TYPE {both} is listed in both inputfiles.dark_exp_types and inputfiles.flat_exp_types: remove it from one of them"
            ));
        }
        Ok(ClassifyRules {
            dark_pattern: compile("inputfiles.dark_pattern", dark_pattern)?,
            flat_pattern: compile("inputfiles.flat_pattern", flat_pattern)?,
            dark_exp_types,
            flat_exp_types,
        })
    }

    /// The rules of the `inputfiles` section, with the instrument profiles' EXP_TYPEs (those
    /// the configuration lists on the other side excepted: the configuration decides).
    pub fn from_settings(inputfiles: &InputFilesSettings) -> Result<ClassifyRules, String> {
        let upper = |v: &[String]| -> Vec<String> {
            v.iter().map(|s| s.trim().to_ascii_uppercase()).collect()
        };
        let (config_dark, config_flat) = (
            upper(&inputfiles.dark_exp_types),
            upper(&inputfiles.flat_exp_types),
        );
        // A profile's EXP_TYPE joins a side unless it is there already or the configuration
        // put it on the other side.
        let add = |to: &mut Vec<String>, types: &[String], other: &[String]| {
            for e in types {
                if !other.contains(e) && !to.contains(e) {
                    to.push(e.clone());
                }
            }
        };
        let mut dark = config_dark.clone();
        let mut flat = config_flat.clone();
        for p in mkrefs_support::profile::profiles() {
            add(&mut dark, &p.dark_exp_types, &config_flat);
            add(&mut flat, &p.flat_exp_types, &config_dark);
        }
        ClassifyRules::new(
            inputfiles.dark_pattern.as_deref(),
            inputfiles.flat_pattern.as_deref(),
            &dark,
            &flat,
        )
    }

    /// The rules of the built-in configuration, for tests.
    #[cfg(test)]
    pub(crate) fn builtin() -> ClassifyRules {
        let settings = crate::config::load(&Default::default(), &|_| None)
            .expect("the built-in configuration loads");
        ClassifyRules::from_settings(&settings.inputfiles)
            .expect("the built-in classification rules are valid")
    }
}

fn compile(key: &str, pattern: Option<&str>) -> Result<Option<Regex>, String> {
    match pattern {
        None | Some("") => Ok(None),
        Some(p) => Regex::new(p)
            .map(Some)
            .map_err(|e| format!("{key}: '{p}' is not a valid regular expression: {e}")),
    }
}

/// Dark or flat, by the precedence in the module docs. The error names the file and its
/// EXP_TYPE and says how to fix it.
pub fn classify(
    path: &Path,
    exp_type: Option<&str>,
    rules: &ClassifyRules,
) -> Result<ImageKind, String> {
    if let Some(exp) = exp_type {
        let exp = exp.trim().to_ascii_uppercase();
        if rules.dark_exp_types.contains(&exp) {
            return Ok(ImageKind::Dark);
        }
        if rules.flat_exp_types.contains(&exp) {
            return Ok(ImageKind::Flat);
        }
    }
    let basename = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if rules
        .dark_pattern
        .as_ref()
        .is_some_and(|re| re.is_match(&basename))
    {
        return Ok(ImageKind::Dark);
    }
    if rules
        .flat_pattern
        .as_ref()
        .is_some_and(|re| re.is_match(&basename))
    {
        return Ok(ImageKind::Flat);
    }
    let exp_desc = match exp_type {
        Some(e) => format!("EXP_TYPE is '{}'", e.trim()),
        None => "there is no EXP_TYPE".to_string(),
    };
    let pattern = |re: &Option<Regex>| match re {
        Some(re) => format!("'{}'", re.as_str()),
        None => "(not set)".to_string(),
    };
    Err(format!(
        "{}: cannot tell whether this is a dark or a flat: {exp_desc}, and the file name matches neither inputfiles.dark_pattern {} nor inputfiles.flat_pattern {}; add the EXP_TYPE to inputfiles.dark_exp_types or inputfiles.flat_exp_types (or to its instrument's profile: README, Instrument profiles), or rename the file to match a pattern, or leave it out",
        path.display(),
        pattern(&rules.dark_pattern),
        pattern(&rules.flat_pattern),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn header_first() {
        let rules = ClassifyRules::builtin();
        // The name says flat (LIN); the header says dark, and wins.
        assert_eq!(
            classify(p("/d/NRCN815A-LIN-1_uncal.fits"), Some("NRC_DARK"), &rules),
            Ok(ImageKind::Dark)
        );
        assert_eq!(
            classify(p("/d/jw01_uncal.fits"), Some(" nrc_led "), &rules),
            Ok(ImageKind::Flat)
        );
        for exp in [
            "NRC_DARK",
            "NIS_DARK",
            "NRS_DARK",
            "MIR_DARKALL",
            "FGS_DARK",
        ] {
            assert_eq!(
                classify(p("x.fits"), Some(exp), &rules),
                Ok(ImageKind::Dark)
            );
        }
        for exp in [
            "NRC_FLAT",
            "NRC_LED",
            "NIS_LAMP",
            "MIR_FLATALL",
            "FGS_INTFLAT",
        ] {
            assert_eq!(
                classify(p("x.fits"), Some(exp), &rules),
                Ok(ImageKind::Flat)
            );
        }
    }

    #[test]
    fn then_file_name_dark_before_flat() {
        let rules = ClassifyRules::builtin();
        assert_eq!(
            classify(
                p("/data/NRCNRCA1-DARK-60_uncal.fits"),
                Some("NRC_IMAGE"),
                &rules
            ),
            Ok(ImageKind::Dark)
        );
        assert_eq!(
            classify(p("/data/GAIN_uncal.fits"), None, &rules),
            Ok(ImageKind::Flat)
        );
        // Both patterns: dark, as upstream.
        assert_eq!(
            classify(p("/data/DARK_LIN.fits"), None, &rules),
            Ok(ImageKind::Dark)
        );
        // Only the basename is searched, not the directory.
        assert!(classify(p("/DARK/jw01_uncal.fits"), None, &rules).is_err());
    }

    #[test]
    fn unclassifiable_names_file_and_exp_type() {
        let rules = ClassifyRules::builtin();
        let err = classify(p("/data/jw01_uncal.fits"), Some("NRC_IMAGE"), &rules).unwrap_err();
        assert!(err.starts_with("/data/jw01_uncal.fits:"), "{err}");
        assert!(err.contains("EXP_TYPE is 'NRC_IMAGE'"), "{err}");
        assert!(err.contains("inputfiles.dark_exp_types"), "{err}");
        let err = classify(p("/data/jw01_uncal.fits"), None, &rules).unwrap_err();
        assert!(err.contains("there is no EXP_TYPE"), "{err}");
    }

    #[test]
    fn configured_lists_and_patterns() {
        let rules = ClassifyRules::new(None, Some("flat"), &["MY_DARK".into()], &[]).unwrap();
        assert_eq!(
            classify(p("a.fits"), Some("my_dark"), &rules),
            Ok(ImageKind::Dark)
        );
        assert_eq!(
            classify(p("a_flat.fits"), None, &rules),
            Ok(ImageKind::Flat)
        );
        // NRC_DARK is not in this configuration.
        let err = classify(p("a.fits"), Some("NRC_DARK"), &rules).unwrap_err();
        assert!(err.contains("dark_pattern (not set)"), "{err}");
    }

    #[test]
    fn bad_config_is_named() {
        let err = ClassifyRules::new(Some("(Dark"), None, &[], &[]).unwrap_err();
        assert!(err.starts_with("inputfiles.dark_pattern: '(Dark'"), "{err}");
        let err =
            ClassifyRules::new(None, None, &["NRC_LED".into()], &["nrc_led".into()]).unwrap_err();
        assert!(err.contains("NRC_LED is listed in both"), "{err}");
    }
}
