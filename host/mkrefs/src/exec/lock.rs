//! Locks that keep runs apart: one on the run directory for a whole run, and one on each
//! calibrated product while a job checks or makes it (the ssbdir is shared by every run of an
//! output root, and by runs of other roots that name the same ssbdir).
//!
//! They are advisory file locks (`flock`), which the kernel releases when the process ends,
//! however it ends, so a killed run never leaves a lock to clean up; the lock files themselves
//! stay (removing one could let two processes lock different files of one name). A second run
//! waits, saying once who holds the lock, or with `--no-wait` stops and says so. Waiting
//! notices SIGINT/SIGTERM. On NFS, Linux maps `flock` to byte-range locks held by the server.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::exec::interrupt;

/// A lock held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// The lock file of a product (or any file): a hidden file beside it.
pub fn beside(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    path.with_file_name(format!(".{name}.lock"))
}

/// Who holds a lock, as its holder wrote it.
fn holder(lock_file: &Path) -> String {
    std::fs::read_to_string(lock_file)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "another process".to_string())
}

/// Takes the lock kept in `lock_file` (created if needed) for `what` ("the run directory
/// ..."). While another process holds it: with `no_wait` an error naming the holder, else a
/// log line and a wait until it is free or the run is stopped by a signal.
pub fn acquire(lock_file: &Path, what: &str, no_wait: bool) -> Result<Lock, String> {
    let mut said = false;
    loop {
        let who = match try_acquire(lock_file, what)? {
            Ok(lock) => return Ok(lock),
            Err(who) => who,
        };
        if no_wait {
            return Err(format!(
                "{what} is in use by {who} (lock {}); --no-wait was given, so this run stops: \
                 run again when it has finished",
                lock_file.display()
            ));
        }
        if !said {
            tracing::info!(
                "{what} is in use by {who}; waiting for it to finish (--no-wait stops instead)"
            );
            said = true;
        }
        if let Some(signal) = interrupt::received() {
            return Err(format!(
                "stopped by {} while waiting for {what}",
                interrupt::signal_name(signal)
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Takes the lock kept in `lock_file` (created if needed) if it is free; `Ok(Err(who))` when
/// another process holds it.
pub fn try_acquire(lock_file: &Path, what: &str) -> Result<Result<Lock, String>, String> {
    if let Some(dir) = lock_file.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(lock_file)
        .map_err(|e| {
            format!(
                "cannot open the lock file {} of {what}: {e} (check permissions)",
                lock_file.display()
            )
        })?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Err(holder(lock_file))),
        Err(TryLockError::Error(e)) => {
            return Err(format!(
                "cannot lock {} ({what}): {e}; the file system may not support locks: \
                 choose an output root on another file system",
                lock_file.display()
            ));
        }
    }
    // Say who holds it, for the next one to wait.
    let me = format!(
        "mkrefs (pid {} on {})",
        std::process::id(),
        hostname().unwrap_or_else(|| "this host".into())
    );
    let _ = file.set_len(0).and_then(|()| file.write_all(me.as_bytes()));
    Ok(Ok(Lock { _file: file }))
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates what fits.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_without_waiting_and_freed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let file = beside(&dir.path().join("a_dq_init.fits"));
        assert_eq!(file.file_name().unwrap(), ".a_dq_init.fits.lock");
        let held = acquire(&file, "the product a_dq_init.fits", false).unwrap();
        let refused = acquire(&file, "the product a_dq_init.fits", true).unwrap_err();
        assert!(refused.contains("is in use by mkrefs (pid"), "{refused}");
        assert!(refused.contains("--no-wait"), "{refused}");
        drop(held);
        acquire(&file, "the product a_dq_init.fits", true).unwrap();
    }
}
