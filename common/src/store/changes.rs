//! The change sequence behind the live feed. Every batch that changes
//! records numbers those changes (in apply order) and writes their record
//! ids under one key, in the same atomic write as the changes and the
//! checkpoints: a client that resumes from change N is told exactly what
//! followed N, or — when that is no longer all retained, or N is not a
//! change this store made — to reload. Live subscribers get each committed
//! batch in memory through a broadcast channel, so ingest never waits for
//! them and never reads for them.
//!
//! A live subscriber may see a change that a crash then loses (sled makes
//! writes durable every 500 ms). Ingest re-applies it after the restart,
//! under a new number: numbers are handed out from a durable reservation,
//! and a reopened store continues above the last reservation, never reusing
//! a number that may have been sent. So a client resuming from a lost
//! number gets every change above it, the re-applied ones included.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::keys::space;
use super::*;

mod ids;
pub(super) use ids::feed_id;
pub use ids::EventId;

/// Changes kept for resumption by default.
pub const DEFAULT_RETENTION: u64 = 100_000;

/// Batches a live subscriber may fall behind before it is told to reload.
const LIVE_BATCHES: usize = 64;

/// Numbers reserved (durably) at a time; a reopened store skips what is
/// left of the last reservation.
const RESERVE: u64 = 1 << 20;

/// One change: the record as it was right after it.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub seq: u64,
    pub record: Record,
    /// Projects the record was listed under before the change and is not
    /// after it (a later event moved its source or destination project):
    /// their feeds are told it is gone.
    pub left: Vec<String>,
    /// The record as JSON, made once however many streams send it.
    json: std::sync::OnceLock<String>,
}

/// One committed batch as live subscribers get it.
#[derive(Debug)]
pub struct LiveBatch {
    /// The batch's change numbers: `first..=last`.
    pub first: u64,
    pub last: u64,
    /// Its changes, or `None` when no one was subscribed as the batch was
    /// applied (they are in the change log).
    pub changes: Option<Vec<Change>>,
}

/// What the change log keeps per change: the record id and the projects it
/// left.
type LogEntry = (String, Vec<String>);

impl Change {
    pub fn new(seq: u64, record: Record, left: Vec<String>) -> Change {
        Change {
            seq,
            record,
            left,
            json: Default::default(),
        }
    }

    /// The record in the list's JSON shape.
    pub fn json(&self) -> &str {
        self.json
            .get_or_init(|| serde_json::to_string(&self.record).expect("a record serializes"))
    }
}

/// What a resuming client gets.
#[derive(Debug, Clone, PartialEq)]
pub enum Since {
    /// Every change after the resume point, in order. Resumed changes carry
    /// the record's state as it is now (a later change to the same record
    /// follows with the same state).
    Changes(Vec<Change>),
    /// The resume point is older than the retention: the client must
    /// reload.
    Reset,
    /// The resume point is past every change this store handed out (its
    /// client read a store rebuilt since, or restored from an older copy):
    /// the client must reload.
    Ahead,
}

/// The change feed, as the store's users hold it ([`Store::feed`]): live
/// subscribers and the retention; the changes after a resume point are
/// read through a [`ReadView`] ([`ReadView::changes_since`]).
pub struct Feed {
    /// The store's identity in change ids ([`EventId`]).
    id: String,
    live: tokio::sync::broadcast::Sender<Arc<LiveBatch>>,
    retention: std::sync::atomic::AtomicU64,
    /// The last change number handed out: read without the writer lock
    /// (async handlers must not wait for a batch being applied).
    pub(super) head: std::sync::atomic::AtomicU64,
    /// Tests hold a batch between deciding who listens and publishing.
    #[cfg(any(test, feature = "testkit"))]
    hold: std::sync::Mutex<Option<Hold>>,
}

impl Feed {
    pub(super) fn new(next_change: u64, id: String) -> Feed {
        Feed {
            id,
            live: tokio::sync::broadcast::channel(LIVE_BATCHES).0,
            retention: DEFAULT_RETENTION.into(),
            head: (next_change - 1).into(),
            #[cfg(any(test, feature = "testkit"))]
            hold: Default::default(),
        }
    }
}

impl Feed {
    /// Whether anyone listens (views are built only then). A subscriber
    /// that joins after this is asked is told the batch's numbers all the
    /// same.
    pub(super) fn listened(&self) -> bool {
        let listened = self.live.receiver_count() > 0;
        #[cfg(any(test, feature = "testkit"))]
        self.held(HoldAt::Listen);
        listened
    }

    /// Publishes a committed batch that numbered changes `first..=last`.
    pub(super) fn publish(&self, first: u64, last: u64, changes: Option<Vec<Change>>) {
        if last >= first {
            // No receiver is not an error: nobody is watching.
            let _ = self.live.send(Arc::new(LiveBatch {
                first,
                last,
                changes,
            }));
        }
    }

    /// How many changes are kept for resumption (at least one batch's are).
    pub fn set_change_retention(&self, changes: u64) {
        self.retention.store(changes, Ordering::Relaxed);
    }

    /// Live batches from the next committed one on: every batch that
    /// numbers changes, in order. A receiver that falls more than a few
    /// dozen batches behind gets `Lagged`; what it missed is in the log
    /// ([`ReadView::changes_since`]).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<LiveBatch>> {
        self.live.subscribe()
    }

    /// Holds the next batch between deciding whether anyone listens and
    /// its write, until released: the window in which a subscriber can
    /// join unseen.
    #[cfg(any(test, feature = "testkit"))]
    pub fn hold_next_batch(&self) -> Held {
        self.hold_next_batch_at(HoldAt::Listen)
    }

    /// Holds the next batch at `at` until released.
    #[cfg(any(test, feature = "testkit"))]
    pub fn hold_next_batch_at(&self, at: HoldAt) -> Held {
        let (reached_tx, reached) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel();
        *self.hold.lock().expect("hold lock") = Some(Hold {
            at,
            reached: reached_tx,
            release: release_rx,
        });
        Held { reached, release }
    }

    /// The store's identity in its change ids ([`EventId`]).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The last change number handed out (0 before the first).
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// Waits here if a test holds the batch at `at`.
    #[cfg(any(test, feature = "testkit"))]
    pub(super) fn held(&self, at: HoldAt) {
        let mut hold = self.hold.lock().expect("hold lock");
        if hold.as_ref().is_some_and(|h| h.at == at) {
            let Some(Hold {
                reached, release, ..
            }) = hold.take()
            else {
                unreachable!("checked")
            };
            drop(hold);
            let _ = reached.send(());
            let _ = release.recv();
        }
    }
}

/// Where a test holds a batch.
#[cfg(any(test, feature = "testkit"))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldAt {
    /// Once it has decided whether anyone listens, before its write.
    Listen,
    /// After its write (the change log is in sled), before the engine
    /// commits its records.
    Commit,
}

/// A batch held by [`Feed::hold_next_batch`]: `reached` fires when the
/// batch has decided whether anyone listens; it goes on (to its write and
/// its publish) when `release` fires or is dropped.
#[cfg(any(test, feature = "testkit"))]
struct Hold {
    at: HoldAt,
    reached: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
}

/// The test's side of a held batch.
#[cfg(any(test, feature = "testkit"))]
pub struct Held {
    pub reached: std::sync::mpsc::Receiver<()>,
    pub release: std::sync::mpsc::Sender<()>,
}

/// The logged batches, oldest first: (first change, how many).
#[derive(Debug, Default)]
pub(super) struct Logged {
    batches: std::collections::VecDeque<(u64, u64)>,
    changes: u64,
}

/// What logging one batch's changes will do, once the batch is written.
pub(super) struct Logging {
    pub(super) next: u64,
    added: Vec<(u64, u64)>,
    trimmed: usize,
}

impl Logged {
    pub(super) fn commit(&mut self, l: &Logging) {
        for &(first, n) in &l.added {
            self.batches.push_back((first, n));
            self.changes += n;
        }
        for _ in 0..l.trimmed {
            let (_, n) = self.batches.pop_front().expect("trimmed a logged batch");
            self.changes -= n;
        }
    }
}

/// At open: the next change number (above every number the last run may
/// have handed out), the durable reservation, and the logged batches.
pub(super) fn open(tree: &sled::Tree) -> Result<(u64, u64, Logged), StoreError> {
    let reserved = match tree.get(keys::META_CHANGES_RESERVED)? {
        Some(v) => read_u64(keys::META_CHANGES_RESERVED, &v)?,
        None => 0,
    };
    let mut logged = Logged::default();
    let mut end = 1;
    for kv in tree.scan_prefix([space::CHANGE]) {
        let (k, v) = kv?;
        let ids: Vec<LogEntry> =
            postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))?;
        let first = first_seq(&k)?;
        logged.commit(&Logging {
            next: 0,
            added: vec![(first, ids.len() as u64)],
            trimmed: 0,
        });
        end = first + ids.len() as u64;
    }
    Ok((end.max(reserved + 1), reserved, logged))
}

/// A change-log value's bytes at most (well below sled's ~128 KiB blob
/// threshold).
const PIECE_BYTES: usize = 64 << 10;

/// `ids` cut into runs whose encoding stays within [`PIECE_BYTES`].
fn pieces<'a, T: AsRef<str>>(
    ids: &'a [(T, Vec<String>)],
) -> impl Iterator<Item = &'a [(T, Vec<String>)]> + 'a {
    let mut rest = ids;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut bytes = 0;
        let n = rest
            .iter()
            .take_while(|(id, left)| {
                // Each string is its bytes and a length of a few bytes.
                bytes += id.as_ref().len() + 8 + left.iter().map(|p| p.len() + 8).sum::<usize>();
                bytes <= PIECE_BYTES
            })
            .count()
            .max(1);
        let (piece, after) = rest.split_at(n);
        rest = after;
        Some(piece)
    })
}

fn read_u64(k: &[u8], v: &[u8]) -> Result<u64, StoreError> {
    v.try_into()
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::corrupt(k, "not a u64"))
}

fn first_seq(k: &[u8]) -> Result<u64, StoreError> {
    k.get(1..9)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::corrupt(k, "bad change key"))
}

impl Store {
    /// Logs the changed records of a batch as changes `next..`, into the
    /// batch, and drops the oldest logged batches while the rest still hold
    /// the retention. Numbers beyond the reservation are reserved durably
    /// first (before anyone can see them). Apply the result to `logged` once
    /// the batch is written.
    pub(super) fn log_changes(
        &self,
        batch: &mut sled::Batch,
        next: u64,
        reserved: &mut u64,
        logged: &Logged,
        ids: &[(&str, Vec<String>)],
    ) -> Result<Logging, StoreError> {
        let n = ids.len() as u64;
        if n == 0 {
            return Ok(Logging {
                next,
                added: Vec::new(),
                trimmed: 0,
            });
        }
        if next + n - 1 > *reserved {
            let upto = next + n - 1 + RESERVE;
            self.tree
                .insert(keys::META_CHANGES_RESERVED, &upto.to_be_bytes())?;
            self.db.flush()?;
            *reserved = upto;
        }
        // In pieces below sled's blob size (a batch of thousands of changes
        // would be one value of hundreds of KiB: a blob file sled never
        // fsyncs), each under the key of its first change.
        let mut added = Vec::new();
        let mut first = next;
        for piece in pieces(ids) {
            batch.insert(&keys::change(first)[..], encode(&piece));
            added.push((first, piece.len() as u64));
            first += piece.len() as u64;
        }
        let retention = self.feed.retention.load(Ordering::Relaxed);
        let (mut kept, mut trimmed) = (logged.changes + n, 0);
        for &(first, len) in &logged.batches {
            if kept - len < retention {
                break;
            }
            batch.remove(&keys::change(first)[..]);
            kept -= len;
            trimmed += 1;
        }
        Ok(Logging {
            next: next + n,
            added,
            trimmed,
        })
    }
}

impl ReadView {
    /// Every change after `since` (a change sequence number a client
    /// received) up to the view's head, or `Reset` when they are not all
    /// retained (or `since` is above every number handed out). Later
    /// changes are not read: a subscriber (subscribed before it asks)
    /// receives them live. The view took the head first, then the version:
    /// the head moves only once the engine has committed the batch's
    /// records, so the version holds every record the log names up to it.
    /// (A batch's change log is in sled before its records are in the
    /// engine: read past the head, the log names records the version does
    /// not have yet.)
    pub fn changes_since(&self, since: u64) -> Result<Since, StoreError> {
        let head = self.head;
        if since > head {
            return Ok(Since::Ahead);
        }
        let from = since + 1;
        let Some(first) = self.tree.scan_prefix([space::CHANGE]).keys().next() else {
            return Ok(Since::Changes(Vec::new()));
        };
        // Trimmed changes are all below the first retained one; numbers
        // skipped at a reopen hold no change. Below the first retained
        // number, which of the two it is is unknown: reload.
        if from < first_seq(&first?)? {
            return Ok(Since::Reset);
        }
        // Start at the logged batch holding `from`, or the one before it.
        let start = match self
            .tree
            .range(keys::change(0)..=keys::change(from))
            .next_back()
        {
            Some(kv) => first_seq(&kv?.0)?,
            None => from,
        };
        let mut out = Vec::new();
        for kv in self.tree.range(keys::change(start)..=keys::change(head)) {
            let (k, v) = kv?;
            let first = first_seq(&k)?;
            let ids: Vec<LogEntry> =
                postcard::from_bytes(&v).map_err(|e| StoreError::corrupt(&k, e))?;
            for (i, (id, left)) in ids.into_iter().enumerate() {
                let seq = first + i as u64;
                if seq < from || seq > head {
                    continue;
                }
                // Records are never removed, and the version holds every
                // batch up to the head: a logged id without its record is
                // a broken store, never a change to skip.
                let (_, s) = self.stored_record(&id)?.ok_or_else(|| {
                    StoreError::corrupt(&k, format!("change {seq} names record {id}, not stored"))
                })?;
                out.push(Change::new(seq, s.state.view(&id), left));
            }
        }
        // A batch applied meanwhile may have trimmed the oldest batches,
        // ones this read had yet to reach: then not all of it was read.
        let first = match self.tree.scan_prefix([space::CHANGE]).keys().next() {
            Some(k) => Some(first_seq(&k?)?),
            None => None,
        };
        match first {
            Some(first) if from < first => Ok(Since::Reset),
            _ => Ok(Since::Changes(out)),
        }
    }
}

#[cfg(test)]
mod tests;
