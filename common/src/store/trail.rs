//! A record's audit trail: its accepted events in arrival order, read from
//! the event-log chunks its references point into, whole or a page at a
//! time (after the event whose `seq` a client last saw).

use std::collections::HashMap;

use super::read::log_chunk;
use super::{keys, EventLogEntry, LogRef, ReadView, StoreError};

/// One page of a trail, and whether more events follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailPage {
    pub events: Vec<EventLogEntry>,
    pub more: bool,
}

/// The chunks a read has decoded, each read once.
struct Chunks<'a> {
    store: &'a ReadView,
    read: HashMap<u64, Vec<EventLogEntry>>,
}

impl Chunks<'_> {
    fn entry(&mut self, r: LogRef) -> Result<&EventLogEntry, StoreError> {
        let key = keys::event_log(r.chunk);
        let chunk = match self.read.entry(r.chunk) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let v = self
                    .store
                    .tree
                    .get(&key)?
                    .ok_or_else(|| StoreError::corrupt(&key, "missing event-log chunk"))?;
                e.insert(log_chunk(&key, &v)?)
            }
        };
        chunk
            .get(r.index as usize)
            .ok_or_else(|| StoreError::corrupt(&key, "event-log index out of range"))
    }
}

impl ReadView {
    /// The audit trail of a record, in arrival order.
    pub fn events(&self, record_id: &str) -> Result<Vec<EventLogEntry>, StoreError> {
        Ok(self.events_page(record_id, None, usize::MAX)?.events)
    }

    /// At most `limit` events of a record's trail, in arrival order, after
    /// the one whose `seq` is `after` (from the start without one). A
    /// trail's events are in log order, so their `seq`s grow along it: the
    /// place after `after` is found by bisection, reading a few chunks.
    pub fn events_page(
        &self,
        record_id: &str,
        after: Option<u64>,
        limit: usize,
    ) -> Result<TrailPage, StoreError> {
        let Some((_, stored)) = self.stored_record(record_id)? else {
            return Ok(TrailPage {
                events: Vec::new(),
                more: false,
            });
        };
        let refs = stored.log;
        let mut chunks = Chunks {
            store: self,
            read: HashMap::new(),
        };
        let start = match after {
            None => 0,
            Some(after) => {
                // The first event with a seq past `after`.
                let (mut lo, mut hi) = (0, refs.len());
                while lo < hi {
                    let mid = lo + (hi - lo) / 2;
                    if chunks.entry(refs[mid])?.seq <= after {
                        lo = mid + 1;
                    } else {
                        hi = mid;
                    }
                }
                lo
            }
        };
        let end = start.saturating_add(limit).min(refs.len());
        let events = refs[start..end]
            .iter()
            .map(|r| chunks.entry(*r).cloned())
            .collect::<Result<_, _>>()?;
        Ok(TrailPage {
            events,
            more: end < refs.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    /// Any page equals the whole trail's events past `after`, cut at
    /// `limit`, whatever `after` is (a seq of the trail, between two, past
    /// the end); paging by the last `seq` walks the whole trail once.
    #[test]
    fn pages_equal_the_whole_trail_cut_after_any_seq() {
        let store = Store::temporary().unwrap();
        let events = crate::sample::events(&crate::sample::Shape {
            records: 30,
            projects: 2,
            regions: 2,
            seed: 3,
        });
        // Several batches: a trail across chunks of several batches.
        let messages = crate::testkit::messages(&events, 0);
        for batch in messages.chunks(7) {
            store.apply_batch(batch).unwrap();
        }
        let id = &events[0].record_id;
        let whole = store.view().events(id).unwrap();
        assert!(whole.len() > 3, "a longer trail");
        let last = whole.last().unwrap().seq;
        for limit in [1, 2, 3, whole.len(), usize::MAX] {
            for after in [None, Some(0)].into_iter().chain((0..=last + 1).map(Some)) {
                let page = store.view().events_page(id, after, limit).unwrap();
                let want: Vec<_> = whole
                    .iter()
                    .filter(|e| after.is_none_or(|a| e.seq > a))
                    .cloned()
                    .collect();
                let more = want.len() > limit;
                let want: Vec<_> = want.into_iter().take(limit).collect();
                assert_eq!(page, TrailPage { events: want, more }, "{after:?} {limit}");
            }
            let (mut walked, mut after) = (Vec::new(), None);
            loop {
                let page = store.view().events_page(id, after, limit).unwrap();
                after = page.events.last().map(|e| e.seq);
                walked.extend(page.events);
                if !page.more {
                    break;
                }
            }
            assert_eq!(walked, whole);
        }
        assert_eq!(
            store.view().events_page("no-such", None, 5).unwrap().events,
            []
        );
    }
}
