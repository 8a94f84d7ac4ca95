//! `mkrefs plugins`: every generator, and every library that failed to load.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::registry::Registry;

pub fn run(registry: &Registry, search_path: &[PathBuf]) -> Result<ExitCode, String> {
    let rows: Vec<[String; 4]> = registry
        .entries()
        .iter()
        .map(|e| {
            [
                e.reflabel.clone(),
                e.reftype.clone(),
                e.info.version.to_string(),
                e.origin.describe(),
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
        println!(
            "{:w0$}  (not loaded: {} {})",
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
    Ok(ExitCode::SUCCESS)
}
