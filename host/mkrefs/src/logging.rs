//! Logging through tracing, and progress bars (indicatif) that log lines do not clobber.
//! Bars are shown only when stderr is a terminal; otherwise progress is plain log lines.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;

static BARS: OnceLock<Option<MultiProgress>> = OnceLock::new();

fn bars() -> Option<&'static MultiProgress> {
    BARS.get_or_init(|| {
        std::io::stderr()
            .is_terminal()
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
    })
    .as_ref()
}

/// The level for `-v`/`-q` counts: info by default.
pub fn level(verbose: u8, quiet: u8) -> LevelFilter {
    match (verbose, quiet) {
        (0, 0) => LevelFilter::INFO,
        (1, _) => LevelFilter::DEBUG,
        (v, _) if v >= 2 => LevelFilter::TRACE,
        (_, 1) => LevelFilter::WARN,
        _ => LevelFilter::ERROR,
    }
}

/// Installs the subscriber. `job_child` selects the format of job logs (timestamps, no
/// colour), which end up in files.
pub fn init(level: LevelFilter, job_child: bool) {
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(SuspendingStderr);
    if job_child {
        builder.with_ansi(false).with_target(false).init();
    } else {
        builder
            .without_time()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .init();
    }
}

/// A bar attached to the shared multi-bar, or `None` when stderr is not a terminal.
pub fn progress_bar(len: u64, prefix: &str) -> Option<ProgressBar> {
    let multi = bars()?;
    let bar = multi.add(ProgressBar::new(len));
    let style = if len == 0 {
        ProgressStyle::with_template("{prefix:24} {spinner} {msg}").expect("valid template")
    } else {
        ProgressStyle::with_template("{prefix:24} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("valid template")
            .progress_chars("=> ")
    };
    bar.set_style(style);
    bar.set_prefix(prefix.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    Some(bar)
}

/// Writes log lines to stderr, hiding the progress bars while it does.
struct SuspendingStderr;

struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        let emit = |buf: &[u8]| {
            let _ = std::io::stderr().lock().write_all(buf);
        };
        match bars() {
            Some(multi) => multi.suspend(|| emit(&self.0)),
            None => emit(&self.0),
        }
    }
}

impl<'a> MakeWriter<'a> for SuspendingStderr {
    type Writer = LineWriter;
    fn make_writer(&'a self) -> Self::Writer {
        LineWriter(Vec::with_capacity(256))
    }
}
