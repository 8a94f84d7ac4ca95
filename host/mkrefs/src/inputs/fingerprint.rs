//! What a file is: its size, modification time and a content hash (xxh3, 128 bits). Jobs and
//! products record the fingerprints of everything they were made from, and a rerun reuses them
//! only while those still match (see the README, "Reruns").
//!
//! Hashing reads every byte, which for full-frame ramps is gigabytes, so hashes are kept in a
//! per-user cache (`$XDG_CACHE_HOME/mkrefs/fingerprints.json`, by default under
//! `~/.cache`) and reused while a file's size, modification time and inode are unchanged: a
//! file edited in place gets a new time and is hashed again. The cache is shared by every
//! output root, so a new run on the same data hashes nothing.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// One file's identity.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub modified_ns: i128,
    /// xxh3-128 of the content, hex.
    pub xxh3: String,
}

/// A cached hash and what it was computed for.
#[derive(Serialize, Deserialize, Debug, Clone)]
struct Cached {
    size: u64,
    modified_ns: i128,
    inode: u64,
    xxh3: String,
    /// The sha256 too, once something asked for it (the run manifest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

/// The fingerprints of one run, backed by the cache file.
#[derive(Debug)]
pub struct Fingerprints {
    file: PathBuf,
    cache: Mutex<BTreeMap<PathBuf, Cached>>,
}

/// Size, modification time and inode of a file.
pub(crate) fn stat(path: &Path) -> std::io::Result<(u64, i128, u64)> {
    let meta = std::fs::metadata(path)?;
    let modified_ns = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Ok((meta.len(), modified_ns, inode))
}

/// The xxh3-128 of a file, and its sha256 when `sha` (one read for both).
fn hash_file_with(path: &Path, sha: bool) -> std::io::Result<(String, Option<String>)> {
    use sha2::Digest;
    let mut f = std::fs::File::open(path)?;
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let mut sha256 = sha.then(sha2::Sha256::new);
    let mut buf = vec![0u8; 8 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(s) = sha256.as_mut() {
            s.update(&buf[..n]);
        }
    }
    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    Ok((
        format!("{:032x}", hasher.digest128()),
        sha256.map(|s| hex(&s.finalize())),
    ))
}

pub(crate) fn hash_file(path: &Path) -> std::io::Result<String> {
    Ok(hash_file_with(path, false)?.0)
}

/// The per-user cache directory, `$XDG_CACHE_HOME/mkrefs` or `~/.cache/mkrefs`.
pub fn cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("mkrefs"))
}

impl Fingerprints {
    /// The cache kept in `dir` (created when saved); an unreadable cache is started afresh.
    pub fn in_dir(dir: &Path) -> Fingerprints {
        let file = dir.join("fingerprints.json");
        let cache = std::fs::read_to_string(&file)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        Fingerprints {
            file,
            cache: Mutex::new(cache),
        }
    }

    /// The cached hashes of `path` if they are of this version of it (`id`: size, modification
    /// time and inode, as [`stat`] gives them).
    fn known(&self, path: &Path, id: (u64, i128, u64)) -> Option<Cached> {
        self.cache
            .lock()
            .expect("fingerprint cache")
            .get(path)
            .filter(|c| (c.size, c.modified_ns, c.inode) == id)
            .cloned()
    }

    /// Caches the hashes of this version (`id`) of `path`.
    fn remember(&self, path: &Path, id: (u64, i128, u64), xxh3: String, sha256: Option<String>) {
        let (size, modified_ns, inode) = id;
        self.cache.lock().expect("fingerprint cache").insert(
            path.to_path_buf(),
            Cached {
                size,
                modified_ns,
                inode,
                xxh3,
                sha256,
            },
        );
    }

    /// The fingerprint of `path`, hashing it only if the cache does not know this version.
    pub fn of(&self, path: &Path) -> Result<Fingerprint, String> {
        let fail =
            |e: std::io::Error| format!("cannot read {} to fingerprint it: {e}", path.display());
        let id = stat(path).map_err(fail)?;
        let xxh3 = match self.known(path, id) {
            Some(c) => c.xxh3,
            None => {
                let xxh3 = hash_file(path).map_err(fail)?;
                self.remember(path, id, xxh3.clone(), None);
                xxh3
            }
        };
        Ok(Fingerprint {
            size: id.0,
            modified_ns: id.1,
            xxh3,
        })
    }

    /// The sha256 of `path` (for the run manifest), read only if the cache does not know it
    /// for this version of the file; the xxh3 is taken in the same read when it is not known
    /// either. Products a shared ssbdir keeps are then hashed once, not by every run.
    pub fn sha256(&self, path: &Path) -> Result<String, String> {
        let fail = |e: std::io::Error| format!("cannot read {} to hash it: {e}", path.display());
        let id = stat(path).map_err(fail)?;
        let known = self.known(path, id);
        if let Some(sha) = known.as_ref().and_then(|c| c.sha256.clone()) {
            return Ok(sha);
        }
        let (xxh3, sha256) = hash_file_with(path, true).map_err(fail)?;
        let sha256 = sha256.expect("asked for");
        let xxh3 = known.map_or(xxh3, |c| c.xxh3);
        self.remember(path, id, xxh3, Some(sha256.clone()));
        Ok(sha256)
    }

    /// Fingerprints of many files, hashed in parallel, in the order given.
    pub fn of_all(&self, paths: &[PathBuf]) -> Result<Vec<Fingerprint>, String> {
        paths.par_iter().map(|p| self.of(p)).collect()
    }

    /// Writes the cache (under a temporary name, renamed when complete), without the files
    /// that no longer exist. Another run saving at the same time may drop some entries: they
    /// are hashed again when needed.
    pub fn save(&self) -> Result<(), String> {
        let text = {
            let mut cache = self.cache.lock().expect("fingerprint cache");
            cache.retain(|path, _| path.exists());
            serde_json::to_string(&*cache).expect("the cache serializes")
        };
        crate::atomic::write(&self.file, text.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_file_gets_a_new_fingerprint_and_an_unchanged_one_is_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.fits");
        std::fs::write(&f, b"first").unwrap();
        let fp = Fingerprints::in_dir(dir.path());
        let one = fp.of(&f).unwrap();
        assert_eq!(one.size, 5);
        fp.save().unwrap();
        // From the cache: a wrong cached hash is believed while the file looks unchanged.
        let cached = Fingerprints::in_dir(dir.path());
        cached.cache.lock().unwrap().get_mut(&f).unwrap().xxh3 = "cached".into();
        assert_eq!(cached.of(&f).unwrap().xxh3, "cached");
        // Edited in place (same size): a new time, so hashed again.
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&f, b"other").unwrap();
        let two = cached.of(&f).unwrap();
        assert_ne!(two.xxh3, "cached");
        assert_ne!(two.xxh3, one.xxh3);
        assert_eq!(two.size, 5);
    }
}
