//! `mkrefs clean`: removes the run-internal products (README, "Run-internal products"): the
//! calibrated products a run wrote with only the extensions its generators read, in the
//! `mkrefs-internal` directories below the output root and the ssbdir. Whole products, reference
//! files and run directories are left alone.
//!
//! Each product is removed while holding its lock, so a product that a running job is reading
//! or making is skipped (and said so, with a failing exit status: run clean again later). Its
//! record and any temporary file of an interrupted write go with it; the lock files stay (see
//! `exec::lock`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{CleanArgs, GlobalOptions};
use crate::commands::run::{expand, load_settings};
use crate::exec::lock;
use crate::layout::{RunLayout, absolute};
use crate::plan::options::OutputOverrides;
use crate::prep::state::INTERNAL_DIR;

/// What one clean did.
#[derive(Default)]
struct Tally {
    products: usize,
    bytes: u64,
    /// Products in use, and why others could not be removed.
    left: Vec<String>,
}

pub fn run(global: &GlobalOptions, args: &CleanArgs) -> Result<ExitCode, String> {
    let settings = load_settings(global)?;
    let path = |option: &str, p: &Option<PathBuf>| -> Result<Option<PathBuf>, String> {
        p.as_ref()
            .map(|p| expand(option, &p.to_string_lossy()).map(PathBuf::from))
            .transpose()
    };
    let overrides = OutputOverrides {
        outrootdir: path("--outrootdir", &args.outrootdir)?,
        outsubdir: args
            .outsubdir
            .as_ref()
            .map(|t| expand("--outsubdir", t))
            .transpose()?,
        ssbdir: path("--ssbdir", &args.ssbdir)?,
        ..Default::default()
    };
    let layout = RunLayout::resolve(&overrides.resolve(&settings)?);
    // The ssbdir is shared (outside the run directories) or in each run directory; both are
    // below the root unless --ssbdir or output.ssbdir put it elsewhere.
    let mut roots = vec![layout.root.clone()];
    if !layout.ssbdir.starts_with(&layout.root) {
        roots.push(layout.ssbdir.clone());
    }
    let mut tally = Tally::default();
    for root in &roots {
        for dir in internal_dirs(root)? {
            clean_dir(&dir, &mut tally)?;
        }
    }
    println!(
        "removed {} run-internal product(s), {:.1} MB, below {}",
        tally.products,
        tally.bytes as f64 / 1e6,
        roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(" and ")
    );
    for l in &tally.left {
        eprintln!("not removed: {l}");
    }
    Ok(if tally.left.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The `mkrefs-internal` directories below `root` (none when it does not exist).
fn internal_dirs(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut found = Vec::new();
    let mut stack = vec![absolute(root)];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("cannot read directory {}: {e}", d.display())),
        };
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot read directory {}: {e}", d.display()))?;
            // Not following symbolic links: only what the output tree itself holds.
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let p = entry.path();
                if p.file_name().is_some_and(|n| n == INTERNAL_DIR) {
                    found.push(p);
                } else {
                    stack.push(p);
                }
            }
        }
    }
    found.sort();
    Ok(found)
}

/// The product a file of an internal directory belongs to: the product itself, its record
/// (`<name>.made_from.json`) or a temporary file of either being written
/// (`.<name>.part-<pid>[-<n>]`); lock files (`.<name>.lock`) belong to none.
fn product_of(file_name: &str) -> Option<String> {
    if file_name.ends_with(".lock") {
        return None;
    }
    let name = match file_name.strip_prefix('.') {
        Some(rest) => &rest[..rest.rfind(".part-")?],
        None => file_name,
    };
    if let Some(p) = name.strip_suffix(".made_from.json") {
        return Some(p.to_string());
    }
    name.ends_with(".fits").then(|| name.to_string())
}

fn clean_dir(dir: &Path, tally: &mut Tally) -> Result<(), String> {
    let unreadable = |e: std::io::Error| format!("cannot read directory {}: {e}", dir.display());
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        files.push(entry.map_err(unreadable)?.path());
    }
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };
    let products: BTreeSet<String> = files.iter().filter_map(|f| product_of(&name(f))).collect();
    for product in products {
        let path = dir.join(&product);
        let what = format!("the run-internal product {}", path.display());
        let _lock = match lock::try_acquire(&lock::beside(&path), &what)? {
            Ok(lock) => lock,
            Err(who) => {
                tally.left.push(format!(
                    "{} is in use by {who}; run `mkrefs clean` again when that run has finished",
                    path.display()
                ));
                continue;
            }
        };
        let mut removed_product = false;
        for f in files
            .iter()
            .filter(|f| product_of(&name(f)).as_deref() == Some(product.as_str()))
        {
            let size = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            match std::fs::remove_file(f) {
                Ok(()) => {
                    tally.bytes += size;
                    removed_product |= *f == path;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tally
                    .left
                    .push(format!("{}: {e} (check permissions)", f.display())),
            }
        }
        if removed_product {
            tally.products += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_grouped_by_their_product() {
        assert_eq!(product_of("a_jump.fits"), Some("a_jump.fits".into()));
        assert_eq!(
            product_of("a_jump.fits.made_from.json"),
            Some("a_jump.fits".into())
        );
        assert_eq!(
            product_of(".a_jump.fits.part-123-4"),
            Some("a_jump.fits".into())
        );
        // A record being written belongs to its product, whose lock guards it.
        assert_eq!(
            product_of(".a_jump.fits.made_from.json.part-123"),
            Some("a_jump.fits".into())
        );
        assert_eq!(product_of(".a_jump.fits.lock"), None);
        assert_eq!(product_of("notes.txt"), None);
    }
}
