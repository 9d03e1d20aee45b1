//! Atomic file writing: nothing half-written survives a crash or an error.

use std::io::Write;
use std::path::Path;

use crate::error::{PreprocessError, Result};

/// Writes `bytes` to `path` through a temporary file in the same folder and a rename, so the
/// file is either absent, the old version, or complete. Creates the parent folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| PreprocessError::io(dir, e))?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    // Unique per process and thread so parallel writers of the same cache entry do not collide.
    let tmp = dir.join(format!(".{name}.tmp-{}-{:?}", std::process::id(), std::thread::current().id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(PreprocessError::io(path, e));
    }
    Ok(())
}

/// True for the temporary names this project writes before a rename: [`write_atomic`]'s
/// `.NAME.tmp-PID-…` and the checkpoints' `NAME.tmp-PID`.
pub fn is_temp_name(name: &str) -> bool {
    name.split(".tmp-").nth(1).is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
}

/// Removes, below `dir` (recursively), the temporary files that a killed run left behind
/// (see [`is_temp_name`]); returns how many. A missing folder has none.
///
/// # Errors
/// A folder that cannot be listed or a file that cannot be removed (named).
pub fn sweep_temp_files(dir: &Path) -> Result<usize> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(0) };
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| PreprocessError::io(dir, e))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(|e| PreprocessError::io(&path, e))?;
        if kind.is_dir() {
            removed += sweep_temp_files(&path)?;
        } else if is_temp_name(&entry.file_name().to_string_lossy()) {
            std::fs::remove_file(&path).map_err(|e| PreprocessError::io(&path, e))?;
            removed += 1;
        }
    }
    Ok(removed)
}
