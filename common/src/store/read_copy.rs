//! A store opened to read (`digest`, `verify`, `query`) is a private copy:
//! sled has no read-only mode — it opens its files to write, may write as it
//! recovers, and leaves a snapshot file behind — so the store's files are
//! copied into a scratch directory and the copy is opened. The store itself
//! is never written: it may be immutable, on a read-only mount, or an
//! auditor's frozen copy (issue 29). The price is one copy of the store's
//! files per open (`docs/benchmarks.md`, "Read-only opens").

use std::path::Path;

use super::{open, StoreError};

/// The scratch copy, removed when the store that reads it is dropped.
pub(super) struct ReadCopy {
    dir: tempfile::TempDir,
}

impl ReadCopy {
    /// Copies the store in `path`, under its lock taken shared (a tracker
    /// writing the store holds it exclusively: a copy would be torn, so it
    /// is refused as in use, after the usual wait).
    pub(super) fn make(path: &Path) -> Result<ReadCopy, StoreError> {
        // Held until the copy is made.
        let _db = open::lock_db(path, open::Lock::Shared)?
            .map_err(|e| io(&path.join("db"), "locking", e))?;
        let dir = tempfile::Builder::new()
            .prefix("tracker-read-")
            .tempdir()
            .map_err(|e| io(&std::env::temp_dir(), "making a scratch directory in", e))?;
        copy_tree(path, dir.path())?;
        Ok(ReadCopy { dir })
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `e` as it would read of the store itself: the copy's path in its
    /// messages replaced by the store's.
    pub(super) fn renamed(&self, e: StoreError, store: &Path) -> StoreError {
        let (from, to) = (
            self.path().display().to_string(),
            store.display().to_string(),
        );
        let fix = |s: &mut String| *s = s.replace(&from, &to);
        let mut e = e;
        match &mut e {
            StoreError::Damaged { path, file, .. } => {
                fix(path);
                fix(file);
            }
            StoreError::Missing { path }
            | StoreError::Locked { path }
            | StoreError::OpenHere { path }
            | StoreError::Layout { path, .. }
            | StoreError::Upgrade { path, .. }
            | StoreError::Fold { path, .. }
            | StoreError::Io { path, .. } => fix(path),
            _ => {}
        }
        e
    }
}

/// Copies every file under `from` into `to` (sled's `db`, `conf`, blob
/// files, snapshots; the durability record).
fn copy_tree(from: &Path, to: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(from).map_err(|e| io(from, "reading", e))? {
        let entry = entry.map_err(|e| io(from, "reading", e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(|e| io(&src, "reading", e))?;
        if kind.is_dir() {
            std::fs::create_dir(&dst).map_err(|e| io(&dst, "making", e))?;
            copy_tree(&src, &dst)?;
        } else if kind.is_file() {
            // A full TMPDIR fails here: both ends named.
            std::fs::copy(&src, &dst).map_err(|e| {
                io(
                    &src,
                    &format!("copying into {} (TMPDIR) from", to.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

fn io(path: &Path, what: &str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        what: what.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;
    use std::time::SystemTime;

    use crate::store::Store;
    use crate::{sample, testkit};

    /// Every file under `dir`: its size, modification time and bytes.
    fn files(dir: &std::path::Path) -> BTreeMap<PathBuf, (SystemTime, Vec<u8>)> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                out.extend(files(&e.path()));
            } else {
                let m = e.metadata().unwrap();
                out.insert(
                    e.path(),
                    (m.modified().unwrap(), std::fs::read(e.path()).unwrap()),
                );
            }
        }
        out
    }

    /// A store opened to read, read whole and dropped, leaves every file of
    /// the store as it was (a `digest` changed `db`'s mtime and left a
    /// `snap.*` file), and reads the same as the store opened to write.
    #[test]
    fn a_read_only_open_writes_nothing_and_reads_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let events = sample::events(&sample::Shape {
            records: 300,
            projects: 2,
            regions: 3,
            seed: 4,
        });
        let path = dir.path().join("s");
        let digest = {
            let s = Store::open(&path, 1 << 20).unwrap();
            // Some flushed, some only in the event log (recovered at open).
            s.apply_batch(&testkit::messages(&events[..600], 0))
                .unwrap();
            s.close().unwrap();
            drop(s);
            let s = Store::open(&path, 1 << 20).unwrap();
            s.apply_batch(&testkit::messages(&events[600..], 600))
                .unwrap();
            s.flush().unwrap();
            let d = s.view().digest().unwrap();
            drop(s);
            d
        };
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let before = files(&path);
        for _ in 0..2 {
            let s = Store::open_read_only(&path, 1 << 20).unwrap();
            assert_eq!(s.view().digest().unwrap(), digest);
            s.assert_internally_consistent();
        }
        assert_eq!(files(&path), before, "a read-only open changed the store");
    }
}
