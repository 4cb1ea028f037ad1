//! The store's self-check: every index entry, block and count must be exactly
//! what the records imply — nothing missing, nothing stale (meilisearch's
//! `assert_internally_consistent`). Used by the property tests and by
//! `tracker verify`.

use std::collections::BTreeMap;

use super::{index, keys, lists, ReadView, Store, StoreError};

impl Store {
    /// Checks that every index entry and count equals what the records imply
    /// (nothing missing, nothing stale). Returns a description of the first
    /// difference. Used by tests and by `verify`.
    pub fn check_consistency(&self) -> Result<Result<(), String>, StoreError> {
        // Records, index and totals of one point between batches, or a
        // live store reads differences a batch made between them.
        let (view, totals, _) = self.view_at_rest();
        view.check_at(totals)
    }

    /// Panics with the first inconsistency (tests).
    pub fn assert_internally_consistent(&self) {
        if let Err(e) = self.check_consistency().expect("store readable") {
            panic!("store is inconsistent: {e}");
        }
    }
}

impl ReadView {
    fn check_at(&self, totals: super::Totals) -> Result<Result<(), String>, StoreError> {
        let mut want_keys: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut want_counts: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        // Numbers are dense from 0, and every record is indexed under its own.
        let (mut records, mut refs) = (0u64, 0u64);
        // Lists the records are in but the dictionary does not name get
        // ids past its end, which no entry has: reported as missing.
        let names = self.names.copy();
        let mut naming = names.naming();
        for r in self.numbered_records() {
            let (number, stored) = r?;
            if u64::from(number) != records {
                return Ok(Err(format!("record {records} missing, {number} next")));
            }
            records += 1;
            refs += stored.log.len() as u64;
            let e = index::Entries::of(
                &stored.id,
                number,
                &stored.state,
                &mut naming,
                self.listing.get(),
            );
            want_keys.extend(e.keys().map(|(k, v)| (k.to_vec(), v.to_vec())));
            for c in e.counts() {
                *want_counts.entry(c.to_vec()).or_default() += 1;
            }
        }
        // Every entry of the index keyspaces, against what the records imply.
        let snap = self.snap();
        let mut have_keys = BTreeMap::new();
        for space in [
            keys::space::POSTING,
            keys::space::ORDER,
            keys::space::CHECKPOINT_ITEM,
        ] {
            for kv in lists::scan(&snap, &[space], true) {
                let (k, v) = kv?;
                have_keys.insert(k.to_vec(), v.to_vec());
            }
        }
        let mut have_counts = BTreeMap::new();
        for space in [
            keys::space::COUNT,
            keys::space::HOUR_COUNT,
            keys::space::STATUS_COUNT,
        ] {
            for kv in snap.prefix(&[space]) {
                match kv? {
                    (k, crate::lsm::Value::Count(n)) => {
                        have_counts.insert(k, n.max(0) as u64);
                    }
                    (k, _) => return Ok(Err(format!("a value under count key {k:?}"))),
                }
            }
        }
        if let Some(diff) = first_difference(&want_keys, &have_keys) {
            return Ok(Err(format!("index entries differ: {diff}")));
        }
        if let Some(diff) = first_difference(&want_counts, &have_counts) {
            return Ok(Err(format!("counts differ: {diff}")));
        }
        if records != totals.records {
            return Ok(Err(format!(
                "{records} records stored, totals say {}",
                totals.records
            )));
        }
        // The engine counts the numbers, and the id map names every record
        // (`records` reads each through it and checks its id).
        let mapped = self.records().try_fold(0u64, |n, r| r.map(|_| n + 1))?;
        let counted = self.numbered()?;
        if mapped != records || u64::from(counted) != records {
            return Ok(Err(format!(
                "{records} records numbered, {mapped} in the id map, the count says {counted}"
            )));
        }
        let t = totals;
        if refs != t.applied + t.duplicates {
            return Ok(Err(format!(
                "{refs} event-log entries referenced, {} accepted events",
                t.applied + t.duplicates
            )));
        }
        Ok(Ok(()))
    }
}

fn first_difference<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug>(
    want: &BTreeMap<K, V>,
    have: &BTreeMap<K, V>,
) -> Option<String> {
    for (k, v) in want {
        match have.get(k) {
            None => return Some(format!("missing {k:?}")),
            Some(h) if h != v => return Some(format!("{k:?}: want {v:?}, have {h:?}")),
            _ => {}
        }
    }
    have.keys()
        .find(|k| !want.contains_key(*k))
        .map(|k| format!("stale {k:?}"))
}
