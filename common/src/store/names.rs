//! Interned lists (issue 37, item 2): every posting and order list — a
//! project, a field and a value, or a project and a sort order — is known
//! on disk by a `u32` id, so an entry's key is `i|o id suffix` (5 bytes
//! before its sort value) instead of the list's name (a 36-character
//! project id, the field and the value: 40–70 bytes) again in every entry.
//!
//! The dictionary is the engine's `l name → id` entries (the name is what
//! the list's entries were prefixed with before: [`keys::list`],
//! [`keys::order_list`], [`keys::live_list`]), held whole in memory. A
//! batch names its new lists in its own memtable slice, so the engine's
//! runs hold every name their entries use (runs are flushed in batch
//! order), and recovery at open, which derives the unflushed batches
//! again, names their lists again from the flushed dictionary. Ids are
//! dense from 0 in the order a derivation first meets the lists;
//! [`NO_LIST`] is never given.

use std::sync::{RwLock, RwLockReadGuard};

use fxhash::FxHashMap;

use super::{keys, lists, StoreError};

/// The id no list is given: the prefix of a list never named, which holds
/// no entries (a reader asking for a list no record is in).
pub const NO_LIST: u32 = u32::MAX;

/// Lists a derivation named, with their ids, in the order named.
pub(super) type NewNames = Vec<(Box<[u8]>, u32)>;

/// The dictionary as committed: every list named by a batch written to
/// sled. Only the writer adds to it, after its batch's atomic write and
/// before the batch's slice is visible, so a reader never meets an entry
/// whose list it cannot name (it may name a list whose entries it does not
/// see yet: an empty list).
#[derive(Default)]
pub(super) struct Names {
    ids: RwLock<FxHashMap<Box<[u8]>, u32>>,
}

impl Names {
    /// The dictionary in `snap`, checked dense: ids 0..n, each once.
    pub(super) fn load(snap: &crate::lsm::Snapshot) -> Result<Names, StoreError> {
        let mut ids = FxHashMap::default();
        let mut seen = Vec::new();
        for kv in lists::scan(snap, &[keys::space::LIST_NAME], true) {
            let (k, v) = kv?;
            let id = keys::read_number(&v)
                .filter(|&id| id != NO_LIST)
                .ok_or_else(|| StoreError::corrupt(&k, "bad list id"))?;
            let name =
                keys::read_list_name(&k).ok_or_else(|| StoreError::corrupt(&k, "bad list name"))?;
            ids.insert(Box::from(name), id);
            seen.push(id);
        }
        seen.sort_unstable();
        if seen.iter().enumerate().any(|(i, &id)| id as usize != i) {
            return Err(StoreError::corrupt(
                &[keys::space::LIST_NAME],
                "list ids are not dense",
            ));
        }
        Ok(Names {
            ids: RwLock::new(ids),
        })
    }

    /// The key prefix of the list named `name` (its first byte the list's
    /// keyspace): the space and the id, or [`NO_LIST`]'s.
    pub(super) fn prefix(&self, name: &[u8]) -> Vec<u8> {
        let id = self
            .ids
            .read()
            .expect("names lock")
            .get(name)
            .copied()
            .unwrap_or(NO_LIST);
        keys::interned(name[0], id).to_vec()
    }

    /// A derivation's view: the committed names, and ids for new ones.
    pub(super) fn naming(&self) -> Naming<'_> {
        let committed = self.ids.read().expect("names lock");
        let next = committed.len() as u64;
        Naming {
            committed,
            new: FxHashMap::default(),
            next,
        }
    }

    /// A private copy of the dictionary as committed now: a derivation
    /// that is not the writer's (the consistency check) names lists from
    /// it, so it holds no lock on the store's while it runs.
    pub(super) fn copy(&self) -> Names {
        Names {
            ids: RwLock::new(self.ids.read().expect("names lock").clone()),
        }
    }

    /// Adds a derivation's new names (once its batch is written).
    pub(super) fn commit(&self, new: NewNames) {
        if new.is_empty() {
            return;
        }
        self.ids.write().expect("names lock").extend(new);
    }
}

/// Ids for the lists one derivation meets: committed, or new in the order
/// first met. It holds the dictionary's read lock for the derivation's
/// length (a lock per lookup was 2 % of the writer's time): readers share
/// it, and only the writer — which also commits, once its derivation is
/// finished — derives while the store is open.
pub(super) struct Naming<'a> {
    committed: RwLockReadGuard<'a, FxHashMap<Box<[u8]>, u32>>,
    /// The lists named here, with ids dense from the committed count.
    new: FxHashMap<Box<[u8]>, u32>,
    next: u64,
}

impl Naming<'_> {
    /// The id of the list `name`, given now if it has none.
    pub(super) fn id(&mut self, name: &[u8]) -> u32 {
        let committed = self.committed.get(name).copied();
        if let Some(id) = committed.or_else(|| self.new.get(name).copied()) {
            return id;
        }
        // Past NO_LIST, ids wrap into it: refused by `finish`.
        let id = self.next as u32;
        self.next += 1;
        self.new.insert(name.into(), id);
        id
    }

    /// The new names, in the order given — each also as the engine's
    /// dictionary entry, put into `ops` — or the error of a store out of
    /// list ids.
    pub(super) fn finish(self, ops: &mut crate::lsm::Ops) -> Result<NewNames, StoreError> {
        drop(self.committed);
        if self.next > u64::from(NO_LIST) {
            return Err(StoreError::Numbers(self.next));
        }
        let mut new: NewNames = self.new.into_iter().collect();
        new.sort_unstable_by_key(|&(_, id)| id);
        for (name, id) in &new {
            ops.put(keys::list_name(name), id.to_be_bytes());
        }
        Ok(new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_given_once_densely_and_committed_ones_are_kept() {
        let names = Names::default();
        let mut n = names.naming();
        assert_eq!(n.id(b"ia"), 0);
        assert_eq!(n.id(b"ob"), 1);
        assert_eq!(n.id(b"ia"), 0);
        let mut ops = crate::lsm::Ops::default();
        let new = n.finish(&mut ops).unwrap();
        assert_eq!(new.len(), 2);
        assert_eq!(names.prefix(b"ia"), keys::interned(b'i', NO_LIST));
        names.commit(new);
        assert_eq!(names.prefix(b"ia"), keys::interned(b'i', 0));
        assert_eq!(names.prefix(b"ob"), keys::interned(b'o', 1));
        assert_eq!(names.prefix(b"oc"), keys::interned(b'o', NO_LIST));
        let mut n = names.naming();
        assert_eq!(n.id(b"ob"), 1);
        assert_eq!(n.id(b"oc"), 2);
    }
}
