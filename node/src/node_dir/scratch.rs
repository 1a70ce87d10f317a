//! Files a node writes for itself alone: created new (never through a name that exists) with
//! mode 0600, and scratch files unlinked as soon as they are open, which vanish with their
//! handle or with the process, so a crash leaves nothing behind.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};

/// Makes `dir` (mode 0700) if it does not exist yet; one that exists is used as it is.
pub fn ensure_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .recursive(true)
        .create(dir)
}

/// Creates `path`, which must not exist, mode 0600, open for reading and writing.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// A new file of ours in `dir` (named `.WHAT.PID.N` while it has a name), open for reading
/// and writing, already unlinked.
pub fn anonymous(dir: &Path, what: &str) -> Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir.join(format!(
        ".{what}.{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let f = create_private(&path).with_context(|| format!("cannot create {}", path.display()))?;
    std::fs::remove_file(&path).with_context(|| format!("cannot unlink {}", path.display()))?;
    Ok(f)
}
