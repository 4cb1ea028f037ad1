//! Opening a store: sled's directory lock and its refusals (damaged,
//! in use, another layout), the engine over it, and the maintenance
//! threads when the store is opened to write.

use std::path::PathBuf;

use super::*;

impl Store {
    /// Opens (or creates) the store in `path`. `cache_bytes` is the cache
    /// budget, shared by sled's page cache and the engine's decoded blocks
    /// ([`engine::split_cache`]).
    ///
    /// sled locks the directory. Its background threads can hold the lock for
    /// a moment after the previous owner closed it (a restart, a reopen in
    /// the same process), so a held lock is retried for up to 5 s before
    /// giving up: a store that is really in use still fails, with that error.
    pub fn open(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::open_as(path, cache_bytes, Access::Write)
    }

    fn open_as(path: &Path, cache_bytes: u64, access: Access) -> Result<Store, StoreError> {
        // No `.mode(..)`: sled 0.34.7 stores it and never reads it.
        let config = sled::Config::new()
            .path(path)
            .segment_size(segment_size(path))
            .cache_capacity(engine::split_cache(cache_bytes).0)
            .flush_every_ms(Some(500));
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match durability::open_guarded(&config, path)? {
                Ok(db) => {
                    let shown = path.display().to_string();
                    return Self::from_db(db, &shown, Some(path), cache_bytes, access);
                }
                Err(sled::Error::Corruption { at, .. }) => {
                    return Err(durability::damaged(
                        path,
                        &path.join("db"),
                        format!("sled finds its log corrupt (at {at:?})"),
                    ))
                }
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                    locked_wait(path, deadline)?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Fails as opening would when the store in `path` is in use (its lock
    /// is tried and let go at once, waited for as [`Store::open`] does): a
    /// tracker says so before it binds its port. A store not made yet, or
    /// one whose lock file cannot be read, is left to the open to judge.
    pub fn check_not_in_use(path: &Path) -> Result<(), StoreError> {
        // Let go as the file is closed.
        let _ = lock_db(path, Lock::Exclusive)?;
        Ok(())
    }

    /// Opens the store in `path`, which must already hold one, to write to
    /// it (`accept-gap`), where a mistyped path must not become a new,
    /// empty store.
    pub fn open_existing(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::require_existing(path)?;
        Self::open(path, cache_bytes)
    }

    /// Opens an existing store to read it (`digest`, `verify`, `query`):
    /// no flush or merge runs and nothing the engine left is cleaned up, so
    /// examining a store after a failure does not change its engine.
    pub fn open_read_only(path: &Path, cache_bytes: u64) -> Result<Store, StoreError> {
        Self::require_existing(path)?;
        // Never the store itself: a private copy of it (`read_copy.rs`).
        let copy = read_copy::ReadCopy::make(path)?;
        let mut store = Self::open_as(copy.path(), cache_bytes, Access::Read)
            .map_err(|e| copy.renamed(e, path))?;
        Arc::get_mut(&mut store.shared)
            .expect("a store just opened is not shared")
            .copy = Some(copy);
        Ok(store)
    }

    /// sled's own files, its configuration and its log, are in `path`.
    fn require_existing(path: &Path) -> Result<(), StoreError> {
        if !path.join("conf").is_file() || !path.join("db").is_file() {
            return Err(StoreError::Missing {
                path: path.display().to_string(),
            });
        }
        Ok(())
    }

    /// A throw-away store in memory (tests, `verify` against a fresh fold).
    pub fn temporary() -> Result<Store, StoreError> {
        Self::from_db(
            sled::Config::new().temporary(true).open()?,
            "(temporary)",
            None,
            DEFAULT_CACHE_MB << 20,
            Access::Write,
        )
    }

    /// `dir`: where the durability record is (none for a store in memory).
    /// `cache_bytes`: sled's page cache, and as much again for the engine's
    /// decoded blocks.
    fn from_db(
        db: sled::Db,
        path: &str,
        dir: Option<&Path>,
        cache_bytes: u64,
        access: Access,
    ) -> Result<Store, StoreError> {
        let tree = db.open_tree("projection")?;
        // Before an empty store is stamped: it may be one that lost everything.
        if let (Some(dir), true) = (dir, tree.is_empty()) {
            durability::check(dir, &Totals::default())?;
        }
        let layout = ownership::check_layout(&tree, path, access == Access::Write)?;
        let totals = match tree.get(keys::META_TOTALS)? {
            Some(v) => {
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(keys::META_TOTALS, e))?
            }
            None => Totals::default(),
        };
        if let Some(dir) = dir {
            durability::check(dir, &totals)?;
        }
        let mut checkpoints = Checkpoints::new();
        for kv in tree.scan_prefix([keys::space::CHECKPOINT]) {
            let (k, v) = kv?;
            let tp = keys::read_checkpoint(&k)
                .ok_or_else(|| StoreError::corrupt(&k, "bad checkpoint key"))?;
            checkpoints.insert(tp, read_i64(&k, &v)?);
        }
        let (next_change, change_reserved, changes_logged) = changes::open(&tree)?;
        let until = ownership::read_until(&tree)?;
        let published = read_u64(&tree, keys::META_PUBLISHED)?;
        let listing = std::sync::OnceLock::new();
        if let Some(l) = listing::read(&tree)? {
            let _ = listing.set(l);
        }
        let feed_id = changes::feed_id(&tree, access == Access::Write)?;
        let config = engine::config(engine::split_cache(cache_bytes).1);
        let lsm = match access {
            Access::Write => crate::lsm::Lsm::open(tree.clone(), config),
            Access::Read => crate::lsm::Lsm::open_read_only(tree.clone(), config),
        };
        // What the engine keeps in sled does not read back: the store is
        // damaged (a lost or torn value), not merely unreadable.
        let lsm = Arc::new(lsm.map_err(|e| match (dir, lost(&e)) {
            (Some(dir), true) => {
                durability::damaged(dir, &dir.join("db"), format!("its engine: {e}"))
            }
            _ => e.into(),
        })?);
        if UPGRADES_IN_PLACE.contains(&layout) {
            upgrade(&lsm, &tree, path, layout, access)?;
        } else if layout != LAYOUT && access == Access::Write {
            ownership::stamp_layout(&tree)?;
        }
        // The dictionary as the engine's runs hold it; recovery names the
        // lists of the events after them.
        let names = names::Names::load(&lsm.snapshot())?;
        let health = engine::Health::default();
        let steps = Arc::new(steps::Steps::default());
        let maintenance = (!cfg!(test) && access == Access::Write)
            .then(|| engine::Maintenance::start(lsm.clone(), health.clone(), steps.clone()));
        let shared = Shared {
            db,
            lsm,
            names,
            maintenance,
            health,
            tree,
            writer: Mutex::new(WriterState {
                totals,
                checkpoints,
                change_reserved,
                changes_logged,
                // Set once recovery has numbered what it folded.
                numbering: Numbering(0),
                until,
                published,
                events_partitions: None,
            }),
            feed: changes::Feed::new(next_change, feed_id),
            steps,
            outcomes: Default::default(),
            recovered: Default::default(),
            access,
            dir: dir.map(Path::to_owned),
            listing,
            _open: dir.and_then(OpenHere::register),
            copy: None,
        };
        let store = Store {
            shared: Arc::new(shared),
        };
        let started = std::time::Instant::now();
        let (events, numbering) = store.recover(path)?;
        store.writer.lock().expect("writer lock").numbering = numbering;
        store
            .recovered
            .store(events, std::sync::atomic::Ordering::Relaxed);
        if events > 0 {
            tracing::info!(
                events,
                secs = (started.elapsed().as_secs_f64() * 100.0).round() / 100.0,
                "recovered the events after the engine's last flush from the event log"
            );
        }
        Ok(store)
    }
}

/// The stores open in this process, by canonical path: a held lock is
/// this process's own (not waited for, and said so), or another's.
static OPEN_HERE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A store's entry in [`OPEN_HERE`], for as long as it is open.
pub(super) struct OpenHere(PathBuf);

impl OpenHere {
    fn register(path: &Path) -> Option<OpenHere> {
        let path = std::fs::canonicalize(path).ok()?;
        OPEN_HERE.lock().expect("open stores").push(path.clone());
        Some(OpenHere(path))
    }

    fn contains(path: &Path) -> bool {
        std::fs::canonicalize(path)
            .is_ok_and(|p| OPEN_HERE.lock().expect("open stores").contains(&p))
    }
}

impl Drop for OpenHere {
    fn drop(&mut self) {
        let mut open = OPEN_HERE.lock().expect("open stores");
        if let Some(i) = open.iter().position(|p| *p == self.0) {
            open.swap_remove(i);
        }
    }
}

/// How long a held store lock is waited for.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// How the store's lock file is locked: as sled does to write, or shared
/// (a read-only copy is being made).
#[derive(Clone, Copy)]
pub(super) enum Lock {
    Exclusive,
    Shared,
}

/// The store's lock file (`db`), locked as `how` and held until dropped, a
/// held lock waited for as an open waits; `Ok(Err(_))` when the file cannot
/// be opened or locked for another reason (the caller judges).
pub(super) fn lock_db(
    path: &Path,
    how: Lock,
) -> Result<std::io::Result<std::fs::File>, StoreError> {
    let db = match std::fs::File::open(path.join("db")) {
        Ok(db) => db,
        Err(e) => return Ok(Err(e)),
    };
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        let tried = match how {
            Lock::Exclusive => db.try_lock(),
            Lock::Shared => db.try_lock_shared(),
        };
        match tried {
            Ok(()) => return Ok(Ok(db)),
            Err(std::fs::TryLockError::WouldBlock) => locked_wait(path, deadline)?,
            Err(std::fs::TryLockError::Error(e)) => return Ok(Err(e)),
        }
    }
}

/// A held lock: this process's own store is an error at once; another's
/// lock is waited for until `deadline` (sled's threads let go of a closed
/// store's lock a moment late), then an error.
fn locked_wait(path: &Path, deadline: std::time::Instant) -> Result<(), StoreError> {
    let shown = || path.display().to_string();
    if OpenHere::contains(path) {
        return Err(StoreError::OpenHere { path: shown() });
    }
    if std::time::Instant::now() >= deadline {
        return Err(StoreError::Locked { path: shown() });
    }
    std::thread::sleep(std::time::Duration::from_millis(50));
    Ok(())
}

/// Upgrades a store of an older layout in place: its engine is discarded
/// and the open's recovery derives it again from the whole event log
/// (which this binary's fold then derived: stamped so). Killed at any
/// point, the next open carries on: the layout is stamped only once the
/// engine is empty, and recovery resumes from the engine's last flush.
fn upgrade(
    lsm: &crate::lsm::Lsm,
    tree: &sled::Tree,
    path: &str,
    found: u32,
    access: Access,
) -> Result<(), StoreError> {
    if access == Access::Read {
        return Err(StoreError::Upgrade {
            path: path.to_owned(),
            found,
        });
    }
    tracing::info!(
        from = found,
        to = LAYOUT,
        "upgrading the store: its records and indexes are derived again from its event log"
    );
    lsm.discard()?;
    tree.insert(keys::META_FOLD, &FOLD_VERSION.to_be_bytes())?;
    ownership::stamp_layout(tree)
}

/// Whether an engine error at open means data that does not read back (a
/// torn or lost value, or a blob file sled's log names but a power cut
/// lost), rather than a failure of the moment (permissions, no files left).
fn lost(e: &crate::lsm::LsmError) -> bool {
    use std::io::ErrorKind::{NotFound, UnexpectedEof};
    match e {
        crate::lsm::LsmError::Corrupt { .. } => true,
        crate::lsm::LsmError::Sled(sled::Error::Corruption { .. }) => true,
        crate::lsm::LsmError::Sled(sled::Error::Io(io)) => {
            matches!(io.kind(), NotFound | UnexpectedEof)
        }
        _ => false,
    }
}

/// sled's segment size for a new store: sled's default. sled writes a
/// tree page past a quarter of a segment as a file of its own ("blob"),
/// which it creates, never fsyncs and deletes when the page is rewritten; a
/// leaf holds up to 17 keys, so every leaf of event-log chunks or run
/// blocks (13-24 KiB each) is one (3,300-3,500 files left after a 1M
/// load). 2 MiB segments keep such leaves in the log, and were measured:
/// at 1M records within the run-to-run noise, at 3M the apply 4 % slower,
/// the longest batch 8.4 s against 3.9 s and the store's memory 2.8 GiB
/// against 1.4 (docs/benchmarks.md, "The lean write path"). Stores made
/// with another size keep theirs.
const SEGMENT_SIZE: usize = 512 << 10;

/// The segment size the store in `path` was created with (sled refuses
/// another), or [`SEGMENT_SIZE`] for a new one (or one whose `conf` does
/// not say: sled's default, which every store had before).
pub(super) fn segment_size(path: &Path) -> usize {
    let conf = std::fs::read(path.join("conf")).unwrap_or_default();
    let recorded = String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size: ")?.trim().parse().ok());
    recorded.unwrap_or(SEGMENT_SIZE)
}

/// A u64 meta value (0 when absent).
fn read_u64(tree: &sled::Tree, key: &[u8]) -> Result<u64, StoreError> {
    tree.get(key)?
        .map(|v| {
            v.as_ref()
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| StoreError::corrupt(key, "not a u64"))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}
