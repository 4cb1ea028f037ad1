//! The durability record (the `tracker-durable` file): a small file beside
//! sled's own, saying how far the store was known to be durable. sled
//! recovers a truncated or overwritten log by keeping what precedes the
//! damage, silently — the store would open as an older (or empty)
//! projection, and the checkpoints in it would make ingest re-read from
//! there without a word. With the record, a store that holds less than it
//! had made durable is refused.
//!
//! The record is written after each explicit flush (so what it claims is on
//! disk), atomically (a temporary file renamed over it). Its measure is the
//! number of messages the store has handled (applied, duplicate or
//! quarantined), which only grows. Stores before layout 18 kept it as
//! `tracker-marker` — a name the list's paging `marker` shared —, which is
//! read when the new file is absent and removed once the new one is written.

use std::path::{Path, PathBuf};

use super::{StoreError, Totals};

pub const FILE: &str = "tracker-durable";
/// The record's name before layout 18, read when [`FILE`] is absent.
pub const FORMER_FILE: &str = "tracker-marker";
/// The file's first line.
const HEAD: &str = "replication-tracker durability record v1";
/// The first line as [`FORMER_FILE`] has it.
const FORMER_HEAD: &str = "replication-tracker durability marker v1";

/// What only grows as batches are written.
pub fn measure(t: &Totals) -> u64 {
    t.applied + t.duplicates + t.quarantined
}

/// The durable measure the record in `dir` holds, and the file it is in;
/// `None` without one (a new store, or one from before the record). With
/// both names present (a build of layout 18 before the rename wrote the
/// former after this one), the larger measure: it only grows.
pub fn read(dir: &Path) -> Result<Option<(u64, PathBuf)>, StoreError> {
    let mut found: Option<(u64, PathBuf)> = None;
    for (name, head) in [(FILE, HEAD), (FORMER_FILE, FORMER_HEAD)] {
        let path = dir.join(name);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(damaged(dir, &path, format!("cannot read it: {e}"))),
        };
        let mut lines = text.lines();
        let measure = (lines.next() == Some(head))
            .then(|| lines.next()?.strip_prefix("messages ")?.parse().ok())
            .flatten();
        match measure {
            Some(m) if found.as_ref().is_none_or(|(f, _)| m > *f) => found = Some((m, path)),
            Some(_) => {}
            None => {
                return Err(damaged(
                    dir,
                    &path,
                    "it is not a durability record this tracker wrote".into(),
                ))
            }
        }
    }
    Ok(found)
}

/// Records `measure` as durable (call only once it is); the record under
/// its former name, if any, is then removed.
pub fn write(dir: &Path, measure: u64) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    let io = |e: std::io::Error| StoreError::Sled(sled::Error::Io(e));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        writeln!(f, "{HEAD}\nmessages {measure}").map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, dir.join(FILE)).map_err(io)?;
    // The rename durable before the former record goes: a crash between
    // them must not leave neither.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    match std::fs::remove_file(dir.join(FORMER_FILE)) {
        // The record is durable; a former one left behind is read, and
        // holds no more than it.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(error = %e, file = FORMER_FILE, "could not remove the former durability record");
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Opens sled, turning a panic in its recovery (which is how sled 0.34
/// meets some garbled logs: "tried to serialize Uninitialized") into a
/// refusal naming the log. The panic's own report is kept off stderr (this
/// thread's only): the refusal says it in one line.
pub fn open_guarded(
    config: &sled::Config,
    dir: &Path,
) -> Result<sled::Result<sled::Db>, StoreError> {
    use std::panic;
    use std::sync::Arc;
    let me = std::thread::current().id();
    let previous = Arc::new(panic::take_hook());
    let others = previous.clone();
    panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() != me {
            others(info)
        }
    }));
    let opened = panic::catch_unwind(panic::AssertUnwindSafe(|| config.open()));
    // Drops the filter (and its handle on the previous hook) first.
    drop(panic::take_hook());
    if let Ok(previous) = Arc::try_unwrap(previous) {
        panic::set_hook(previous);
    }
    opened.map_err(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        damaged(
            dir,
            &dir.join("db"),
            format!("sled cannot recover its log ({why})"),
        )
    })
}

/// Refuses a store that holds less than its durability record says was
/// durable.
pub fn check(dir: &Path, totals: &Totals) -> Result<(), StoreError> {
    match read(dir)? {
        Some((durable, record)) if measure(totals) < durable => Err(damaged(
            dir,
            &dir.join("db"),
            format!(
                "it holds {} messages' worth of the projection, but {durable} had been made \
                 durable ({}): sled's log was truncated or overwritten",
                measure(totals),
                record.display()
            ),
        )),
        _ => Ok(()),
    }
}

pub fn damaged(dir: &Path, file: &Path, reason: String) -> StoreError {
    StoreError::Damaged {
        path: dir.display().to_string(),
        file: PathBuf::from(file).display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Seek, SeekFrom, Write};

    use crate::store::Store;
    use crate::{sample, testkit};

    /// A flushed store of a few thousand events in `dir`; its record count.
    fn filled(dir: &std::path::Path) -> u64 {
        let events = sample::events(&sample::Shape {
            records: 3000,
            projects: 3,
            regions: 4,
            seed: 7,
        });
        let s = Store::open(dir, 8 << 20).unwrap();
        for (i, chunk) in testkit::messages(&events, 0).chunks(500).enumerate() {
            s.apply_batch(chunk).unwrap();
            if i % 4 == 0 {
                s.flush().unwrap();
            }
        }
        s.flush().unwrap();
        s.totals().records
    }

    fn refusal(dir: &std::path::Path) -> String {
        match Store::open(dir, 8 << 20) {
            Ok(s) => panic!(
                "a damaged store opened, with {} records",
                s.totals().records
            ),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn an_intact_store_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let records = filled(dir.path());
        assert_eq!(
            Store::open(dir.path(), 8 << 20).unwrap().totals().records,
            records
        );
    }

    #[test]
    fn a_truncated_log_is_refused_naming_the_file_and_the_rebuild() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let db = dir.path().join("db");
        let len = std::fs::metadata(&db).unwrap().len();
        let segment = crate::store::open::segment_size(dir.path()) as u64;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&db)
            .unwrap()
            // At a segment boundary: sled then recovers the older prefix
            // without a word. The first boundary: the store's few large
            // values leave later segments partly unused, so a cut near the
            // end may lose nothing.
            .set_len(segment.min((len - 1) / segment * segment))
            .unwrap();
        let text = refusal(dir.path());
        assert!(
            text.contains("is damaged") && text.contains("/db"),
            "{text}"
        );
        assert!(text.contains("tracker replay --out"), "{text}");
    }

    /// An engine value that does not read back (a run's metadata lost to a
    /// power cut, say) is the damaged-store refusal with the rebuild, not a
    /// raw i/o or decode error.
    #[test]
    fn a_lost_engine_value_is_refused_as_damage() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        {
            let db = sled::Config::new()
                .path(dir.path())
                .segment_size(crate::store::open::segment_size(dir.path()))
                .open()
                .unwrap();
            let tree = db.open_tree("projection").unwrap();
            let metas: Vec<_> = tree
                .scan_prefix([crate::lsm::layout::RUN_META])
                .keys()
                .map(Result::unwrap)
                .collect();
            assert!(!metas.is_empty(), "the store has runs");
            for k in metas {
                tree.remove(k).unwrap();
            }
            db.flush().unwrap();
        }
        let text = refusal(dir.path());
        assert!(text.contains("is damaged"), "{text}");
        assert!(text.contains("tracker replay --out"), "{text}");
    }

    #[test]
    fn a_garbled_log_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        let db = dir.path().join("db");
        // Up to the last byte written: sled's segments may leave the end
        // of the file unused.
        let bytes = std::fs::read(&db).unwrap();
        let len = bytes.iter().rposition(|b| *b != 0).unwrap() as u64 + 1;
        let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
        // Everything past the first third: wherever this layout's few
        // writes landed, some of them are hit.
        f.seek(SeekFrom::Start(len / 3)).unwrap();
        f.write_all(&vec![0x5a; (len - len / 3) as usize]).unwrap();
        drop(f);
        let text = refusal(dir.path());
        assert!(text.contains("is damaged"), "{text}");
    }

    #[test]
    fn an_emptied_directory_and_a_garbled_record_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        filled(dir.path());
        for f in ["db", "conf"] {
            std::fs::remove_file(dir.path().join(f)).unwrap();
        }
        for snap in std::fs::read_dir(dir.path()).unwrap() {
            let p = snap.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
            {
                std::fs::remove_file(p).unwrap();
            }
        }
        assert!(refusal(dir.path()).contains("is damaged"));
        std::fs::write(dir.path().join(super::FILE), "messages lots\n").unwrap();
        let text = refusal(dir.path());
        assert!(
            text.contains(super::FILE) && text.contains("not a durability record"),
            "{text}"
        );
    }

    /// A store from before layout 18 keeps its record as `tracker-marker`:
    /// it is read (a truncated store is still refused), and the first flush
    /// writes `tracker-durable` in its place.
    #[test]
    fn the_record_under_its_former_name_is_read_then_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let records = filled(dir.path());
        let (new, old) = (
            dir.path().join(super::FILE),
            dir.path().join(super::FORMER_FILE),
        );
        let more = super::measure(&Store::open(dir.path(), 8 << 20).unwrap().totals()) + 1;
        let text = std::fs::read_to_string(&new).unwrap();
        let former = text.replace(super::HEAD, super::FORMER_HEAD);
        assert_ne!(former, text);
        std::fs::remove_file(&new).unwrap();
        // Claims more than the store holds: refused, naming the old file.
        std::fs::write(&old, format!("{}\nmessages {more}\n", super::FORMER_HEAD)).unwrap();
        let text = refusal(dir.path());
        assert!(
            text.contains("is damaged") && text.contains(super::FORMER_FILE),
            "{text}"
        );
        std::fs::write(&old, &former).unwrap();
        let s = Store::open(dir.path(), 8 << 20).unwrap();
        assert_eq!(s.totals().records, records);
        s.flush().unwrap();
        assert!(new.exists() && !old.exists());
        drop(s);
        // Both present (a layout-18 build before the rename wrote the former
        // after this one): the larger claim counts.
        std::fs::write(&old, format!("{}\nmessages {more}\n", super::FORMER_HEAD)).unwrap();
        let text = refusal(dir.path());
        assert!(text.contains(super::FORMER_FILE), "{text}");
    }
}
