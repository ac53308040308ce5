//! Whether the database path still names the file X-Ray opened.
//!
//! SQLite keeps writing to an open file after it is deleted or renamed away (the program's file
//! descriptor keeps the file alive), so without this check records written after `rm xray.db`,
//! or after another file was moved over it, would count as written while no reader can ever see
//! them. The writer checks before each write (one `stat`, ~1 µs) and fails the batch instead,
//! so the records are counted as failed with an error that says why.
//!
//! X-Ray does not create a new database at the path: the old file's `-wal` and `-shm` may
//! still be in use by another connection (`xray-server`), and a new database beside them could
//! be damaged. A restart records into a new file.

use crate::store::StoreError;
use std::path::{Path, PathBuf};

/// The database file as opened: its absolute path (the program may change its working
/// directory later), device and inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileIdentity {
    path: PathBuf,
    id: (u64, u64),
}

impl FileIdentity {
    /// The file at `path` now; `None` where the platform has no inodes.
    pub(super) fn of(path: &Path) -> Option<FileIdentity> {
        let path = std::path::absolute(path).ok()?;
        Some(FileIdentity {
            id: id_of(&path)?,
            path,
        })
    }

    /// `Ok` if the path still names the file opened.
    pub(super) fn check(&self) -> Result<(), StoreError> {
        let path = &self.path;
        match id_of(path) {
            Some(now) if now == self.id => Ok(()),
            Some(_) => Err(StoreError::Io(format!(
                "{} was replaced by another file while X-Ray was writing to it; records are \
                 not written (restart the program to record into a new database)",
                path.display()
            ))),
            None => Err(StoreError::Io(format!(
                "{} was deleted while X-Ray was writing to it; records are not written \
                 (restart the program to record into a new database)",
                path.display()
            ))),
        }
    }
}

#[cfg(unix)]
fn id_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn id_of(_: &Path) -> Option<(u64, u64)> {
    None
}
