//! Timing a whole command: its wall time and the peak RSS of its largest process, taken by a
//! measuring child (`mkrefs-bench measure CMD...`, see main.rs).

use std::process::Command;

/// Runs `cmd` under a measuring child; returns wall seconds and peak RSS in MB.
pub(crate) fn measured(cmd: &[String]) -> (f64, f64) {
    let own = std::env::current_exe().expect("own path");
    let out = Command::new(own)
        .arg("measure")
        .args(cmd)
        .output()
        .expect("measuring child runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text.split_whitespace();
    let wall: f64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let rss_kb: f64 = parts
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    if !out.status.success() {
        eprintln!(
            "command failed: {}\n{}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (wall, rss_kb / 1024.0)
}

pub(crate) fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}
