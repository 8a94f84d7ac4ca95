//! What must be known before the command line is fully read: the instrument profiles (the
//! instruments decide what a config may say) and the Python of generator programs (the
//! generators' parameters are options of the command line). Both come from the main
//! configuration alone (`-c`, `$MKREFS_CONFIG`, `$JWST_MKREFS_CONFIGFILE` or the built-in
//! one); the tree is read without the typed settings, which would already need the profiles.
//! A configuration that does not load gives nothing here: the command reports it itself.

use std::path::{Path, PathBuf};

use super::load::{choose_main_config, read_main};

/// `profiles` and `calibration.python` of the main configuration.
#[derive(Debug, Default, PartialEq)]
pub struct Early {
    pub profiles: Vec<PathBuf>,
    pub python: Option<String>,
}

/// Reads them; `env` is the process environment (tests pass their own).
pub fn read(cfgfile: Option<&Path>, env: &dyn Fn(&str) -> Option<String>) -> Early {
    let Ok(mut tree) = read_main(&choose_main_config(cfgfile, env)) else {
        return Early::default();
    };
    if super::envsubst::expand_tree(&mut tree, "", env).is_err() {
        return Early::default();
    }
    let text = |n: &super::tree::Node| match &n.value {
        super::tree::NodeValue::Str(s) => Some(s.clone()),
        _ => None,
    };
    let profiles = match tree.get("profiles").map(|n| &n.value) {
        Some(super::tree::NodeValue::List(items)) => items.iter().filter_map(text).collect(),
        Some(super::tree::NodeValue::Str(s)) => {
            s.split(',').map(|p| p.trim().to_string()).collect()
        }
        _ => Vec::new(),
    };
    Early {
        profiles: profiles
            .into_iter()
            .filter(|p: &String| !p.is_empty())
            .map(PathBuf::from)
            .collect(),
        python: tree.get_path("calibration.python").and_then(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_and_python_come_from_the_main_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("main.yaml");
        std::fs::write(
            &cfg,
            "profiles: [a.profile.yaml, $DIR]\ncalibration:\n  python: /opt/py/bin/python\n",
        )
        .unwrap();
        let env = |name: &str| (name == "DIR").then(|| "/srv/profiles".to_string());
        let early = read(Some(&cfg), &env);
        assert_eq!(
            early.profiles,
            [
                PathBuf::from("a.profile.yaml"),
                PathBuf::from("/srv/profiles")
            ]
        );
        assert_eq!(early.python.as_deref(), Some("/opt/py/bin/python"));
        assert_eq!(read(None, &|_| None), Early::default());
        assert_eq!(
            read(Some(&dir.path().join("none.yaml")), &env),
            Early::default()
        );
    }
}
