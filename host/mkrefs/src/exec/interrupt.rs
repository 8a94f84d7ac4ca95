//! Stopping a run cleanly. On SIGINT or SIGTERM the executor starts no more jobs, asks the
//! running children to stop, waits for them, and the run reports what finished and exits with
//! 128 + the signal (130, 143). A child killed mid-write leaves its temporary files
//! (`.<name>.part-<pid>...`); they are removed after it ends, and any left by processes that
//! died some other way (kill -9, out of memory) are removed at the start of the next run.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};

/// The signal received, 0 for none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The job children running now.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

extern "C" fn on_signal(signal: libc::c_int) {
    // Only an atomic store: all a signal handler may safely do.
    RECEIVED.store(signal, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM for the rest of the process.
pub(crate) fn install() {
    #[cfg(unix)]
    // SAFETY: the handler only stores into an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// The signal that asked the run to stop, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// The signal's name, for messages.
pub(crate) fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT (Ctrl-C)",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Notes a running child, so that a signal can stop it.
pub(crate) fn register(pid: u32) {
    CHILDREN.lock().expect("children lock").push(pid);
}

pub(crate) fn unregister(pid: u32) {
    CHILDREN
        .lock()
        .expect("children lock")
        .retain(|&p| p != pid);
}

/// Sends SIGTERM to every running child.
pub(crate) fn stop_children() {
    for &pid in CHILDREN.lock().expect("children lock").iter() {
        #[cfg(unix)]
        // SAFETY: kill with a pid this process started and has not yet waited for.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
    }
}

/// The PID in a temporary file's name (`.<name>.part-<pid>` or `.<name>.part-<pid>-<n>`).
fn temporary_pid(name: &str) -> Option<u32> {
    if !name.starts_with('.') {
        return None;
    }
    let rest = &name[name.rfind(".part-")? + ".part-".len()..];
    rest.split('-').next()?.parse().ok()
}

/// Whether process `pid` runs. A zombie (ended, not yet reaped: its parent was killed and
/// nothing adopted it) does not.
fn alive(pid: u32) -> bool {
    if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // `pid (comm) S ...`: the state follows the last ')'.
        let state = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.trim().chars().next());
        return state != Some('Z') && state != Some('X');
    }
    #[cfg(unix)]
    {
        // SAFETY: signal 0 only checks that the process exists.
        let r = unsafe { libc::kill(pid as libc::pid_t, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

/// Removes, below each of `dirs`, the temporary files whose process is not running. Returns
/// the files removed. (A process id reused by an unrelated process keeps its files until that
/// process ends: the safe side.)
pub(crate) fn remove_temporaries(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    for dir in dirs {
        walk(dir, &mut |path| {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let Some(pid) = name.as_deref().and_then(temporary_pid) else {
                return;
            };
            let dead = pid != std::process::id() && !alive(pid);
            if dead && std::fs::remove_file(path).is_ok() {
                removed.push(path.to_path_buf());
            }
        });
    }
    removed
}

fn walk(dir: &Path, visit: &mut dyn FnMut(&Path)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk(&path, visit),
            Ok(t) if t.is_file() => visit(&path),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_names_give_their_process() {
        assert_eq!(temporary_pid(".x.fits.part-123"), Some(123));
        assert_eq!(temporary_pid(".x.fits.part-123-4"), Some(123));
        assert_eq!(temporary_pid(".a.part-b.fits.part-77-0"), Some(77));
        assert_eq!(temporary_pid("x.fits.part-123"), None);
        assert_eq!(temporary_pid(".x.fits"), None);
    }

    #[test]
    fn only_temporaries_of_processes_that_are_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir_all(&sub).unwrap();
        let mine = sub.join(format!(".out.fits.part-{}-0", std::process::id()));
        // A process that has exited: a child we waited for.
        let gone = std::process::Command::new("true").spawn().unwrap();
        let gone_pid = gone.id();
        let mut gone = gone;
        gone.wait().unwrap();
        let stale = sub.join(format!(".out.fits.part-{gone_pid}-0"));
        let kept = sub.join("out.fits");
        for f in [&mine, &stale, &kept] {
            std::fs::write(f, b"x").unwrap();
        }
        let removed = remove_temporaries(&[dir.path().to_path_buf()]);
        assert!(mine.exists() && kept.exists() && !stale.exists());
        assert_eq!(removed, [stale]);
    }
}
