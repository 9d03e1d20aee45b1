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
