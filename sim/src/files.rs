//! Files written atomically: a temporary file beside the target, fsync, rename, fsync of the
//! folder. A crash leaves the old file or the new one, never part of one; the temporary file is
//! hidden and named per process, so concurrent writers never share one.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The folder of `path` and the temporary file a write of `path` goes through.
pub fn temp_beside(path: &Path) -> (PathBuf, PathBuf) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    (dir, tmp)
}

/// Writes `bytes` to `path` atomically; removes the temporary file on failure.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (dir, tmp) = temp_beside(path);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, path)?;
        File::open(&dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
