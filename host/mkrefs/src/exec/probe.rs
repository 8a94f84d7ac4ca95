//! Trying drop-in libraries in child processes before this process loads them. Loading a
//! library runs code of the library (its constructors, then the generator's), and code that
//! aborts or crashes there would take the whole of mkrefs with it; in a child (`mkrefs
//! probe-plugin LIB`) it costs that child only, and the library is reported and skipped.
//!
//! The child prints one line `@@mkrefs-probe <json>` ([`ProbeReport`]) on stdout. Probes run
//! in parallel, and a library that loaded is remembered in the per-user cache
//! (`$XDG_CACHE_HOME/mkrefs/plugin-probes.json`) under its size, modification time, inode and
//! status change time, so it is not probed again until it changes.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::inputs::fingerprint;

/// The prefix of the report line a probe child prints on stdout.
pub(crate) const PROBE_PREFIX: &str = "@@mkrefs-probe ";

/// How long loading a library may take before the probe is stopped and the library skipped.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a probe child says about the library it loaded.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ProbeReport {
    /// It loaded and its generator was created.
    Loaded { reflabel: String, reftype: String },
    /// The loader refused it (not a plugin, another plugin-api, ...); `reason` is one line.
    Refused { reason: String, detail: String },
}

impl ProbeReport {
    /// The protocol line for stdout.
    pub(crate) fn line(&self) -> String {
        format!(
            "{PROBE_PREFIX}{}",
            serde_json::to_string(self).expect("probe reports serialize")
        )
    }
}

/// Why a library is not used: `reason` in one line for the log, `detail` for `-v`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProbeFailure {
    pub reason: String,
    pub detail: String,
}

/// A library's identity in the cache: a file replaced or rebuilt gets another. The status
/// change time is kept too: unlike the modification time, no copy tool can set it back, so a
/// file rewritten in place with its old size and time still counts as changed.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    modified_ns: i128,
    inode: u64,
    changed_ns: i128,
}

fn stamp(path: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(path).ok()?;
    let modified_ns = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let (inode, changed_ns) = {
        use std::os::unix::fs::MetadataExt;
        (
            meta.ino(),
            i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
        )
    };
    #[cfg(not(unix))]
    let (inode, changed_ns) = (0, 0);
    Some(Stamp {
        size: meta.len(),
        modified_ns,
        inode,
        changed_ns,
    })
}

/// The libraries that loaded in a probe, by path.
struct ProbeCache {
    file: Option<PathBuf>,
    loaded: BTreeMap<PathBuf, Stamp>,
}

impl ProbeCache {
    fn open() -> ProbeCache {
        let file = fingerprint::cache_dir().map(|d| d.join("plugin-probes.json"));
        let loaded = file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        ProbeCache { file, loaded }
    }

    fn knows(&self, path: &Path, stamp: Option<Stamp>) -> bool {
        stamp.is_some_and(|s| self.loaded.get(path) == Some(&s))
    }

    /// Writes the cache; a cache that cannot be written only costs probes next time.
    fn save(&self) {
        let Some(file) = &self.file else { return };
        let text = serde_json::to_string(&self.loaded).expect("the cache serializes");
        if let Err(e) = crate::atomic::write(file, text.as_bytes()) {
            tracing::debug!("plugin probe cache not saved: {e}");
        }
    }
}

/// Probes every library (in parallel, libraries the cache knows unchanged are not probed
/// again) and returns, in the same order, `Ok` for each that loaded in a child process.
pub(crate) fn probe_libraries(libraries: &[PathBuf]) -> Vec<Result<(), ProbeFailure>> {
    if libraries.is_empty() {
        return Vec::new();
    }
    let mut cache = ProbeCache::open();
    // Keyed by the file itself: a relative path or a symbolic link names it in other words.
    let keys: Vec<PathBuf> = libraries
        .iter()
        .map(|l| std::fs::canonicalize(l).unwrap_or_else(|_| l.clone()))
        .collect();
    let stamps: Vec<Option<Stamp>> = keys.iter().map(|k| stamp(k)).collect();
    let todo: Vec<usize> = (0..libraries.len())
        .filter(|&i| !cache.knows(&keys[i], stamps[i]))
        .collect();
    let mut outcomes: Vec<Result<(), ProbeFailure>> = vec![Ok(()); libraries.len()];
    let probed = in_parallel(&todo, |i| probe(&libraries[i]));
    let mut changed = false;
    for (i, outcome) in todo.into_iter().zip(probed) {
        if let (Ok(()), Some(s)) = (&outcome, stamps[i]) {
            cache.loaded.insert(keys[i].clone(), s);
            changed = true;
        }
        outcomes[i] = outcome;
    }
    if changed {
        cache.loaded.retain(|p, _| p.exists());
        cache.save();
    }
    outcomes
}

/// `work` on every item, a few at a time, results in the order of `items`.
fn in_parallel<T: Send>(items: &[usize], work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, 8)
        .min(items.len());
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&item) = items.get(k) else { break };
                        done.push((k, work(item)));
                    }
                    done
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("probe threads do not panic"))
            .collect()
    });
    results.sort_by_key(|(k, _)| *k);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Loads `library` in a child process (`mkrefs probe-plugin`), and says whether it loaded.
fn probe(library: &Path) -> Result<(), ProbeFailure> {
    let fail = |reason: String| ProbeFailure {
        reason,
        detail: String::new(),
    };
    let exe = std::env::current_exe().map_err(|e| {
        fail(format!(
            "could not be tried: cannot find the mkrefs executable: {e}"
        ))
    })?;
    let mut child = Command::new(exe)
        .arg("probe-plugin")
        .arg(library)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("could not be tried: cannot start a process: {e}")))?;
    let (status, stdout, stderr) = wait_collecting(&mut child).map_err(|e| {
        fail(format!(
            "could not be tried: lost the process loading it: {e}"
        ))
    })?;
    let report = stdout
        .lines()
        .filter_map(|l| l.strip_prefix(PROBE_PREFIX))
        .find_map(|json| serde_json::from_str::<ProbeReport>(json).ok());
    match (status, report) {
        (Some(_), Some(ProbeReport::Loaded { .. })) => Ok(()),
        (Some(_), Some(ProbeReport::Refused { reason, detail })) => {
            Err(ProbeFailure { reason, detail })
        }
        (None, _) => Err(fail(format!(
            "did not finish loading within {} s (a constructor that hangs?); fix or remove \
             the library",
            PROBE_TIMEOUT.as_secs()
        ))),
        (Some(status), None) => Err(ProbeFailure {
            reason: crashed(status),
            detail: stderr.trim().to_string(),
        }),
    }
}

/// Waits for the child (at most [`PROBE_TIMEOUT`], then kills it: `None`), reading its
/// output meanwhile so a chatty library cannot fill the pipe and stall.
pub(crate) fn wait_collecting(
    child: &mut Child,
) -> std::io::Result<(Option<ExitStatus>, String, String)> {
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let mut bytes = Vec::new();
                let _ = pipe.read_to_end(&mut bytes);
                text = String::from_utf8_lossy(&bytes).into_owned();
            }
            text
        })
    };
    let out = read_all(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = read_all(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if start.elapsed() > PROBE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    Ok((status, stdout, stderr))
}

/// Why a probe child ended without its report: killed by a signal, or an exit status. Said
/// of the library ("library X <reason>").
fn crashed(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            let what = match signal {
                libc::SIGABRT => "aborted the process loading it (SIGABRT: a constructor in it, \
                     or its generator's, called abort())"
                    .to_string(),
                libc::SIGSEGV => "crashed the process loading it (SIGSEGV)".to_string(),
                libc::SIGBUS => "crashed the process loading it (SIGBUS)".to_string(),
                libc::SIGILL => {
                    "crashed the process loading it (SIGILL: built for another CPU?)".to_string()
                }
                libc::SIGKILL => {
                    "got the process loading it killed (SIGKILL: out of memory?)".to_string()
                }
                other => format!("killed the process loading it (signal {other})"),
            };
            return format!("{what}; fix or remove the library");
        }
    }
    format!(
        "ended the process loading it with status {} and no report; fix or remove the library \
         (`mkrefs -v plugins` shows what it printed)",
        status.code().unwrap_or(-1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_go_through_one_line() {
        let report = ProbeReport::Refused {
            reason: "is not an mkrefs plugin".into(),
            detail: "line 1\nline 2".into(),
        };
        let line = report.line();
        assert!(!line.contains('\n'));
        let back: ProbeReport =
            serde_json::from_str(line.strip_prefix(PROBE_PREFIX).unwrap()).unwrap();
        assert_eq!(back, report);
    }

    #[test]
    fn a_library_rewritten_in_place_is_probed_again() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("libmkref_x.so");
        std::fs::write(&lib, b"first").unwrap();
        let before = stamp(&lib).unwrap();
        let mut cache = ProbeCache {
            file: None,
            loaded: BTreeMap::new(),
        };
        cache.loaded.insert(lib.clone(), before);
        assert!(cache.knows(&lib, stamp(&lib)));
        // Same size, same inode, the old modification time put back: still a new stamp.
        std::thread::sleep(Duration::from_millis(10));
        std::fs::write(&lib, b"other").unwrap();
        let file = std::fs::File::options().write(true).open(&lib).unwrap();
        let old_time = std::time::UNIX_EPOCH
            + Duration::from_nanos(u64::try_from(before.modified_ns).unwrap());
        file.set_modified(old_time).unwrap();
        let after = stamp(&lib).unwrap();
        assert_eq!((after.size, after.inode), (before.size, before.inode));
        assert_eq!(after.modified_ns, before.modified_ns);
        assert!(!cache.knows(&lib, Some(after)));
    }

    #[test]
    fn parallel_results_keep_their_order() {
        let items: Vec<usize> = (0..20).rev().collect();
        let got = in_parallel(&items, |i| i * 10);
        assert_eq!(got, items.iter().map(|i| i * 10).collect::<Vec<_>>());
    }
}
