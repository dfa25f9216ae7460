//! Where this process spools S3 parts being filled: `DATA/spool/<id>/`, one directory per
//! process, created on first use and locked for the process's life.
//!
//! Spools are scratch space: what one held is in the store already or will be sent again by
//! the client. A crashed process leaves its directory behind, so `ferry serve` removes at
//! start-up every directory no live process holds ([`clear_stale`]). Nothing else touches
//! spools: a CLI command beside a live server (`ferry store check`, `ferry expire`) must never
//! delete what that server is writing.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

use crate::store::StoreError;

/// The lock file inside each spool directory, held (flock) by the process that owns it.
const LOCK_FILE: &str = "lock";
/// Prefix of a directory being set up (not yet locked): [`clear_stale`] leaves it alone.
const NEW_PREFIX: &str = ".new-";

/// This process's spool directory.
pub(crate) struct SpoolDir {
    path: PathBuf,
    /// The held lock file, once the directory exists.
    lock: Mutex<Option<File>>,
}

impl SpoolDir {
    /// This process's directory under `root` (`DATA/spool`); nothing is created yet.
    pub(crate) fn new(root: &Path) -> Self {
        SpoolDir {
            path: root.join(Uuid::new_v4().simple().to_string()),
            lock: Mutex::new(None),
        }
    }

    /// The directory, created and locked on first use. It is set up under a hidden name and
    /// renamed into place once locked, so a start-up sweep never sees it unlocked.
    pub(crate) fn ensure(&self) -> Result<&Path, StoreError> {
        let mut lock = self
            .lock
            .lock()
            .map_err(|_| StoreError::State("spool directory lock poisoned".into()))?;
        if lock.is_none() {
            let root = self.path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(root)?;
            let name = self.path.file_name().unwrap_or_default().to_string_lossy();
            let staging = root.join(format!("{NEW_PREFIX}{name}"));
            std::fs::create_dir(&staging)?;
            let file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(staging.join(LOCK_FILE))?;
            file.try_lock().map_err(|e| {
                StoreError::Io(std::io::Error::other(format!(
                    "locking {}: {e}",
                    staging.display()
                )))
            })?;
            std::fs::rename(&staging, &self.path)?;
            *lock = Some(file);
        }
        Ok(&self.path)
    }
}

/// Removes the spool directories under `root` that no live process holds (their lock file
/// can be locked, or is missing); returns how many. For `ferry serve` at start-up only.
pub fn clear_stale(root: &Path) -> Result<usize, StoreError> {
    let entries = match std::fs::read_dir(root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e.into()),
    };
    let mut removed = 0;
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !entry.file_type()?.is_dir() {
            // Spools of versions that kept them straight in the root, all stale by now.
            if name.ends_with(".spool") {
                std::fs::remove_file(entry.path())?;
                removed += 1;
            }
            continue;
        }
        if name.starts_with(NEW_PREFIX) {
            continue;
        }
        let dir = entry.path();
        let held = match File::open(dir.join(LOCK_FILE)) {
            Ok(file) => file.try_lock().is_err(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => return Err(e.into()),
        };
        if !held {
            std::fs::remove_dir_all(&dir)?;
            removed += 1;
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_removes_dead_spools_and_keeps_live_ones() -> Result<(), StoreError> {
        let root = tempfile::tempdir()?;
        let live = SpoolDir::new(root.path());
        let live_path = live.ensure()?.to_owned();
        std::fs::write(live_path.join("part.spool"), b"sealed bytes")?;
        // A crashed process: its directory and lock file, no lock held.
        let dead = root.path().join("0123456789abcdef0123456789abcdef");
        std::fs::create_dir(&dead)?;
        std::fs::write(dead.join(LOCK_FILE), b"")?;
        std::fs::write(dead.join("part.spool"), b"old")?;
        // The layout before per-process directories: spool files straight in the root.
        std::fs::write(root.path().join("x-1.spool"), b"older")?;
        assert_eq!(clear_stale(root.path())?, 2);
        assert!(!root.path().join("x-1.spool").exists());
        assert!(!dead.exists());
        assert!(
            live_path.join("part.spool").exists(),
            "a live spool is kept"
        );
        Ok(())
    }
}
