//! Writing text files under a temporary name and renaming them when complete, so nothing
//! half-written ever carries a final name.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name used beside `path` while it is being written.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.part-{}", std::process::id()))
}

/// Writes `contents` to `path` atomically, creating the parent directory.
pub fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create directory {}: {e} (check permissions)",
                dir.display()
            )
        })?;
    }
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot write {}: {e} (check permissions and free space)",
            path.display()
        )
    })
}

/// Gives `to` the content of `from` atomically, creating the parent directory: a hard link
/// where the file system allows one (no byte is written twice; files here are replaced by
/// rename, never changed in place, so the two names cannot drift apart), else a copy, synced.
pub fn link_or_copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            format!(
                "cannot create directory {}: {e} (check permissions)",
                dir.display()
            )
        })?;
    }
    let tmp = temp_path(to);
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        if std::fs::hard_link(from, &tmp).is_err() {
            std::fs::copy(from, &tmp)?;
            std::fs::File::open(&tmp)?.sync_all()?;
        }
        std::fs::rename(&tmp, to)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        format!(
            "cannot copy {} to {}: {e} (check permissions and free space)",
            from.display(),
            to.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/table.txt");
        write(&path, b"hello\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }
}
