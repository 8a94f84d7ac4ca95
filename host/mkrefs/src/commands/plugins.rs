//! `mkrefs plugins`: every generator, and every library that failed to load. The exit status
//! is 1 when a library given with `--plugin-dir` to replace a bundled generator failed, since
//! runs of that generator fail.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::registry::{Fallback, Registry};

pub fn run(registry: &Registry, search_path: &[PathBuf]) -> Result<ExitCode, String> {
    let rows: Vec<[String; 4]> = registry
        .entries()
        .iter()
        .map(|e| {
            let source = match registry.refused(&e.reflabel) {
                Some(_) => format!("{} (not used: its replacement failed)", e.origin.describe()),
                None => e.origin.describe(),
            };
            [
                e.reflabel.clone(),
                e.reftype.clone(),
                e.info.version.to_string(),
                source,
            ]
        })
        .collect();
    let header = ["reflabel", "reftype", "version", "source"];
    let widths: Vec<usize> = (0..3)
        .map(|c| {
            rows.iter()
                .map(|r| r[c].len())
                .chain([header[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: [&str; 4]| {
        format!(
            "{:w0$}  {:w1$}  {:w2$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2]
        )
    };
    println!("{}", line(header));
    for r in &rows {
        println!("{}", line([&r[0], &r[1], &r[2], &r[3]]));
    }
    for b in registry.broken() {
        let instead = match b.fallback {
            Fallback::None => "",
            Fallback::Bundled => "; the bundled one runs instead",
            Fallback::Refused => "; error: it was to replace the bundled one",
        };
        println!(
            "{:w0$}  (not loaded: {} {}{instead})",
            b.reflabel,
            b.path.display(),
            b.reason,
            w0 = widths[0]
        );
    }
    let dirs: Vec<String> = search_path
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    println!("plugin path: {}", dirs.join(":"));
    let refused = registry
        .broken()
        .iter()
        .any(|b| b.fallback == Fallback::Refused);
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
